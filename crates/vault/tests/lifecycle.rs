//! The data lifecycle over real HTTP, on a SQLite file and on the test PostgreSQL (a schema of its
//! own per test): all-or-nothing batches, retention periods and TTLs with the purge, and deleted
//! values gone from the database's files.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Keys, Server, TempDir, add_key, audit_all, init_with, settings};
use fieldseal_core::envelope::FieldKind;
use fieldseal_vault::store::Store;
use fieldseal_vault_postgres::testing::TestSchema;
use serde_json::{Value, json};

const VISA: &str = "4111111111111111";
const EMAIL: &str = "jane.doe@example.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

/// A vault on `db` with `policy` (TOML) if given, serving over HTTP.
struct Env {
    s: Server,
    keys: Keys,
    settings: fieldseal_vault::config::Settings,
    dir: TempDir,
    _schema: Option<TestSchema>,
}

async fn env(db: Db, tag: &str, policy: Option<&str>) -> Env {
    let dir = TempDir::new(tag);
    let mut s = settings(&dir.0);
    let schema = (db == Db::Postgres).then(TestSchema::new);
    if let Some(schema) = &schema {
        s.database_url = Some(schema.url());
    }
    if let Some(text) = policy {
        let path = dir.0.join("policy.toml");
        std::fs::write(&path, text).unwrap();
        s.policy_file = Some(path);
    }
    let keys = init_with(&s).await;
    let server = Server::start_with(s.clone()).await;
    Env {
        s: server,
        keys,
        settings: s,
        dir,
        _schema: schema,
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

impl Env {
    async fn tokenize(&self, body: Value) -> Vec<Value> {
        let (status, body) = self.s.post(&self.keys.checkout, "/v1/tokenize", body).await;
        assert_eq!(status, 200, "{body}");
        body["results"].as_array().unwrap().clone()
    }

    async fn stored_tokens(&self) -> usize {
        audit_all(self.s.vault.store())
            .await
            .iter()
            .filter(|e| e.action == "tokenize" && e.outcome == "ok")
            .count()
    }

    async fn reveal(&self, token: &str) -> Value {
        let (status, body) = self
            .s
            .detokenize(&self.keys.payments, &[token], "lifecycle test")
            .await;
        assert_eq!(status, 200, "{body}");
        body["results"][0].clone()
    }
}

/// An order whose e-mail is refused keeps nothing of the order: the card number's item answers
/// `batch_aborted` and its envelope is not consumed. A replayed envelope aborts its batch too.
async fn atomic_batch_keeps_nothing_when_an_item_is_refused(db: Db) {
    let e = env(db, "atomic", None).await;
    let pan = e.s.seal(FieldKind::Pan, VISA).await;
    let bad_email = e.s.seal(FieldKind::Email, "not an address").await;
    let results = e
        .tokenize(
            json!({ "atomic": true, "items": [{ "envelope": pan }, { "envelope": bad_email }] }),
        )
        .await;
    assert_eq!(code(&results[0]), "batch_aborted", "{results:?}");
    assert_eq!(code(&results[1]), "email_invalid", "{results:?}");
    assert_eq!(e.stored_tokens().await, 0, "no orphan token");
    let audit = audit_all(e.s.vault.store()).await;
    assert!(
        audit
            .iter()
            .any(|a| a.action == "tokenize" && a.detail.starts_with("batch_aborted")),
        "the aborted item is audited"
    );

    // The same card envelope with a valid e-mail: both stored.
    let email = e.s.seal(FieldKind::Email, EMAIL).await;
    let results = e
        .tokenize(json!({ "atomic": true, "items": [{ "envelope": pan }, { "envelope": email }] }))
        .await;
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    assert_eq!(e.stored_tokens().await, 2);
    let token = results[1]["token"].as_str().unwrap();
    assert_eq!(e.reveal(token).await["ok"], true);

    // A replayed envelope: the new item is not kept.
    let fresh = e.s.seal(FieldKind::Email, "other@example.com").await;
    let results = e
        .tokenize(json!({ "atomic": true, "items": [{ "envelope": fresh }, { "envelope": pan }] }))
        .await;
    assert_eq!(code(&results[0]), "batch_aborted", "{results:?}");
    assert_eq!(code(&results[1]), "replayed", "{results:?}");
    assert_eq!(e.stored_tokens().await, 2, "no orphan token");

    // Without `atomic`, the accepted item is kept (the behaviour the flag exists to avoid).
    let results = e
        .tokenize(json!({ "items": [{ "envelope": fresh }, { "envelope": bad_email }] }))
        .await;
    assert_eq!(results[0]["ok"], true, "{results:?}");
    assert_eq!(e.stored_tokens().await, 3);
}

const RETENTION: &str = r#"
[roles.checkout]
tokenize = ["*"]

[roles.payments]
reveal_plain = ["*"]
delete = ["*"]

[roles.support]
reveal_masked = ["*"]

[roles.auditor]
audit = true

[retention_days]
"*" = 30
pan = 400
"#;

/// A TTL longer than the kind's period is refused; a token past its TTL answers `not_found` like
/// one never issued, and the purge deletes it (audited) and nothing else.
async fn ttl_expires_and_the_purge_deletes(db: Db) {
    let e = env(db, "retention", Some(RETENTION)).await;
    let pan = e.s.seal(FieldKind::Pan, VISA).await;
    let results = e
        .tokenize(json!({ "items": [{ "envelope": pan, "ttl_secs": 400 * 86_400 + 1 }] }))
        .await;
    assert_eq!(code(&results[0]), "ttl_exceeds_retention", "{results:?}");
    let email = e.s.seal(FieldKind::Email, EMAIL).await;
    let results = e
        .tokenize(json!({ "items": [{ "envelope": email, "ttl_secs": 31 * 86_400 }] }))
        .await;
    assert_eq!(code(&results[0]), "ttl_exceeds_retention", "{results:?}");
    let cvc = e.s.seal(FieldKind::Cvc, "123").await;
    let results = e
        .tokenize(json!({ "items": [{ "envelope": cvc, "ttl_secs": 3601 }] }))
        .await;
    assert_eq!(code(&results[0]), "ttl_exceeds_retention", "{results:?}");
    let results = e
        .tokenize(json!({ "items": [{ "envelope": cvc, "ttl_secs": 0 }] }))
        .await;
    assert_eq!(code(&results[0]), "ttl_invalid", "{results:?}");

    // A short TTL and the kind's period.
    let results = e
        .tokenize(json!({ "items": [{ "envelope": pan, "ttl_secs": 1 }, { "envelope": email }] }))
        .await;
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    let (short, long) = (
        results[0]["token"].as_str().unwrap().to_owned(),
        results[1]["token"].as_str().unwrap().to_owned(),
    );
    let long_row = e.s.vault.store().token(&long, 0).await.unwrap().unwrap();
    let now = fieldseal_vault::vault::now();
    assert!(
        (now + 30 * 86_400 - 5..=now + 30 * 86_400).contains(&long_row.expires_at.unwrap()),
        "the kind's period"
    );
    assert_eq!(e.reveal(&short).await["value"], VISA);
    // Past the TTL (the vault's clock has moved on by two seconds).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let revealed = e.reveal(&short).await;
    assert_eq!(code(&revealed), "not_found", "{revealed}");
    let never = e.reveal("tok_AAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(
        revealed["error"], never["error"],
        "like a token never issued"
    );
    let short_row = e.s.vault.store().token(&short, 0).await.unwrap().unwrap();
    assert_eq!(e.s.vault.purge().await.unwrap(), 1);
    assert!(e.s.vault.store().token(&short, 0).await.unwrap().is_none());
    assert_eq!(e.reveal(&long).await["value"], EMAIL);
    let audit = audit_all(e.s.vault.store()).await;
    assert!(
        audit.iter().any(|a| a.action == "delete"
            && a.actor == "vault"
            && a.kind.as_deref() == Some("pan")
            && a.detail
                .starts_with("retention period over: 1 deleted (pan 1)")),
        "one audit entry for the purge's batch: {audit:?}"
    );
    if db == Db::Sqlite {
        assert!(
            !sqlite_files_contain(&e.dir.0, &short_row.ciphertext),
            "the purged value is gone from the database file and its WAL"
        );
        assert!(sqlite_files_contain(&e.dir.0, &long_row.ciphertext));
    }
}

/// A subject's values are exported as the role may see them and erased with their key: the
/// erased subject's tokens answer `not_found`, other subjects keep theirs, the customer id is
/// stored nowhere, and (SQLite) neither the values' ciphertexts nor the subject's wrapped key
/// remain in the database file or its WAL.
async fn subjects_are_exported_and_erased(db: Db) {
    let e = env(db, "subjects", None).await;
    let privacy = add_key(&e.settings, "privacy").await;
    let seal = |kind, value: &'static str| e.s.seal(kind, value);
    let (pan, email, name, other) = (
        seal(FieldKind::Pan, VISA).await,
        seal(FieldKind::Email, EMAIL).await,
        seal(FieldKind::Name, "Jane Doe").await,
        seal(FieldKind::Email, "other@example.com").await,
    );
    let results = e
        .tokenize(json!({ "atomic": true, "items": [
            { "envelope": pan, "subject": "cust-1001" },
            { "envelope": email, "subject": "cust-1001" },
            { "envelope": name, "subject": "cust-1001" },
            { "envelope": other, "subject": "cust-2002" },
        ] }))
        .await;
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    let tokens: Vec<String> = results
        .iter()
        .map(|r| r["token"].as_str().unwrap().to_owned())
        .collect();
    let bad = e.s.seal(FieldKind::Email, EMAIL).await;
    let refused = e
        .tokenize(json!({ "items": [{ "envelope": bad, "subject": "" }] }))
        .await;
    assert_eq!(code(&refused[0]), "subject_invalid");
    let refused = e
        .tokenize(
            json!({ "items": [{ "envelope": bad, "subject": "c", "format": "deterministic" }] }),
        )
        .await;
    // Refused either way: the built-in roles may not ask deterministic tokens at all
    // (`forbidden`); a role that may gets `unsupported_format` with a subject.
    assert!(
        matches!(code(&refused[0]), "unsupported_format" | "forbidden"),
        "{refused:?}"
    );

    // Export: the privacy role sees personal data in the clear and the card masked.
    let (status, body) = e.s.get(&privacy, "/v1/subjects/cust-1001/export").await;
    assert_eq!(status, 200, "{body}");
    let values = body["values"].as_array().unwrap();
    assert_eq!(values.len(), 3, "{body}");
    let by_kind = |k: &str| values.iter().find(|v| v["kind"] == k).unwrap().clone();
    assert_eq!(by_kind("pan")["reveal"], "masked");
    assert_eq!(by_kind("pan")["value"], "411111******1111");
    assert_eq!(by_kind("email")["value"], EMAIL);
    assert_eq!(by_kind("name")["value"], "Jane Doe");
    assert!(by_kind("email")["created_at"].as_i64().unwrap() > 0);
    // Roles without the permissions.
    let (status, _) =
        e.s.get(&e.keys.support, "/v1/subjects/cust-1001/export")
            .await;
    assert_eq!(status, 403);
    let erase = |key: &str, id: &str| {
        e.s.client
            .delete(e.s.url(&format!("/v1/subjects/{id}")))
            .bearer_auth(key.to_owned())
            .send()
    };
    assert_eq!(
        erase(&e.keys.payments, "cust-1001").await.unwrap().status(),
        403
    );

    let before: Vec<_> = {
        let store = e.s.vault.store();
        let mut rows = Vec::new();
        for t in &tokens[..3] {
            rows.push(store.token(t, 0).await.unwrap().unwrap());
        }
        rows
    };
    let subject = before[0].subject.clone().unwrap();
    assert!(subject.starts_with("subj_"), "stored as a keyed hash");
    let key_row =
        e.s.vault
            .store()
            .subject_key(&subject)
            .await
            .unwrap()
            .unwrap();
    let wrapped = key_row.wrapped.clone();

    // Erasure.
    let r = erase(&privacy, "cust-1001").await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tokens_deleted"], 3, "{body}");
    for t in &tokens[..3] {
        let revealed = e.reveal(t).await;
        assert_eq!(code(&revealed), "not_found", "{revealed}");
    }
    assert_eq!(
        e.reveal(&tokens[3]).await["value"],
        "o***@example.com",
        "other subjects keep theirs"
    );
    let (status, _) = e.s.get(&privacy, "/v1/subjects/cust-1001/export").await;
    assert_eq!(status, 404);
    assert_eq!(erase(&privacy, "cust-1001").await.unwrap().status(), 404);
    assert!(
        e.s.vault
            .store()
            .subject_key(&subject)
            .await
            .unwrap()
            .is_none()
    );

    let audit = audit_all(e.s.vault.store()).await;
    for action in ["subject.key", "subject.export", "subject.erase"] {
        assert!(
            audit
                .iter()
                .any(|a| a.action == action && a.outcome == "ok"),
            "{action} audited"
        );
    }
    assert!(
        !audit.iter().any(|a| a.detail.contains("cust-1001")),
        "the customer id is not in the log"
    );
    if db == Db::Sqlite {
        for row in &before {
            assert!(
                !sqlite_files_contain(&e.dir.0, &row.ciphertext),
                "erased value in the files"
            );
        }
        assert!(
            !sqlite_files_contain(&e.dir.0, &wrapped),
            "erased key in the files"
        );
        assert!(
            !sqlite_files_contain(&e.dir.0, b"cust-1001"),
            "customer id in the files"
        );
        // Someone who can write the database puts the erased subject's key and tokens back from
        // a copy taken before the erasure: the log's erasure is later than the key, so nothing
        // of the subject opens, and the put-back key is reported.
        let c = rusqlite::Connection::open(e.dir.0.join("vault.db")).unwrap();
        c.execute(
            "INSERT INTO subject_keys (subject, data_key_id, wrapped, created_at) VALUES (?1, ?2, \
             ?3, ?4)",
            rusqlite::params![
                key_row.subject,
                key_row.data_key_id,
                key_row.wrapped,
                key_row.created_at
            ],
        )
        .unwrap();
        for t in &before {
            c.execute(
                "INSERT INTO tokens (token, kind, data_key_id, ciphertext, fingerprint, brand, \
                 bin, last4, created_at, expires_at, subject) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                 ?8, ?9, ?10, ?11)",
                rusqlite::params![
                    t.token,
                    t.kind,
                    t.data_key_id,
                    t.ciphertext,
                    t.fingerprint,
                    t.brand,
                    t.bin,
                    t.last4,
                    t.created_at,
                    t.expires_at,
                    t.subject
                ],
            )
            .unwrap();
        }
        drop(c);
        for t in &tokens[..3] {
            let revealed = e.reveal(t).await;
            assert_eq!(code(&revealed), "not_found", "put back: {revealed}");
        }
        let audit = audit_all(e.s.vault.store()).await;
        assert!(
            audit
                .iter()
                .any(|a| a.action == "integrity" && a.detail.contains(&subject)),
            "the put-back key is reported"
        );
    }
}

/// Whether the vault's SQLite file or its WAL holds `needle`.
fn sqlite_files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    ["vault.db", "vault.db-wal", "vault.db-journal"]
        .iter()
        .any(|f| {
            std::fs::read(dir.join(f))
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Db::Postgres).await;
                }
            )*
        }
    };
}

on_both!(
    atomic_batch_keeps_nothing_when_an_item_is_refused,
    ttl_expires_and_the_purge_deletes,
    subjects_are_exported_and_erased,
);

/// A snapshot taken while tokenize requests go on verifies and restores into a new data directory,
/// where the tokens its log says were stored reveal; restoring it over the newer live database is
/// refused (it would roll back what happened since) unless forced, and so is restoring it where
/// an operator recorded a newer head; the restore is audited.
#[tokio::test]
async fn backup_under_load_and_restore() {
    let mut e = env(Db::Sqlite, "backup", None).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url, key, stop) = (
            e.s.client.clone(),
            e.s.url("/v1/tokenize"),
            e.keys.checkout.clone(),
            std::sync::Arc::clone(&stop),
        );
        let ks = e.s.key_set().await;
        load.push(tokio::spawn(async move {
            let mut stored = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let env = common::seal_to(&ks, FieldKind::Pan, VISA, ks.server_time());
                let r = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({ "items": [{ "envelope": env }] }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                stored += 1;
            }
            stored
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let snapshot = e.dir.0.join("snapshot.db");
    let head = fieldseal_vault::backup::backup(&e.settings, &snapshot)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for t in load {
        total += t.await.unwrap();
    }
    assert!(total > 0);
    assert!(
        fieldseal_vault::backup::backup(&e.settings, &snapshot)
            .await
            .is_err(),
        "an existing file is not overwritten"
    );

    // Restored into a new data directory: everything the snapshot's log says was stored reveals.
    let other = TempDir::new("restored");
    let restored_settings = settings(&other.0);
    let r = fieldseal_vault::backup::restore(&restored_settings, &snapshot, None, false)
        .await
        .unwrap();
    assert_eq!(r.head.seq, head.seq);
    let restored = Server::start_with(restored_settings.clone()).await;
    let audit = audit_all(restored.vault.store()).await;
    let tokens: Vec<&str> = audit
        .iter()
        .filter(|a| a.action == "tokenize" && a.outcome == "ok")
        .filter_map(|a| a.token.as_deref())
        .collect();
    assert!(!tokens.is_empty(), "the snapshot was taken under load");
    assert!(tokens.len() < audit.len());
    // The first and the last stored before the snapshot (within the role's reveal burst).
    let sample: Vec<&str> = if tokens.len() > 80 {
        tokens[..40]
            .iter()
            .chain(&tokens[tokens.len() - 40..])
            .copied()
            .collect()
    } else {
        tokens.clone()
    };
    for chunk in sample.chunks(100) {
        let (status, body) = restored
            .detokenize(&e.keys.payments, chunk, "restore check")
            .await;
        assert_eq!(status, 200, "{body}");
        for r in body["results"].as_array().unwrap() {
            assert_eq!(r["value"], VISA, "{r}");
        }
    }
    assert!(audit.iter().any(|a| a.action == "vault.backup"));
    assert!(audit.iter().any(|a| a.action == "vault.restore"));
    restored.stop().await;

    // Over the live database, which has moved on: refused, unless forced.
    e.s.shutdown().await;
    let live_head = fieldseal_vault::admin::Admin::open(&e.settings)
        .await
        .unwrap()
        .audit_head()
        .await
        .unwrap();
    assert!(live_head.seq > head.seq);
    let err = fieldseal_vault::backup::restore(&e.settings, &snapshot, None, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("older"), "{err}");
    let same = fieldseal_vault::admin::Admin::open(&e.settings)
        .await
        .unwrap()
        .audit_head()
        .await
        .unwrap();
    assert_eq!(same, live_head, "a refused restore changes nothing");
    // A head recorded elsewhere guards a new data directory too.
    let third = TempDir::new("restored-expect");
    let expect = fieldseal_vault::store::audit::ExpectedHead {
        seq: live_head.seq,
        hash: live_head.hash.clone(),
    };
    let err = fieldseal_vault::backup::restore(&settings(&third.0), &snapshot, Some(expect), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("older"), "{err}");
    let r = fieldseal_vault::backup::restore(&e.settings, &snapshot, None, true)
        .await
        .unwrap();
    assert_eq!(r.forced_over.len(), 1);
    let admin = fieldseal_vault::admin::Admin::open(&e.settings)
        .await
        .unwrap();
    let audit = audit_all(admin.store()).await;
    let last = audit.last().unwrap();
    assert_eq!(last.action, "vault.restore");
    assert!(last.detail.contains("forced"), "{}", last.detail);
    assert!(admin.verify_audit(None).await.unwrap().intact());
}

/// On PostgreSQL the backup command points to pg_dump instead of pretending.
#[tokio::test]
async fn postgres_backup_points_to_pg_dump() {
    let e = env(Db::Postgres, "pg-backup", None).await;
    let err = fieldseal_vault::backup::backup(&e.settings, &e.dir.0.join("x.db"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_dump"), "{err}");
    assert!(!e.dir.0.join("x.db").exists());
}

//! The database-writer attack suite: someone who can write the vault's database (a DBA, an edited
//! backup, SQL injection in a neighbouring application) but does not hold the master key. Each
//! test runs the real `fieldseal-vault` binary on a real database, makes one tampering with SQL as
//! such an attacker would, and shows it detected (`audit verify` exits non-zero naming the entry,
//! the running vault fails closed with `503 audit_broken`) or harmless (the tampered row is treated
//! as absent and the tampering audited). Every attack runs on both backends (`sqlite::` and
//! `postgres::`, the latter in a schema of its own on the test PostgreSQL); a few exist on one
//! backend only (SQLite's storage classes and schema cookie, PostgreSQL's rules).
//! docs/threat-model.md names what remains possible.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::process::Child;

use common::bin::{init_with_keys, ok, start, vault};
use common::{TempDir, key_set, seal_to};
use fieldseal_core::at_rest::{api_key_digest, chain_hash};
use fieldseal_core::encoding::{from_hex, hex};
use fieldseal_core::envelope::FieldKind;
use fieldseal_vault_postgres::testing::{TestSchema, admin_sql, admin_table};
use serde::Serialize;
use serde_json::{Value, json};

const VISA: &str = "4111111111111111";
const AMEX: &str = "378282246310005";
const PURPOSE: &str = "chargeback-4471";

/// Which backend a scene's vault runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The database the attacker writes.
enum Db {
    /// The vault's file.
    Sqlite(PathBuf),
    /// The vault's schema on the test PostgreSQL.
    Postgres(TestSchema),
}

/// A vault initialized and served by the binary, with one API key per role.
struct Scene {
    db: Db,
    _tmp: TempDir,
    dir: PathBuf,
    child: Option<Child>,
    base: String,
    http: reqwest::Client,
    checkout: String,
    payments: String,
    support: String,
}

impl Scene {
    async fn new(tag: &str, backend: Backend) -> Self {
        let tmp = TempDir::new(tag);
        let dir = tmp.0.join("vault");
        let db = match backend {
            Backend::Sqlite => Db::Sqlite(dir.join("vault.db")),
            Backend::Postgres => {
                let schema = TestSchema::new();
                common::bin::use_database(&dir, &schema.url());
                Db::Postgres(schema)
            }
        };
        let [checkout, payments, support]: [String; 3] =
            init_with_keys(&dir, &["checkout", "payments", "support"])
                .try_into()
                .unwrap();
        let mut scene = Self {
            db,
            _tmp: tmp,
            dir,
            child: None,
            base: String::new(),
            http: reqwest::Client::new(),
            checkout,
            payments,
            support,
        };
        scene.start();
        scene
    }

    fn start(&mut self) {
        let (child, base) = start(&self.dir, &self.dir.join("serve.log"));
        self.child = Some(child);
        self.base = base;
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts `serve` on the stopped vault, expecting it to refuse; returns what it printed.
    fn start_refused(&self) -> String {
        let mut child = common::bin::command(&self.dir)
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the vault started on a tampered audit log");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn restart(&mut self) {
        self.stop();
        self.start();
    }

    fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    fn sqlite(&self) -> rusqlite::Connection {
        let Db::Sqlite(path) = &self.db else {
            panic!("not a SQLite scene")
        };
        let c = rusqlite::Connection::open(path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c
    }

    /// Runs the attacker's SQL on the vault's database.
    fn sql(&self, sql: &str) {
        match &self.db {
            Db::Sqlite(_) => self.sqlite().execute_batch(sql).unwrap(),
            Db::Postgres(schema) => {
                admin_sql(&format!("SET search_path = {}; {sql}", schema.name())).unwrap();
            }
        }
    }

    /// The rows a query returns, every value as text (`None` for NULL).
    fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.db {
            Db::Sqlite(_) => {
                let c = self.sqlite();
                let mut st = c.prepare(sql).unwrap();
                let n = st.column_count();
                st.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                                other => Some(format!("{other:?}")),
                            })
                        })
                        .collect()
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
            Db::Postgres(schema) => {
                admin_table(&format!("SET search_path = {}; {sql}", schema.name())).unwrap()
            }
        }
    }

    /// The one text value a query returns.
    fn value(&self, sql: &str) -> String {
        self.rows(sql)[0][0].clone().unwrap_or_default()
    }

    /// `bytes` as a literal of the backend's binary type.
    fn blob(&self, bytes: &[u8]) -> String {
        self.blob_hex(&hex(bytes))
    }

    /// Bytes given in hex as a literal of the backend's binary type.
    fn blob_hex(&self, hex: &str) -> String {
        match self.backend() {
            Backend::Sqlite => format!("X'{hex}'"),
            Backend::Postgres => format!("'\\x{hex}'::bytea"),
        }
    }

    /// A token row's value and public columns, as a literal row for the same backend.
    fn token_row(&self, token: &str) -> (String, String, i64, Option<i64>) {
        let sql = match self.backend() {
            Backend::Sqlite => "SELECT kind, hex(ciphertext), created_at, expires_at FROM tokens",
            Backend::Postgres => {
                "SELECT kind, encode(ciphertext, 'hex'), created_at, expires_at FROM tokens"
            }
        };
        let row = &self.rows(&format!("{sql} WHERE token = '{token}'"))[0];
        let text = |i: usize| row[i].clone().unwrap();
        (
            text(0),
            text(1).to_lowercase(),
            text(2).parse().unwrap(),
            row[3].as_ref().map(|v| v.parse().unwrap()),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    async fn seal(&self, kind: FieldKind, value: &str) -> String {
        let ks = key_set(&self.http, &self.base).await;
        seal_to(&ks, kind, value, ks.server_time())
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn tokenize(&self, envelopes: &[&str]) -> (u16, Value) {
        let items: Vec<Value> = envelopes.iter().map(|e| json!({ "envelope": e })).collect();
        self.call(
            "POST",
            "/v1/tokenize",
            Some(&self.checkout),
            Some(json!({ "items": items })),
        )
        .await
    }

    /// Tokenizes one value and returns its token.
    async fn token(&self, kind: FieldKind, value: &str) -> String {
        let env = self.seal(kind, value).await;
        let (status, body) = self.tokenize(&[&env]).await;
        assert_eq!(status, 200, "{body}");
        body["results"][0]["token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    async fn reveal(&self, key: &str, tokens: &[&str]) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/detokenize",
            Some(key),
            Some(json!({ "tokens": tokens, "purpose": PURPOSE })),
        )
        .await
    }

    /// `audit verify`: success, and what it printed.
    fn verify(&self, extra: &[&str]) -> (bool, String) {
        let mut args = vec!["audit", "verify"];
        args.extend_from_slice(extra);
        let out = vault(&self.dir, &args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `audit verify` must fail and name entry `seq`.
    fn assert_broken_at(&self, seq: i64) -> String {
        let (intact, text) = self.verify(&[]);
        assert!(!intact, "tampering verified: {text}");
        assert!(
            text.contains(&format!("BROKEN at entry {seq}:")),
            "expected entry {seq} named: {text}"
        );
        text
    }

    fn last_seq(&self) -> i64 {
        self.value("SELECT max(seq) FROM audit").parse().unwrap()
    }

    /// Audit entries whose action and outcome match, as the vault recorded them.
    fn entries(&self, action: &str, outcome: &str) -> Vec<(i64, String)> {
        self.rows(&format!(
            "SELECT seq, detail FROM audit WHERE action = '{action}' AND outcome = '{outcome}' \
             ORDER BY seq"
        ))
        .into_iter()
        .map(|r| {
            (
                r[0].as_ref().unwrap().parse().unwrap(),
                r[1].clone().unwrap_or_default(),
            )
        })
        .collect()
    }

    /// Recomputes `prev_hash` and `hash` of every entry from `from` on, and the head's hash: all
    /// anyone can do without the audit key. Returns how many entries were rewritten.
    fn rehash_from(&self, from: i64) -> usize {
        let rows = self.rows(&format!(
            "SELECT seq, at, actor, action, token, kind, purpose, outcome, detail, envelope, \
             prev_hash FROM audit WHERE seq >= {from} ORDER BY seq"
        ));
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut prev = from_hex::<32>(&text(&rows[0][10])).unwrap();
        let mut updates = String::new();
        for r in &rows {
            let entry = Canonical {
                seq: text(&r[0]).parse().unwrap(),
                at: text(&r[1]).parse().unwrap(),
                actor: text(&r[2]),
                action: text(&r[3]),
                token: r[4].clone(),
                kind: r[5].clone(),
                purpose: r[6].clone(),
                outcome: text(&r[7]),
                detail: text(&r[8]),
                envelope: r[9].clone(),
            };
            let hash = chain_hash(&prev, &serde_json::to_vec(&entry).unwrap());
            updates.push_str(&format!(
                "UPDATE audit SET prev_hash = '{}', hash = '{}' WHERE seq = {};",
                hex(&prev),
                hex(&hash),
                entry.seq
            ));
            prev = hash;
        }
        updates.push_str(&format!("UPDATE audit_head SET hash = '{}';", hex(&prev)));
        self.sql(&updates);
        rows.len()
    }

    /// A copy of the whole database, to put back later ([`Self::restore`]).
    fn snapshot(&self) -> Snapshot {
        match &self.db {
            Db::Sqlite(path) => {
                let copy = self.dir.join("snapshot.db");
                std::fs::copy(path, &copy).unwrap();
                Snapshot::Sqlite(copy)
            }
            Db::Postgres(schema) => {
                let snap = TestSchema::new();
                let copies: String = TABLES
                    .iter()
                    .map(|t| {
                        format!(
                            "CREATE TABLE {}.{t} AS TABLE {}.{t};",
                            snap.name(),
                            schema.name()
                        )
                    })
                    .collect();
                admin_sql(&copies).unwrap();
                Snapshot::Postgres(snap)
            }
        }
    }

    /// Puts the database back as it was at `snap`, as a restored backup would.
    fn restore(&self, snap: &Snapshot) {
        match (&self.db, snap) {
            (Db::Sqlite(path), Snapshot::Sqlite(copy)) => {
                std::fs::copy(copy, path).unwrap();
                for wal in ["vault.db-wal", "vault.db-shm"] {
                    let _ = std::fs::remove_file(self.dir.join(wal));
                }
            }
            (Db::Postgres(schema), Snapshot::Postgres(snap)) => {
                let back: String = TABLES
                    .iter()
                    .map(|t| {
                        format!(
                            "TRUNCATE {0}.{t}; INSERT INTO {0}.{t} OVERRIDING SYSTEM VALUE \
                             SELECT * FROM {1}.{t};",
                            schema.name(),
                            snap.name()
                        )
                    })
                    .collect();
                admin_sql(&back).unwrap();
            }
            _ => unreachable!(),
        }
    }

    /// Some traffic: a card tokenized and revealed, so the log has entries of every sort.
    async fn traffic(&self) -> String {
        let t = self.token(FieldKind::Pan, VISA).await;
        let (status, body) = self.reveal(&self.payments, &[&t]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["value"], VISA);
        t
    }
}

/// The vault's tables (a snapshot copies them all).
const TABLES: &[&str] = &[
    "secrets",
    "hpke_keys",
    "tokens",
    "api_keys",
    "audit",
    "audit_head",
    "schema_migrations",
];

/// An older copy of a vault's database.
enum Snapshot {
    Sqlite(PathBuf),
    Postgres(TestSchema),
}

impl Drop for Scene {
    fn drop(&mut self) {
        self.stop();
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The entry's hashed form, as `fieldseal_vault_store::audit` defines it (public knowledge: the
/// attacker recomputes it).
#[derive(Serialize)]
struct Canonical {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    token: Option<String>,
    kind: Option<String>,
    purpose: Option<String>,
    outcome: String,
    detail: String,
    envelope: Option<String>,
}

async fn delete_a_middle_entry(b: Backend) {
    let s = Scene::new("atk-delete-middle", b).await;
    s.traffic().await;
    let (plain, _) = s.entries("reveal", "plain")[0].clone();
    s.sql(&format!("DELETE FROM audit WHERE seq = {plain}"));
    let text = s.assert_broken_at(plain);
    assert!(text.contains("missing"), "{text}");
}

async fn edit_an_entry_purpose_even_rehashing_the_chain(b: Backend) {
    let s = Scene::new("atk-edit-purpose", b).await;
    s.traffic().await;
    s.traffic().await;
    let (plain, _) = s.entries("reveal", "plain")[0].clone();
    assert!(plain < s.last_seq(), "the edited entry is not the last one");
    s.sql(&format!(
        "UPDATE audit SET purpose = 'routine check' WHERE seq = {plain}"
    ));
    s.assert_broken_at(plain);
    // The hash chain alone is public arithmetic: recompute it from the edited entry to the head.
    assert!(s.rehash_from(plain) >= 1);
    let text = s.assert_broken_at(plain);
    assert!(
        text.contains("MAC"),
        "the entry MAC catches a rehashed chain: {text}"
    );
}

async fn swap_two_entries(b: Backend) {
    let s = Scene::new("atk-swap-entries", b).await;
    s.traffic().await;
    let (plain, _) = s.entries("reveal", "plain")[0].clone();
    let other = plain - 1;
    // Exchange every column but the position, MACs included.
    s.sql(&format!(
        "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN ({other}, {plain});
         UPDATE audit SET (at, actor, action, token, kind, purpose, outcome, detail, envelope,
             prev_hash, hash, mac) = (SELECT at, actor, action, token, kind, purpose, outcome,
             detail, envelope, prev_hash, hash, mac FROM t WHERE t.seq = {other} + {plain} - audit.seq)
         WHERE seq IN ({other}, {plain});"
    ));
    s.assert_broken_at(other);
}

async fn truncate_the_tail_then_trigger_an_append(b: Backend) {
    let s = Scene::new("atk-truncate", b).await;
    s.traffic().await;
    let (plain, _) = s.entries("reveal", "plain")[0].clone();
    // Remove the plaintext reveal and everything after it, then make the vault write: a request
    // without an API key (its denial is audited).
    s.sql(&format!("DELETE FROM audit WHERE seq >= {plain}"));
    let (status, body) = s.call("GET", "/v1/me", None, None).await;
    assert_eq!((status, code(&body)), (503, "audit_broken"), "{body}");
    let env = s.seal(FieldKind::Email, "jane@example.com").await;
    let (status, body) = s.tokenize(&[&env]).await;
    assert_eq!((status, code(&body)), (503, "audit_broken"), "{body}");
    assert!(
        s.last_seq() == plain - 1,
        "nothing was appended to the shortened chain"
    );
    assert!(s.log().contains("audit_broken"), "an alert line in the log");
    let text = s.assert_broken_at(plain);
    assert!(text.contains("cut short"), "{text}");
}

async fn truncate_the_tail_of_a_stopped_vault(b: Backend) {
    let mut s = Scene::new("atk-truncate-stopped", b).await;
    s.traffic().await;
    s.stop();
    let (plain, _) = s.entries("reveal", "plain")[0].clone();
    s.sql(&format!("DELETE FROM audit WHERE seq >= {plain}"));
    // A new process has no memory of the log: the head it finds names a missing entry.
    let err = s.start_refused();
    assert!(
        err.contains("audit log broken") && err.contains("cut short"),
        "{err}"
    );
}

async fn truncate_the_tail_and_put_back_an_older_head(b: Backend) {
    let s = Scene::new("atk-truncate-head", b).await;
    let t = s.token(FieldKind::Pan, VISA).await;
    // The attacker reads the head before the reveal ...
    let head = &s.rows("SELECT seq, hash, mac FROM audit_head")[0];
    let text = |i: usize| head[i].clone().unwrap();
    let old_head = (text(0), text(1), text(2));
    let (status, _) = s.reveal(&s.payments, &[&t]).await;
    assert_eq!(status, 200);
    // ... and afterwards cuts the log back to it: an authentic older state of the log.
    s.sql(&format!(
        "DELETE FROM audit WHERE seq > {0}; UPDATE audit_head SET seq = {0}, hash = '{1}', mac = '{2}';",
        old_head.0, old_head.1, old_head.2
    ));
    // The running vault has seen the log reach further.
    let (status, body) = s.call("GET", "/v1/me", None, None).await;
    assert_eq!((status, code(&body)), (503, "audit_broken"), "{body}");
    assert!(s.log().contains("cut back"), "{}", s.log());
}

async fn delete_every_entry_and_the_head(b: Backend) {
    let mut s = Scene::new("atk-delete-all", b).await;
    s.traffic().await;
    s.sql("DELETE FROM audit; DELETE FROM audit_head;");
    let (status, body) = s.call("GET", "/v1/me", None, None).await;
    assert_eq!((status, code(&body)), (503, "audit_broken"), "{body}");
    let text = s.assert_broken_at(1);
    assert!(text.contains("gone"), "{text}");
    // A restart does not paper over it: the vault refuses to start.
    s.stop();
    let err = s.start_refused();
    assert!(err.contains("audit log broken"), "{err}");
}

async fn insert_a_forged_api_key_row(b: Backend) {
    let s = Scene::new("atk-forged-key", b).await;
    let t = s.traffic().await;
    // The digest construction is public: a secret of the attacker's own, role payments. Even the
    // MAC of a genuine row is no help: it covers the id and digest.
    let secret = "A".repeat(43);
    let digest = api_key_digest(secret.as_bytes());
    let genuine_mac = s.value("SELECT mac FROM api_keys LIMIT 1");
    s.sql(&format!(
        "INSERT INTO api_keys (id, digest, role, label, created_at, mac) VALUES \
         ('a1b2c3d4e5f6', {}, 'payments', 'ops', 1, '{genuine_mac}')",
        s.blob(&digest)
    ));
    let forged = format!("fsk_a1b2c3d4e5f6_{secret}");
    let (status, body) = s.reveal(&forged, &[&t]).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    let denied = s.entries("auth", "denied");
    assert!(
        denied.iter().any(|(_, d)| d.contains("integrity check")),
        "{denied:?}"
    );
    assert!(ok(&vault(&s.dir, &["apikey", "list"])).contains("TAMPERED"));
    assert!(s.log().contains("row_tampered"));
}

async fn un_revoke_a_key(b: Backend) {
    let s = Scene::new("atk-unrevoke", b).await;
    let t = s.traffic().await;
    let id = &s.payments[4..16];
    ok(&vault(&s.dir, &["apikey", "revoke", id]));
    let (status, _) = s.reveal(&s.payments, &[&t]).await;
    assert_eq!(status, 401);
    s.sql(&format!(
        "UPDATE api_keys SET revoked_at = NULL WHERE id = '{id}'"
    ));
    let (status, body) = s.reveal(&s.payments, &[&t]).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
}

async fn change_a_key_role(b: Backend) {
    let s = Scene::new("atk-role", b).await;
    let t = s.traffic().await;
    let (status, body) = s.reveal(&s.support, &[&t]).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["reveal"], "masked");
    let id = &s.support[4..16];
    s.sql(&format!(
        "UPDATE api_keys SET role = 'payments' WHERE id = '{id}'"
    ));
    let (status, body) = s.reveal(&s.support, &[&t]).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
}

async fn relabel_a_token_kind(b: Backend) {
    let s = Scene::new("atk-relabel", b).await;
    let cvc = s.token(FieldKind::Cvc, "123").await;
    // As `name`, a CVC would be revealed in the clear again and again instead of once.
    s.sql(&format!(
        "UPDATE tokens SET kind = 'name' WHERE token = '{cvc}'"
    ));
    for _ in 0..3 {
        let (status, body) = s.reveal(&s.payments, &[&cvc]).await;
        assert_eq!(status, 200);
        assert_eq!(code(&body["results"][0]), "not_found", "{body}");
    }
    let tampered = s.entries("integrity", "tampered");
    assert!(
        tampered.len() >= 3 && tampered[0].1.contains(&cvc),
        "{tampered:?}"
    );
}

async fn clear_a_cvc_expiry(b: Backend) {
    let s = Scene::new("atk-cvc-expiry", b).await;
    let cvc = s.token(FieldKind::Cvc, "4321").await;
    // Kept forever instead of purged within the hour: the value no longer opens.
    s.sql(&format!(
        "UPDATE tokens SET expires_at = NULL WHERE token = '{cvc}'"
    ));
    let (_, body) = s.reveal(&s.payments, &[&cvc]).await;
    assert_eq!(code(&body["results"][0]), "not_found", "{body}");
    assert!(!s.entries("integrity", "tampered").is_empty());
}

async fn swap_two_tokens_ciphertexts(b: Backend) {
    let s = Scene::new("atk-swap-ciphertexts", b).await;
    let visa = s.token(FieldKind::Pan, VISA).await;
    let amex = s.token(FieldKind::Pan, AMEX).await;
    s.sql(&format!(
        "CREATE TEMP TABLE t AS SELECT token, ciphertext FROM tokens WHERE token IN ('{visa}', \
         '{amex}');
         UPDATE tokens SET ciphertext = (SELECT ciphertext FROM t WHERE t.token = CASE \
         tokens.token WHEN '{visa}' THEN '{amex}' ELSE '{visa}' END) WHERE token IN ('{visa}', \
         '{amex}');"
    ));
    let swapped = s.value(&format!(
        "SELECT count(DISTINCT ciphertext) FROM tokens WHERE token IN ('{visa}', '{amex}')"
    ));
    assert_eq!(swapped, "2");
    let (_, body) = s.reveal(&s.payments, &[&visa, &amex]).await;
    for r in body["results"].as_array().unwrap() {
        assert_eq!(code(r), "not_found", "{body}");
    }
}

async fn replace_an_hpke_public_key(b: Backend) {
    let mut s = Scene::new("atk-hpke-key", b).await;
    ok(&vault(&s.dir, &["keys", "rotate"]));
    s.restart();
    let before = key_set(&s.http, &s.base).await;
    let primary = before.primary().kid.as_str().to_owned();
    // The attacker's own key pair: pages would seal to it, and the attacker could open them.
    let attacker = fieldseal_core::envelope::OpeningKey::<fieldseal_core::ecdh::P256>::generate(
        fieldseal_core::keyset::KeyId::new(&primary).unwrap(),
    )
    .unwrap();
    let point = attacker.public_key().to_bytes().to_vec();
    s.sql(&format!(
        "UPDATE hpke_keys SET public_key = {} WHERE kid = '{primary}'",
        s.blob(&point)
    ));
    s.restart();
    let (status, ks) = s.call("GET", "/v1/keys", None, None).await;
    assert_eq!(status, 200, "the older key still serves");
    let text = ks.to_string();
    assert!(
        !text.contains(&primary),
        "the tampered key is not published: {text}"
    );
    assert!(ok(&vault(&s.dir, &["keys", "list"])).contains("TAMPERED"));
    let tampered = s.entries("integrity", "tampered");
    assert_eq!(tampered.len(), 1, "reported once: {tampered:?}");
    assert!(tampered[0].1.contains(&primary));
}

async fn delete_the_record_of_an_envelope_to_resubmit_it(b: Backend) {
    let s = Scene::new("atk-replay", b).await;
    let env = s.seal(FieldKind::Cvc, "987").await;
    let (_, body) = s.tokenize(&[&env]).await;
    let cvc = body["results"][0]["token"].as_str().unwrap().to_owned();
    let (_, body) = s.reveal(&s.payments, &[&cvc]).await;
    assert_eq!(
        body["results"][0]["value"], "987",
        "revealed once, then gone"
    );
    // Inside the freshness window, a second submission would bring the CVC back for another
    // reveal. The only record of the envelope is its authenticated tokenize entry (there is no
    // replay table to empty): while it stands, the envelope is refused.
    let (status, body) = s.tokenize(&[&env]).await;
    assert_eq!(status, 200);
    assert_eq!(code(&body["results"][0]), "replayed", "{body}");
    // Deleting that entry lets the envelope through, and leaves a gap `audit verify` names.
    let (entry, _) = s
        .entries("tokenize", "ok")
        .into_iter()
        .find(|(_, d)| d.starts_with("envelope"))
        .unwrap();
    s.sql(&format!("DELETE FROM audit WHERE seq = {entry}"));
    let text = s.assert_broken_at(entry);
    assert!(text.contains("missing"), "{text}");
}

async fn restore_an_older_copy_of_the_database(b: Backend) {
    let mut s = Scene::new("atk-rollback", b).await;
    s.token(FieldKind::Pan, VISA).await;
    s.stop();
    let snapshot = s.snapshot();
    s.start();
    s.traffic().await;
    s.stop();
    // The operator (or a SIEM) records the head outside the database ...
    let recorded = ok(&vault(&s.dir, &["audit", "head"])).trim().to_owned();
    assert!(
        recorded
            .parse::<fieldseal_vault::store::audit::ExpectedHead>()
            .is_ok(),
        "{recorded}"
    );
    // ... the attacker restores the older, entirely consistent copy.
    s.restore(&snapshot);
    let (intact, text) = s.verify(&[]);
    assert!(intact, "a consistent snapshot verifies on its own: {text}");
    let (intact, text) = s.verify(&["--expect-head", &recorded]);
    assert!(!intact, "{text}");
    assert!(text.contains("not in the chain"), "{text}");
}

async fn put_back_a_revoked_key_row_from_an_older_copy(b: Backend) {
    let s = Scene::new("atk-old-key-row", b).await;
    let t = s.traffic().await;
    let id = s.payments[4..16].to_owned();
    let old_mac = s.value(&format!("SELECT mac FROM api_keys WHERE id = '{id}'"));
    ok(&vault(&s.dir, &["apikey", "revoke", &id]));
    // The row as it was before the revocation: its MAC is authentic.
    s.sql(&format!(
        "UPDATE api_keys SET revoked_at = NULL, mac = '{old_mac}' WHERE id = '{id}'"
    ));
    let (status, body) = s.reveal(&s.payments, &[&t]).await;
    assert_eq!(
        (status, code(&body)),
        (401, "unauthorized"),
        "the log says revoked: {body}"
    );
    assert!(ok(&vault(&s.dir, &["apikey", "list"])).contains("TAMPERED"));
}

async fn a_trigger_that_undoes_revocations(b: Backend) {
    let s = Scene::new("atk-trigger", b).await;
    let t = s.traffic().await;
    let id = s.payments[4..16].to_owned();
    // `apikey revoke` would report success while the trigger puts the row back at once.
    s.sql(match b {
        Backend::Sqlite => {
            "CREATE TRIGGER keep AFTER UPDATE ON api_keys BEGIN UPDATE api_keys SET revoked_at = \
             OLD.revoked_at, mac = OLD.mac WHERE id = OLD.id; END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             NEW.revoked_at := OLD.revoked_at; NEW.mac := OLD.mac; RETURN NEW; END $$; \
             CREATE TRIGGER keep BEFORE UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION keep();"
        }
    });
    let out = vault(&s.dir, &["apikey", "revoke", &id]);
    assert!(
        !out.status.success(),
        "revoke reported success over a trigger"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed outside the vault") && err.contains("keep"),
        "{err}"
    );
    // The running vault writes nothing on that schema either (every audited request writes).
    let (status, body) = s.reveal(&s.payments, &[&t]).await;
    assert_eq!((status, code(&body)), (503, "database_tampered"), "{body}");
    assert!(s.log().contains("database_tampered"));
}

async fn put_back_a_used_cvc(b: Backend) {
    let s = Scene::new("atk-cvc-back", b).await;
    let cvc = s.token(FieldKind::Cvc, "555").await;
    let row = s.token_row(&cvc);
    let (_, body) = s.reveal(&s.payments, &[&cvc]).await;
    assert_eq!(body["results"][0]["value"], "555");
    // The row as it was before the reveal deleted it: its value still authenticates.
    s.sql(&format!(
        "INSERT INTO tokens (token, kind, data_key_id, ciphertext, fingerprint, created_at, \
         expires_at) VALUES ('{cvc}', '{}', 1, {}, '', {}, {})",
        row.0,
        s.blob_hex(&row.1),
        row.2,
        row.3.map_or("NULL".to_owned(), |v| v.to_string())
    ));
    let (_, body) = s.reveal(&s.payments, &[&cvc]).await;
    assert_eq!(
        code(&body["results"][0]),
        "not_found",
        "a CVC is used once: {body}"
    );
    assert!(!s.entries("integrity", "tampered").is_empty());
}

#[tokio::test]
async fn retype_envelope_ids_to_resubmit() {
    let s = Scene::new("atk-retype", Backend::Sqlite).await;
    let env = s.seal(FieldKind::Cvc, "246").await;
    let (_, body) = s.tokenize(&[&env]).await;
    assert_eq!(body["results"][0]["ok"], true);
    // More entries after it, so the retyped one is not the last (the tail check would catch it).
    s.traffic().await;
    // Same bytes, another storage class: a text lookup would no longer find them.
    s.sql("UPDATE audit SET envelope = CAST(envelope AS BLOB) WHERE envelope IS NOT NULL;");
    let (_, body) = s.tokenize(&[&env]).await;
    assert_eq!(code(&body["results"][0]), "replayed", "{body}");
    let (intact, text) = s.verify(&[]);
    assert!(!intact, "a retyped entry verified: {text}");
}

#[tokio::test]
async fn a_value_of_the_wrong_type_in_a_key_row() {
    let mut s = Scene::new("atk-wrong-type", Backend::Sqlite).await;
    ok(&vault(&s.dir, &["keys", "rotate"]));
    s.restart();
    let primary = key_set(&s.http, &s.base)
        .await
        .primary()
        .kid
        .as_str()
        .to_owned();
    s.sql(&format!(
        "UPDATE hpke_keys SET created_at = 'soon' WHERE kid = '{primary}'"
    ));
    s.restart();
    // The other key still serves; the row with the odd value is reported, not fatal.
    let (status, ks) = s.call("GET", "/v1/keys", None, None).await;
    assert_eq!(status, 200);
    assert!(!ks.to_string().contains(&primary), "{ks}");
    assert!(ok(&vault(&s.dir, &["keys", "list"])).contains("TAMPERED"));
    s.traffic().await;
}

async fn forge_an_entry_past_the_head(b: Backend) {
    let s = Scene::new("atk-past-head", b).await;
    s.traffic().await;
    let head = s.last_seq();
    s.sql(
        "INSERT INTO audit (seq, at, actor, action, outcome, detail, prev_hash, hash, mac) \
         VALUES (1000000, 1, 'cli', 'apikey.revoke', 'ok', 'x', '00', '00', '00');",
    );
    let (status, body) = s.call("GET", "/v1/me", None, None).await;
    assert_eq!((status, code(&body)), (503, "audit_broken"), "{body}");
    let (intact, text) = s.verify(&[]);
    assert!(!intact, "{text}");
    assert!(
        text.contains(&format!("BROKEN at entry {}:", head + 1)),
        "{text}"
    );
}

async fn put_back_a_retired_hpke_key_row(b: Backend) {
    let mut s = Scene::new("atk-unretire", b).await;
    let old = key_set(&s.http, &s.base)
        .await
        .primary()
        .kid
        .as_str()
        .to_owned();
    let row_mac = s.value(&format!("SELECT mac FROM hpke_keys WHERE kid = '{old}'"));
    ok(&vault(&s.dir, &["keys", "rotate"]));
    ok(&vault(&s.dir, &["keys", "retire", &old]));
    s.sql(&format!(
        "UPDATE hpke_keys SET retired_at = NULL, mac = '{row_mac}' WHERE kid = '{old}'"
    ));
    s.restart();
    let (_, ks) = s.call("GET", "/v1/keys", None, None).await;
    assert!(
        !ks.to_string().contains(&old),
        "a retired key is published again: {ks}"
    );
    assert!(ok(&vault(&s.dir, &["keys", "list"])).contains("TAMPERED"));
}

/// An operator row as it is now, as SQL that puts it back later (its MAC is authentic).
fn operator_row_back(s: &Scene, name: &str) -> String {
    let hex_fn = match s.backend() {
        Backend::Sqlite => "hex(totp_wrapped)",
        Backend::Postgres => "encode(totp_wrapped, 'hex')",
    };
    let r = &s.rows(&format!(
        "SELECT password_hash, {hex_fn}, disabled_at, failed_attempts, locked_until, \
         last_totp_step, generation, mac FROM operators WHERE name = '{name}'"
    ))[0];
    let n = |i: usize| r[i].clone().unwrap_or_else(|| "NULL".into());
    format!(
        "UPDATE operators SET password_hash = '{}', totp_wrapped = {}, disabled_at = {}, \
         failed_attempts = {}, locked_until = {}, last_totp_step = {}, generation = {}, mac = '{}' \
         WHERE name = '{name}'",
        n(0),
        s.blob_hex(&n(1).to_lowercase()),
        n(2),
        n(3),
        n(4),
        n(5),
        n(6),
        n(7)
    )
}

/// `operator add` or `reset` through the binary: (password, otpauth URI).
fn enrol(s: &Scene, args: &[&str]) -> (String, String) {
    let out = ok(&vault(&s.dir, args));
    let field = |p: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(p))
            .unwrap()
            .to_owned()
    };
    (field("password: "), field("totp: "))
}

/// The TOTP code of `steps` steps after the current one.
fn totp(uri: &str, steps: i64) -> String {
    let t = fieldseal_vault::vault::now() + 30 * steps;
    fieldseal_vault::operators::code_from_uri(uri, u64::try_from(t).unwrap()).unwrap()
}

async fn put_back_operator_rows_from_before_a_disable_a_reset_and_a_lock(b: Backend) {
    let s = Scene::new("atk-operator-back", b).await;
    let sign_in = |name: &'static str, password: String, code: String| {
        let s = &s;
        async move {
            let body = json!({ "name": name, "password": password, "totp": code });
            s.call("POST", "/v1/operators/sign-in", None, Some(body))
                .await
        }
    };
    let mut before = Vec::new();
    // Disabled: the row from before says enabled.
    let (olga, olga_uri) = enrol(&s, &["operator", "add", "olga", "--role", "payments"]);
    before.push(("olga", operator_row_back(&s, "olga")));
    ok(&vault(&s.dir, &["operator", "disable", "olga"]));
    // Reset (say, after her password leaked): the row from before holds the old credentials.
    let (omar, omar_uri) = enrol(&s, &["operator", "add", "omar", "--role", "payments"]);
    before.push(("omar", operator_row_back(&s, "omar")));
    enrol(&s, &["operator", "reset", "omar"]);
    // Locked after five wrong passwords: the row from before has no lock.
    let (oona, oona_uri) = enrol(&s, &["operator", "add", "oona", "--role", "payments"]);
    before.push(("oona", operator_row_back(&s, "oona")));
    for _ in 0..5 {
        let (status, _) = sign_in("oona", WRONG_PASSWORD.into(), totp(&oona_uri, 0)).await;
        assert_eq!(status, 401);
    }
    let (status, body) = sign_in("oona", oona.clone(), totp(&oona_uri, 0)).await;
    assert_eq!((status, code(&body)), (403, "operator_locked"), "{body}");

    for (_, sql) in &before {
        s.sql(sql);
    }
    for (name, password, uri) in [
        ("olga", &olga, &olga_uri),
        ("omar", &omar, &omar_uri),
        ("oona", &oona, &oona_uri),
    ] {
        let (status, body) = sign_in(name, password.clone(), totp(uri, 1)).await;
        assert_eq!(
            (status, code(&body)),
            (401, "sign_in_failed"),
            "{name}'s row from before signs in: {body}"
        );
    }
    let list = ok(&vault(&s.dir, &["operator", "list"]));
    for name in ["olga", "omar", "oona"] {
        let line = list.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(line.contains("TAMPERED"), "{list}");
    }
    // Disabling and enabling such a row would bind its old credentials to a generation the log
    // accepts: refused, `reset` named as the way.
    for args in [
        ["operator", "disable", "omar"],
        ["operator", "enable", "olga"],
    ] {
        let out = vault(&s.dir, &args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("operator reset"), "{err}");
    }
    let (status, _) = sign_in("omar", omar.clone(), totp(&omar_uri, 1)).await;
    assert_eq!(
        status, 401,
        "omar's old credentials after the refused disable"
    );
    assert!(s.log().contains("tampered"), "reported");
    // `reset` is the way back: the new credentials sign in (the log then agrees with the row).
    let (password, uri) = enrol(&s, &["operator", "reset", "oona"]);
    let (status, body) = sign_in("oona", password.clone(), totp(&uri, 0)).await;
    assert_eq!(status, 200, "{body}");
    // No password (right or wrong), TOTP secret or session token in the vault's log or the audit
    // log.
    let session = body["session"].as_str().unwrap().to_owned();
    let exported = ok(&vault(&s.dir, &["audit", "export"]));
    let secret_of = |uri: &str| uri.split("secret=").nth(1).unwrap()[..32].to_owned();
    for text in [s.log(), exported] {
        for secret in [
            olga.clone(),
            omar.clone(),
            oona.clone(),
            password.clone(),
            WRONG_PASSWORD.into(),
            secret_of(&olga_uri),
            secret_of(&uri),
            session[4..].to_owned(),
        ] {
            assert!(!text.contains(&secret), "a secret in the logs");
        }
    }
}

/// A wrong password an attacker tries: never written anywhere.
const WRONG_PASSWORD: &str = "wrong-password-never-logged";

async fn cut_back_the_migration_record(b: Backend) {
    let mut s = Scene::new("atk-migrations", b).await;
    s.stop();
    s.sql(
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM \
         schema_migrations)",
    );
    let err = s.start_refused();
    assert!(err.contains("migration record"), "{err}");
}

#[tokio::test]
async fn a_trigger_hidden_behind_a_put_back_schema_cookie() {
    let s = Scene::new("atk-trigger-cookie", Backend::Sqlite).await;
    let t = s.traffic().await;
    let c = s.sqlite();
    let cookie: i64 = c
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .unwrap();
    c.execute_batch(&format!(
        "CREATE TRIGGER keep AFTER DELETE ON tokens BEGIN SELECT 1; END; PRAGMA schema_version = \
         {cookie};"
    ))
    .unwrap();
    drop(c);
    // The full check runs again with every purge cycle (5 s), whatever the cookie says.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, body) = s.reveal(&s.payments, &[&t]).await;
        if status == 503 {
            assert_eq!(code(&body), "database_tampered", "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hidden trigger was never noticed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// PostgreSQL: a rewrite rule that silently swallows revocations (no trigger involved). The
/// running vault checks for rules, triggers and row-security policies inside every write
/// transaction, so it stops writing at once, not only at its next full schema check.
#[tokio::test]
async fn postgres_a_rule_that_swallows_revocations() {
    let s = Scene::new("atk-rule", Backend::Postgres).await;
    let t = s.traffic().await;
    s.sql("CREATE RULE keep AS ON UPDATE TO api_keys DO INSTEAD NOTHING;");
    let (status, body) = s.reveal(&s.payments, &[&t]).await;
    assert_eq!((status, code(&body)), (503, "database_tampered"), "{body}");
    assert!(s.log().contains("database_tampered"));
    let id = s.payments[4..16].to_owned();
    let out = vault(&s.dir, &["apikey", "revoke", &id]);
    assert!(!out.status.success(), "revoke reported success over a rule");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rule api_keys keep"), "{err}");
}

/// PostgreSQL: objects in the vault's schema that would stand in for builtins the vault calls (a
/// `hashtext(name)`, a closer match than the builtin `hashtext(text)`, that creates a table when
/// called; an operator that blanks a line of the schema description). The vault runs with
/// `search_path = pg_catalog` and names every table with its schema, so neither is ever called;
/// the objects themselves are found by the full schema check (every 5 seconds), which then stops
/// every write.
#[tokio::test]
async fn postgres_functions_and_operators_shadowing_builtins() {
    let s = Scene::new("atk-shadow", Backend::Postgres).await;
    let t = s.traffic().await;
    s.sql(
        "CREATE FUNCTION hashtext(name) RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
         CREATE TABLE public.shadow_ran_{pid} (x int); RETURN pg_catalog.hashtext($1::text); END $$; \
         CREATE FUNCTION blank(text, name) RETURNS text LANGUAGE sql AS $$ SELECT NULL::text $$; \
         CREATE OPERATOR || (LEFTARG = text, RIGHTARG = name, FUNCTION = blank);"
            .replace("{pid}", &std::process::id().to_string())
            .as_str(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, body) = s.reveal(&s.payments, &[&t]).await;
        if status == 503 {
            assert_eq!(code(&body), "database_tampered", "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never noticed");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let ran = s.value(&format!(
        "SELECT count(*) FROM pg_class WHERE relname = 'shadow_ran_{}'",
        std::process::id()
    ));
    assert_eq!(ran, "0", "the attacker's function was called");
    let out = vault(&s.dir, &["audit", "verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("changed outside the vault"),
        "{err}"
    );
}

/// PostgreSQL: what the write path relies on, changed between two writes: the replay check's
/// unique index dropped, the tokens table made unlogged (emptied by a crash). The next write is
/// refused at once, not at the next full check.
#[tokio::test]
async fn postgres_the_write_path_changed_under_a_running_vault() {
    for tampering in [
        "DROP INDEX audit_envelope;",
        "ALTER TABLE tokens SET UNLOGGED;",
        "ALTER TABLE audit ADD CONSTRAINT harmless CHECK (seq > 0);",
    ] {
        let s = Scene::new("atk-write-path", Backend::Postgres).await;
        s.traffic().await;
        s.sql(tampering);
        let env = s.seal(FieldKind::Email, "jane@example.com").await;
        let (status, body) = s.tokenize(&[&env]).await;
        assert_eq!(
            (status, code(&body)),
            (503, "database_tampered"),
            "{tampering}: {body}"
        );
    }
}

/// Rewrite the stored policy (the `policy.store` entry's text) to give a role more. The entry's
/// MAC no longer verifies: a running vault keeps the policy it has and raises an alert, a
/// restarted one refuses to start, `audit verify` names the entry.
async fn widen_the_stored_policy(b: Backend) {
    let mut s = Scene::new("atk-policy", b).await;
    let t = s.traffic().await;
    let file = s.dir.join("policy.toml");
    std::fs::write(&file, "[roles.checkout]\ntokenize = [\"*\"]\n").unwrap();
    ok(&vault(&s.dir, &["policy", "load", file.to_str().unwrap()]));
    let refused = || async {
        let (status, _) = s.reveal(&s.payments, &[&t]).await;
        status == 401
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while !refused().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the policy was not taken up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (seq, _) = s.entries("policy.store", "ok")[0].clone();
    s.sql(&format!(
        "UPDATE audit SET detail = '[roles.checkout]\ntokenize = [\"*\"]\n\n[roles.payments]\nreveal_plain = [\"*\"]\n' WHERE seq = {seq}"
    ));
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert!(refused().await, "the widened policy was applied");
    assert!(s.log().contains("policy_reload_failed"), "{}", s.log());
    s.assert_broken_at(seq);
    s.stop();
    let err = s.start_refused();
    assert!(err.contains("stored policy"), "{err}");
}

/// One `#[tokio::test]` per attack per backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($attack:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $attack() {
                    super::$attack(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $attack() {
                    super::$attack(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    widen_the_stored_policy,
    delete_a_middle_entry,
    edit_an_entry_purpose_even_rehashing_the_chain,
    swap_two_entries,
    truncate_the_tail_then_trigger_an_append,
    truncate_the_tail_of_a_stopped_vault,
    truncate_the_tail_and_put_back_an_older_head,
    delete_every_entry_and_the_head,
    insert_a_forged_api_key_row,
    un_revoke_a_key,
    change_a_key_role,
    relabel_a_token_kind,
    clear_a_cvc_expiry,
    swap_two_tokens_ciphertexts,
    replace_an_hpke_public_key,
    delete_the_record_of_an_envelope_to_resubmit_it,
    restore_an_older_copy_of_the_database,
    put_back_a_revoked_key_row_from_an_older_copy,
    a_trigger_that_undoes_revocations,
    put_back_a_used_cvc,
    forge_an_entry_past_the_head,
    put_back_a_retired_hpke_key_row,
    put_back_operator_rows_from_before_a_disable_a_reset_and_a_lock,
    cut_back_the_migration_record,
);

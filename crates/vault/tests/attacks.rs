//! The database-writer attack suite: someone who can write the vault's SQLite file (a DBA, an
//! edited backup, SQL injection in a neighbouring application) but does not hold the master key.
//! Each test runs the real `fieldseal-vault` binary on a real file, makes one tampering with SQL as
//! such an attacker would, and shows it detected (`audit verify` exits non-zero naming the entry,
//! the running vault fails closed with `503 audit_broken`) or harmless (the tampered row is treated
//! as absent and the tampering audited). docs/threat-model.md names what remains possible.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;

use common::bin::{ok, start, vault};
use common::{TempDir, key_set, seal_to};
use fieldseal_core::at_rest::{api_key_digest, chain_hash};
use fieldseal_core::encoding::{from_hex, hex};
use fieldseal_core::envelope::FieldKind;
use serde::Serialize;
use serde_json::{Value, json};

const VISA: &str = "4111111111111111";
const AMEX: &str = "378282246310005";
const PURPOSE: &str = "chargeback-4471";

/// A vault initialized and served by the binary, with one API key per role.
struct Scene {
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
    async fn new(tag: &str) -> Self {
        let tmp = TempDir::new(tag);
        let dir = tmp.0.join("vault");
        ok(&vault(&dir, &["init"]));
        let key = |role: &str| {
            ok(&vault(&dir, &["apikey", "create", "--role", role]))
                .trim()
                .to_owned()
        };
        let (checkout, payments, support) = (key("checkout"), key("payments"), key("support"));
        let mut scene = Self {
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

    fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.dir.join("vault.db")).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c
    }

    fn sql(&self, sql: &str) {
        self.db().execute_batch(sql).unwrap();
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
        self.db()
            .query_row("SELECT max(seq) FROM audit", [], |r| r.get(0))
            .unwrap()
    }

    /// Audit entries whose action and outcome match, as the vault recorded them.
    fn entries(&self, action: &str, outcome: &str) -> Vec<(i64, String)> {
        let c = self.db();
        let mut st = c
            .prepare(
                "SELECT seq, detail FROM audit WHERE action = ?1 AND outcome = ?2 ORDER BY seq",
            )
            .unwrap();
        st.query_map([action, outcome], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
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

/// Recomputes `prev_hash` and `hash` of every entry from `from` on, and the head's hash: all
/// anyone can do without the audit key. Returns how many entries were rewritten.
fn rehash_from(db: &Path, from: i64) -> usize {
    let c = rusqlite::Connection::open(db).unwrap();
    let rows: Vec<(Canonical, String)> = {
        let mut st = c
            .prepare(
                "SELECT seq, at, actor, action, token, kind, purpose, outcome, detail, envelope, \
                 prev_hash FROM audit WHERE seq >= ?1 ORDER BY seq",
            )
            .unwrap();
        st.query_map([from], |r| {
            Ok((
                Canonical {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    token: r.get(4)?,
                    kind: r.get(5)?,
                    purpose: r.get(6)?,
                    outcome: r.get(7)?,
                    detail: r.get(8)?,
                    envelope: r.get(9)?,
                },
                r.get(10)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let mut prev = from_hex::<32>(&rows[0].1).unwrap();
    for (entry, _) in &rows {
        let hash = chain_hash(&prev, &serde_json::to_vec(entry).unwrap());
        c.execute(
            "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE seq = ?1",
            rusqlite::params![entry.seq, hex(&prev), hex(&hash)],
        )
        .unwrap();
        prev = hash;
    }
    c.execute("UPDATE audit_head SET hash = ?1", [hex(&prev)])
        .unwrap();
    rows.len()
}

#[tokio::test]
async fn delete_a_middle_entry() {
    let s = Scene::new("atk-delete-middle").await;
    s.traffic().await;
    let (plain, _) = s.entries("reveal", "plain")[0].clone();
    s.sql(&format!("DELETE FROM audit WHERE seq = {plain}"));
    let text = s.assert_broken_at(plain);
    assert!(text.contains("missing"), "{text}");
}

#[tokio::test]
async fn edit_an_entry_purpose_even_rehashing_the_chain() {
    let s = Scene::new("atk-edit-purpose").await;
    s.traffic().await;
    s.traffic().await;
    let (plain, _) = s.entries("reveal", "plain")[0].clone();
    assert!(plain < s.last_seq(), "the edited entry is not the last one");
    s.sql(&format!(
        "UPDATE audit SET purpose = 'routine check' WHERE seq = {plain}"
    ));
    s.assert_broken_at(plain);
    // The hash chain alone is public arithmetic: recompute it from the edited entry to the head.
    assert!(rehash_from(&s.dir.join("vault.db"), plain) >= 1);
    let text = s.assert_broken_at(plain);
    assert!(
        text.contains("MAC"),
        "the entry MAC catches a rehashed chain: {text}"
    );
}

#[tokio::test]
async fn swap_two_entries() {
    let s = Scene::new("atk-swap-entries").await;
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

#[tokio::test]
async fn truncate_the_tail_then_trigger_an_append() {
    let s = Scene::new("atk-truncate").await;
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

#[tokio::test]
async fn truncate_the_tail_of_a_stopped_vault() {
    let mut s = Scene::new("atk-truncate-stopped").await;
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

#[tokio::test]
async fn truncate_the_tail_and_put_back_an_older_head() {
    let s = Scene::new("atk-truncate-head").await;
    let t = s.token(FieldKind::Pan, VISA).await;
    // The attacker reads the head before the reveal ...
    let old_head: (i64, String, String) = s
        .db()
        .query_row("SELECT seq, hash, mac FROM audit_head", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
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

#[tokio::test]
async fn delete_every_entry_and_the_head() {
    let mut s = Scene::new("atk-delete-all").await;
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

#[tokio::test]
async fn insert_a_forged_api_key_row() {
    let s = Scene::new("atk-forged-key").await;
    let t = s.traffic().await;
    // The digest construction is public: a secret of the attacker's own, role payments. Even the
    // MAC of a genuine row is no help: it covers the id and digest.
    let secret = "A".repeat(43);
    let digest = api_key_digest(secret.as_bytes());
    let genuine_mac: String = s
        .db()
        .query_row("SELECT mac FROM api_keys LIMIT 1", [], |r| r.get(0))
        .unwrap();
    s.db()
        .execute(
            "INSERT INTO api_keys (id, digest, role, label, created_at, mac) VALUES \
             ('a1b2c3d4e5f6', ?1, 'payments', 'ops', 1, ?2)",
            rusqlite::params![digest.to_vec(), genuine_mac],
        )
        .unwrap();
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

#[tokio::test]
async fn un_revoke_a_key() {
    let s = Scene::new("atk-unrevoke").await;
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

#[tokio::test]
async fn change_a_key_role() {
    let s = Scene::new("atk-role").await;
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

#[tokio::test]
async fn relabel_a_token_kind() {
    let s = Scene::new("atk-relabel").await;
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

#[tokio::test]
async fn clear_a_cvc_expiry() {
    let s = Scene::new("atk-cvc-expiry").await;
    let cvc = s.token(FieldKind::Cvc, "4321").await;
    // Kept forever instead of purged within the hour: the value no longer opens.
    s.sql(&format!(
        "UPDATE tokens SET expires_at = NULL WHERE token = '{cvc}'"
    ));
    let (_, body) = s.reveal(&s.payments, &[&cvc]).await;
    assert_eq!(code(&body["results"][0]), "not_found", "{body}");
    assert!(!s.entries("integrity", "tampered").is_empty());
}

#[tokio::test]
async fn swap_two_tokens_ciphertexts() {
    let s = Scene::new("atk-swap-ciphertexts").await;
    let visa = s.token(FieldKind::Pan, VISA).await;
    let amex = s.token(FieldKind::Pan, AMEX).await;
    s.sql(&format!(
        "CREATE TEMP TABLE t AS SELECT token, ciphertext FROM tokens WHERE token IN ('{visa}', \
         '{amex}');
         UPDATE tokens SET ciphertext = (SELECT ciphertext FROM t WHERE t.token = CASE \
         tokens.token WHEN '{visa}' THEN '{amex}' ELSE '{visa}' END) WHERE token IN ('{visa}', \
         '{amex}');"
    ));
    let swapped: i64 = s
        .db()
        .query_row(
            &format!(
                "SELECT count(DISTINCT ciphertext) FROM tokens WHERE token IN ('{visa}', '{amex}')"
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(swapped, 2);
    let (_, body) = s.reveal(&s.payments, &[&visa, &amex]).await;
    for r in body["results"].as_array().unwrap() {
        assert_eq!(code(r), "not_found", "{body}");
    }
}

#[tokio::test]
async fn replace_an_hpke_public_key() {
    let mut s = Scene::new("atk-hpke-key").await;
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
    let c = s.db();
    c.execute(
        "UPDATE hpke_keys SET public_key = ?1 WHERE kid = ?2",
        rusqlite::params![point, primary],
    )
    .unwrap();
    drop(c);
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

#[tokio::test]
async fn delete_the_record_of_an_envelope_to_resubmit_it() {
    let s = Scene::new("atk-replay").await;
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

#[tokio::test]
async fn restore_an_older_copy_of_the_database() {
    let mut s = Scene::new("atk-rollback").await;
    s.token(FieldKind::Pan, VISA).await;
    s.stop();
    let db = s.dir.join("vault.db");
    let snapshot = s.dir.join("snapshot.db");
    std::fs::copy(&db, &snapshot).unwrap();
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
    std::fs::copy(&snapshot, &db).unwrap();
    for wal in ["vault.db-wal", "vault.db-shm"] {
        let _ = std::fs::remove_file(s.dir.join(wal));
    }
    let (intact, text) = s.verify(&[]);
    assert!(intact, "a consistent snapshot verifies on its own: {text}");
    let (intact, text) = s.verify(&["--expect-head", &recorded]);
    assert!(!intact, "{text}");
    assert!(text.contains("not in the chain"), "{text}");
}

#[tokio::test]
async fn put_back_a_revoked_key_row_from_an_older_copy() {
    let s = Scene::new("atk-old-key-row").await;
    let t = s.traffic().await;
    let id = s.payments[4..16].to_owned();
    let old_mac: String = s
        .db()
        .query_row("SELECT mac FROM api_keys WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
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

#[tokio::test]
async fn a_trigger_that_undoes_revocations() {
    let s = Scene::new("atk-trigger").await;
    let t = s.traffic().await;
    let id = s.payments[4..16].to_owned();
    // `apikey revoke` would report success while the trigger puts the row back at once.
    s.sql(
        "CREATE TRIGGER keep AFTER UPDATE ON api_keys BEGIN UPDATE api_keys SET revoked_at = \
         OLD.revoked_at, mac = OLD.mac WHERE id = OLD.id; END;",
    );
    let out = vault(&s.dir, &["apikey", "revoke", &id]);
    assert!(
        !out.status.success(),
        "revoke reported success over a trigger"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("trigger keep"));
    // The running vault writes nothing on that schema either (every audited request writes).
    let (status, body) = s.reveal(&s.payments, &[&t]).await;
    assert_eq!((status, code(&body)), (503, "database_tampered"), "{body}");
    assert!(s.log().contains("database_tampered"));
}

#[tokio::test]
async fn put_back_a_used_cvc() {
    let s = Scene::new("atk-cvc-back").await;
    let cvc = s.token(FieldKind::Cvc, "555").await;
    let row: (String, Vec<u8>, i64, Option<i64>) = s
        .db()
        .query_row(
            "SELECT kind, ciphertext, created_at, expires_at FROM tokens WHERE token = ?1",
            [&cvc],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let (_, body) = s.reveal(&s.payments, &[&cvc]).await;
    assert_eq!(body["results"][0]["value"], "555");
    // The row as it was before the reveal deleted it: its value still authenticates.
    s.db()
        .execute(
            "INSERT INTO tokens (token, kind, data_key_id, ciphertext, fingerprint, created_at, \
             expires_at) VALUES (?1, ?2, 1, ?3, '', ?4, ?5)",
            rusqlite::params![cvc, row.0, row.1, row.2, row.3],
        )
        .unwrap();
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
    let s = Scene::new("atk-retype").await;
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
    let mut s = Scene::new("atk-wrong-type").await;
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

#[tokio::test]
async fn forge_an_entry_past_the_head() {
    let s = Scene::new("atk-past-head").await;
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

#[tokio::test]
async fn put_back_a_retired_hpke_key_row() {
    let mut s = Scene::new("atk-unretire").await;
    let old = key_set(&s.http, &s.base)
        .await
        .primary()
        .kid
        .as_str()
        .to_owned();
    let row_mac: String = s
        .db()
        .query_row("SELECT mac FROM hpke_keys WHERE kid = ?1", [&old], |r| {
            r.get(0)
        })
        .unwrap();
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

#[tokio::test]
async fn cut_back_the_migration_record() {
    let mut s = Scene::new("atk-migrations").await;
    s.stop();
    s.sql("DELETE FROM schema_migrations WHERE version = 3");
    let err = s.start_refused();
    assert!(err.contains("migration record"), "{err}");
}

#[tokio::test]
async fn a_trigger_hidden_behind_a_put_back_schema_cookie() {
    let s = Scene::new("atk-trigger-cookie").await;
    let t = s.traffic().await;
    let c = s.db();
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

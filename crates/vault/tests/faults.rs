//! Faults on PostgreSQL, with the real binary: a node killed under load, the database restarted
//! under load, the connection pool exhausted. Every test is bounded in time. The one that stops
//! the database runs a private cluster of its own (`initdb` and `pg_ctl` on a spare port in a
//! temporary directory), so nothing else on the machine is disturbed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use common::bin::{init_with_keys, start_with, use_database, vault};
use common::{TempDir, key_set, seal_to};
use fieldseal_core::envelope::FieldKind;
use fieldseal_core::keyset::KeySet;
use fieldseal_vault_postgres::AUDIT_LOCK;
use fieldseal_vault_postgres::testing::{PrivateCluster, TestSchema, admin_rows, admin_sql};
use serde_json::{Value, json};

const PURPOSE: &str = "fault-drill";

/// A vault on `url`, initialized, with a checkout and a payments key.
struct Vault {
    _tmp: TempDir,
    dir: PathBuf,
    http: reqwest::Client,
    checkout: String,
    payments: String,
}

impl Vault {
    fn new(tag: &str, url: &str) -> Self {
        let tmp = TempDir::new(tag);
        let dir = tmp.0.join("vault");
        use_database(&dir, url);
        let [checkout, payments]: [String; 2] = init_with_keys(&dir, &["checkout", "payments"])
            .try_into()
            .unwrap();
        Self {
            _tmp: tmp,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            checkout,
            payments,
        }
    }

    /// Serves with the built-in roles without rate limits: these tests reveal every token they
    /// got, hundreds in a few seconds.
    fn serve(&self, name: &str, env: &[(&str, &str)]) -> (Child, String) {
        let policy = self.dir.join("policy.toml");
        std::fs::write(&policy, common::policy_without_rates()).unwrap();
        let policy = policy.to_string_lossy().into_owned();
        let mut env = env.to_vec();
        env.push(("FIELDSEAL_POLICY_FILE", &policy));
        start_with(&self.dir, &self.dir.join(format!("{name}.log")), &env)
    }

    /// Tokenizes one envelope on `base`: the status, and the token if one was issued.
    async fn tokenize(&self, base: &str, envelope: &str) -> (u16, Option<String>, Value) {
        tokenize_at(
            self.http.clone(),
            base.to_owned(),
            self.checkout.clone(),
            envelope.to_owned(),
        )
        .await
    }

    /// Tokenizes each envelope on `base`, all at once; results in order.
    async fn tokenize_all(
        &self,
        base: &str,
        envelopes: &[String],
    ) -> Vec<(u16, Option<String>, Value)> {
        let tasks: Vec<_> = envelopes
            .iter()
            .map(|e| {
                tokio::spawn(tokenize_at(
                    self.http.clone(),
                    base.to_owned(),
                    self.checkout.clone(),
                    e.clone(),
                ))
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    async fn reveal(&self, base: &str, token: &str) -> Value {
        self.http
            .post(format!("{base}/v1/detokenize"))
            .bearer_auth(&self.payments)
            .json(&json!({ "tokens": [token], "purpose": PURPOSE }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn verify(&self) {
        let out = vault(&self.dir, &["audit", "verify"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// POST /v1/tokenize of one envelope: the status, the token if one was issued, and the body.
async fn tokenize_at(
    http: reqwest::Client,
    base: String,
    key: String,
    envelope: String,
) -> (u16, Option<String>, Value) {
    let r = http
        .post(format!("{base}/v1/tokenize"))
        .bearer_auth(&key)
        .json(&json!({ "items": [{ "envelope": envelope }] }))
        .send()
        .await;
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let token = body["results"][0]["token"].as_str().map(str::to_owned);
            (status, token, body)
        }
        // The node died under the request: no answer, nothing promised.
        Err(_) => (0, None, Value::Null),
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn envelopes(ks: &KeySet, n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            seal_to(
                ks,
                FieldKind::Email,
                &format!("{tag}{i}@example.com"),
                ks.server_time(),
            )
        })
        .collect()
}

/// `kill -9` one of two nodes in the middle of a tokenize load: the other keeps serving, every
/// token a client got an answer for is there and reveals, and the chain verifies.
#[tokio::test]
async fn a_node_killed_under_load_loses_nothing_it_answered() {
    let schema = TestSchema::new();
    let v = Vault::new("fault-kill", &schema.url());
    let (mut a, base_a) = v.serve("a", &[]);
    let (mut b, base_b) = v.serve("b", &[]);
    let ks = key_set(&v.http, &base_a).await;
    let envs = envelopes(&ks, 240, "kill");
    let mut answered = Vec::new();
    let started = Instant::now();
    for (i, chunk) in envs.chunks(8).enumerate() {
        if i == 10 {
            // SIGKILL: no graceful shutdown, requests in flight on it are cut.
            let _ = b.kill();
        }
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        for (status, token, body) in v.tokenize_all(base, chunk).await {
            match token {
                Some(t) => answered.push(t),
                None => assert!(
                    i >= 10 && base == &base_b,
                    "only the killed node fails: {status} {body}"
                ),
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(
        answered.len() >= 120,
        "node a served its half: {}",
        answered.len()
    );
    for t in &answered {
        let body = v.reveal(&base_a, t).await;
        assert!(body["results"][0]["value"].is_string(), "{t}: {body}");
    }
    kill(&mut a);
    kill(&mut b);
    v.verify();
}

/// The database stopped under load and started again: requests fail fast with
/// `503 storage_unavailable` (never hang past the timeout), `/readyz` says not ready, nothing is
/// half-written, and service comes back by itself.
#[tokio::test]
async fn a_database_restart_fails_fast_and_recovers_by_itself() {
    let cluster = PrivateCluster::new(&[]);
    let v = Vault::new("fault-restart-vault", &cluster.url());
    let (mut node, base) = v.serve("node", &[("FIELDSEAL_DATABASE_TIMEOUT_MS", "1000")]);
    let ks = key_set(&v.http, &base).await;
    let envs = envelopes(&ks, 60, "restart");
    let mut answered = Vec::new();
    for e in &envs[..20] {
        let (status, token, body) = v.tokenize(&base, e).await;
        assert_eq!(status, 200, "{body}");
        answered.push(token.unwrap());
    }

    cluster.stop();
    for e in &envs[20..30] {
        let asked = Instant::now();
        let (status, token, body) = v.tokenize(&base, e).await;
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "an answer within the timeout, not a hang: {:?}",
            asked.elapsed()
        );
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
        assert!(token.is_none());
    }
    let ready = v.http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], false, "{ready}");

    cluster.start();
    // Back by itself: the pool makes new connections once the server answers.
    let back = Instant::now();
    loop {
        let (status, token, body) = v.tokenize(&base, &envs[30]).await;
        if status == 200 {
            answered.push(token.unwrap());
            break;
        }
        assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "service did not come back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The envelopes refused while the database was down were not consumed: they go through now.
    for e in &envs[20..30] {
        let (status, token, body) = v.tokenize(&base, e).await;
        assert_eq!(status, 200, "{body}");
        answered.push(token.unwrap());
    }
    let ready = v.http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    for t in &answered {
        let body = v.reveal(&base, t).await;
        assert!(body["results"][0]["value"].is_string(), "{t}: {body}");
    }
    kill(&mut node);
    v.verify();
}

/// The audit lock held elsewhere (a stuck node, an operator's session) with a pool of one
/// connection: every request is answered within the bound with a storage error
/// (`storage_busy` when the lock wait times out, `storage_unavailable` when no connection frees
/// up in time), never a hang; nothing is consumed. (The pool's own bound is tested on the store,
/// `crates/vault-postgres/tests/nodes.rs`.)
#[tokio::test]
async fn a_lock_held_elsewhere_answers_503_not_a_hang() {
    let schema = TestSchema::new();
    let v = Vault::new("fault-pool", &schema.url());
    let (mut node, base) = v.serve(
        "node",
        &[
            ("FIELDSEAL_DATABASE_POOL_SIZE", "1"),
            ("FIELDSEAL_DATABASE_TIMEOUT_MS", "800"),
        ],
    );
    let ks = key_set(&v.http, &base).await;
    let envs = envelopes(&ks, 8, "pool");
    // Another session holds the vault's audit lock: every write waits for it on its connection.
    let holder = hold_audit_lock(schema.name(), Duration::from_secs(4));
    let asked = Instant::now();
    while admin_rows(&format!(
        "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND classid = \
         {AUDIT_LOCK} AND objid::bigint = (hashtext('{}')::bigint & 4294967295) AND granted",
        schema.name()
    ))
    .unwrap()[0]
        == "0"
    {
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "the lock was never taken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    let mut codes = Vec::new();
    for (status, token, body) in v.tokenize_all(&base, &envs).await {
        assert!(token.is_none(), "{body}");
        // Refused as a whole (authentication could not read the key: 503) or per item (200, the
        // item's error): either way at once and with the storage error, never a hang.
        let code = match status {
            503 => &body["error"]["code"],
            200 => &body["results"][0]["error"]["code"],
            other => panic!("{other}: {body}"),
        };
        codes.push(code.as_str().unwrap_or_default().to_owned());
    }
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "every request answered within the bound: {:?}",
        asked.elapsed()
    );
    assert!(
        codes
            .iter()
            .all(|c| c == "storage_unavailable" || c == "storage_busy"),
        "{codes:?}"
    );
    holder.join().unwrap();
    // Once the lock is gone the same envelopes go through: nothing was consumed.
    for e in &envs {
        let (status, _, body) = v.tokenize(&base, e).await;
        assert_eq!(status, 200, "{body}");
    }
    kill(&mut node);
    v.verify();
}

/// Holds the audit lock of the vault in `schema` for `how_long` from another session.
fn hold_audit_lock(schema: &str, how_long: Duration) -> std::thread::JoinHandle<()> {
    let sql = format!(
        "SELECT pg_advisory_lock({AUDIT_LOCK}, hashtext('{schema}')); SELECT pg_sleep({}); SELECT \
         pg_advisory_unlock({AUDIT_LOCK}, hashtext('{schema}'));",
        how_long.as_secs_f64()
    );
    std::thread::spawn(move || admin_sql(&sql).unwrap())
}

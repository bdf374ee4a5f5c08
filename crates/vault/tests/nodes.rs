//! Several vault nodes on one PostgreSQL database: the real binary twice, on one schema of the
//! test server, with the requests split between the two as a load balancer would. What one node
//! did, the other knows: an envelope is accepted once, a card security code is revealed once, the
//! audit trail is one chain, and operator changes reach every node.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use common::bin::{init_with_keys, ok, start, use_database, vault};
use common::{TempDir, key_set, seal_to};
use fieldseal_core::envelope::FieldKind;
use fieldseal_vault_postgres::testing::TestSchema;
use serde_json::{Value, json};

const PURPOSE: &str = "refund-2231";

/// Two nodes serving one vault.
struct Cluster {
    _schema: TestSchema,
    _tmp: TempDir,
    dir: PathBuf,
    nodes: Vec<(Child, String)>,
    http: reqwest::Client,
    checkout: String,
    payments: String,
}

impl Cluster {
    fn new(tag: &str) -> Self {
        let tmp = TempDir::new(tag);
        let dir = tmp.0.join("vault");
        let schema = TestSchema::new();
        use_database(&dir, &schema.url());
        let [checkout, payments]: [String; 2] = init_with_keys(&dir, &["checkout", "payments"])
            .try_into()
            .unwrap();
        let nodes = (0..2)
            .map(|i| start(&dir, &dir.join(format!("node{i}.log"))))
            .collect();
        Self {
            _schema: schema,
            _tmp: tmp,
            dir,
            nodes,
            http: reqwest::Client::new(),
            checkout,
            payments,
        }
    }

    fn base(&self, node: usize) -> &str {
        &self.nodes[node].1
    }

    async fn post(&self, node: usize, path: &str, key: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base(node)))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn seal(&self, kind: FieldKind, value: &str) -> String {
        let ks = key_set(&self.http, self.base(0)).await;
        seal_to(&ks, kind, value, ks.server_time())
    }

    async fn tokenize(&self, node: usize, envelope: &str) -> Value {
        let (status, body) = self
            .post(
                node,
                "/v1/tokenize",
                &self.checkout,
                json!({ "items": [{ "envelope": envelope }] }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["results"][0].clone()
    }

    async fn reveal(&self, node: usize, key: &str, token: &str) -> (u16, Value) {
        self.post(
            node,
            "/v1/detokenize",
            key,
            json!({ "tokens": [token], "purpose": PURPOSE }),
        )
        .await
    }

    /// `audit verify` over the shared database: success and its report.
    fn verify(&self) -> (bool, String) {
        let out = vault(&self.dir, &["audit", "verify"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Each envelope sent to both nodes at the same moment: exactly one of the two stores it.
#[tokio::test]
async fn an_envelope_is_accepted_once_across_nodes() {
    let c = Cluster::new("nodes-replay");
    for i in 0..20 {
        let env = c
            .seal(FieldKind::Email, &format!("shopper{i}@example.com"))
            .await;
        let (a, b) = tokio::join!(c.tokenize(0, &env), c.tokenize(1, &env));
        let accepted = [&a, &b].iter().filter(|r| r["ok"] == true).count();
        assert_eq!(accepted, 1, "envelope {i}: {a} / {b}");
        let refused = if a["ok"] == true { &b } else { &a };
        assert_eq!(refused["error"]["code"], "replayed", "{refused}");
    }
    let (intact, report) = c.verify();
    assert!(intact, "{report}");
}

/// A card security code revealed in the clear from both nodes at once: one gets the value.
#[tokio::test]
async fn a_cvc_is_revealed_once_across_nodes() {
    let c = Cluster::new("nodes-cvc");
    for round in 0..10 {
        let env = c.seal(FieldKind::Cvc, "737").await;
        let token = c.tokenize(round % 2, &env).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (a, b) = tokio::join!(
            c.reveal(0, &c.payments, &token),
            c.reveal(1, &c.payments, &token)
        );
        let values: Vec<&Value> = [&a.1, &b.1]
            .into_iter()
            .filter(|body| body["results"][0]["value"] == "737")
            .collect();
        assert_eq!(values.len(), 1, "round {round}: {} / {}", a.1, b.1);
    }
    let (intact, report) = c.verify();
    assert!(intact, "{report}");
}

/// Tokenize and reveal traffic on both nodes at once: afterwards the one audit chain verifies
/// and holds every request's entries.
#[tokio::test]
async fn concurrent_load_on_both_nodes_leaves_one_chain_that_verifies() {
    let c = Cluster::new("nodes-chain");
    let ks = key_set(&c.http, c.base(0)).await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let envelopes: Vec<String> = (0..10)
            .map(|i| {
                seal_to(
                    &ks,
                    FieldKind::Email,
                    &format!("w{w}i{i}@example.com"),
                    ks.server_time(),
                )
            })
            .collect();
        let (http, base, checkout, payments) = (
            c.http.clone(),
            c.base(w % 2).to_owned(),
            c.checkout.clone(),
            c.payments.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut stored = 0;
            for env in envelopes {
                let body: Value = http
                    .post(format!("{base}/v1/tokenize"))
                    .bearer_auth(&checkout)
                    .json(&json!({ "items": [{ "envelope": env }] }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let token = body["results"][0]["token"].as_str().unwrap().to_owned();
                let revealed: Value = http
                    .post(format!("{base}/v1/detokenize"))
                    .bearer_auth(&payments)
                    .json(&json!({ "tokens": [token], "purpose": PURPOSE }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(revealed["results"][0]["value"].is_string(), "{revealed}");
                stored += 1;
            }
            stored
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    assert_eq!(stored, 80);
    let (intact, report) = c.verify();
    assert!(intact, "{report}");
}

/// Operator changes made with the CLI (on any host, against the shared database) reach both
/// nodes: a new API key and a revocation at once, a rotated HPKE key within 5 seconds.
#[tokio::test]
async fn operator_changes_reach_every_node() {
    let c = Cluster::new("nodes-admin");
    let env = c.seal(FieldKind::Email, "ops@example.com").await;
    let token = c.tokenize(0, &env).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let support = ok(&vault(&c.dir, &["apikey", "create", "--role", "support"]))
        .trim()
        .to_owned();
    for node in 0..2 {
        let (status, body) = c.reveal(node, &support, &token).await;
        assert_eq!(
            status, 200,
            "a new key works on node {node} at once: {body}"
        );
    }
    ok(&vault(&c.dir, &["apikey", "revoke", &support[4..16]]));
    for node in 0..2 {
        let (status, body) = c.reveal(node, &support, &token).await;
        assert_eq!(
            status, 401,
            "a revoked key fails on node {node} at once: {body}"
        );
    }

    let before = key_set(&c.http, c.base(0))
        .await
        .primary()
        .kid
        .as_str()
        .to_owned();
    ok(&vault(&c.dir, &["keys", "rotate"]));
    let rotated = Instant::now();
    for node in 0..2 {
        loop {
            let now = key_set(&c.http, c.base(node))
                .await
                .primary()
                .kid
                .as_str()
                .to_owned();
            if now != before {
                break;
            }
            assert!(
                rotated.elapsed() < Duration::from_secs(6),
                "node {node} still publishes the old key"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Envelopes sealed to the new key open on either node.
    let env = c.seal(FieldKind::Email, "after-rotation@example.com").await;
    assert_eq!(c.tokenize(1, &env).await["ok"], true);
    let (intact, report) = c.verify();
    assert!(intact, "{report}");
}

/// `policy load` on one host: both running nodes apply the new roles within 5 seconds (here:
/// payments may no longer reveal e-mail addresses, not even masked), and audit that they did.
#[tokio::test]
async fn a_stored_policy_reaches_every_node() {
    let c = Cluster::new("nodes-policy");
    let env = c.seal(FieldKind::Email, "policy@example.com").await;
    let token = c.tokenize(0, &env).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for node in 0..2 {
        let (_, body) = c.reveal(node, &c.payments, &token).await;
        assert_eq!(body["results"][0]["ok"], true, "{body}");
    }
    let file = c.dir.join("policy.toml");
    std::fs::write(
        &file,
        "[roles.checkout]\ntokenize = [\"*\"]\n\n[roles.payments]\nreveal_plain = [\"pan\"]\n",
    )
    .unwrap();
    let stored = ok(&vault(&c.dir, &["policy", "load", file.to_str().unwrap()]));
    assert!(stored.contains("sha256"), "{stored}");
    let loaded = Instant::now();
    for node in 0..2 {
        loop {
            let (status, body) = c.reveal(node, &c.payments, &token).await;
            if status == 403 || body["results"][0]["ok"] == false {
                break;
            }
            assert!(
                loaded.elapsed() < Duration::from_secs(6),
                "node {node} still applies the old policy: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let shown = ok(&vault(&c.dir, &["policy", "show"]));
    assert!(shown.contains("of audit entry"), "{shown}");
    let (intact, report) = c.verify();
    assert!(intact, "{report}");
}

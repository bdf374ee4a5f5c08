//! A real vault on 127.0.0.1 (port 0) over a real SQLite file in a fresh directory, API keys for
//! each role, and helpers that seal envelopes with fieldseal-core as a browser would.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod bin;
pub mod certs;
pub mod hsm;
pub mod relay;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use base64ct::{Base64UrlUnpadded, Encoding};
use fieldseal_core::envelope::{FieldKind, Hints, PreparedContext, SealParams};
use fieldseal_core::keyset::KeySet;
use fieldseal_vault::AnyStore;
use fieldseal_vault::admin::{self, Admin};
use fieldseal_vault::config::Settings;
use fieldseal_vault::http;
use fieldseal_vault::store::Store;
use fieldseal_vault::store::audit::AuditRecord;
use fieldseal_vault::vault::Vault;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const MASTER_KEY: [u8; 32] = [42; 32];

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "fieldseal-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn settings(dir: &Path) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        master_key: Some(Base64UrlUnpadded::encode_string(&MASTER_KEY).into()),
        ..Settings::default()
    }
}

/// Initializes a vault in `dir` and creates one API key per role (plus one revoked key).
pub async fn init(dir: &Path) -> Keys {
    init_with(&settings(dir)).await
}

/// A vault initialized with `s` (another database, say), and an API key of each role.
#[allow(dead_code)]
pub async fn init_with(s: &Settings) -> Keys {
    admin::init(s).await.unwrap();
    let admin = Admin::open(s).await.unwrap();
    let mut out = Keys::default();
    for role in ["checkout", "support", "payments", "auditor", "revoked"] {
        let as_role = if role == "revoked" { "payments" } else { role };
        let k = admin.create_api_key(as_role, role, None).await.unwrap();
        if role == "revoked" {
            admin.revoke_api_key(&k.id).await.unwrap();
        }
        match role {
            "checkout" => out.checkout = k.full,
            "support" => out.support = k.full,
            "payments" => out.payments = k.full,
            "auditor" => out.auditor = k.full,
            _ => out.revoked = k.full,
        }
    }
    out
}

#[derive(Default, Clone)]
pub struct Keys {
    pub checkout: String,
    pub support: String,
    pub payments: String,
    pub auditor: String,
    pub revoked: String,
}

/// The key set a server at `base` publishes, as served.
pub async fn key_set_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/v1/keys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The key set a server at `base` publishes.
pub async fn key_set(http: &reqwest::Client, base: &str) -> KeySet {
    KeySet::parse(&key_set_text(http, base).await).unwrap()
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server.
pub struct Server {
    pub base: String,
    pub vault: Arc<Vault<AnyStore>>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(settings(dir)).await
    }

    pub async fn start_with(s: Settings) -> Self {
        let vault = Arc::new(Vault::open(s).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, Arc::clone(&vault), async {
            let _ = rx.await;
        }));
        Self {
            base,
            vault,
            client: reqwest::Client::new(),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful shutdown; waits for the server to finish.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn key_set(&self) -> KeySet {
        key_set(&self.client, &self.base).await
    }

    /// POST /v1/tokenize with `key`; returns status and body.
    pub async fn tokenize(&self, key: &str, items: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/v1/tokenize"))
            .bearer_auth(key)
            .json(&json!({ "items": items }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// GET `path` with `key`; returns status and body.
    pub async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn detokenize(&self, key: &str, tokens: &[&str], purpose: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/v1/detokenize"))
            .bearer_auth(key)
            .json(&json!({ "tokens": tokens, "purpose": purpose }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, key: &str, token: &str) -> u16 {
        self.client
            .delete(self.url(&format!("/v1/tokens/{token}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Seals `value` as the page would, to the served key set's primary key.
    pub async fn seal(&self, kind: FieldKind, value: &str) -> String {
        let ks = self.key_set().await;
        seal_to(&ks, kind, value, ks.server_time())
    }

    /// Tokenizes one value with the checkout key and returns the result object.
    pub async fn tokenize_value(
        &self,
        keys: &Keys,
        kind: FieldKind,
        value: &str,
        format: &str,
    ) -> Value {
        let env = self.seal(kind, value).await;
        let (status, body) = self
            .tokenize(
                &keys.checkout,
                json!([{ "envelope": env, "format": format }]),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["results"][0].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn seal_to(ks: &KeySet, kind: FieldKind, value: &str, created_at: u64) -> String {
    let mut params = SealParams::new(kind, created_at);
    if kind == FieldKind::Pan {
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        params.hints = Hints {
            brand: fieldseal_core::card::detect_brand(&digits),
            bin: Some(digits[..6].into()),
            last4: Some(digits[digits.len() - 4..].into()),
        };
    }
    PreparedContext::prepare(ks.primary())
        .unwrap()
        .seal(value.as_bytes(), &params)
        .unwrap()
}

/// The whole audit log.
pub async fn audit_all(store: &impl Store) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    loop {
        let page = store
            .audit_log(out.last().map_or(0, |e| e.seq), 500)
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Operator actions on the vault a server runs, over the same store.
pub async fn admin_of(s: &Server) -> Admin<AnyStore> {
    let settings = s.vault.settings().clone();
    Admin::with_store(s.vault.store().clone(), settings, s.vault.kek())
        .await
        .unwrap()
}

/// Creates an API key for `role` in the vault the settings describe.
pub async fn add_key(s: &Settings, role: &str) -> String {
    Admin::open(s)
        .await
        .unwrap()
        .create_api_key(role, "", None)
        .await
        .unwrap()
        .full
}

/// The settings of `dir` with a policy file holding `policy`.
pub fn settings_with_policy(dir: &Path, policy: &str) -> Settings {
    let file = dir.join("policy.toml");
    std::fs::write(&file, policy).unwrap();
    Settings {
        policy_file: Some(file),
        ..settings(dir)
    }
}

/// The built-in policy with `role`'s table extended by `lines` (TOML keys of that role).
pub fn policy_granting(role: &str, lines: &str) -> String {
    let header = format!("[roles.{role}]\n");
    assert!(fieldseal_vault::policy::DEFAULT_POLICY.contains(&header));
    fieldseal_vault::policy::DEFAULT_POLICY.replace(&header, &format!("{header}{lines}\n"))
}

/// How many denials an audit entry stands for: one, or the count of a per-minute summary
/// (`N more failed authentications from ...`).
pub fn denials_in(e: &AuditRecord) -> u64 {
    e.detail
        .split_once(" more ")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(1)
}

/// The built-in policy without its rate limits or reveal anomaly limits, for tests about
/// something else.
pub fn policy_without_rates() -> String {
    let roles = fieldseal_vault::policy::DEFAULT_POLICY
        .lines()
        .map(|l| match l.split_once(" = {") {
            Some((name, _)) if name.starts_with("rate.") => {
                format!("{name} = {{ unlimited = true }}")
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    // Nor reveal anomaly limits: a load test's reveals look like a sweep.
    format!("{roles}\n[anomaly]\nenabled = false\n")
}

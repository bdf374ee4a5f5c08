//! Security alerts posted to a webhook: a real HTTP receiver on 127.0.0.1 (a Tokio listener
//! reading HTTP/1.1), real vaults (SQLite, and PostgreSQL behind a TCP relay the test cuts), and
//! the events raised by tampering with the database as an attacker would. The receiver is in
//! `common::webhook`; `cli::drill_a_suspected_insider` also takes a lockout alert from the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::webhook::{Receiver, expected_signature};
use common::{Server, TempDir};
use fieldseal_core::envelope::FieldKind;
use fieldseal_core::secret::SecretValue;
use fieldseal_vault::alerts::{Alert, AlertKind};
use fieldseal_vault::config::{SecretText, Settings};
use fieldseal_vault::keys::{KekProvider, KeyError};
use fieldseal_vault::policy::Policy;
use fieldseal_vault::vault::{self, Vault};
use serde_json::Value;
use tokio::net::TcpListener;

const SECRET: &str = "whsec-test-0123456789abcdef";
const VISA: &str = "4111111111111111";

/// The settings of the vault in `dir` posting alerts to `url`, with sub-second retries.
fn settings(dir: &Path, url: &str) -> Settings {
    Settings {
        alert_webhook_url: Some(url.to_owned()),
        alert_webhook_secret: Some(SecretText::new(SECRET.into())),
        alert_retry_initial_ms: 100,
        alert_retry_max_secs: 1,
        alert_max_attempts: 5,
        alert_node_name: Some("node-a".into()),
        ..common::settings(dir)
    }
}

async fn metric(vault: &Vault<fieldseal_vault::AnyStore>, line: &str) -> bool {
    vault.metrics_text().await.unwrap().contains(line)
}

#[tokio::test]
async fn an_alert_is_signed_with_the_secret_and_fails_with_another() {
    let hook = Receiver::start(&[]).await;
    let tmp = TempDir::new("alerts-sign");
    common::init(&tmp.0).await;
    let server = Server::start_with(settings(&tmp.0, &hook.url)).await;
    server.vault.alert(Alert::new(
        AlertKind::Lockout,
        "apikey:0123456789ab",
        "API key 0123456789ab locked: reveal rate anomaly",
    ));
    let r = hook.wait("lockout", 1, 10).await.remove(0);
    let body = r.json();
    assert_eq!(body["subject"], "apikey:0123456789ab");
    assert_eq!(
        body["message"],
        "API key 0123456789ab locked: reveal rate anomaly"
    );
    assert_eq!(
        (&body["node"], &body["vault"]),
        (&"node-a".into(), &"fieldseal".into())
    );
    let id = body["id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let at = body["at"].as_i64().unwrap();
    assert!((vault::now() - at).abs() < 60, "{body}");
    assert_eq!(r.header("Content-Type"), "application/json");
    let ts: i64 = r.header("X-Fieldseal-Timestamp").parse().unwrap();
    assert!((vault::now() - ts).abs() < 60);
    // The receiver's check: the same HMAC under the shared secret, and not under another.
    assert_eq!(
        r.header("X-Fieldseal-Signature"),
        expected_signature(SECRET, &r)
    );
    assert_ne!(
        r.header("X-Fieldseal-Signature"),
        expected_signature("whsec-someone-else-000000", &r)
    );
    // A body changed in transit no longer matches.
    let mut forged = r.clone();
    forged.body = String::from_utf8(r.body.clone())
        .unwrap()
        .replace("apikey:", "operator:")
        .into_bytes();
    assert_ne!(
        r.header("X-Fieldseal-Signature"),
        expected_signature(SECRET, &forged)
    );
    assert!(
        metric(
            &server.vault,
            "fieldseal_alerts_sent_total{kind=\"lockout\"} 1"
        )
        .await
    );
}

#[tokio::test]
async fn a_refused_post_is_retried_with_backoff_until_accepted() {
    let hook = Receiver::start(&[500, 500, 200]).await;
    let tmp = TempDir::new("alerts-retry");
    common::init(&tmp.0).await;
    let s = Settings {
        alert_retry_initial_ms: 200,
        ..settings(&tmp.0, &hook.url)
    };
    let server = Server::start_with(s).await;
    server
        .vault
        .alert(Alert::new(AlertKind::Lockout, "operator:alice", "locked"));
    let got = hook.wait("lockout", 3, 10).await;
    // One alert, three attempts: the same id, each attempt signed afresh.
    let ids: Vec<Value> = got.iter().map(|r| r.json()["id"].clone()).collect();
    assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
    for r in &got {
        assert_eq!(
            r.header("X-Fieldseal-Signature"),
            expected_signature(SECRET, r)
        );
    }
    // Waits of 200 ms then 400 ms, less up to half of each as jitter.
    let first = got[1].at - got[0].at;
    let second = got[2].at - got[1].at;
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert!(second >= Duration::from_millis(200), "{second:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.of("lockout").len(), 3, "accepted on the third attempt");
    assert!(
        metric(
            &server.vault,
            "fieldseal_alerts_sent_total{kind=\"lockout\"} 1"
        )
        .await
    );
    assert!(
        !metric(
            &server.vault,
            "fieldseal_alerts_failed_total{kind=\"lockout\"}"
        )
        .await
    );
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_the_alert() {
    // A port nothing listens on, for now.
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/fieldseal");
    let tmp = TempDir::new("alerts-down");
    common::init(&tmp.0).await;
    let s = Settings {
        alert_max_attempts: 30,
        ..settings(&tmp.0, &url)
    };
    let server = Server::start_with(s).await;
    server.vault.alert(Alert::new(
        AlertKind::KeyExpiring,
        "apikey:00aa00aa00aa",
        "expires soon",
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let hook = Receiver::on(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), &[]);
    let r = hook.wait("key_expiring", 1, 10).await.remove(0);
    assert_eq!(r.json()["subject"], "apikey:00aa00aa00aa");
    assert!(
        metric(
            &server.vault,
            "fieldseal_alerts_sent_total{kind=\"key_expiring\"} 1"
        )
        .await
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_and_requests_go_on() {
    let port = common::free_port();
    let tmp = TempDir::new("alerts-full");
    let keys = common::init(&tmp.0).await;
    let s = Settings {
        alert_queue_size: 2,
        alert_retry_initial_ms: 30_000,
        alert_retry_max_secs: 60,
        ..settings(&tmp.0, &format!("http://127.0.0.1:{port}/hooks/fieldseal"))
    };
    let server = Server::start_with(s).await;
    let started = Instant::now();
    for i in 0..50 {
        server.vault.alert(Alert::new(
            AlertKind::Lockout,
            format!("apikey:{i:012}"),
            "locked",
        ));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "alert() never waits"
    );
    // One alert being posted (waiting 30 s to retry), two queued, the rest dropped.
    let text = server.vault.metrics_text().await.unwrap();
    let dropped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("fieldseal_alerts_dropped_total{kind=\"lockout\"} "))
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    assert!((47..=48).contains(&dropped), "{dropped}");
    // Requests are answered as usual meanwhile.
    let started = Instant::now();
    let t = server
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    assert!(t["token"].is_string(), "{t}");
    let (status, body) = server
        .detokenize(&keys.payments, &[t["token"].as_str().unwrap()], "alerts")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_tampered_token_row_raises_one_integrity_failure() {
    let hook = Receiver::start(&[]).await;
    let tmp = TempDir::new("alerts-integrity");
    let keys = common::init(&tmp.0).await;
    let server = Server::start_with(settings(&tmp.0, &hook.url)).await;
    let t = server
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    let token = t["token"].as_str().unwrap().to_owned();
    // A database writer relabels the row (as `name` it would be revealed unmasked to more roles).
    let db = rusqlite::Connection::open(tmp.0.join("vault.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE tokens SET kind = 'name' WHERE token = ?1",
        [token.as_str()],
    )
    .unwrap();
    for _ in 0..3 {
        let (status, body) = server.detokenize(&keys.payments, &[&token], "alerts").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["error"]["code"], "not_found", "{body}");
    }
    let r = hook.wait("integrity_failure", 1, 10).await.remove(0);
    assert_eq!(r.json()["subject"], format!("token:{token}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.of("integrity_failure").len(), 1, "once per row");
}

#[tokio::test]
async fn an_edited_audit_entry_raises_audit_chain_broken_exactly_once() {
    let hook = Receiver::start(&[]).await;
    let tmp = TempDir::new("alerts-audit");
    common::init(&tmp.0).await;
    // Edited while the vault is stopped: the entry's hash no longer matches its contents.
    let db = rusqlite::Connection::open(tmp.0.join("vault.db")).unwrap();
    db.execute(
        "UPDATE audit SET detail = 'nothing to see' WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(db);
    let server = Server::start_with(settings(&tmp.0, &hook.url)).await;
    // The first upkeep round (at start) verifies the log.
    let r = hook.wait("audit_chain_broken", 1, 10).await.remove(0);
    let body = r.json();
    assert_eq!(body["subject"], "audit:3", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("contents do not match"),
        "{body}"
    );
    // Later rounds find the same break: no second alert.
    server.vault.watch().await;
    server.vault.watch().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.of("audit_chain_broken").len(), 1);
}

#[tokio::test]
async fn an_entry_edited_after_the_last_round_is_caught_by_the_next() {
    let hook = Receiver::start(&[]).await;
    let tmp = TempDir::new("alerts-audit-new");
    let keys = common::init(&tmp.0).await;
    let server = Server::start_with(settings(&tmp.0, &hook.url)).await;
    server.vault.watch().await;
    // New entries after the last verified one; the newest but one is edited.
    server
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    server
        .tokenize_value(&keys, FieldKind::Pan, "5555555555554444", "random")
        .await;
    let db = rusqlite::Connection::open(tmp.0.join("vault.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let seq: i64 = db
        .query_row("SELECT max(seq) - 1 FROM audit", [], |r| r.get(0))
        .unwrap();
    db.execute("UPDATE audit SET purpose = 'routine' WHERE seq = ?1", [seq])
        .unwrap();
    server.vault.watch().await;
    let r = hook.wait("audit_chain_broken", 1, 10).await.remove(0);
    assert_eq!(r.json()["subject"], format!("audit:{seq}"));
}

#[tokio::test]
async fn an_hpke_key_expiring_with_no_successor_raises_key_expiring() {
    let hook = Receiver::start(&[]).await;
    let tmp = TempDir::new("alerts-expiry");
    // Keys made to live 3 days; the vault serves without scheduled rotation.
    let made = Settings {
        key_lifetime_days: 3,
        ..common::settings(&tmp.0)
    };
    let keys = common::init_with(&made).await;
    let _ = keys;
    let admin = fieldseal_vault::admin::Admin::open(&made).await.unwrap();
    let api = admin
        .create_api_key("checkout", "expiring", Some(2))
        .await
        .unwrap();
    drop(admin);
    let s = Settings {
        key_lifetime_days: 0,
        alert_key_expiry_days: 7,
        ..settings(&tmp.0, &hook.url)
    };
    let server = Server::start_with(s).await;
    let kid = server.key_set().await.primary().kid.to_string();
    let got = hook.wait("key_expiring", 2, 10).await;
    let subjects: Vec<Value> = got.iter().map(|r| r.json()["subject"].clone()).collect();
    assert!(
        subjects.contains(&format!("hpke:{kid}").into()),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&format!("apikey:{}", api.id).into()),
        "{subjects:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.of("key_expiring").len(), 2, "once per key");
}

/// A KEK provider whose backend (an HSM, say) can be taken away and given back.
struct Switchable {
    inner: Arc<dyn KekProvider>,
    away: AtomicBool,
}

impl Switchable {
    fn check(&self) -> Result<(), KeyError> {
        if self.away.load(Ordering::SeqCst) {
            Err(KeyError::KekUnavailable("the token does not answer".into()))
        } else {
            Ok(())
        }
    }
}

impl KekProvider for Switchable {
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.check()?;
        self.inner.wrap(plaintext, aad)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<SecretValue, KeyError> {
        self.check()?;
        self.inner.unwrap(wrapped, aad)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[tokio::test]
async fn the_kek_lost_and_back_raises_one_alert_each() {
    let hook = Receiver::start(&[]).await;
    let tmp = TempDir::new("alerts-kek");
    common::init(&tmp.0).await;
    let mut s = settings(&tmp.0, &hook.url);
    let store = vault::open_store(&s).await.unwrap();
    let kek = Arc::new(Switchable {
        inner: vault::kek_from_settings(&mut s).unwrap(),
        away: AtomicBool::new(false),
    });
    let vault = Vault::with_store(store, s, Policy::load(None).unwrap(), kek.clone())
        .await
        .unwrap();
    kek.away.store(true, Ordering::SeqCst);
    // Each upkeep round reloads the keys; the loss is alerted once.
    for _ in 0..3 {
        assert!(vault.reload_keys().await.is_err());
    }
    let r = hook.wait("kek_unreachable", 1, 10).await.remove(0);
    assert_eq!(r.json()["subject"], "kek");
    kek.away.store(false, Ordering::SeqCst);
    vault.reload_keys().await.unwrap();
    vault.reload_keys().await.unwrap();
    hook.wait("kek_recovered", 1, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.of("kek_unreachable").len(), 1);
    assert_eq!(hook.of("kek_recovered").len(), 1);
}

#[tokio::test]
async fn the_database_lost_and_back_raises_one_alert_each() {
    let hook = Receiver::start(&[]).await;
    let tmp = TempDir::new("alerts-db");
    let schema = fieldseal_vault_postgres::testing::TestSchema::new();
    let (relay, through) = common::relay::to_test_postgres().await;
    let url = fieldseal_vault_postgres::testing::url_with_schema(&through, schema.name());
    let s = Settings {
        database_url: Some(url),
        database_timeout_ms: 1000,
        ..settings(&tmp.0, &hook.url)
    };
    common::init_with(&s).await;
    let vault = Vault::open(s).await.unwrap();
    vault.watch().await;
    relay.cut();
    vault.watch().await;
    vault.watch().await;
    let r = hook.wait("storage_unavailable", 1, 10).await.remove(0);
    assert_eq!(r.json()["subject"], "storage");
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.of("storage_recovered").is_empty() {
        assert!(Instant::now() < deadline, "no recovery alert");
        vault.watch().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    vault.watch().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.of("storage_unavailable").len(), 1);
    assert_eq!(hook.of("storage_recovered").len(), 1);
}

#[tokio::test]
async fn a_plain_http_webhook_off_loopback_or_without_a_secret_stops_the_start() {
    let tmp = TempDir::new("alerts-settings");
    common::init(&tmp.0).await;
    let off = Settings {
        alert_webhook_url: Some("http://192.0.2.1/hook".into()),
        ..settings(&tmp.0, "")
    };
    let err = Vault::open(off).await.err().unwrap().to_string();
    assert!(err.contains("plain http://"), "{err}");
    let unsigned = Settings {
        alert_webhook_secret: None,
        ..settings(&tmp.0, "http://127.0.0.1:9/hook")
    };
    let err = Vault::open(unsigned).await.err().unwrap().to_string();
    assert!(err.contains("no secret"), "{err}");
    assert!(!err.contains(SECRET));
}

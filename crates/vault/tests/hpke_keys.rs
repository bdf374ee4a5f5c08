//! The HPKE key pairs' life: scheduled rotation with the next key published ahead, retirement of
//! any key (expired or not; with a grace period, or at once for a compromised key), and envelopes
//! sealed to a key past its expiry refused as `expired_key`. A real vault over real SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Keys, Server, TempDir, audit_all, init, seal_to};
use fieldseal_core::ecdh::PublicKey;
use fieldseal_core::envelope::FieldKind;
use fieldseal_core::keyset::{KeyId, KeySet, RecipientKey};
use fieldseal_vault::keys;
use fieldseal_vault::store::Store;
use fieldseal_vault::store::audit::Actor;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn now() -> i64 {
    fieldseal_vault::vault::now()
}

async fn setup(tag: &str) -> (TempDir, Keys, Server) {
    let dir = TempDir::new(tag);
    let keys = init(&dir.0).await;
    let server = Server::start(&dir.0).await;
    (dir, keys, server)
}

/// A key set holding only the stored key `kid`, as a page that loaded it while it was valid.
async fn key_set_of(s: &Server, kid: &str) -> KeySet {
    let row = s
        .vault
        .store()
        .hpke_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == kid)
        .unwrap();
    let key = RecipientKey {
        kid: KeyId::new(kid).unwrap(),
        public_key: PublicKey::from_sec1(&row.public_key).unwrap(),
        not_before: u64::try_from(row.not_before).unwrap(),
        expires: u64::try_from(row.expires_at).unwrap(),
    };
    KeySet::new(vec![key], u64::try_from(row.not_before).unwrap()).unwrap()
}

#[tokio::test]
async fn an_expired_key_is_refused_as_expired_key_and_can_be_retired() {
    let (_dir, keys, s) = setup("hpke-expired").await;
    // A key made ten days ago with a one-day lifetime: expired nine days ago.
    let store = s.vault.store();
    let kek = s.vault.kek();
    let secrets = keys::load_secrets(store, kek.as_ref()).await.unwrap();
    let made = now() - 10 * 86_400;
    let old = keys::rotate(
        store,
        kek.as_ref(),
        &secrets.row_key,
        made,
        (86_400, 0),
        Actor::Cli,
    )
    .await
    .unwrap();
    s.vault.reload_keys().await.unwrap();
    // It is not published, and an envelope sealed to it now (a page holding a stale key set) is
    // refused by name.
    assert!(
        !s.key_set()
            .await
            .keys()
            .iter()
            .any(|k| k.kid.as_str() == old)
    );
    let stale = key_set_of(&s, &old).await;
    let envelope = seal_to(
        &stale,
        FieldKind::Pan,
        "4111111111111111",
        u64::try_from(now()).unwrap(),
    );
    let (_, body) = s
        .tokenize(&keys.checkout, json!([{ "envelope": envelope }]))
        .await;
    assert_eq!(code(&body["results"][0]), "expired_key", "{body}");

    // `keys retire` works on it (it used to answer "unknown key").
    let admin = common::admin_of(&s).await;
    admin.retire_key_now(&old).await.unwrap();
    let listed = admin.keys().await.unwrap();
    let status = listed.iter().find(|k| k.kid == old).unwrap().status;
    assert_eq!(status, "retired");
    assert!(admin.retire_key(&old).await.is_err(), "retired twice");
    let entries = audit_all(store).await;
    assert!(
        entries
            .iter()
            .any(|e| e.action == "key.retire" && e.detail == old)
    );
}

#[tokio::test]
async fn retiring_keeps_opening_for_the_freshness_window_and_now_stops_at_once() {
    let (_dir, keys, s) = setup("hpke-retire").await;
    let admin = common::admin_of(&s).await;
    let first = s.key_set().await;
    let first_kid = first.primary().kid.as_str().to_owned();
    let sealed_before = seal_to(&first, FieldKind::Name, "Jane Doe", first.server_time());
    admin.rotate_key().await.unwrap();
    admin.retire_key(&first_kid).await.unwrap();
    s.vault.reload_keys().await.unwrap();
    // Unpublished at once, still opening what pages sealed just before.
    let ks = s.key_set().await;
    assert!(!ks.keys().iter().any(|k| k.kid.as_str() == first_kid));
    let (_, body) = s
        .tokenize(&keys.checkout, json!([{ "envelope": sealed_before }]))
        .await;
    assert_eq!(body["results"][0]["ok"], true, "{body}");
    let listed = admin.keys().await.unwrap();
    assert_eq!(
        listed.iter().find(|k| k.kid == first_kid).unwrap().status,
        "retiring"
    );
    // Found compromised meanwhile: `--now` brings the end forward; a second plain retire is
    // refused by name.
    let again = admin.retire_key(&first_kid).await.unwrap_err().to_string();
    assert!(again.contains("already retiring"), "{again}");
    let sealed_before2 = seal_to(&first, FieldKind::Name, "Jane Doe", first.server_time());
    admin.retire_key_now(&first_kid).await.unwrap();
    s.vault.reload_keys().await.unwrap();
    let (_, body) = s
        .tokenize(&keys.checkout, json!([{ "envelope": sealed_before2 }]))
        .await;
    assert_eq!(code(&body["results"][0]), "unknown_key", "{body}");

    // A compromised key: `--now` stops it at once.
    let second = ks.primary().kid.as_str().to_owned();
    let sealed = seal_to(&ks, FieldKind::Name, "Jane Doe", ks.server_time());
    admin.rotate_key().await.unwrap();
    admin.retire_key_now(&second).await.unwrap();
    s.vault.reload_keys().await.unwrap();
    let (_, body) = s
        .tokenize(&keys.checkout, json!([{ "envelope": sealed }]))
        .await;
    assert_eq!(code(&body["results"][0]), "unknown_key", "{body}");
}

#[tokio::test]
async fn the_schedule_publishes_the_next_key_ahead_of_use_once() {
    let dir = TempDir::new("hpke-schedule");
    let keys = init(&dir.0).await;
    // The default schedule (365 days, published a week ahead) has nothing to do on a new vault.
    let s = Server::start(&dir.0).await;
    assert_eq!(s.vault.rotate_on_schedule().await.unwrap(), None);
    s.stop().await;

    // Keys published 200 days ahead: the current key (365 days) has less than twice that left.
    let mut settings = common::settings(&dir.0);
    settings.key_publish_ahead_hours = 200 * 24;
    let s = Server::start_with(settings).await;
    let before = s.key_set().await;
    let next = s.vault.rotate_on_schedule().await.unwrap().expect("due");
    let ks = s.key_set().await;
    let published = ks.keys().iter().find(|k| k.kid.as_str() == next).unwrap();
    assert!(
        published.not_before >= ks.server_time() + 199 * 86_400,
        "nbf ahead"
    );
    // The current key stays the primary until the next key's nbf.
    assert_eq!(ks.primary().kid, before.primary().kid);
    // Once made, the next key is not made again.
    assert_eq!(s.vault.rotate_on_schedule().await.unwrap(), None);
    let rotations: Vec<_> = audit_all(s.vault.store())
        .await
        .into_iter()
        .filter(|e| e.action == "key.rotate" && e.actor == "vault")
        .collect();
    assert_eq!(rotations.len(), 1);
    // Sealing still works against what is published.
    let r = s
        .tokenize_value(&keys, FieldKind::Email, "a@example.com", "random")
        .await;
    assert_eq!(r["ok"], true);
}

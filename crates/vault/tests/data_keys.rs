//! Versioned data keys on a real vault over real SQLite: new values use the newest key; stored
//! values move to it in bounded batches while reveals run (none fails); a key is replaced before
//! its encryption limit, counted in the database.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{Keys, Server, TempDir, audit_all, init, seal_to};
use fieldseal_core::envelope::FieldKind;
use fieldseal_vault::store::Store;
use serde_json::{Value, json};

/// A Visa test number (Luhn-valid) made from `prefix` (one digit) and `n`.
fn card(prefix: u32, n: usize) -> String {
    let body = format!("4{prefix}{n:013}");
    let sum: u32 = body
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).unwrap();
            if i % 2 == 0 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Tokenizes `n` distinct card numbers, 100 per request; returns (token, value) pairs.
async fn fill(s: &Server, keys: &Keys, tag: u32, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let ks = s.key_set().await;
        let values: Vec<String> = (i..n.min(i + 100)).map(|j| card(tag, j)).collect();
        let items: Vec<Value> = values
            .iter()
            .map(|v| json!({ "envelope": seal_to(&ks, FieldKind::Pan, v, ks.server_time()) }))
            .collect();
        let (status, body) = s.tokenize(&keys.checkout, json!(items)).await;
        assert_eq!(status, 200, "{body}");
        for (r, v) in body["results"].as_array().unwrap().iter().zip(values) {
            out.push((r["token"].as_str().unwrap().to_owned(), v));
        }
        i += 100;
    }
    out
}

/// `token`'s stored row.
async fn stored(s: &Server, token: &str) -> fieldseal_vault::store::TokenRecord {
    s.vault.store().token(token, 0).await.unwrap().unwrap()
}

/// The stored subject hash of `token`'s value.
async fn subject_of(s: &Server, token: &str) -> String {
    stored(s, token).await.subject.unwrap()
}

/// The data key version the value of `token` is stored under.
async fn data_key_of(s: &Server, token: &str) -> i64 {
    stored(s, token).await.data_key_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn values_move_to_a_new_data_key_in_batches_while_no_reveal_fails() {
    let dir = TempDir::new("datakey-move");
    let keys = init(&dir.0).await;
    let mut settings = common::settings(&dir.0);
    settings.reencrypt_batch_size = 25;
    settings.reencrypt_batches = 1;
    // The load below is far over a payments key's reveal rate and looks like a sweep: lift the
    // rate and the anomaly limits for this test.
    let policy = dir.0.join("policy.toml");
    std::fs::write(
        &policy,
        fieldseal_vault::policy::DEFAULT_POLICY.replace(
            "rate.reveal = { per_minute = 600, burst = 100 }",
            "rate.reveal = { per_minute = 6000000, burst = 1000000 }",
        ) + "\n[anomaly]\nenabled = false\n",
    )
    .unwrap();
    settings.policy_file = Some(policy);
    let s = Arc::new(Server::start_with(settings).await);
    let stored = Arc::new(fill(&s, &keys, 1, 300).await);
    let admin = common::admin_of(&s).await;
    assert_eq!(admin.rotate_data_key().await.unwrap(), 2);
    // The node takes the new key up in its next upkeep round (every 5 seconds when serving),
    // which also moves the first batch.
    let first = s.vault.maintain_data_keys().await.unwrap();
    assert_eq!((first.current, first.moved, first.left), (2, 25, 275));
    let mut rounds = vec![first];

    // Reveals under load, on four tasks, for the whole re-encryption.
    let stop = Arc::new(AtomicBool::new(false));
    let (revealed, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (s, stored, stop) = (Arc::clone(&s), Arc::clone(&stored), Arc::clone(&stop));
        let (revealed, failed) = (Arc::clone(&revealed), Arc::clone(&failed));
        let payments = keys.payments.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t * 7;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<&str> = (0..10)
                    .map(|k| stored[(i + k * 31) % stored.len()].0.as_str())
                    .collect();
                let (status, body) = s
                    .detokenize(&payments, &batch, "load during rotation")
                    .await;
                for (k, r) in body["results"].as_array().into_iter().flatten().enumerate() {
                    let want = &stored[(i + k * 31) % stored.len()].1;
                    if status == 200 && r["value"] == json!(want) {
                        revealed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failure: {status} {r} want {want}");
                        }
                    }
                }
                if status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    // New values use the new key at once, while old ones move.
    let fresh = fill(&s, &keys, 2, 10).await;
    assert_eq!(data_key_of(&s, &fresh[0].0).await, 2);

    loop {
        let p = s.vault.maintain_data_keys().await.unwrap();
        assert!(p.moved <= 25, "a batch is bounded: {p:?}");
        if rounds.len() == 3 {
            // Progress is visible to the operator.
            let status = admin.inventory().await.unwrap();
            let old = status.iter().find(|k| k.id == "data-key:1").unwrap();
            assert!(old.state.starts_with("re-encrypting"), "{}", old.state);
        }
        rounds.push(p);
        if p.left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        rounds.len() >= 12,
        "300 values in batches of 25: {rounds:?}"
    );
    assert_eq!(rounds.iter().map(|r| r.moved).sum::<u64>(), 300);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a reveal failed during re-encryption"
    );
    assert!(revealed.load(Ordering::Relaxed) > 100);

    let data_keys = s.vault.store().data_keys().await.unwrap();
    assert_eq!(
        data_keys
            .iter()
            .map(|k| (k.id, k.values))
            .collect::<Vec<_>>(),
        vec![(1, 0), (2, 310)]
    );
    // Every value still opens, under the new key.
    let sample: Vec<&str> = stored.iter().step_by(29).map(|(t, _)| t.as_str()).collect();
    let (_, body) = s.detokenize(&keys.payments, &sample, "check").await;
    for (r, (_, v)) in body["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(stored.iter().step_by(29))
    {
        assert_eq!(r["value"], json!(v));
    }
    let status = admin.inventory().await.unwrap();
    let old = status.iter().find(|k| k.id == "data-key:1").unwrap();
    assert_eq!(old.state, "replaced, no values");
    let entries = audit_all(s.vault.store()).await;
    assert!(
        entries
            .iter()
            .any(|e| e.action == "datakey.rotate" && e.actor == "cli")
    );
    let moved: usize = entries
        .iter()
        .filter(|e| e.action == "datakey.reencrypt")
        .count();
    assert!(moved >= 12);
}

#[tokio::test]
async fn a_data_key_is_replaced_before_its_encryption_limit() {
    let dir = TempDir::new("datakey-limit");
    let keys = init(&dir.0).await;
    let mut settings = common::settings(&dir.0);
    settings.data_key_max_encryptions = 20;
    let s = Server::start_with(settings).await;
    fill(&s, &keys, 3, 15).await;
    // Under the limit: nothing happens; the count reaches the database.
    let p = s.vault.maintain_data_keys().await.unwrap();
    assert_eq!(p.current, 1);
    assert_eq!(
        s.vault.store().data_keys().await.unwrap()[0].encryptions,
        15
    );
    fill(&s, &keys, 4, 6).await;
    let p = s.vault.maintain_data_keys().await.unwrap();
    // Replaced, and the same round moved the stored values (fewer than a round's batches).
    assert_eq!((p.current, p.moved, p.left), (2, 21, 0), "{p:?}");
    let entries = audit_all(s.vault.store()).await;
    let rotated = entries
        .iter()
        .find(|e| e.action == "datakey.rotate" && e.actor == "vault")
        .expect("audited");
    assert!(
        rotated.detail.contains("reached 20 encryptions"),
        "{}",
        rotated.detail
    );
    let fresh = fill(&s, &keys, 5, 1).await;
    assert_eq!(data_key_of(&s, &fresh[0].0).await, 2);
    assert_eq!(s.vault.store().data_keys().await.unwrap()[0].values, 0);
}

/// A data subject's values are under the subject's own key, which the data key in use wraps: a
/// data key rotation moves the other values and leaves the subject's where they are (its key stays
/// wrapped under the version that made it), every value still opens, and a subject seen after the
/// rotation gets its key wrapped under the new version.
#[tokio::test]
async fn subject_values_stay_under_their_key_through_a_data_key_rotation() {
    let dir = TempDir::new("datakey-subjects");
    let keys = init(&dir.0).await;
    let s = Server::start_with(common::settings(&dir.0)).await;
    let tokenize = |subject: Option<&'static str>, tag: u32, n: usize| {
        let (s, keys) = (&s, &keys);
        async move {
            let ks = s.key_set().await;
            let values: Vec<String> = (0..n).map(|j| card(tag, j)).collect();
            let items: Vec<Value> = values
                .iter()
                .map(|v| {
                    let envelope = seal_to(&ks, FieldKind::Pan, v, ks.server_time());
                    match subject {
                        Some(id) => json!({ "envelope": envelope, "subject": id }),
                        None => json!({ "envelope": envelope }),
                    }
                })
                .collect();
            let (status, body) = s.tokenize(&keys.checkout, json!(items)).await;
            assert_eq!(status, 200, "{body}");
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .zip(values)
                .map(|(r, v)| (r["token"].as_str().unwrap().to_owned(), v))
                .collect::<Vec<_>>()
        }
    };
    let of_subject = tokenize(Some("cust-1"), 3, 3).await;
    let plain = tokenize(None, 4, 5).await;
    let subject_hash = s
        .vault
        .store()
        .token(&of_subject[0].0, 0)
        .await
        .unwrap()
        .unwrap()
        .subject
        .unwrap();
    let admin = common::admin_of(&s).await;
    assert_eq!(admin.rotate_data_key().await.unwrap(), 2);
    let (mut moved, mut left) = (0, i64::MAX);
    for _ in 0..10 {
        let p = s.vault.maintain_data_keys().await.unwrap();
        moved += p.moved;
        left = p.left;
        if left == 0 {
            break;
        }
    }
    assert_eq!(
        (moved, left),
        (5, 0),
        "only values under a data key move, and all of them"
    );
    let wrapped = s.vault.store().subject_key(&subject_hash).await.unwrap();
    assert_eq!(
        wrapped.unwrap().data_key_id,
        1,
        "the subject key stays where it was"
    );

    let all: Vec<(String, String)> = of_subject.iter().chain(&plain).cloned().collect();
    let tokens: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
    let (status, body) = s.detokenize(&keys.payments, &tokens, "check").await;
    assert_eq!(status, 200, "{body}");
    for (r, (_, v)) in body["results"].as_array().unwrap().iter().zip(&all) {
        assert_eq!(r["value"], json!(v), "{r}");
    }

    let later = tokenize(Some("cust-2"), 5, 1).await;
    let hash = s
        .vault
        .store()
        .token(&later[0].0, 0)
        .await
        .unwrap()
        .unwrap()
        .subject
        .unwrap();
    let wrapped = s.vault.store().subject_key(&hash).await.unwrap().unwrap();
    assert_eq!(
        wrapped.data_key_id, 2,
        "a new subject key is wrapped by the newest data key"
    );
}

/// The lookup keys rotate (`keys rotate-lookup`): future fingerprints, deterministic tokens and
/// subject hashes change and name the version; lookups accept the old version, so a value keeps
/// its deterministic token and a subject its values through the rotation and a restart; erasure
/// and export find them; `keys status` lists both versions.
#[tokio::test]
async fn lookup_keys_rotate_future_values_change_and_lookups_accept_the_old_version() {
    let dir = TempDir::new("lookup-rotate");
    let settings = common::settings_with_policy(
        &dir.0,
        &common::policy_granting("checkout", "fingerprint = [\"*\"]\ndeterministic = [\"*\"]"),
    );
    let keys = common::init_with(&settings).await;
    let privacy = common::add_key(&settings, "privacy").await;
    let s = Server::start_with(settings.clone()).await;
    let visa = card(1, 1);
    let tokenize = |value: String, format: &'static str, subject: Option<&'static str>| {
        let (s, keys) = (&s, &keys);
        async move {
            let env = s.seal(FieldKind::Pan, &value).await;
            let item = match subject {
                Some(id) => json!({ "envelope": env, "subject": id }),
                None => json!({ "envelope": env, "format": format }),
            };
            let (status, body) = s.tokenize(&keys.checkout, json!([item])).await;
            assert_eq!(status, 200, "{body}");
            let r = &body["results"][0];
            let text = |f: &str| r[f].as_str().unwrap().to_owned();
            (text("token"), text("fingerprint"))
        }
    };
    let (_, fp1) = tokenize(visa.clone(), "random", None).await;
    let (det1, det_fp1) = tokenize(visa.clone(), "deterministic", None).await;
    assert!(
        fp1.starts_with("fp_") && det1.starts_with("tokd_"),
        "{fp1} {det1}"
    );
    assert_eq!(det_fp1, fp1);
    let (kept, _) = tokenize(card(2, 1), "random", Some("cust-9")).await;
    let hash1 = subject_of(&s, &kept).await;
    assert!(hash1.starts_with("subj_"), "{hash1}");

    let admin = common::admin_of(&s).await;
    assert_eq!(admin.rotate_lookup_keys().await.unwrap(), 2);
    // The serving node loads it within its key upkeep.
    s.vault.maintain_data_keys().await.unwrap();

    // A rotation changes future fingerprints, and they say which version made them.
    let (_, fp2) = tokenize(visa.clone(), "random", None).await;
    assert!(fp2.starts_with("fp2_"), "{fp2}");
    assert_ne!(fp2[4..], fp1[3..]);
    // A value with a deterministic token keeps it, answered with the newest version's
    // fingerprint like any other (nothing in the answer tells it was stored before); a new value
    // gets the new version's token, which names no version either.
    assert_eq!(
        tokenize(visa.clone(), "deterministic", None).await,
        (det1.clone(), fp2.clone())
    );
    let (det2, det_fp2) = tokenize(card(3, 1), "deterministic", None).await;
    assert!(
        det2.starts_with("tokd_") && det2.len() == det1.len() && det_fp2.starts_with("fp2_"),
        "{det2} {det_fp2}"
    );
    // A subject keeps its hash (and key); a new subject gets the new version's.
    let (later, _) = tokenize(card(2, 2), "random", Some("cust-9")).await;
    assert_eq!(subject_of(&s, &later).await, hash1);
    let (other, _) = tokenize(card(2, 3), "random", Some("cust-10")).await;
    assert!(subject_of(&s, &other).await.starts_with("subj2_"));

    // Through a restart (every version loaded at start) the same holds.
    let mut s = s;
    s.shutdown().await;
    let s = Server::start_with(settings).await;
    let env = s.seal(FieldKind::Pan, &visa).await;
    let (_, body) = s
        .tokenize(
            &keys.checkout,
            json!([{ "envelope": env, "format": "deterministic" }]),
        )
        .await;
    assert_eq!(body["results"][0]["token"], json!(det1));
    let (status, body) = s.get(&privacy, "/v1/subjects/cust-9/export").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["values"].as_array().unwrap().len(), 2, "{body}");
    for id in ["cust-9", "cust-10"] {
        let r = s
            .client
            .delete(s.url(&format!("/v1/subjects/{id}")))
            .bearer_auth(&privacy)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id}");
    }
    let (_, body) = s
        .detokenize(&keys.payments, &[&kept], "after erasure")
        .await;
    assert_eq!(body["results"][0]["error"]["code"], "not_found", "{body}");

    // Key uses: counted by the node, in the inventory once flushed (every few seconds, and at
    // shutdown).
    s.vault.flush_key_uses().await.unwrap();
    let admin = common::admin_of(&s).await;
    let inventory = admin.inventory().await.unwrap();
    let used = |id: &str| {
        let k = inventory.iter().find(|k| k.id == id).unwrap();
        (k.uses.unwrap_or(0), k.last_used.is_some())
    };
    // Version 1: 3 fingerprints before the rotation (a card tokenized at random and
    // deterministically, a subject's value) and cust-9's hash made; 2 stored with the kept
    // deterministic token (before and after the restart); cust-9's hash matched at its second
    // value, its export and its erasure (9). Version 2: the random card, the kept deterministic
    // token's answer twice, the new deterministic token, two subjects' values, cust-10's hash
    // made and erased (8). The first node's last uses counted at its shutdown, the second's now.
    assert_eq!(used("fingerprint-key"), (9, true), "{inventory:?}");
    assert_eq!(used("fingerprint-key:2"), (8, true), "{inventory:?}");
    assert_eq!(used("deterministic-key"), (3, true), "{inventory:?}");
    assert_eq!(used("deterministic-key:2"), (1, true), "{inventory:?}");
    let hpke_uses: i64 = inventory
        .iter()
        .filter(|k| k.kind == "hpke")
        .map(|k| k.uses.unwrap_or(0))
        .sum();
    assert_eq!(hpke_uses, 9, "every envelope opened: {inventory:?}");
    assert!(used("data-key:1").1, "a data key's last use");
    // Every wrapped key says when it was made.
    for k in inventory.iter().filter(|k| k.kind != "kek") {
        assert!(k.created_at.is_some(), "{k:?}");
    }
    let state = |id: &str| {
        inventory
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.state.clone())
            .unwrap_or_default()
    };
    assert_eq!(state("fingerprint-key:2"), "current");
    assert_eq!(state("deterministic-key:2"), "current");
    assert!(state("fingerprint-key").contains("accepted for lookups"));
    let entries = audit_all(s.vault.store()).await;
    assert!(entries.iter().any(|e| e.action == "lookup.rotate"));
    s.stop().await;
}

/// Erasure right after a lookup key rotation, on a node that has not loaded the new version yet,
/// still finds a subject another node stored under it.
#[tokio::test]
async fn an_erasure_finds_a_subject_stored_under_a_version_made_elsewhere() {
    let dir = TempDir::new("lookup-erase");
    let settings = common::settings(&dir.0);
    let keys = common::init_with(&settings).await;
    let privacy = common::add_key(&settings, "privacy").await;
    let old = Server::start_with(settings.clone()).await;
    // Its key upkeep's first round (at start) done: the next is 5 s away, past this test.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    common::admin_of(&old)
        .await
        .rotate_lookup_keys()
        .await
        .unwrap();
    // A node started after the rotation stores a new subject under version 2's hash.
    let new = Server::start_with(settings).await;
    let env = new.seal(FieldKind::Email, "eve@example.com").await;
    let (status, body) = new
        .tokenize(
            &keys.checkout,
            json!([{ "envelope": env, "subject": "cust-77" }]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["results"][0]["token"].as_str().unwrap().to_owned();
    let hash = subject_of(&new, &token).await;
    assert!(hash.starts_with("subj2_"), "{hash}");
    // The older node erases it (it loads the new version first).
    let r = old
        .client
        .delete(old.url("/v1/subjects/cust-77"))
        .bearer_auth(&privacy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(new.vault.store().token(&token, 0).await.unwrap().is_none());
    old.stop().await;
    new.stop().await;
}

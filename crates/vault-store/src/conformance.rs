//! The store conformance suite: what every backend must do, tested through the [`Store`] trait
//! against a real database. A backend's test file implements [`Backend`] and expands
//! [`conformance_tests!`](crate::conformance_tests), one `#[tokio::test]` per case.
//!
//! The cases are the guarantees the service builds on: a replayed envelope is refused atomically
//! (also when two requests race), a card security code is consumed exactly once under concurrent
//! plain reveals, concurrent writers leave a chain that verifies, a full disk leaves nothing
//! half-written, a deleted token's ciphertext is gone from the database's files, and an audit log
//! cut short is refused before the next append.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;

use fieldseal_core::at_rest::SymmetricKey;

use crate::audit::{Action, Actor, AuditDraft, EnvelopeRef, Outcome};
use crate::verify::verify_chain;
use crate::{ApiKeyRecord, InsertOutcome, NewToken, Reencrypted, Store, StoreError, TokenRecord};

/// What the suite needs from a backend beyond the trait.
pub trait Backend: Send + Sync + 'static {
    /// The store type.
    type S: Store + Clone;
    /// A fresh, migrated, empty store of its own (a new file, a new schema).
    fn fresh(&self) -> impl Future<Output = Self::S> + Send;
    /// Makes further writes fail as on a full disk.
    fn fill(&self, store: &Self::S) -> impl Future<Output = ()> + Send;
    /// Whether the database's files (or raw storage) contain `needle`, after
    /// [`Store::checkpoint`].
    fn raw_contains(&self, store: &Self::S, needle: &[u8]) -> impl Future<Output = bool> + Send;
    /// Whether [`Store::checkpoint`] after a deletion removes the deleted bytes from the database's
    /// files. A backend that cannot (PostgreSQL keeps them in free space and WAL until they are
    /// reused) says why; the case then checks only what it can promise.
    fn erases_deleted_bytes(&self) -> Result<(), &'static str> {
        Ok(())
    }
}

/// A key the suite's stores use for their audit chain.
pub fn audit_key() -> SymmetricKey {
    SymmetricKey::from_bytes(&[0x5a; 32]).unwrap()
}

/// A fresh store with its audit log begun.
pub async fn started<B: Backend>(b: &B) -> B::S {
    let s = b.fresh().await;
    s.set_audit_key(audit_key());
    let first =
        AuditDraft::new(1, Actor::Cli, Action::SecretCreate, Outcome::Ok).detail("audit-key");
    assert!(
        s.begin_audit_log("audit-key", vec![1, 2, 3], first)
            .await
            .unwrap()
    );
    s
}

/// A token of `kind` with ciphertext `value` (opaque to the store), from envelope `envelope`.
pub fn new_token(token: &str, kind: &str, envelope: u8, value: &[u8]) -> NewToken {
    let record = TokenRecord {
        token: token.into(),
        kind: kind.into(),
        data_key_id: 1,
        ciphertext: value.to_vec(),
        fingerprint: String::new(),
        brand: None,
        bin: None,
        last4: None,
        created_at: 100,
        expires_at: (kind == "cvc").then_some(i64::MAX),
        subject: None,
        ended_in_log: false,
    };
    let draft = |outcome| {
        AuditDraft::new(
            100,
            Actor::ApiKey("0123456789ab".into()),
            Action::Tokenize,
            outcome,
        )
        .kind(kind)
    };
    NewToken {
        token: record,
        envelope: EnvelopeRef {
            created_at: 100,
            id: [envelope; 16],
        },
        audit: draft(Outcome::Ok).token(token).envelope(EnvelopeRef {
            created_at: 100,
            id: [envelope; 16],
        }),
        replayed_audit: draft(Outcome::Refused).detail("replayed"),
    }
}

async fn intact<S: Store>(s: &S) -> i64 {
    let v = verify_chain(s, &audit_key(), None).await.unwrap();
    assert!(v.intact(), "{v:?}");
    v.verified
}

/// Checkpoints and, where the backend erases deleted bytes, checks that `marker` is in its files
/// (so that its absence later means something); returns whether the backend erases them.
async fn visible_before_deletion<B: Backend>(
    b: &B,
    s: &B::S,
    marker: &[u8],
) -> Result<(), &'static str> {
    s.checkpoint().await.unwrap();
    let erases = b.erases_deleted_bytes();
    if erases.is_ok() {
        assert!(
            b.raw_contains(s, marker).await,
            "the check can see stored bytes"
        );
    }
    erases
}

/// After a deletion: checkpoints and, where the backend erases deleted bytes, checks `marker` is
/// gone from its files; elsewhere says why it is not checked.
async fn gone_after_deletion<B: Backend>(
    b: &B,
    s: &B::S,
    marker: &[u8],
    erases: Result<(), &'static str>,
    what: &str,
) {
    s.checkpoint().await.unwrap();
    match erases {
        Ok(()) => assert!(!b.raw_contains(s, marker).await, "{what}"),
        Err(why) => eprintln!("not checked on this backend: deleted bytes in its files ({why})"),
    }
}

/// A second submission of an envelope stores nothing, in the same batch, in a later batch, and
/// when two batches race.
pub async fn replay_is_refused_atomically<B: Backend>(b: &B) {
    let s = started(b).await;
    let out = s
        .insert_tokens(vec![
            new_token("tok_a", "pan", 1, b"ct-a"),
            new_token("tok_b", "pan", 1, b"ct-b"),
        ])
        .await
        .unwrap();
    assert_eq!(out, [InsertOutcome::Inserted, InsertOutcome::Replayed]);
    assert!(s.token("tok_b", 0).await.unwrap().is_none());
    let again = s
        .insert_tokens(vec![new_token("tok_c", "pan", 1, b"ct")])
        .await
        .unwrap();
    assert_eq!(again, [InsertOutcome::Replayed]);

    let mut racers = Vec::new();
    for i in 0..8u8 {
        let s = s.clone();
        racers.push(tokio::spawn(async move {
            s.insert_tokens(vec![new_token(&format!("tok_r{i}"), "pan", 2, b"ct")])
                .await
                .unwrap()[0]
        }));
    }
    let mut inserted = 0;
    for r in racers {
        if r.await.unwrap() == InsertOutcome::Inserted {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1, "exactly one of 8 racing submissions is stored");
    intact(&s).await;
}

/// A token already stored: the same value again (same kind and fingerprint: a deterministic
/// token) is `Existing` and consumes its envelope; anything else is `TokenTaken`, keeps nothing,
/// and leaves its envelope unconsumed, so a later item of the same batch with that envelope is
/// stored. Outcomes are per item, in order, as if the items were stored one after the other.
pub async fn stored_tokens_are_existing_or_taken<B: Backend>(b: &B) {
    let s = started(b).await;
    let with_fingerprint = |token: &str, envelope: u8, fingerprint: &str| {
        let mut t = new_token(token, "pan", envelope, b"ct");
        t.token.fingerprint = fingerprint.into();
        t
    };
    let first = s
        .insert_tokens(vec![with_fingerprint("tok_det", 10, "fp-1")])
        .await
        .unwrap();
    assert_eq!(first, [InsertOutcome::Inserted]);
    let out = s
        .insert_tokens(vec![
            with_fingerprint("tok_det", 11, "fp-1"),
            with_fingerprint("tok_det", 12, "fp-2"),
            with_fingerprint("tok_new", 12, "fp-3"),
            with_fingerprint("tok_det", 11, "fp-1"),
            with_fingerprint("tok_dup", 13, "fp-4"),
            with_fingerprint("tok_dup", 14, "fp-4"),
        ])
        .await
        .unwrap();
    assert_eq!(
        out,
        [
            InsertOutcome::Existing,
            InsertOutcome::TokenTaken,
            InsertOutcome::Inserted,
            InsertOutcome::Replayed,
            InsertOutcome::Inserted,
            InsertOutcome::Existing,
        ]
    );
    assert!(s.token("tok_new", 0).await.unwrap().is_some());
    let log = s.audit_log(0, 100).await.unwrap();
    let tokenized = log.iter().filter(|e| e.action == "tokenize").count();
    // The first insert, then five of the six items (the taken one keeps nothing).
    assert_eq!(tokenized, 6, "{log:?}");
    intact(&s).await;
}

/// 16 concurrent plain reveals of one card security code: exactly one consumes it.
pub async fn cvc_is_consumed_exactly_once<B: Backend>(b: &B) {
    let s = started(b).await;
    s.insert_tokens(vec![new_token("tok_cvc", "cvc", 3, b"ct")])
        .await
        .unwrap();
    let mut reveals = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        reveals.push(tokio::spawn(async move {
            let d = AuditDraft::new(
                101,
                Actor::ApiKey("0123456789ab".into()),
                Action::Reveal,
                Outcome::Plain,
            )
            .token("tok_cvc")
            .purpose("charge");
            s.record_reveals(vec![d], vec![(0, "tok_cvc".into())])
                .await
                .unwrap()[0]
        }));
    }
    let mut won = 0;
    for r in reveals {
        if r.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert!(s.token("tok_cvc", 0).await.unwrap().is_none());
    let log = s.audit_log(0, 100).await.unwrap();
    let plain = log
        .iter()
        .filter(|e| e.action == "reveal" && e.outcome == "plain")
        .count();
    let gone = log
        .iter()
        .filter(|e| e.action == "reveal" && e.outcome == "not_found")
        .count();
    assert_eq!(
        (plain, gone),
        (1, 15),
        "the losers are audited as not_found"
    );
    intact(&s).await;
}

/// 8 writers appending concurrently (tokens, reveals, plain entries): the chain verifies and holds
/// every entry once.
pub async fn concurrent_writers_leave_a_verifiable_chain<B: Backend>(b: &B) {
    let s = started(b).await;
    let mut writers = Vec::new();
    for w in 0..8u8 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10u8 {
                let d = AuditDraft::new(i64::from(i), Actor::Cli, Action::AuditRead, Outcome::Ok)
                    .detail(format!("writer {w} entry {i}"));
                match i % 3 {
                    0 => s.append_audit(d).await.unwrap(),
                    1 => {
                        let t = format!("tok_w{w}_{i}");
                        let env = w.wrapping_mul(16).wrapping_add(i).wrapping_add(100);
                        s.insert_tokens(vec![new_token(&t, "email", env, b"ct")])
                            .await
                            .unwrap();
                    }
                    _ => {
                        s.record_reveals(vec![d], Vec::new()).await.unwrap();
                    }
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(intact(&s).await, 1 + 80);
}

/// Writes on a full disk fail with [`StoreError::Full`] and leave nothing: no token, no replay id
/// (the envelope can be submitted again), no audit entry, a chain that still verifies.
pub async fn a_full_disk_leaves_nothing_half_written<B: Backend>(b: &B) {
    let s = started(b).await;
    let before = intact(&s).await;
    b.fill(&s).await;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let items: Vec<NewToken> = (0..20u8)
        .map(|i| new_token(&format!("tok_f{i}"), "text", 50 + i, &big))
        .collect();
    let err = s.insert_tokens(items).await.unwrap_err();
    assert!(matches!(err, StoreError::Full), "{err:?}");
    assert!(s.token("tok_f0", 0).await.unwrap().is_none());
    assert_eq!(
        intact(&s).await,
        before,
        "no audit entry of the failed batch"
    );
}

/// After a token is deleted (and the store checkpointed), its ciphertext is in none of the
/// database's files.
pub async fn a_deleted_token_is_gone_from_the_files<B: Backend>(b: &B) {
    let s = started(b).await;
    let marker = b"ciphertext-marker-7f3a9c";
    s.insert_tokens(vec![new_token("tok_del", "email", 9, marker)])
        .await
        .unwrap();
    let erases = visible_before_deletion(b, &s, marker).await;
    let d = AuditDraft::new(102, Actor::Cli, Action::Delete, Outcome::Ok).token("tok_del");
    assert!(s.delete_token("tok_del", d).await.unwrap());
    s.checkpoint().await.unwrap();
    assert!(s.token("tok_del", 0).await.unwrap().is_none());
    gone_after_deletion(
        b,
        &s,
        marker,
        erases,
        "ciphertext still in the database files",
    )
    .await;
}

/// An all-or-nothing batch with a replayed envelope or a taken token keeps nothing (its other
/// envelopes stay unconsumed, only the replay's refusal is logged); without one it keeps all. The
/// same holds when the batch is committed in one group with other requests.
pub async fn an_atomic_batch_stores_all_or_nothing<B: Backend>(b: &B) {
    let s = started(b).await;
    s.insert_tokens(vec![new_token("tok_used", "pan", 40, b"ct-used")])
        .await
        .unwrap();
    let before = intact(&s).await;
    let attempt = |second: NewToken| {
        let s = s.clone();
        async move {
            s.insert_tokens_atomic(vec![new_token("tok_at1", "email", 41, b"ct-1"), second])
                .await
                .unwrap()
        }
    };
    // A replayed envelope; a token taken by another value; two items of one batch carrying the
    // same envelope: nothing of the batch is kept.
    let refused = [
        (
            new_token("tok_at2", "pan", 40, b"ct-2"),
            InsertOutcome::Replayed,
        ),
        (
            new_token("tok_used", "pan", 42, b"ct-other"),
            InsertOutcome::TokenTaken,
        ),
        (
            new_token("tok_at3", "email", 41, b"ct-3"),
            InsertOutcome::Replayed,
        ),
    ];
    for (second, outcome) in refused {
        assert_eq!(attempt(second).await, [InsertOutcome::Inserted, outcome]);
        assert!(s.token("tok_at1", 0).await.unwrap().is_none(), "no orphan");
    }
    assert_eq!(intact(&s).await, before + 2, "only the replays' refusals");
    // The envelopes of the refused batches were not consumed.
    let out = attempt(new_token("tok_at2", "pan", 42, b"ct-2")).await;
    assert_eq!(out, [InsertOutcome::Inserted, InsertOutcome::Inserted]);
    assert!(s.token("tok_at1", 0).await.unwrap().is_some());
    assert!(s.token("tok_at2", 0).await.unwrap().is_some());

    // Racing requests, committed in groups: every all-or-nothing batch that meets an envelope
    // consumed by another request keeps nothing.
    let mut racers = Vec::new();
    for i in 0..16u8 {
        let s = s.clone();
        racers.push(tokio::spawn(async move {
            let mine = new_token(&format!("tok_own{i}"), "email", 100 + i, b"ct");
            // Every racer also carries envelope 99: exactly one request may consume it.
            let shared = new_token(&format!("tok_sh{i}"), "email", 99, b"ct");
            if i % 2 == 0 {
                let out = s.insert_tokens_atomic(vec![mine, shared]).await.unwrap();
                (true, out)
            } else {
                (false, s.insert_tokens(vec![shared, mine]).await.unwrap())
            }
        }));
    }
    let mut stored_shared = 0;
    for (i, r) in racers.into_iter().enumerate() {
        let (atomic, out) = r.await.unwrap();
        let own = s.token(&format!("tok_own{i}"), 0).await.unwrap().is_some();
        let shared = s.token(&format!("tok_sh{i}"), 0).await.unwrap().is_some();
        stored_shared += usize::from(shared);
        if atomic {
            assert_eq!(own, shared, "atomic batch {i} kept part of itself: {out:?}");
            assert_eq!(own, out.iter().all(|o| o.stored()), "{out:?}");
        } else {
            assert!(own, "{out:?}");
        }
    }
    assert_eq!(stored_shared, 1, "envelope 99 stored exactly once");
    intact(&s).await;
}

/// The purge deletes what expired (audited per batch) and nothing else, and after the
/// checkpoint the purged ciphertexts are in none of the database's files.
pub async fn purged_tokens_are_gone_from_the_files<B: Backend>(b: &B) {
    let s = started(b).await;
    let expiring = |token: &str, envelope: u8, value: &[u8], expires_at: Option<i64>| {
        let mut t = new_token(token, "email", envelope, value);
        t.token.expires_at = expires_at;
        t
    };
    let gone = b"purged-marker-5e1d0b77";
    let kept = b"kept-marker-9c2f4a10";
    s.insert_tokens(vec![
        expiring("tok_old", 50, gone, Some(150)),
        expiring("tok_later", 51, kept, Some(10_000)),
        expiring("tok_forever", 52, b"ct-forever", None),
    ])
    .await
    .unwrap();
    let erases = visible_before_deletion(b, &s, gone).await;
    let before = intact(&s).await;
    assert!(s.token("tok_old", 149).await.unwrap().is_some());
    assert!(s.token("tok_old", 150).await.unwrap().is_none(), "expired");
    assert_eq!(s.purge(200).await.unwrap(), 1);
    assert_eq!(s.purge(200).await.unwrap(), 0);
    s.checkpoint().await.unwrap();
    assert!(s.token("tok_old", 0).await.unwrap().is_none());
    assert!(s.token("tok_later", 200).await.unwrap().is_some());
    assert!(s.token("tok_forever", 200).await.unwrap().is_some());
    assert_eq!(intact(&s).await, before + 1, "one audited batch");
    if erases.is_ok() {
        assert!(b.raw_contains(&s, kept).await, "what did not expire stays");
    }
    gone_after_deletion(b, &s, gone, erases, "purged ciphertext still in the files").await;
}

/// A large expiry is purged in bounded batches, one transaction and one audit entry each, whose
/// counts add up to what was deleted; what expires later stays.
pub async fn the_purge_runs_in_audited_batches<B: Backend>(b: &B) {
    use crate::audit::{PURGE_BATCH, PURGE_BATCHES};
    let s = started(b).await;
    let expired = 2 * PURGE_BATCH + 7;
    let mut rows = (0..expired + 3).map(|i| {
        let kind = if i % 3 == 0 { "cvc" } else { "email" };
        let mut t = new_token(&format!("tok_batch{i:05}"), kind, 0, b"v");
        t.token.expires_at = Some(if i < expired { 100 + i as i64 } else { 10_000 });
        // Distinct envelopes: the replay record is per envelope id.
        let mut id = [0xb0; 16];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let envelope = EnvelopeRef {
            created_at: 100,
            id,
        };
        t.envelope = envelope;
        t.audit = t.audit.envelope(envelope);
        t
    });
    loop {
        let chunk: Vec<NewToken> = rows.by_ref().take(100).collect();
        if chunk.is_empty() {
            break;
        }
        s.insert_tokens(chunk).await.unwrap();
    }
    let before = intact(&s).await;
    assert_eq!(s.purge(5_000).await.unwrap(), expired as u64);
    assert_eq!(
        intact(&s).await,
        before + 3,
        "three batches, one entry each"
    );
    let log = s.audit_log(before, 10).await.unwrap();
    let entries: Vec<_> = log.iter().filter(|r| r.action == "delete").collect();
    assert_eq!(entries.len(), 3, "{log:?}");
    let counted: usize = entries
        .iter()
        .map(|r| {
            assert_eq!(r.actor, "vault");
            assert!(r.token.is_none(), "a batch names no single token");
            assert!(
                r.detail.starts_with("retention period over: "),
                "{}",
                r.detail
            );
            let n = r.detail["retention period over: ".len()..]
                .split(' ')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap();
            assert!(n <= PURGE_BATCH);
            n
        })
        .sum();
    assert_eq!(counted, expired);
    assert!(entries[0].detail.contains("cvc ") && entries[0].detail.contains("email "));
    assert!(
        entries[0].detail.contains("expired 100..="),
        "oldest first: {}",
        entries[0].detail
    );
    assert!(s.token("tok_batch00000", 0).await.unwrap().is_none());
    assert!(
        s.token(&format!("tok_batch{expired:05}"), 0)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.purge(5_000).await.unwrap(), 0, "nothing left");
    const { assert!(PURGE_BATCHES >= 3) };
}

/// A subject's key is stored once (a second one loses to the first), its tokens are listed, and
/// erasing it deletes the key and every token of it in one audited transaction, leaving other
/// subjects alone; after the checkpoint the erased ciphertexts are in none of the files.
pub async fn an_erased_subject_is_gone<B: Backend>(b: &B) {
    let s = started(b).await;
    let key = |subject: &str, wrapped: &[u8]| crate::SubjectKeyRecord {
        subject: subject.into(),
        data_key_id: 1,
        wrapped: wrapped.to_vec(),
        created_at: 100,
        erased_in_log: false,
    };
    let made = |subject: &str| {
        AuditDraft::new(100, Actor::Vault, Action::SubjectKey, Outcome::Ok).detail(subject)
    };
    assert!(s.subject_key("subj_a").await.unwrap().is_none());
    let first = s
        .put_subject_key(key("subj_a", b"key-a"), made("subj_a"))
        .await
        .unwrap();
    assert_eq!(first.wrapped, b"key-a");
    let again = s
        .put_subject_key(key("subj_a", b"key-a2"), made("subj_a"))
        .await
        .unwrap();
    assert_eq!(again.wrapped, b"key-a", "the first key stays");
    s.put_subject_key(key("subj_b", b"key-b"), made("subj_b"))
        .await
        .unwrap();
    let of = |token: &str, envelope: u8, value: &[u8], subject: &str| {
        let mut t = new_token(token, "email", envelope, value);
        t.token.subject = Some(subject.into());
        t
    };
    let erased = b"erased-subject-marker-0d4c";
    s.insert_tokens(vec![
        of("tok_a1", 60, erased, "subj_a"),
        of("tok_a2", 61, b"ct-a2", "subj_a"),
        of("tok_b1", 62, b"ct-b1", "subj_b"),
    ])
    .await
    .unwrap();
    let listed: Vec<String> = s
        .subject_tokens("subj_a", 0)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token)
        .collect();
    assert_eq!(listed, ["tok_a1", "tok_a2"]);
    assert_eq!(
        s.token("tok_a1", 0)
            .await
            .unwrap()
            .unwrap()
            .subject
            .as_deref(),
        Some("subj_a")
    );
    let erases = visible_before_deletion(b, &s, erased).await;
    let before = intact(&s).await;
    let audit =
        AuditDraft::new(200, Actor::Cli, Action::SubjectErase, Outcome::Ok).detail("subj_a");
    let deleted = AuditDraft::new(200, Actor::Cli, Action::Delete, Outcome::Ok).detail("erased");
    assert_eq!(s.erase_subject("subj_a", audit, deleted).await.unwrap(), 2);
    s.checkpoint().await.unwrap();
    assert_eq!(
        intact(&s).await,
        before + 3,
        "the erasure and one deletion per token"
    );
    assert!(s.subject_key("subj_a").await.unwrap().is_none());
    assert!(s.token("tok_a1", 0).await.unwrap().is_none());
    assert!(s.subject_tokens("subj_a", 0).await.unwrap().is_empty());
    assert!(s.token("tok_b1", 0).await.unwrap().is_some());
    assert!(
        !s.subject_key("subj_b")
            .await
            .unwrap()
            .unwrap()
            .erased_in_log
    );
    // The erased key put back from an older copy: the log's erasure is later than its creation.
    s.put_subject_key(first.clone(), made("subj_a"))
        .await
        .unwrap();
    assert!(
        s.subject_key("subj_a")
            .await
            .unwrap()
            .unwrap()
            .erased_in_log
    );
    gone_after_deletion(
        b,
        &s,
        erased,
        erases,
        "erased ciphertext still in the files",
    )
    .await;
}

/// Appends refuse to continue a chain whose stored head and tail disagree, or that is empty.
pub async fn a_broken_chain_refuses_appends<B: Backend>(b: &B) {
    let s = started(b).await;
    // A second genesis is refused: the log exists.
    let g = AuditDraft::new(1, Actor::Cli, Action::SecretCreate, Outcome::Ok);
    assert!(!s.begin_audit_log("audit-key", vec![1], g).await.unwrap());
    // A store under another audit key cannot continue this chain.
    let other = b.fresh().await;
    other.set_audit_key(SymmetricKey::from_bytes(&[1; 32]).unwrap());
    let d = AuditDraft::new(1, Actor::Cli, Action::AuditRead, Outcome::Ok);
    let err = other.append_audit(d.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::AuditBroken(_)), "{err:?}");
    s.append_audit(d).await.unwrap();
    intact(&s).await;
}

/// An API key's secret rotated with an overlap, and its last use recorded (only forward); a
/// revoked key is not rotated.
pub async fn api_keys_rotate_and_record_use<B: Backend>(b: &B) {
    let s = started(b).await;
    let key = ApiKeyRecord {
        id: "0123456789ab".into(),
        digest: vec![1; 32],
        role: "payments".into(),
        label: "jobs".into(),
        created_at: 100,
        revoked_at: None,
        expires_at: None,
        previous_digest: None,
        previous_expires_at: None,
        client_cert_sha256: Some("c0ffee".into()),
        last_used_at: None,
        mac: "m1".into(),
        revoked_in_log: false,
    };
    let audit =
        |action| AuditDraft::new(100, Actor::Cli, action, Outcome::Ok).detail("0123456789ab");
    s.insert_api_key(key.clone(), audit(Action::ApiKeyCreate))
        .await
        .unwrap();
    assert_eq!(s.api_key(&key.id).await.unwrap(), Some(key.clone()));
    s.touch_api_key(&key.id, 500).await.unwrap();
    s.touch_api_key(&key.id, 400).await.unwrap();
    s.touch_api_key("nope", 400).await.unwrap();
    let read = s.api_key(&key.id).await.unwrap().unwrap();
    assert_eq!(read.last_used_at, Some(500));
    let rotated = ApiKeyRecord {
        digest: vec![2; 32],
        previous_digest: Some(vec![1; 32]),
        previous_expires_at: Some(900),
        mac: "m2".into(),
        ..read
    };
    assert!(
        s.rotate_api_key(rotated.clone(), audit(Action::ApiKeyRotate))
            .await
            .unwrap()
    );
    assert_eq!(s.api_key(&key.id).await.unwrap(), Some(rotated.clone()));
    assert_eq!(s.api_keys().await.unwrap(), vec![rotated.clone()]);
    assert!(
        s.revoke_api_key(&key.id, 600, "m3".into(), audit(Action::ApiKeyRevoke))
            .await
            .unwrap()
    );
    let again = ApiKeyRecord {
        digest: vec![3; 32],
        ..rotated
    };
    assert!(
        !s.rotate_api_key(again, audit(Action::ApiKeyRotate))
            .await
            .unwrap()
    );
    let log = s.audit_log(0, 100).await.unwrap();
    assert_eq!(
        log.iter().filter(|e| e.action == "apikey.rotate").count(),
        1
    );
    intact(&s).await;
}

/// A rewrap (KEK rotation) replaces a wrapped key only if it is still the one read, audits it in
/// the same transaction, and leaves the chain intact; a stale rewrap changes nothing.
pub async fn a_rewrap_replaces_only_what_was_read<B: Backend>(b: &B) {
    let s = started(b).await;
    let d = |n| AuditDraft::new(n, Actor::Cli, Action::KeyRewrap, Outcome::Ok).detail("data-key:1");
    let created = AuditDraft::new(2, Actor::Cli, Action::SecretCreate, Outcome::Ok);
    assert!(
        s.put_secret("data-key:1", vec![1; 40], created)
            .await
            .unwrap()
    );
    assert!(
        s.rewrap_secret("data-key:1", vec![1; 40], vec![2; 40], d(3))
            .await
            .unwrap()
    );
    assert_eq!(s.secret("data-key:1").await.unwrap(), Some(vec![2; 40]));
    // A second rotation that read the old form loses: nothing changes, nothing is audited.
    let before = s.last_audit_entry().await.unwrap().unwrap().seq;
    assert!(
        !s.rewrap_secret("data-key:1", vec![1; 40], vec![3; 40], d(4))
            .await
            .unwrap()
    );
    assert!(
        !s.rewrap_secret("no-such-key", vec![1; 40], vec![3; 40], d(4))
            .await
            .unwrap()
    );
    assert_eq!(s.secret("data-key:1").await.unwrap(), Some(vec![2; 40]));
    assert_eq!(s.last_audit_entry().await.unwrap().unwrap().seq, before);

    let key = crate::HpkeKeyRecord {
        kid: "k202612-000000000001".into(),
        public_key: vec![4; 65],
        wrapped_private: vec![5; 60],
        created_at: 1,
        not_before: 1,
        expires_at: 100,
        retired_at: None,
        mac: "m1".into(),
        retired_in_log: false,
    };
    let made = AuditDraft::new(5, Actor::Cli, Action::KeyRotate, Outcome::Ok);
    s.insert_hpke_key(key.clone(), made).await.unwrap();
    let rewrap = AuditDraft::new(6, Actor::Cli, Action::KeyRewrap, Outcome::Ok).detail(&key.kid);
    assert!(
        s.rewrap_hpke_key(
            &key.kid,
            vec![5; 60],
            vec![6; 60],
            "m2".into(),
            rewrap.clone()
        )
        .await
        .unwrap()
    );
    assert!(
        !s.rewrap_hpke_key(&key.kid, vec![5; 60], vec![7; 60], "m3".into(), rewrap)
            .await
            .unwrap()
    );
    let stored = s.hpke_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].wrapped_private.clone(), stored[0].mac.as_str()),
        (vec![6; 60], "m2")
    );
    intact(&s).await;
}

/// Data keys: a version is stored once with its count at zero; counts add up; the values under
/// older versions are listed page by page; a move to a newer version happens only for rows that
/// still hold what was read, audited with the count, and the chain stays intact.
pub async fn data_keys_count_and_move_values_once<B: Backend>(b: &B) {
    let s = started(b).await;
    let made = |n| AuditDraft::new(n, Actor::Cli, Action::DataKeyRotate, Outcome::Ok);
    assert!(s.add_data_key(1, vec![1; 60], made(2)).await.unwrap());
    assert!(!s.add_data_key(1, vec![9; 60], made(3)).await.unwrap());
    assert_eq!(s.secret("data-key:1").await.unwrap(), Some(vec![1; 60]));
    let items: Vec<NewToken> = (0..5u8)
        .map(|i| new_token(&format!("tok_dk{i}"), "pan", 40 + i, &[i; 20]))
        .collect();
    s.insert_tokens(items).await.unwrap();
    s.count_encryptions(1, 5).await.unwrap();
    s.count_encryptions(1, 2).await.unwrap();
    assert!(s.add_data_key(2, vec![2; 60], made(4)).await.unwrap());
    let keys = s.data_keys().await.unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.id, k.encryptions, k.values))
            .collect::<Vec<_>>(),
        vec![(1, 7, 5), (2, 0, 0)]
    );
    let page = s.tokens_to_reencrypt(2, "", 3).await.unwrap();
    assert_eq!(
        page.iter().map(|t| t.token.as_str()).collect::<Vec<_>>(),
        ["tok_dk0", "tok_dk1", "tok_dk2"]
    );
    let rest = s.tokens_to_reencrypt(2, "tok_dk2", 3).await.unwrap();
    assert_eq!(rest.len(), 2);
    let moves: Vec<Reencrypted> = page
        .iter()
        .map(|t| Reencrypted {
            token: t.token.clone(),
            old_data_key_id: 1,
            old_ciphertext: t.ciphertext.clone(),
            data_key_id: 2,
            ciphertext: vec![0xee; 20],
        })
        .collect();
    let audit = || {
        AuditDraft::new(5, Actor::Vault, Action::DataKeyReencrypt, Outcome::Ok)
            .detail("to data-key:2")
    };
    assert_eq!(s.reencrypt_tokens(moves.clone(), audit()).await.unwrap(), 3);
    // The same moves again (another node read the same rows): nothing changes, nothing audited.
    let before = s.last_audit_entry().await.unwrap().unwrap().seq;
    assert_eq!(s.reencrypt_tokens(moves, audit()).await.unwrap(), 0);
    assert_eq!(s.last_audit_entry().await.unwrap().unwrap().seq, before);
    let moved = s.token("tok_dk1", 0).await.unwrap().unwrap();
    assert_eq!((moved.data_key_id, moved.ciphertext), (2, vec![0xee; 20]));
    let keys = s.data_keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.values).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let logged = s.last_audit_entry().await.unwrap().unwrap();
    assert_eq!(logged.detail, "to data-key:2 (3 of 3 moved)");
    intact(&s).await;
}

/// Key uses add up per key across nodes' reports, and the last use is the latest reported.
pub async fn key_uses_add_up<B: Backend>(b: &B) {
    let s = started(b).await;
    let using = |kind: &str, id: &str, uses: i64, at: i64| crate::KeyUse {
        kind: kind.into(),
        id: id.into(),
        uses,
        last_used_at: at,
    };
    assert!(s.key_uses().await.unwrap().is_empty());
    s.record_key_uses(vec![
        using("hpke", "k1", 3, 100),
        using("data", "data-key:1", 5, 90),
    ])
    .await
    .unwrap();
    // Another node's report, one of its uses older than the stored last use.
    s.record_key_uses(vec![
        using("hpke", "k1", 2, 50),
        using("data", "data-key:1", 1, 120),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.key_uses().await.unwrap(),
        vec![
            using("data", "data-key:1", 6, 120),
            using("hpke", "k1", 5, 100)
        ]
    );
    intact(&s).await;
}

/// A forwarder's cursor is absent until committed, then holds the last commit (forward, or back
/// when an operator resets it), per name; a cursor commit leaves the audit chain alone.
pub async fn forward_cursors_are_kept_per_name<B: Backend>(b: &B) {
    let s = started(b).await;
    assert_eq!(s.forward_cursor("syslog").await.unwrap(), None);
    s.set_forward_cursor("syslog", 7, 100).await.unwrap();
    s.set_forward_cursor("archive", 2, 100).await.unwrap();
    s.set_forward_cursor("syslog", 12, 101).await.unwrap();
    assert_eq!(s.forward_cursor("syslog").await.unwrap(), Some(12));
    assert_eq!(s.forward_cursor("archive").await.unwrap(), Some(2));
    s.set_forward_cursor("archive", 0, 102).await.unwrap();
    assert_eq!(s.forward_cursor("archive").await.unwrap(), Some(0));
    assert_eq!(s.forward_cursor("syslog").await.unwrap(), Some(12));
    assert_eq!(s.forward_cursor("sys").await.unwrap(), None);
    assert_eq!(intact(&s).await, 1, "no audit entry for a cursor commit");
}

async fn operator_log<S: Store>(s: &S, name: &str) -> crate::OperatorLog {
    s.operator(name).await.unwrap().unwrap().log
}

/// An operator is read with what the log says of it: its disables and resets (in the detail
/// written now, and a reset's as written before), and its newest lock not lifted by a later
/// reset; another operator's entries (a name that extends this one) do not count.
pub async fn an_operator_is_read_with_its_log<B: Backend>(b: &B) {
    use crate::{OperatorLog, OperatorRecord};
    let s = started(b).await;
    let row = |name: &str| OperatorRecord {
        name: name.into(),
        role: "payments".into(),
        password_hash: "$argon2id$x".into(),
        totp_wrapped: vec![1; 8],
        created_at: 1,
        disabled_at: None,
        failed_attempts: 0,
        locked_until: None,
        last_totp_step: None,
        generation: 1,
        mac: "m".into(),
        log: OperatorLog::default(),
    };
    let entry = |at: i64, action: Action, detail: &str| {
        AuditDraft::new(at, Actor::Cli, action, Outcome::Ok).detail(detail)
    };
    for name in ["ann", "ann.b"] {
        assert!(
            s.insert_operator(row(name), entry(2, Action::OperatorAdd, name))
                .await
                .unwrap()
        );
    }
    assert_eq!(operator_log(&s, "ann").await, OperatorLog::default());
    for (at, action, detail) in [
        (
            3,
            Action::OperatorReset,
            "operator ann: new password and TOTP secret",
        ),
        (4, Action::OperatorDisable, "operator ann"),
        (5, Action::OperatorEnable, "operator ann"),
        (6, Action::OperatorLock, "operator ann"),
        (7, Action::OperatorReset, "operator ann.b"),
        (8, Action::OperatorLock, "operator ann.b"),
    ] {
        s.append_audit(entry(at, action, detail)).await.unwrap();
    }
    assert_eq!(
        operator_log(&s, "ann").await,
        OperatorLog {
            generation_bumps: 2,
            locked_at: Some(6)
        }
    );
    // A reset lifts the lock; a later lock counts again.
    s.append_audit(entry(9, Action::OperatorReset, "operator ann"))
        .await
        .unwrap();
    assert_eq!(
        operator_log(&s, "ann").await,
        OperatorLog {
            generation_bumps: 3,
            locked_at: None
        }
    );
    s.append_audit(entry(10, Action::OperatorLock, "operator ann"))
        .await
        .unwrap();
    assert_eq!(operator_log(&s, "ann").await.locked_at, Some(10));
    let listed = s.operators().await.unwrap();
    assert_eq!(listed[0].log.locked_at, Some(10));
    assert_eq!(
        listed[1].log.generation_bumps, 1,
        "ann.b: its own reset only"
    );
    intact(&s).await;
}

/// One `#[tokio::test]` per conformance case for the backend `$backend` (an expression).
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@cases $backend;
            replay_is_refused_atomically,
            stored_tokens_are_existing_or_taken,
            cvc_is_consumed_exactly_once,
            concurrent_writers_leave_a_verifiable_chain,
            a_full_disk_leaves_nothing_half_written,
            a_deleted_token_is_gone_from_the_files,
            a_broken_chain_refuses_appends,
            api_keys_rotate_and_record_use,
            a_rewrap_replaces_only_what_was_read,
            data_keys_count_and_move_values_once,
            an_atomic_batch_stores_all_or_nothing,
            purged_tokens_are_gone_from_the_files,
            the_purge_runs_in_audited_batches,
            an_erased_subject_is_gone,
            key_uses_add_up,
            an_operator_is_read_with_its_log,
            forward_cursors_are_kept_per_name,
        );
    };
    (@cases $backend:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::conformance::$case(&$backend).await;
            }
        )*
    };
}

//! Verification of a stored chain through the [`Store`] trait: the walk `audit verify` and
//! `GET /v1/audit/verify` run, and the incremental one a serving vault runs in its upkeep (the
//! entries after the last one it verified). Kept apart from [`crate::audit`], which knows nothing
//! of stores.

use fieldseal_core::at_rest::SymmetricKey;
use serde::Serialize;

use crate::audit::{Broken, ExpectedHead, Head, Verifier};
use crate::{Store, StoreError};

/// The result of verifying the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries that verified, from the first.
    pub verified: i64,
    /// The first break, if any.
    pub broken: Option<Broken>,
    /// The anchored head the walk ended at.
    pub head: Option<Head>,
}

impl Verification {
    /// Whether every entry verified up to the anchored head.
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// The last entry an incremental verification found authentic: its position and hash (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its sequence number.
    pub seq: i64,
    /// Its hash, hex.
    pub hash: String,
}

/// How far [`verify_since`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The last entry that verified (the checkpoint it started from if none did; none before the
    /// first entry).
    pub checkpoint: Option<Checkpoint>,
    /// The first break after the checkpoint, if any.
    pub broken: Option<Broken>,
    /// Whether the walk reached the anchored head (and checked it); `false` when it stopped at
    /// its entry budget, or at a break.
    pub complete: bool,
}

/// How a walk ended.
enum Walked {
    /// At an entry that does not verify.
    Broken(Broken),
    /// At the anchored head (or the log's end).
    Reached,
    /// After its entry budget, before the head.
    Paused,
}

/// Feeds `verifier` the stored entries after the last one it verified, up to `stop`, at most
/// `budget` of them.
async fn walk<S: Store>(
    store: &S,
    verifier: &mut Verifier<'_>,
    stop: i64,
    budget: i64,
) -> Result<Walked, StoreError> {
    let start = verifier.verified();
    let mut after = start;
    while after < stop {
        if after - start >= budget {
            return Ok(Walked::Paused);
        }
        let page = store.audit_log(after, 1000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        for entry in &page {
            if entry.seq > stop {
                return Ok(Walked::Reached);
            }
            if let Err(broken) = verifier.check(entry) {
                return Ok(Walked::Broken(broken));
            }
        }
    }
    Ok(Walked::Reached)
}

/// After a walk that reached `head`: the head against the chain, and no entries beyond a head
/// that did not move meanwhile (those were not appended by a vault).
async fn check_end<S: Store>(
    store: &S,
    verifier: &Verifier<'_>,
    head: Option<&Head>,
) -> Result<Option<Broken>, StoreError> {
    let mut broken = verifier.finish(head).err();
    if broken.is_none()
        && let Some(h) = head
        && let Some(last) = store.last_audit_entry().await?
        && last.seq > h.seq
        && store.audit_head().await?.as_ref() == Some(h)
    {
        broken = Some(Broken::at(h.seq + 1, "entries follow the anchored head"));
    }
    Ok(broken)
}

/// Verifies the stored entries in order up to the anchored head, and the head itself. The head is
/// read first, so entries a running vault appends during the walk (after the head was read) are
/// left for the next verification instead of being mistaken for entries past the head. Without a
/// head, every entry is walked, and the missing head is reported.
pub async fn verify_chain<S: Store>(
    store: &S,
    key: &SymmetricKey,
    expect: Option<ExpectedHead>,
) -> Result<Verification, StoreError> {
    let head = store.audit_head().await?;
    let stop = head.as_ref().map_or(i64::MAX, |h| h.seq);
    let mut verifier = Verifier::new(key, expect);
    let broken = match walk(store, &mut verifier, stop, i64::MAX).await? {
        Walked::Broken(broken) => Some(broken),
        Walked::Reached | Walked::Paused => check_end(store, &verifier, head.as_ref()).await?,
    };
    Ok(Verification {
        verified: verifier.verified(),
        broken,
        head,
    })
}

/// Verifies the entries after `from` (from the first without one), as [`verify_chain`] does,
/// at most `budget` of them; when it reaches the anchored head, the head too. A serving vault
/// calls it every few seconds with the checkpoint of its last call, so each entry is verified
/// once: entries at or before the checkpoint are not read again.
pub async fn verify_since<S: Store>(
    store: &S,
    key: &SymmetricKey,
    from: Option<&Checkpoint>,
    budget: i64,
) -> Result<Progress, StoreError> {
    let head = store.audit_head().await?;
    let stop = head.as_ref().map_or(i64::MAX, |h| h.seq);
    let mut verifier = from
        .and_then(|c| Verifier::resume(key, c.seq, &c.hash))
        .unwrap_or_else(|| Verifier::new(key, None));
    let (broken, complete) = match walk(store, &mut verifier, stop, budget.max(1)).await? {
        Walked::Broken(broken) => (Some(broken), false),
        Walked::Paused => (None, false),
        Walked::Reached => {
            let broken = check_end(store, &verifier, head.as_ref()).await?;
            let complete = broken.is_none();
            (broken, complete)
        }
    };
    let checkpoint = (verifier.verified() > 0).then(|| Checkpoint {
        seq: verifier.verified(),
        hash: verifier.last_hash(),
    });
    Ok(Progress {
        checkpoint,
        broken,
        complete,
    })
}

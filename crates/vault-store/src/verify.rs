//! Verification of a stored chain through the [`Store`] trait: the walk `audit verify` and
//! `GET /v1/audit/verify` run. Kept apart from [`crate::audit`], which knows nothing of stores.

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
    let mut after = 0;
    'pages: while after < stop {
        let page = store.audit_log(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            if entry.seq > stop {
                break 'pages;
            }
            if let Err(broken) = verifier.check(entry) {
                return Ok(Verification {
                    verified: verifier.verified(),
                    broken: Some(broken),
                    head,
                });
            }
        }
    }
    let mut broken = verifier.finish(head.as_ref()).err();
    if broken.is_none()
        && let Some(h) = &head
        && let Some(last) = store.last_audit_entry().await?
        && last.seq > h.seq
        && store.audit_head().await?.as_ref() == Some(h)
    {
        // Entries beyond a head that did not move meanwhile: not appended by a vault.
        broken = Some(Broken::at(h.seq + 1, "entries follow the anchored head"));
    }
    Ok(Verification {
        verified: verifier.verified(),
        broken,
        head,
    })
}

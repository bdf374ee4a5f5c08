//! The audit log: every tokenize, reveal, deletion, denial and key or API-key change, appended in
//! the same transaction as the action, each entry committing to the one before it:
//!
//! ```text
//! hash_n = SHA-256("fieldseal audit v1\0" || hash_{n-1} || canonical_json(entry_n)),  hash_0 = 32 zero bytes
//! ```
//!
//! `canonical_json` is the entry's members in this order, compact: `seq, at, actor, action, token,
//! kind, purpose, outcome, detail`. Entries hold who, what, which token, the purpose and the
//! outcome; never a value.

use fieldseal_core::at_rest::chain_hash;
use serde::Serialize;

use crate::store::{Store, StoreError};

/// An entry before it is numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    /// Unix seconds.
    pub at: i64,
    /// Who: `apikey:<id>`, `cli`, or `anonymous`.
    pub actor: String,
    /// What: `tokenize`, `reveal`, `delete`, `auth`, `key.rotate`, `apikey.create` ...
    pub action: String,
    /// The token concerned.
    pub token: Option<String>,
    /// The field kind concerned.
    pub kind: Option<String>,
    /// The purpose a reveal stated.
    pub purpose: Option<String>,
    /// `ok`, `plain`, `masked`, `denied`, `refused`, `not_found` ...
    pub outcome: String,
    /// More context (an error code, a key id, a role). Never a value.
    pub detail: String,
}

impl AuditDraft {
    /// A draft with the required members.
    pub fn new(at: i64, actor: &str, action: &str, outcome: &str) -> Self {
        Self {
            at,
            actor: actor.into(),
            action: action.into(),
            token: None,
            kind: None,
            purpose: None,
            outcome: outcome.into(),
            detail: String::new(),
        }
    }

    /// Sets the token.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Sets the purpose.
    pub fn purpose(mut self, purpose: &str) -> Self {
        self.purpose = Some(purpose.into());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Token.
    pub token: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Outcome.
    pub outcome: String,
    /// Detail.
    pub detail: String,
    /// The previous entry's hash, hex.
    pub prev_hash: String,
    /// This entry's hash, hex.
    pub hash: String,
}

#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at: i64,
    actor: &'a str,
    action: &'a str,
    token: Option<&'a str>,
    kind: Option<&'a str>,
    purpose: Option<&'a str>,
    outcome: &'a str,
    detail: &'a str,
}

/// The bytes an entry's hash commits to.
pub fn canonical(seq: i64, d: &AuditDraft) -> Vec<u8> {
    let c = Canonical {
        seq,
        at: d.at,
        actor: &d.actor,
        action: &d.action,
        token: d.token.as_deref(),
        kind: d.kind.as_deref(),
        purpose: d.purpose.as_deref(),
        outcome: &d.outcome,
        detail: &d.detail,
    };
    // Serializing strings and integers cannot fail.
    serde_json::to_vec(&c).unwrap_or_default()
}

/// The hash of entry `seq` following `prev`.
pub fn entry_hash(prev: &[u8; 32], seq: i64, d: &AuditDraft) -> [u8; 32] {
    chain_hash(prev, &canonical(seq, d))
}

/// The MAC that anchors the chain's head: HMAC-SHA256 under the audit key (wrapped under the KEK
/// like every vault key) over the head's position and hash.
pub fn head_mac(key: &fieldseal_core::at_rest::SymmetricKey, seq: i64, hash_hex: &str) -> String {
    hex(&key.mac("audit-head", &[&seq.to_be_bytes(), hash_hex.as_bytes()]))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The first entry that does not verify.
    pub seq: i64,
    /// Why.
    pub reason: String,
}

/// Walks entries in order, carrying the chain state. Feed every entry from seq 1.
#[derive(Debug)]
pub struct Verifier {
    prev_hash: [u8; 32],
    next_seq: i64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            prev_hash: [0; 32],
            next_seq: 1,
        }
    }
}

impl Verifier {
    /// Checks the next entry.
    pub fn check(&mut self, r: &AuditRecord) -> Result<(), Broken> {
        let broken = |reason: &str| Broken {
            seq: r.seq,
            reason: reason.into(),
        };
        if r.seq != self.next_seq {
            return Err(Broken {
                seq: self.next_seq,
                reason: format!("entry missing (found seq {} instead)", r.seq),
            });
        }
        if r.prev_hash != hex(&self.prev_hash) {
            return Err(broken("prev_hash does not match the previous entry's hash"));
        }
        let draft = AuditDraft {
            at: r.at,
            actor: r.actor.clone(),
            action: r.action.clone(),
            token: r.token.clone(),
            kind: r.kind.clone(),
            purpose: r.purpose.clone(),
            outcome: r.outcome.clone(),
            detail: r.detail.clone(),
        };
        let computed = entry_hash(&self.prev_hash, r.seq, &draft);
        if hex(&computed) != r.hash {
            return Err(broken("contents do not match the entry's hash"));
        }
        self.prev_hash = computed;
        self.next_seq += 1;
        Ok(())
    }

    /// How many entries verified.
    pub fn verified(&self) -> i64 {
        self.next_seq - 1
    }

    /// After the last entry: checks the anchored head `(seq, hash, mac)` against the chain, so
    /// that deleted newest entries, or a rewritten chain, are caught.
    pub fn check_head(
        &self,
        head: Option<&(i64, String, String)>,
        key: &fieldseal_core::at_rest::SymmetricKey,
    ) -> Result<(), Broken> {
        let last = self.verified();
        let Some((seq, hash, mac)) = head else {
            if last == 0 {
                return Ok(());
            }
            return Err(Broken {
                seq: last,
                reason: "the anchored head is missing".into(),
            });
        };
        if !fieldseal_core::at_rest::ct_eq(head_mac(key, *seq, hash).as_bytes(), mac.as_bytes()) {
            return Err(Broken {
                seq: *seq,
                reason: "the anchored head's MAC does not verify".into(),
            });
        }
        if *seq > last {
            return Err(Broken {
                seq: last + 1,
                reason: format!(
                    "entries {} to {seq} are missing (the log was cut short)",
                    last + 1
                ),
            });
        }
        if *seq < last {
            return Err(Broken {
                seq: seq + 1,
                reason: "entries follow the anchored head".into(),
            });
        }
        if *hash != hex(&self.prev_hash) {
            return Err(Broken {
                seq: *seq,
                reason: "the chain does not end at the anchored head".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = [0u8; 32];
        (1..=n)
            .map(|seq| {
                let d = AuditDraft::new(seq, "cli", "reveal", "plain")
                    .token("tok_x")
                    .purpose("chargeback");
                let h = entry_hash(&prev, seq, &d);
                let r = AuditRecord {
                    seq,
                    at: d.at,
                    actor: d.actor,
                    action: d.action,
                    token: d.token,
                    kind: d.kind,
                    purpose: d.purpose,
                    outcome: d.outcome,
                    detail: d.detail,
                    prev_hash: hex(&prev),
                    hash: hex(&h),
                };
                prev = h;
                r
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies_and_tampering_names_the_entry() {
        let entries = chain(5);
        let mut v = Verifier::default();
        for e in &entries {
            v.check(e).unwrap();
        }
        assert_eq!(v.verified(), 5);

        let mut tampered = entries.clone();
        tampered[2].purpose = Some("chargebacc".into());
        let mut v = Verifier::default();
        let err = tampered.iter().find_map(|e| v.check(e).err()).unwrap();
        assert_eq!(err.seq, 3);

        let mut missing = entries.clone();
        missing.remove(1);
        let mut v = Verifier::default();
        let err = missing.iter().find_map(|e| v.check(e).err()).unwrap();
        assert_eq!(err.seq, 2);
    }
}

/// The result of verifying the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries that verified, from the first.
    pub verified: i64,
    /// The first break, if any.
    pub broken: Option<Broken>,
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
/// head, every entry is walked, and any entry at all is reported (the head was removed).
pub async fn verify_chain<S: Store>(
    store: &S,
    key: &fieldseal_core::at_rest::SymmetricKey,
) -> Result<Verification, StoreError> {
    let head = store.audit_head().await?;
    let stop = head.as_ref().map_or(i64::MAX, |h| h.0);
    let mut verifier = Verifier::default();
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
                });
            }
        }
    }
    Ok(Verification {
        verified: verifier.verified(),
        broken: verifier.check_head(head.as_ref(), key).err(),
    })
}

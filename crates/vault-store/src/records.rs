//! What the vault stores. Everything is either public (key ids, public keys, hints, fingerprints,
//! audit entries, API key digests) or encrypted (values under a data key; private keys and data
//! keys under the key-encryption key). The store never sees a value in the clear, and nothing it
//! returns is trusted until checked: rows by their MACs ([`crate::rows`]), values by their AES-GCM
//! associated data ([`token_aad`]).

use crate::audit::{AuditDraft, EnvelopeRef};

/// A stored HPKE key pair; the private scalar is wrapped under the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpkeKeyRecord {
    /// Key id.
    pub kid: String,
    /// Uncompressed public point.
    pub public_key: Vec<u8>,
    /// The wrapped private scalar (associated data: `hpke-key:<kid>`).
    pub wrapped_private: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub expires_at: i64,
    /// When the key was retired; a retired key opens nothing.
    pub retired_at: Option<i64>,
    /// MAC over every other column under the row key, hex ([`crate::rows::RowKey`]).
    pub mac: String,
    /// Not a column: set by the store when it reads the row, whether the audit log holds a
    /// `key.retire` entry for this key. A row that says live while the log says retired was put
    /// back from an older copy.
    pub retired_in_log: bool,
}

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token.
    pub token: String,
    /// Field kind name.
    pub kind: String,
    /// Which data key encrypted the value.
    pub data_key_id: i64,
    /// `nonce || ciphertext || tag` of the value; associated data [`token_aad`] of this record.
    pub ciphertext: Vec<u8>,
    /// Keyed fingerprint of the value (empty for kinds without one).
    pub fingerprint: String,
    /// Card brand (PAN only).
    pub brand: Option<String>,
    /// First six digits (PAN only).
    pub bin: Option<String>,
    /// Last four digits (PAN only).
    pub last4: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// When the value is purged (its TTL or its kind's retention period).
    pub expires_at: Option<i64>,
    /// The data subject (keyed hash of the merchant's customer id) whose key encrypts the value;
    /// none: the value is under the data key.
    pub subject: Option<String>,
    /// Not a column: set by the store when it reads the row, whether the audit log holds an entry
    /// that ended this token (a deletion, or the plain reveal that used a card security code). A
    /// random token is never issued twice, so such a row was put back from an older copy.
    pub ended_in_log: bool,
}

/// Length-prefixed parts under a label: no two different rows share an encoding.
pub(crate) fn encode_parts(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + parts.iter().map(|p| p.len() + 8).sum::<usize>());
    for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// An optional number as a part: empty for none, eight bytes big-endian otherwise.
pub(crate) fn opt_i64(v: Option<i64>) -> Vec<u8> {
    v.map(|v| v.to_be_bytes().to_vec()).unwrap_or_default()
}

/// An optional text as a part: a presence byte, then the text.
pub(crate) fn opt_text(v: Option<&str>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(t) => {
            let mut out = vec![1];
            out.extend_from_slice(t.as_bytes());
            out
        }
    }
}

/// The associated data a token's value is encrypted with: every column of the row but the
/// ciphertext. Changing the kind, the expiry, the data key id, a hint, the subject, or moving the
/// ciphertext to another token makes the value fail authentication. (Rows without a subject keep
/// the v2 encoding they were written with.)
pub fn token_aad(t: &TokenRecord) -> Vec<u8> {
    let (brand, bin, last4) = (
        opt_text(t.brand.as_deref()),
        opt_text(t.bin.as_deref()),
        opt_text(t.last4.as_deref()),
    );
    let (data_key, created, expires) = (
        t.data_key_id.to_be_bytes(),
        t.created_at.to_be_bytes(),
        opt_i64(t.expires_at),
    );
    let mut parts: Vec<&[u8]> = vec![
        t.token.as_bytes(),
        t.kind.as_bytes(),
        &data_key,
        t.fingerprint.as_bytes(),
        &brand,
        &bin,
        &last4,
        &created,
        &expires,
    ];
    match &t.subject {
        None => encode_parts("fieldseal token v2", &parts),
        Some(subject) => {
            parts.push(subject.as_bytes());
            encode_parts("fieldseal token v3", &parts)
        }
    }
}

/// The associated data a subject's key is wrapped with: the subject, the data key's id and the
/// key's creation time, so a wrapped key moved to another subject, relabelled with another data
/// key, or re-dated (to pass for one made after an erasure) fails.
pub fn encode_subject_key_aad(subject: &str, data_key_id: i64, created_at: i64) -> Vec<u8> {
    encode_parts(
        "fieldseal subject key v1",
        &[
            subject.as_bytes(),
            &data_key_id.to_be_bytes(),
            &created_at.to_be_bytes(),
        ],
    )
}

/// A data key's bookkeeping (its key material is the wrapped secret `data-key:<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    /// Version: the `data_key_id` of the values it encrypts.
    pub id: i64,
    /// When it was made.
    pub created_at: i64,
    /// Encryptions counted under it (every node adds its own every few seconds).
    pub encryptions: i64,
    /// Values stored under it now.
    pub values: i64,
}

/// A value moved to a newer data key: the row as it was read, and its new key and ciphertext.
#[derive(Debug, Clone)]
pub struct Reencrypted {
    /// The token.
    pub token: String,
    /// The data key it was read under.
    pub old_data_key_id: i64,
    /// The ciphertext it was read with.
    pub old_ciphertext: Vec<u8>,
    /// The new data key.
    pub data_key_id: i64,
    /// The new ciphertext (the row, with the new data key id, as associated data).
    pub ciphertext: Vec<u8>,
}

/// A data subject's key, wrapped by a data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKeyRecord {
    /// Keyed hash of the merchant's customer id.
    pub subject: String,
    /// Which data key wrapped it.
    pub data_key_id: i64,
    /// `nonce || ciphertext || tag` of the key (associated data: [`encode_subject_key_aad`]).
    pub wrapped: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// Not a column: set by the store when it reads the row, whether the audit log holds a
    /// `subject.erase` entry for this subject at or after the key's creation (seconds). Such a key
    /// was put back from a copy taken before the erasure (or, within the erasure's own second,
    /// made again at once: then refused as well, for that second).
    pub erased_in_log: bool,
}

/// A stored API key: its public id, the digest of its secret and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id (the part of the key after `fsk_` and before the secret).
    pub id: String,
    /// SHA-256 digest of the secret.
    pub digest: Vec<u8>,
    /// Role name.
    pub role: String,
    /// Free text label.
    pub label: String,
    /// Creation time.
    pub created_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// Expiry time: the key stops authenticating then.
    pub expires_at: Option<i64>,
    /// After a rotation: the digest of the secret before it, still accepted until
    /// `previous_expires_at` (the overlap).
    pub previous_digest: Option<Vec<u8>>,
    /// The end of the previous secret's overlap.
    pub previous_expires_at: Option<i64>,
    /// The SHA-256 (hex) of the client certificate the key is bound to: it authenticates only on
    /// a mutual-TLS connection presenting that certificate.
    pub client_cert_sha256: Option<String>,
    /// When the key last authenticated (to the hour: written at most once an hour). Not covered
    /// by the MAC: it changes on use. A database writer can move it, which only matters for
    /// disabling keys left unused.
    pub last_used_at: Option<i64>,
    /// MAC over every other column under the row key, hex ([`crate::rows::RowKey`]).
    pub mac: String,
    /// Not a column: set by the store when it reads the row, whether the audit log holds an
    /// `apikey.revoke` entry for this key. A row that says active while the log says revoked was
    /// put back from an older copy.
    pub revoked_in_log: bool,
}

/// A token to store as part of a batch.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token and its encrypted value.
    pub token: TokenRecord,
    /// The envelope it came from.
    pub envelope: EnvelopeRef,
    /// The audit entry if it is stored (it names the envelope).
    pub audit: AuditDraft,
    /// The audit entry if the envelope turns out to be a replay.
    pub replayed_audit: AuditDraft,
}

/// What happened to a token insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored and audited (the entry names the envelope).
    Inserted,
    /// The envelope id was seen before (in the replay table or the audit log): nothing stored.
    Replayed,
    /// The token is already taken by another value (random or format-preserving collision):
    /// nothing stored, try another token.
    TokenTaken,
    /// A deterministic token that exists already for the same kind: the envelope consumed, audited.
    Existing,
}

impl InsertOutcome {
    /// Whether the item's value is stored under its token (inserted now, or there already).
    pub fn stored(self) -> bool {
        matches!(self, Self::Inserted | Self::Existing)
    }
}

/// How much a key was used, as counted by the vault's nodes (bookkeeping for `keys status`; not
/// authenticated: a database writer can change it, and gains nothing by it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUse {
    /// `hpke`, `data`, `fingerprint` or `deterministic`.
    pub kind: String,
    /// The key's id (kid or secret name).
    pub id: String,
    /// Uses counted (envelopes opened, values encrypted or opened, fingerprints, tokens or subject
    /// hashes made).
    pub uses: i64,
    /// The last use, in Unix seconds.
    pub last_used_at: i64,
}

/// A stored operator (a person signing in with a password and a TOTP code). Every column is
/// covered by the row's MAC, the counters and the last TOTP step included: a database writer can
/// neither lift a lockout nor make a used code usable again.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    /// Name (`[a-z0-9._-]`, 1 to 64 characters).
    pub name: String,
    /// Role name.
    pub role: String,
    /// Argon2id PHC string of the password.
    pub password_hash: String,
    /// The TOTP secret wrapped under the key-encryption key (associated data
    /// `operator-totp:<name>:<generation>`).
    pub totp_wrapped: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// When the operator was disabled; a disabled operator cannot sign in.
    pub disabled_at: Option<i64>,
    /// Failed sign-ins since the last success or lock.
    pub failed_attempts: i64,
    /// Locked until then (failed sign-ins).
    pub locked_until: Option<i64>,
    /// The last TOTP time step accepted; codes of that step or earlier are refused (replay).
    pub last_totp_step: Option<i64>,
    /// Bumped by every reset and disable: sessions of an earlier generation end.
    pub generation: i64,
    /// MAC over every other column under the row key, hex ([`crate::rows::RowKey`]).
    pub mac: String,
    /// What the audit log says of the operator (read with the row, not stored in it): a row put
    /// back from an older copy contradicts it.
    pub log: OperatorLog,
}

/// The operator's changes the audit log records (entries `operator.disable`, `.reset` and
/// `.lock` whose detail is `operator NAME`, or a reset's `operator NAME: new password and TOTP
/// secret` as written before this check existed; partial indexes `audit_operator_changes` and
/// `audit_operator_locks`). A MAC shows that a row was written by the vault, not that it is the
/// newest version: these show what the newest version must at least say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorLog {
    /// Disables and resets: each bumped the row's generation (1 at `operator add`).
    pub generation_bumps: i64,
    /// The newest lock not lifted by a later reset: when it was written.
    pub locked_at: Option<i64>,
}

impl OperatorRecord {
    /// Why the row contradicts the audit log (a row put back from before a disable, reset or
    /// lock), if it does. A lock sets `locked_until` past its entry's time and only a reset
    /// clears it (a later success leaves the past time in place), so the rule needs no setting.
    pub fn contradicts_log(&self) -> Option<&'static str> {
        if self.generation < self.log.generation_bumps.saturating_add(1) {
            return Some("older than the log's last disable or reset");
        }
        if let Some(at) = self.log.locked_at
            && self.locked_until.is_none_or(|u| u <= at)
        {
            return Some("without the lock the log holds");
        }
        None
    }
}

impl std::fmt::Debug for OperatorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password hash and the wrapped secret are not secrets in the clear, but nothing is
        // gained by printing them.
        f.debug_struct("OperatorRecord")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .field("failed_attempts", &self.failed_attempts)
            .field("locked_until", &self.locked_until)
            .field("last_totp_step", &self.last_totp_step)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The associated data an operator's TOTP secret is encrypted with: the name and the generation,
/// so a secret moved to another operator, or put back from before a reset, fails.
pub fn totp_aad(name: &str, generation: i64) -> Vec<u8> {
    encode_parts(
        "fieldseal operator totp v1",
        &[name.as_bytes(), &generation.to_be_bytes()],
    )
}

/// An operator's session: the SHA-256 of its random token (never the token), the operator and
/// the operator's generation it was made in, its times. Covered by a MAC, like operator rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the session token, hex.
    pub id: String,
    /// The operator's name.
    pub operator: String,
    /// The operator's generation when the session was made.
    pub generation: i64,
    /// Sign-in time.
    pub created_at: i64,
    /// Last request.
    pub last_seen_at: i64,
    /// The last second factor entered (sign-in or step-up).
    pub step_up_at: i64,
    /// MAC over every other column under the row key, hex.
    pub mac: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_row_contradicts_the_log_when_older_than_it() {
        let row = |generation, locked_until, bumps, locked_at| OperatorRecord {
            name: "ann".into(),
            role: "payments".into(),
            password_hash: String::new(),
            totp_wrapped: Vec::new(),
            created_at: 1,
            disabled_at: None,
            failed_attempts: 0,
            locked_until,
            last_totp_step: None,
            generation,
            mac: String::new(),
            log: OperatorLog {
                generation_bumps: bumps,
                locked_at,
            },
        };
        assert_eq!(row(1, None, 0, None).contradicts_log(), None);
        assert_eq!(row(3, None, 2, None).contradicts_log(), None);
        // Put back from before a disable or reset.
        assert!(row(2, None, 2, None).contradicts_log().is_some());
        // A lock at 100: the row must hold a lock time past it, expired or not.
        assert_eq!(row(1, Some(1000), 0, Some(100)).contradicts_log(), None);
        assert!(row(1, None, 0, Some(100)).contradicts_log().is_some());
        assert!(row(1, Some(100), 0, Some(100)).contradicts_log().is_some());
        assert!(row(1, Some(50), 0, Some(100)).contradicts_log().is_some());
    }
}

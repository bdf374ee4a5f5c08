//! Storage behind one async trait. SQLite ([`crate::sqlite::SqliteStore`]) is the embedded default;
//! a PostgreSQL implementation plugs in behind the same trait, so callers do not change.
//!
//! Everything stored is either public (key ids, public keys, hints, fingerprints, audit entries,
//! API key digests) or encrypted (values under a data key; private keys and data keys under the
//! key-encryption key). The store never sees a value in the clear.

use std::future::Future;

use crate::audit::{AuditDraft, AuditRecord};

/// Why a storage operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk is full: nothing was written.
    #[error("storage is full")]
    Full,
    /// The database is locked by another process for too long.
    #[error("storage is busy")]
    Busy,
    /// Anything else the database reported.
    #[error("storage error: {0}")]
    Database(String),
}

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
    /// `nonce || ciphertext || tag` of the value, the token as associated data.
    pub ciphertext: Vec<u8>,
    /// Keyed fingerprint of the value.
    pub fingerprint: String,
    /// Card brand (PAN only).
    pub brand: Option<String>,
    /// First six digits (PAN only).
    pub bin: Option<String>,
    /// Last four digits (PAN only).
    pub last4: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// When the value is purged (card security codes).
    pub expires_at: Option<i64>,
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
}

/// A token to store as part of a batch.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token and its encrypted value.
    pub token: TokenRecord,
    /// The envelope it came from.
    pub envelope_id: [u8; 16],
    /// Until when the envelope id is kept against replay.
    pub replay_until: i64,
    /// The audit entry if it is stored.
    pub audit: AuditDraft,
    /// The audit entry if the envelope turns out to be a replay.
    pub replayed_audit: AuditDraft,
}

/// What happened to a token insertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored, replay id recorded, audited.
    Inserted,
    /// The envelope id was seen before: nothing stored.
    Replayed,
    /// The token is already taken by another value (random or format-preserving collision):
    /// nothing stored, try another token.
    TokenTaken,
    /// A deterministic token that exists already for the same kind: replay id recorded, audited.
    Existing,
}

/// The vault's storage.
pub trait Store: Send + Sync + 'static {
    /// Creates or upgrades the schema.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A named secret (wrapped under the key-encryption key).
    fn secret(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Stores a named secret unless one exists; returns whether it was stored.
    fn put_secret(
        &self,
        name: &str,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// All HPKE keys, retired ones included, oldest first.
    fn hpke_keys(&self) -> impl Future<Output = Result<Vec<HpkeKeyRecord>, StoreError>> + Send;

    /// Adds an HPKE key.
    fn insert_hpke_key(
        &self,
        key: HpkeKeyRecord,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Retires an HPKE key; returns whether a live key with that id existed.
    fn retire_hpke_key(
        &self,
        kid: &str,
        at: i64,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a batch of tokens in one transaction: per item, the replay id, the token and its audit
    /// entry (or, for a replay, the refusal's audit entry), each item isolated by a savepoint. One
    /// outcome per item, in order; a storage failure fails the whole batch and keeps nothing.
    fn insert_tokens(
        &self,
        items: Vec<NewToken>,
    ) -> impl Future<Output = Result<Vec<InsertOutcome>, StoreError>> + Send;

    /// A token, unless deleted or expired at `now`.
    fn token(
        &self,
        token: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;

    /// Deletes `consume`d tokens (card security codes revealed in the clear: `(index into audit,
    /// token)`) and appends the audit entries, in one transaction. A token another request
    /// consumed first is not deleted again: its audit entry's outcome becomes `not_found` and its
    /// flag in the result is `false`, so the caller must not disclose it.
    fn record_reveals(
        &self,
        audit: Vec<AuditDraft>,
        consume: Vec<(usize, String)>,
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Deletes a token and audits it; returns whether it existed.
    fn delete_token(
        &self,
        token: &str,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Appends one audit entry.
    fn append_audit(
        &self,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Audit entries with `seq > after`, at most `limit`, in order.
    fn audit_log(
        &self,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// Adds an API key.
    fn insert_api_key(
        &self,
        key: ApiKeyRecord,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The API key with this id.
    fn api_key(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, StoreError>> + Send;

    /// All API keys.
    fn api_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyRecord>, StoreError>> + Send;

    /// Revokes an API key; returns whether a live key with that id existed.
    fn revoke_api_key(
        &self,
        id: &str,
        at: i64,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes tokens expired at `now` (auditing each) and replay ids past their window; returns
    /// both counts.
    fn purge(&self, now: i64) -> impl Future<Output = Result<(u64, u64), StoreError>> + Send;

    /// Sets the key that authenticates the audit chain's head. Every append updates the head
    /// (`seq`, `hash`) and its MAC in the same transaction, so deleting the newest entries, or
    /// rewriting the chain, is detected by whoever holds the key.
    fn set_audit_key(&self, key: fieldseal_core::at_rest::SymmetricKey);

    /// The anchored head: `(seq, hash, mac)`, if any entry exists.
    fn audit_head(
        &self,
    ) -> impl Future<Output = Result<Option<(i64, String, String)>, StoreError>> + Send;
}

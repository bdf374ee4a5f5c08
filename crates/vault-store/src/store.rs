//! The trait every backend implements. Methods are single database operations, each one
//! transaction; every write that must be audited takes its audit entries and appends them in the
//! same transaction, through [`crate::audit::AuditChain::begin`], so an action and its record
//! commit together or not at all. Compositions of several calls (authenticate, reveal, rotate)
//! live in the service, above any backend.

use std::future::Future;

use fieldseal_core::at_rest::SymmetricKey;

use crate::audit::{AuditDraft, AuditRecord, Head};
use crate::{
    ApiKeyRecord, DataKeyRecord, HpkeKeyRecord, InsertOutcome, KeyUse, NewToken, OperatorRecord,
    Reencrypted, SessionRecord, StoreError, SubjectKeyRecord, TokenRecord,
};

/// The vault's storage.
pub trait Store: Send + Sync + 'static {
    /// Creates or upgrades the schema.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How busy its connections are now, for the metrics (`None`: the backend does not say).
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }

    /// Sets the key that authenticates the audit chain. Appends fail until it is set.
    fn set_audit_key(&self, key: SymmetricKey);

    /// A named secret (wrapped under the key-encryption key).
    fn secret(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Every stored secret's name and creation time, by name (no secret).
    fn secrets_made(&self) -> impl Future<Output = Result<Vec<(String, i64)>, StoreError>> + Send;

    /// Stores a named secret unless one exists, auditing it; returns whether it was stored.
    fn put_secret(
        &self,
        name: &str,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the wrapped form of a named secret (a KEK rotation) if it is still `old`, auditing
    /// it; returns whether it was replaced.
    fn rewrap_secret(
        &self,
        name: &str,
        old: Vec<u8>,
        new: Vec<u8>,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a new data key (the wrapped secret `data-key:<id>` and its bookkeeping row, count 0)
    /// unless that version exists, auditing it; returns whether it was stored.
    fn add_data_key(
        &self,
        id: i64,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every data key's bookkeeping, oldest first, with the number of values under it.
    fn data_keys(&self) -> impl Future<Output = Result<Vec<DataKeyRecord>, StoreError>> + Send;

    /// Adds `n` to the encryptions counted under data key `id`.
    fn count_encryptions(
        &self,
        id: i64,
        n: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds key uses a node counted: each one's count added to the key's, and its last use kept
    /// if later than the stored one.
    fn record_key_uses(
        &self,
        uses: Vec<KeyUse>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every key's counted uses.
    fn key_uses(&self) -> impl Future<Output = Result<Vec<KeyUse>, StoreError>> + Send;

    /// The last audit entry (`seq`) the forwarder named `name` knows its receiver holds, if it
    /// has committed one. Bookkeeping, not authenticated: moving it forward makes a gap in the
    /// sequence the receiver sees, moving it back repeats entries.
    fn forward_cursor(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Commits the forwarder `name`'s cursor at `seq` (made at `at`, Unix seconds), replacing
    /// the one stored.
    fn set_forward_cursor(
        &self,
        name: &str,
        seq: i64,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` token rows under a data key older than `below`, with tokens after `after`,
    /// in token order (`ended_in_log` is not read: always `false`).
    fn tokens_to_reencrypt(
        &self,
        below: i64,
        after: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<TokenRecord>, StoreError>> + Send;

    /// Moves values to a newer data key in one transaction, each only if its row still holds the
    /// ciphertext read (a delete or another node's move wins); appends `audit` (its detail
    /// completed with the count) if any moved. Returns how many moved.
    fn reencrypt_tokens(
        &self,
        rows: Vec<Reencrypted>,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Starts the audit log of a new vault: stores the wrapped audit key under `name` and the
    /// log's first entry. The only append allowed on an empty log; returns `false` (and writes
    /// nothing) if the secret, any entry or a head exists already.
    fn begin_audit_log(
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

    /// Retires an HPKE key (sets `retired_at` and the row's new MAC); returns whether a key with
    /// that id was live, or retiring later than `at` (a retirement brought forward).
    fn retire_hpke_key(
        &self,
        kid: &str,
        at: i64,
        mac: String,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces an HPKE key's wrapped private key and its row MAC (a KEK rotation) if the wrapped
    /// key is still `old`, auditing it; returns whether it was replaced.
    fn rewrap_hpke_key(
        &self,
        kid: &str,
        old: Vec<u8>,
        new: Vec<u8>,
        mac: String,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a batch of tokens in one transaction: per item, the token and its audit entry, which
    /// names the envelope (or, for a replay, the refusal's audit entry), each item isolated by a
    /// savepoint. An envelope is a replay if a stored audit entry names it: the log is the one
    /// record of consumed envelopes. One outcome per item, in order; a storage failure fails the
    /// whole batch and keeps nothing.
    fn insert_tokens(
        &self,
        items: Vec<NewToken>,
    ) -> impl Future<Output = Result<Vec<InsertOutcome>, StoreError>> + Send;

    /// Stores a batch of tokens all or nothing, in one transaction: if any item is a replay or its
    /// token is taken, no token of the batch is stored and no envelope of it consumed, and only
    /// the replays' refusal entries are appended. One outcome per item, in order, as
    /// [`Store::insert_tokens`] gives them; when any is `Replayed` or `TokenTaken`, the others'
    /// `Inserted` or `Existing` say what would have happened, and nothing of theirs was kept. A
    /// storage failure fails the whole batch and keeps nothing.
    fn insert_tokens_atomic(
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

    /// The last stored audit entry.
    fn last_audit_entry(
        &self,
    ) -> impl Future<Output = Result<Option<AuditRecord>, StoreError>> + Send;

    /// The newest audit entry of `action` (the vault asks for `policy.store`).
    fn last_audit_entry_of(
        &self,
        action: &str,
    ) -> impl Future<Output = Result<Option<AuditRecord>, StoreError>> + Send;

    /// The `reveal.lock` and `reveal.unlock` entries with `seq > after`, in order (few: each node
    /// asks for the new ones before each reveal).
    fn reveal_lock_entries(
        &self,
        after: i64,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// The anchored head, if any.
    fn audit_head(&self) -> impl Future<Output = Result<Option<Head>, StoreError>> + Send;

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

    /// Revokes an API key (sets `revoked_at` and the row's new MAC); returns whether a live key
    /// with that id existed.
    fn revoke_api_key(
        &self,
        id: &str,
        at: i64,
        mac: String,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives a live API key a new secret: the row's `digest`, `previous_digest`,
    /// `previous_expires_at` and `mac` as `key` has them, if the key is still live (not revoked);
    /// returns whether it was.
    fn rotate_api_key(
        &self,
        key: ApiKeyRecord,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that an API key authenticated at `at` (only moves the time forward). Not audited:
    /// the request it served is.
    fn touch_api_key(
        &self,
        id: &str,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A data subject's wrapped key, if it has one (an erased subject has none).
    fn subject_key(
        &self,
        subject: &str,
    ) -> impl Future<Output = Result<Option<SubjectKeyRecord>, StoreError>> + Send;

    /// Stores a subject's key unless the subject has one, auditing it; returns the subject's key:
    /// this one, or the one another request stored first.
    fn put_subject_key(
        &self,
        key: SubjectKeyRecord,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<SubjectKeyRecord, StoreError>> + Send;

    /// A subject's tokens not expired at `now`, oldest first.
    fn subject_tokens(
        &self,
        subject: &str,
        now: i64,
    ) -> impl Future<Output = Result<Vec<TokenRecord>, StoreError>> + Send;

    /// Erases a subject in one transaction: deletes its key and every token of it, and appends
    /// `audit` and, per token, `deleted` with the token and its kind filled in. Returns how many
    /// tokens were deleted.
    fn erase_subject(
        &self,
        subject: &str,
        audit: AuditDraft,
        deleted: AuditDraft,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes tokens expired at `now`, oldest first, in transactions of at most
    /// [`crate::audit::PURGE_BATCH`] with one audit entry each ([`crate::audit::purge_batch`]),
    /// at most [`crate::audit::PURGE_BATCHES`] of them; returns how many.
    fn purge(&self, now: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Makes deleted rows unrecoverable from the database's own files (SQLite: a truncating WAL
    /// checkpoint after deletions) and re-checks what a backend checks only now and then (SQLite:
    /// the schema in full). The vault calls it after each purge cycle, every 5 seconds.
    fn checkpoint(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds an operator unless one with the name exists, auditing it; returns whether it was
    /// added.
    fn insert_operator(
        &self,
        operator: OperatorRecord,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The operator with this name.
    fn operator(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<OperatorRecord>, StoreError>> + Send;

    /// All operators, by name.
    fn operators(&self) -> impl Future<Output = Result<Vec<OperatorRecord>, StoreError>> + Send;

    /// Replaces an operator's row by `operator` if its MAC is still `old_mac` (no other request
    /// changed it since it was read), appending `audit` in the same transaction; returns whether
    /// it did. The one write of every sign-in: the last TOTP step accepted and the failure count
    /// move only through it, so two requests cannot both use one code.
    fn update_operator(
        &self,
        operator: OperatorRecord,
        old_mac: &str,
        audit: Vec<AuditDraft>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a new session, auditing it.
    fn insert_session(
        &self,
        session: SessionRecord,
        audit: AuditDraft,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session with this id (the SHA-256 of its token, hex).
    fn session(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// Replaces a session's row by `session` if its MAC is still `old_mac`, appending `audit` if
    /// given; returns whether it did.
    fn update_session(
        &self,
        session: SessionRecord,
        old_mac: &str,
        audit: Option<AuditDraft>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a session, appending `audit` if given and the session existed; returns whether
    /// it did.
    fn delete_session(
        &self,
        id: &str,
        audit: Option<AuditDraft>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes sessions last seen before `idle_before` or made before `created_before` (not
    /// audited: their sign-ins are); returns how many.
    fn purge_sessions(
        &self,
        idle_before: i64,
        created_before: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A backend's connections at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections serving a call now.
    pub in_use: usize,
    /// Connections open (in use or idle).
    pub open: usize,
    /// The most connections the backend opens.
    pub max: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
}

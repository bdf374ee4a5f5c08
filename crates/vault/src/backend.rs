//! The backend a vault runs on, chosen at start from the database URL's scheme: one type for the
//! service, the CLI and the tests, dispatching each call to SQLite or PostgreSQL.

use fieldseal_core::at_rest::SymmetricKey;
use fieldseal_vault_postgres::PgStore;
use fieldseal_vault_sqlite::SqliteStore;
use fieldseal_vault_store::audit::{AuditDraft, AuditRecord, Head};
use fieldseal_vault_store::{
    ApiKeyRecord, DataKeyRecord, HpkeKeyRecord, InsertOutcome, KeyUse, NewToken, OperatorRecord,
    Reencrypted, SessionRecord, Store, StoreError, SubjectKeyRecord, TokenRecord,
};

/// A vault's store: embedded SQLite (`sqlite://PATH`) or PostgreSQL (`postgres://...`).
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// One file, one process.
    Sqlite(SqliteStore),
    /// One database, any number of vault nodes.
    Postgres(PgStore),
}

impl AnyStore {
    /// The backend's name, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The SQLite store, if that is the backend.
    pub fn sqlite(&self) -> Option<&SqliteStore> {
        match self {
            Self::Sqlite(s) => Some(s),
            Self::Postgres(_) => None,
        }
    }
}

/// Calls `$method` on whichever store `$self` holds.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Sqlite(s) => s.$method($($arg),*).await,
            AnyStore::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self.migrate())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
    }

    fn pool_use(&self) -> Option<fieldseal_vault_store::PoolUse> {
        match self {
            AnyStore::Sqlite(s) => s.pool_use(),
            AnyStore::Postgres(s) => s.pool_use(),
        }
    }

    fn set_audit_key(&self, key: SymmetricKey) {
        match self {
            Self::Sqlite(s) => s.set_audit_key(key),
            Self::Postgres(s) => s.set_audit_key(key),
        }
    }

    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self.secret(name))
    }

    async fn secrets_made(&self) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(self.secrets_made())
    }

    async fn put_secret(
        &self,
        name: &str,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.put_secret(name, wrapped, audit))
    }

    async fn rewrap_secret(
        &self,
        name: &str,
        old: Vec<u8>,
        new: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.rewrap_secret(name, old, new, audit))
    }

    async fn rewrap_hpke_key(
        &self,
        kid: &str,
        old: Vec<u8>,
        new: Vec<u8>,
        mac: String,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.rewrap_hpke_key(kid, old, new, mac, audit))
    }

    async fn add_data_key(
        &self,
        id: i64,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.add_data_key(id, wrapped, audit))
    }

    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError> {
        dispatch!(self.data_keys())
    }

    async fn count_encryptions(&self, id: i64, n: i64) -> Result<(), StoreError> {
        dispatch!(self.count_encryptions(id, n))
    }

    async fn record_key_uses(&self, uses: Vec<KeyUse>) -> Result<(), StoreError> {
        dispatch!(self.record_key_uses(uses))
    }

    async fn key_uses(&self) -> Result<Vec<KeyUse>, StoreError> {
        dispatch!(self.key_uses())
    }

    async fn forward_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        dispatch!(self.forward_cursor(name))
    }

    async fn set_forward_cursor(&self, name: &str, seq: i64, at: i64) -> Result<(), StoreError> {
        dispatch!(self.set_forward_cursor(name, seq, at))
    }

    async fn tokens_to_reencrypt(
        &self,
        below: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        dispatch!(self.tokens_to_reencrypt(below, after, limit))
    }

    async fn reencrypt_tokens(
        &self,
        rows: Vec<Reencrypted>,
        audit: AuditDraft,
    ) -> Result<u64, StoreError> {
        dispatch!(self.reencrypt_tokens(rows, audit))
    }

    async fn begin_audit_log(
        &self,
        name: &str,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.begin_audit_log(name, wrapped, audit))
    }

    async fn hpke_keys(&self) -> Result<Vec<HpkeKeyRecord>, StoreError> {
        dispatch!(self.hpke_keys())
    }

    async fn insert_hpke_key(
        &self,
        key: HpkeKeyRecord,
        audit: AuditDraft,
    ) -> Result<(), StoreError> {
        dispatch!(self.insert_hpke_key(key, audit))
    }

    async fn retire_hpke_key(
        &self,
        kid: &str,
        at: i64,
        mac: String,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.retire_hpke_key(kid, at, mac, audit))
    }

    async fn insert_tokens(&self, items: Vec<NewToken>) -> Result<Vec<InsertOutcome>, StoreError> {
        dispatch!(self.insert_tokens(items))
    }

    async fn insert_tokens_atomic(
        &self,
        items: Vec<NewToken>,
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        dispatch!(self.insert_tokens_atomic(items))
    }

    async fn token(&self, token: &str, now: i64) -> Result<Option<TokenRecord>, StoreError> {
        dispatch!(self.token(token, now))
    }

    async fn record_reveals(
        &self,
        audit: Vec<AuditDraft>,
        consume: Vec<(usize, String)>,
    ) -> Result<Vec<bool>, StoreError> {
        dispatch!(self.record_reveals(audit, consume))
    }

    async fn delete_token(&self, token: &str, audit: AuditDraft) -> Result<bool, StoreError> {
        dispatch!(self.delete_token(token, audit))
    }

    async fn append_audit(&self, audit: AuditDraft) -> Result<(), StoreError> {
        dispatch!(self.append_audit(audit))
    }

    async fn audit_log(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self.audit_log(after, limit))
    }

    async fn last_audit_entry(&self) -> Result<Option<AuditRecord>, StoreError> {
        dispatch!(self.last_audit_entry())
    }

    async fn last_audit_entry_of(&self, action: &str) -> Result<Option<AuditRecord>, StoreError> {
        dispatch!(self.last_audit_entry_of(action))
    }

    async fn reveal_lock_entries(&self, after: i64) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self.reveal_lock_entries(after))
    }

    async fn audit_head(&self) -> Result<Option<Head>, StoreError> {
        dispatch!(self.audit_head())
    }

    async fn insert_api_key(&self, key: ApiKeyRecord, audit: AuditDraft) -> Result<(), StoreError> {
        dispatch!(self.insert_api_key(key, audit))
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        dispatch!(self.api_key(id))
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        dispatch!(self.api_keys())
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        at: i64,
        mac: String,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.revoke_api_key(id, at, mac, audit))
    }

    async fn rotate_api_key(
        &self,
        key: ApiKeyRecord,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.rotate_api_key(key, audit))
    }

    async fn touch_api_key(&self, id: &str, at: i64) -> Result<(), StoreError> {
        dispatch!(self.touch_api_key(id, at))
    }

    async fn subject_key(&self, subject: &str) -> Result<Option<SubjectKeyRecord>, StoreError> {
        dispatch!(self.subject_key(subject))
    }

    async fn put_subject_key(
        &self,
        key: SubjectKeyRecord,
        audit: AuditDraft,
    ) -> Result<SubjectKeyRecord, StoreError> {
        dispatch!(self.put_subject_key(key, audit))
    }

    async fn subject_tokens(
        &self,
        subject: &str,
        now: i64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        dispatch!(self.subject_tokens(subject, now))
    }

    async fn erase_subject(
        &self,
        subject: &str,
        audit: AuditDraft,
        deleted: AuditDraft,
    ) -> Result<u64, StoreError> {
        dispatch!(self.erase_subject(subject, audit, deleted))
    }

    async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self.purge(now))
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        dispatch!(self.checkpoint())
    }

    async fn insert_operator(
        &self,
        operator: OperatorRecord,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        dispatch!(self.insert_operator(operator, audit))
    }

    async fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        dispatch!(self.operator(name))
    }

    async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        dispatch!(self.operators())
    }

    async fn update_operator(
        &self,
        operator: OperatorRecord,
        old_mac: &str,
        audit: Vec<AuditDraft>,
    ) -> Result<bool, StoreError> {
        dispatch!(self.update_operator(operator, old_mac, audit))
    }

    async fn insert_session(
        &self,
        session: SessionRecord,
        audit: AuditDraft,
    ) -> Result<(), StoreError> {
        dispatch!(self.insert_session(session, audit))
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self.session(id))
    }

    async fn update_session(
        &self,
        session: SessionRecord,
        old_mac: &str,
        audit: Option<AuditDraft>,
    ) -> Result<bool, StoreError> {
        dispatch!(self.update_session(session, old_mac, audit))
    }

    async fn delete_session(
        &self,
        id: &str,
        audit: Option<AuditDraft>,
    ) -> Result<bool, StoreError> {
        dispatch!(self.delete_session(id, audit))
    }

    async fn purge_sessions(
        &self,
        idle_before: i64,
        created_before: i64,
    ) -> Result<u64, StoreError> {
        dispatch!(self.purge_sessions(idle_before, created_before))
    }
}

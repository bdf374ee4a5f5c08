//! The embedded SQLite store: one file in the data directory, WAL journal, numbered migrations.
//!
//! One connection serves the process: the audit chain serializes every write anyway, and SQLite
//! commits in tens of microseconds. Calls run on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use fieldseal_core::at_rest::SymmetricKey;

use crate::audit::{AuditDraft, AuditRecord, entry_hash, head_mac, hex};
use crate::config::Synchronous;
use crate::store::{
    ApiKeyRecord, HpkeKeyRecord, InsertOutcome, NewToken, Store, StoreError, TokenRecord,
};

/// Schema migrations, applied in order; each runs once, in a transaction.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE hpke_keys (
    kid TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    wrapped_private BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE TABLE tokens (
    token TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    data_key_id INTEGER NOT NULL,
    ciphertext BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    brand TEXT,
    bin TEXT,
    last4 TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX tokens_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE replay (
    envelope_id BLOB PRIMARY KEY,
    until INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replay_until ON replay (until);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    digest BLOB NOT NULL,
    role TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    token TEXT,
    kind TEXT,
    purpose TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT NOT NULL
);
"#,
];

fn db_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
        _ => StoreError::Database(e.to_string()),
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    // Declared first so that it is dropped (and its thread joined) before the connection closes.
    reveals: Arc<RevealWriter>,
    conn: Arc<Mutex<Connection>>,
    audit_key: Arc<std::sync::RwLock<Option<Arc<SymmetricKey>>>>,
    path: PathBuf,
}

/// One request's reveals: audit entries, CVC tokens to consume, and where to send the outcome.
struct RevealJob {
    audit: Vec<AuditDraft>,
    consume: Vec<(usize, String)>,
    done: tokio::sync::oneshot::Sender<Result<Vec<bool>, StoreError>>,
}

/// Group commit for reveals: one thread takes every reveal request waiting at that moment and
/// commits their audit entries (and consumed card security codes) in one transaction, then
/// answers each. Under load this turns many small commits into a few larger ones; a lone request
/// waits for nothing.
struct RevealWriter {
    jobs: Mutex<Option<std::sync::mpsc::Sender<RevealJob>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl RevealWriter {
    const MAX_JOBS: usize = 256;

    fn start(
        conn: Arc<Mutex<Connection>>,
        key: Arc<std::sync::RwLock<Option<Arc<SymmetricKey>>>>,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<RevealJob>();
        let thread = std::thread::Builder::new()
            .name("fieldseal-audit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < Self::MAX_JOBS {
                        match rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    let key = AuditKey(key.read().ok().and_then(|k| k.clone()));
                    let outcome = match conn.lock() {
                        Ok(mut c) => commit_reveals(&mut c, &key, &mut jobs),
                        Err(_) => Err(StoreError::Database("connection lock poisoned".into())),
                    };
                    match outcome {
                        Ok(all) => {
                            for (job, consumed) in jobs.into_iter().zip(all) {
                                let _ = job.done.send(Ok(consumed));
                            }
                        }
                        // Nothing was committed: every request of the group fails, none
                        // discloses anything.
                        Err(e) => {
                            for job in jobs {
                                let _ = job.done.send(Err(e.clone()));
                            }
                        }
                    }
                }
            })
            .ok();
        Self {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
        }
    }
}

impl Drop for RevealWriter {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// Consumes CVC tokens and appends the audit entries of every job in one transaction.
fn commit_reveals(
    c: &mut Connection,
    key: &AuditKey,
    jobs: &mut [RevealJob],
) -> Result<Vec<Vec<bool>>, StoreError> {
    let tx = write_tx(c)?;
    let mut chain = Chain::load(&tx, key)?;
    let mut all = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        let mut consumed = Vec::with_capacity(job.consume.len());
        for (index, token) in &job.consume {
            let n = tx
                .prepare_cached("DELETE FROM tokens WHERE token = ?1")
                .and_then(|mut st| st.execute([token]))
                .map_err(db_error)?;
            if n == 0
                && let Some(entry) = job.audit.get_mut(*index)
            {
                entry.outcome = "not_found".into();
                entry.detail = "already used".into();
            }
            consumed.push(n == 1);
        }
        for d in &job.audit {
            chain.append(&tx, d)?;
        }
        all.push(consumed);
    }
    chain.anchor(&tx)?;
    tx.commit().map_err(db_error)?;
    Ok(all)
}

impl SqliteStore {
    /// Opens (creating it with mode 0600 if needed) the database file.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Self, StoreError> {
        if !path.exists() {
            create_private_file(path)?;
        }
        let conn = Connection::open(path).map_err(db_error)?;
        let sync = match sync {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000; \
             PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;"
        ))
        .map_err(db_error)?;
        let conn = Arc::new(Mutex::new(conn));
        let audit_key = Arc::new(std::sync::RwLock::new(None));
        Ok(Self {
            reveals: Arc::new(RevealWriter::start(
                Arc::clone(&conn),
                Arc::clone(&audit_key),
            )),
            conn,
            audit_key,
            path: path.to_path_buf(),
        })
    }

    /// Opens the database named by a `sqlite://PATH` URL.
    pub fn open_url(url: &str, sync: Synchronous) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| StoreError::Database(format!("not a sqlite:// URL: {url}")))?;
        Self::open(Path::new(path), sync)
    }

    /// Caps the database at `pages` pages (4 KiB each), so operators can bound its disk use. When
    /// the cap is reached, writes fail exactly as on a full disk (`StoreError::Full`).
    pub async fn limit_pages(&self, pages: u64) -> Result<(), StoreError> {
        self.run(move |c| {
            c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(db_error)
        })
        .await
    }

    /// The database's current size in pages.
    pub async fn page_count(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(db_error)
        })
        .await
    }

    /// Runs `sql` with `(id, at)` and, if it changed a row, appends `audit`, in one transaction;
    /// returns whether a row changed.
    async fn update_audited(
        &self,
        sql: &'static str,
        id: &str,
        at: i64,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run_keyed(move |c, ak| {
            let tx = write_tx(c)?;
            let n = tx.execute(sql, params![id, at]).map_err(db_error)?;
            if n == 1 {
                append_audit_tx(&tx, ak, &audit)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(n == 1)
        })
        .await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run_keyed(move |c, _| f(c)).await
    }

    /// Like `run`, with the audit key for appends.
    async fn run_keyed<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &AuditKey) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        let key = AuditKey(self.audit_key.read().ok().and_then(|k| k.clone()));
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Database("connection lock poisoned".into()))?;
            f(&mut guard, &key)
        })
        .await
        .map_err(|e| StoreError::Database(format!("storage task failed: {e}")))?
    }
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn create_private_file(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Starts a write transaction that takes the database's write lock at once (`BEGIN IMMEDIATE`), so
/// that a concurrent writer in another process (an operator command) waits for the busy timeout
/// instead of interleaving: the audit chain head read inside the transaction stays the head.
fn write_tx(c: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)
}

/// The audit key, when the vault's secrets are loaded.
struct AuditKey(Option<Arc<SymmetricKey>>);

/// Appends one entry to the chain inside `tx` and moves the anchored head to it.
fn append_audit_tx(tx: &Transaction<'_>, key: &AuditKey, d: &AuditDraft) -> Result<(), StoreError> {
    let mut chain = Chain::load(tx, key)?;
    chain.append(tx, d)?;
    chain.anchor(tx)
}

/// The audit chain's head inside one write transaction: read once, advanced by each append, and
/// anchored once at the end. Without the audit key nothing can be appended: an entry the anchored
/// head does not cover would look like tampering.
struct Chain<'k> {
    key: &'k SymmetricKey,
    seq: i64,
    hash: [u8; 32],
}

impl<'k> Chain<'k> {
    fn load(tx: &Transaction<'_>, key: &'k AuditKey) -> Result<Self, StoreError> {
        let key = key.0.as_deref().ok_or_else(|| {
            StoreError::Database("audit key not loaded: cannot append to the audit log".into())
        })?;
        let last: Option<(i64, String)> = tx
            .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(db_error)?;
        let (seq, hash_hex) = last.unwrap_or((0, hex(&[0u8; 32])));
        let mut hash = [0u8; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = hash_hex
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(0);
        }
        Ok(Self { key, seq, hash })
    }

    fn append(&mut self, tx: &Transaction<'_>, d: &AuditDraft) -> Result<(), StoreError> {
        let seq = self.seq + 1;
        let hash = entry_hash(&self.hash, seq, d);
        tx.prepare_cached(
            "INSERT INTO audit (seq, at, actor, action, token, kind, purpose, outcome, detail, \
             prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .and_then(|mut st| {
            st.execute(params![
                seq,
                d.at,
                d.actor,
                d.action,
                d.token,
                d.kind,
                d.purpose,
                d.outcome,
                d.detail,
                hex(&self.hash),
                hex(&hash)
            ])
        })
        .map_err(db_error)?;
        self.seq = seq;
        self.hash = hash;
        Ok(())
    }

    fn anchor(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let hash = hex(&self.hash);
        tx.prepare_cached(
            "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) \
             DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac",
        )
        .and_then(|mut st| st.execute(params![self.seq, hash, head_mac(self.key, self.seq, &hash)]))
        .map_err(db_error)?;
        Ok(())
    }
}

fn text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    // Read as bytes: a damaged row must still be read (and then fail verification), not abort.
    Ok(String::from_utf8_lossy(r.get_ref(i)?.as_bytes()?).into_owned())
}

fn opt_text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    let v = r.get_ref(i)?;
    if matches!(v, rusqlite::types::ValueRef::Null) {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(v.as_bytes()?).into_owned()))
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        token: r.get(0)?,
        kind: r.get(1)?,
        data_key_id: r.get(2)?,
        ciphertext: r.get(3)?,
        fingerprint: r.get(4)?,
        brand: r.get(5)?,
        bin: r.get(6)?,
        last4: r.get(7)?,
        created_at: r.get(8)?,
        expires_at: r.get(9)?,
    })
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        digest: r.get(1)?,
        role: r.get(2)?,
        label: r.get(3)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

const TOKEN_COLUMNS: &str =
    "token, kind, data_key_id, ciphertext, fingerprint, brand, bin, last4, created_at, expires_at";

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.run(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
                 applied_at INTEGER NOT NULL)",
            )?;
            let applied: i64 = c.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )?;
            for (i, sql) in MIGRATIONS.iter().enumerate() {
                let version = i as i64 + 1;
                if version <= applied {
                    continue;
                }
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, \
                     strftime('%s','now'))",
                    [version],
                )?;
                tx.commit()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| match e {
            StoreError::Database(m) => StoreError::Database(format!("migration failed: {m}")),
            other => other,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db_error))
            .await
    }

    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.run(move |c| {
            c.query_row("SELECT wrapped FROM secrets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn put_secret(
        &self,
        name: &str,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run_keyed(move |c, ak| {
            let tx = write_tx(c)?;
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO secrets (name, wrapped, created_at) VALUES (?1, ?2, ?3)",
                    params![name, wrapped, audit.at],
                )
                .map_err(db_error)?;
            if n == 1 {
                append_audit_tx(&tx, ak, &audit)?;
            }
            tx.commit().map_err(db_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn hpke_keys(&self) -> Result<Vec<HpkeKeyRecord>, StoreError> {
        self.run(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT kid, public_key, wrapped_private, created_at, not_before, \
                     expires_at, retired_at FROM hpke_keys ORDER BY rowid",
                )
                .map_err(db_error)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(HpkeKeyRecord {
                        kid: r.get(0)?,
                        public_key: r.get(1)?,
                        wrapped_private: r.get(2)?,
                        created_at: r.get(3)?,
                        not_before: r.get(4)?,
                        expires_at: r.get(5)?,
                        retired_at: r.get(6)?,
                    })
                })
                .map_err(db_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
        })
        .await
    }

    async fn insert_hpke_key(&self, k: HpkeKeyRecord, audit: AuditDraft) -> Result<(), StoreError> {
        self.run_keyed(move |c, ak| {
            let tx = write_tx(c)?;
            tx.execute(
                "INSERT INTO hpke_keys (kid, public_key, wrapped_private, created_at, not_before, \
                 expires_at, retired_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    k.kid,
                    k.public_key,
                    k.wrapped_private,
                    k.created_at,
                    k.not_before,
                    k.expires_at,
                    k.retired_at
                ],
            )
            .map_err(db_error)?;
            append_audit_tx(&tx, ak, &audit)?;
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn retire_hpke_key(
        &self,
        kid: &str,
        at: i64,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.update_audited(
            "UPDATE hpke_keys SET retired_at = ?2 WHERE kid = ?1 AND retired_at IS NULL",
            kid,
            at,
            audit,
        )
        .await
    }

    async fn insert_tokens(&self, items: Vec<NewToken>) -> Result<Vec<InsertOutcome>, StoreError> {
        self.run_keyed(move |c, ak| {
            let mut tx = write_tx(c)?;
            let mut chain = Chain::load(&tx, ak)?;
            let mut outcomes = Vec::with_capacity(items.len());
            for item in &items {
                let t = &item.token;
                let sp = tx.savepoint().map_err(db_error)?;
                let replay = sp
                    .prepare_cached("INSERT INTO replay (envelope_id, until) VALUES (?1, ?2)")
                    .and_then(|mut st| {
                        st.execute(params![item.envelope_id.as_slice(), item.replay_until])
                    });
                let outcome = match replay {
                    Err(e) if is_constraint(&e) => InsertOutcome::Replayed,
                    Err(e) => return Err(db_error(e)),
                    Ok(_) => {
                        let inserted = sp
                            .prepare_cached(&format!(
                                "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, \
                                 ?6, ?7, ?8, ?9, ?10)"
                            ))
                            .and_then(|mut st| {
                                st.execute(params![
                                    t.token,
                                    t.kind,
                                    t.data_key_id,
                                    t.ciphertext,
                                    t.fingerprint,
                                    t.brand,
                                    t.bin,
                                    t.last4,
                                    t.created_at,
                                    t.expires_at
                                ])
                            });
                        match inserted {
                            Ok(_) => InsertOutcome::Inserted,
                            Err(e) if is_constraint(&e) => {
                                let same: Option<bool> = sp
                                    .prepare_cached(
                                        "SELECT kind = ?2 AND fingerprint = ?3 AND fingerprint != \
                                         '' FROM tokens WHERE token = ?1",
                                    )
                                    .and_then(|mut st| {
                                        st.query_row(params![t.token, t.kind, t.fingerprint], |r| {
                                            r.get(0)
                                        })
                                        .optional()
                                    })
                                    .map_err(db_error)?;
                                if same == Some(true) {
                                    InsertOutcome::Existing
                                } else {
                                    InsertOutcome::TokenTaken
                                }
                            }
                            Err(e) => return Err(db_error(e)),
                        }
                    }
                };
                match outcome {
                    // Keep the replay id: the envelope is consumed.
                    InsertOutcome::Inserted | InsertOutcome::Existing => {
                        sp.commit().map_err(db_error)?;
                        chain.append(&tx, &item.audit)?;
                    }
                    InsertOutcome::Replayed => {
                        drop(sp);
                        chain.append(&tx, &item.replayed_audit)?;
                    }
                    // Nothing of this item is kept: the caller tries another token.
                    InsertOutcome::TokenTaken => drop(sp),
                }
                outcomes.push(outcome);
            }
            chain.anchor(&tx)?;
            tx.commit().map_err(db_error)?;
            Ok(outcomes)
        })
        .await
    }

    async fn token(&self, token: &str, now: i64) -> Result<Option<TokenRecord>, StoreError> {
        let token = token.to_owned();
        self.run(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE token = ?1 AND (expires_at IS NULL OR \
                 expires_at > ?2)"
            ))
            .and_then(|mut st| st.query_row(params![token, now], token_row).optional())
            .map_err(db_error)
        })
        .await
    }

    async fn record_reveals(
        &self,
        audit: Vec<AuditDraft>,
        consume: Vec<(usize, String)>,
    ) -> Result<Vec<bool>, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let sent = self.reveals.jobs.lock().ok().and_then(|jobs| {
            jobs.as_ref().map(|j| {
                j.send(RevealJob {
                    audit,
                    consume,
                    done,
                })
            })
        });
        if !matches!(sent, Some(Ok(()))) {
            return Err(StoreError::Database("audit writer stopped".into()));
        }
        result
            .await
            .map_err(|_| StoreError::Database("audit writer stopped".into()))?
    }

    async fn delete_token(&self, token: &str, audit: AuditDraft) -> Result<bool, StoreError> {
        let token = token.to_owned();
        self.run_keyed(move |c, ak| {
            let tx = write_tx(c)?;
            let n = tx
                .execute("DELETE FROM tokens WHERE token = ?1", [token])
                .map_err(db_error)?;
            append_audit_tx(&tx, ak, &audit)?;
            tx.commit().map_err(db_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn append_audit(&self, audit: AuditDraft) -> Result<(), StoreError> {
        self.run_keyed(move |c, ak| {
            let tx = write_tx(c)?;
            append_audit_tx(&tx, ak, &audit)?;
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn audit_log(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT seq, at, actor, action, token, kind, purpose, outcome, detail, \
                     prev_hash, hash FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(db_error)?;
            let rows = stmt
                .query_map(params![after, limit as i64], |r| {
                    Ok(AuditRecord {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        actor: text(r, 2)?,
                        action: text(r, 3)?,
                        token: opt_text(r, 4)?,
                        kind: opt_text(r, 5)?,
                        purpose: opt_text(r, 6)?,
                        outcome: text(r, 7)?,
                        detail: text(r, 8)?,
                        prev_hash: text(r, 9)?,
                        hash: text(r, 10)?,
                    })
                })
                .map_err(db_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
        })
        .await
    }

    async fn insert_api_key(&self, k: ApiKeyRecord, audit: AuditDraft) -> Result<(), StoreError> {
        self.run_keyed(move |c, ak| {
            let tx = write_tx(c)?;
            tx.execute(
                "INSERT INTO api_keys (id, digest, role, label, created_at, revoked_at) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.id, k.digest, k.role, k.label, k.created_at, k.revoked_at],
            )
            .map_err(db_error)?;
            append_audit_tx(&tx, ak, &audit)?;
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.prepare_cached(
                "SELECT id, digest, role, label, created_at, revoked_at FROM api_keys WHERE id = ?1",
            )
            .and_then(|mut st| st.query_row([id], api_key_row).optional())
            .map_err(db_error)
        })
        .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.run(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, digest, role, label, created_at, revoked_at FROM api_keys ORDER \
                     BY created_at, id",
                )
                .map_err(db_error)?;
            let rows = stmt.query_map([], api_key_row).map_err(db_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        at: i64,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.update_audited(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            id,
            at,
            audit,
        )
        .await
    }

    async fn purge(&self, now: i64) -> Result<(u64, u64), StoreError> {
        self.run_keyed(move |c, ak| {
            let tx = write_tx(c)?;
            let expired: Vec<(String, String)> = {
                let mut st = tx
                    .prepare(
                        "SELECT token, kind FROM tokens WHERE expires_at IS NOT NULL AND \
                         expires_at <= ?1",
                    )
                    .map_err(db_error)?;
                let rows = st
                    .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(db_error)?;
                rows.collect::<Result<_, _>>().map_err(db_error)?
            };
            for (token, kind) in &expired {
                tx.execute("DELETE FROM tokens WHERE token = ?1", [token])
                    .map_err(db_error)?;
                let d = AuditDraft::new(now, "vault", "delete", "ok")
                    .token(token)
                    .kind(kind)
                    .detail("retention period over");
                append_audit_tx(&tx, ak, &d)?;
            }
            let replay = tx
                .execute("DELETE FROM replay WHERE until <= ?1", [now])
                .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok((expired.len() as u64, replay as u64))
        })
        .await
    }

    fn set_audit_key(&self, key: SymmetricKey) {
        if let Ok(mut slot) = self.audit_key.write() {
            *slot = Some(Arc::new(key));
        }
    }

    async fn audit_head(&self) -> Result<Option<(i64, String, String)>, StoreError> {
        self.run(|c| {
            c.query_row(
                "SELECT seq, hash, mac FROM audit_head WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, text(r, 1)?, text(r, 2)?)),
            )
            .optional()
            .map_err(db_error)
        })
        .await
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        db_error(e)
    }
}

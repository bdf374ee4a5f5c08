//! The embedded SQLite backend of the fieldseal vault: one file in the data directory, WAL
//! journal, numbered migrations (`migrations/*.sql`). Queries only: the audit chain, row MACs and
//! every rule about what may be stored or revealed live in `fieldseal-vault-store` and the service.
//!
//! One connection serves the process: the audit chain serializes every write anyway, and SQLite
//! commits in tens of microseconds. Calls run on tokio's blocking pool; tokenize and reveal writes
//! are group-committed by one writer thread.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fieldseal_core::at_rest::SymmetricKey;
use fieldseal_vault_store::audit::{
    self, AuditChain, AuditDraft, AuditRecord, Head, Outcome, PURGE_BATCH, PURGE_BATCHES,
};
use fieldseal_vault_store::group::{Done, Job, MAX_GROUP, answer};
use fieldseal_vault_store::{
    ApiKeyRecord, DataKeyRecord, HpkeKeyRecord, InsertOutcome, KeyUse, NewToken, OperatorLog,
    OperatorRecord, Reencrypted, SessionRecord, Store, StoreError, SubjectKeyRecord, TokenRecord,
};
use rusqlite::types::ValueRef;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

/// Schema migrations, applied in order; each runs once, in a transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_audit_head.sql"),
    include_str!("../migrations/0003_authenticated_rows.sql"),
    include_str!("../migrations/0004_policy_entries.sql"),
    include_str!("../migrations/0005_api_key_lifecycle.sql"),
    include_str!("../migrations/0006_key_management.sql"),
    include_str!("../migrations/0007_lifecycle.sql"),
    include_str!("../migrations/0008_operators.sql"),
    include_str!("../migrations/0009_operator_log.sql"),
    include_str!("../migrations/0010_key_uses.sql"),
    include_str!("../migrations/0011_forward_cursors.sql"),
    include_str!("../migrations/0012_reveal_locks.sql"),
];

/// The first migration whose rows carry MACs: a database with audit entries from before it cannot
/// be trusted by this version.
const AUTHENTICATED_ROWS: i64 = 3;

/// How SQLite syncs commits to disk (this backend's own setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Survives a killed process; the last commits may be lost on power failure (WAL mode).
    Normal,
    /// Every commit is on disk before it is acknowledged.
    Full,
}

impl std::str::FromStr for Synchronous {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Self::Normal),
            "full" => Ok(Self::Full),
            _ => Err("expected normal or full"),
        }
    }
}

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

type ChainSlot = Arc<RwLock<Option<Arc<AuditChain>>>>;

/// What a write needs besides the connection: the audit chain (once its key is set) and the schema
/// cookie (`PRAGMA schema_version`) at which the schema was last checked in full.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    chain: Option<&'a AuditChain>,
    checked_schema: &'a AtomicI64,
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    // Declared first so that it is dropped (and its thread joined) before the connection closes.
    writer: Arc<GroupWriter>,
    conn: Arc<Mutex<Connection>>,
    chain: ChainSlot,
    path: PathBuf,
    /// Whether rows were deleted since the last checkpoint.
    deleted: Arc<AtomicBool>,
    /// The schema cookie at the last full schema check (-1: none yet).
    checked_schema: Arc<AtomicI64>,
}

/// Group commit for the two writes every checkout makes, tokenize and reveal: one thread takes
/// every such request waiting at that moment and commits them in one transaction (each
/// tokenize item still isolated by its savepoint), then answers each. Under load this turns many
/// small commits into a few larger ones; a lone request waits for nothing.
struct GroupWriter {
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl GroupWriter {
    fn start(conn: Arc<Mutex<Connection>>, chain: ChainSlot, checked: Arc<AtomicI64>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("fieldseal-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    let chain = loaded(&chain);
                    let outcome = match conn.lock() {
                        Ok(mut c) => {
                            let ctx = Ctx {
                                chain: chain.as_deref(),
                                checked_schema: &checked,
                            };
                            commit_group(&mut c, ctx, &mut jobs)
                        }
                        Err(_) => Err(StoreError::Database("connection lock poisoned".into())),
                    };
                    answer(jobs, outcome);
                }
            })
            .ok();
        Self {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let sent = self
            .jobs
            .lock()
            .ok()
            .and_then(|jobs| jobs.as_ref().map(|j| j.send(job).is_ok()));
        match sent {
            Some(true) => Ok(()),
            _ => Err(StoreError::Database("writer stopped".into())),
        }
    }
}

impl Drop for GroupWriter {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

fn loaded(slot: &ChainSlot) -> Option<Arc<AuditChain>> {
    slot.read().ok().and_then(|c| c.clone())
}

/// Commits every job of a group in one transaction: tokens stored (or refused as replays) and
/// CVC tokens consumed, with their audit entries.
fn commit_group(
    c: &mut Connection,
    chain: Ctx<'_>,
    jobs: &mut [Job],
) -> Result<Vec<Done>, StoreError> {
    let mut tx = write_tx(c)?;
    let mut log = Log::begin(&tx, chain, false)?;
    let mut all = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        match job {
            Job::Reveals { audit, consume, .. } => {
                let mut consumed = Vec::with_capacity(consume.len());
                for (index, token) in consume.iter() {
                    let n = tx
                        .prepare_cached("DELETE FROM tokens WHERE token = ?1")
                        .and_then(|mut st| st.execute([token]))
                        .map_err(db_error)?;
                    if n == 0
                        && let Some(entry) = audit.get_mut(*index)
                    {
                        entry.outcome = Outcome::NotFound;
                        entry.detail = "already used".into();
                    }
                    consumed.push(n == 1);
                }
                for d in audit.iter() {
                    log.append(&tx, d)?;
                }
                all.push(Done::Reveals(consumed));
            }
            Job::Tokens {
                items,
                atomic: true,
                ..
            } => {
                all.push(Done::Tokens(insert_all_or_none(&mut tx, &mut log, items)?));
            }
            Job::Tokens { items, .. } => {
                let mut outcomes = Vec::with_capacity(items.len());
                for item in items.iter() {
                    outcomes.push(insert_one(&mut tx, &mut log, item)?);
                }
                all.push(Done::Tokens(outcomes));
            }
        }
    }
    log.commit(tx)?;
    Ok(all)
}

impl SqliteStore {
    /// Opens (creating it with mode 0600 if needed) the database file.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Self, StoreError> {
        if !path.exists() {
            fieldseal_vault_store::fs::create_private_file(path).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", path.display()))
            })?;
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
        let chain = Arc::new(RwLock::new(None));
        let checked_schema = Arc::new(AtomicI64::new(-1));
        Ok(Self {
            writer: Arc::new(GroupWriter::start(
                Arc::clone(&conn),
                Arc::clone(&chain),
                Arc::clone(&checked_schema),
            )),
            checked_schema,
            conn,
            chain,
            path: path.to_path_buf(),
            deleted: Arc::new(AtomicBool::new(false)),
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
        self.run(move |c, _| {
            c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(db_error)
        })
        .await
    }

    /// The database's current size in pages.
    pub async fn page_count(&self) -> Result<u64, StoreError> {
        self.run(|c, _| {
            c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(db_error)
        })
        .await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a consistent snapshot of the database to `dest`, a new file (mode 0600), while
    /// other requests go on ([`copy_database`]).
    pub async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(StoreError::Database(format!(
                "{} exists: a backup is written to a new file",
                dest.display()
            )));
        }
        fieldseal_vault_store::fs::create_private_file(dest)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dest.display())))?;
        let (src, dest) = (self.path.clone(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || copy_database(&src, &dest))
            .await
            .map_err(|e| StoreError::Database(format!("backup task failed: {e}")))?
    }

    /// Runs `sql` with `(id, at, mac)` and, if it changed a row, appends `audit`, in one
    /// transaction; returns whether a row changed.
    async fn update_audited(
        &self,
        sql: &'static str,
        id: &str,
        at: i64,
        mac: String,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.write_audited(sql, (id.to_owned(), at, mac), audit)
            .await
    }

    /// Runs one write; appends `audit` in the same transaction if it changed a row. Whether it
    /// did.
    async fn write_audited(
        &self,
        sql: &'static str,
        params: impl rusqlite::Params + Send + 'static,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            let n = tx.execute(sql, params).map_err(db_error)?;
            if n == 1 {
                log.append(&tx, &audit)?;
            }
            log.commit(tx)?;
            Ok(n == 1)
        })
        .await
    }

    /// Runs `f` on the connection, with the audit chain if its key is set, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, Ctx<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        let chain = loaded(&self.chain);
        let checked = Arc::clone(&self.checked_schema);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Database("connection lock poisoned".into()))?;
            f(
                &mut guard,
                Ctx {
                    chain: chain.as_deref(),
                    checked_schema: &checked,
                },
            )
        })
        .await
        .map_err(|e| StoreError::Database(format!("storage task failed: {e}")))?
    }
}

/// Copies the database at `src` over the database at `dest` (created if absent) with SQLite's
/// online backup API, in one step: the pages are read in one read transaction, so the copy is one
/// consistent state of `src` however much other connections write meanwhile (in WAL mode they are
/// not blocked), and `dest` is replaced as a whole under its write lock.
pub fn copy_database(src: &Path, dest: &Path) -> Result<(), StoreError> {
    use rusqlite::backup::{Backup, StepResult};
    let from = Connection::open_with_flags(src, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(db_error)?;
    from.execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(db_error)?;
    let mut to = Connection::open(dest).map_err(db_error)?;
    to.execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(db_error)?;
    let backup = Backup::new(&from, &mut to).map_err(db_error)?;
    match backup.step(-1).map_err(db_error)? {
        StepResult::Done => Ok(()),
        StepResult::Busy | StepResult::Locked => Err(StoreError::Busy),
        _ => Err(StoreError::Database("the backup did not complete".into())),
    }
}

/// Starts a write transaction that takes the database's write lock at once (`BEGIN IMMEDIATE`), so
/// that a concurrent writer in another process (an operator command) waits for the busy timeout
/// instead of interleaving: the audit chain's tail and head read inside the transaction stay the
/// tail and head.
fn write_tx(c: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)
}

const AUDIT_COLUMNS: &str = "seq, at, actor, action, token, kind, purpose, outcome, detail, \
                             envelope, prev_hash, hash, mac";

/// The audit log inside one write transaction: the stored tail and head checked once by the
/// chain, entries inserted as they are appended, the head stored and the chain told at commit.
struct Log<'c> {
    chain: &'c AuditChain,
    appender: audit::Appender<'c>,
    appended: bool,
}

impl<'c> Log<'c> {
    fn begin(tx: &Transaction<'_>, ctx: Ctx<'c>, genesis: bool) -> Result<Self, StoreError> {
        let chain = ctx.chain.ok_or_else(|| {
            StoreError::Database("audit key not loaded: cannot append to the audit log".into())
        })?;
        let tail = tx
            .prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1"
            ))
            .and_then(|mut st| st.query_row([], audit_row).optional())
            .map_err(db_error)?;
        let head = read_head(tx)?;
        let seen_seq = chain.seen_seq();
        let seen = if seen_seq > 0 && tail.as_ref().is_some_and(|t| t.seq != seen_seq) {
            tx.prepare_cached(&format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq = ?1"))
                .and_then(|mut st| st.query_row([seen_seq], audit_row).optional())
                .map_err(db_error)?
        } else {
            None
        };
        // A trigger could undo what this transaction writes (un-revoke, re-insert a used CVC)
        // behind the vault's back: no write goes ahead on a schema the migrations did not make.
        // In full only when the schema cookie moved: with the cookie unchanged this connection
        // runs on the schema it parsed and checked last (a trigger added behind a cookie put back
        // is never loaded by it); a new process checks in full at `migrate`.
        let cookie: i64 = tx
            .prepare_cached("PRAGMA schema_version")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(db_error)?;
        if ctx.checked_schema.load(Ordering::Acquire) != cookie {
            check_schema(tx)?;
            ctx.checked_schema.store(cookie, Ordering::Release);
        }
        let appender = chain
            .begin(tail.as_ref(), head.as_ref(), seen.as_ref(), genesis)
            .map_err(StoreError::AuditBroken)?;
        Ok(Self {
            chain,
            appender,
            appended: false,
        })
    }

    fn append(&mut self, tx: &Transaction<'_>, d: &AuditDraft) -> Result<(), StoreError> {
        let r = self.appender.append(d);
        tx.prepare_cached(&format!(
            "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             ?11, ?12, ?13)"
        ))
        .and_then(|mut st| {
            st.execute(params![
                r.seq,
                r.at,
                r.actor,
                r.action,
                r.token,
                r.kind,
                r.purpose,
                r.outcome,
                r.detail,
                r.envelope,
                r.prev_hash,
                r.hash,
                r.mac
            ])
        })
        .map_err(db_error)?;
        self.appended = true;
        Ok(())
    }

    fn commit(self, tx: Transaction<'_>) -> Result<(), StoreError> {
        let head = self.appender.head();
        if self.appended {
            tx.prepare_cached(
                "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3) ON CONFLICT \
                 (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac",
            )
            .and_then(|mut st| st.execute(params![head.seq, head.hash, head.mac]))
            .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
        self.chain.committed(&head);
        Ok(())
    }
}

/// The schema as SQLite records it, every object's type, name, table and SQL text in one string:
/// one row to read and one comparison before each write.
fn schema(c: &Connection) -> Result<String, StoreError> {
    c.prepare_cached(
        "SELECT group_concat(type || char(30) || name || char(30) || tbl_name || char(30) || \
         ifnull(sql, ''), char(31)) FROM (SELECT * FROM sqlite_schema ORDER BY type, name)",
    )
    .and_then(|mut st| st.query_row([], |r| r.get::<_, Option<String>>(0)))
    .map(Option::unwrap_or_default)
    .map_err(db_error)
}

const MIGRATION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER \
                               PRIMARY KEY, applied_at INTEGER NOT NULL)";

/// The schema the migrations make, computed once by applying them to an in-memory database.
fn expected_schema() -> Result<&'static str, StoreError> {
    static EXPECTED: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    EXPECTED
        .get_or_init(|| {
            let c = Connection::open_in_memory().map_err(|e| e.to_string())?;
            c.execute_batch(MIGRATION_TABLE)
                .map_err(|e| e.to_string())?;
            for sql in MIGRATIONS {
                c.execute_batch(sql).map_err(|e| e.to_string())?;
            }
            schema(&c).map_err(|e| e.to_string())
        })
        .as_deref()
        .map_err(|e| StoreError::Database(format!("cannot build the expected schema: {e}")))
}

/// Refuses a schema other than the one the migrations make: an added trigger or view, an altered
/// table or index, a dropped index.
fn check_schema(c: &Connection) -> Result<(), StoreError> {
    let expected = expected_schema()?;
    let actual = schema(c)?;
    if actual == expected {
        return Ok(());
    }
    fn objects(s: &str) -> Vec<&str> {
        s.split('\u{1f}').collect()
    }
    let (want, have) = (objects(expected), objects(&actual));
    let name = |o: &str| {
        let mut parts = o.split('\u{1e}');
        format!(
            "{} {}",
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default()
        )
    };
    let what = have
        .iter()
        .find(|o| !want.contains(o))
        .map(|o| format!("unexpected or altered {}", name(o)))
        .or_else(|| {
            want.iter()
                .find(|o| !have.contains(o))
                .map(|o| format!("{} is missing", name(o)))
        })
        .unwrap_or_else(|| "schema differs".into());
    tracing::error!(
        alert = "database_tampered",
        detail = %what,
        "the database schema is not the one the migrations make: refusing writes"
    );
    Err(StoreError::Tampered(format!(
        "the database schema was changed outside the vault ({what})"
    )))
}

/// Every row a query returns, mapped.
fn all<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(db_error)?;
    let rows = stmt.query_map(params, row).map_err(db_error)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
}

fn read_head(c: &Connection) -> Result<Option<Head>, StoreError> {
    c.prepare_cached("SELECT seq, hash, mac FROM audit_head WHERE id = 1")
        .and_then(|mut st| {
            st.query_row([], |r| {
                Ok(Head {
                    seq: r.get(0)?,
                    hash: text(r, 1)?,
                    mac: text(r, 2)?,
                })
            })
            .optional()
        })
        .map_err(db_error)
}

// Reading a row never fails on a value of the wrong storage class (someone writing the file can
// put a BLOB where TEXT belongs, or text in an INTEGER column): the value reads as something no
// vault writes, so the row then fails its MAC, hash or associated data and is reported, instead of
// the whole query failing or, worse, a BLOB comparing equal to nothing in an index lookup.

/// A marker no stored text of the vault contains.
const WRONG_TYPE: &str = "\u{fffd}[wrong storage class]";
/// A number no stored row of the vault holds.
const WRONG_NUMBER: i64 = i64::MIN;

fn text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    Ok(match r.get_ref(i)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => WRONG_TYPE.to_owned(),
    })
}

fn opt_text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        _ => Some(WRONG_TYPE.to_owned()),
    })
}

fn int(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<i64> {
    Ok(match r.get_ref(i)? {
        ValueRef::Integer(n) => n,
        _ => WRONG_NUMBER,
    })
}

fn opt_int(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n),
        _ => Some(WRONG_NUMBER),
    })
}

fn blob(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<u8>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Blob(b) => b.to_vec(),
        _ => WRONG_TYPE.as_bytes().to_vec(),
    })
}

fn flag(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<bool> {
    Ok(!matches!(
        r.get_ref(i)?,
        ValueRef::Integer(0) | ValueRef::Null
    ))
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: int(r, 0)?,
        at: int(r, 1)?,
        actor: text(r, 2)?,
        action: text(r, 3)?,
        token: opt_text(r, 4)?,
        kind: opt_text(r, 5)?,
        purpose: opt_text(r, 6)?,
        outcome: text(r, 7)?,
        detail: text(r, 8)?,
        envelope: opt_text(r, 9)?,
        prev_hash: text(r, 10)?,
        hash: text(r, 11)?,
        mac: text(r, 12)?,
    })
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        token: text(r, 0)?,
        kind: text(r, 1)?,
        data_key_id: int(r, 2)?,
        ciphertext: blob(r, 3)?,
        fingerprint: text(r, 4)?,
        brand: opt_text(r, 5)?,
        bin: opt_text(r, 6)?,
        last4: opt_text(r, 7)?,
        created_at: int(r, 8)?,
        expires_at: opt_int(r, 9)?,
        subject: opt_text(r, 10)?,
        ended_in_log: flag(r, 11)?,
    })
}

const TOKEN_COLUMNS: &str = "token, kind, data_key_id, ciphertext, fingerprint, brand, bin, last4, \
                             created_at, expires_at, subject";

/// The stored columns of a token row, and whether the log ended it (partial index
/// `audit_ended_tokens`): a deletion, or the plain reveal that used a card security code.
const TOKEN_READ: &str = "token, kind, data_key_id, ciphertext, fingerprint, brand, bin, last4, \
     created_at, expires_at, subject, EXISTS (SELECT 1 FROM audit WHERE audit.token = \
     tokens.token AND ((action = 'delete' AND outcome = 'ok') OR (action = 'reveal' AND outcome = \
     'plain' AND kind = 'cvc')))";

const API_KEY_COLUMNS: &str = "id, digest, role, label, created_at, revoked_at, expires_at, mac, \
     previous_digest, previous_expires_at, last_used_at, client_cert_sha256";

/// The stored columns of an API key row, and whether the log revoked it (partial index
/// `audit_revoked`).
const API_KEY_READ: &str = "id, digest, role, label, created_at, revoked_at, expires_at, mac, \
     EXISTS (SELECT 1 FROM audit WHERE action = 'apikey.revoke' AND detail = api_keys.id), \
     previous_digest, previous_expires_at, last_used_at, client_cert_sha256";

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: text(r, 0)?,
        digest: blob(r, 1)?,
        role: text(r, 2)?,
        label: text(r, 3)?,
        created_at: int(r, 4)?,
        revoked_at: opt_int(r, 5)?,
        expires_at: opt_int(r, 6)?,
        mac: text(r, 7)?,
        revoked_in_log: flag(r, 8)?,
        previous_digest: r.get(9)?,
        previous_expires_at: opt_int(r, 10)?,
        last_used_at: opt_int(r, 11)?,
        client_cert_sha256: r.get(12)?,
    })
}

/// The stored columns of an operator row, and what the log says of the operator (partial index
/// `audit_operators`; see [`OperatorLog`]).
const OPERATOR_READ: &str = "name, role, password_hash, totp_wrapped, created_at, disabled_at, \
     failed_attempts, locked_until, last_totp_step, generation, mac, \
     (SELECT COUNT(*) FROM audit WHERE action IN ('operator.disable', 'operator.reset') AND detail IN \
      ('operator ' || operators.name, 'operator ' || operators.name || \
      ': new password and TOTP secret')), \
     (SELECT MAX(l.at) FROM audit l WHERE l.action = 'operator.lock' AND l.detail = 'operator ' || \
      operators.name AND NOT EXISTS (SELECT 1 FROM audit r WHERE r.action IN ('operator.disable', \
      'operator.reset') AND r.detail IN ('operator ' || operators.name, 'operator ' || \
      operators.name || ': new password and TOTP secret') AND r.action = 'operator.reset' AND \
      r.seq > l.seq))";

fn operator_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OperatorRecord> {
    Ok(OperatorRecord {
        name: text(r, 0)?,
        role: text(r, 1)?,
        password_hash: text(r, 2)?,
        totp_wrapped: blob(r, 3)?,
        created_at: int(r, 4)?,
        disabled_at: opt_int(r, 5)?,
        failed_attempts: int(r, 6)?,
        locked_until: opt_int(r, 7)?,
        last_totp_step: opt_int(r, 8)?,
        generation: int(r, 9)?,
        mac: text(r, 10)?,
        log: OperatorLog {
            generation_bumps: int(r, 11)?,
            locked_at: opt_int(r, 12)?,
        },
    })
}

const SESSION_COLUMNS: &str = "id, operator, generation, created_at, last_seen_at, step_up_at, mac";

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: text(r, 0)?,
        operator: text(r, 1)?,
        generation: int(r, 2)?,
        created_at: int(r, 3)?,
        last_seen_at: int(r, 4)?,
        step_up_at: int(r, 5)?,
        mac: text(r, 6)?,
    })
}

const HPKE_COLUMNS: &str =
    "kid, public_key, wrapped_private, created_at, not_before, expires_at, retired_at, mac";

/// The stored columns of an HPKE key row, and whether the log retired it (partial index
/// `audit_retired`).
const HPKE_READ: &str = "kid, public_key, wrapped_private, created_at, not_before, expires_at, \
     retired_at, mac, EXISTS (SELECT 1 FROM audit WHERE action = 'key.retire' AND detail = \
     hpke_keys.kid)";

fn hpke_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HpkeKeyRecord> {
    Ok(HpkeKeyRecord {
        kid: text(r, 0)?,
        public_key: blob(r, 1)?,
        wrapped_private: blob(r, 2)?,
        created_at: int(r, 3)?,
        not_before: int(r, 4)?,
        expires_at: int(r, 5)?,
        retired_at: opt_int(r, 6)?,
        mac: text(r, 7)?,
        retired_in_log: flag(r, 8)?,
    })
}

fn read_subject_key(c: &Connection, subject: &str) -> Result<Option<SubjectKeyRecord>, StoreError> {
    c.prepare_cached(
        "SELECT subject, data_key_id, wrapped, created_at, EXISTS (SELECT 1 FROM audit WHERE \
         action = 'subject.erase' AND outcome = 'ok' AND detail = subject_keys.subject AND at >= \
         subject_keys.created_at) FROM subject_keys WHERE subject = ?1",
    )
    .and_then(|mut st| {
        st.query_row([subject], |r| {
            Ok(SubjectKeyRecord {
                subject: text(r, 0)?,
                data_key_id: int(r, 1)?,
                wrapped: blob(r, 2)?,
                created_at: int(r, 3)?,
                erased_in_log: flag(r, 4)?,
            })
        })
        .optional()
    })
    .map_err(db_error)
}

/// Whether an authenticated audit entry stored this envelope's value (which survives someone
/// deleting replay rows). `key` is [`EnvelopeRef::key`](fieldseal_vault_store::audit::EnvelopeRef::key).
fn envelope_seen(tx: &Connection, key: &str) -> Result<bool, StoreError> {
    // The id as text, and as a BLOB of the same bytes: retyping the column must not hide it.
    tx.prepare_cached(
        "SELECT 1 FROM audit WHERE envelope IN (?1, CAST(?1 AS BLOB)) AND envelope IS NOT NULL \
         LIMIT 1",
    )
    .and_then(|mut st| st.exists([key]))
    .map_err(db_error)
}

/// Inserts one token row: `Inserted`, or for a token already stored, `Existing` if it holds the
/// same value (same kind and fingerprint: a deterministic token) and `TokenTaken` otherwise. A
/// refused statement changes nothing (SQLite rolls back the statement).
fn insert_row(c: &Connection, t: &TokenRecord) -> Result<InsertOutcome, StoreError> {
    let inserted = c
        .prepare_cached(&format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             ?11)"
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
                t.expires_at,
                t.subject
            ])
        });
    match inserted {
        Ok(_) => Ok(InsertOutcome::Inserted),
        Err(e) if is_constraint(&e) => {
            let same: Option<bool> = c
                .prepare_cached(
                    "SELECT kind = ?2 AND fingerprint = ?3 AND fingerprint != '' FROM tokens \
                     WHERE token = ?1",
                )
                .and_then(|mut st| {
                    st.query_row(params![t.token, t.kind, t.fingerprint], |r| r.get(0))
                        .optional()
                })
                .map_err(db_error)?;
            Ok(if same == Some(true) {
                InsertOutcome::Existing
            } else {
                InsertOutcome::TokenTaken
            })
        }
        Err(e) => Err(db_error(e)),
    }
}

/// Inserts one item of a batch under its own savepoint; returns what happened.
fn insert_one(
    tx: &mut Transaction<'_>,
    log: &mut Log<'_>,
    item: &NewToken,
) -> Result<InsertOutcome, StoreError> {
    // The log is the one record of consumed envelopes: inside this write transaction, an earlier
    // item of the same batch counts too. (Its unique index is the backstop.)
    let seen = envelope_seen(tx, &item.envelope.key())?;
    let sp = tx.savepoint().map_err(db_error)?;
    let outcome = match seen {
        true => InsertOutcome::Replayed,
        false => insert_row(&sp, &item.token)?,
    };
    match outcome {
        // The audit entry names the envelope: consumed.
        InsertOutcome::Inserted | InsertOutcome::Existing => {
            sp.commit().map_err(db_error)?;
            log.append(tx, &item.audit)?;
        }
        InsertOutcome::Replayed => {
            drop(sp);
            log.append(tx, &item.replayed_audit)?;
        }
        // Nothing of this item is kept: the caller tries another token.
        InsertOutcome::TokenTaken => drop(sp),
    }
    Ok(outcome)
}

/// Inserts every item of a batch or none, under one savepoint: the audit entries are appended
/// only once the outcome of all is known (the tokens' if all are stored, else the replays'
/// refusals), so a rolled-back item leaves nothing in the log either.
fn insert_all_or_none(
    tx: &mut Transaction<'_>,
    log: &mut Log<'_>,
    items: &[NewToken],
) -> Result<Vec<InsertOutcome>, StoreError> {
    let sp = tx.savepoint().map_err(db_error)?;
    let mut keys = std::collections::HashSet::with_capacity(items.len());
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let key = item.envelope.key();
        // An envelope the log names, or one an earlier item of this batch carries.
        let outcome = if envelope_seen(&sp, &key)? || !keys.insert(key) {
            InsertOutcome::Replayed
        } else {
            insert_row(&sp, &item.token)?
        };
        outcomes.push(outcome);
    }
    if outcomes.iter().all(|o| o.stored()) {
        sp.commit().map_err(db_error)?;
        for item in items {
            log.append(tx, &item.audit)?;
        }
    } else {
        drop(sp);
        for (item, outcome) in items.iter().zip(&outcomes) {
            if *outcome == InsertOutcome::Replayed {
                log.append(tx, &item.replayed_audit)?;
            }
        }
    }
    Ok(outcomes)
}

impl Store for SqliteStore {
    fn pool_use(&self) -> Option<fieldseal_vault_store::PoolUse> {
        // One connection, taken by one call at a time (writes of requests go through the group
        // writer, which takes it too).
        let busy = usize::from(self.conn.try_lock().is_err());
        Some(fieldseal_vault_store::PoolUse {
            in_use: busy,
            open: 1,
            max: 1,
            waiting: 0,
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.run(|c, _| {
            c.execute_batch(MIGRATION_TABLE).map_err(db_error)?;
            let applied: Vec<i64> = all(
                c,
                "SELECT version FROM schema_migrations ORDER BY version",
                [],
                |r| int(r, 0),
            )?;
            if applied.iter().zip(1..).any(|(v, want)| *v != want)
                || applied.len() > MIGRATIONS.len()
            {
                return Err(StoreError::Tampered(format!(
                    "the migration record lists versions {applied:?}: not the 1 to {} this vault \
                     writes",
                    MIGRATIONS.len()
                )));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied.len()) {
                let version = i as i64 + 1;
                let tx = write_tx(c)?;
                if version == AUTHENTICATED_ROWS {
                    let entries: i64 = tx
                        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
                        .map_err(db_error)?;
                    let has_macs: bool = tx
                        .query_row(
                            "SELECT count(*) FROM pragma_table_info('audit') WHERE name = 'mac'",
                            [],
                            |r| r.get(0),
                        )
                        .map_err(db_error)?;
                    if has_macs {
                        return Err(StoreError::Tampered(
                            "the migration record was cut back: the schema already has \
                             authenticated rows"
                                .into(),
                        ));
                    }
                    if entries > 0 {
                        return Err(StoreError::Incompatible(
                            "this vault database was written by an earlier fieldseal-vault whose \
                             audit entries and rows carry no MACs; it cannot be upgraded in place \
                             (export what you need, then initialize a new vault)"
                                .into(),
                        ));
                    }
                }
                tx.execute_batch(sql).map_err(|e| {
                    let text = e.to_string();
                    if text.contains("already exists") || text.contains("duplicate column name") {
                        StoreError::Tampered(format!(
                            "the migration record was cut back: migration {version}'s objects \
                             exist already"
                        ))
                    } else {
                        StoreError::Database(format!("migration {version} failed: {e}"))
                    }
                })?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, \
                     strftime('%s','now'))",
                    [version],
                )
                .map_err(db_error)?;
                tx.commit().map_err(db_error)?;
            }
            check_schema(c)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c, _| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db_error))
            .await
    }

    fn set_audit_key(&self, key: SymmetricKey) {
        if let Ok(mut slot) = self.chain.write() {
            *slot = Some(Arc::new(AuditChain::new(key)));
        }
    }

    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.run(move |c, _| {
            c.query_row("SELECT wrapped FROM secrets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn secrets_made(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.run(move |c, _| {
            let mut st = c
                .prepare_cached("SELECT name, created_at FROM secrets ORDER BY name")
                .map_err(db_error)?;
            let rows = st
                .query_map([], |r| Ok((text(r, 0)?, int(r, 1)?)))
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
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
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO secrets (name, wrapped, created_at) VALUES (?1, ?2, ?3)",
                    params![name, wrapped, audit.at],
                )
                .map_err(db_error)?;
            if n == 1 {
                log.append(&tx, &audit)?;
            }
            log.commit(tx)?;
            Ok(n == 1)
        })
        .await
    }

    async fn rewrap_secret(
        &self,
        name: &str,
        old: Vec<u8>,
        new: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.write_audited(
            "UPDATE secrets SET wrapped = ?2 WHERE name = ?1 AND wrapped = ?3",
            (name.to_owned(), new, old),
            audit,
        )
        .await
    }

    async fn rewrap_hpke_key(
        &self,
        kid: &str,
        old: Vec<u8>,
        new: Vec<u8>,
        mac: String,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.write_audited(
            "UPDATE hpke_keys SET wrapped_private = ?2, mac = ?4 WHERE kid = ?1 AND \
             wrapped_private = ?3",
            (kid.to_owned(), new, old, mac),
            audit,
        )
        .await
    }

    async fn add_data_key(
        &self,
        id: i64,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO secrets (name, wrapped, created_at) VALUES (?1, ?2, ?3)",
                    params![format!("data-key:{id}"), wrapped, audit.at],
                )
                .map_err(db_error)?;
            if n == 1 {
                tx.execute(
                    "INSERT INTO data_keys (id, created_at, encryptions) VALUES (?1, ?2, 0)",
                    params![id, audit.at],
                )
                .map_err(db_error)?;
                log.append(&tx, &audit)?;
            }
            log.commit(tx)?;
            Ok(n == 1)
        })
        .await
    }

    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError> {
        self.run(move |c, _| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, created_at, encryptions, (SELECT count(*) FROM tokens WHERE \
                     tokens.data_key_id = data_keys.id AND tokens.subject IS NULL) FROM data_keys ORDER BY id",
                )
                .map_err(db_error)?;
            let rows = st
                .query_map([], |r| {
                    Ok(DataKeyRecord {
                        id: int(r, 0)?,
                        created_at: int(r, 1)?,
                        encryptions: int(r, 2)?,
                        values: int(r, 3)?,
                    })
                })
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn count_encryptions(&self, id: i64, n: i64) -> Result<(), StoreError> {
        self.run(move |c, _| {
            let tx = write_tx(c)?;
            tx.execute(
                "UPDATE data_keys SET encryptions = encryptions + ?2 WHERE id = ?1",
                params![id, n],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn record_key_uses(&self, uses: Vec<KeyUse>) -> Result<(), StoreError> {
        self.run(move |c, _| {
            let tx = write_tx(c)?;
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT INTO key_uses (kind, id, uses, last_used_at) VALUES (?1, ?2, ?3, \
                         ?4) ON CONFLICT (kind, id) DO UPDATE SET uses = uses + excluded.uses, \
                         last_used_at = max(last_used_at, excluded.last_used_at)",
                    )
                    .map_err(db_error)?;
                for u in &uses {
                    st.execute(params![u.kind, u.id, u.uses, u.last_used_at])
                        .map_err(db_error)?;
                }
            }
            tx.commit().map_err(db_error)
        })
        .await
    }

    async fn key_uses(&self) -> Result<Vec<KeyUse>, StoreError> {
        self.run(move |c, _| {
            let mut st = c
                .prepare_cached(
                    "SELECT kind, id, uses, last_used_at FROM key_uses ORDER BY kind, id",
                )
                .map_err(db_error)?;
            let rows = st
                .query_map([], |r| {
                    Ok(KeyUse {
                        kind: text(r, 0)?,
                        id: text(r, 1)?,
                        uses: int(r, 2)?,
                        last_used_at: int(r, 3)?,
                    })
                })
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn forward_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let name = name.to_owned();
        self.run(move |c, _| {
            c.prepare_cached("SELECT seq FROM forward_cursors WHERE name = ?1")
                .and_then(|mut st| st.query_row([&name], |r| r.get(0)).optional())
                .map_err(db_error)
        })
        .await
    }

    async fn set_forward_cursor(&self, name: &str, seq: i64, at: i64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.run(move |c, _| {
            c.prepare_cached(
                "INSERT INTO forward_cursors (name, seq, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, \
                 updated_at = excluded.updated_at",
            )
            .and_then(|mut st| st.execute(params![name, seq, at]))
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn tokens_to_reencrypt(
        &self,
        below: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let after = after.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c, _| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS}, 0 FROM tokens WHERE data_key_id < ?1 AND subject IS NULL AND token > ?2 \
                     ORDER BY token LIMIT ?3"
                ))
                .map_err(db_error)?;
            let rows = st
                .query_map(params![below, after, limit], token_row)
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)
        })
        .await
    }

    async fn reencrypt_tokens(
        &self,
        rows: Vec<Reencrypted>,
        audit: AuditDraft,
    ) -> Result<u64, StoreError> {
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            let mut moved = 0u64;
            {
                let mut st = tx
                    .prepare_cached(
                        "UPDATE tokens SET data_key_id = ?2, ciphertext = ?3 WHERE token = ?1 AND \
                         data_key_id = ?4 AND ciphertext = ?5",
                    )
                    .map_err(db_error)?;
                for r in &rows {
                    moved += st
                        .execute(params![
                            r.token,
                            r.data_key_id,
                            r.ciphertext,
                            r.old_data_key_id,
                            r.old_ciphertext
                        ])
                        .map_err(db_error)? as u64;
                }
            }
            if moved > 0 {
                let detail = format!("{} ({moved} of {} moved)", audit.detail, rows.len());
                log.append(&tx, &AuditDraft { detail, ..audit })?;
            }
            log.commit(tx)?;
            Ok(moved)
        })
        .await
    }

    async fn begin_audit_log(
        &self,
        name: &str,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let existing: i64 = tx
                .query_row(
                    "SELECT (SELECT count(*) FROM audit) + (SELECT count(*) FROM audit_head) + \
                     (SELECT count(*) FROM secrets WHERE name = ?1)",
                    [&name],
                    |r| r.get(0),
                )
                .map_err(db_error)?;
            if existing > 0 {
                return Ok(false);
            }
            let mut log = Log::begin(&tx, chain, true)?;
            tx.execute(
                "INSERT INTO secrets (name, wrapped, created_at) VALUES (?1, ?2, ?3)",
                params![name, wrapped, audit.at],
            )
            .map_err(db_error)?;
            log.append(&tx, &audit)?;
            log.commit(tx)?;
            Ok(true)
        })
        .await
    }

    async fn hpke_keys(&self) -> Result<Vec<HpkeKeyRecord>, StoreError> {
        self.run(|c, _| {
            all(
                c,
                &format!("SELECT {HPKE_READ} FROM hpke_keys ORDER BY rowid"),
                [],
                hpke_row,
            )
        })
        .await
    }

    async fn insert_hpke_key(&self, k: HpkeKeyRecord, audit: AuditDraft) -> Result<(), StoreError> {
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            tx.execute(
                &format!(
                    "INSERT INTO hpke_keys ({HPKE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    k.kid,
                    k.public_key,
                    k.wrapped_private,
                    k.created_at,
                    k.not_before,
                    k.expires_at,
                    k.retired_at,
                    k.mac
                ],
            )
            .map_err(db_error)?;
            log.append(&tx, &audit)?;
            log.commit(tx)
        })
        .await
    }

    async fn retire_hpke_key(
        &self,
        kid: &str,
        at: i64,
        mac: String,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.update_audited(
            "UPDATE hpke_keys SET retired_at = ?2, mac = ?3 WHERE kid = ?1 AND (retired_at IS \
             NULL OR retired_at > ?2)",
            kid,
            at,
            mac,
            audit,
        )
        .await
    }

    async fn insert_tokens(&self, items: Vec<NewToken>) -> Result<Vec<InsertOutcome>, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.writer.send(Job::Tokens {
            items,
            atomic: false,
            done,
        })?;
        result
            .await
            .map_err(|_| StoreError::Database("writer stopped".into()))?
    }

    async fn insert_tokens_atomic(
        &self,
        items: Vec<NewToken>,
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.writer.send(Job::Tokens {
            items,
            atomic: true,
            done,
        })?;
        result
            .await
            .map_err(|_| StoreError::Database("writer stopped".into()))?
    }

    async fn token(&self, token: &str, now: i64) -> Result<Option<TokenRecord>, StoreError> {
        let token = token.to_owned();
        self.run(move |c, _| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_READ} FROM tokens WHERE token = ?1 AND (expires_at IS NULL OR \
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
        if !consume.is_empty() {
            self.deleted.store(true, Ordering::Release);
        }
        let (done, result) = tokio::sync::oneshot::channel();
        self.writer.send(Job::Reveals {
            audit,
            consume,
            done,
        })?;
        result
            .await
            .map_err(|_| StoreError::Database("writer stopped".into()))?
    }

    async fn delete_token(&self, token: &str, audit: AuditDraft) -> Result<bool, StoreError> {
        self.deleted.store(true, Ordering::Release);
        let token = token.to_owned();
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            let n = tx
                .execute("DELETE FROM tokens WHERE token = ?1", [token])
                .map_err(db_error)?;
            let mut audit = audit;
            if n == 0 {
                // Gone meanwhile: the log must not claim a deletion that did not happen.
                audit.outcome = Outcome::NotFound;
            }
            log.append(&tx, &audit)?;
            log.commit(tx)?;
            Ok(n == 1)
        })
        .await
    }

    async fn append_audit(&self, audit: AuditDraft) -> Result<(), StoreError> {
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            log.append(&tx, &audit)?;
            log.commit(tx)
        })
        .await
    }

    async fn audit_log(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |c, _| {
            all(
                c,
                &format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                params![after, limit as i64],
                audit_row,
            )
        })
        .await
    }

    async fn last_audit_entry(&self) -> Result<Option<AuditRecord>, StoreError> {
        self.run(|c, _| {
            c.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1"
            ))
            .and_then(|mut st| st.query_row([], audit_row).optional())
            .map_err(db_error)
        })
        .await
    }

    async fn last_audit_entry_of(&self, action: &str) -> Result<Option<AuditRecord>, StoreError> {
        let action = action.to_owned();
        self.run(move |c, _| {
            c.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE action = ?1 ORDER BY seq DESC LIMIT 1"
            ))
            .and_then(|mut st| st.query_row([action], audit_row).optional())
            .map_err(db_error)
        })
        .await
    }

    async fn reveal_lock_entries(&self, after: i64) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |c, _| {
            // The condition is the partial index's, word for word (migration 0012).
            c.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE action IN ('reveal.lock', \
                 'reveal.unlock') AND seq > ?1 ORDER BY seq"
            ))
            .and_then(|mut st| {
                st.query_map([after], audit_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(db_error)
        })
        .await
    }

    async fn audit_head(&self) -> Result<Option<Head>, StoreError> {
        self.run(|c, _| read_head(c)).await
    }

    async fn insert_api_key(&self, k: ApiKeyRecord, audit: AuditDraft) -> Result<(), StoreError> {
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            tx.execute(
                &format!(
                    "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                     ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    k.id,
                    k.digest,
                    k.role,
                    k.label,
                    k.created_at,
                    k.revoked_at,
                    k.expires_at,
                    k.mac,
                    k.previous_digest,
                    k.previous_expires_at,
                    k.last_used_at,
                    k.client_cert_sha256
                ],
            )
            .map_err(db_error)?;
            log.append(&tx, &audit)?;
            log.commit(tx)
        })
        .await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |c, _| {
            c.prepare_cached(&format!(
                "SELECT {API_KEY_READ} FROM api_keys WHERE id = ?1"
            ))
            .and_then(|mut st| st.query_row([id], api_key_row).optional())
            .map_err(db_error)
        })
        .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.run(|c, _| {
            all(
                c,
                &format!("SELECT {API_KEY_READ} FROM api_keys ORDER BY created_at, id"),
                [],
                api_key_row,
            )
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        id: &str,
        at: i64,
        mac: String,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.update_audited(
            "UPDATE api_keys SET revoked_at = ?2, mac = ?3 WHERE id = ?1 AND revoked_at IS NULL",
            id,
            at,
            mac,
            audit,
        )
        .await
    }

    async fn rotate_api_key(&self, k: ApiKeyRecord, audit: AuditDraft) -> Result<bool, StoreError> {
        self.write_audited(
            "UPDATE api_keys SET digest = ?2, previous_digest = ?3, previous_expires_at = ?4, \
             mac = ?5 WHERE id = ?1 AND revoked_at IS NULL",
            (
                k.id,
                k.digest,
                k.previous_digest,
                k.previous_expires_at,
                k.mac,
            ),
            audit,
        )
        .await
    }

    async fn touch_api_key(&self, id: &str, at: i64) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |c, _| {
            c.execute(
                "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND \
                 (last_used_at IS NULL OR last_used_at < ?2)",
                params![id, at],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn subject_key(&self, subject: &str) -> Result<Option<SubjectKeyRecord>, StoreError> {
        let subject = subject.to_owned();
        self.run(move |c, _| read_subject_key(c, &subject)).await
    }

    async fn put_subject_key(
        &self,
        key: SubjectKeyRecord,
        audit: AuditDraft,
    ) -> Result<SubjectKeyRecord, StoreError> {
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO subject_keys (subject, data_key_id, wrapped, \
                     created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![key.subject, key.data_key_id, key.wrapped, key.created_at],
                )
                .map_err(db_error)?;
            if n == 1 {
                log.append(&tx, &audit)?;
            }
            let stored = read_subject_key(&tx, &key.subject)?
                .ok_or_else(|| StoreError::Database("subject key vanished".into()))?;
            log.commit(tx)?;
            Ok(stored)
        })
        .await
    }

    async fn subject_tokens(
        &self,
        subject: &str,
        now: i64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let subject = subject.to_owned();
        self.run(move |c, _| {
            all(
                c,
                &format!(
                    "SELECT {TOKEN_READ} FROM tokens WHERE subject = ?1 AND (expires_at IS NULL \
                     OR expires_at > ?2) ORDER BY created_at, token"
                ),
                params![subject, now],
                token_row,
            )
        })
        .await
    }

    async fn erase_subject(
        &self,
        subject: &str,
        audit: AuditDraft,
        deleted: AuditDraft,
    ) -> Result<u64, StoreError> {
        self.deleted.store(true, Ordering::Release);
        let subject = subject.to_owned();
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            let gone: Vec<(String, String)> = all(
                &tx,
                "DELETE FROM tokens WHERE subject = ?1 RETURNING token, kind",
                [&subject],
                |r| Ok((text(r, 0)?, text(r, 1)?)),
            )?;
            tx.execute("DELETE FROM subject_keys WHERE subject = ?1", [&subject])
                .map_err(db_error)?;
            log.append(&tx, &audit)?;
            for (token, kind) in &gone {
                log.append(&tx, &deleted.clone().token(token).kind(kind))?;
            }
            log.commit(tx)?;
            Ok(gone.len() as u64)
        })
        .await
    }

    async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        for _ in 0..PURGE_BATCHES {
            let deleted = Arc::clone(&self.deleted);
            let n = self
                .run(move |c, chain| {
                    let tx = write_tx(c)?;
                    let expired: Vec<(String, String, i64)> = {
                        let mut st = tx
                            .prepare(
                                "SELECT token, kind, expires_at FROM tokens WHERE expires_at IS \
                                 NOT NULL AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
                            )
                            .map_err(db_error)?;
                        let rows = st
                            .query_map(params![now, PURGE_BATCH as i64], |r| {
                                Ok((text(r, 0)?, text(r, 1)?, r.get(2)?))
                            })
                            .map_err(db_error)?;
                        rows.collect::<Result<_, _>>().map_err(db_error)?
                    };
                    if expired.is_empty() {
                        return Ok(0);
                    }
                    let mut log = Log::begin(&tx, chain, false)?;
                    let mut gone = Vec::with_capacity(expired.len());
                    for (token, kind, expires_at) in expired {
                        tx.execute("DELETE FROM tokens WHERE token = ?1", [&token])
                            .map_err(db_error)?;
                        gone.push((kind, expires_at));
                    }
                    log.append(&tx, &audit::purge_batch(now, &gone))?;
                    log.commit(tx)?;
                    deleted.store(true, Ordering::Release);
                    Ok(gone.len())
                })
                .await?;
            total += n as u64;
            if n < PURGE_BATCH {
                break;
            }
        }
        Ok(total)
    }

    async fn insert_operator(
        &self,
        o: OperatorRecord,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.write_audited(
            "INSERT INTO operators (name, role, password_hash, totp_wrapped, created_at, \
             disabled_at, failed_attempts, locked_until, last_totp_step, generation, mac) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (name) DO NOTHING",
            (
                o.name,
                o.role,
                o.password_hash,
                o.totp_wrapped,
                o.created_at,
                o.disabled_at,
                o.failed_attempts,
                o.locked_until,
                o.last_totp_step,
                o.generation,
                o.mac,
            ),
            audit,
        )
        .await
    }

    async fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        let name = name.to_owned();
        self.run(move |c, _| {
            c.prepare_cached(&format!(
                "SELECT {OPERATOR_READ} FROM operators WHERE name = ?1"
            ))
            .and_then(|mut st| st.query_row([name], operator_row).optional())
            .map_err(db_error)
        })
        .await
    }

    async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        self.run(|c, _| {
            all(
                c,
                &format!("SELECT {OPERATOR_READ} FROM operators ORDER BY name"),
                [],
                operator_row,
            )
        })
        .await
    }

    async fn update_operator(
        &self,
        o: OperatorRecord,
        old_mac: &str,
        audit: Vec<AuditDraft>,
    ) -> Result<bool, StoreError> {
        let old_mac = old_mac.to_owned();
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let mut log = Log::begin(&tx, chain, false)?;
            let n = tx
                .execute(
                    "UPDATE operators SET role = ?2, password_hash = ?3, totp_wrapped = ?4, \
                     created_at = ?5, disabled_at = ?6, failed_attempts = ?7, locked_until = ?8, \
                     last_totp_step = ?9, generation = ?10, mac = ?11 WHERE name = ?1 AND mac = ?12",
                    params![
                        o.name,
                        o.role,
                        o.password_hash,
                        o.totp_wrapped,
                        o.created_at,
                        o.disabled_at,
                        o.failed_attempts,
                        o.locked_until,
                        o.last_totp_step,
                        o.generation,
                        o.mac,
                        old_mac
                    ],
                )
                .map_err(db_error)?;
            if n == 1 {
                for d in &audit {
                    log.append(&tx, d)?;
                }
            }
            log.commit(tx)?;
            Ok(n == 1)
        })
        .await
    }

    async fn insert_session(&self, s: SessionRecord, audit: AuditDraft) -> Result<(), StoreError> {
        self.write_audited(
            "INSERT INTO operator_sessions (id, operator, generation, created_at, last_seen_at, \
             step_up_at, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            (
                s.id,
                s.operator,
                s.generation,
                s.created_at,
                s.last_seen_at,
                s.step_up_at,
                s.mac,
            ),
            audit,
        )
        .await
        .map(|_| ())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |c, _| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM operator_sessions WHERE id = ?1"
            ))
            .and_then(|mut st| st.query_row([id], session_row).optional())
            .map_err(db_error)
        })
        .await
    }

    async fn update_session(
        &self,
        s: SessionRecord,
        old_mac: &str,
        audit: Option<AuditDraft>,
    ) -> Result<bool, StoreError> {
        let old_mac = old_mac.to_owned();
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let n = tx
                .execute(
                    "UPDATE operator_sessions SET last_seen_at = ?2, step_up_at = ?3, mac = ?4 \
                     WHERE id = ?1 AND mac = ?5",
                    params![s.id, s.last_seen_at, s.step_up_at, s.mac, old_mac],
                )
                .map_err(db_error)?;
            match audit {
                Some(d) if n == 1 => {
                    let mut log = Log::begin(&tx, chain, false)?;
                    log.append(&tx, &d)?;
                    log.commit(tx)?;
                }
                _ => tx.commit().map_err(db_error)?,
            }
            Ok(n == 1)
        })
        .await
    }

    async fn delete_session(
        &self,
        id: &str,
        audit: Option<AuditDraft>,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |c, chain| {
            let tx = write_tx(c)?;
            let n = tx
                .execute("DELETE FROM operator_sessions WHERE id = ?1", [id])
                .map_err(db_error)?;
            match audit {
                Some(d) if n == 1 => {
                    let mut log = Log::begin(&tx, chain, false)?;
                    log.append(&tx, &d)?;
                    log.commit(tx)?;
                }
                _ => tx.commit().map_err(db_error)?,
            }
            Ok(n == 1)
        })
        .await
    }

    async fn purge_sessions(
        &self,
        idle_before: i64,
        created_before: i64,
    ) -> Result<u64, StoreError> {
        self.run(move |c, _| {
            let n = c
                .execute(
                    "DELETE FROM operator_sessions WHERE last_seen_at < ?1 OR created_at < ?2",
                    params![idle_before, created_before],
                )
                .map_err(db_error)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        // The next write checks the schema in full, whatever its cookie says.
        self.checked_schema.store(-1, Ordering::Release);
        // Only after deletions: truncating the WAL under a steady write load would make the file
        // grow from nothing again every cycle, for no gain.
        if !self.deleted.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let deleted = Arc::clone(&self.deleted);
        self.run(move |c, _| {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(|e| {
                    // Not done: try again at the next cycle.
                    deleted.store(true, Ordering::Release);
                    db_error(e)
                })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Reading an operator looks its entries up through the partial indexes, never by scanning
    /// the audit log (every sign-in and every session request reads one, unauthenticated ones
    /// too).
    #[test]
    fn an_operator_is_read_without_scanning_the_audit_log() {
        let c = Connection::open_in_memory().unwrap();
        for sql in MIGRATIONS {
            c.execute_batch(sql).unwrap();
        }
        let mut st = c
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {OPERATOR_READ} FROM operators WHERE name = 'ann'"
            ))
            .unwrap();
        let plan: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("audit_operator_changes")),
            "{plan:?}"
        );
        assert!(
            plan.iter().any(|l| l.contains("audit_operator_locks")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:?}");
    }
}

//! The PostgreSQL backend of the fieldseal vault: several stateless vault nodes on one database.
//! Queries and numbered migrations only (`migrations/*.sql`, applied at start under an advisory
//! lock, so nodes starting together do not race); the audit chain, row MACs and every rule about
//! what may be stored or revealed live in `fieldseal-vault-store` and the service.
//!
//! One truth for all nodes:
//! - every write that appends to the audit log takes one transaction-scoped advisory lock (per
//!   schema) before it reads the chain's tail and head, so the chain is one sequence whatever node
//!   writes; the replay check (an audit entry naming the envelope) and the consumption of a card
//!   security code run under the same lock, so each happens once across all nodes;
//! - every write transaction first checks that no trigger, rule or row-security policy was added
//!   to the vault's tables (what could undo a write behind the vault's back); the whole schema is
//!   compared with the migrations' at start and at every [`Store::checkpoint`];
//! - nothing is cached between calls but the audit key: a revoked API key or a retired HPKE key
//!   is seen by the next read on every node.
//!
//! The vault's schema is the URL's `schema=NAME` (default `public`, created if missing). Its
//! connections run with `search_path = pg_catalog` and name every table with its schema, so no
//! object anyone adds to a schema stands in for a builtin function, operator or table.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod connect;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use deadpool_postgres::{Object, Pool, PoolError, Transaction};
use fieldseal_core::at_rest::SymmetricKey;
use fieldseal_vault_store::audit::{
    self, Appender, AuditChain, AuditDraft, AuditRecord, Head, Outcome, PURGE_BATCH, PURGE_BATCHES,
};
use fieldseal_vault_store::group::{Done, Job, MAX_GROUP, answer};
use fieldseal_vault_store::{
    ApiKeyRecord, DataKeyRecord, HpkeKeyRecord, InsertOutcome, KeyUse, NewToken, OperatorLog,
    OperatorRecord, Reencrypted, SessionRecord, Store, StoreError, SubjectKeyRecord, TokenRecord,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

pub use connect::{DEFAULT_SCHEMA, PgOptions};

/// Opens a write transaction with the audit log begun (the tables locked, the write path and the
/// chain checked, the audit lock held): binds `$tx` and `$log` in the calling block.
macro_rules! audited_tx {
    ($store:ident => $tx:ident, $log:ident) => {
        let chain = $store.chain()?;
        let mut client = $store.client().await?;
        let $tx = client.transaction().await.map_err(db_error)?;
        let mut $log = Log::begin(&$tx, &chain, &$store.inner, false).await?;
    };
}

/// Schema migrations, applied in order; each runs once, in a transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_policy_entries.sql"),
    include_str!("../migrations/0005_api_key_lifecycle.sql"),
    include_str!("../migrations/0006_key_management.sql"),
    include_str!("../migrations/0007_lifecycle.sql"),
    include_str!("../migrations/0008_operators.sql"),
    include_str!("../migrations/0009_operator_log.sql"),
    include_str!("../migrations/0010_key_uses.sql"),
    include_str!("../migrations/0011_forward_cursors.sql"),
    include_str!("../migrations/0012_reveal_locks.sql"),
];

const MIGRATION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version integer \
                               PRIMARY KEY, applied_at bigint NOT NULL)";

/// The schema's description from the catalogs (`schema.sql`).
const SCHEMA_QUERY: &str = include_str!("schema.sql");

/// Advisory lock classes (the first key; the second is `hashtext` of the schema name, so vaults in
/// different schemas of one database do not wait for each other). The audit lock is what every
/// write that appends to the audit log holds until it commits; `pg_locks` shows who holds it.
pub const AUDIT_LOCK: i32 = 0x6673_6c01;
const MIGRATE_LOCK: i32 = 0x6673_6c02;
const PURGE_LOCK: i32 = 0x6673_6c03;

/// The identity of everything that acts on the vault's writes (`write_path.sql`: `$1` the lock
/// class, `$2` the schema), read inside every write transaction in the statement that takes the
/// audit lock, once the tables are locked against schema changes. A few catalog index lookups,
/// where the full description ([`SCHEMA_QUERY`]) takes tens of milliseconds: when the list differs
/// from the one taken at the last full check that passed, the full check runs at once.
const LOCK_AND_WRITE_PATH: &str = include_str!("write_path.sql");

/// Locks the vault's tables against schema changes (a trigger, an index, a constraint) for the
/// rest of the write transaction: what the write-path check finds stays true until commit.
const LOCK_TABLES: &str = "LOCK TABLE $S.secrets, $S.hpke_keys, $S.tokens, $S.api_keys, $S.audit, \
                           $S.audit_head IN ROW EXCLUSIVE MODE";

fn db_error(e: tokio_postgres::Error) -> StoreError {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection broke or could not be made (TLS included: connections are
        // made by the pool, whose errors count as unavailable), or a value did not decode. The
        // causes name what failed (an untrusted certificate, a refused connection); they never
        // hold a row's values.
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        return if e.is_closed()
            || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
        {
            StoreError::Unavailable(format!("cannot use the database connection: {text}"))
        } else {
            StoreError::Database(text)
        };
    };
    // The server's message only: its detail can quote a row's values.
    let message = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    if *code == SqlState::DISK_FULL {
        StoreError::Full
    } else if [
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
    ]
    .contains(code)
    {
        StoreError::Busy
    } else if [
        SqlState::QUERY_CANCELED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
    ]
    .contains(code)
        || code.code().starts_with("08")
    {
        StoreError::Unavailable(format!("{} ({})", message, code.code()))
    } else {
        StoreError::Database(format!("{} ({})", message, code.code()))
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Timeout(_) => StoreError::Unavailable(
            "no database connection within the timeout (pool exhausted or database unreachable)"
                .into(),
        ),
        PoolError::Backend(e) => match db_error(e) {
            StoreError::Database(m) => StoreError::Unavailable(m),
            other => other,
        },
        other => StoreError::Unavailable(other.to_string()),
    }
}

type ChainSlot = RwLock<Option<Arc<AuditChain>>>;

struct Inner {
    pool: Pool,
    /// The vault's schema, and its quoted form followed by a dot, which replaces `$S.` in SQL.
    schema: String,
    prefix: String,
    /// The write path ([`LOCK_AND_WRITE_PATH`]) as it was at the last full check that passed.
    write_path: Mutex<Option<String>>,
    chain: ChainSlot,
    timeout: Duration,
    /// What the last full schema check found wrong, if anything: writes are refused meanwhile.
    tampered: Mutex<Option<String>>,
    /// The migrations' schema description (from a scratch schema), once computed.
    expected: tokio::sync::OnceCell<String>,
    /// The group writer's queue, once started (by the first tokenize or reveal).
    writer: tokio::sync::OnceCell<tokio::sync::mpsc::Sender<Job>>,
}

/// The PostgreSQL store. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl Inner {
    /// `sql` with its tables (written `$S.name`) in the vault's schema. Every name is qualified:
    /// connections run with `search_path = pg_catalog`, so no function, operator or table an
    /// attacker adds to the vault's schema (or anywhere else) takes the place of a builtin.
    fn sql(&self, sql: &str) -> String {
        sql.replace("$S.", &self.prefix)
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store on the database `url` names (`postgres://` or `postgresql://`; see the crate docs
    /// for TLS). Connects lazily: call [`Store::migrate`] to connect and create the schema.
    pub fn open(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let (pool, schema) = connect::pool(url, options)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                prefix: format!("\"{schema}\"."),
                schema,
                write_path: Mutex::new(None),
                chain: RwLock::new(None),
                timeout: options.timeout,
                tampered: Mutex::new(None),
                expected: tokio::sync::OnceCell::new(),
                writer: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// Takes `n` connections out of the pool and keeps them until the result is dropped, as
    /// requests stuck on a slow database would (tests of an exhausted pool).
    #[cfg(feature = "testing")]
    pub async fn hold_connections(&self, n: usize) -> Result<impl Drop, StoreError> {
        struct Held(#[allow(dead_code)] Vec<Object>);
        impl Drop for Held {
            fn drop(&mut self) {}
        }
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(self.client().await?);
        }
        Ok(Held(held))
    }

    /// The pool's connections now (for [`Store::pool_use`]).
    fn pool_now(&self) -> fieldseal_vault_store::PoolUse {
        let s = self.inner.pool.status();
        fieldseal_vault_store::PoolUse {
            in_use: s.size.saturating_sub(s.available),
            open: s.size,
            max: s.max_size,
            waiting: s.waiting,
        }
    }

    /// Connections open and idle in the pool, and the pool's size.
    pub fn pool_status(&self) -> (usize, usize) {
        let s = self.inner.pool.status();
        (s.size, s.max_size)
    }

    /// The schema the vault's tables are in (the URL's `schema=NAME`, default `public`).
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// Queues a tokenize or reveal write for the group writer, starting it on first use: one task
    /// per store takes every such request waiting at that moment and commits them in one
    /// transaction (one advisory lock, one commit), then answers each.
    async fn submit(&self, job: Job) -> Result<(), StoreError> {
        let queue = self
            .inner
            .writer
            .get_or_init(|| async {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(4 * MAX_GROUP);
                let weak = Arc::downgrade(&self.inner);
                tokio::spawn(async move {
                    while let Some(first) = rx.recv().await {
                        let mut jobs = vec![first];
                        while jobs.len() < MAX_GROUP {
                            match rx.try_recv() {
                                Ok(job) => jobs.push(job),
                                Err(_) => break,
                            }
                        }
                        let Some(inner) = weak.upgrade() else {
                            answer(jobs, Err(StoreError::Database("store closed".into())));
                            break;
                        };
                        let store = PgStore { inner };
                        let outcome = store.bounded(store.commit_group(&mut jobs)).await;
                        answer(jobs, outcome);
                    }
                });
                tx
            })
            .await;
        queue
            .send(job)
            .await
            .map_err(|_| StoreError::Database("writer stopped".into()))
    }

    /// Commits every job of a group in one transaction: tokens stored (or refused as replays) and
    /// CVC tokens consumed, with their audit entries. A handful of statements whatever the group's
    /// size: the consumed tokens deleted in one, the envelopes looked up in the log in one, the
    /// tokens inserted in one, the entries appended with the head at commit in one.
    async fn commit_group(&self, jobs: &mut [Job]) -> Result<Vec<Done>, StoreError> {
        audited_tx!(self => tx, log);
        let mut tx = tx;
        let inner = &self.inner;
        // Card security codes revealed in the clear: one deletion; of several requests consuming
        // the same token, the first in the group wins it.
        let wanted: Vec<&str> = jobs
            .iter()
            .flat_map(|job| match job {
                Job::Reveals { consume, .. } => consume.iter().map(|(_, t)| t.as_str()).collect(),
                Job::Tokens { .. } => Vec::new(),
            })
            .collect();
        let mut unclaimed: HashSet<String> = if wanted.is_empty() {
            HashSet::new()
        } else {
            text_set(
                &rows_for(
                    &tx,
                    inner,
                    "DELETE FROM $S.tokens WHERE token = ANY($1) RETURNING token",
                    &wanted,
                )
                .await?,
            )?
        };
        // The tokens of every job that may keep some items: one pass for all of them. Then each
        // all-or-nothing job under a savepoint of its own, rolled back unless all its items are
        // stored, an envelope an earlier job of the group consumed counting as a replay.
        let items: Vec<&NewToken> = jobs
            .iter()
            .flat_map(|job| match job {
                Job::Tokens {
                    items,
                    atomic: false,
                    ..
                } => items.iter().collect(),
                _ => Vec::new(),
            })
            .collect();
        let shared = store_tokens(&tx, inner, &items, &HashSet::new()).await?;
        let mut consumed: HashSet<String> = items
            .iter()
            .zip(&shared)
            .filter(|(_, o)| o.stored())
            .map(|(i, _)| i.envelope.key())
            .collect();
        let mut shared = shared.into_iter();
        let mut atomic_outcomes = Vec::new();
        for job in jobs.iter() {
            if let Job::Tokens {
                items,
                atomic: true,
                ..
            } = job
            {
                let items: Vec<&NewToken> = items.iter().collect();
                let sp = tx.savepoint("all_or_none").await.map_err(db_error)?;
                let outcomes = store_tokens(&sp, inner, &items, &consumed).await?;
                if outcomes.iter().all(|o| o.stored()) {
                    sp.commit().await.map_err(db_error)?;
                    consumed.extend(items.iter().map(|i| i.envelope.key()));
                } else {
                    sp.rollback().await.map_err(db_error)?;
                }
                atomic_outcomes.push(outcomes);
            }
        }
        let mut atomic_outcomes = atomic_outcomes.into_iter();
        let mut all = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            match job {
                Job::Reveals { audit, consume, .. } => {
                    let mut consumed = Vec::with_capacity(consume.len());
                    for (index, token) in consume.iter() {
                        let won = unclaimed.remove(token);
                        if !won && let Some(entry) = audit.get_mut(*index) {
                            entry.outcome = Outcome::NotFound;
                            entry.detail = "already used".into();
                        }
                        consumed.push(won);
                    }
                    for d in audit.iter() {
                        log.append(d);
                    }
                    all.push(Done::Reveals(consumed));
                }
                Job::Tokens {
                    items,
                    atomic: true,
                    ..
                } => {
                    let outcomes = atomic_outcomes
                        .next()
                        .ok_or_else(|| StoreError::Database("token outcomes out of step".into()))?;
                    let all_stored = outcomes.iter().all(|o| o.stored());
                    for (item, outcome) in items.iter().zip(&outcomes) {
                        match outcome {
                            _ if all_stored => log.append(&item.audit),
                            InsertOutcome::Replayed => log.append(&item.replayed_audit),
                            // Rolled back with the rest of its batch.
                            _ => {}
                        }
                    }
                    all.push(Done::Tokens(outcomes));
                }
                Job::Tokens { items, .. } => {
                    let mut done = Vec::with_capacity(items.len());
                    for item in items.iter() {
                        let outcome = shared.next().ok_or_else(|| {
                            StoreError::Database("token outcomes out of step".into())
                        })?;
                        match outcome {
                            // The audit entry names the envelope: consumed.
                            InsertOutcome::Inserted | InsertOutcome::Existing => {
                                log.append(&item.audit)
                            }
                            InsertOutcome::Replayed => log.append(&item.replayed_audit),
                            // Nothing of this item is kept: the caller tries another token.
                            InsertOutcome::TokenTaken => {}
                        }
                        done.push(outcome);
                    }
                    all.push(Done::Tokens(done));
                }
            }
        }
        log.commit(tx).await?;
        Ok(all)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    fn chain(&self) -> Result<Arc<AuditChain>, StoreError> {
        self.inner
            .chain
            .read()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| {
                StoreError::Database("audit key not loaded: cannot append to the audit log".into())
            })
    }

    /// Runs `op` bounded by three times the timeout (the server bounds a lock wait by one and a
    /// statement by two): a database that stops answering fails the call instead of hanging it.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.inner.timeout * 3;
        match tokio::time::timeout(limit, op).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database did not answer within {limit:?}"
            ))),
        }
    }

    /// The migrations' schema, described: applied to the session's temporary schema inside a
    /// transaction that is rolled back (needs only the TEMP privilege).
    async fn expected_schema(&self, client: &mut Object) -> Result<String, StoreError> {
        self.inner
            .expected
            .get_or_try_init(|| async {
                let tx = client.transaction().await.map_err(db_error)?;
                tx.batch_execute("SET LOCAL search_path = pg_temp")
                    .await
                    .map_err(db_error)?;
                tx.batch_execute(MIGRATION_TABLE).await.map_err(db_error)?;
                for sql in MIGRATIONS {
                    tx.batch_execute(sql).await.map_err(db_error)?;
                }
                tx.batch_execute("SET LOCAL search_path = pg_catalog")
                    .await
                    .map_err(db_error)?;
                let temp: String = tx
                    .query_one(
                        "SELECT nspname::text FROM pg_namespace WHERE oid = pg_my_temp_schema()",
                        &[],
                    )
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(db_error)?;
                let described: String = tx
                    .query_one(SCHEMA_QUERY, &[&temp])
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(db_error)?;
                tx.rollback().await.map_err(db_error)?;
                Ok(described)
            })
            .await
            .cloned()
    }

    /// Compares the whole schema with the migrations'; remembers the outcome for later writes.
    async fn check_schema(&self, client: &mut Object) -> Result<(), StoreError> {
        let expected = self.expected_schema(client).await?;
        let actual: String = client
            .query_one(SCHEMA_QUERY, &[&self.inner.schema])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db_error)?;
        let verdict = schema_difference(&expected, &actual);
        if let Some(what) = &verdict {
            tracing::error!(
                alert = "database_tampered",
                detail = %what,
                "the database schema is not the one the migrations make: refusing writes"
            );
        }
        if let Ok(mut t) = self.inner.tampered.lock() {
            t.clone_from(&verdict);
        }
        match verdict {
            None => Ok(()),
            Some(what) => Err(tampered(&what)),
        }
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
        self.write_audited(sql, &[&id, &at, &mac], audit).await
    }

    /// Runs one write; appends `audit` in the same transaction if it changed a row. Whether it
    /// did.
    async fn write_audited(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            let n = exec(&tx, &self.inner, sql, params).await?;
            if n == 1 {
                log.append(&audit);
            }
            log.commit(tx).await?;
            Ok(n == 1)
        })
        .await
    }

    /// Every row of a read-only query, mapped.
    async fn read<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
    ) -> Result<Vec<T>, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let st = client
                .prepare_cached(&self.inner.sql(sql))
                .await
                .map_err(db_error)?;
            let rows = client.query(&st, params).await.map_err(db_error)?;
            rows.iter()
                .map(&map)
                .collect::<Result<_, _>>()
                .map_err(db_error)
        })
        .await
    }
}

fn tampered(what: &str) -> StoreError {
    StoreError::Tampered(format!(
        "the database schema was changed outside the vault ({what})"
    ))
}

/// What differs between two schema descriptions, for the alert; `None` if they are the same.
fn schema_difference(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let want: Vec<&str> = expected.lines().collect();
    let have: Vec<&str> = actual.lines().collect();
    Some(
        have.iter()
            .find(|l| !want.contains(l))
            .map(|l| format!("unexpected or altered {l}"))
            .or_else(|| {
                want.iter()
                    .find(|l| !have.contains(l))
                    .map(|l| format!("missing {l}"))
            })
            .unwrap_or_else(|| "schema differs".into()),
    )
}

/// Runs a statement (tables written `$S.name`) in the transaction; returns the rows it changed.
async fn exec(
    tx: &Transaction<'_>,
    inner: &Inner,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = prepare(tx, inner, sql).await?;
    tx.execute(&st, params).await.map_err(db_error)
}

/// `sql` with its tables in the vault's schema, prepared once per connection.
async fn prepare(
    tx: &Transaction<'_>,
    inner: &Inner,
    sql: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    tx.prepare_cached(&inner.sql(sql)).await.map_err(db_error)
}

/// The one row (or none) a query (tables written `$S.name`) returns, in the transaction.
async fn opt_row(
    tx: &Transaction<'_>,
    inner: &Inner,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let st = prepare(tx, inner, sql).await?;
    tx.query_opt(&st, params).await.map_err(db_error)
}

/// Every row a query (tables written `$S.name`) returns, in the transaction.
async fn rows(
    tx: &Transaction<'_>,
    inner: &Inner,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let st = prepare(tx, inner, sql).await?;
    tx.query(&st, params).await.map_err(db_error)
}

/// Every row a query over an array parameter (`$1`, tables written `$S.name`) returns, planned for
/// the array it is given: sent as an unnamed statement (one round trip), never as a cached plan. A
/// plan cached while a table was small (a sequential scan comparing every row with every element)
/// would otherwise be kept as the table grows, inside the audit lock every writer waits for.
async fn rows_for(
    tx: &Transaction<'_>,
    inner: &Inner,
    sql: &str,
    array: &[&str],
) -> Result<Vec<Row>, StoreError> {
    tx.query_typed(&inner.sql(sql), &[(&array, Type::TEXT_ARRAY)])
        .await
        .map_err(db_error)
}

const AUDIT_COLUMNS: &str = "seq, at, actor, action, token, kind, purpose, outcome, detail, \
                             envelope, prev_hash, hash, mac";

/// The audit log inside one write transaction: the lock taken and the tables checked for hooks,
/// the stored tail and head checked by the chain, entries inserted as they are appended, the head
/// stored and the chain told at commit.
struct Log<'c> {
    chain: &'c AuditChain,
    inner: &'c Inner,
    appender: Appender<'c>,
    /// Entries appended, inserted at commit in one statement with the new head.
    pending: Vec<AuditRecord>,
}

impl<'c> Log<'c> {
    async fn begin(
        tx: &Transaction<'_>,
        chain: &'c AuditChain,
        inner: &'c Inner,
        genesis: bool,
    ) -> Result<Self, StoreError> {
        if let Some(what) = inner.tampered.lock().ok().and_then(|t| t.clone()) {
            return Err(tampered(&what));
        }
        // Four statements in one round trip, sent in this order (a request on a prepared
        // statement goes out when its future is first polled, and `try_join4` polls in order:
        // keep all four prepared above, or a prepare inside a future could reorder them). The
        // server runs them one after the other, each with its own snapshot, so the tail and head
        // are read under the audit lock the second one takes.
        let lock_tables = prepare(tx, inner, LOCK_TABLES).await?;
        let write_path = prepare(tx, inner, LOCK_AND_WRITE_PATH).await?;
        let tail = prepare(
            tx,
            inner,
            &format!("SELECT {AUDIT_COLUMNS} FROM $S.audit ORDER BY seq DESC LIMIT 1"),
        )
        .await?;
        let head = prepare(
            tx,
            inner,
            "SELECT seq, hash, mac FROM $S.audit_head WHERE id = 1",
        )
        .await?;
        let (_, found, tail, head) = futures_util::future::try_join4(
            tx.execute(&lock_tables, &[]),
            tx.query_opt(&write_path, &[&AUDIT_LOCK, &inner.schema]),
            tx.query_opt(&tail, &[]),
            tx.query_opt(&head, &[]),
        )
        .await
        .map_err(db_error)?;
        let found: Option<String> = found
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(db_error)?
            .flatten();
        let known = inner.write_path.lock().ok().and_then(|w| w.clone());
        if found.is_none() || found != known {
            // Something the writes depend on changed since the last full check (or none ran
            // yet in this process): check the whole schema now, inside this transaction.
            let expected = inner.expected.get().ok_or_else(|| {
                StoreError::Database("the schema was not checked at start".into())
            })?;
            let actual: String = opt_row(tx, inner, SCHEMA_QUERY, &[&inner.schema])
                .await?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(db_error)?
                .unwrap_or_default();
            if let Some(what) = schema_difference(expected, &actual) {
                tracing::error!(
                    alert = "database_tampered",
                    detail = %what,
                    "the database schema is not the one the migrations make: refusing writes"
                );
                return Err(tampered(&what));
            }
            if let Ok(mut w) = inner.write_path.lock() {
                *w = found;
            }
        }
        let tail = tail.map(|r| audit_row(&r)).transpose().map_err(db_error)?;
        let head = head.map(|r| head_row(&r)).transpose().map_err(db_error)?;
        let seen_seq = chain.seen_seq();
        let seen = if seen_seq > 0 && tail.as_ref().is_some_and(|t| t.seq != seen_seq) {
            opt_row(
                tx,
                inner,
                &format!("SELECT {AUDIT_COLUMNS} FROM $S.audit WHERE seq = $1"),
                &[&seen_seq],
            )
            .await?
            .map(|r| audit_row(&r))
            .transpose()
            .map_err(db_error)?
        } else {
            None
        };
        let appender = chain
            .begin(tail.as_ref(), head.as_ref(), seen.as_ref(), genesis)
            .map_err(StoreError::AuditBroken)?;
        Ok(Self {
            chain,
            inner,
            appender,
            pending: Vec::new(),
        })
    }

    /// Appends an entry; it is inserted at commit.
    fn append(&mut self, d: &AuditDraft) {
        let r = self.appender.append(d);
        self.pending.push(r);
    }

    /// Inserts the appended entries and stores the new head (one statement), then commits.
    async fn commit(self, tx: Transaction<'_>) -> Result<(), StoreError> {
        let head = self.appender.head();
        if !self.pending.is_empty() {
            let p = &self.pending;
            let text = |f: fn(&AuditRecord) -> &str| p.iter().map(f).collect::<Vec<_>>();
            let opt = |f: fn(&AuditRecord) -> Option<&str>| p.iter().map(f).collect::<Vec<_>>();
            let seq: Vec<i64> = p.iter().map(|r| r.seq).collect();
            let at: Vec<i64> = p.iter().map(|r| r.at).collect();
            exec(
                &tx,
                self.inner,
                APPEND_ENTRIES,
                &[
                    &seq,
                    &at,
                    &text(|r| &r.actor),
                    &text(|r| &r.action),
                    &opt(|r| r.token.as_deref()),
                    &opt(|r| r.kind.as_deref()),
                    &opt(|r| r.purpose.as_deref()),
                    &text(|r| &r.outcome),
                    &text(|r| &r.detail),
                    &opt(|r| r.envelope.as_deref()),
                    &text(|r| &r.prev_hash),
                    &text(|r| &r.hash),
                    &text(|r| &r.mac),
                    &head.seq,
                    &head.hash,
                    &head.mac,
                ],
            )
            .await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.chain.committed(&head);
        Ok(())
    }
}

/// Inserts a transaction's audit entries (`$1`..`$13`: one array per column) and stores the new
/// head (`$14`..`$16`), in one statement.
const APPEND_ENTRIES: &str = "WITH entries AS (INSERT INTO $S.audit (seq, at, actor, action, \
     token, kind, purpose, outcome, detail, envelope, prev_hash, hash, mac) SELECT * FROM \
     unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])) INSERT INTO \
     $S.audit_head (id, seq, hash, mac) VALUES (1, $14, $15, $16) ON CONFLICT (id) DO UPDATE SET \
     seq = excluded.seq, hash = excluded.hash, mac = excluded.mac";

fn head_row(r: &Row) -> Result<Head, tokio_postgres::Error> {
    Ok(Head {
        seq: r.try_get(0)?,
        hash: r.try_get(1)?,
        mac: r.try_get(2)?,
    })
}

fn audit_row(r: &Row) -> Result<AuditRecord, tokio_postgres::Error> {
    Ok(AuditRecord {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        token: r.try_get(4)?,
        kind: r.try_get(5)?,
        purpose: r.try_get(6)?,
        outcome: r.try_get(7)?,
        detail: r.try_get(8)?,
        envelope: r.try_get(9)?,
        prev_hash: r.try_get(10)?,
        hash: r.try_get(11)?,
        mac: r.try_get(12)?,
    })
}

const TOKEN_COLUMNS: &str = "token, kind, data_key_id, ciphertext, fingerprint, brand, bin, last4, \
                             created_at, expires_at, subject";

/// The stored columns of a token row, and whether the log ended it: a deletion, or the plain
/// reveal that used a card security code.
const TOKEN_READ: &str = "token, kind, data_key_id, ciphertext, fingerprint, brand, bin, last4, \
     created_at, expires_at, subject, EXISTS (SELECT 1 FROM $S.audit WHERE audit.token = \
     tokens.token AND ((action = 'delete' AND outcome = 'ok') OR (action = 'reveal' AND outcome = \
     'plain' AND kind = 'cvc')))";

fn token_row(r: &Row) -> Result<TokenRecord, tokio_postgres::Error> {
    Ok(TokenRecord {
        token: r.try_get(0)?,
        kind: r.try_get(1)?,
        data_key_id: r.try_get(2)?,
        ciphertext: r.try_get(3)?,
        fingerprint: r.try_get(4)?,
        brand: r.try_get(5)?,
        bin: r.try_get(6)?,
        last4: r.try_get(7)?,
        created_at: r.try_get(8)?,
        expires_at: r.try_get(9)?,
        subject: r.try_get(10)?,
        ended_in_log: r.try_get(11)?,
    })
}

const API_KEY_COLUMNS: &str = "id, digest, role, label, created_at, revoked_at, expires_at, mac, \
     previous_digest, previous_expires_at, last_used_at, client_cert_sha256";

/// The stored columns of an API key row, and whether the log revoked it (partial index
/// `audit_revoked`).
const API_KEY_READ: &str = "id, digest, role, label, created_at, revoked_at, expires_at, mac, \
     EXISTS (SELECT 1 FROM $S.audit WHERE action = 'apikey.revoke' AND detail = api_keys.id), \
     previous_digest, previous_expires_at, last_used_at, client_cert_sha256";

/// A subject key row, and whether the log erased the subject after the key was made.
const SUBJECT_KEY_READ: &str = "SELECT subject, data_key_id, wrapped, created_at, EXISTS (SELECT 1 \
     FROM $S.audit WHERE action = 'subject.erase' AND outcome = 'ok' AND detail = \
     subject_keys.subject AND at >= subject_keys.created_at) FROM $S.subject_keys WHERE subject = $1";

fn subject_key_row(r: &Row) -> Result<SubjectKeyRecord, tokio_postgres::Error> {
    Ok(SubjectKeyRecord {
        subject: r.try_get(0)?,
        data_key_id: r.try_get(1)?,
        wrapped: r.try_get(2)?,
        created_at: r.try_get(3)?,
        erased_in_log: r.try_get(4)?,
    })
}

fn api_key_row(r: &Row) -> Result<ApiKeyRecord, tokio_postgres::Error> {
    Ok(ApiKeyRecord {
        id: r.try_get(0)?,
        digest: r.try_get(1)?,
        role: r.try_get(2)?,
        label: r.try_get(3)?,
        created_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
        expires_at: r.try_get(6)?,
        mac: r.try_get(7)?,
        revoked_in_log: r.try_get(8)?,
        previous_digest: r.try_get(9)?,
        previous_expires_at: r.try_get(10)?,
        last_used_at: r.try_get(11)?,
        client_cert_sha256: r.try_get(12)?,
    })
}

/// The stored columns of an operator row, and what the log says of the operator (partial index
/// `audit_operators`; see [`OperatorLog`]).
const OPERATOR_READ: &str = "name, role, password_hash, totp_wrapped, created_at, disabled_at, \
     failed_attempts, locked_until, last_totp_step, generation, mac, \
     (SELECT COUNT(*) FROM $S.audit WHERE action IN ('operator.disable', 'operator.reset') AND detail IN \
      ('operator ' || operators.name, 'operator ' || operators.name || \
      ': new password and TOTP secret')), \
     (SELECT MAX(l.at) FROM $S.audit l WHERE l.action = 'operator.lock' AND l.detail = 'operator ' || \
      operators.name AND NOT EXISTS (SELECT 1 FROM $S.audit r WHERE r.action IN ('operator.disable', \
      'operator.reset') AND r.detail IN ('operator ' || operators.name, 'operator ' || \
      operators.name || ': new password and TOTP secret') AND r.action = 'operator.reset' AND \
      r.seq > l.seq))";

fn operator_row(r: &Row) -> Result<OperatorRecord, tokio_postgres::Error> {
    Ok(OperatorRecord {
        name: r.try_get(0)?,
        role: r.try_get(1)?,
        password_hash: r.try_get(2)?,
        totp_wrapped: r.try_get(3)?,
        created_at: r.try_get(4)?,
        disabled_at: r.try_get(5)?,
        failed_attempts: r.try_get(6)?,
        locked_until: r.try_get(7)?,
        last_totp_step: r.try_get(8)?,
        generation: r.try_get(9)?,
        mac: r.try_get(10)?,
        log: OperatorLog {
            generation_bumps: r.try_get(11)?,
            locked_at: r.try_get(12)?,
        },
    })
}

const SESSION_COLUMNS: &str = "id, operator, generation, created_at, last_seen_at, step_up_at, mac";

fn session_row(r: &Row) -> Result<SessionRecord, tokio_postgres::Error> {
    Ok(SessionRecord {
        id: r.try_get(0)?,
        operator: r.try_get(1)?,
        generation: r.try_get(2)?,
        created_at: r.try_get(3)?,
        last_seen_at: r.try_get(4)?,
        step_up_at: r.try_get(5)?,
        mac: r.try_get(6)?,
    })
}

const HPKE_COLUMNS: &str =
    "kid, public_key, wrapped_private, created_at, not_before, expires_at, retired_at, mac";

/// The stored columns of an HPKE key row, and whether the log retired it (partial index
/// `audit_retired`).
const HPKE_READ: &str = "kid, public_key, wrapped_private, created_at, not_before, expires_at, \
     retired_at, mac, EXISTS (SELECT 1 FROM $S.audit WHERE action = 'key.retire' AND detail = \
     hpke_keys.kid)";

fn hpke_row(r: &Row) -> Result<HpkeKeyRecord, tokio_postgres::Error> {
    Ok(HpkeKeyRecord {
        kid: r.try_get(0)?,
        public_key: r.try_get(1)?,
        wrapped_private: r.try_get(2)?,
        created_at: r.try_get(3)?,
        not_before: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        retired_at: r.try_get(6)?,
        mac: r.try_get(7)?,
        retired_in_log: r.try_get(8)?,
    })
}

/// Stores a group's tokens (the audit lock held) and returns each item's outcome, in order, as
/// if they had been inserted one after the other: an envelope the log names, or that an earlier
/// item of the group consumed, is a replay; a token already stored is the same value again
/// (`Existing`, deterministic tokens) or taken. Three statements for the whole group.
async fn store_tokens(
    tx: &Transaction<'_>,
    inner: &Inner,
    items: &[&NewToken],
    consumed_before: &HashSet<String>,
) -> Result<Vec<InsertOutcome>, StoreError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = items.iter().map(|i| i.envelope.key()).collect();
    // The log is the one record of consumed envelopes; under the audit lock, every other node's
    // last commit counts.
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut seen = text_set(
        &rows_for(
            tx,
            inner,
            "SELECT envelope FROM $S.audit WHERE envelope = ANY($1) AND envelope IS NOT NULL",
            &key_refs,
        )
        .await?,
    )?;
    // Consumed earlier in this transaction (their entries are appended at commit).
    seen.extend(
        keys.iter()
            .filter(|k| consumed_before.contains(*k))
            .cloned(),
    );
    // The first item naming each envelope the log does not is tried, unless an item tried before
    // it carries the same token (each token once in the statement, so what it returns maps to
    // items exactly); the others wait for it.
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut tokens_tried: HashSet<&str> = HashSet::new();
    let tried: Vec<usize> = (0..items.len())
        .filter(|&i| {
            !seen.contains(&keys[i])
                && *first.entry(&keys[i]).or_insert(i) == i
                && tokens_tried.insert(&items[i].token.token)
        })
        .collect();
    let tokens: Vec<&TokenRecord> = tried.iter().map(|&i| &items[i].token).collect();
    let mut outcomes: Vec<Option<InsertOutcome>> = vec![None; items.len()];
    for (&i, outcome) in tried
        .iter()
        .zip(store_token_rows(tx, inner, &tokens).await?)
    {
        outcomes[i] = Some(outcome);
    }
    // The items not tried above: replays if an earlier item consumed their envelope, else tried in
    // turn (an earlier item's token was taken, or theirs was in the statement already: rare, one
    // statement each).
    let mut consumed: HashSet<&str> = tried
        .iter()
        .filter(|&&i| outcomes[i] != Some(InsertOutcome::TokenTaken))
        .map(|&i| keys[i].as_str())
        .collect();
    for i in 0..items.len() {
        if outcomes[i].is_some() {
            continue;
        }
        let outcome = if seen.contains(&keys[i]) || consumed.contains(keys[i].as_str()) {
            InsertOutcome::Replayed
        } else {
            store_token_rows(tx, inner, &[&items[i].token])
                .await?
                .pop()
                .ok_or_else(|| StoreError::Database("token outcome missing".into()))?
        };
        if outcome != InsertOutcome::TokenTaken {
            consumed.insert(keys[i].as_str());
        }
        outcomes[i] = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| StoreError::Database("token outcome missing".into())))
        .collect()
}

/// Stores token rows (each token once): `Inserted`, or for a token already stored, `Existing` if
/// it holds the same value (same kind and fingerprint: a deterministic token) and `TokenTaken`
/// otherwise; one outcome per row, in order. Two statements at most.
async fn store_token_rows(
    tx: &Transaction<'_>,
    inner: &Inner,
    tokens: &[&TokenRecord],
) -> Result<Vec<InsertOutcome>, StoreError> {
    let inserted = insert_token_rows(tx, inner, tokens).await?;
    let names: Vec<&str> = tokens
        .iter()
        .filter(|t| !inserted.contains(&t.token))
        .map(|t| t.token.as_str())
        .collect();
    let stored: HashMap<String, (String, String)> = if names.is_empty() {
        HashMap::new()
    } else {
        rows_for(
            tx,
            inner,
            "SELECT token, kind, fingerprint FROM $S.tokens WHERE token = ANY($1)",
            &names,
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db_error)?
    };
    Ok(tokens
        .iter()
        .map(|t| {
            if inserted.contains(&t.token) {
                InsertOutcome::Inserted
            } else if stored.get(&t.token).is_some_and(|(kind, fingerprint)| {
                *kind == t.kind && *fingerprint == t.fingerprint && !fingerprint.is_empty()
            }) {
                InsertOutcome::Existing
            } else {
                InsertOutcome::TokenTaken
            }
        })
        .collect())
}

/// Inserts token rows (each token once) in one statement, skipping tokens already stored;
/// returns the tokens inserted. The statement is cached: its plan is the primary key's whatever
/// the table's size.
async fn insert_token_rows(
    tx: &Transaction<'_>,
    inner: &Inner,
    tokens: &[&TokenRecord],
) -> Result<HashSet<String>, StoreError> {
    if tokens.is_empty() {
        return Ok(HashSet::new());
    }
    let text = |f: fn(&TokenRecord) -> &str| tokens.iter().map(|t| f(t)).collect::<Vec<_>>();
    let opt = |f: fn(&TokenRecord) -> Option<&str>| tokens.iter().map(|t| f(t)).collect::<Vec<_>>();
    let data_key: Vec<i64> = tokens.iter().map(|t| t.data_key_id).collect();
    let ciphertext: Vec<&[u8]> = tokens.iter().map(|t| t.ciphertext.as_slice()).collect();
    let created: Vec<i64> = tokens.iter().map(|t| t.created_at).collect();
    let expires: Vec<Option<i64>> = tokens.iter().map(|t| t.expires_at).collect();
    let inserted = rows(
        tx,
        inner,
        &format!(
            "INSERT INTO $S.tokens ({TOKEN_COLUMNS}) SELECT * FROM unnest($1::text[], \
             $2::text[], $3::int8[], $4::bytea[], $5::text[], $6::text[], $7::text[], $8::text[], \
             $9::int8[], $10::int8[], $11::text[]) ON CONFLICT (token) DO NOTHING RETURNING \
             token"
        ),
        &[
            &text(|t| &t.token),
            &text(|t| &t.kind),
            &data_key,
            &ciphertext,
            &text(|t| &t.fingerprint),
            &opt(|t| t.brand.as_deref()),
            &opt(|t| t.bin.as_deref()),
            &opt(|t| t.last4.as_deref()),
            &created,
            &expires,
            &opt(|t| t.subject.as_deref()),
        ],
    )
    .await?;
    text_set(&inserted)
}

/// The first column of `rows` (text), as a set.
fn text_set(rows: &[Row]) -> Result<HashSet<String>, StoreError> {
    rows.iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(db_error)
}

impl Store for PgStore {
    fn pool_use(&self) -> Option<fieldseal_vault_store::PoolUse> {
        Some(self.pool_now())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            for (i, sql) in MIGRATIONS.iter().enumerate() {
                let version = i as i32 + 1;
                let tx = client.transaction().await.map_err(db_error)?;
                // Nodes starting together: one applies, the others wait and find it applied.
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
                    &[&MIGRATE_LOCK, &self.inner.schema],
                )
                .await
                .map_err(db_error)?;
                // The migrations name no schema: they create their tables in the vault's.
                tx.batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{0}\"; SET LOCAL search_path = \"{0}\"",
                    self.inner.schema
                ))
                .await
                .map_err(db_error)?;
                tx.batch_execute(MIGRATION_TABLE).await.map_err(db_error)?;
                let applied: Vec<i32> = rows(
                    &tx,
                    &self.inner,
                    "SELECT version FROM $S.schema_migrations ORDER BY version",
                    &[],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(db_error)?;
                if applied.iter().zip(1..).any(|(v, want)| *v != want)
                    || applied.len() > MIGRATIONS.len()
                {
                    return Err(StoreError::Tampered(format!(
                        "the migration record lists versions {applied:?}: not the 1 to {} this \
                         vault writes",
                        MIGRATIONS.len()
                    )));
                }
                if applied.contains(&version) {
                    tx.rollback().await.map_err(db_error)?;
                    continue;
                }
                let made: bool = tx
                    .query_one(
                        "SELECT to_regclass(quote_ident($1::text) || '.audit') IS NOT NULL",
                        &[&self.inner.schema],
                    )
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(db_error)?;
                if version == 1 && made {
                    return Err(StoreError::Tampered(
                        "the migration record was cut back: the schema it lists as not made \
                         exists"
                            .into(),
                    ));
                }
                tx.batch_execute(sql).await.map_err(|e| {
                    let exists = [
                        SqlState::DUPLICATE_TABLE,
                        SqlState::DUPLICATE_OBJECT,
                        SqlState::DUPLICATE_COLUMN,
                    ]
                    .iter()
                    .any(|c| e.code() == Some(c));
                    match db_error(e) {
                        _ if exists => StoreError::Tampered(format!(
                            "the migration record was cut back: migration {version}'s objects \
                             exist already"
                        )),
                        StoreError::Database(m) => {
                            StoreError::Database(format!("migration {version} failed: {m}"))
                        }
                        other => other,
                    }
                })?;
                exec(
                    &tx,
                    &self.inner,
                    "INSERT INTO $S.schema_migrations (version, applied_at) VALUES ($1, \
                     extract(epoch FROM now())::bigint)",
                    &[&version],
                )
                .await?;
                tx.commit().await.map_err(db_error)?;
            }
            self.check_schema(&mut client).await
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await.map_err(db_error)?;
            Ok(())
        })
        .await
    }

    fn set_audit_key(&self, key: SymmetricKey) {
        if let Ok(mut slot) = self.inner.chain.write() {
            *slot = Some(Arc::new(AuditChain::new(key)));
        }
    }

    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .read(
                "SELECT wrapped FROM $S.secrets WHERE name = $1",
                &[&name],
                |r| r.try_get(0),
            )
            .await?
            .pop())
    }

    async fn secrets_made(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(
            "SELECT name, created_at FROM $S.secrets ORDER BY name",
            &[],
            |r| Ok((r.try_get(0)?, r.try_get(1)?)),
        )
        .await
    }

    async fn put_secret(
        &self,
        name: &str,
        wrapped: Vec<u8>,
        audit: AuditDraft,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            let n = exec(&tx, &self.inner,
                "INSERT INTO $S.secrets (name, wrapped, created_at) VALUES ($1, $2, $3) ON CONFLICT \
                 (name) DO NOTHING",
                &[&name, &wrapped, &audit.at],
            )
            .await?;
            if n == 1 {
                log.append(&audit);
            }
            log.commit(tx).await?;
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
            "UPDATE $S.secrets SET wrapped = $2 WHERE name = $1 AND wrapped = $3",
            &[&name, &new, &old],
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
            "UPDATE $S.hpke_keys SET wrapped_private = $2, mac = $4 WHERE kid = $1 AND \
             wrapped_private = $3",
            &[&kid, &new, &old, &mac],
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
        self.bounded(async {
            audited_tx!(self => tx, log);
            let name = format!("data-key:{id}");
            let n = exec(&tx, &self.inner,
                "INSERT INTO $S.secrets (name, wrapped, created_at) VALUES ($1, $2, $3) ON CONFLICT \
                 (name) DO NOTHING",
                &[&name, &wrapped, &audit.at],
            )
            .await?;
            if n == 1 {
                exec(&tx, &self.inner,
                    "INSERT INTO $S.data_keys (id, created_at, encryptions) VALUES ($1, $2, 0)",
                    &[&id, &audit.at],
                )
                .await?;
                log.append(&audit);
            }
            log.commit(tx).await?;
            Ok(n == 1)
        })
        .await
    }

    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError> {
        self.read(
            "SELECT id, created_at, encryptions, (SELECT count(*) FROM $S.tokens WHERE \
             tokens.data_key_id = data_keys.id AND tokens.subject IS NULL) FROM $S.data_keys ORDER BY id",
            &[],
            |r| {
                Ok(DataKeyRecord {
                    id: r.try_get(0)?,
                    created_at: r.try_get(1)?,
                    encryptions: r.try_get(2)?,
                    values: r.try_get(3)?,
                })
            },
        )
        .await
    }

    async fn count_encryptions(&self, id: i64, n: i64) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let st =
                client
                    .prepare_cached(&self.inner.sql(
                        "UPDATE $S.data_keys SET encryptions = encryptions + $2 WHERE id = $1",
                    ))
                    .await
                    .map_err(db_error)?;
            client.execute(&st, &[&id, &n]).await.map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn record_key_uses(&self, mut uses: Vec<KeyUse>) -> Result<(), StoreError> {
        // One transaction (all counted or none), rows in one order on every node (no deadlock).
        uses.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            for u in &uses {
                exec(
                    &tx,
                    &self.inner,
                    "INSERT INTO $S.key_uses AS k (kind, id, uses, last_used_at) VALUES ($1, $2, \
                     $3, $4) ON CONFLICT (kind, id) DO UPDATE SET uses = k.uses + excluded.uses, \
                     last_used_at = GREATEST(k.last_used_at, excluded.last_used_at)",
                    &[&u.kind, &u.id, &u.uses, &u.last_used_at],
                )
                .await?;
            }
            tx.commit().await.map_err(db_error)
        })
        .await
    }

    async fn key_uses(&self) -> Result<Vec<KeyUse>, StoreError> {
        self.read(
            "SELECT kind, id, uses, last_used_at FROM $S.key_uses ORDER BY kind, id",
            &[],
            |r| {
                Ok(KeyUse {
                    kind: r.try_get(0)?,
                    id: r.try_get(1)?,
                    uses: r.try_get(2)?,
                    last_used_at: r.try_get(3)?,
                })
            },
        )
        .await
    }

    async fn forward_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .read(
                "SELECT seq FROM $S.forward_cursors WHERE name = $1",
                &[&name],
                |r| r.try_get(0),
            )
            .await?
            .into_iter()
            .next())
    }

    async fn set_forward_cursor(&self, name: &str, seq: i64, at: i64) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let st = client
                .prepare_cached(&self.inner.sql(
                    "INSERT INTO $S.forward_cursors (name, seq, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, \
                     updated_at = excluded.updated_at",
                ))
                .await
                .map_err(db_error)?;
            client
                .execute(&st, &[&name, &seq, &at])
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn tokens_to_reencrypt(
        &self,
        below: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(
            &format!(
                "SELECT {TOKEN_COLUMNS}, false FROM $S.tokens WHERE data_key_id < $1 AND subject IS NULL AND token > $2 \
                 ORDER BY token LIMIT $3"
            ),
            &[&below, &after, &limit],
            token_row,
        )
        .await
    }

    async fn reencrypt_tokens(
        &self,
        rows: Vec<Reencrypted>,
        audit: AuditDraft,
    ) -> Result<u64, StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            let mut moved = 0u64;
            for r in &rows {
                moved += exec(
                    &tx,
                    &self.inner,
                    "UPDATE $S.tokens SET data_key_id = $2, ciphertext = $3 WHERE token = $1 AND \
                     data_key_id = $4 AND ciphertext = $5",
                    &[
                        &r.token,
                        &r.data_key_id,
                        &r.ciphertext,
                        &r.old_data_key_id,
                        &r.old_ciphertext,
                    ],
                )
                .await?;
            }
            if moved > 0 {
                let detail = format!("{} ({moved} of {} moved)", audit.detail, rows.len());
                log.append(&AuditDraft { detail, ..audit });
            }
            log.commit(tx).await?;
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
        self.bounded(async {
            let chain = self.chain()?;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            // The lock first: two nodes initializing at once must not both begin a log.
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
                &[&AUDIT_LOCK, &self.inner.schema],
            )
            .await
            .map_err(db_error)?;
            let existing: i64 = opt_row(
                &tx,
                &self.inner,
                "SELECT (SELECT count(*) FROM $S.audit) + (SELECT count(*) FROM $S.audit_head) + \
                 (SELECT count(*) FROM $S.secrets WHERE name = $1)",
                &[&name],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(db_error)?
            .unwrap_or(0);
            if existing > 0 {
                return Ok(false);
            }
            let mut log = Log::begin(&tx, &chain, &self.inner, true).await?;
            exec(
                &tx,
                &self.inner,
                "INSERT INTO $S.secrets (name, wrapped, created_at) VALUES ($1, $2, $3)",
                &[&name, &wrapped, &audit.at],
            )
            .await?;
            log.append(&audit);
            log.commit(tx).await?;
            Ok(true)
        })
        .await
    }

    async fn hpke_keys(&self) -> Result<Vec<HpkeKeyRecord>, StoreError> {
        self.read(
            &format!("SELECT {HPKE_READ} FROM $S.hpke_keys ORDER BY position"),
            &[],
            hpke_row,
        )
        .await
    }

    async fn insert_hpke_key(&self, k: HpkeKeyRecord, audit: AuditDraft) -> Result<(), StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            exec(&tx, &self.inner,
                &format!(
                    "INSERT INTO $S.hpke_keys ({HPKE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &k.kid,
                    &k.public_key,
                    &k.wrapped_private,
                    &k.created_at,
                    &k.not_before,
                    &k.expires_at,
                    &k.retired_at,
                    &k.mac,
                ],
            )
            .await?;
            log.append(&audit);
            log.commit(tx).await
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
            "UPDATE $S.hpke_keys SET retired_at = $2, mac = $3 WHERE kid = $1 AND (retired_at IS \
             NULL OR retired_at > $2)",
            kid,
            at,
            mac,
            audit,
        )
        .await
    }

    async fn insert_tokens(&self, items: Vec<NewToken>) -> Result<Vec<InsertOutcome>, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.submit(Job::Tokens {
            items,
            atomic: false,
            done,
        })
        .await?;
        result
            .await
            .map_err(|_| StoreError::Database("writer stopped".into()))?
    }

    async fn insert_tokens_atomic(
        &self,
        items: Vec<NewToken>,
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.submit(Job::Tokens {
            items,
            atomic: true,
            done,
        })
        .await?;
        result
            .await
            .map_err(|_| StoreError::Database("writer stopped".into()))?
    }

    async fn token(&self, token: &str, now: i64) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self
            .read(
                &format!(
                    "SELECT {TOKEN_READ} FROM $S.tokens WHERE token = $1 AND (expires_at IS NULL \
                     OR expires_at > $2)"
                ),
                &[&token, &now],
                token_row,
            )
            .await?
            .pop())
    }

    async fn record_reveals(
        &self,
        audit: Vec<AuditDraft>,
        consume: Vec<(usize, String)>,
    ) -> Result<Vec<bool>, StoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.submit(Job::Reveals {
            audit,
            consume,
            done,
        })
        .await?;
        result
            .await
            .map_err(|_| StoreError::Database("writer stopped".into()))?
    }

    async fn delete_token(&self, token: &str, audit: AuditDraft) -> Result<bool, StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            let n = exec(
                &tx,
                &self.inner,
                "DELETE FROM $S.tokens WHERE token = $1",
                &[&token],
            )
            .await?;
            let mut audit = audit;
            if n == 0 {
                // Gone meanwhile: the log must not claim a deletion that did not happen.
                audit.outcome = Outcome::NotFound;
            }
            log.append(&audit);
            log.commit(tx).await?;
            Ok(n == 1)
        })
        .await
    }

    async fn append_audit(&self, audit: AuditDraft) -> Result<(), StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            log.append(&audit);
            log.commit(tx).await
        })
        .await
    }

    async fn audit_log(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(
            &format!("SELECT {AUDIT_COLUMNS} FROM $S.audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
            &[&after, &limit],
            audit_row,
        )
        .await
    }

    async fn last_audit_entry(&self) -> Result<Option<AuditRecord>, StoreError> {
        Ok(self
            .read(
                &format!("SELECT {AUDIT_COLUMNS} FROM $S.audit ORDER BY seq DESC LIMIT 1"),
                &[],
                audit_row,
            )
            .await?
            .pop())
    }

    async fn last_audit_entry_of(&self, action: &str) -> Result<Option<AuditRecord>, StoreError> {
        Ok(self
            .read(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM $S.audit WHERE action = $1 ORDER BY seq DESC \
                     LIMIT 1"
                ),
                &[&action],
                audit_row,
            )
            .await?
            .pop())
    }

    async fn reveal_lock_entries(&self, after: i64) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(
            &format!(
                "SELECT {AUDIT_COLUMNS} FROM $S.audit WHERE action IN ('reveal.lock', \
                 'reveal.unlock') AND seq > $1 ORDER BY seq"
            ),
            &[&after],
            audit_row,
        )
        .await
    }

    async fn audit_head(&self) -> Result<Option<Head>, StoreError> {
        Ok(self
            .read(
                "SELECT seq, hash, mac FROM $S.audit_head WHERE id = 1",
                &[],
                head_row,
            )
            .await?
            .pop())
    }

    async fn insert_api_key(&self, k: ApiKeyRecord, audit: AuditDraft) -> Result<(), StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            exec(&tx, &self.inner,
                &format!(
                    "INSERT INTO $S.api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     $8, $9, $10, $11, $12)"
                ),
                &[
                    &k.id,
                    &k.digest,
                    &k.role,
                    &k.label,
                    &k.created_at,
                    &k.revoked_at,
                    &k.expires_at,
                    &k.mac,
                    &k.previous_digest,
                    &k.previous_expires_at,
                    &k.last_used_at,
                    &k.client_cert_sha256,
                ],
            )
            .await?;
            log.append(&audit);
            log.commit(tx).await
        })
        .await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self
            .read(
                &format!("SELECT {API_KEY_READ} FROM $S.api_keys WHERE id = $1"),
                &[&id],
                api_key_row,
            )
            .await?
            .pop())
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(
            &format!("SELECT {API_KEY_READ} FROM $S.api_keys ORDER BY created_at, id"),
            &[],
            api_key_row,
        )
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
            "UPDATE $S.api_keys SET revoked_at = $2, mac = $3 WHERE id = $1 AND revoked_at IS NULL",
            id,
            at,
            mac,
            audit,
        )
        .await
    }

    async fn rotate_api_key(&self, k: ApiKeyRecord, audit: AuditDraft) -> Result<bool, StoreError> {
        self.write_audited(
            "UPDATE $S.api_keys SET digest = $2, previous_digest = $3, previous_expires_at = $4, \
             mac = $5 WHERE id = $1 AND revoked_at IS NULL",
            &[
                &k.id,
                &k.digest,
                &k.previous_digest,
                &k.previous_expires_at,
                &k.mac,
            ],
            audit,
        )
        .await
    }

    async fn touch_api_key(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let sql = self.inner.sql(
                "UPDATE $S.api_keys SET last_used_at = $2 WHERE id = $1 AND \
                 (last_used_at IS NULL OR last_used_at < $2)",
            );
            client.execute(&sql, &[&id, &at]).await.map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn subject_key(&self, subject: &str) -> Result<Option<SubjectKeyRecord>, StoreError> {
        Ok(self
            .read(SUBJECT_KEY_READ, &[&subject], subject_key_row)
            .await?
            .pop())
    }

    async fn put_subject_key(
        &self,
        key: SubjectKeyRecord,
        audit: AuditDraft,
    ) -> Result<SubjectKeyRecord, StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            let n = exec(
                &tx,
                &self.inner,
                "INSERT INTO $S.subject_keys (subject, data_key_id, wrapped, created_at) VALUES \
                 ($1, $2, $3, $4) ON CONFLICT (subject) DO NOTHING",
                &[
                    &key.subject,
                    &key.data_key_id,
                    &key.wrapped,
                    &key.created_at,
                ],
            )
            .await?;
            if n == 1 {
                log.append(&audit);
            }
            let stored = rows(&tx, &self.inner, SUBJECT_KEY_READ, &[&key.subject])
                .await?
                .first()
                .map(subject_key_row)
                .transpose()
                .map_err(db_error)?
                .ok_or_else(|| StoreError::Database("subject key vanished".into()))?;
            log.commit(tx).await?;
            Ok(stored)
        })
        .await
    }

    async fn subject_tokens(
        &self,
        subject: &str,
        now: i64,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(
            &format!(
                "SELECT {TOKEN_READ} FROM $S.tokens WHERE subject = $1 AND (expires_at IS NULL OR \
                 expires_at > $2) ORDER BY created_at, token"
            ),
            &[&subject, &now],
            token_row,
        )
        .await
    }

    async fn erase_subject(
        &self,
        subject: &str,
        audit: AuditDraft,
        deleted: AuditDraft,
    ) -> Result<u64, StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            let gone = rows(
                &tx,
                &self.inner,
                "DELETE FROM $S.tokens WHERE subject = $1 RETURNING token, kind",
                &[&subject],
            )
            .await?;
            exec(
                &tx,
                &self.inner,
                "DELETE FROM $S.subject_keys WHERE subject = $1",
                &[&subject],
            )
            .await?;
            log.append(&audit);
            for r in &gone {
                let (token, kind): (String, String) = (
                    r.try_get(0).map_err(db_error)?,
                    r.try_get(1).map_err(db_error)?,
                );
                log.append(&deleted.clone().token(&token).kind(&kind));
            }
            log.commit(tx).await?;
            Ok(gone.len() as u64)
        })
        .await
    }

    async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        // Batches of a few hundred, each its own transaction: the audit lock, which every writer
        // on every node waits for, is never held for long.
        const BATCH: i64 = PURGE_BATCH as i64;
        let mut total = 0;
        for _ in 0..PURGE_BATCHES {
            let deleted = self
                .bounded(async {
                    let chain = self.chain()?;
                    let mut client = self.client().await?;
                    let tx = client.transaction().await.map_err(db_error)?;
                    // One node at a time: the others skip this cycle instead of queueing.
                    let mine: bool = tx
                        .query_one(
                            "SELECT pg_try_advisory_xact_lock($1, hashtext($2::text))",
                            &[&PURGE_LOCK, &self.inner.schema],
                        )
                        .await
                        .and_then(|r| r.try_get(0))
                        .map_err(db_error)?;
                    if !mine {
                        return Ok(0);
                    }
                    // Planned for this `now` (an unnamed statement), as the deletion below: a plan
                    // cached while the table was small would scan all of it.
                    let any = !tx
                        .query_typed(
                            &self.inner.sql(
                                "SELECT 1 FROM $S.tokens WHERE expires_at IS NOT NULL AND \
                                 expires_at <= $1 LIMIT 1",
                            ),
                            &[(&now, Type::INT8)],
                        )
                        .await
                        .map_err(db_error)?
                        .is_empty();
                    if !any {
                        return Ok(0);
                    }
                    let mut log = Log::begin(&tx, &chain, &self.inner, false).await?;
                    // Under the audit lock: what this deletes, no reveal consumes meanwhile.
                    let gone = tx
                        .query_typed(
                            &self.inner.sql(
                                "DELETE FROM $S.tokens WHERE token IN (SELECT token FROM $S.tokens \
                                 WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY \
                                 expires_at LIMIT $2) RETURNING kind, expires_at",
                            ),
                            &[(&now, Type::INT8), (&BATCH, Type::INT8)],
                        )
                        .await
                        .map_err(db_error)?;
                    let gone = gone
                        .iter()
                        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                        .collect::<Result<Vec<(String, i64)>, tokio_postgres::Error>>()
                        .map_err(db_error)?;
                    log.append(&audit::purge_batch(now, &gone));
                    log.commit(tx).await?;
                    Ok(gone.len() as u64)
                })
                .await?;
            total += deleted;
            if deleted < BATCH as u64 {
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
            "INSERT INTO $S.operators (name, role, password_hash, totp_wrapped, created_at, \
             disabled_at, failed_attempts, locked_until, last_totp_step, generation, mac) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (name) DO NOTHING",
            &[
                &o.name,
                &o.role,
                &o.password_hash,
                &o.totp_wrapped,
                &o.created_at,
                &o.disabled_at,
                &o.failed_attempts,
                &o.locked_until,
                &o.last_totp_step,
                &o.generation,
                &o.mac,
            ],
            audit,
        )
        .await
    }

    async fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        Ok(self
            .read(
                &format!("SELECT {OPERATOR_READ} FROM $S.operators WHERE name = $1"),
                &[&name],
                operator_row,
            )
            .await?
            .pop())
    }

    async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        self.read(
            &format!("SELECT {OPERATOR_READ} FROM $S.operators ORDER BY name"),
            &[],
            operator_row,
        )
        .await
    }

    async fn update_operator(
        &self,
        o: OperatorRecord,
        old_mac: &str,
        audit: Vec<AuditDraft>,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            audited_tx!(self => tx, log);
            let n = exec(
                &tx,
                &self.inner,
                "UPDATE $S.operators SET role = $2, password_hash = $3, totp_wrapped = $4, \
                 created_at = $5, disabled_at = $6, failed_attempts = $7, locked_until = $8, \
                 last_totp_step = $9, generation = $10, mac = $11 WHERE name = $1 AND mac = $12",
                &[
                    &o.name,
                    &o.role,
                    &o.password_hash,
                    &o.totp_wrapped,
                    &o.created_at,
                    &o.disabled_at,
                    &o.failed_attempts,
                    &o.locked_until,
                    &o.last_totp_step,
                    &o.generation,
                    &o.mac,
                    &old_mac,
                ],
            )
            .await?;
            if n == 1 {
                for d in &audit {
                    log.append(d);
                }
            }
            log.commit(tx).await?;
            Ok(n == 1)
        })
        .await
    }

    async fn insert_session(&self, s: SessionRecord, audit: AuditDraft) -> Result<(), StoreError> {
        self.write_audited(
            "INSERT INTO $S.operator_sessions (id, operator, generation, created_at, last_seen_at, \
             step_up_at, mac) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &s.id,
                &s.operator,
                &s.generation,
                &s.created_at,
                &s.last_seen_at,
                &s.step_up_at,
                &s.mac,
            ],
            audit,
        )
        .await
        .map(|_| ())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .read(
                &format!("SELECT {SESSION_COLUMNS} FROM $S.operator_sessions WHERE id = $1"),
                &[&id],
                session_row,
            )
            .await?
            .pop())
    }

    async fn update_session(
        &self,
        s: SessionRecord,
        old_mac: &str,
        audit: Option<AuditDraft>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE $S.operator_sessions SET last_seen_at = $2, step_up_at = $3, \
                           mac = $4 WHERE id = $1 AND mac = $5";
        let params: [&(dyn ToSql + Sync); 5] =
            [&s.id, &s.last_seen_at, &s.step_up_at, &s.mac, &old_mac];
        match audit {
            Some(d) => self.write_audited(SQL, &params, d).await,
            None => {
                self.bounded(async {
                    let client = self.client().await?;
                    let n = client
                        .execute(&self.inner.sql(SQL), &params)
                        .await
                        .map_err(db_error)?;
                    Ok(n == 1)
                })
                .await
            }
        }
    }

    async fn delete_session(
        &self,
        id: &str,
        audit: Option<AuditDraft>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM $S.operator_sessions WHERE id = $1";
        match audit {
            Some(d) => self.write_audited(SQL, &[&id], d).await,
            None => {
                self.bounded(async {
                    let client = self.client().await?;
                    let n = client
                        .execute(&self.inner.sql(SQL), &[&id])
                        .await
                        .map_err(db_error)?;
                    Ok(n == 1)
                })
                .await
            }
        }
    }

    async fn purge_sessions(
        &self,
        idle_before: i64,
        created_before: i64,
    ) -> Result<u64, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    &self.inner.sql(
                        "DELETE FROM $S.operator_sessions WHERE last_seen_at < $1 OR created_at < $2",
                    ),
                    &[&idle_before, &created_before],
                )
                .await
                .map_err(db_error)
        })
        .await
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            self.check_schema(&mut client).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_difference_names_the_object() {
        assert_eq!(schema_difference("a\nb", "a\nb"), None);
        let added = schema_difference("a\nb", "a\nb\ntrigger audit undo");
        assert_eq!(
            added.as_deref(),
            Some("unexpected or altered trigger audit undo")
        );
        let dropped = schema_difference("a\nindex x", "a");
        assert_eq!(dropped.as_deref(), Some("missing index x"));
    }
}

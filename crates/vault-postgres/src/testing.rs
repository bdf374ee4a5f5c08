//! Test support (feature `testing`): a schema of its own on the test PostgreSQL for each test,
//! dropped when the test ends, pass or fail.
//!
//! The server is `FIELDSEAL_TEST_POSTGRES` (a `postgres://` URL of a role that may create schemas;
//! default `postgres://postgres@127.0.0.1:5432/test`, the machine's trust-auth server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The test server's URL.
pub fn server_url() -> String {
    std::env::var("FIELDSEAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `url` with the connection's `search_path` set to `schema`.
pub fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// Runs SQL on the test server from a thread of its own (usable in `Drop` and outside a runtime).
pub fn admin_sql(sql: &str) -> Result<(), String> {
    admin(sql, false).map(drop)
}

/// The first column of every row `sql` returns, as text, from a thread of its own.
pub fn admin_rows(sql: &str) -> Result<Vec<String>, String> {
    Ok(admin(sql, true)?
        .into_iter()
        .map(|row| row.into_iter().next().flatten().unwrap_or_default())
        .collect())
}

/// Every column of every row the last statement of `sql` returns, as text (`None` for NULL),
/// from a thread of its own. `sql` may hold several statements (a `SET search_path` first).
pub fn admin_table(sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    admin(sql, true)
}

fn admin(sql: &str, rows: bool) -> Result<Vec<Vec<Option<String>>>, String> {
    let sql = sql.to_owned();
    let url = server_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("cannot reach the test PostgreSQL at {url}: {e}"))?;
            let task = tokio::spawn(conn);
            let error = |e: tokio_postgres::Error| {
                let m = e.as_db_error().map(|d| d.message().to_owned());
                format!("{sql}: {}", m.unwrap_or_else(|| e.to_string()))
            };
            let r = if rows {
                client
                    .simple_query(&sql)
                    .await
                    .map_err(error)
                    .map(|messages| {
                        let mut out: Vec<Vec<Option<String>>> = Vec::new();
                        for m in messages {
                            match m {
                                // A new result set: only the last statement's rows are returned.
                                tokio_postgres::SimpleQueryMessage::RowDescription(_) => {
                                    out.clear()
                                }
                                tokio_postgres::SimpleQueryMessage::Row(row) => out.push(
                                    (0..row.len())
                                        .map(|i| row.get(i).map(str::to_owned))
                                        .collect(),
                                ),
                                _ => {}
                            }
                        }
                        out
                    })
            } else {
                client
                    .batch_execute(&sql)
                    .await
                    .map(|()| Vec::new())
                    .map_err(error)
            };
            drop(client);
            let _ = task.await;
            r
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_owned())?
}

/// A schema of its own, dropped (with everything in it) on drop. Schemas left by a test process
/// that was killed are dropped by the next one (their name holds the dead process's id).
#[derive(Debug)]
pub struct TestSchema {
    name: String,
}

impl TestSchema {
    /// Creates a new empty schema.
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_stale);
        let name = format!(
            "fieldseal_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        admin_sql(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .unwrap();
        Self { name }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL whose connections work in this schema.
    pub fn url(&self) -> String {
        url_with_schema(&server_url(), &self.name)
    }
}

impl Default for TestSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let _ = admin_sql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// Drops the test schemas of processes that no longer run.
fn sweep_stale() {
    let Ok(names) = admin_rows(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'fieldseal\\_test\\_%'",
    ) else {
        return;
    };
    for name in names {
        let pid = name.split('_').nth(2).unwrap_or_default();
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = admin_sql(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        }
    }
}

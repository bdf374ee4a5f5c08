//! Test support (feature `testing`): a schema of its own on the test PostgreSQL for each test,
//! dropped when the test ends, pass or fail.
//!
//! The server is `FIELDSEAL_TEST_POSTGRES` (a `postgres://` URL of a role that may create schemas;
//! default `postgres://postgres@127.0.0.1:5432/test`, the machine's trust-auth server). Tests that
//! stop a server or fill a disk need root on the server's host: [`PrivateCluster`] runs `initdb`
//! as the `postgres` user through `runuser`, and the conformance suite's full-disk case mounts a
//! small tmpfs as a tablespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The test server's URL.
pub fn server_url() -> String {
    std::env::var("FIELDSEAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `url` naming the vault's schema `schema`.
pub fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={schema}")
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
            "fieldseal_test_{}_{}_{}",
            host_tag(),
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

/// This host's tag in test object names: a test server may be shared by several hosts, and only
/// this host's processes can be checked for life.
fn host_tag() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let hash = host.trim().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:08x}", hash as u32)
}

/// Whether the process `pid` (of this host) has ended.
fn ended(pid: &str) -> bool {
    !pid.is_empty() && !Path::new("/proc").join(pid).exists()
}

/// Drops the test schemas of this host's processes that no longer run.
fn sweep_stale() {
    let prefix = format!("fieldseal_test_{}_", host_tag());
    let Ok(names) = admin_rows(&format!(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, '{prefix}')"
    )) else {
        return;
    };
    for name in names {
        let pid = name[prefix.len()..].split('_').next().unwrap_or_default();
        if ended(pid) {
            let _ = admin_sql(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        }
    }
}

/// Stops and removes the private clusters of test processes that no longer run.
fn sweep_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("fieldseal-pg-") else {
            continue;
        };
        if ended(rest.split('-').next().unwrap_or_default()) {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(e.path().join("data"))
                .args(["-m", "immediate", "stop"])
                .output();
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The directory of PostgreSQL's server programs (the newest installed).
fn pg_bin(program: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(program))
}

/// A PostgreSQL cluster of a test's own (`initdb` and `pg_ctl` on a spare port in a temporary
/// directory, run by the `postgres` user since initdb refuses root), for tests that stop the
/// server or change its configuration without disturbing anything else. Stopped and removed on
/// drop.
#[derive(Debug)]
pub struct PrivateCluster {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Makes and starts a cluster with `settings` (`postgresql.conf` lines) and, when given,
    /// `hba` as its whole `pg_hba.conf`.
    pub fn new(settings: &[&str]) -> Self {
        Self::with_hba(settings, None)
    }

    /// [`Self::new`] with a `pg_hba.conf` of its own.
    pub fn with_hba(settings: &[&str], hba: Option<&str>) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_stale_clusters);
        let dir = std::env::temp_dir().join(format!(
            "fieldseal-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        run(Command::new("chown").arg("postgres:postgres").arg(&dir));
        as_postgres(
            Command::new(pg_bin("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&data),
        );
        let mut conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            dir.display()
        );
        for line in settings {
            conf.push_str(line);
            conf.push('\n');
        }
        append(&data.join("postgresql.conf"), &conf);
        if let Some(hba) = hba {
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        }
        let cluster = Self { dir, data, port };
        cluster.start();
        cluster
    }

    /// The cluster's directory (files placed here are readable by the server).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        as_postgres(
            Command::new(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .args(args),
        );
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        self.pg_ctl(&["-w", "-t", "30", "start"]);
    }

    /// Stops the server at once: every connection is cut, as a crash or a failover would.
    pub fn stop(&self) {
        self.pg_ctl(&["-w", "-t", "30", "-m", "immediate", "stop"]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        c.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(c: &mut Command) {
    run(Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(c.get_program())
        .args(c.get_args()));
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

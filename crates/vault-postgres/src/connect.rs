//! From a `postgres://` URL to a connection pool: the URL's TLS parameters, the pool's bounds and
//! the server-side timeouts every connection gets.

use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use fieldseal_vault_store::StoreError;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// How the vault connects: pool size and the bound on every wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections in the pool (per vault node).
    pub pool_size: usize,
    /// The longest any one operation may wait: for a connection from the pool, for a new
    /// connection, for a lock, for a statement. Past it the operation fails with
    /// [`StoreError::Unavailable`] (or [`StoreError::Busy`] for a lock), and nothing was written.
    pub timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout: Duration::from_secs(5),
        }
    }
}

/// How the URL asks for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tls {
    /// No TLS (`sslmode=disable`, or no `sslmode`).
    Off,
    /// TLS with the server's certificate verified (chain and host name) against `root` (a PEM
    /// file) or, without one, the Mozilla root set.
    Verified { root: Option<String> },
}

/// A URL with the parameters tokio-postgres does not know taken out, and what they asked for.
#[derive(Debug)]
struct Parsed {
    url: String,
    tls: Tls,
    schema: String,
}

/// The schema when the URL names none.
pub const DEFAULT_SCHEMA: &str = "public";

/// A schema name the vault accepts: lower-case letters, digits and `_`, not starting with a
/// digit or `pg_`, at most 63 bytes (it is written into statements, quoted).
fn valid_schema(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && !name.starts_with("pg_")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

fn unpercent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Takes `sslmode` and `sslrootcert` out of the URL's query. `sslmode=require` means TLS with the
/// certificate verified (stricter than libpq's `require`, which encrypts without checking whom it
/// talks to: that stops no one in the middle); `verify-ca` and `verify-full` mean the same here.
/// `prefer` and `allow` (TLS if the server happens to offer it) are refused: a vault either
/// requires TLS or does without it, by the operator's choice, not the network's.
fn parse(url: &str) -> Result<Parsed, StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut mode = None;
    let mut root = None;
    let mut schema = DEFAULT_SCHEMA.to_owned();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match unpercent(k).as_str() {
            "sslmode" => mode = Some(unpercent(v)),
            "sslrootcert" => root = Some(unpercent(v)),
            "schema" => schema = unpercent(v),
            _ => kept.push(pair),
        }
    }
    if !valid_schema(&schema) {
        return Err(StoreError::Database(format!(
            "schema={schema:?}: use lower-case letters, digits and _ (at most 63, not pg_...)"
        )));
    }
    if matches!(mode.as_deref(), None | Some("disable")) && root.is_some() {
        return Err(StoreError::Database(
            "sslrootcert given without sslmode=require".into(),
        ));
    }
    let tls = match mode.as_deref() {
        None | Some("disable") => Tls::Off,
        Some("require" | "verify-ca" | "verify-full") => Tls::Verified { root },
        Some(other) => {
            return Err(StoreError::Database(format!(
                "sslmode={other} is not supported: use sslmode=require (TLS, server certificate \
                 verified; sslrootcert=FILE for a private CA) or sslmode=disable"
            )));
        }
    };
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Parsed { url, tls, schema })
}

fn tls_connector(
    root: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let mut roots = RootCertStore::empty();
    match root {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StoreError::Database(format!("sslrootcert {path}: {e}")))?;
            if certs.is_empty() {
                return Err(StoreError::Database(format!(
                    "sslrootcert {path}: no certificate in it"
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Database(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Database(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The pool for `url` (`postgres://` or `postgresql://`), and the vault's schema (the URL's
/// `schema=NAME`, default `public`). Connections are made lazily; nothing is contacted here.
pub(crate) fn pool(url: &str, options: PgOptions) -> Result<(Pool, String), StoreError> {
    let parsed = parse(url)?;
    let mut config: tokio_postgres::Config = parsed
        .url
        .parse()
        .map_err(|e| StoreError::Database(format!("the database URL does not parse: {e}")))?;
    // Server-side bounds: a lock wait longer than the timeout fails (`storage_busy`), a statement
    // longer than twice the timeout is cancelled (`storage_unavailable`), and a connection left
    // idle inside a transaction (a node that hung) is closed. Last, the search path: pg_catalog
    // only, so no object anyone adds to a schema can stand in for a builtin (every table the
    // vault uses is named with its schema). Later settings win over any the URL's `options` set.
    let ms = options.timeout.as_millis().clamp(1, 60 * 60 * 1000);
    let bounds = format!(
        "-c lock_timeout={ms} -c statement_timeout={} -c idle_in_transaction_session_timeout={} \
         -c search_path=pg_catalog",
        ms * 2,
        ms * 4
    );
    let joined = match config.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {bounds}"),
        _ => bounds,
    };
    config.options(&joined);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.timeout);
    }
    // TCP keepalives: a connection the network dropped is also found out while it sits idle.
    config.keepalives(true);
    if config.get_keepalives_idle() > Duration::from_secs(30) {
        config.keepalives_idle(Duration::from_secs(30));
    }
    if config.get_application_name().is_none() {
        config.application_name("fieldseal-vault");
    }
    let manager_config = ManagerConfig {
        // A connection whose socket closed is dropped when it comes back to the pool; one idle
        // for a while is also tested (`verify_idle`) before reuse.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match parsed.tls {
        Tls::Off => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        }
        Tls::Verified { root } => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Manager::from_config(config, tls_connector(root.as_deref())?, manager_config)
        }
    };
    let pool = Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .wait_timeout(Some(options.timeout))
        .create_timeout(Some(options.timeout))
        .recycle_timeout(Some(options.timeout))
        .pre_recycle(verify_idle(options.timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Database(format!("connection pool: {e}")))?;
    Ok((pool, parsed.schema))
}

/// A connection not taken from the pool for [`VERIFY_AFTER`] or longer answers an empty query,
/// within `timeout`, before it is handed out: one the network dropped without a word (a failover,
/// a NAT that forgot it) is found out and discarded there, and the request gets another, not an
/// error. A busy pool reuses its connections without that round trip, which would otherwise double
/// the cost of a token read. (The hook runs outside the pool's recycle timeout: it bounds itself.)
fn verify_idle(timeout: Duration) -> Hook {
    Hook::async_fn(move |client, metrics| {
        Box::pin(async move {
            if metrics.last_used() >= VERIFY_AFTER {
                match tokio::time::timeout(timeout, client.simple_query("")).await {
                    Ok(answer) => {
                        answer.map_err(HookError::Backend)?;
                    }
                    Err(_) => {
                        return Err(HookError::Message(
                            "an idle connection did not answer: discarded".into(),
                        ));
                    }
                }
            }
            Ok(())
        })
    })
}

/// How long since a connection was last taken from the pool before it is tested again.
const VERIFY_AFTER: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let p = parse("postgres://u@db.example/vault?sslmode=require&application_name=x").unwrap();
        assert_eq!(p.url, "postgres://u@db.example/vault?application_name=x");
        assert_eq!(p.tls, Tls::Verified { root: None });
        let p = parse("postgres://u@h/v?sslrootcert=%2Fetc%2Fca.pem&sslmode=verify-full").unwrap();
        assert_eq!(p.url, "postgres://u@h/v");
        assert_eq!(
            p.tls,
            Tls::Verified {
                root: Some("/etc/ca.pem".into())
            }
        );
        assert_eq!(parse("postgres://u@h/v").unwrap().tls, Tls::Off);
        let p = parse("postgres://u@h/v?schema=vault_eu&sslmode=disable").unwrap();
        assert_eq!(
            (p.url.as_str(), p.schema.as_str()),
            ("postgres://u@h/v", "vault_eu")
        );
        assert_eq!(parse("postgres://u@h/v").unwrap().schema, "public");
        assert_eq!(
            parse("postgres://u@h/v?sslmode=disable").unwrap().tls,
            Tls::Off
        );
    }

    #[test]
    fn tls_left_to_chance_is_refused() {
        for mode in ["prefer", "allow", "bogus"] {
            let e = parse(&format!("postgres://h/v?sslmode={mode}")).unwrap_err();
            assert!(e.to_string().contains("sslmode=require"), "{e}");
        }
        assert!(parse("postgres://h/v?sslrootcert=/x").is_err());
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for bad in [
            "",
            "Vault",
            "a;drop",
            "pg_catalog",
            "1abc",
            "a\"b",
            &"x".repeat(64),
        ] {
            let url = format!("postgres://h/v?schema={}", bad.replace('"', "%22"));
            assert!(parse(&url).is_err(), "{bad:?} accepted");
        }
        assert!(parse("postgres://h/v?schema=vault_2").is_ok());
    }

    #[test]
    fn a_missing_root_file_is_a_clear_error() {
        let e = pool(
            "postgres://h/v?sslmode=require&sslrootcert=/nonexistent/ca.pem",
            PgOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}

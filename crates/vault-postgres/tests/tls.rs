//! TLS to the database: a private cluster that accepts TLS connections only, with a certificate
//! from a CA made for the test. `sslmode=require` with that CA connects (and the server sees an
//! encrypted session); a plain URL is refused by the server; another CA, or the public roots, are
//! refused by the vault before a byte of the session is sent.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

use fieldseal_vault_postgres::testing::PrivateCluster;
use fieldseal_vault_postgres::{PgOptions, PgStore};
use fieldseal_vault_store::{Store, StoreError};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` in `dir` (`NAME.pem`, `NAME.key`).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// A cluster serving a certificate for `localhost` issued by the CA `ca` in the test's directory,
/// accepting TLS connections only (a Unix socket stays open for the test's own checks).
fn tls_cluster(certs: &Path) -> PrivateCluster {
    ca(certs, "ca");
    openssl(
        certs,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        certs.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        certs,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    for f in ["server.pem", "server.key"] {
        let path = certs.join(f);
        assert!(
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&path)
                .status()
                .unwrap()
                .success()
        );
    }
    let settings = [
        "ssl = on".to_owned(),
        format!("ssl_cert_file = '{}'", certs.join("server.pem").display()),
        format!("ssl_key_file = '{}'", certs.join("server.key").display()),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    PrivateCluster::with_hba(
        &settings,
        Some(
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all \
             127.0.0.1/32 reject\n",
        ),
    )
}

async fn migrate(url: &str) -> Result<(), StoreError> {
    PgStore::open(url, PgOptions::default())?.migrate().await
}

/// Whether the server holds an encrypted session of the vault's (application name
/// `fieldseal-vault`), asked over the Unix socket.
async fn vault_session_encrypted(cluster: &PrivateCluster) -> bool {
    let config = format!(
        "host={} port={} user=postgres dbname=postgres",
        cluster.dir().display(),
        cluster.port()
    );
    let (client, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query_one(
            "SELECT count(*) > 0 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE \
             a.application_name = 'fieldseal-vault' AND s.ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn sslmode_require_verifies_the_server_and_encrypts() {
    let certs = std::env::temp_dir().join(format!("fieldseal-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    std::fs::create_dir_all(&certs).unwrap();
    let cluster = tls_cluster(&certs);
    let base = format!("postgres://postgres@localhost:{}/postgres", cluster.port());

    // Plain: the server takes TLS connections only.
    let err = migrate(&base).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_)) && err.to_string().contains("pg_hba.conf"),
        "{err}"
    );

    // TLS with the test CA: connects, and the server sees an encrypted session.
    let url = format!(
        "{base}?sslmode=require&sslrootcert={}",
        certs.join("ca.pem").display()
    );
    let store = PgStore::open(&url, PgOptions::default()).unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert!(vault_session_encrypted(&cluster).await);

    // Another CA, and the public roots: the certificate is not trusted, nothing is sent.
    ca(&certs, "other");
    let other = format!(
        "{base}?sslmode=require&sslrootcert={}",
        certs.join("other.pem").display()
    );
    for url in [other, format!("{base}?sslmode=require")] {
        let err = migrate(&url).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    }
    drop(store);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&certs);
}

//! TLS on the listener with rustls on the AWS-LC provider (the one crypto library the vault
//! already links). The certificate chain and private key are PEM files, read again on the first
//! handshake after either file changes: renewing a certificate needs no restart. A pair that does
//! not load (a half-written renewal, a key that does not match) is reported and the one in use
//! stays until the files change again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("TLS certificate {0}: {1}")]
    Certificate(String, String),
    /// The key file could not be read, holds no key, or the key does not fit the certificate.
    #[error("TLS private key {0}: {1}")]
    Key(String, String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

type Stamp = (Option<SystemTime>, Option<SystemTime>, u64, u64);

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let meta = |p: &Path| std::fs::metadata(p).ok();
    let (c, k) = (meta(cert), meta(key));
    (
        c.as_ref().and_then(|m| m.modified().ok()),
        k.as_ref().and_then(|m| m.modified().ok()),
        c.map_or(0, |m| m.len()),
        k.map_or(0, |m| m.len()),
    )
}

/// Reads a certificate chain and its private key. (The key's bytes never appear in an error.)
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Certificate(cert_name.clone(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate(cert_name.clone(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate(
            cert_name,
            "no certificate in the file".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key(key_name.clone(), format!("cannot read a key: {e}")))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider)
        .map_err(|e| TlsError::Key(key_name, e.to_string()))?;
    Ok(certified)
}

/// The certificate resolver: the pair in use, replaced when its files change.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    /// The stamp of the files last tried, and the pair in use.
    state: Mutex<(Stamp, Arc<CertifiedKey>)>,
}

impl CertFiles {
    /// Loads the pair; fails if it does not load now.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let seen = stamp(cert, key);
        let pair = load_pair(cert, key)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new((seen, Arc::new(pair))),
        })
    }

    /// The pair in use, after taking up changed files.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = stamp(&self.cert, &self.key);
        if now != state.0 {
            state.0 = now;
            match load_pair(&self.cert, &self.key) {
                Ok(pair) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    state.1 = Arc::new(pair);
                }
                Err(e) => tracing::error!(
                    alert = "tls_reload_failed",
                    error = %e,
                    "TLS certificate files changed but do not load; the certificate in use stays"
                ),
            }
        }
        Arc::clone(&state.1)
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A server configuration over the certificate files: TLS 1.2 and 1.3 with the AWS-LC
/// provider's safe defaults, HTTP/1.1. With `client_ca`, clients may present a certificate
/// issued under it (mutual TLS; API keys bound to a certificate need one), others connect
/// without.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let files = CertFiles::load(cert, key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let name = ca.display().to_string();
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| TlsError::Certificate(name.clone(), e.to_string()))?
            {
                let c = c.map_err(|e| TlsError::Certificate(name.clone(), e.to_string()))?;
                roots
                    .add(c)
                    .map_err(|e| TlsError::Certificate(name.clone(), e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(files));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The SHA-256 of the first certificate in a PEM file (to bind an API key to it).
pub fn certificate_sha256(path: &Path) -> Result<[u8; 32], TlsError> {
    let cert = CertificateDer::from_pem_file(path)
        .map_err(|e| TlsError::Certificate(path.display().to_string(), e.to_string()))?;
    Ok(fieldseal_core::at_rest::sha256(&cert))
}

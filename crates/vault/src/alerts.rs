//! Security alerts (docs/monitoring.md, "Alerts (webhook)"): lockouts, a broken audit chain, rows
//! that fail their integrity check, the KEK or the database lost and back, keys about to expire.
//!
//! [`Vault::alert`] logs the alert and puts it on a bounded queue without waiting; one task per
//! vault posts the queue's alerts in order to `alert_webhook_url` as JSON, signed with
//! HMAC-SHA256 under the webhook secret, and tries a failed post again after an exponential wait
//! with jitter, up to `alert_max_attempts`. A full queue drops the new alert (counted, logged):
//! no request ever waits on the webhook.
//!
//! The upkeep checks ([`Vault::watch`]) run in the serving loop every 5 seconds: the database's
//! reachability (an alert on loss, one on recovery), the audit entries appended since the last
//! round (verified with [`fieldseal_vault_store::verify::verify_since`]; one alert per break),
//! and keys about to expire (once per key).

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Uri, header};
use fieldseal_core::at_rest::{hmac_sha256, random_bytes};
use fieldseal_core::encoding::hex;
use fieldseal_vault_store::verify::{Checkpoint, verify_since};
use fieldseal_vault_store::{Store, StoreError};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::config::{Settings, mask_webhook_url};
use crate::metrics::{AlertOutcome, Shared};
use crate::vault::{Vault, now};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertKind {
    /// An API key or an operator locked (reveal anomalies, failed sign-ins).
    Lockout,
    /// The audit chain failed its verification.
    AuditChainBroken,
    /// A stored row failed its integrity check and is treated as absent.
    IntegrityFailure,
    /// The key-encryption key (HSM, key file) cannot be reached.
    KekUnreachable,
    /// The key-encryption key is reachable again.
    KekRecovered,
    /// The database cannot be reached.
    StorageUnavailable,
    /// The database answers again.
    StorageRecovered,
    /// A key expires soon with no successor.
    KeyExpiring,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::Lockout,
        Self::AuditChainBroken,
        Self::IntegrityFailure,
        Self::KekUnreachable,
        Self::KekRecovered,
        Self::StorageUnavailable,
        Self::StorageRecovered,
        Self::KeyExpiring,
    ];

    /// The kind's name in the webhook's JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lockout => "lockout",
            Self::AuditChainBroken => "audit_chain_broken",
            Self::IntegrityFailure => "integrity_failure",
            Self::KekUnreachable => "kek_unreachable",
            Self::KekRecovered => "kek_recovered",
            Self::StorageUnavailable => "storage_unavailable",
            Self::StorageRecovered => "storage_recovered",
            Self::KeyExpiring => "key_expiring",
        }
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert. Never holds a value, a key or a secret: subjects are public ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// When it happened (Unix seconds).
    pub at: i64,
    /// What it concerns: `apikey:KID`, `operator:NAME`, `hpke:KID`, `audit:SEQ`, `kek`,
    /// `storage`, `token:TOKEN` ...
    pub subject: String,
    /// For a human.
    pub message: String,
}

impl Alert {
    /// An alert of `kind` now.
    pub fn new(kind: AlertKind, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            at: now(),
            subject: subject.into(),
            message: message.into(),
        }
    }
}

/// Why the alert webhook's settings were refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// `alert_webhook_url` is not an absolute `http(s)://HOST[:PORT]/PATH` URL.
    #[error("alert_webhook_url {0}: not an http:// or https:// URL with a host")]
    Url(String),
    /// Plain HTTP to an address other than loopback without `allow_plain_http`.
    #[error(
        "alert_webhook_url {0}: plain http:// only to a loopback address (use https://, or set \
         allow_plain_http)"
    )]
    PlainHttp(String),
    /// A webhook without a secret to sign with.
    #[error(
        "alert_webhook_url is set but no secret signs the alerts: set alert_webhook_secret_file \
         or FIELDSEAL_ALERT_WEBHOOK_SECRET"
    )]
    NoSecret,
    /// The secret file could not be read.
    #[error("alert webhook secret file {}: {source}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secret is shorter than 16 bytes.
    #[error("the alert webhook secret is too short: 16 bytes or more")]
    ShortSecret,
    /// The CA file does not load.
    #[error("alert_webhook_ca_file {0}: {1}")]
    Ca(String, String),
    /// No queue: `alert_queue_size` or `alert_max_attempts` is 0.
    #[error("alert_queue_size and alert_max_attempts must be at least 1")]
    Limits,
}

/// The secret alerts are signed with. Wiped on drop; `Debug` hides it.
pub struct WebhookSecret(zeroize::Zeroizing<Vec<u8>>);

impl WebhookSecret {
    /// Wraps the secret's bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(zeroize::Zeroizing::new(bytes))
    }

    /// The `X-Fieldseal-Signature` value of `body` posted with `X-Fieldseal-Timestamp:
    /// timestamp`: `v1=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY`.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let mut message = Vec::with_capacity(body.len() + 24);
        message.extend_from_slice(timestamp.to_string().as_bytes());
        message.push(b'.');
        message.extend_from_slice(body);
        format!("v1={}", hex(&hmac_sha256(&self.0, &message)))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// The body of one post.
#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    kind: &'static str,
    at: i64,
    subject: &'a str,
    message: &'a str,
    node: &'a str,
    vault: &'static str,
}

/// Where alerts go.
struct Target {
    https: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// Host to connect to (an IPv6 address without brackets).
    host: String,
    port: u16,
    /// The request target: path and query.
    path: String,
    /// The `Host` header.
    authority: String,
    /// The URL as logs show it.
    shown: String,
}

/// The longest one post may take, connection and TLS included.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

impl Target {
    fn parse(url: &str, settings: &Settings) -> Result<Self, WebhookError> {
        let shown = mask_webhook_url(url);
        let bad = || WebhookError::Url(shown.clone());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad()),
        };
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.as_str().contains('@') {
            return Err(bad());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !https && !loopback && !settings.allow_plain_http {
            return Err(WebhookError::PlainHttp(shown));
        }
        let tls = if https {
            let name = ServerName::try_from(host.clone()).map_err(|_| bad())?;
            let roots = roots(settings.alert_webhook_ca_file.as_deref())?;
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::Ca("(provider)".into(), e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            https: tls,
            host,
            port,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            authority: authority.as_str().to_owned(),
            shown,
        })
    }

    /// Posts `body` once; the answer's status.
    async fn post(&self, body: &[u8], timestamp: i64, signature: &str) -> Result<u16, String> {
        let request = Request::post(self.path.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "fieldseal-vault")
            .header("X-Fieldseal-Timestamp", timestamp.to_string())
            .header("X-Fieldseal-Signature", signature)
            .body(Body::from(body.to_vec()))
            .map_err(|e| format!("request: {e}"))?;
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            match &self.https {
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS: {e}"))?;
                    send(tls, request).await
                }
                None => send(tcp, request).await,
            }
        };
        tokio::time::timeout(POST_TIMEOUT, attempt)
            .await
            .map_err(|_| format!("no answer within {} s", POST_TIMEOUT.as_secs()))?
    }
}

/// The trust anchors of an `https://` webhook: the CA file's certificates, else the system's.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, WebhookError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let name = path.display().to_string();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| WebhookError::Ca(name.clone(), e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| WebhookError::Ca(name.clone(), e.to_string()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(WebhookError::Ca(name, "no certificate in the file".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

/// One HTTP/1.1 exchange on `io`: the answer's status.
async fn send<T>(io: T, request: Request<Body>) -> Result<u16, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let answer = sender.send_request(request).await;
    conn.abort();
    answer
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("HTTP: {e}"))
}

/// How failed posts are tried again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    initial: Duration,
    max: Duration,
    attempts: u32,
}

impl Retry {
    /// The wait after the `failures`-th failed attempt: `initial * 2^(failures-1)` capped at
    /// `max`, of which a random half is taken off (so that nodes that failed together do not
    /// retry together).
    fn delay(&self, failures: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let full = exp.min(self.max);
        let half = full / 2;
        let jitter = random_bytes::<8>().map_or(0, u64::from_be_bytes);
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(jitter % span)
    }
}

/// The webhook and its settings.
struct Webhook {
    target: Target,
    secret: WebhookSecret,
    node: String,
    retry: Retry,
}

impl Webhook {
    fn from_settings(settings: &Settings) -> Result<Option<Self>, WebhookError> {
        let Some(url) = settings
            .alert_webhook_url
            .as_deref()
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        let target = Target::parse(url, settings)?;
        let secret = match (
            &settings.alert_webhook_secret,
            &settings.alert_webhook_secret_file,
        ) {
            (Some(text), _) => text.expose().trim().as_bytes().to_vec(),
            (None, Some(path)) => {
                let text =
                    zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
                        WebhookError::SecretFile {
                            path: path.clone(),
                            source,
                        }
                    })?);
                text.trim().as_bytes().to_vec()
            }
            (None, None) => return Err(WebhookError::NoSecret),
        };
        if secret.len() < 16 {
            return Err(WebhookError::ShortSecret);
        }
        if settings.alert_queue_size == 0 || settings.alert_max_attempts == 0 {
            return Err(WebhookError::Limits);
        }
        Ok(Some(Self {
            target,
            secret: WebhookSecret::new(secret),
            node: node_name(settings),
            retry: Retry {
                initial: Duration::from_millis(settings.alert_retry_initial_ms.max(1)),
                max: Duration::from_secs(settings.alert_retry_max_secs.max(1)),
                attempts: settings.alert_max_attempts,
            },
        }))
    }

    /// Posts `alert` until the webhook accepts it or the attempts run out.
    async fn deliver(&self, alert: &Alert, metrics: &Shared) {
        let id = random_bytes::<16>().map_or_else(|_| format!("{:032x}", alert.at), |b| hex(&b));
        let kind = alert.kind.as_str();
        let body = serde_json::to_vec(&Payload {
            id: &id,
            kind,
            at: alert.at,
            subject: &alert.subject,
            message: &alert.message,
            node: &self.node,
            vault: "fieldseal",
        })
        .unwrap_or_default();
        let mut why = String::new();
        for attempt in 1..=self.retry.attempts {
            let timestamp = now();
            let signature = self.secret.sign(timestamp, &body);
            match self.target.post(&body, timestamp, &signature).await {
                Ok(status) if (200..300).contains(&status) => {
                    tracing::debug!(alert = kind, id = %id, attempt, "alert posted");
                    metrics.alert(kind, AlertOutcome::Sent);
                    return;
                }
                Ok(status) => why = format!("answered {status}"),
                Err(e) => why = e,
            }
            if attempt < self.retry.attempts {
                let wait = self.retry.delay(attempt);
                tracing::warn!(
                    alert = kind,
                    id = %id,
                    attempt,
                    webhook = %self.target.shown,
                    error = %why,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "alert webhook post failed; trying again"
                );
                tokio::time::sleep(wait).await;
            }
        }
        tracing::error!(
            alert = kind,
            id = %id,
            attempts = self.retry.attempts,
            webhook = %self.target.shown,
            error = %why,
            "alert webhook post failed; alert given up"
        );
        metrics.alert(kind, AlertOutcome::Failed);
    }
}

/// The node name alerts carry: the setting, else the host name.
fn node_name(settings: &Settings) -> String {
    settings
        .alert_node_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "fieldseal-vault".into())
}

/// Row descriptions remembered as already alerted, at most (then alerts repeat rather than memory
/// growing).
const MAX_REMEMBERED: usize = 10_000;
/// Audit entries verified per upkeep round at most (the first rounds after a start walk the
/// whole log, this many at a time).
const AUDIT_BUDGET: i64 = 50_000;
/// How often keys are checked for expiry.
const EXPIRY_EVERY: Duration = Duration::from_secs(60);

/// What the upkeep checks remember between rounds.
#[derive(Default)]
struct Watch {
    /// The last audit entry verified.
    checkpoint: Option<Checkpoint>,
    /// The break last alerted (its position and reason), so that it is alerted once.
    broken: Option<(i64, String)>,
    /// Keys alerted as expiring.
    expiring: HashSet<String>,
    /// When keys were last checked for expiry.
    expiry_checked: Option<Instant>,
}

/// A vault's alerts: the queue to the webhook task (none without a webhook) and what the checks
/// remember.
pub struct Alerter {
    queue: Option<mpsc::Sender<Alert>>,
    metrics: Shared,
    storage_lost: AtomicBool,
    /// Rows already alerted as tampered.
    tampered: Mutex<HashSet<String>>,
    watch: tokio::sync::Mutex<Watch>,
}

impl Alerter {
    /// Starts the webhook task the settings describe (none without `alert_webhook_url`). Needs a
    /// Tokio runtime.
    pub fn start(settings: &Settings, metrics: Shared) -> Result<Self, WebhookError> {
        let queue = match Webhook::from_settings(settings)? {
            Some(hook) => {
                let (tx, mut rx) = mpsc::channel::<Alert>(settings.alert_queue_size);
                let metrics = Arc::clone(&metrics);
                tracing::info!(webhook = %hook.target.shown, node = %hook.node, "security alerts posted to a webhook");
                tokio::spawn(async move {
                    while let Some(alert) = rx.recv().await {
                        hook.deliver(&alert, &metrics).await;
                    }
                });
                Some(tx)
            }
            None => None,
        };
        Ok(Self {
            queue,
            metrics,
            storage_lost: AtomicBool::new(false),
            tampered: Mutex::new(HashSet::new()),
            watch: tokio::sync::Mutex::new(Watch::default()),
        })
    }

    /// Logs `alert` and queues it for the webhook; never waits.
    pub fn raise(&self, alert: Alert) {
        let kind = alert.kind.as_str();
        tracing::warn!(alert = kind, subject = %alert.subject, "{}", alert.message);
        let Some(queue) = &self.queue else { return };
        if let Err(e) = queue.try_send(alert) {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the alert queue is full",
                mpsc::error::TrySendError::Closed(_) => "the alert task has stopped",
            };
            tracing::error!(alert = kind, "alert dropped: {why}");
            self.metrics.alert(kind, AlertOutcome::Dropped);
        }
    }

    /// Whether `what` (a row's description) is alerted for the first time; remembers it.
    fn first_tampered(&self, what: &str) -> bool {
        let Ok(mut seen) = self.tampered.lock() else {
            return true;
        };
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(what.to_owned())
    }
}

impl<S: Store> Vault<S> {
    /// Raises a security alert: logged at `warn` (`alert = KIND`), and posted to the alert
    /// webhook if one is configured. Never blocks and never fails: when the queue is full the
    /// alert is dropped, counted (`fieldseal_alerts_dropped_total`) and logged as an error.
    pub fn alert(&self, alert: Alert) {
        self.alerts().raise(alert);
    }

    /// An integrity failure of the row `what`, alerted once per row (a tampered token read
    /// again and again is one alert).
    pub(crate) fn alert_tampered(&self, token: Option<&str>, what: &str) {
        if self.alerts().first_tampered(what) {
            self.alert(Alert::new(
                AlertKind::IntegrityFailure,
                token.map_or_else(|| subject_of(what), |t| format!("token:{t}")),
                format!("{what} failed its integrity check and is treated as absent"),
            ));
        }
    }

    /// A store error met by the upkeep: a database schema changed outside the vault (the
    /// backend refuses writes) is an `integrity_failure`, alerted once.
    pub fn note_store_error(&self, e: &StoreError) {
        if let StoreError::Tampered(why) = e
            && self.alerts().first_tampered("database schema")
        {
            self.alert(Alert::new(
                AlertKind::IntegrityFailure,
                "schema",
                format!("{why}: the vault refuses writes until an operator has looked"),
            ));
        }
    }

    /// The KEK found unreachable (`lost`) or reachable again, on a transition.
    pub(crate) fn alert_kek(&self, lost: bool, error: Option<&str>) {
        let (kind, message) = if lost {
            (
                AlertKind::KekUnreachable,
                format!(
                    "the key-encryption key cannot be reached ({}): requests that need it answer \
                     503 kek_unavailable",
                    error.unwrap_or("unavailable")
                ),
            )
        } else {
            (
                AlertKind::KekRecovered,
                "the key-encryption key is reachable again".to_owned(),
            )
        };
        self.alert(Alert::new(kind, "kek", message));
    }

    /// The upkeep checks, every 5 seconds on a serving vault: the database's reachability, the
    /// audit entries appended since the last round, keys about to expire. Each raises its alerts;
    /// none fails.
    pub async fn watch(&self) {
        if !self.watch_storage().await {
            return;
        }
        let mut watch = self.alerts().watch.lock().await;
        self.watch_audit(&mut watch).await;
        let due = watch
            .expiry_checked
            .is_none_or(|t| t.elapsed() >= EXPIRY_EVERY);
        if due && self.watch_expiry(&mut watch).await {
            watch.expiry_checked = Some(Instant::now());
        }
    }

    /// Pings the database; alerts on loss and on recovery. Whether it answered.
    async fn watch_storage(&self) -> bool {
        let result = self.store().ping().await;
        let lost = &self.alerts().storage_lost;
        match result {
            Ok(()) => {
                if lost.swap(false, Ordering::Relaxed) {
                    self.alert(Alert::new(
                        AlertKind::StorageRecovered,
                        "storage",
                        "the database answers again",
                    ));
                }
                true
            }
            Err(e) => {
                if !lost.swap(true, Ordering::Relaxed) {
                    self.alert(Alert::new(
                        AlertKind::StorageUnavailable,
                        "storage",
                        format!("the database cannot be reached: {e}"),
                    ));
                }
                false
            }
        }
    }

    /// Verifies the audit entries after the last one verified; alerts a break once.
    async fn watch_audit(&self, watch: &mut Watch) {
        let key = &self.secrets().audit_key;
        let progress =
            match verify_since(self.store(), key, watch.checkpoint.as_ref(), AUDIT_BUDGET).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "audit entries not verified this round; retried");
                    return;
                }
            };
        watch.checkpoint = progress.checkpoint;
        match progress.broken {
            Some(b) => {
                let key = (b.seq, b.reason.clone());
                if watch.broken.as_ref() != Some(&key) {
                    tracing::error!(alert = "audit_broken", seq = b.seq, reason = %b.reason, "audit log failed its verification");
                    self.alert(Alert::new(
                        AlertKind::AuditChainBroken,
                        format!("audit:{}", b.seq),
                        format!(
                            "the audit log breaks at entry {}: {} (fieldseal-vault audit verify)",
                            b.seq, b.reason
                        ),
                    ));
                    watch.broken = Some(key);
                }
            }
            // Intact again (restored from a copy, say): a later break is alerted anew.
            None if progress.complete => watch.broken = None,
            None => {}
        }
    }

    /// Alerts HPKE keys expiring within `alert_key_expiry_days` with no key after them, and API
    /// keys expiring within it; once per key. Whether the keys could be read.
    async fn watch_expiry(&self, watch: &mut Watch) -> bool {
        let days = self.settings().alert_key_expiry_days;
        if days == 0 {
            return true;
        }
        let t = now();
        let horizon = t.saturating_add(i64::try_from(days.saturating_mul(86_400)).unwrap_or(0));
        let row_key = &self.secrets().row_key;
        let hpke = match crate::keys::authentic_hpke_keys(self.store(), row_key).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "key expiry not checked this round");
                return false;
            }
        };
        let live: Vec<_> = hpke.iter().filter(|k| k.retired_at.is_none()).collect();
        let mut due = Vec::new();
        for k in &live {
            let successor = live.iter().any(|o| o.expires_at > k.expires_at);
            if k.expires_at <= horizon && !successor {
                due.push((
                    format!("hpke:{}", k.kid),
                    k.expires_at,
                    format!(
                        "HPKE key {} {} and no key is made to follow it (keys rotate)",
                        k.kid,
                        expiry(k.expires_at, t)
                    ),
                ));
            }
        }
        let api = match self.store().api_keys().await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "API key expiry not checked this round");
                return false;
            }
        };
        for k in api {
            let Some(exp) = k.expires_at else { continue };
            if k.revoked_at.is_some() || !row_key.api_key_ok(&k) || exp > horizon || exp <= t {
                continue;
            }
            due.push((
                format!("apikey:{}", k.id),
                exp,
                format!(
                    "API key {} of role {} {} (apikey rotate)",
                    k.id,
                    k.role,
                    expiry(exp, t)
                ),
            ));
        }
        for (subject, exp, message) in due {
            if watch.expiring.len() >= MAX_REMEMBERED {
                watch.expiring.clear();
            }
            if watch.expiring.insert(format!("{subject}@{exp}")) {
                self.alert(Alert {
                    kind: AlertKind::KeyExpiring,
                    at: t,
                    subject,
                    message,
                });
            }
        }
        true
    }
}

/// "expires in N hours (at T)" or "expired at T".
fn expiry(at: i64, t: i64) -> String {
    if at <= t {
        format!("expired at {at}")
    } else {
        format!("expires in {} hours (at {at})", (at - t) / 3600)
    }
}

/// The alert subject of a row's description (`api key ID` -> `apikey:ID`, `hpke key KID` ->
/// `hpke:KID`, `operator NAME` -> `operator:NAME` ...).
fn subject_of(what: &str) -> String {
    for (prefix, kind) in [
        ("api key ", "apikey"),
        ("hpke key ", "hpke"),
        ("operator session ", "session"),
        ("operator ", "operator"),
        ("subject key ", "subject"),
        ("token ", "token"),
    ] {
        if let Some(rest) = what.strip_prefix(prefix) {
            let id = rest.split_whitespace().next().unwrap_or_default();
            return format!("{kind}:{id}");
        }
    }
    what.replace(' ', "_")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kinds_are_snake_case_and_distinct() {
        let names: HashSet<_> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), AlertKind::ALL.len());
        assert_eq!(AlertKind::AuditChainBroken.as_str(), "audit_chain_broken");
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        let secret = WebhookSecret::new(b"0123456789abcdef".to_vec());
        let sig = secret.sign(1_700_000_000, b"{}");
        let want = hex(&hmac_sha256(b"0123456789abcdef", b"1700000000.{}"));
        assert_eq!(sig, format!("v1={want}"));
        assert_ne!(sig, secret.sign(1_700_000_001, b"{}"));
        assert!(!format!("{secret:?}").contains("0123"));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let r = Retry {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            attempts: 10,
        };
        for (failures, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let d = r.delay(failures);
            let full = Duration::from_millis(full);
            assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
        }
    }

    #[test]
    fn urls_plain_http_only_to_loopback() {
        let s = Settings::default();
        for ok in [
            "http://127.0.0.1:9/hook",
            "http://localhost/x",
            "http://[::1]:8080/",
            "https://alerts.example/hook?x=1",
        ] {
            assert!(Target::parse(ok, &s).is_ok(), "{ok}");
        }
        assert!(matches!(
            Target::parse("http://10.0.0.1/hook", &s),
            Err(WebhookError::PlainHttp(_))
        ));
        for bad in ["ftp://x/", "/hook", "https://user:pw@h/"] {
            assert!(
                matches!(Target::parse(bad, &s), Err(WebhookError::Url(_))),
                "{bad}"
            );
        }
        let plain = Settings {
            allow_plain_http: true,
            ..Settings::default()
        };
        assert!(Target::parse("http://10.0.0.1/hook", &plain).is_ok());
        let t = Target::parse("http://[::1]:8080/a?b", &s).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8080, "/a?b")
        );
    }

    #[test]
    fn subjects_of_rows() {
        assert_eq!(subject_of("api key abc123"), "apikey:abc123");
        assert_eq!(subject_of("operator alice (row gone)"), "operator:alice");
        assert_eq!(
            subject_of("operator session 0123456789ab"),
            "session:0123456789ab"
        );
        assert_eq!(subject_of("hpke key k1"), "hpke:k1");
    }
}

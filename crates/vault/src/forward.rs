//! Audit forwarding to a syslog receiver (a SIEM), as the entries are written: RFC 5424 messages
//! over TCP with RFC 6587 octet-counting framing, optionally in TLS (rustls on AWS-LC, the
//! receiver's certificate checked against `syslog_ca_file`). Each message carries the entry's
//! chain position and hash in its structured data and the entry itself, as `audit export` prints
//! it, in MSG:
//!
//! ```text
//! <110>1 2026-03-01T12:00:00Z vault-1 fieldseal-vault 4242 audit [fieldseal@32473 seq="17" hash="9f..." actor="apikey:0123456789ab" action="tokenize" outcome="ok"] {"seq":17,...}
//! ```
//!
//! Delivery is at least once, through a cursor in the database ([`Store::forward_cursor`]): the
//! forwarder writes up to `syslog_batch` entries after the cursor, waits `syslog_confirm_ms`,
//! and commits the cursor past them only if the connection is still open then (no end of stream,
//! no error). Any failure drops the connection, and the next one starts again after the
//! committed cursor: a receiver gets an entry twice only if it was in the one batch written since
//! the last commit. TCP carries no application acknowledgement: bytes a receiver took into its
//! socket and then lost after the check (a crash) are not sent again; the receiver sees the gap
//! in `seq` and can fetch it with `audit export --since`.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use fieldseal_vault_store::Store;
use fieldseal_vault_store::audit::AuditRecord;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use crate::config::Settings;
use crate::metrics::Shared;

/// How often the forwarder looks for new entries when it has caught up.
pub const POLL: Duration = Duration::from_millis(200);
/// The longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a batch may take to write (a receiver that stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait after a failure; doubled after each failure in a row, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// The longest wait between two attempts to reach the receiver.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long the forwarder keeps sending on shutdown, to leave the receiver caught up.
const DRAIN: Duration = Duration::from_secs(3);

/// The structured data element's id: `name@PEN` (RFC 5424 §7.2.2; 32473 is the example
/// enterprise number of RFC 5612).
pub const SD_ID: &str = "fieldseal@32473";
/// The syslog facility of every message: 13, log audit (RFC 5424 §6.2.1).
const FACILITY: u8 = 13;

/// Why forwarding could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// `syslog_forward` is not `tcp://HOST:PORT` or `tls://HOST:PORT`.
    #[error("syslog_forward {0:?}: {1}")]
    Target(String, String),
    /// `syslog_ca_file` is missing, unreadable or holds no usable certificate.
    #[error("syslog_ca_file: {0}")]
    Ca(String),
    /// Another setting is not usable in a message header.
    #[error("{0}: {1}")]
    Setting(&'static str, String),
}

/// The receiver, from `syslog_forward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `tls://`: the connection is TLS.
    pub tls: bool,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl FromStr for Target {
    type Err = ForwardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ForwardError::Target(s.to_owned(), why.to_owned());
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("write tcp://HOST:PORT or tls://HOST:PORT"))?;
        let tls = match scheme {
            "tcp" => false,
            "tls" => true,
            _ => return Err(bad("the scheme is tcp or tls")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("the port is missing"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(['/', '@', '[', ']', ' ']) {
            return Err(bad("the host is missing or not a host name or address"));
        }
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

/// The header fields every message shares (RFC 5424 §6.2).
#[derive(Debug, Clone)]
pub struct Header {
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID.
    pub procid: String,
}

impl Header {
    /// The header of this process under `settings`; an app name or host name set to something a
    /// header cannot hold is refused.
    pub fn from_settings(settings: &Settings) -> Result<Self, ForwardError> {
        let checked = |name: &'static str, value: &str, max: usize| {
            if header_field(value, max).is_some() {
                Ok(value.to_owned())
            } else {
                Err(ForwardError::Setting(
                    name,
                    format!("{value:?}: 1 to {max} printable ASCII characters, no space"),
                ))
            }
        };
        let hostname = match &settings.syslog_hostname {
            Some(h) => checked("syslog_hostname", h, 255)?,
            None => ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .and_then(|h| header_field(h.trim(), 255))
                .unwrap_or_else(|| "-".to_owned()),
        };
        Ok(Self {
            hostname,
            app_name: checked("syslog_app_name", &settings.syslog_app_name, 48)?,
            procid: std::process::id().to_string(),
        })
    }
}

/// `value` if RFC 5424 allows it as a header field: 1 to `max` characters of PRINTUSASCII.
fn header_field(value: &str, max: usize) -> Option<String> {
    (!value.is_empty() && value.len() <= max && value.bytes().all(|b| (33..=126).contains(&b)))
        .then(|| value.to_owned())
}

/// Severity by outcome (RFC 5424 §6.2.1): a tampered row is critical, a denial a warning, other
/// refusals a notice, done and revealed informational.
fn severity(outcome: &str) -> u8 {
    match outcome {
        "tampered" => 2,
        "denied" => 4,
        "ok" | "plain" | "masked" => 6,
        _ => 5,
    }
}

/// Unix seconds as an RFC 5424 TIMESTAMP (RFC 3339, UTC), or `-` outside years 0 to 9999.
fn timestamp(at: i64) -> String {
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return "-".to_owned();
    }
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
pub fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One entry as an RFC 5424 message (without framing): header, the structured data element
/// [`SD_ID`] with the entry's seq, hash, actor, action and outcome, and the entry as
/// [`AuditRecord::to_json`] writes it (what `audit export` prints) as MSG.
pub fn message(entry: &AuditRecord, header: &Header) -> serde_json::Result<String> {
    let json = entry.to_json()?;
    Ok(format!(
        "<{pri}>1 {ts} {host} {app} {procid} audit [{SD_ID} seq=\"{seq}\" hash=\"{hash}\" \
         actor=\"{actor}\" action=\"{action}\" outcome=\"{outcome}\"] {json}",
        pri = FACILITY * 8 + severity(&entry.outcome),
        ts = timestamp(entry.at),
        host = header.hostname,
        app = header.app_name,
        procid = header.procid,
        seq = entry.seq,
        hash = sd_escape(&entry.hash),
        actor = sd_escape(&entry.actor),
        action = sd_escape(&entry.action),
        outcome = sd_escape(&entry.outcome),
    ))
}

/// Appends `message` to `out` with RFC 6587 octet-counting framing: its length in bytes, a
/// space, the message.
pub fn frame(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message.as_bytes());
}

/// A connection to the receiver, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The TLS client for the receiver: its certificate must chain to one in `ca` and name the host.
fn tls_connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, ForwardError> {
    let name = ca.display();
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).map_err(|e| ForwardError::Ca(format!("{name}: {e}")))?
    {
        let cert = cert.map_err(|e| ForwardError::Ca(format!("{name}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ForwardError::Ca(format!("{name}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ForwardError::Ca(format!(
            "{name}: no certificate in the file"
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardError::Ca(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Entries sent and committed; `full`: a whole batch (more may be waiting).
    Sent { full: bool },
    /// Nothing new.
    CaughtUp,
    /// Something failed: try again after this long.
    Retry(Duration),
}

/// The forwarder's state between rounds.
#[derive(Default)]
struct Link {
    conn: Option<Box<dyn Stream>>,
    /// The cursor: every entry up to it reached the receiver. `None` until read.
    committed: Option<i64>,
    /// Entries up to this one were written and the connection stayed open, but the cursor could
    /// not be stored yet (the database failed): nothing more is sent until it is.
    unstored: Option<i64>,
    /// Failures in a row.
    failures: u32,
    /// No new connection before this.
    retry_at: Option<Instant>,
}

impl Link {
    /// Counts a failure and says how long to wait; a connection is dropped, so the next one
    /// starts after the committed cursor.
    fn fail(&mut self) -> Duration {
        self.conn = None;
        self.failures = self.failures.saturating_add(1);
        let wait = BACKOFF_MIN
            .saturating_mul(1u32 << self.failures.min(8).saturating_sub(1))
            .min(BACKOFF_MAX);
        self.retry_at = Some(Instant::now() + wait);
        wait
    }

    /// Whether a failure is worth a warning: the first of a run, then about once a minute.
    fn loud(&self) -> bool {
        self.failures <= 1 || self.failures.is_multiple_of(30)
    }
}

/// Streams the audit trail to a syslog receiver (see the module documentation).
pub struct Forwarder<S: Store> {
    store: S,
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    header: Header,
    batch: usize,
    confirm: Duration,
    cursor: String,
    metrics: Shared,
}

impl<S: Store> Forwarder<S> {
    /// The forwarder `settings` ask for (`syslog_forward`), or `None` if they ask for none.
    pub fn from_settings(
        store: S,
        settings: &Settings,
        metrics: Shared,
    ) -> Result<Option<Self>, ForwardError> {
        let Some(url) = &settings.syslog_forward else {
            return Ok(None);
        };
        let target: Target = url.parse()?;
        let tls = match (&settings.syslog_ca_file, target.tls) {
            (Some(ca), true) => Some(tls_connector(ca)?),
            (None, true) => {
                return Err(ForwardError::Ca(
                    "tls:// needs the receiver's certificate authority (syslog_ca_file)".into(),
                ));
            }
            (Some(_), false) => {
                return Err(ForwardError::Ca(
                    "set, but syslog_forward is tcp:// (not encrypted): write tls://".into(),
                ));
            }
            (None, false) => None,
        };
        if target.tls {
            ServerName::try_from(target.host.clone())
                .map_err(|e| ForwardError::Target(url.clone(), e.to_string()))?;
        }
        if settings.syslog_batch == 0 {
            return Err(ForwardError::Setting("syslog_batch", "at least 1".into()));
        }
        if settings.syslog_cursor.is_empty() {
            return Err(ForwardError::Setting("syslog_cursor", "a name".into()));
        }
        Ok(Some(Self {
            store,
            target,
            tls,
            header: Header::from_settings(settings)?,
            batch: settings.syslog_batch,
            confirm: Duration::from_millis(settings.syslog_confirm_ms),
            cursor: settings.syslog_cursor.clone(),
            metrics,
        }))
    }

    /// Forwards until `stop` resolves, then for a few more seconds while there is something to
    /// send and the receiver takes it, commits the cursor and closes the connection. Failures
    /// (receiver, network, database) are logged and retried, never fatal.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut stop = pin!(stop);
        let mut link = Link::default();
        tracing::info!(
            receiver = %format!("{}:{}", self.target.host, self.target.port),
            tls = self.target.tls,
            cursor = %self.cursor,
            "forwarding the audit trail to syslog"
        );
        loop {
            let wait = match self.round(&mut link).await {
                Round::Sent { full: true } => Duration::ZERO,
                Round::Sent { full: false } | Round::CaughtUp => POLL,
                Round::Retry(after) => after,
            };
            tokio::select! {
                biased;
                () = &mut stop => break,
                () = sleep(wait) => {}
            }
        }
        let deadline = Instant::now() + DRAIN;
        while let Ok(Round::Sent { .. }) =
            tokio::time::timeout_at(deadline, self.round(&mut link)).await
        {}
        if let Some(mut conn) = link.conn.take() {
            let _ = timeout(Duration::from_secs(1), conn.shutdown()).await;
        }
        tracing::info!(cursor = ?link.committed, "syslog forwarding stopped");
    }

    /// One round: the entries after the cursor (one batch), written, checked, committed.
    async fn round(&self, link: &mut Link) -> Round {
        if let Some(seq) = link.unstored
            && let Err(r) = self.commit(link, seq).await
        {
            return r;
        }
        let committed = match link.committed {
            Some(c) => c,
            None => match self.store.forward_cursor(&self.cursor).await {
                Ok(c) => {
                    let c = c.unwrap_or(0);
                    tracing::info!(cursor = %self.cursor, after = c, "syslog forwarding resumes");
                    link.committed = Some(c);
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, "syslog forwarding: cursor not read; retried");
                    return Round::Retry(BACKOFF_MAX);
                }
            },
        };
        let entries = match self.store.audit_log(committed, self.batch).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "syslog forwarding: audit log not read; retried");
                return Round::Retry(BACKOFF_MAX);
            }
        };
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Round::CaughtUp;
        };
        let mut bytes = Vec::new();
        for entry in &entries {
            match message(entry, &self.header) {
                Ok(m) => frame(&mut bytes, &m),
                Err(e) => {
                    tracing::error!(seq = entry.seq, error = %e, "syslog forwarding: entry not encoded");
                    return Round::Retry(BACKOFF_MAX);
                }
            }
        }
        let conn = match &mut link.conn {
            Some(conn) => conn,
            None => {
                if let Some(at) = link.retry_at {
                    let now = Instant::now();
                    if now < at {
                        return Round::Retry(at - now);
                    }
                }
                match self.connect().await {
                    Ok(conn) => {
                        tracing::info!(after = committed, "syslog receiver connected");
                        link.conn.insert(conn)
                    }
                    Err(e) => {
                        let wait = link.fail();
                        if link.loud() {
                            tracing::warn!(error = %e, retry_ms = wait.as_millis() as u64, "syslog receiver not reachable; retrying");
                        }
                        return Round::Retry(wait);
                    }
                }
            }
        };
        let written = timeout(WRITE_TIMEOUT, async {
            conn.write_all(&bytes).await?;
            conn.flush().await
        })
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
        // A moment for the receiver to refuse what was written (a reset, an end of stream).
        let checked = match written {
            Ok(()) => {
                sleep(self.confirm).await;
                still_open(conn.as_mut()).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            let wait = link.fail();
            if link.loud() {
                tracing::warn!(
                    error = %e,
                    unconfirmed = %format!("{}..={last}", committed + 1),
                    "syslog connection failed; the entries after the cursor are sent again"
                );
            }
            return Round::Retry(wait);
        }
        if let Err(r) = self.commit(link, last).await {
            return r;
        }
        self.metrics.forwarded(entries.len() as u64, last);
        Round::Sent {
            full: entries.len() >= self.batch,
        }
    }

    /// Stores the cursor at `seq`; on failure keeps it to store later and sends nothing more.
    async fn commit(&self, link: &mut Link, seq: i64) -> Result<(), Round> {
        match self
            .store
            .set_forward_cursor(&self.cursor, seq, crate::vault::now())
            .await
        {
            Ok(()) => {
                link.committed = Some(seq);
                link.unstored = None;
                link.failures = 0;
                link.retry_at = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, seq, "syslog forwarding: cursor not stored; retried");
                link.unstored = Some(seq);
                Err(Round::Retry(BACKOFF_MAX))
            }
        }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        let addr = (self.target.host.as_str(), self.target.port);
        let tcp = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = ServerName::try_from(self.target.host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let stream = timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
        Ok(Box::new(stream))
    }
}

/// Whether the receiver still holds the connection open: nothing to read is the good answer (a
/// syslog receiver never writes); an end of stream or an error (a reset) means it is gone.
async fn still_open(conn: &mut dyn Stream) -> std::io::Result<()> {
    let mut buf = [0u8; 256];
    // One poll: whatever the peer did in the last moment is already known to the socket.
    match timeout(Duration::ZERO, conn.read(&mut buf)).await {
        Err(_) | Ok(Ok(1..)) => Ok(()),
        Ok(Ok(0)) => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the receiver closed the connection",
        )),
        Ok(Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry() -> AuditRecord {
        AuditRecord {
            seq: 17,
            at: 1_772_366_400,
            actor: "op:a\"b]c\\d".into(),
            action: "tokenize".into(),
            token: None,
            kind: Some("pan".into()),
            purpose: None,
            outcome: "denied".into(),
            detail: "from 127.0.0.1".into(),
            envelope: None,
            prev_hash: "00".into(),
            hash: "ab".into(),
            mac: "cd".into(),
        }
    }

    #[test]
    fn a_message_has_the_header_escaped_structured_data_and_the_export_line() {
        let header = Header {
            hostname: "vault-1".into(),
            app_name: "fieldseal-vault".into(),
            procid: "42".into(),
        };
        let e = entry();
        let m = message(&e, &header).unwrap();
        assert_eq!(
            m,
            format!(
                "<108>1 2026-03-01T12:00:00Z vault-1 fieldseal-vault 42 audit [fieldseal@32473 \
                 seq=\"17\" hash=\"ab\" actor=\"op:a\\\"b\\]c\\\\d\" action=\"tokenize\" \
                 outcome=\"denied\"] {}",
                serde_json::to_string(&e).unwrap()
            )
        );
        let mut framed = Vec::new();
        frame(&mut framed, "héllo");
        assert_eq!(framed, "6 héllo".as_bytes());
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(timestamp(-1), "1969-12-31T23:59:59Z");
        assert_eq!(timestamp(i64::MAX / 2), "-");
    }

    #[test]
    fn targets_parse() {
        let t: Target = "tls://siem.example:6514".parse().unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port),
            (true, "siem.example", 6514)
        );
        let t: Target = "tcp://[::1]:514".parse().unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "::1", 514));
        for bad in [
            "udp://h:514",
            "tcp://h",
            "tcp://:514",
            "tcp://h:0",
            "h:514",
            "tcp://u@h:514",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}

//! Settings: a TOML file, then `FIELDSEAL_*` environment variables, then defaults. `Debug` masks
//! secrets (the master key).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The settings file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The settings file is not valid TOML of the expected shape.
    #[error("invalid settings in {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has a value of the wrong type.
    #[error("invalid value for {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

pub use fieldseal_vault_sqlite::Synchronous;

/// The vault's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Directory for the database, the master key file (if generated) and other state.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address of a listener of its own serving only `GET /metrics` (plain HTTP; none by default:
    /// metrics are never public unless asked for). Bind it to loopback or an internal network.
    pub metrics_listen: Option<SocketAddr>,
    /// Database URL: `sqlite://PATH` (default `sqlite://<data_dir>/vault.db`), or
    /// `postgres://USER@HOST:PORT/DB` for several vault nodes on one PostgreSQL (`sslmode=require`
    /// for TLS, `schema=NAME` for the vault's schema, default `public`).
    pub database_url: Option<String>,
    /// Connections each vault node keeps to PostgreSQL at most.
    pub database_pool_size: usize,
    /// The longest a request waits on PostgreSQL (a connection, a lock, a statement), in
    /// milliseconds; past it the request fails with `503 storage_unavailable` (or `storage_busy`).
    pub database_timeout_ms: u64,
    /// Where the key-encryption key (KEK) lives: `file` (default), `env`, or `pkcs11` (an HSM).
    /// Unset: `env` when `FIELDSEAL_MASTER_KEY` is set, else `file`.
    pub kek_provider: Option<KekKind>,
    /// The KEK text from `FIELDSEAL_MASTER_KEY` (base64url, 32 bytes); only the environment sets
    /// it. Taken out of the settings and wiped as soon as the KEK is loaded.
    #[serde(skip)]
    pub master_key: Option<MasterKeyText>,
    /// File holding the KEK (base64url, 32 bytes). Default `<data_dir>/master.key`, which only
    /// `init --dev` creates: a real vault keeps the KEK outside the data directory.
    pub master_key_file: Option<PathBuf>,
    /// `pkcs11`: the token vendor's PKCS#11 module (shared library), e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`.
    pub pkcs11_module: Option<PathBuf>,
    /// `pkcs11`: the label of the token holding the KEK.
    pub pkcs11_token: Option<String>,
    /// `pkcs11`: the label of the KEK inside the token.
    pub pkcs11_key_label: String,
    /// `pkcs11`: file holding the user PIN; else `FIELDSEAL_PKCS11_PIN` (never in the settings).
    pub pkcs11_pin_file: Option<PathBuf>,
    /// Roles and their permissions (TOML). Default: the built-in policy (see `policy`).
    pub policy_file: Option<PathBuf>,
    /// How old an envelope may be, in seconds.
    pub freshness_window_secs: u64,
    /// How far in the future an envelope's creation time may be, in seconds.
    pub clock_skew_secs: u64,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most envelopes or tokens in one request.
    pub max_batch: usize,
    /// Lifetime of a new HPKE key pair, in days. A serving vault makes the next key on this
    /// schedule (see `key_publish_ahead_hours`).
    pub key_lifetime_days: u64,
    /// How long before it becomes the primary a scheduled next HPKE key is published (pages pick
    /// it up, or add its pin), in hours; it is made when the current key has twice this left.
    pub key_publish_ahead_hours: u64,
    /// Encryptions under one data key before the vault makes a new one (default 2^30, a quarter
    /// of the 2^32 AES-GCM allows one key with random nonces).
    pub data_key_max_encryptions: u64,
    /// Values moved to the newest data key per batch (one transaction each).
    pub reencrypt_batch_size: usize,
    /// Batches of re-encryption per upkeep round (every 5 seconds).
    pub reencrypt_batches: usize,
    /// How long a card security code is kept if it is not used, in seconds.
    pub cvc_retention_secs: u64,
    /// SQLite durability (the SQLite backend's own setting; other backends ignore it).
    pub sqlite_synchronous: Synchronous,
    /// Log format: `json` or `text`.
    pub log_format: String,
    /// Hosted fields: the frames' files and the merchant origins that may embed them (`[fields]`).
    pub fields: crate::fields::FieldsSettings,
    /// Proxies whose `X-Forwarded-For` names the client (their own addresses, exactly). A
    /// forwarded address from any other peer is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Failed authentications from one address in a minute after which it is refused (`429`)
    /// until the minute ends.
    pub auth_failures_before_throttle: u32,
    /// The listener's TLS certificate chain (PEM); with `tls_key_file`, the listener speaks TLS.
    /// Both files are read again when they change.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// Certificate authorities (PEM) whose client certificates the listener accepts (mutual
    /// TLS): an API key bound to a certificate authenticates only on a connection presenting it.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Days an API key may go unused before it stops authenticating (0: never).
    pub api_key_max_idle_days: u64,
    /// Serve plain HTTP on an address other than loopback.
    pub allow_plain_http: bool,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Requests handled at once; more get `503 overloaded` with `Retry-After`.
    pub max_in_flight: usize,
    /// The longest a client may take to send a request's header, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// The longest a client may take to send a request's body, in milliseconds.
    pub body_read_timeout_ms: u64,
    /// The longest a whole request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Failed sign-ins in a row after which an operator is locked.
    pub operator_lockout_attempts: u32,
    /// How long a locked operator stays locked, in seconds.
    pub operator_lockout_secs: u64,
    /// An operator session ends after this many seconds without a request.
    pub session_idle_secs: u64,
    /// An operator session ends this many seconds after its sign-in, used or not.
    pub session_max_secs: u64,
    /// A plain reveal by an operator needs a second factor entered within this many seconds.
    pub step_up_secs: u64,
    /// Where security alerts are posted (docs/monitoring.md): an `https://` URL, or `http://` to
    /// a loopback address (any address with `allow_plain_http`). None: alerts are only logged.
    pub alert_webhook_url: Option<String>,
    /// File holding the secret alerts are signed with (HMAC-SHA256); or `FIELDSEAL_ALERT_WEBHOOK_SECRET`.
    pub alert_webhook_secret_file: Option<PathBuf>,
    /// The webhook secret from `FIELDSEAL_ALERT_WEBHOOK_SECRET`; only the environment sets it.
    #[serde(skip)]
    pub alert_webhook_secret: Option<SecretText>,
    /// Certificate authorities (PEM) an `https://` webhook's certificate must chain to. Default:
    /// the system's.
    pub alert_webhook_ca_file: Option<PathBuf>,
    /// Alerts waiting to be posted at most; past it new alerts are dropped (and counted).
    pub alert_queue_size: usize,
    /// The first wait before a failed post is tried again, in milliseconds; doubled after each
    /// failure (with jitter) up to `alert_retry_max_secs`.
    pub alert_retry_initial_ms: u64,
    /// The longest wait between two attempts to post an alert, in seconds.
    pub alert_retry_max_secs: u64,
    /// Attempts to post one alert before it is given up (and counted as failed).
    pub alert_max_attempts: u32,
    /// An HPKE key expiring within this many days with no successor, or an API key expiring
    /// within it, raises a `key_expiring` alert (0: never).
    pub alert_key_expiry_days: u64,
    /// The node name alerts carry. Default: the host name.
    pub alert_node_name: Option<String>,
    /// A syslog receiver (a SIEM) to stream the audit trail to as it is written:
    /// `tcp://HOST:PORT` or `tls://HOST:PORT` (RFC 5424 messages, RFC 6587 octet counting; see
    /// docs/monitoring.md). None by default.
    pub syslog_forward: Option<String>,
    /// `tls://`: the certificate authorities (PEM) the receiver's certificate must chain to; the
    /// certificate must name the URL's host.
    pub syslog_ca_file: Option<PathBuf>,
    /// The messages' APP-NAME.
    pub syslog_app_name: String,
    /// The messages' HOSTNAME (default: this machine's name).
    pub syslog_hostname: Option<String>,
    /// Most audit entries written to the receiver before the forwarder checks the connection
    /// and commits its cursor: the most a receiver can get twice after a failed connection.
    pub syslog_batch: usize,
    /// How long after a write the connection must still be open before the cursor moves past
    /// what was written, in milliseconds (above the round trip to the receiver).
    pub syslog_confirm_ms: u64,
    /// The name the forwarder's cursor is stored under: one forwarder per name.
    pub syslog_cursor: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("vault-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            metrics_listen: None,
            database_url: None,
            database_pool_size: 16,
            database_timeout_ms: 5000,
            kek_provider: None,
            master_key: None,
            master_key_file: None,
            pkcs11_module: None,
            pkcs11_token: None,
            pkcs11_key_label: "fieldseal-kek".into(),
            pkcs11_pin_file: None,
            policy_file: None,
            freshness_window_secs: 600,
            clock_skew_secs: 60,
            max_body_bytes: 1024 * 1024,
            max_batch: 100,
            key_lifetime_days: 365,
            key_publish_ahead_hours: 168,
            data_key_max_encryptions: 1 << 30,
            reencrypt_batch_size: 500,
            reencrypt_batches: 10,
            cvc_retention_secs: 3600,
            sqlite_synchronous: Synchronous::Normal,
            log_format: "json".into(),
            fields: crate::fields::FieldsSettings::default(),
            trusted_proxies: Vec::new(),
            auth_failures_before_throttle: 20,
            api_key_max_idle_days: 90,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            allow_plain_http: false,
            max_connections: 1024,
            max_in_flight: 256,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            operator_lockout_attempts: 5,
            operator_lockout_secs: 900,
            session_idle_secs: 900,
            session_max_secs: 8 * 3600,
            step_up_secs: 300,
            alert_webhook_url: None,
            alert_webhook_secret_file: None,
            alert_webhook_secret: None,
            alert_webhook_ca_file: None,
            alert_queue_size: 1000,
            alert_retry_initial_ms: 1000,
            alert_retry_max_secs: 300,
            alert_max_attempts: 10,
            alert_key_expiry_days: 14,
            alert_node_name: None,
            syslog_forward: None,
            syslog_ca_file: None,
            syslog_app_name: "fieldseal-vault".into(),
            syslog_hostname: None,
            syslog_batch: 500,
            syslog_confirm_ms: 50,
            syslog_cursor: "syslog".into(),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("database_url", &mask_url_password(&self.database_url()))
            .field("database_pool_size", &self.database_pool_size)
            .field("database_timeout_ms", &self.database_timeout_ms)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[REDACTED]"),
            )
            .field("kek_provider", &self.kek_kind())
            .field("master_key_file", &self.master_key_file())
            .field("pkcs11_module", &self.pkcs11_module)
            .field("pkcs11_token", &self.pkcs11_token)
            .field("pkcs11_key_label", &self.pkcs11_key_label)
            .field("pkcs11_pin_file", &self.pkcs11_pin_file)
            .field("policy_file", &self.policy_file)
            .field("freshness_window_secs", &self.freshness_window_secs)
            .field("clock_skew_secs", &self.clock_skew_secs)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_batch", &self.max_batch)
            .field("key_lifetime_days", &self.key_lifetime_days)
            .field("key_publish_ahead_hours", &self.key_publish_ahead_hours)
            .field("data_key_max_encryptions", &self.data_key_max_encryptions)
            .field("reencrypt_batch_size", &self.reencrypt_batch_size)
            .field("reencrypt_batches", &self.reencrypt_batches)
            .field("cvc_retention_secs", &self.cvc_retention_secs)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("log_format", &self.log_format)
            .field("fields", &self.fields)
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "auth_failures_before_throttle",
                &self.auth_failures_before_throttle,
            )
            .field("api_key_max_idle_days", &self.api_key_max_idle_days)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("tls_client_ca_file", &self.tls_client_ca_file)
            .field("allow_plain_http", &self.allow_plain_http)
            .field("max_connections", &self.max_connections)
            .field("max_in_flight", &self.max_in_flight)
            .field("header_read_timeout_ms", &self.header_read_timeout_ms)
            .field("body_read_timeout_ms", &self.body_read_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("operator_lockout_attempts", &self.operator_lockout_attempts)
            .field("operator_lockout_secs", &self.operator_lockout_secs)
            .field("session_idle_secs", &self.session_idle_secs)
            .field("session_max_secs", &self.session_max_secs)
            .field("step_up_secs", &self.step_up_secs)
            .field(
                "alert_webhook_url",
                &self.alert_webhook_url.as_deref().map(mask_webhook_url),
            )
            .field("alert_webhook_secret_file", &self.alert_webhook_secret_file)
            .field("alert_webhook_secret", &self.alert_webhook_secret)
            .field("alert_webhook_ca_file", &self.alert_webhook_ca_file)
            .field("alert_queue_size", &self.alert_queue_size)
            .field("alert_retry_initial_ms", &self.alert_retry_initial_ms)
            .field("alert_retry_max_secs", &self.alert_retry_max_secs)
            .field("alert_max_attempts", &self.alert_max_attempts)
            .field("alert_key_expiry_days", &self.alert_key_expiry_days)
            .field("alert_node_name", &self.alert_node_name)
            .field("syslog_forward", &self.syslog_forward)
            .field("syslog_ca_file", &self.syslog_ca_file)
            .field("syslog_app_name", &self.syslog_app_name)
            .field("syslog_hostname", &self.syslog_hostname)
            .field("syslog_batch", &self.syslog_batch)
            .field("syslog_confirm_ms", &self.syslog_confirm_ms)
            .field("syslog_cursor", &self.syslog_cursor)
            .finish()
    }
}

/// Hides the password of a `scheme://user:password@host/...` URL, and a `password=` query
/// parameter.
pub(crate) fn mask_url_password(url: &str) -> String {
    let url = &match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    // Any spelling the driver decodes to `password` (`pass%77ord` too).
                    Some((key, _)) if key.contains('%') || key.eq_ignore_ascii_case("password") => {
                        format!("{key}=[REDACTED]")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url.to_owned(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The host follows the last `@`: a password may hold `@` itself.
    match rest.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:[REDACTED]@{host}")
        }
        _ => url.to_owned(),
    }
}

/// A webhook URL as logs and `Debug` show it: scheme, host and port; its path and query (which
/// often hold a receiver's own token) are hidden.
pub fn mask_webhook_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[REDACTED]".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials before the host are hidden too.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if rest.len() > authority.len() {
        format!("{scheme}://{host}/[REDACTED]")
    } else {
        format!("{scheme}://{host}")
    }
}

/// Where the key-encryption key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KekKind {
    /// A key file (`master_key_file`).
    File,
    /// `FIELDSEAL_MASTER_KEY`.
    Env,
    /// A PKCS#11 token (HSM).
    Pkcs11,
}

impl KekKind {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Env => "env",
            Self::Pkcs11 => "pkcs11",
        }
    }
}

impl std::str::FromStr for KekKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "file" => Ok(Self::File),
            "env" => Ok(Self::Env),
            "pkcs11" => Ok(Self::Pkcs11),
            other => Err(format!(
                "{other:?} is not a KEK provider: file, env or pkcs11"
            )),
        }
    }
}

/// The master key's text while the settings hold it: wiped on drop, never printed.
#[derive(Clone)]
pub struct MasterKeyText(zeroize::Zeroizing<String>);

impl MasterKeyText {
    /// Wraps the text.
    pub fn new(text: String) -> Self {
        Self(zeroize::Zeroizing::new(text))
    }

    /// The text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for MasterKeyText {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl std::fmt::Debug for MasterKeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A secret's text while the settings hold it (the alert webhook's): wiped on drop, never printed.
#[derive(Clone)]
pub struct SecretText(zeroize::Zeroizing<String>);

impl SecretText {
    /// Wraps the text.
    pub fn new(text: String) -> Self {
        Self(zeroize::Zeroizing::new(text))
    }

    /// The text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

fn env_parse_opt<T: std::str::FromStr>(
    name: &'static str,
    slot: &mut Option<T>,
) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(v) = env_var(name) {
        *slot = Some(v.parse().map_err(|e: T::Err| ConfigError::Env {
            name,
            message: e.to_string(),
        })?);
    }
    Ok(())
}

fn env_var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &'static str, slot: &mut T) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(v) = env_var(name) {
        *slot = v.parse().map_err(|e: T::Err| ConfigError::Env {
            name,
            message: e.to_string(),
        })?;
    }
    Ok(())
}

impl Settings {
    /// Loads settings: the file (if given, or `FIELDSEAL_CONFIG`), then environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env_var("FIELDSEAL_CONFIG").map(PathBuf::from));
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e: toml::de::Error| {
                    // The full error quotes the offending line, which may hold the master key.
                    let line = e
                        .span()
                        .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
                    ConfigError::Parse {
                        path,
                        message: match line {
                            Some(l) => format!("line {l}: {}", e.message()),
                            None => e.message().to_owned(),
                        },
                    }
                })?
            }
            None => Settings::default(),
        };
        settings.apply_env()?;
        Ok(settings)
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Some(v) = env_var("FIELDSEAL_DATA_DIR") {
            self.data_dir = v.into();
        }
        env_parse("FIELDSEAL_LISTEN", &mut self.listen)?;
        env_parse_opt("FIELDSEAL_METRICS_LISTEN", &mut self.metrics_listen)?;
        if let Some(v) = env_var("FIELDSEAL_DATABASE_URL") {
            self.database_url = Some(v);
        }
        env_parse("FIELDSEAL_DATABASE_POOL_SIZE", &mut self.database_pool_size)?;
        env_parse(
            "FIELDSEAL_DATABASE_TIMEOUT_MS",
            &mut self.database_timeout_ms,
        )?;
        if let Some(v) = env_var("FIELDSEAL_MASTER_KEY") {
            self.master_key = Some(MasterKeyText::new(v));
        }
        env_parse_opt("FIELDSEAL_KEK_PROVIDER", &mut self.kek_provider)?;
        if let Some(v) = env_var("FIELDSEAL_MASTER_KEY_FILE") {
            self.master_key_file = Some(v.into());
        }
        if let Some(v) = env_var("FIELDSEAL_PKCS11_MODULE") {
            self.pkcs11_module = Some(v.into());
        }
        if let Some(v) = env_var("FIELDSEAL_PKCS11_TOKEN") {
            self.pkcs11_token = Some(v);
        }
        if let Some(v) = env_var("FIELDSEAL_PKCS11_KEY_LABEL") {
            self.pkcs11_key_label = v;
        }
        if let Some(v) = env_var("FIELDSEAL_PKCS11_PIN_FILE") {
            self.pkcs11_pin_file = Some(v.into());
        }
        if let Some(v) = env_var("FIELDSEAL_POLICY_FILE") {
            self.policy_file = Some(v.into());
        }
        env_parse(
            "FIELDSEAL_FRESHNESS_WINDOW_SECS",
            &mut self.freshness_window_secs,
        )?;
        env_parse("FIELDSEAL_CLOCK_SKEW_SECS", &mut self.clock_skew_secs)?;
        env_parse("FIELDSEAL_MAX_BODY_BYTES", &mut self.max_body_bytes)?;
        env_parse("FIELDSEAL_MAX_BATCH", &mut self.max_batch)?;
        env_parse("FIELDSEAL_KEY_LIFETIME_DAYS", &mut self.key_lifetime_days)?;
        env_parse(
            "FIELDSEAL_KEY_PUBLISH_AHEAD_HOURS",
            &mut self.key_publish_ahead_hours,
        )?;
        env_parse("FIELDSEAL_CVC_RETENTION_SECS", &mut self.cvc_retention_secs)?;
        env_parse(
            "FIELDSEAL_DATA_KEY_MAX_ENCRYPTIONS",
            &mut self.data_key_max_encryptions,
        )?;
        env_parse(
            "FIELDSEAL_REENCRYPT_BATCH_SIZE",
            &mut self.reencrypt_batch_size,
        )?;
        env_parse("FIELDSEAL_REENCRYPT_BATCHES", &mut self.reencrypt_batches)?;
        env_parse("FIELDSEAL_SQLITE_SYNCHRONOUS", &mut self.sqlite_synchronous)?;
        if let Some(v) = env_var("FIELDSEAL_LOG_FORMAT") {
            self.log_format = v;
        }
        self.fields.apply_env()?;
        if let Some(v) = env_var("FIELDSEAL_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                    name: "FIELDSEAL_TRUSTED_PROXIES",
                    message: e.to_string(),
                })?;
        }
        env_parse(
            "FIELDSEAL_AUTH_FAILURES_BEFORE_THROTTLE",
            &mut self.auth_failures_before_throttle,
        )?;
        if let Some(v) = env_var("FIELDSEAL_TLS_CERT_FILE") {
            self.tls_cert_file = Some(v.into());
        }
        if let Some(v) = env_var("FIELDSEAL_TLS_KEY_FILE") {
            self.tls_key_file = Some(v.into());
        }
        if let Some(v) = env_var("FIELDSEAL_TLS_CLIENT_CA_FILE") {
            self.tls_client_ca_file = Some(v.into());
        }
        env_parse("FIELDSEAL_ALLOW_PLAIN_HTTP", &mut self.allow_plain_http)?;
        env_parse(
            "FIELDSEAL_API_KEY_MAX_IDLE_DAYS",
            &mut self.api_key_max_idle_days,
        )?;
        env_parse("FIELDSEAL_MAX_CONNECTIONS", &mut self.max_connections)?;
        env_parse("FIELDSEAL_MAX_IN_FLIGHT", &mut self.max_in_flight)?;
        env_parse(
            "FIELDSEAL_HEADER_READ_TIMEOUT_MS",
            &mut self.header_read_timeout_ms,
        )?;
        env_parse(
            "FIELDSEAL_BODY_READ_TIMEOUT_MS",
            &mut self.body_read_timeout_ms,
        )?;
        env_parse("FIELDSEAL_REQUEST_TIMEOUT_MS", &mut self.request_timeout_ms)?;
        env_parse(
            "FIELDSEAL_OPERATOR_LOCKOUT_ATTEMPTS",
            &mut self.operator_lockout_attempts,
        )?;
        env_parse(
            "FIELDSEAL_OPERATOR_LOCKOUT_SECS",
            &mut self.operator_lockout_secs,
        )?;
        env_parse("FIELDSEAL_SESSION_IDLE_SECS", &mut self.session_idle_secs)?;
        env_parse("FIELDSEAL_SESSION_MAX_SECS", &mut self.session_max_secs)?;
        env_parse("FIELDSEAL_STEP_UP_SECS", &mut self.step_up_secs)?;
        if let Some(v) = env_var("FIELDSEAL_ALERT_WEBHOOK_URL") {
            self.alert_webhook_url = Some(v);
        }
        if let Some(v) = env_var("FIELDSEAL_ALERT_WEBHOOK_SECRET_FILE") {
            self.alert_webhook_secret_file = Some(v.into());
        }
        if let Some(v) = env_var("FIELDSEAL_ALERT_WEBHOOK_SECRET") {
            self.alert_webhook_secret = Some(SecretText::new(v));
        }
        if let Some(v) = env_var("FIELDSEAL_ALERT_WEBHOOK_CA_FILE") {
            self.alert_webhook_ca_file = Some(v.into());
        }
        env_parse("FIELDSEAL_ALERT_QUEUE_SIZE", &mut self.alert_queue_size)?;
        env_parse(
            "FIELDSEAL_ALERT_RETRY_INITIAL_MS",
            &mut self.alert_retry_initial_ms,
        )?;
        env_parse(
            "FIELDSEAL_ALERT_RETRY_MAX_SECS",
            &mut self.alert_retry_max_secs,
        )?;
        env_parse("FIELDSEAL_ALERT_MAX_ATTEMPTS", &mut self.alert_max_attempts)?;
        env_parse(
            "FIELDSEAL_ALERT_KEY_EXPIRY_DAYS",
            &mut self.alert_key_expiry_days,
        )?;
        if let Some(v) = env_var("FIELDSEAL_ALERT_NODE_NAME") {
            self.alert_node_name = Some(v);
        }
        if let Some(v) = env_var("FIELDSEAL_SYSLOG_FORWARD") {
            self.syslog_forward = Some(v);
        }
        if let Some(v) = env_var("FIELDSEAL_SYSLOG_CA_FILE") {
            self.syslog_ca_file = Some(v.into());
        }
        if let Some(v) = env_var("FIELDSEAL_SYSLOG_APP_NAME") {
            self.syslog_app_name = v;
        }
        if let Some(v) = env_var("FIELDSEAL_SYSLOG_HOSTNAME") {
            self.syslog_hostname = Some(v);
        }
        env_parse("FIELDSEAL_SYSLOG_BATCH", &mut self.syslog_batch)?;
        env_parse("FIELDSEAL_SYSLOG_CONFIRM_MS", &mut self.syslog_confirm_ms)?;
        if let Some(v) = env_var("FIELDSEAL_SYSLOG_CURSOR") {
            self.syslog_cursor = v;
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("vault.db").display()))
    }

    /// The TLS certificate and key files, when both are set.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((
            self.tls_cert_file.as_deref()?,
            self.tls_key_file.as_deref()?,
        ))
    }

    /// The time before which an API key's last use (or creation) makes it idle, at `now`.
    pub fn api_key_idle_before(&self, now: i64) -> Option<i64> {
        (self.api_key_max_idle_days > 0).then(|| {
            now.saturating_sub(
                i64::try_from(self.api_key_max_idle_days.saturating_mul(86_400))
                    .unwrap_or(i64::MAX),
            )
        })
    }

    /// The KEK provider in effect.
    pub fn kek_kind(&self) -> KekKind {
        self.kek_provider.unwrap_or(if self.master_key.is_some() {
            KekKind::Env
        } else {
            KekKind::File
        })
    }

    /// The PKCS#11 settings, checked.
    pub fn pkcs11_config(&self) -> Result<crate::kek::Pkcs11Config, crate::keys::KeyError> {
        let missing = |what: &str| {
            crate::keys::KeyError::NoMasterKey(format!("kek_provider = \"pkcs11\" needs {what}"))
        };
        Ok(crate::kek::Pkcs11Config {
            module: self
                .pkcs11_module
                .clone()
                .ok_or_else(|| missing("pkcs11_module (FIELDSEAL_PKCS11_MODULE)"))?,
            token: self
                .pkcs11_token
                .clone()
                .ok_or_else(|| missing("pkcs11_token (FIELDSEAL_PKCS11_TOKEN)"))?,
            key_label: self.pkcs11_key_label.clone(),
        })
    }

    /// The master key file in effect.
    pub fn master_key_file(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn debug_masks_the_master_key() {
        let s = Settings {
            master_key: Some(String::from("c2VjcmV0LWtleS1tYXRlcmlhbA").into()),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
        let pg = Settings {
            database_url: Some("postgres://vault:hunter2@db/vault".into()),
            ..Settings::default()
        };
        let shown = format!("{pg:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("postgres://vault:[REDACTED]@db/vault")
        );
        let query = mask_url_password("postgres://db/vault?sslmode=require&password=hunter2");
        assert_eq!(
            query,
            "postgres://db/vault?sslmode=require&password=[REDACTED]"
        );
        let at = mask_url_password("postgres://vault:p@ss@db/vault");
        assert_eq!(at, "postgres://vault:[REDACTED]@db/vault");
        let encoded = mask_url_password("postgres://db/vault?pass%77ord=hunter2");
        assert!(!encoded.contains("hunter2"), "{encoded}");
        let alerts = Settings {
            alert_webhook_url: Some("https://u:pw@hooks.example/T0/hunter2?k=v".into()),
            alert_webhook_secret: Some(SecretText::new("whsec-hunter3".into())),
            ..Settings::default()
        };
        let shown = format!("{alerts:?}");
        assert!(
            !shown.contains("hunter") && !shown.contains("pw@") && !shown.contains("whsec"),
            "{shown}"
        );
        assert!(
            shown.contains("https://hooks.example/[REDACTED]"),
            "{shown}"
        );
    }

    #[test]
    fn file_values_and_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("fs-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vault.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\nmax_batch = 7\n").unwrap();
        let s: Settings = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.max_batch, 7);
        assert_eq!(s.freshness_window_secs, 600);
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = toml::from_str::<Settings>(&std::fs::read_to_string(&path).unwrap());
        assert!(err.is_err());
        // A malformed line is named by number, never quoted: it may hold a secret.
        std::fs::write(&path, "pkcs11_token = \"c2VjcmV0LWtleS1t\" x\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("line 1") && !err.contains("c2VjcmV0"), "{err}");
    }
}

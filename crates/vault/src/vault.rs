//! The vault's operations, independent of HTTP: authenticate, tokenize, detokenize, delete. Every
//! row read from the store is checked before it is trusted: API key rows by their MACs, values by
//! their AES-GCM associated data; a row that fails is treated as absent and reported.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fieldseal_core::envelope::{Envelope, FieldKind, OpenError, Opened};
use fieldseal_vault_postgres::{PgOptions, PgStore};
use fieldseal_vault_sqlite::SqliteStore;
use fieldseal_vault_store::audit::{
    Action, Actor, AuditDraft, AuditRecord, EnvelopeRef, ExpectedHead, Outcome,
};
use fieldseal_vault_store::records::token_aad;
use fieldseal_vault_store::verify::{Verification, verify_chain};
use fieldseal_vault_store::{InsertOutcome, NewToken, Store, StoreError, TokenRecord};
use serde::{Deserialize, Serialize};

use crate::apikeys;
use crate::backend::AnyStore;
use crate::client::ClientAddr;
use crate::config::Settings;
use crate::denials::{self, DenialCounter, Record};
use crate::keys::{self, KekProvider, KeyError, KeyRing, Secrets};
use crate::policy::{Policy, Reveal, Role};
use crate::ratelimit::{Limited, Operation, RateLimiter};
use crate::refusal::{ItemError, Refusal};
use crate::values::{self, TokenFormat};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why the vault could not start or an operation failed as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// Keys.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Policy.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// Unsupported database URL.
    #[error("unsupported database URL {0}: use sqlite://PATH or postgres://USER@HOST/DB")]
    DatabaseUrl(String),
    /// A plain reveal by an operator whose last second factor is too old (audited).
    #[error("a plain reveal needs a step-up (a TOTP code entered recently)")]
    StepUpRequired,
    /// The caller's reveals are locked after an anomaly in them (audited).
    #[error("the caller's reveals are locked")]
    Locked,
    /// The alert webhook's settings.
    #[error(transparent)]
    Alerts(#[from] crate::alerts::WebhookError),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key id.
    pub key_id: String,
    /// The role name.
    pub role_name: String,
    /// The role's permissions.
    pub role: Role,
    /// Where the request came from.
    pub client: ClientAddr,
    /// The operator, when the caller is an operator's session rather than an API key.
    pub operator: Option<crate::operators::OperatorCaller>,
}

impl Caller {
    /// Who the caller is in audit entries: the API key, or the operator by name.
    pub fn actor(&self) -> Actor {
        match &self.operator {
            Some(op) => Actor::Operator(op.name.clone()),
            None => Actor::ApiKey(self.key_id.clone()),
        }
    }

    /// An audit entry of this caller's request: who, and where the request came from.
    pub fn draft(&self, at: i64, action: Action, outcome: Outcome) -> AuditDraft {
        AuditDraft::new(at, self.actor(), action, outcome).from(self.client)
    }

    /// Whether the caller is an operator whose last second factor is older than `window` seconds
    /// at `t` (a plain reveal then needs a step-up).
    pub fn needs_step_up(&self, t: i64, window: u64) -> bool {
        self.operator.as_ref().is_some_and(|op| {
            op.step_up_at
                .saturating_add(i64::try_from(window).unwrap_or(i64::MAX / 4))
                < t
        })
    }
}

/// Why a caller was refused.
#[derive(Debug, Clone)]
pub enum AuthError {
    /// No, malformed, unknown, revoked, expired or tampered API key.
    Unauthenticated,
    /// The caller's address failed too often this minute: refused without looking at its key
    /// until the minute ends (seconds to wait).
    Throttled(u64),
    /// The refusal could not be audited: the request fails with the storage error.
    Store(StoreError),
}

/// One envelope to tokenize.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeItem {
    /// The envelope text.
    pub envelope: String,
    /// Token format; random by default.
    #[serde(default)]
    pub format: Option<TokenFormat>,
    /// Seconds to keep the value, at most the kind's retention period ([`crate::retention`]).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub ttl_secs: Option<u64>,
    /// The merchant's id of the customer the value belongs to ([`crate::subjects`]).
    #[serde(default)]
    pub subject: Option<String>,
}

/// A count of seconds as JSON Schema's `integer` has it: a number without a fractional part, so
/// `60.0` is 60 (the OpenAPI document says `integer`, and JSON Schema counts `60.0` as one); from
/// 0 to `i64::MAX`. `null` is none.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let max = u64::try_from(i64::MAX).unwrap_or(u64::MAX);
    let secs = match (n.as_u64(), n.as_f64()) {
        (Some(v), _) => Some(v),
        // Below 2^63 every whole f64 converts exactly.
        (None, Some(f)) if f.fract() == 0.0 && (0.0..9.2e18).contains(&f) => Some(f as u64),
        _ => None,
    };
    match secs {
        Some(v) if v <= max => Ok(Some(v)),
        _ => Err(D::Error::custom(
            "ttl_secs: a whole number of seconds from 0",
        )),
    }
}

/// A tokenized value's public facts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Tokenized {
    /// The token.
    pub token: String,
    /// Field kind.
    pub kind: String,
    /// Token format.
    pub format: TokenFormat,
    /// Keyed fingerprint; none for low-entropy kinds (CVC, expiry, postal code, birth date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Card brand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// First six digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<String>,
    /// Last four digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
}

impl Tokenized {
    /// The result as `role` may see it: the fingerprint only for kinds under its `fingerprint`
    /// permission, a card number's brand, BIN and last four only as its `hints` allow.
    fn granted_to(self, role: &Role) -> Self {
        let kind = self.kind.parse::<FieldKind>().ok();
        let fingerprint_granted = kind.is_some_and(|k| role.fingerprint.contains(k));
        Self {
            fingerprint: self.fingerprint.filter(|_| fingerprint_granted),
            brand: self.brand.filter(|_| role.hints.brand),
            bin: self.bin.filter(|_| role.hints.bin),
            last4: self.last4.filter(|_| role.hints.last4),
            ..self
        }
    }
}

/// A revealed value.
#[derive(Serialize)]
pub struct Revealed {
    /// The token.
    pub token: String,
    /// Field kind.
    pub kind: String,
    /// `plain` or `masked`.
    pub reveal: &'static str,
    /// The value, plain or masked.
    pub value: String,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Revealed({}, {}, {}, [REDACTED])",
            self.token, self.kind, self.reveal
        )
    }
}

/// The vault.
pub struct Vault<S: Store> {
    store: S,
    settings: Settings,
    /// The policy in force, and the `policy.store` entry it came from (if from the log).
    policy: RwLock<(Arc<Policy>, Option<i64>)>,
    kek: Arc<dyn KekProvider>,
    secrets: Secrets,
    ring: RwLock<Arc<KeyRing>>,
    last_reload: Mutex<Instant>,
    /// Held from reading the keys to installing them, so that a slower reload that read the keys
    /// before a rotation cannot install its older ring over a newer one.
    reloading: tokio::sync::Mutex<()>,
    /// Whether the last key reload found the KEK unreachable.
    kek_lost: AtomicBool,
    /// HPKE key rows already reported as tampered (kid and MAC), so a reload every few seconds
    /// does not repeat the audit entry.
    reported: Mutex<HashSet<(String, String)>>,
    /// Tokenize and reveal rates per API key.
    limiter: RateLimiter,
    /// Failed authentications per address and key id, audited per minute.
    auth_failures: DenialCounter,
    /// Requests over a tokenize or reveal rate per address and key id, audited per minute.
    rate_denials: [DenialCounter; 2],
    /// Uses of keys counted since the last key upkeep.
    key_uses: crate::keyuse::KeyUses,
    /// What `GET /metrics` shows.
    metrics: crate::metrics::Shared,
    /// Reveal anomaly detection and the locks in force.
    reveal_watch: crate::locks::RevealWatch,
    /// The data keys as the last key upkeep read them, for the metrics: reading them counts the
    /// values under each key, which a scrape every few seconds should not pay for.
    data_key_records: Mutex<Vec<fieldseal_vault_store::DataKeyRecord>>,
    /// Security alerts: the webhook's queue and what the upkeep checks remember.
    alerts: crate::alerts::Alerter,
}

/// The KEK the settings name (see [`crate::kek::from_settings`]); the master key text is taken
/// out of `settings` and wiped.
pub fn kek_from_settings(settings: &mut Settings) -> Result<Arc<dyn KekProvider>, KeyError> {
    Ok(Arc::from(crate::kek::from_settings(settings)?))
}

/// Opens and migrates the store the settings' database URL names; the URL's scheme picks the
/// backend (`sqlite://PATH`, `postgres://...` or `postgresql://...`).
pub async fn open_store(settings: &Settings) -> Result<AnyStore, VaultError> {
    let url = settings.database_url();
    let store = match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("sqlite") => {
            AnyStore::Sqlite(SqliteStore::open_url(&url, settings.sqlite_synchronous)?)
        }
        Some("postgres" | "postgresql") => AnyStore::Postgres(PgStore::open(
            &url,
            PgOptions {
                pool_size: settings.database_pool_size,
                timeout: Duration::from_millis(settings.database_timeout_ms.max(1)),
            },
        )?),
        _ => {
            return Err(VaultError::DatabaseUrl(crate::config::mask_url_password(
                &url,
            )));
        }
    };
    store.migrate().await?;
    Ok(store)
}

/// Opens envelopes off the async workers (one ECDH each), a large batch spread over every core:
/// results in order.
async fn open_all(
    ring: Arc<KeyRing>,
    texts: Vec<String>,
) -> Result<Vec<Result<Opened, OpenError>>, StoreError> {
    /// Below this, one task: handing work to another thread costs more than it saves.
    const MIN_CHUNK: usize = 4;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = texts.len().div_ceil(cores).max(MIN_CHUNK);
    let mut tasks = Vec::new();
    let mut rest = texts;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        let part = std::mem::replace(&mut rest, tail);
        let ring = Arc::clone(&ring);
        tasks.push(tokio::task::spawn_blocking(move || {
            part.iter()
                .map(|t| ring.opener().open(t))
                .collect::<Vec<_>>()
        }));
    }
    let mut opened = Vec::new();
    for t in tasks {
        opened.extend(
            t.await
                .map_err(|e| StoreError::Database(format!("open task failed: {e}")))?,
        );
    }
    Ok(opened)
}

impl Vault<AnyStore> {
    /// Opens an initialized vault as the settings describe.
    pub async fn open(mut settings: Settings) -> Result<Self, VaultError> {
        let store = open_store(&settings).await?;
        let kek = kek_from_settings(&mut settings)?;
        let policy = Policy::load(settings.policy_file.as_deref())?;
        Self::with_store(store, settings, policy, kek).await
    }
}

impl<S: Store> Vault<S> {
    /// Opens a vault over any store, with `policy` (the file or built-in one) unless a policy is
    /// stored in the audit log for every node (`policy load`). Records the policy's digest in the
    /// audit log.
    pub async fn with_store(
        store: S,
        settings: Settings,
        policy: Policy,
        kek: Arc<dyn KekProvider>,
    ) -> Result<Self, VaultError> {
        let secrets = keys::load_secrets(&store, kek.as_ref()).await?;
        let ring = KeyRing::load(&store, kek.as_ref(), &secrets.row_key, now()).await?;
        let policy = match Policy::stored(&store, &secrets.audit_key).await? {
            Some((stored, seq)) => {
                if settings.policy_file.is_some() {
                    tracing::warn!(
                        entry = seq,
                        "a policy is stored in the database (policy load): it applies, the \
                         policy file is ignored"
                    );
                }
                (Arc::new(stored), Some(seq))
            }
            None => (Arc::new(policy), None),
        };
        let metrics = crate::metrics::Shared::default();
        let alerts = crate::alerts::Alerter::start(&settings, Arc::clone(&metrics))?;
        let vault = Self {
            store,
            alerts,
            policy: RwLock::new(policy),
            kek,
            secrets,
            ring: RwLock::new(Arc::new(KeyRing::empty())),
            last_reload: Mutex::new(Instant::now()),
            reloading: tokio::sync::Mutex::new(()),
            reported: Mutex::new(HashSet::new()),
            limiter: RateLimiter::default(),
            key_uses: crate::keyuse::KeyUses::default(),
            metrics,
            reveal_watch: crate::locks::RevealWatch::default(),
            data_key_records: Mutex::new(Vec::new()),
            auth_failures: DenialCounter::new(
                denials::Limits {
                    throttle_after: settings.auth_failures_before_throttle,
                    ..denials::Limits::default()
                },
                "failed authentications",
            ),
            rate_denials: [Operation::Tokenize, Operation::Reveal].map(|op| {
                DenialCounter::new(
                    denials::Limits {
                        throttle_after: u32::MAX,
                        ..denials::Limits::default()
                    },
                    match op {
                        Operation::Tokenize => "tokenize requests over the rate",
                        Operation::Reveal => "reveal requests over the rate",
                    },
                )
            }),
            settings,
            kek_lost: AtomicBool::new(false),
        };
        vault.install(ring).await?;
        vault
            .store
            .append_audit(
                AuditDraft::new(now(), Actor::Vault, Action::PolicyLoad, Outcome::Ok)
                    .detail(vault.policy().describe()),
            )
            .await?;
        Ok(vault)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => Arc::clone(&p.0),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().0),
        }
    }

    /// Takes up a policy stored since (`policy load` on any node): every node runs this every 5
    /// seconds. The change is audited (`policy.load`); a stored policy that does not verify is
    /// reported and not used.
    pub async fn reload_policy(&self) -> Result<(), VaultError> {
        let current = self.policy.read().map(|p| p.1).unwrap_or(None);
        let Some((policy, seq)) = Policy::stored(&self.store, &self.secrets.audit_key).await?
        else {
            return Ok(());
        };
        if current == Some(seq) {
            return Ok(());
        }
        let describe = policy.describe().to_owned();
        match self.policy.write() {
            Ok(mut p) => *p = (Arc::new(policy), Some(seq)),
            Err(poisoned) => *poisoned.into_inner() = (Arc::new(policy), Some(seq)),
        }
        tracing::info!(policy = %describe, "policy reloaded");
        self.store
            .append_audit(
                AuditDraft::new(now(), Actor::Vault, Action::PolicyLoad, Outcome::Ok)
                    .detail(describe),
            )
            .await?;
        Ok(())
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings (without the master key text, wiped once the KEK was loaded).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The key-encryption key provider (for operator actions in the same process).
    pub fn kek(&self) -> Arc<dyn KekProvider> {
        Arc::clone(&self.kek)
    }

    /// The unwrapped symmetric keys.
    pub(crate) fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The alerts' queue and state.
    pub(crate) fn alerts(&self) -> &crate::alerts::Alerter {
        &self.alerts
    }

    fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a loaded key ring in use, reporting (once per row) HPKE key rows that failed their
    /// integrity check and were left out.
    async fn install(&self, ring: KeyRing) -> Result<(), StoreError> {
        for (kid, mac) in ring.tampered() {
            let row = (kid.clone(), mac.clone());
            let known = self.reported.lock().is_ok_and(|r| r.contains(&row));
            if !known {
                // Marked as reported only once the audit entry is written: a failed write is
                // retried at the next reload.
                self.report_tampered(None, &format!("hpke key {kid}"))
                    .await?;
                if let Ok(mut r) = self.reported.lock() {
                    r.insert(row);
                }
            }
        }
        match self.ring.write() {
            Ok(mut r) => *r = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
        if let Ok(mut t) = self.last_reload.lock() {
            *t = Instant::now();
        }
        Ok(())
    }

    /// Logs an alert, raises an `integrity_failure` alert (once per row) and audits a stored
    /// row that failed its integrity check.
    pub(crate) async fn report_tampered(
        &self,
        token: Option<&str>,
        what: &str,
    ) -> Result<(), StoreError> {
        tracing::error!(
            alert = "row_tampered",
            row = %what,
            "a stored row failed its integrity check and is treated as absent"
        );
        self.alert_tampered(token, what);
        let mut d = AuditDraft::new(now(), Actor::Vault, Action::Integrity, Outcome::Tampered)
            .detail(format!("{what} failed its integrity check"));
        if let Some(t) = token {
            d = d.token(t);
        }
        self.store.append_audit(d).await
    }

    /// Reloads the HPKE keys from storage (after `keys rotate` or `retire` by another process).
    /// A KEK found unreachable is logged as an alert once, and its return once.
    pub async fn reload_keys(&self) -> Result<(), VaultError> {
        let _one_at_a_time = self.reloading.lock().await;
        let loaded = KeyRing::load(&self.store, self.kek.as_ref(), &self.secrets.row_key, now());
        let ring = match loaded.await {
            Ok(ring) => ring,
            Err(e @ KeyError::KekUnavailable(_)) => {
                if !self.kek_lost.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        alert = "kek_unavailable",
                        error = %e,
                        "the key-encryption key cannot be reached: requests that need it answer 503 kek_unavailable until it is back"
                    );
                    self.alert_kek(true, Some(&e.to_string()));
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        if self.kek_lost.swap(false, Ordering::Relaxed) {
            tracing::info!(
                alert = "kek_available",
                "the key-encryption key is reachable again"
            );
            self.alert_kek(false, None);
        }
        self.install(ring).await?;
        Ok(())
    }

    /// Reloads keys unless that happened in the last second (unknown key ids trigger it). Fails
    /// with [`KeyError::KekUnavailable`] while the last reload found the KEK unreachable.
    async fn reload_keys_rate_limited(&self) -> Result<(), VaultError> {
        let due = self
            .last_reload
            .lock()
            .map(|t| t.elapsed() >= Duration::from_secs(1))
            .unwrap_or(true);
        if due {
            match self.reload_keys().await {
                Err(VaultError::Key(e @ KeyError::KekUnavailable(_))) => {
                    if let Ok(mut t) = self.last_reload.lock() {
                        *t = Instant::now();
                    }
                    return Err(e.into());
                }
                Err(e) => tracing::warn!(error = %e, "key reload failed"),
                Ok(()) => {}
            }
        }
        if self.kek_lost.load(Ordering::Relaxed) {
            return Err(
                KeyError::KekUnavailable("the last key reload could not reach it".into()).into(),
            );
        }
        Ok(())
    }

    /// Makes the next HPKE key when the schedule says so (see [`keys::rotation_due`]): published
    /// `key_publish_ahead_hours` before it becomes the primary, so pages pick it up first.
    /// Audited (actor `vault`). Returns the new key's id.
    pub async fn rotate_on_schedule(&self) -> Result<Option<String>, VaultError> {
        let t = now();
        let ahead = i64::try_from(self.settings.key_publish_ahead_hours.saturating_mul(3600))
            .unwrap_or(i64::MAX / 4);
        if self.settings.key_lifetime_days == 0 {
            return Ok(None);
        }
        if !keys::rotation_due(&self.store, &self.secrets.row_key, t, ahead).await? {
            return Ok(None);
        }
        let lifetime = i64::try_from(self.settings.key_lifetime_days.saturating_mul(86_400))
            .unwrap_or(i64::MAX / 4);
        let kid = keys::rotate(
            &self.store,
            self.kek.as_ref(),
            &self.secrets.row_key,
            t,
            (lifetime, ahead),
            Actor::Vault,
        )
        .await?;
        tracing::info!(kid = %kid, not_before = t + ahead, "scheduled HPKE key rotation: next key published");
        self.reload_keys().await?;
        Ok(Some(kid))
    }

    /// The key set document served at `GET /v1/keys`.
    pub fn key_set_json(&self) -> Option<String> {
        let now = u64::try_from(now()).unwrap_or(0);
        self.ring().key_set(now).map(|ks| ks.to_json())
    }

    /// Authenticates an `Authorization` header value from `client`. Failures are counted per
    /// address and key id ([`DenialCounter`]): the first of each minute is audited at once (if that
    /// entry cannot be written, the request fails with that error instead), the rest in one
    /// entry per minute ([`Vault::flush_denials`]); an address that failed too often is
    /// refused before its key is looked up.
    ///
    /// An operator's session token is taken from the header (`Bearer fso_...`) or, without a
    /// header, from the session cookie's value `cookie`.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        cookie: Option<&str>,
        client: ClientAddr,
    ) -> Result<Caller, AuthError> {
        let t = now();
        if let Some(wait) = self.auth_failures.throttled(client.ip(), t) {
            self.auth_failures
                .record(client.ip(), None, "throttled address", t);
            return Err(AuthError::Throttled(wait));
        }
        let bearer = header.map(|h| match h.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => h.trim(),
        });
        let session = match bearer {
            Some(b) if b.starts_with(crate::operators::SESSION_PREFIX) => Some(b),
            Some(_) => None,
            None => cookie,
        };
        if let Some(text) = session {
            let (reason, name) = match crate::operators::SessionToken::parse(text) {
                Some(token) => match self.authenticate_session(&token, client, t).await? {
                    Ok(caller) => return Ok(caller),
                    Err(why) => why,
                },
                None => ("malformed operator session token", None),
            };
            let key = name.as_ref().map(|n| format!("operator:{n}"));
            if self
                .auth_failures
                .record(client.ip(), key.as_deref(), reason, t)
                == Record::AuditNow
            {
                let actor = name.map_or(Actor::Anonymous, Actor::Operator);
                let audit = AuditDraft::new(t, actor, Action::Auth, Outcome::Denied)
                    .detail(reason)
                    .from(client);
                self.store
                    .append_audit(audit)
                    .await
                    .map_err(AuthError::Store)?;
            }
            return Err(AuthError::Unauthenticated);
        }
        let presented = header.and_then(apikeys::parse);
        let found = match &presented {
            Some(p) => self.store.api_key(&p.id).await.map_err(AuthError::Store)?,
            None => None,
        };
        let authentic = found.as_ref().is_some_and(|k| {
            self.secrets.row_key.api_key_ok(k) && !(k.revoked_in_log && k.revoked_at.is_none())
        });
        // The current secret, or the previous one during a rotation's overlap.
        let secret_ok = |p: &apikeys::Presented, k: &fieldseal_vault_store::ApiKeyRecord| {
            p.matches(&k.digest)
                || (k.previous_expires_at.is_some_and(|e| e > t)
                    && k.previous_digest.as_deref().is_some_and(|d| p.matches(d)))
        };
        let idle_before = self.settings.api_key_idle_before(t);
        let idle = |k: &fieldseal_vault_store::ApiKeyRecord| {
            idle_before.is_some_and(|b| k.last_used_at.unwrap_or(k.created_at) < b)
        };
        // A key bound to a client certificate: only on a connection that presented it.
        let cert_ok = |k: &fieldseal_vault_store::ApiKeyRecord| match &k.client_cert_sha256 {
            None => true,
            Some(bound) => client.cert_sha256.is_some_and(|c| {
                fieldseal_core::at_rest::ct_eq(
                    fieldseal_core::encoding::hex(&c).as_bytes(),
                    bound.as_bytes(),
                )
            }),
        };
        if let (Some(p), Some(k)) = (&presented, &found)
            && authentic
            && secret_ok(p, k)
            && cert_ok(k)
            && k.revoked_at.is_none()
            && k.expires_at.is_none_or(|e| e > t)
            && !idle(k)
            && let Some(role) = self.policy().role(&k.role)
        {
            // The time of last use, to the hour: one write an hour per key, not one a request.
            if k.last_used_at.is_none_or(|u| u <= t - 3600)
                && let Err(e) = self.store.touch_api_key(&k.id, t).await
            {
                tracing::warn!(error = %e, key = %k.id, "could not record the key's last use");
            }
            return Ok(Caller {
                key_id: k.id.clone(),
                role_name: k.role.clone(),
                role: role.clone(),
                client,
                operator: None,
            });
        }
        let reason = match (&presented, &found) {
            (None, _) => "missing or malformed API key",
            (Some(_), None) => "unknown API key",
            (Some(p), Some(_)) if !authentic => {
                // Audited as the integrity failure itself, and below as the denial.
                self.report_tampered(None, &format!("api key {}", p.id))
                    .await
                    .map_err(AuthError::Store)?;
                "API key row failed its integrity check (treated as unknown)"
            }
            (Some(_), Some(k)) if k.revoked_at.is_some() => "revoked API key",
            (Some(_), Some(k)) if k.expires_at.is_some_and(|e| e <= t) => "expired API key",
            (Some(p), Some(k)) if secret_ok(p, k) && !cert_ok(k) => {
                "API key bound to a client certificate the connection did not present"
            }
            (Some(p), Some(k)) if secret_ok(p, k) && idle(k) => {
                "API key unused for longer than api_key_max_idle_days (disabled)"
            }
            (Some(_), Some(k)) if self.policy().role(&k.role).is_none() => "role not in policy",
            (Some(_), Some(_)) => "wrong secret",
        };
        let key_id = presented.as_ref().map(|p| p.id.as_str());
        if self.auth_failures.record(client.ip(), key_id, reason, t) == Record::AuditNow {
            let actor = key_id.map_or(Actor::Anonymous, |id| Actor::ApiKey(id.to_owned()));
            let audit = AuditDraft::new(t, actor, Action::Auth, Outcome::Denied)
                .detail(reason)
                .from(client);
            self.store
                .append_audit(audit)
                .await
                .map_err(AuthError::Store)?;
        }
        Err(AuthError::Unauthenticated)
    }

    /// Audits the denials (failed authentications, requests over a rate) counted in minutes
    /// that have ended (all of them when `all`, at shutdown): one entry per address and key id
    /// with the count. Summaries that cannot be written are kept for the next call.
    pub async fn flush_denials(&self, all: bool) -> Result<usize, StoreError> {
        let counters = [
            (&self.auth_failures, Action::Auth),
            (&self.rate_denials[0], Action::Tokenize),
            (&self.rate_denials[1], Action::Reveal),
        ];
        let mut written = 0;
        for (counter, action) in counters {
            let summaries = if all {
                counter.take_all()
            } else {
                counter.take_ended(now())
            };
            let mut rest = summaries.into_iter();
            while let Some(s) = rest.next() {
                let actor = match s.key_id.as_str() {
                    "-" | "*" => Actor::Anonymous,
                    id => match id.strip_prefix("operator:") {
                        Some(name) => Actor::Operator(name.to_owned()),
                        None => Actor::ApiKey(id.to_owned()),
                    },
                };
                let entry =
                    AuditDraft::new(now(), actor, action, Outcome::Denied).detail(s.detail());
                if let Err(e) = self.store.append_audit(entry).await {
                    counter.restore(std::iter::once(s).chain(rest).collect());
                    return Err(e);
                }
                written += 1;
            }
        }
        Ok(written)
    }

    /// The failed authentications counted per address (sign-ins count there too).
    pub(crate) fn auth_failures(&self) -> &DenialCounter {
        &self.auth_failures
    }

    /// Audits an endpoint-level denial (the role has no permission of the needed sort).
    pub async fn audit_denial(
        &self,
        caller: &Caller,
        action: Action,
        why: &str,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(
                caller
                    .draft(now(), action, Outcome::Denied)
                    .detail(format!("role {}: {why}", caller.role_name)),
            )
            .await
    }

    /// Takes `items` from the caller's `op` bucket (its role's rate). A refusal is audited as a
    /// denial of the operation.
    pub async fn limit(
        &self,
        caller: &Caller,
        op: Operation,
        items: usize,
    ) -> Result<Result<(), Limited>, StoreError> {
        let rate = match op {
            Operation::Tokenize => caller.role.tokenize_rate,
            Operation::Reveal => caller.role.reveal_rate,
        };
        let Err(limited) = self.limiter.take(&caller.key_id, op, rate, items) else {
            return Ok(Ok(()));
        };
        let action = match op {
            Operation::Tokenize => Action::Tokenize,
            Operation::Reveal => Action::Reveal,
        };
        let counter = match op {
            Operation::Tokenize => &self.rate_denials[0],
            Operation::Reveal => &self.rate_denials[1],
        };
        let (why, reason) = match limited {
            Limited::RetryAfter(_) => (format!("rate limited ({items} items)"), "rate limited"),
            Limited::OverBurst(burst) => (
                format!("{items} items at once, burst {burst}"),
                "over the burst",
            ),
        };
        let t = now();
        if counter.record(caller.client.ip(), Some(&caller.key_id), reason, t) == Record::AuditNow {
            self.audit_denial(caller, action, &why).await?;
        }
        Ok(Err(limited))
    }

    /// Audit entries after `after`, at most `limit`, for a role with the `audit` permission (the
    /// caller checks it). Access to the log is itself audited (`audit.read`), before the read.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.store
            .append_audit(
                caller
                    .draft(now(), Action::AuditRead, Outcome::Ok)
                    .detail(format!("after {after} limit {limit}")),
            )
            .await?;
        self.store.audit_log(after, limit).await
    }

    /// Verifies the audit chain, every entry's MAC and the anchored head; audited as
    /// `audit.verify` first.
    pub async fn verify_audit(
        &self,
        caller: &Caller,
        expect: Option<ExpectedHead>,
    ) -> Result<Verification, StoreError> {
        self.store
            .append_audit(caller.draft(now(), Action::AuditVerify, Outcome::Ok))
            .await?;
        verify_chain(&self.store, &self.secrets.audit_key, expect).await
    }

    /// Tokenizes a batch; one result per item, in order. A failure to audit a refusal, or an audit
    /// chain found broken, fails the whole request.
    pub async fn tokenize(
        &self,
        caller: &Caller,
        items: Vec<TokenizeItem>,
    ) -> Result<Vec<Result<Tokenized, ItemError>>, VaultError> {
        let (mut out, pending) = self.check_batch(caller, &items).await?;
        if !pending.is_empty() {
            let batch: Vec<NewToken> = pending.iter().map(|(_, _, b)| b.new.clone()).collect();
            match self.store.insert_tokens(batch).await {
                Ok(outcomes) => {
                    for ((i, p, built), outcome) in pending.into_iter().zip(outcomes) {
                        out[i] = Some(match outcome {
                            InsertOutcome::Inserted | InsertOutcome::Existing => Ok(built.result),
                            InsertOutcome::Replayed => Err(Refusal::Replayed.into()),
                            InsertOutcome::TokenTaken => self.retry_taken(caller, p).await?,
                        });
                    }
                }
                Err(
                    e @ (StoreError::AuditBroken(_)
                    | StoreError::Tampered(_)
                    | StoreError::Incompatible(_)),
                ) => {
                    return Err(e.into());
                }
                // Nothing of the batch was kept (envelope ids included): all can be resubmitted.
                Err(e) => {
                    let refusal = Refusal::from_store(&e);
                    for (i, _, _) in pending {
                        out[i] = Some(Err(refusal.clone().into()));
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Refusal::Internal.into()))
                    .map(|t| t.granted_to(&caller.role))
            })
            .collect())
    }

    /// Opens and checks every item of a batch: the refused ones' results (audited), and the
    /// others ready to store (by index).
    pub(crate) async fn check_batch(
        &self,
        caller: &Caller,
        items: &[TokenizeItem],
    ) -> Result<(Vec<Option<Result<Tokenized, ItemError>>>, Vec<PendingItem>), VaultError> {
        let texts: Vec<String> = items.iter().map(|i| i.envelope.clone()).collect();
        let mut opened = open_all(self.ring(), texts).await?;
        if opened
            .iter()
            .any(|r| matches!(r, Err(OpenError::UnknownKey)))
        {
            // A key rotated by another process may not be loaded yet; loading it needs the KEK:
            // without it the request fails as a whole (503 kek_unavailable), nothing written.
            self.reload_keys_rate_limited().await?;
            let ring = self.ring();
            for (slot, item) in opened.iter_mut().zip(items) {
                if matches!(slot, Err(OpenError::UnknownKey)) {
                    *slot = ring.opener().open(&item.envelope);
                }
            }
        }
        let mut out: Vec<Option<Result<Tokenized, ItemError>>> = Vec::with_capacity(items.len());
        let mut pending: Vec<PendingItem> = Vec::new();
        for (i, (item, result)) in items.iter().zip(opened).enumerate() {
            match self.check_item(caller, item, result).await? {
                Checked::Done(r) => out.push(Some(r)),
                Checked::Store(ready) => {
                    let (p, built) = *ready;
                    out.push(None);
                    pending.push((i, p, built));
                }
            }
        }
        Ok((out, pending))
    }

    /// Audits a refused item; the refusal stands only once it is recorded.
    pub(crate) async fn refuse(
        &self,
        caller: &Caller,
        kind: Option<FieldKind>,
        detail: String,
        refusal: Refusal,
    ) -> Result<Checked, VaultError> {
        let mut audit = caller
            .draft(now(), Action::Tokenize, Outcome::Refused)
            .detail(format!("{}; {detail}", refusal.code()));
        if let Some(k) = kind {
            audit = audit.kind(k.as_str());
        }
        self.store.append_audit(audit).await?;
        Ok(Checked::Done(Err(refusal.into())))
    }

    /// Opens, checks and prepares one item: a refusal (audited), or a token ready to store.
    async fn check_item(
        &self,
        caller: &Caller,
        item: &TokenizeItem,
        result: Result<Opened, OpenError>,
    ) -> Result<Checked, VaultError> {
        let opened = match result {
            Ok(o) => o,
            Err(e) => {
                // Only the parsed header's public id is logged, and only for parsed envelopes; a
                // refusal for its key names the key (`keys check-retired` finds pages still
                // sealing to a retired one).
                let id = Envelope::parse(&item.envelope)
                    .map(|env| {
                        let h = env.header();
                        match e {
                            OpenError::UnknownKey => {
                                format!("envelope {} to key {}", h.id.to_hex(), h.key_id)
                            }
                            _ => format!("envelope {}", h.id.to_hex()),
                        }
                    })
                    .unwrap_or_else(|_| "unparsed envelope".into());
                return self.refuse(caller, None, id, Refusal::from_open(&e)).await;
            }
        };
        let h = &opened.header;
        let kind = h.kind;
        let now = now();
        self.key_uses.record("hpke", h.key_id.as_str(), now);
        let created = i64::try_from(h.created_at).unwrap_or(i64::MAX);
        let window = i64::try_from(self.settings.freshness_window_secs).unwrap_or(i64::MAX);
        let skew = i64::try_from(self.settings.clock_skew_secs).unwrap_or(i64::MAX);
        let env_detail = format!("envelope {}", h.id.to_hex());
        // A key past its `exp` opens only envelopes a page could still have sealed to it: the
        // freshness window longer.
        if self
            .ring()
            .expires_at(&h.key_id)
            .is_some_and(|exp| now > exp.saturating_add(window))
        {
            return self
                .refuse(caller, Some(kind), env_detail, Refusal::ExpiredKey)
                .await;
        }
        if created < now.saturating_sub(window) {
            return self
                .refuse(caller, Some(kind), env_detail, Refusal::Stale(window))
                .await;
        }
        if created > now.saturating_add(skew) {
            return self
                .refuse(caller, Some(kind), env_detail, Refusal::FutureDated)
                .await;
        }
        if !caller.role.tokenize.contains(kind) {
            let r = Refusal::forbidden(&caller.role_name, "tokenize", kind);
            return self.refuse(caller, Some(kind), env_detail, r).await;
        }
        let normalized =
            match values::normalize(kind, &opened.value, u64::try_from(now).unwrap_or(0)) {
                Ok(n) => n,
                Err(e) => {
                    return self
                        .refuse(caller, Some(kind), env_detail, Refusal::Value(e))
                        .await;
                }
            };
        let format = item.format.unwrap_or(TokenFormat::Random);
        let unsupported = match format {
            TokenFormat::FormatPreserving if kind != FieldKind::Pan => {
                Some("format-preserving tokens are for card numbers only")
            }
            // Such a token could itself pass for a card number of a brand without Luhn.
            TokenFormat::FormatPreserving
                if normalized.brand == Some(fieldseal_core::envelope::CardBrand::UnionPay) =>
            {
                Some("format-preserving tokens are not offered for UnionPay cards")
            }
            TokenFormat::Deterministic if values::low_entropy(kind) => Some(
                "deterministic tokens are not offered for kinds with few possible values: they \
                 would reveal the value to anyone able to tokenize",
            ),
            _ => None,
        };
        if unsupported.is_none()
            && format == TokenFormat::Deterministic
            && !caller.role.deterministic.contains(kind)
        {
            let r = Refusal::forbidden(&caller.role_name, "have deterministic tokens for", kind);
            return self.refuse(caller, Some(kind), env_detail, r).await;
        }
        if let Some(why) = unsupported {
            return self
                .refuse(
                    caller,
                    Some(kind),
                    env_detail,
                    Refusal::UnsupportedFormat(why),
                )
                .await;
        }
        let subject = match &item.subject {
            None => None,
            Some(id) => {
                let refusal = match crate::subjects::check_id(id) {
                    Err(r) => Some(r),
                    // Shared by every holder of the value: erasing one subject would take the
                    // others' token with it.
                    Ok(()) if format == TokenFormat::Deterministic => {
                        Some(Refusal::UnsupportedFormat(
                            "deterministic tokens are shared by every holder of the value: a \
                             subject's values get random or format-preserving tokens",
                        ))
                    }
                    Ok(()) => None,
                };
                if let Some(r) = refusal {
                    return self.refuse(caller, Some(kind), env_detail, r).await;
                }
                match self.subject_key_for(caller, id).await? {
                    Some((hash, key)) => Some((hash, key)),
                    None => {
                        return self
                            .refuse(caller, Some(kind), env_detail, Refusal::Internal)
                            .await;
                    }
                }
            }
        };
        let Some(newest) = self.secrets.lookup.newest() else {
            return self
                .refuse(caller, Some(kind), env_detail, Refusal::Internal)
                .await;
        };
        let mut lookup = Arc::clone(&newest);
        if format == TokenFormat::Deterministic {
            // Lookups accept every version: the value keeps the token it has under an older one
            // (stored with that version's fingerprint). The same number of lookups whether or not
            // one is found, and the same answer's form: tokens carry no version, and the
            // fingerprint answered is the newest version's either way, so the answer does not
            // tell whether the value was stored before the rotation.
            for older in self.secrets.lookup.newest_first().into_iter().skip(1) {
                let token = older.deterministic_token(kind, &normalized.value);
                if self
                    .store
                    .token(&token, now)
                    .await?
                    .is_some_and(|r| r.kind == kind.as_str())
                {
                    lookup = older;
                    break;
                }
            }
        }
        let (fingerprint, fingerprint_shown) = if values::low_entropy(kind) {
            (None, None)
        } else {
            let stored = lookup.fingerprint(kind, &normalized.value);
            let shown = if lookup.version == newest.version {
                stored.clone()
            } else {
                self.key_uses
                    .record("fingerprint", newest.fingerprint_name(), now);
                newest.fingerprint(kind, &normalized.value)
            };
            (Some(stored), Some(shown))
        };
        let expires_at = match self.policy().retention().expiry(
            kind,
            now,
            item.ttl_secs,
            self.settings.cvc_retention_secs,
        ) {
            Ok(e) => e,
            Err(r) => return self.refuse(caller, Some(kind), env_detail, r).await,
        };
        let pending = Pending {
            caller_actor: caller.actor(),
            caller_client: caller.client.to_string(),
            kind,
            format,
            normalized,
            fingerprint,
            fingerprint_shown,
            lookup,
            envelope: EnvelopeRef {
                created_at: h.created_at,
                id: h.id.0,
            },
            env_detail,
            expires_at,
            subject,
            now,
        };
        Ok(match self.build(&pending) {
            Ok(built) => Checked::Store(Box::new((pending, built))),
            Err(e) => Checked::Done(Err(Refusal::from_store(&e).into())),
        })
    }

    /// Draws a token for a pending item and encrypts its value, the whole row as associated data.
    pub(crate) fn build(&self, p: &Pending) -> Result<Built, StoreError> {
        let token = match p.format {
            TokenFormat::Random => values::random_token(),
            TokenFormat::FormatPreserving => p
                .normalized
                .value
                .expose_str()
                .and_then(values::format_preserving_token),
            TokenFormat::Deterministic => {
                Some(p.lookup.deterministic_token(p.kind, &p.normalized.value))
            }
        }
        .ok_or_else(|| StoreError::Database("token generation failed".into()))?;
        let kind = p.kind.as_str();
        let brand = p.normalized.brand.map(|b| b.as_str().to_owned());
        let (data_key_id, data_key) = self
            .secrets
            .data_keys
            .for_new_value()
            .ok_or_else(|| StoreError::Database("no data key loaded".into()))?;
        let uses = &self.key_uses;
        uses.record("data", &crate::datakeys::secret_name(data_key_id), p.now);
        if p.fingerprint.is_some() {
            uses.record("fingerprint", p.lookup.fingerprint_name(), p.now);
        }
        if p.format == TokenFormat::Deterministic {
            uses.record("deterministic", p.lookup.deterministic_name(), p.now);
        }
        let mut record = TokenRecord {
            token: token.clone(),
            kind: kind.into(),
            data_key_id,
            ciphertext: Vec::new(),
            fingerprint: p.fingerprint.clone().unwrap_or_default(),
            brand: brand.clone(),
            bin: p.normalized.bin.clone(),
            last4: p.normalized.last4.clone(),
            created_at: p.now,
            expires_at: p.expires_at,
            subject: p.subject.as_ref().map(|(hash, _)| hash.clone()),
            ended_in_log: false,
        };
        let key = p
            .subject
            .as_ref()
            .map_or(data_key.as_ref(), |(_, key)| key.as_ref());
        record.ciphertext = key
            .encrypt(p.normalized.value.expose(), &token_aad(&record))
            .map_err(|_| StoreError::Database("encryption failed".into()))?;
        let actor = || p.caller_actor.clone();
        let new = NewToken {
            token: record,
            envelope: p.envelope,
            audit: AuditDraft::new(p.now, actor(), Action::Tokenize, Outcome::Ok)
                .token(&token)
                .kind(kind)
                .envelope(p.envelope)
                .detail(format!("{}; format {:?}", p.env_detail, p.format))
                .from(&p.caller_client),
            replayed_audit: AuditDraft::new(p.now, actor(), Action::Tokenize, Outcome::Refused)
                .kind(kind)
                .detail(format!("replayed; {}", p.env_detail))
                .from(&p.caller_client),
        };
        let result = Tokenized {
            token,
            kind: kind.into(),
            format: p.format,
            fingerprint: p.fingerprint_shown.clone(),
            brand,
            bin: p.normalized.bin.clone(),
            last4: p.normalized.last4.clone(),
        };
        Ok(Built { new, result })
    }

    /// A random or format-preserving token collided with another value's: draw again.
    async fn retry_taken(
        &self,
        caller: &Caller,
        p: Pending,
    ) -> Result<Result<Tokenized, ItemError>, VaultError> {
        for _attempt in 0..15 {
            let built = match self.build(&p) {
                Ok(b) => b,
                Err(e) => return Ok(Err(Refusal::from_store(&e).into())),
            };
            match self.store.insert_tokens(vec![built.new]).await {
                Ok(o) => match o.first() {
                    Some(InsertOutcome::Inserted | InsertOutcome::Existing) => {
                        return Ok(Ok(built.result));
                    }
                    Some(InsertOutcome::Replayed) => return Ok(Err(Refusal::Replayed.into())),
                    _ => {}
                },
                Err(e @ (StoreError::AuditBroken(_) | StoreError::Tampered(_))) => {
                    return Err(e.into());
                }
                Err(e) => return Ok(Err(Refusal::from_store(&e).into())),
            }
        }
        match self
            .refuse(
                caller,
                Some(p.kind),
                p.env_detail,
                Refusal::TokenSpaceExhausted,
            )
            .await?
        {
            Checked::Done(r) => Ok(r),
            Checked::Store(_) => Ok(Err(Refusal::Internal.into())),
        }
    }

    /// Reads a token and authenticates its value: `None` if absent, expired, of an erased
    /// subject, or failing its integrity check (reported, and then treated as absent).
    async fn open_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<(TokenRecord, FieldKind, fieldseal_core::secret::SecretValue)>, VaultError>
    {
        if !values::plausible_token(token) {
            return Ok(None);
        }
        let Some(record) = self.store.token(token, now).await? else {
            return Ok(None);
        };
        if record.token != token {
            self.report_tampered(Some(token), &format!("token {token}"))
                .await?;
            return Ok(None);
        }
        let subject_key = match &record.subject {
            // An erased subject's key is gone: its tokens are as if never issued.
            Some(subject) => match self.stored_subject_key(subject).await? {
                Some(k) => Some(k),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(self
            .open_record(&record, subject_key.as_deref(), now)
            .await?
            .map(|(kind, value)| (record, kind, value)))
    }

    /// Authenticates and decrypts a stored token's value under its subject's key (`subject_key`,
    /// for a token that names a subject) or the data key its row names: `None` if past its kind's
    /// retention period, or failing its integrity check (reported).
    pub(crate) async fn open_record(
        &self,
        record: &TokenRecord,
        subject_key: Option<&fieldseal_core::at_rest::SymmetricKey>,
        now: i64,
    ) -> Result<Option<(FieldKind, fieldseal_core::secret::SecretValue)>, VaultError> {
        // Past its kind's retention period under the policy now in force (a period shortened
        // since the token was stored): expired, though the purge has not deleted it.
        if crate::retention::outlived(&self.policy(), &self.settings, record, now) {
            return Ok(None);
        }
        // A random token is never issued twice: a row the log says ended was put back.
        let put_back = record.ended_in_log && record.token.starts_with("tok_");
        // A subject's value is under the subject's key; any other under the data key its row names.
        let data_key = match subject_key {
            Some(_) => None,
            None => self.data_key(record.data_key_id).await?,
        };
        let key = subject_key.or(data_key.as_deref());
        let opened = record.kind.parse::<FieldKind>().ok().and_then(|kind| {
            (!put_back)
                .then_some(key)
                .flatten()
                .and_then(|key| key.decrypt(&record.ciphertext, &token_aad(record)).ok())
                .map(|value| (kind, value))
        });
        if opened.is_none() {
            self.report_tampered(Some(&record.token), &format!("token {}", record.token))
                .await?;
        }
        Ok(opened)
    }

    /// Loads the lookup key versions another node or the CLI made since (`keys rotate-lookup`).
    pub(crate) async fn load_lookup_keys(&self) -> Result<(), VaultError> {
        let added = self
            .secrets
            .lookup
            .load_new(&self.store, self.kek.as_ref())
            .await?;
        if added > 0 {
            tracing::info!(
                versions = ?self.secrets.lookup.loaded(),
                "new lookup key version loaded: new fingerprints, deterministic tokens and \
                 subject hashes use it"
            );
        }
        Ok(())
    }

    /// The metrics this vault counts.
    pub fn metrics(&self) -> &crate::metrics::Shared {
        &self.metrics
    }

    /// Reveal anomaly detection and the locks in force ([`crate::locks`]).
    pub(crate) fn reveal_watch(&self) -> &crate::locks::RevealWatch {
        &self.reveal_watch
    }

    /// The key of stored rows' MACs.
    pub(crate) fn row_key(&self) -> &fieldseal_vault_store::rows::RowKey {
        &self.secrets.row_key
    }

    /// The key of the audit log's MACs.
    pub(crate) fn audit_key(&self) -> &fieldseal_core::at_rest::SymmetricKey {
        &self.secrets.audit_key
    }

    /// The metrics text of a scrape: the counters, and what is read from the database now (the
    /// audit head, key ages and counts, locked operators).
    pub async fn metrics_text(&self) -> Result<String, VaultError> {
        let t = now();
        let mut state = crate::metrics::State {
            audit_head: self.store.audit_head().await?.map_or(0, |h| h.seq),
            pool: self.store.pool_use(),
            ..crate::metrics::State::default()
        };
        for k in self.store.hpke_keys().await? {
            state
                .key_ages
                .push(("hpke", k.kid.clone(), t.saturating_sub(k.created_at)));
        }
        let cached = self
            .data_key_records
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let data_keys = if cached.is_empty() {
            self.store.data_keys().await?
        } else {
            cached
        };
        for d in data_keys {
            let id = crate::datakeys::secret_name(d.id);
            state
                .key_ages
                .push(("data", id.clone(), t.saturating_sub(d.created_at)));
            state.data_key_encryptions.push((id, d.encryptions));
        }
        state.operators_locked = self
            .store
            .operators()
            .await?
            .iter()
            .filter(|o| o.locked_until.is_some_and(|u| u > t))
            .count()
            .try_into()
            .unwrap_or(i64::MAX);
        state.reveal_locks = self
            .reveal_locks()
            .await?
            .len()
            .try_into()
            .unwrap_or(i64::MAX);
        self.metrics.set_state(&state);
        self.metrics
            .encode()
            .map_err(|_| VaultError::Store(StoreError::Database("metrics not encoded".into())))
    }

    /// Counts one use of a key (`keys status`).
    pub(crate) fn count_key_use(&self, kind: &'static str, id: &str) {
        self.key_uses.record(kind, id, now());
    }

    /// Adds the key uses this node counted to the database (`keys status`).
    pub async fn flush_key_uses(&self) -> Result<(), StoreError> {
        self.key_uses.flush(&self.store).await
    }

    /// The data key of version `id`, for opening a value stored under it: loaded (unwrapped under
    /// the KEK) first if another node made it since; `None` if the database lists no such
    /// version (the row is then not one the vault wrote).
    pub(crate) async fn data_key(
        &self,
        id: i64,
    ) -> Result<Option<Arc<fieldseal_core::at_rest::SymmetricKey>>, VaultError> {
        let key = match self.secrets.data_keys.get(id) {
            Some(key) => Some(key),
            None => {
                self.secrets
                    .data_keys
                    .load_new(&self.store, self.kek.as_ref())
                    .await?;
                self.secrets.data_keys.get(id)
            }
        };
        if key.is_some() {
            self.key_uses
                .record("data", &crate::datakeys::secret_name(id), now());
        }
        Ok(key)
    }

    /// Key upkeep, every few seconds on every node: loads lookup key versions made elsewhere; adds
    /// this node's encryption count to the
    /// database, loads versions other nodes made, makes a new version when the newest has reached
    /// `data_key_max_encryptions`, and moves up to `reencrypt_batches` batches of
    /// `reencrypt_batch_size` values from older versions to the newest (logged with what is left).
    pub async fn maintain_data_keys(&self) -> Result<DataKeyProgress, VaultError> {
        if let Err(e) = self.flush_key_uses().await {
            tracing::warn!(error = %e, "could not record key uses (kept for the next try)");
        }
        // Lookup key versions another node or the CLI made (`keys rotate-lookup`) too: a failure
        // there is its own, and does not hold up the data keys.
        if let Err(e) = self.load_lookup_keys().await {
            tracing::error!(alert = "lookup_key_load_failed", error = %e, "could not load new lookup key versions; retried in 5 s");
        }
        let keys = &self.secrets.data_keys;
        keys.flush(&self.store).await?;
        let mut records = keys.load_new(&self.store, self.kek.as_ref()).await?;
        let newest = records.last().map_or(0, |r| r.id);
        let limit = i64::try_from(self.settings.data_key_max_encryptions).unwrap_or(i64::MAX);
        if records.last().is_some_and(|r| r.encryptions >= limit) {
            let why = format!("reached {limit} encryptions");
            let id = crate::datakeys::rotate(
                &self.store,
                self.kek.as_ref(),
                newest,
                (now(), Actor::Vault, &why),
            )
            .await?;
            tracing::info!(data_key = id, reason = %why, "data key rotated");
            records = keys.load_new(&self.store, self.kek.as_ref()).await?;
        }
        if let Ok(mut cached) = self.data_key_records.lock() {
            cached.clone_from(&records);
        }
        let mut progress = DataKeyProgress {
            current: keys.current().unwrap_or(0),
            ..DataKeyProgress::default()
        };
        for _ in 0..self.settings.reencrypt_batches.max(1) {
            let moved = self.reencrypt_batch(progress.current).await?;
            progress.moved += moved;
            if moved == 0 {
                break;
            }
        }
        if progress.moved > 0 {
            records = self.store.data_keys().await?;
        }
        progress.left = records
            .iter()
            .filter(|r| r.id < progress.current)
            .map(|r| r.values)
            .sum();
        if progress.moved > 0 {
            tracing::info!(
                data_key = progress.current,
                moved = progress.moved,
                left = progress.left,
                "re-encrypting values to the newest data key"
            );
        }
        Ok(progress)
    }

    /// Moves one batch of values under older data keys to `current`; returns how many moved.
    /// A value that fails its integrity check stays where it is (reveals report it).
    async fn reencrypt_batch(&self, current: i64) -> Result<u64, VaultError> {
        let batch = self.settings.reencrypt_batch_size.max(1);
        let Some(new_key) = self.data_key(current).await? else {
            return Ok(0);
        };
        let mut after = String::new();
        loop {
            let rows = self
                .store
                .tokens_to_reencrypt(current, &after, batch)
                .await?;
            let Some(last) = rows.last() else {
                return Ok(0);
            };
            after = last.token.clone();
            let mut moved = Vec::with_capacity(rows.len());
            for row in rows {
                let Some(old_key) = self.data_key(row.data_key_id).await? else {
                    continue;
                };
                let Ok(value) = old_key.decrypt(&row.ciphertext, &token_aad(&row)) else {
                    continue;
                };
                let mut next = TokenRecord {
                    data_key_id: current,
                    ciphertext: Vec::new(),
                    ..row.clone()
                };
                next.ciphertext = new_key
                    .encrypt(value.expose(), &token_aad(&next))
                    .map_err(|_| StoreError::Database("encryption failed".into()))?;
                self.secrets.data_keys.count(current, 1);
                moved.push(fieldseal_vault_store::Reencrypted {
                    token: row.token,
                    old_data_key_id: row.data_key_id,
                    old_ciphertext: row.ciphertext,
                    data_key_id: current,
                    ciphertext: next.ciphertext,
                });
            }
            if moved.is_empty() {
                // Every row of this page failed its check: look further.
                continue;
            }
            let audit = AuditDraft::new(now(), Actor::Vault, Action::DataKeyReencrypt, Outcome::Ok)
                .detail(format!("to data-key:{current}"));
            return Ok(self.store.reencrypt_tokens(moved, audit).await?);
        }
    }

    /// Reveals tokens for a stated purpose, as the caller's role allows. Every token's outcome is
    /// audited before any value is returned; a card security code revealed in the clear is deleted
    /// in the same transaction, and disclosed only if this request was the one that deleted it.
    pub async fn detokenize(
        &self,
        caller: &Caller,
        tokens: &[String],
        purpose: &str,
    ) -> Result<Vec<Result<Revealed, ItemError>>, VaultError> {
        let now = now();
        // One entry for the whole refused request: a locked caller's flood does not multiply the
        // log by its batch size.
        self.refuse_if_locked(caller, |why| {
            vec![
                caller
                    .draft(now, Action::Reveal, Outcome::Denied)
                    .purpose(purpose)
                    .detail(format!("{} tokens: {why}", tokens.len())),
            ]
        })
        .await?;
        let mut results = Vec::with_capacity(tokens.len());
        let mut audit = Vec::with_capacity(tokens.len());
        let mut consume = Vec::new();
        // What the caller is about to see, for the anomaly detector.
        let mut watched = Vec::with_capacity(tokens.len());
        let needs_step_up = caller.needs_step_up(now, self.settings.step_up_secs);
        let mut step_up_denied = Vec::new();
        for token in tokens {
            let base = audit_token(caller.draft(now, Action::Reveal, Outcome::NotFound), token)
                .purpose(purpose);
            let Some((_, kind, value)) = self.open_token(token, now).await? else {
                audit.push(base);
                results.push(Err(Refusal::NotFound.into()));
                continue;
            };
            let base = base.kind(kind.as_str());
            let reveal = caller.role.reveal(kind);
            if reveal == Reveal::Denied {
                audit.push(AuditDraft {
                    outcome: Outcome::Denied,
                    detail: format!("role {}", caller.role_name),
                    ..base
                });
                results.push(Err(
                    Refusal::forbidden(&caller.role_name, "reveal", kind).into()
                ));
                continue;
            }
            if reveal == Reveal::Plain && needs_step_up {
                step_up_denied.push(AuditDraft {
                    outcome: Outcome::Denied,
                    detail: format!("role {}: step-up required", caller.role_name),
                    ..base
                });
                continue;
            }
            let (outcome, label, shown) = match reveal {
                Reveal::Plain => (
                    Outcome::Plain,
                    "plain",
                    value.expose_str().unwrap_or_default().to_owned(),
                ),
                _ => (Outcome::Masked, "masked", values::mask(kind, &value)),
            };
            if reveal == Reveal::Plain && kind == FieldKind::Cvc {
                // A card security code is used once and never kept past its use.
                consume.push((audit.len(), token.clone()));
            }
            watched.push(crate::anomaly::Seen {
                kind,
                plain: reveal == Reveal::Plain,
                token: token.as_str(),
            });
            audit.push(AuditDraft { outcome, ..base });
            results.push(Ok(Revealed {
                token: token.clone(),
                kind: kind.as_str().into(),
                reveal: label,
                value: shown,
            }));
        }
        if !step_up_denied.is_empty() {
            // Nothing of the request is revealed: only the refusals are recorded.
            self.store
                .record_reveals(step_up_denied, Vec::new())
                .await?;
            return Err(VaultError::StepUpRequired);
        }
        if let Some(trip) = self.watch_reveals(caller, &watched, now) {
            // Nothing of the request is revealed: its reveals are recorded as refused, with the
            // reason, and the caller's lock in the same transaction.
            for entry in &mut audit {
                if matches!(entry.outcome, Outcome::Plain | Outcome::Masked) {
                    entry.outcome = Outcome::Denied;
                    entry.detail = format!("anomaly: {trip}");
                }
            }
            audit.push(Self::lock_entry(caller, &trip, now));
            self.store.record_reveals(audit, Vec::new()).await?;
            self.report_lock(caller, &trip).await?;
            return Err(VaultError::Locked);
        }
        let consumed = self.store.record_reveals(audit, consume.clone()).await?;
        for ((index, _), won) in consume.iter().zip(consumed) {
            if !won && let Some(slot) = results.get_mut(*index) {
                // Another request used it first: this one discloses nothing.
                *slot = Err(Refusal::NotFound.into());
            }
        }
        Ok(results)
    }

    /// Deletes a token if the caller's role may delete its kind.
    pub async fn delete(&self, caller: &Caller, token: &str) -> Result<DeleteOutcome, VaultError> {
        let now = now();
        let base = audit_token(caller.draft(now, Action::Delete, Outcome::NotFound), token);
        let Some((record, kind, _)) = self.open_token(token, now).await? else {
            self.store.append_audit(base).await?;
            return Ok(DeleteOutcome::NotFound);
        };
        let base = base.kind(&record.kind);
        if !caller.role.delete.contains(kind) {
            self.store
                .append_audit(AuditDraft {
                    outcome: Outcome::Denied,
                    detail: format!("role {}", caller.role_name),
                    ..base
                })
                .await?;
            return Ok(DeleteOutcome::Forbidden);
        }
        let existed = self
            .store
            .delete_token(
                token,
                AuditDraft {
                    outcome: Outcome::Ok,
                    ..base
                },
            )
            .await?;
        Ok(if existed {
            DeleteOutcome::Deleted
        } else {
            DeleteOutcome::NotFound
        })
    }

    /// Deletes what expired (TTLs, retention periods, card security codes) in audited batches
    /// (see [`fieldseal_vault_store::audit::PURGE_BATCH`]), then makes the deleted rows
    /// unrecoverable from the database's files.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let counts = self.store.purge(now()).await?;
        self.store.checkpoint().await?;
        Ok(counts)
    }
}

/// Records the token a caller named, if it looks like one of ours: a caller who sends a card
/// number where a token belongs must not put it in the audit log.
fn audit_token(draft: AuditDraft, token: &str) -> AuditDraft {
    if values::plausible_token(token) {
        draft.token(token)
    } else {
        draft.detail(format!("not a token ({} bytes)", token.len()))
    }
}

/// The outcome of checking one tokenize item.
pub(crate) enum Checked {
    /// Refused (already audited) or failed.
    Done(Result<Tokenized, ItemError>),
    /// Ready to store.
    Store(Box<(Pending, Built)>),
}

/// An item ready to store: its index in the batch, what was checked, and its token.
pub(crate) type PendingItem = (usize, Pending, Built);

/// A checked item with its token drawn and value encrypted.
pub(crate) struct Pending {
    caller_actor: Actor,
    /// Where the request came from, for the audit entries.
    caller_client: String,
    pub(crate) kind: FieldKind,
    format: TokenFormat,
    normalized: values::Normalized,
    fingerprint: Option<String>,
    /// The fingerprint answered: the newest lookup key version's.
    fingerprint_shown: Option<String>,
    /// The lookup key version of the stored fingerprint and a deterministic token.
    lookup: Arc<crate::lookup::LookupVersion>,
    envelope: EnvelopeRef,
    pub(crate) env_detail: String,
    expires_at: Option<i64>,
    /// The subject's hash and key, if the item names one.
    subject: Option<(String, Arc<fieldseal_core::at_rest::SymmetricKey>)>,
    now: i64,
}

/// A pending item's token: what to store and what to answer.
pub(crate) struct Built {
    pub(crate) new: NewToken,
    pub(crate) result: Tokenized,
}

/// What one round of data key upkeep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataKeyProgress {
    /// The newest data key version.
    pub current: i64,
    /// Values moved to it in this round.
    pub moved: u64,
    /// Values still under older versions.
    pub left: i64,
}

/// What `delete` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Gone.
    Deleted,
    /// No such token.
    NotFound,
    /// The role may not delete this kind.
    Forbidden,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::TokenizeItem;

    /// Whole numbers written as floats, with 16 and more significant digits too, are whole
    /// seconds (schemathesis found `2251799813685247.0` refused).
    #[test]
    fn ttl_secs_written_as_floats() {
        for (text, secs) in [
            ("60.0", 60),
            ("2251799813685247.0", 2_251_799_813_685_247),
            ("3606518446991978.0", 3_606_518_446_991_978),
            ("9007199254740992.0", 9_007_199_254_740_992),
        ] {
            let item: TokenizeItem =
                serde_json::from_str(&format!(r#"{{"envelope":"x","ttl_secs":{text}}}"#)).unwrap();
            assert_eq!(item.ttl_secs, Some(secs), "{text}");
        }
        assert!(
            serde_json::from_str::<TokenizeItem>(r#"{"envelope":"x","ttl_secs":60.5}"#).is_err()
        );
    }
}

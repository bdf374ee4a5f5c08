//! The vault's operations, independent of HTTP: authenticate, tokenize, detokenize, delete.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fieldseal_core::envelope::{Envelope, FieldKind, OpenError, Opened};
use serde::{Deserialize, Serialize};

use crate::apikeys;
use crate::audit::{AuditDraft, AuditRecord, Verification};
use crate::config::Settings;
use crate::keys::{self, DATA_KEY_ID, KekProvider, KeyError, KeyRing, LocalKek, Secrets};
use crate::policy::{Policy, Reveal, Role};
use crate::sqlite::SqliteStore;
use crate::store::{InsertOutcome, NewToken, Store, StoreError, TokenRecord};
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
    #[error("unsupported database URL (expected sqlite://PATH): {0}")]
    DatabaseUrl(String),
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
}

impl Caller {
    /// The actor string in audit entries.
    pub fn actor(&self) -> String {
        format!("apikey:{}", self.key_id)
    }
}

/// Why a caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No, malformed, unknown or revoked API key.
    Unauthenticated,
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
}

/// A per-item error.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemError {
    /// Stable code.
    pub code: String,
    /// Human-readable message; never holds a value.
    pub message: String,
}

impl ItemError {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
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
    policy: Policy,
    kek: Box<dyn KekProvider>,
    secrets: Secrets,
    ring: RwLock<Arc<KeyRing>>,
    last_reload: std::sync::Mutex<Instant>,
}

/// The KEK the settings name: the `master_key` value, else the key file.
pub fn kek_from_settings(settings: &Settings) -> Result<Box<dyn KekProvider>, KeyError> {
    match &settings.master_key {
        Some(text) => Ok(Box::new(LocalKek::from_base64(
            text,
            "FIELDSEAL_MASTER_KEY",
        )?)),
        None => Ok(Box::new(LocalKek::from_file(&settings.master_key_file())?)),
    }
}

/// Opens the store the settings name (`sqlite://` URLs).
pub async fn open_store(settings: &Settings) -> Result<SqliteStore, VaultError> {
    let url = settings.database_url();
    if !url.starts_with("sqlite://") {
        return Err(VaultError::DatabaseUrl(url));
    }
    let store = SqliteStore::open_url(&url, settings.sqlite_synchronous)?;
    store.migrate().await?;
    Ok(store)
}

impl Vault<SqliteStore> {
    /// Opens an initialized vault as the settings describe.
    pub async fn open(settings: Settings) -> Result<Self, VaultError> {
        let store = open_store(&settings).await?;
        let kek = kek_from_settings(&settings)?;
        let policy = Policy::load(settings.policy_file.as_deref())?;
        Self::with_store(store, settings, policy, kek).await
    }
}

impl<S: Store> Vault<S> {
    /// Opens a vault over any store.
    pub async fn with_store(
        store: S,
        settings: Settings,
        policy: Policy,
        kek: Box<dyn KekProvider>,
    ) -> Result<Self, VaultError> {
        let secrets = keys::load_secrets(&store, kek.as_ref()).await?;
        let ring = KeyRing::load(&store, kek.as_ref()).await?;
        Ok(Self {
            store,
            settings,
            policy,
            kek,
            secrets,
            ring: RwLock::new(Arc::new(ring)),
            last_reload: std::sync::Mutex::new(Instant::now()),
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reloads the HPKE keys from storage (after `keys rotate` or `retire` by another process).
    pub async fn reload_keys(&self) -> Result<(), VaultError> {
        let ring = KeyRing::load(&self.store, self.kek.as_ref()).await?;
        match self.ring.write() {
            Ok(mut r) => *r = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
        if let Ok(mut t) = self.last_reload.lock() {
            *t = Instant::now();
        }
        Ok(())
    }

    /// Reloads keys unless that happened in the last second (unknown key ids trigger it).
    async fn reload_keys_rate_limited(&self) {
        let due = self
            .last_reload
            .lock()
            .map(|t| t.elapsed() >= Duration::from_secs(1))
            .unwrap_or(true);
        if due && let Err(e) = self.reload_keys().await {
            tracing::warn!(error = %e, "key reload failed");
        }
    }

    /// The key set document served at `GET /v1/keys`.
    pub fn key_set_json(&self) -> Option<String> {
        let now = u64::try_from(now()).unwrap_or(0);
        self.ring().key_set(now).map(|ks| ks.to_json())
    }

    /// Authenticates an `Authorization` header value. Failures are audited.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let presented = header.and_then(apikeys::parse);
        let found = match &presented {
            Some(p) => self.store.api_key(&p.id).await.ok().flatten(),
            None => None,
        };
        if let (Some(p), Some(k)) = (&presented, &found)
            && p.matches(&k.digest)
            && k.revoked_at.is_none()
            && let Some(role) = self.policy.role(&k.role)
        {
            return Ok(Caller {
                key_id: k.id.clone(),
                role_name: k.role.clone(),
                role: role.clone(),
            });
        }
        let (actor, detail) = match (&presented, &found) {
            (None, _) => ("anonymous".to_owned(), "missing or malformed API key"),
            (Some(p), None) => (format!("apikey:{}", p.id), "unknown API key"),
            (Some(p), Some(k)) if k.revoked_at.is_some() => {
                (format!("apikey:{}", p.id), "revoked API key")
            }
            (Some(p), Some(k)) if self.policy.role(&k.role).is_none() => {
                (format!("apikey:{}", p.id), "role not in policy")
            }
            (Some(p), Some(_)) => (format!("apikey:{}", p.id), "wrong secret"),
        };
        let audit = AuditDraft::new(now(), &actor, "auth", "denied").detail(detail);
        if let Err(e) = self.store.append_audit(audit).await {
            tracing::error!(error = %e, "audit append failed for an authentication failure");
        }
        Err(AuthError::Unauthenticated)
    }

    /// Audits an endpoint-level denial (the role has no permission of the needed sort).
    pub async fn audit_denial(
        &self,
        caller: &Caller,
        action: &str,
        why: &str,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(
                AuditDraft::new(now(), &caller.actor(), action, "denied")
                    .detail(format!("role {}: {why}", caller.role_name)),
            )
            .await
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
                AuditDraft::new(now(), &caller.actor(), "audit.read", "ok")
                    .detail(format!("after {after} limit {limit}")),
            )
            .await?;
        self.store.audit_log(after, limit).await
    }

    /// Verifies the audit chain and its anchored head; audited as `audit.verify` first.
    pub async fn verify_audit(&self, caller: &Caller) -> Result<Verification, StoreError> {
        self.store
            .append_audit(AuditDraft::new(
                now(),
                &caller.actor(),
                "audit.verify",
                "ok",
            ))
            .await?;
        crate::audit::verify_chain(&self.store, &self.secrets.audit_key).await
    }

    /// Tokenizes a batch; one result per item, in order.
    pub async fn tokenize(
        &self,
        caller: &Caller,
        items: Vec<TokenizeItem>,
    ) -> Result<Vec<Result<Tokenized, ItemError>>, StoreError> {
        // Opening costs one ECDH per envelope: done off the async workers.
        let ring = self.ring();
        let texts: Vec<String> = items.iter().map(|i| i.envelope.clone()).collect();
        let mut opened = tokio::task::spawn_blocking(move || {
            texts
                .iter()
                .map(|t| ring.opener().open(t))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| StoreError::Database(format!("open task failed: {e}")))?;
        if opened
            .iter()
            .any(|r| matches!(r, Err(OpenError::UnknownKey)))
        {
            // A key rotated by another process may not be loaded yet.
            self.reload_keys_rate_limited().await;
            let ring = self.ring();
            for (slot, item) in opened.iter_mut().zip(&items) {
                if matches!(slot, Err(OpenError::UnknownKey)) {
                    *slot = ring.opener().open(&item.envelope);
                }
            }
        }
        // Check every item; those that pass are stored together in one transaction.
        let mut out: Vec<Option<Result<Tokenized, ItemError>>> = Vec::with_capacity(items.len());
        let mut pending: Vec<(usize, Pending, Built)> = Vec::new();
        for (i, (item, result)) in items.iter().zip(opened).enumerate() {
            match self.check_item(caller, item, result).await {
                Checked::Done(r) => out.push(Some(r)),
                Checked::Store(ready) => {
                    let (p, built) = *ready;
                    out.push(None);
                    pending.push((i, p, built));
                }
            }
        }
        if !pending.is_empty() {
            let batch: Vec<NewToken> = pending.iter().map(|(_, _, b)| b.new.clone()).collect();
            match self.store.insert_tokens(batch).await {
                Ok(outcomes) => {
                    for ((i, p, built), outcome) in pending.into_iter().zip(outcomes) {
                        out[i] = Some(match outcome {
                            InsertOutcome::Inserted | InsertOutcome::Existing => Ok(built.result),
                            InsertOutcome::Replayed => Err(replayed()),
                            InsertOutcome::TokenTaken => self.retry_taken(caller, p).await,
                        });
                    }
                }
                // Nothing of the batch was kept (envelope ids included): all can be resubmitted.
                Err(e) => {
                    for (i, _, _) in pending {
                        out[i] = Some(Err(storage_item_error(&e)));
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ItemError::new("internal", "no result"))))
            .collect())
    }

    async fn refuse(
        &self,
        caller: &Caller,
        kind: Option<FieldKind>,
        detail: String,
        err: ItemError,
    ) -> Checked {
        let mut audit = refusal_audit(caller, &err, &detail);
        if let Some(k) = kind {
            audit = audit.kind(k.as_str());
        }
        if let Err(e) = self.store.append_audit(audit).await {
            // The refusal stands even if it cannot be recorded; nothing was disclosed or stored.
            tracing::error!(error = %e, code = %err.code, "could not audit a refused envelope");
        }
        Checked::Done(Err(err))
    }

    /// Opens, checks and prepares one item: a refusal (audited), or a token ready to store.
    async fn check_item(
        &self,
        caller: &Caller,
        item: &TokenizeItem,
        result: Result<Opened, OpenError>,
    ) -> Checked {
        let opened = match result {
            Ok(o) => o,
            Err(e) => {
                let (code, message) = open_error(&e);
                // Only the parsed header's public id is logged, and only for parsed envelopes.
                let id = Envelope::parse(&item.envelope)
                    .map(|env| format!("envelope {}", env.header().id.to_hex()))
                    .unwrap_or_else(|_| "unparsed envelope".into());
                return self
                    .refuse(caller, None, id, ItemError::new(code, message))
                    .await;
            }
        };
        let h = &opened.header;
        let kind = h.kind;
        let now = now();
        let created = i64::try_from(h.created_at).unwrap_or(i64::MAX);
        let window = i64::try_from(self.settings.freshness_window_secs).unwrap_or(i64::MAX);
        let skew = i64::try_from(self.settings.clock_skew_secs).unwrap_or(i64::MAX);
        let env_detail = format!("envelope {}", h.id.to_hex());
        if created < now.saturating_sub(window) {
            let e = ItemError::new("stale", format!("envelope is older than {window} seconds"));
            return self.refuse(caller, Some(kind), env_detail, e).await;
        }
        if created > now.saturating_add(skew) {
            let e = ItemError::new("future_dated", "envelope creation time is in the future");
            return self.refuse(caller, Some(kind), env_detail, e).await;
        }
        if !caller.role.tokenize.contains(kind) {
            let e = ItemError::new(
                "forbidden",
                format!("role {} may not tokenize {kind}", caller.role_name),
            );
            return self.refuse(caller, Some(kind), env_detail, e).await;
        }
        let normalized =
            match values::normalize(kind, &opened.value, u64::try_from(now).unwrap_or(0)) {
                Ok(n) => n,
                Err(e) => {
                    let e = ItemError::new(e.code(), e.to_string());
                    return self.refuse(caller, Some(kind), env_detail, e).await;
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
        if let Some(why) = unsupported {
            let e = ItemError::new("unsupported_format", why);
            return self.refuse(caller, Some(kind), env_detail, e).await;
        }
        let fingerprint = (!values::low_entropy(kind))
            .then(|| values::fingerprint(&self.secrets.fingerprint_key, kind, &normalized.value));
        let replay_until = created
            .saturating_add(window)
            .saturating_add(skew)
            .max(now + 1);
        let expires_at = (kind == FieldKind::Cvc).then(|| {
            now.saturating_add(i64::try_from(self.settings.cvc_retention_secs).unwrap_or(0))
        });
        let pending = Pending {
            caller_actor: caller.actor(),
            kind,
            format,
            normalized,
            fingerprint,
            envelope_id: h.id.0,
            env_detail,
            replay_until,
            expires_at,
            now,
        };
        match self.build(&pending) {
            Ok(built) => Checked::Store(Box::new((pending, built))),
            Err(e) => Checked::Done(Err(storage_item_error(&e))),
        }
    }

    /// Draws a token for a pending item and encrypts its value under it.
    fn build(&self, p: &Pending) -> Result<Built, StoreError> {
        let token = match p.format {
            TokenFormat::Random => values::random_token(),
            TokenFormat::FormatPreserving => p
                .normalized
                .value
                .expose_str()
                .and_then(values::format_preserving_token),
            TokenFormat::Deterministic => Some(values::deterministic_token(
                &self.secrets.deterministic_key,
                p.kind,
                &p.normalized.value,
            )),
        }
        .ok_or_else(|| StoreError::Database("token generation failed".into()))?;
        let ciphertext = self
            .secrets
            .data_key
            .encrypt(p.normalized.value.expose(), token.as_bytes())
            .map_err(|_| StoreError::Database("encryption failed".into()))?;
        let kind = p.kind.as_str();
        let brand = p.normalized.brand.map(|b| b.as_str().to_owned());
        let new = NewToken {
            token: TokenRecord {
                token: token.clone(),
                kind: kind.into(),
                data_key_id: DATA_KEY_ID,
                ciphertext,
                fingerprint: p.fingerprint.clone().unwrap_or_default(),
                brand: brand.clone(),
                bin: p.normalized.bin.clone(),
                last4: p.normalized.last4.clone(),
                created_at: p.now,
                expires_at: p.expires_at,
            },
            envelope_id: p.envelope_id,
            replay_until: p.replay_until,
            audit: AuditDraft::new(p.now, &p.caller_actor, "tokenize", "ok")
                .token(&token)
                .kind(kind)
                .detail(format!("{}; format {:?}", p.env_detail, p.format)),
            replayed_audit: AuditDraft::new(p.now, &p.caller_actor, "tokenize", "refused")
                .kind(kind)
                .detail(format!("replayed; {}", p.env_detail)),
        };
        let result = Tokenized {
            token,
            kind: kind.into(),
            format: p.format,
            fingerprint: p.fingerprint.clone(),
            brand,
            bin: p.normalized.bin.clone(),
            last4: p.normalized.last4.clone(),
        };
        Ok(Built { new, result })
    }

    /// A random or format-preserving token collided with another value's: draw again.
    async fn retry_taken(&self, caller: &Caller, p: Pending) -> Result<Tokenized, ItemError> {
        for _attempt in 0..15 {
            let built = self.build(&p).map_err(|e| storage_item_error(&e))?;
            match self.store.insert_tokens(vec![built.new]).await {
                Ok(o) => match o.first() {
                    Some(InsertOutcome::Inserted | InsertOutcome::Existing) => {
                        return Ok(built.result);
                    }
                    Some(InsertOutcome::Replayed) => return Err(replayed()),
                    _ => {}
                },
                Err(e) => return Err(storage_item_error(&e)),
            }
        }
        let e = ItemError::new(
            "token_space_exhausted",
            "no free format-preserving token for this number; use a random token",
        );
        match self.refuse(caller, Some(p.kind), p.env_detail, e).await {
            Checked::Done(r) => r,
            Checked::Store(_) => Err(ItemError::new("internal", "no result")),
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
    ) -> Result<Vec<Result<Revealed, ItemError>>, StoreError> {
        let now = now();
        let mut results = Vec::with_capacity(tokens.len());
        let mut audit = Vec::with_capacity(tokens.len());
        let mut consume = Vec::new();
        for token in tokens {
            let base = audit_token(AuditDraft::new(now, &caller.actor(), "reveal", ""), token)
                .purpose(purpose);
            let record = if values::plausible_token(token) {
                self.store.token(token, now).await?
            } else {
                None
            };
            let Some(record) = record else {
                audit.push(AuditDraft {
                    outcome: "not_found".into(),
                    ..base
                });
                results.push(Err(ItemError::new("not_found", "no such token")));
                continue;
            };
            let Ok(kind) = record.kind.parse::<FieldKind>() else {
                return Err(StoreError::Database(format!(
                    "token {token} has an unknown kind"
                )));
            };
            let base = base.kind(kind.as_str());
            let reveal = caller.role.reveal(kind);
            if reveal == Reveal::Denied {
                audit.push(AuditDraft {
                    outcome: "denied".into(),
                    detail: format!("role {}", caller.role_name),
                    ..base
                });
                results.push(Err(ItemError::new(
                    "forbidden",
                    format!("role {} may not reveal {kind}", caller.role_name),
                )));
                continue;
            }
            let Ok(value) = self
                .secrets
                .data_key
                .decrypt(&record.ciphertext, token.as_bytes())
            else {
                audit.push(AuditDraft {
                    outcome: "error".into(),
                    detail: "stored value failed authentication".into(),
                    ..base
                });
                results.push(Err(ItemError::new(
                    "integrity_error",
                    "the stored value failed its integrity check",
                )));
                continue;
            };
            let (label, shown) = match reveal {
                Reveal::Plain => ("plain", value.expose_str().unwrap_or_default().to_owned()),
                _ => ("masked", values::mask(kind, &value)),
            };
            if reveal == Reveal::Plain && kind == FieldKind::Cvc {
                // A card security code is used once and never kept past its use.
                consume.push((audit.len(), token.clone()));
            }
            audit.push(AuditDraft {
                outcome: label.into(),
                ..base
            });
            results.push(Ok(Revealed {
                token: token.clone(),
                kind: kind.as_str().into(),
                reveal: label,
                value: shown,
            }));
        }
        let consumed = self.store.record_reveals(audit, consume.clone()).await?;
        for ((index, _), won) in consume.iter().zip(consumed) {
            if !won && let Some(slot) = results.get_mut(*index) {
                // Another request used it first: this one discloses nothing.
                *slot = Err(ItemError::new("not_found", "no such token"));
            }
        }
        Ok(results)
    }

    /// Deletes a token if the caller's role may delete its kind.
    pub async fn delete(&self, caller: &Caller, token: &str) -> Result<DeleteOutcome, StoreError> {
        let now = now();
        let base = audit_token(AuditDraft::new(now, &caller.actor(), "delete", ""), token);
        let record = if values::plausible_token(token) {
            self.store.token(token, now).await?
        } else {
            None
        };
        let Some(record) = record else {
            self.store
                .append_audit(AuditDraft {
                    outcome: "not_found".into(),
                    ..base
                })
                .await?;
            return Ok(DeleteOutcome::NotFound);
        };
        let kind: Option<FieldKind> = record.kind.parse().ok();
        let allowed = kind.is_some_and(|k| caller.role.delete.contains(k));
        let base = base.kind(&record.kind);
        if !allowed {
            self.store
                .append_audit(AuditDraft {
                    outcome: "denied".into(),
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
                    outcome: "ok".into(),
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

    /// Deletes expired card security codes and old replay ids.
    pub async fn purge(&self) -> Result<(u64, u64), StoreError> {
        self.store.purge(now()).await
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
enum Checked {
    /// Refused (already audited) or failed.
    Done(Result<Tokenized, ItemError>),
    /// Ready to store.
    Store(Box<(Pending, Built)>),
}

/// A checked item with its token drawn and value encrypted.
struct Pending {
    caller_actor: String,
    kind: FieldKind,
    format: TokenFormat,
    normalized: values::Normalized,
    fingerprint: Option<String>,
    envelope_id: [u8; 16],
    env_detail: String,
    replay_until: i64,
    expires_at: Option<i64>,
    now: i64,
}

/// A pending item's token: what to store and what to answer.
struct Built {
    new: NewToken,
    result: Tokenized,
}

fn replayed() -> ItemError {
    ItemError::new("replayed", "this envelope was already submitted")
}

fn refusal_audit(caller: &Caller, err: &ItemError, detail: &str) -> AuditDraft {
    AuditDraft::new(now(), &caller.actor(), "tokenize", "refused")
        .detail(format!("{}; {detail}", err.code))
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

/// The per-item error for a storage failure.
fn storage_item_error(e: &StoreError) -> ItemError {
    match e {
        StoreError::Full => ItemError::new(
            "storage_full",
            "the vault's storage is full; this envelope was not stored and can be submitted again",
        ),
        StoreError::Busy => ItemError::new(
            "storage_busy",
            "the vault's storage is busy; this envelope was not stored and can be submitted again",
        ),
        StoreError::Database(detail) => {
            tracing::error!(error = %detail, "storage error");
            ItemError::new("internal", "internal error; this envelope was not stored")
        }
    }
}

/// The stable code and message of an opening failure.
fn open_error(e: &OpenError) -> (&'static str, String) {
    match e {
        OpenError::UnknownKey => (
            "unknown_key",
            "envelope is sealed to a key this vault does not hold (unknown or retired)".into(),
        ),
        OpenError::Authentication => (
            "authentication_failed",
            "envelope failed authentication".into(),
        ),
        OpenError::HintMismatch => (
            "hint_mismatch",
            "envelope hints do not match its value".into(),
        ),
        OpenError::Parse(p) => ("malformed_envelope", format!("malformed envelope: {p}")),
        _ => ("malformed_envelope", "malformed envelope".into()),
    }
}

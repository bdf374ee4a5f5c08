//! Operators: people, separate from service API keys. An operator has a name, a role of the
//! policy, a password (stored as an Argon2id hash) and a TOTP secret (RFC 6238; stored encrypted
//! under a key derived from the row key). Enrolment (`operator add`, `operator reset`) shows the
//! password and the `otpauth://` URI once.
//!
//! Signing in with name, password and a current TOTP code gives a session: a random token
//! (`fso_` and 256 bits in base64url) stored only as its SHA-256, ending after
//! `session_idle_secs` without a request or `session_max_secs` after the sign-in. A code is
//! accepted once (the last step used is kept in the operator's row). `operator_lockout_attempts`
//! failed sign-ins in a row lock the operator for `operator_lockout_secs`, audited; a locked
//! operator is refused even with the right password. A plain reveal needs a second factor
//! entered within `step_up_secs` (the sign-in's, or a later step-up's).
//!
//! Operator and session rows carry MACs under the row key like API key rows: a database writer
//! without the KEK can neither add an operator, change one's role, password, lock or last code,
//! nor make a session. What the MAC cannot tell is whether a row is the newest: putting back an
//! operator's own older row (taken before a lock, a disable or a reset) is not detected yet (see
//! docs/threat-model.md).

use std::sync::OnceLock;

use base64ct::{Base64UrlUnpadded, Encoding};
use fieldseal_core::at_rest::{random_bytes, sha256};
use fieldseal_core::encoding::hex;
use fieldseal_core::operator::{Password, STEP_SECS, TotpSecret, hash_password, verify_password};
use fieldseal_vault_store::audit::{Action, Actor, AuditDraft, Outcome};
use fieldseal_vault_store::records::totp_aad;
use fieldseal_vault_store::rows::RowKey;
use fieldseal_vault_store::{OperatorRecord, SessionRecord, Store, StoreError};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::client::ClientAddr;
use crate::denials::Record;
use crate::vault::{AuthError, Caller, Vault, now};

/// The recognisable prefix of a session token.
pub const SESSION_PREFIX: &str = "fso_";
/// The cookie a session is given in.
pub const SESSION_COOKIE: &str = "fieldseal_session";
/// The issuer named in enrolment URIs.
pub const ISSUER: &str = "fieldseal";

/// Whether `name` is a valid operator name: 1 to 64 of `a-z`, `0-9`, `.`, `_`, `-`, starting
/// with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// What an operator is shown once at enrolment: the password and the TOTP enrolment URI.
/// `Debug` hides both.
pub struct Enrolment {
    /// The operator's name.
    pub name: String,
    /// The password.
    pub password: Password,
    /// `otpauth://totp/fieldseal:NAME?secret=...`.
    pub totp_uri: Zeroizing<String>,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Enrolment({}, [REDACTED])", self.name)
    }
}

/// New credentials for `name` at `generation`: the enrolment to show, and the password hash and
/// encrypted TOTP secret to store.
pub(crate) fn new_credentials(
    row_key: &RowKey,
    name: &str,
    generation: i64,
) -> Option<(Enrolment, String, Vec<u8>)> {
    let password = Password::generate().ok()?;
    let hash = hash_password(&password).ok()?;
    let secret = TotpSecret::generate().ok()?;
    let wrapped = row_key
        .totp_key()
        .encrypt(secret.expose(), &totp_aad(name, generation))
        .ok()?;
    let totp_uri = secret.otpauth_uri(ISSUER, name);
    Some((
        Enrolment {
            name: name.into(),
            password,
            totp_uri,
        },
        hash,
        wrapped,
    ))
}

/// An operator's TOTP secret encrypted again for `generation` (the secret is bound to the
/// operator's name and generation): for a change that ends the sessions but keeps the
/// credentials. `None` if the stored secret does not open.
pub(crate) fn rewrap_totp(
    row_key: &RowKey,
    row: &OperatorRecord,
    generation: i64,
) -> Option<Vec<u8>> {
    let key = row_key.totp_key();
    let secret = key
        .decrypt(&row.totp_wrapped, &totp_aad(&row.name, row.generation))
        .ok()?;
    key.encrypt(secret.expose(), &totp_aad(&row.name, generation))
        .ok()
}

/// A session token as presented. `Debug` hides it.
pub struct SessionToken(Zeroizing<String>);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([REDACTED])")
    }
}

impl SessionToken {
    /// A new random token.
    fn generate() -> Option<Self> {
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(random_bytes().ok()?);
        Some(Self(Zeroizing::new(format!(
            "{SESSION_PREFIX}{}",
            Base64UrlUnpadded::encode_string(bytes.as_ref())
        ))))
    }

    /// Parses `fso_` and 43 base64url characters.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(SESSION_PREFIX)?;
        (rest.len() == 43
            && rest
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
        .then(|| Self(Zeroizing::new(text.to_owned())))
    }

    /// The token, to give to the operator once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored id: SHA-256 of the token, hex.
    pub fn id(&self) -> String {
        hex(&sha256(self.0.as_bytes()))
    }
}

/// A session given at sign-in.
#[derive(Debug)]
pub struct NewSession {
    /// The token (cookie or bearer).
    pub token: SessionToken,
    /// The operator.
    pub operator: String,
    /// Its role.
    pub role: String,
    /// When the session ends at the latest.
    pub expires_at: i64,
    /// Seconds without a request after which it ends.
    pub idle_secs: u64,
    /// Until when a plain reveal needs no step-up.
    pub step_up_until: i64,
}

/// An operator's session, as the caller of a request.
#[derive(Debug, Clone)]
pub struct OperatorCaller {
    /// The operator's name.
    pub name: String,
    /// The session id (SHA-256 of the token).
    pub session_id: String,
    /// When a second factor was last entered.
    pub step_up_at: i64,
}

/// Why a sign-in or step-up was refused.
#[derive(Debug)]
pub enum SignInError {
    /// Unknown or disabled operator, wrong password, wrong, stale or used code (one answer for
    /// all).
    Failed,
    /// The operator is locked (seconds left).
    Locked(u64),
    /// The address failed too often this minute (seconds to wait).
    Throttled(u64),
    /// Every password-check slot is taken (a flood of sign-ins): retry in a second.
    Busy,
    /// The caller is not an operator session (step-up).
    NotOperator,
    /// Storage.
    Store(StoreError),
}

impl From<StoreError> for SignInError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A hash to verify against when the operator does not exist, so that the time taken does not
/// tell unknown names from wrong passwords.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&Password::new("not a password".into())).unwrap_or_default())
}

/// Password checks running at once, at most one per core: each takes tens of milliseconds and
/// about 19 MiB (Argon2id), so a flood of sign-ins must not queue them without bound.
fn password_checks() -> &'static Semaphore {
    static CHECKS: OnceLock<Semaphore> = OnceLock::new();
    CHECKS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
    })
}

/// How long a sign-in waits for a password-check slot before it is refused (`sign_in_busy`).
const PASSWORD_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks a password off the async workers; `None` when no slot came free within
/// [`PASSWORD_SLOT_WAIT`] (a flood of sign-ins: refused rather than queued without bound; a
/// waiting request holds no Argon2id memory).
async fn check_password(password: Password, hash: String) -> Option<bool> {
    let permit = tokio::time::timeout(PASSWORD_SLOT_WAIT, password_checks().acquire())
        .await
        .ok()?
        .ok()?;
    Some(
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            verify_password(&password, &hash)
        })
        .await
        .unwrap_or(false),
    )
}

/// A lock longer than this (about 100 years) is an administrator's (`operator lock`), lifted only
/// by `operator reset`.
pub const LOCKED_BY_ADMIN_SECS: u64 = 100 * 365 * 86_400;

/// Until when `operator lock` locks: far past [`LOCKED_BY_ADMIN_SECS`].
pub(crate) const LOCKED_BY_ADMIN_UNTIL: i64 = i64::MAX / 4;

pub(crate) fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX / 4)
}

/// The generation a disable or reset gives a row: past both the row's and every bump the log
/// records, so that the changed row agrees with the log even if the one read was put back.
pub(crate) fn next_generation(r: &OperatorRecord) -> i64 {
    r.generation
        .max(r.log.generation_bumps.saturating_add(1))
        .saturating_add(1)
}

impl<S: Store> Vault<S> {
    /// An operator's row if it is authentic (a row failing its MAC is reported and treated as
    /// absent).
    async fn authentic_operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        let Some(row) = self.store().operator(name).await? else {
            return Ok(None);
        };
        if !self.secrets().row_key.operator_ok(&row) {
            self.report_tampered(None, &format!("operator {name}"))
                .await?;
            return Ok(None);
        }
        // Authentic, but an older version than the log allows: put back from a copy taken before
        // a disable, a reset or a lock (which that would undo).
        if let Some(why) = row.contradicts_log() {
            self.report_tampered(None, &format!("operator {name} (row {why})"))
                .await?;
            return Ok(None);
        }
        Ok(Some(row))
    }

    /// Checks a TOTP code against an operator's secret: the step it matched, if later than the
    /// last one used.
    fn check_code(&self, row: &OperatorRecord, code: &str, t: i64) -> Option<u64> {
        let secret = self
            .secrets()
            .row_key
            .totp_key()
            .decrypt(&row.totp_wrapped, &totp_aad(&row.name, row.generation))
            .ok()?;
        let secret = TotpSecret::from_bytes(secret.expose());
        let last = row.last_totp_step.and_then(|s| u64::try_from(s).ok());
        secret.verify(code, u64::try_from(t).unwrap_or(0), last)
    }

    /// Records a failed sign-in or step-up on the operator's row: the count, and the lock when it
    /// reaches `operator_lockout_attempts`, with their audit entries in the same write. Whether
    /// the row was still as read (else the caller reads it again).
    async fn record_failure(
        &self,
        row: &OperatorRecord,
        action: Action,
        client: &ClientAddr,
        t: i64,
    ) -> Result<bool, StoreError> {
        let s = self.settings();
        let attempts = row.failed_attempts.saturating_add(1);
        let limit = i64::from(s.operator_lockout_attempts.max(1));
        let lock = attempts >= limit;
        let mut audit = vec![
            AuditDraft::new(
                t,
                Actor::Operator(row.name.clone()),
                action,
                Outcome::Denied,
            )
            .detail(match lock {
                false => format!("wrong password or code (failure {attempts} of {limit})"),
                true => format!(
                    "wrong password or code (failure {attempts} of {limit}: locked until {})",
                    t.saturating_add(secs(s.operator_lockout_secs).max(1))
                ),
            })
            .from(client),
        ];
        let locked_until = lock.then(|| t.saturating_add(secs(s.operator_lockout_secs).max(1)));
        if let Some(until) = locked_until {
            // The detail is exactly `operator NAME` (the log is read with the row: index
            // `audit_operators`); the denial just before says why and until when.
            audit.push(
                AuditDraft::new(t, Actor::Vault, Action::OperatorLock, Outcome::Ok)
                    .detail(format!("operator {}", row.name)),
            );
            tracing::warn!(alert = "operator_locked", operator = %row.name, until, "operator locked after failed sign-ins");
            self.alert(crate::alerts::Alert::new(
                crate::alerts::AlertKind::Lockout,
                format!("operator:{}", row.name),
                format!(
                    "operator {} locked until {until} after {attempts} failed sign-ins",
                    row.name
                ),
            ));
        }
        let updated = self.secrets().row_key.seal_operator(OperatorRecord {
            failed_attempts: if lock { 0 } else { attempts },
            locked_until: locked_until.or(row.locked_until),
            ..row.clone()
        });
        self.store().update_operator(updated, &row.mac, audit).await
    }

    /// Signs an operator in with password and TOTP code; see the module's description.
    pub async fn sign_in(
        &self,
        name: &str,
        password: Password,
        code: &str,
        client: ClientAddr,
    ) -> Result<NewSession, SignInError> {
        let t = now();
        if let Some(wait) = self.auth_failures().throttled(client.ip(), t) {
            self.auth_failures()
                .record(client.ip(), None, "throttled address", t);
            return Err(SignInError::Throttled(wait));
        }
        let policy = self.policy();
        let row = if valid_name(name) {
            self.authentic_operator(name).await?
        } else {
            None
        };
        let Some(mut row) = row.filter(|r| r.disabled_at.is_none()) else {
            // Unknown, disabled or tampered: the same answer, after the same work.
            if check_password(password, dummy_hash().to_owned())
                .await
                .is_none()
            {
                return Err(SignInError::Busy);
            }
            self.unknown_failure(name, "unknown or disabled operator", &client, t)
                .await?;
            return Err(SignInError::Failed);
        };
        if let Some(until) = row.locked_until.filter(|u| *u > t) {
            self.unknown_failure(name, "sign-in while locked", &client, t)
                .await?;
            return Err(SignInError::Locked(u64::try_from(until - t).unwrap_or(1)));
        }
        let Some(password_ok) = check_password(password, row.password_hash.clone()).await else {
            return Err(SignInError::Busy);
        };
        for _attempt in 0..8 {
            let step = if password_ok {
                self.check_code(&row, code, t)
            } else {
                None
            };
            if step.is_some() && policy.role(&row.role).is_none() {
                // Right credentials, but the role is gone from the policy: refused, audited as
                // such, and not counted as a guess.
                self.unknown_failure(name, "role not in policy", &client, t)
                    .await?;
                return Err(SignInError::Failed);
            }
            match step {
                Some(step) => {
                    // A past lock's time stays (only a reset clears it): the log's lock entry
                    // needs it to tell this row from one put back from before the lock.
                    let updated = self.secrets().row_key.seal_operator(OperatorRecord {
                        failed_attempts: 0,
                        last_totp_step: i64::try_from(step).ok(),
                        ..row.clone()
                    });
                    if self
                        .store()
                        .update_operator(updated, &row.mac, Vec::new())
                        .await?
                    {
                        return self.start_session(&row, &client, t).await;
                    }
                }
                _ => {
                    self.auth_failures().record(
                        client.ip(),
                        Some(&format!("operator:{name}")),
                        "operator sign-in failed",
                        t,
                    );
                    if self
                        .record_failure(&row, Action::OperatorSignIn, &client, t)
                        .await?
                    {
                        return Err(SignInError::Failed);
                    }
                }
            }
            // Another request changed the row meanwhile: read it again and decide again (a code
            // it used is refused now).
            match self.authentic_operator(name).await? {
                // A reset meanwhile: the password checked is no longer the operator's.
                Some(r) if r.password_hash != row.password_hash => {
                    return Err(SignInError::Failed);
                }
                Some(r) if r.disabled_at.is_none() => {
                    if let Some(until) = r.locked_until.filter(|u| *u > t) {
                        return Err(SignInError::Locked(u64::try_from(until - t).unwrap_or(1)));
                    }
                    row = r;
                }
                _ => return Err(SignInError::Failed),
            }
        }
        Err(SignInError::Store(StoreError::Busy))
    }

    /// A failed sign-in not attributable to a row's count (an unknown name, a locked operator):
    /// counted per address and audited once a minute per address and name, like failed API keys.
    async fn unknown_failure(
        &self,
        name: &str,
        reason: &str,
        client: &ClientAddr,
        t: i64,
    ) -> Result<(), StoreError> {
        let shown = if valid_name(name) { name } else { "(invalid)" };
        let key = format!("operator:{shown}");
        if self
            .auth_failures()
            .record(client.ip(), Some(&key), reason, t)
            == Record::AuditNow
        {
            self.store()
                .append_audit(
                    AuditDraft::new(
                        t,
                        Actor::Operator(shown.to_owned()),
                        Action::OperatorSignIn,
                        Outcome::Denied,
                    )
                    .detail(reason)
                    .from(client),
                )
                .await?;
        }
        Ok(())
    }

    async fn start_session(
        &self,
        row: &OperatorRecord,
        client: &ClientAddr,
        t: i64,
    ) -> Result<NewSession, SignInError> {
        let token = SessionToken::generate().ok_or(SignInError::Store(StoreError::Database(
            "random source unavailable".into(),
        )))?;
        let id = token.id();
        let session = self.secrets().row_key.seal_session(SessionRecord {
            id: id.clone(),
            operator: row.name.clone(),
            generation: row.generation,
            created_at: t,
            last_seen_at: t,
            step_up_at: t,
            mac: String::new(),
        });
        let s = self.settings();
        let audit = AuditDraft::new(
            t,
            Actor::Operator(row.name.clone()),
            Action::OperatorSignIn,
            Outcome::Ok,
        )
        .detail(format!("role {}; session {}", row.role, &id[..12]))
        .from(client);
        self.store().insert_session(session, audit).await?;
        Ok(NewSession {
            token,
            operator: row.name.clone(),
            role: row.role.clone(),
            expires_at: t.saturating_add(secs(s.session_max_secs)),
            idle_secs: s.session_idle_secs,
            step_up_until: t.saturating_add(secs(s.step_up_secs)),
        })
    }

    /// Authenticates a session token: the session must exist, verify, be within its idle and
    /// absolute limits, and its operator be authentic, enabled, unlocked, of the same generation
    /// and of a role the policy has. `Err` holds the reason for the denial's audit entry.
    pub(crate) async fn authenticate_session(
        &self,
        token: &SessionToken,
        client: ClientAddr,
        t: i64,
    ) -> Result<Result<Caller, (&'static str, Option<String>)>, AuthError> {
        let id = token.id();
        let Some(session) = self.store().session(&id).await.map_err(AuthError::Store)? else {
            return Ok(Err(("unknown or ended operator session", None)));
        };
        if !self.secrets().row_key.session_ok(&session) {
            self.report_tampered(None, &format!("operator session {}", &id[..12]))
                .await
                .map_err(AuthError::Store)?;
            return Ok(Err((
                "operator session row failed its integrity check",
                None,
            )));
        }
        let name = Some(session.operator.clone());
        let s = self.settings();
        if session
            .last_seen_at
            .saturating_add(secs(s.session_idle_secs))
            <= t
            || session.created_at.saturating_add(secs(s.session_max_secs)) <= t
        {
            self.store()
                .delete_session(&id, None)
                .await
                .map_err(AuthError::Store)?;
            return Ok(Err(("expired operator session", name)));
        }
        let Some(op) = self
            .authentic_operator(&session.operator)
            .await
            .map_err(AuthError::Store)?
        else {
            return Ok(Err(("session of an unknown operator", name)));
        };
        if op.disabled_at.is_some() || op.generation != session.generation {
            return Ok(Err(("session ended by a disable or reset", name)));
        }
        if op.locked_until.is_some_and(|u| u > t) {
            return Ok(Err(("operator locked", name)));
        }
        let Some(role) = self.policy().role(&op.role).cloned() else {
            return Ok(Err(("role not in policy", name)));
        };
        if session.last_seen_at < t {
            let touched = self.secrets().row_key.seal_session(SessionRecord {
                last_seen_at: t,
                ..session.clone()
            });
            // A concurrent request touching it first is as good.
            if let Err(e) = self
                .store()
                .update_session(touched, &session.mac, None)
                .await
            {
                tracing::warn!(error = %e, "could not record the session's last use");
            }
        }
        Ok(Ok(Caller {
            key_id: format!("operator:{}", op.name),
            role_name: op.role.clone(),
            role,
            client,
            operator: Some(OperatorCaller {
                name: op.name,
                session_id: id,
                step_up_at: session.step_up_at,
            }),
        }))
    }

    /// Records a second factor in the caller's session (a plain reveal then needs none for
    /// `step_up_secs`). A wrong or used code counts as a failed attempt toward the lock.
    pub async fn step_up(&self, caller: &Caller, code: &str) -> Result<i64, SignInError> {
        let Some(op) = &caller.operator else {
            return Err(SignInError::NotOperator);
        };
        let t = now();
        for _attempt in 0..8 {
            let Some(row) = self.authentic_operator(&op.name).await? else {
                return Err(SignInError::Failed);
            };
            if let Some(until) = row.locked_until.filter(|u| *u > t) {
                return Err(SignInError::Locked(u64::try_from(until - t).unwrap_or(1)));
            }
            let Some(step) = self.check_code(&row, code, t) else {
                if self
                    .record_failure(&row, Action::OperatorStepUp, &caller.client, t)
                    .await?
                {
                    return Err(SignInError::Failed);
                }
                continue;
            };
            let updated = self.secrets().row_key.seal_operator(OperatorRecord {
                failed_attempts: 0,
                last_totp_step: i64::try_from(step).ok(),
                ..row.clone()
            });
            if !self
                .store()
                .update_operator(updated, &row.mac, Vec::new())
                .await?
            {
                continue;
            }
            // The code is used: record the step-up on the session. A request of the same session
            // may touch it meanwhile (its last use): read it again, checked as authentication
            // checks it (a row is only ever sealed again once verified), without using the code
            // a second time.
            let audit = caller
                .draft(t, Action::OperatorStepUp, Outcome::Ok)
                .detail(format!("session {}", &op.session_id[..12]));
            for _attempt in 0..8 {
                let Some(session) = self.store().session(&op.session_id).await? else {
                    return Err(SignInError::Failed);
                };
                if !self.secrets().row_key.session_ok(&session)
                    || session.operator != row.name
                    || session.generation != row.generation
                {
                    return Err(SignInError::Failed);
                }
                let stepped = self.secrets().row_key.seal_session(SessionRecord {
                    step_up_at: t,
                    last_seen_at: t.max(session.last_seen_at),
                    ..session.clone()
                });
                if self
                    .store()
                    .update_session(stepped, &session.mac, Some(audit.clone()))
                    .await?
                {
                    return Ok(t.saturating_add(secs(self.settings().step_up_secs)));
                }
            }
            return Err(SignInError::Store(StoreError::Busy));
        }
        Err(SignInError::Store(StoreError::Busy))
    }

    /// Ends the caller's session (audited). Whether there was one.
    pub async fn sign_out(&self, caller: &Caller) -> Result<bool, StoreError> {
        let Some(op) = &caller.operator else {
            return Ok(false);
        };
        let audit = caller
            .draft(now(), Action::OperatorSignOut, Outcome::Ok)
            .detail(format!("session {}", &op.session_id[..12]));
        self.store()
            .delete_session(&op.session_id, Some(audit))
            .await
    }

    /// Deletes sessions past their idle or absolute limit (every node, every 5 seconds).
    pub async fn purge_sessions(&self) -> Result<u64, StoreError> {
        let t = now();
        let s = self.settings();
        self.store()
            .purge_sessions(
                t.saturating_sub(secs(s.session_idle_secs)),
                t.saturating_sub(secs(s.session_max_secs)),
            )
            .await
    }
}

/// The code for `uri`'s secret at Unix time `t` (tests, the demo's tools).
pub fn code_from_uri(uri: &str, t: u64) -> Option<String> {
    Some(TotpSecret::from_otpauth_uri(uri)?.code_at(t))
}

/// Seconds per TOTP step, for callers timing their codes.
pub const TOTP_STEP_SECS: u64 = STEP_SECS;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A flood of sign-ins never runs more password checks at once than there are slots: with
    /// every slot taken, a check is refused (`sign_in_busy`) after a bounded wait.
    #[tokio::test]
    async fn password_checks_are_bounded() {
        let slots = u32::try_from(password_checks().available_permits()).unwrap();
        assert!(slots >= 1);
        let held = password_checks().acquire_many(slots).await.unwrap();
        let refused = check_password(Password::new("x".into()), dummy_hash().to_owned()).await;
        assert_eq!(refused, None, "no slot: refused");
        drop(held);
        let checked = check_password(
            Password::new("not a password".into()),
            dummy_hash().to_owned(),
        )
        .await;
        assert_eq!(checked, Some(true));
    }

    #[test]
    fn names() {
        for ok in ["alice", "a", "ops.team-1_x", "0day"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Alice", "-a", ".a", "a b", "a:b", "é", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn session_tokens_parse_and_redact() {
        let t = SessionToken::generate().unwrap();
        assert!(t.expose().starts_with(SESSION_PREFIX));
        assert_eq!(SessionToken::parse(t.expose()).unwrap().id(), t.id());
        assert_eq!(t.id().len(), 64);
        assert!(!format!("{t:?}").contains(&t.expose()[4..]));
        for bad in ["", "fso_", &t.expose()[1..], &format!("{}x", t.expose())] {
            assert!(SessionToken::parse(bad).is_none(), "{bad}");
        }
        let row_key = RowKey::new(fieldseal_core::at_rest::SymmetricKey::generate().unwrap());
        let (e, hash, _) = new_credentials(&row_key, "alice", 1).unwrap();
        let shown = format!("{e:?}");
        assert!(!shown.contains(e.password.expose()));
        assert!(!shown.contains(e.totp_uri.as_str()));
        assert!(verify_password(&e.password, &hash));
    }
}

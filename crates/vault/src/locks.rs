//! Reveal locks: callers locked by the anomaly detector ([`crate::anomaly`]), kept in the audit
//! log as `reveal.lock` and `reveal.unlock` entries so that every node refuses a locked caller
//! and no one can lift a lock without leaving an entry. Each node keeps the state in memory and
//! reads the entries newer than the last it saw before each reveal (an indexed read of nothing,
//! almost always). An entry whose MAC does not verify is ignored and reported.
//!
//! An entry's detail begins with the caller as the audit log names it (`apikey:ID`,
//! `operator:NAME`); a lock's then gives the reason, and an entry of a request ends with
//! `; from ADDR`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use fieldseal_core::at_rest::SymmetricKey;
use fieldseal_vault_store::audit::{
    Action, Actor, AuditDraft, AuditRecord, Outcome, entry_authentic,
};
use fieldseal_vault_store::{Store, StoreError};

use crate::anomaly::{Detector, Seen, Trip};
use crate::vault::{Caller, Vault, VaultError};

/// A lock in force.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lock {
    /// The `reveal.lock` entry.
    pub seq: i64,
    /// When, Unix seconds.
    pub since: i64,
    /// Why (the rule broken).
    pub reason: String,
}

/// The caller an entry's detail names, and the rest (without `; from ADDR`).
fn parse_detail(detail: &str) -> (&str, &str) {
    let detail = detail.rsplit_once("; from ").map_or(detail, |(d, _)| d);
    match detail.split_once(' ') {
        Some((caller, rest)) => (caller, rest.trim()),
        None => (detail, ""),
    }
}

/// The locks the log states, up to the last authentic entry read.
#[derive(Debug, Default)]
pub struct LockBook {
    /// The last authentic lock entry read.
    after: i64,
    locked: BTreeMap<String, Lock>,
    /// Entries that failed their MAC, already reported.
    rejected: std::collections::BTreeSet<i64>,
    /// When the entries were last read (a node reads them at most once a second).
    read_at: Option<std::time::Instant>,
}

/// How long a node answers from the locks it read before reading the new entries again: a lock
/// made on another node is in force here within this.
pub const LOCKS_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl LockBook {
    /// Reads the lock entries newer than the last authentic one read; returns the callers
    /// unlocked by them.
    pub async fn refresh<S: Store>(
        &mut self,
        store: &S,
        audit_key: &SymmetricKey,
    ) -> Result<Vec<String>, StoreError> {
        let entries = store.reveal_lock_entries(self.after).await?;
        self.read_at = Some(std::time::Instant::now());
        Ok(self.apply(audit_key, &entries))
    }

    /// [`LockBook::refresh`], unless the entries were read within [`LOCKS_READ_EVERY`].
    async fn refresh_if_stale<S: Store>(
        &mut self,
        store: &S,
        audit_key: &SymmetricKey,
    ) -> Result<Vec<String>, StoreError> {
        match self.read_at {
            Some(at) if at.elapsed() < LOCKS_READ_EVERY => Ok(Vec::new()),
            _ => self.refresh(store, audit_key).await,
        }
    }

    /// Applies entries in order. An entry that fails its MAC (written or edited by someone
    /// without the audit key) fails closed: the caller its detail names is locked, and the entry
    /// is reported once. Only authentic entries move the position read.
    fn apply(&mut self, audit_key: &SymmetricKey, entries: &[AuditRecord]) -> Vec<String> {
        let mut unlocked = Vec::new();
        for e in entries {
            let (caller, rest) = parse_detail(&e.detail);
            if !entry_authentic(audit_key, e) {
                if self.rejected.insert(e.seq) {
                    tracing::error!(
                        alert = "integrity",
                        seq = e.seq,
                        "a reveal lock entry failed its MAC: the caller it names is locked (run \
                         `fieldseal-vault audit verify`)"
                    );
                }
                if valid_caller(caller) && !self.locked.contains_key(caller) {
                    self.locked.insert(
                        caller.to_owned(),
                        Lock {
                            seq: e.seq,
                            since: e.at,
                            reason: format!(
                                "audit entry {} naming this caller failed its integrity check",
                                e.seq
                            ),
                        },
                    );
                }
                continue;
            }
            self.after = self.after.max(e.seq);
            if e.outcome != Outcome::Ok.as_str() {
                // A refused unlock (no permission, no fresh second factor).
                continue;
            }
            if e.action == Action::RevealLock.as_str() {
                self.locked.insert(
                    caller.to_owned(),
                    Lock {
                        seq: e.seq,
                        since: e.at,
                        reason: rest.to_owned(),
                    },
                );
                continue;
            }
            // An unlock lifts the lock it names (`lock SEQ`): not one made since.
            let lifts = match rest.strip_prefix("lock ").map(str::parse::<i64>) {
                Some(Ok(seq)) => self.locked.get(caller).is_some_and(|l| l.seq == seq),
                _ => self.locked.contains_key(caller),
            };
            if lifts {
                self.locked.remove(caller);
                unlocked.push(caller.to_owned());
            }
        }
        unlocked
    }

    /// The lock on `caller`, if any.
    pub fn lock_of(&self, caller: &str) -> Option<&Lock> {
        self.locked.get(caller)
    }

    /// Every lock in force, by caller.
    pub fn locks(&self) -> &BTreeMap<String, Lock> {
        &self.locked
    }
}

/// The detail of the entry that lifts `lock` on `caller`.
pub fn unlock_detail(caller: &str, lock: &Lock) -> String {
    format!("{caller} lock {}", lock.seq)
}

/// A node's reveal watch: the detector and the locks it knows of.
#[derive(Debug, Default)]
pub struct RevealWatch {
    book: tokio::sync::Mutex<LockBook>,
    detector: Mutex<Detector>,
}

impl<S: Store> Vault<S> {
    /// Reads the lock entries (`force`, or if the last read is older than
    /// [`LOCKS_READ_EVERY`]); callers unlocked since keep what the detector learned of them, with
    /// their counts cleared.
    async fn read_locks(
        &self,
        force: bool,
    ) -> Result<tokio::sync::MutexGuard<'_, LockBook>, StoreError> {
        let watch = self.reveal_watch();
        let mut book = watch.book.lock().await;
        let unlocked = if force {
            book.refresh(self.store(), self.audit_key()).await?
        } else {
            book.refresh_if_stale(self.store(), self.audit_key())
                .await?
        };
        if !unlocked.is_empty() {
            let mut detector = watch.detector.lock().unwrap_or_else(|p| p.into_inner());
            for caller in &unlocked {
                detector.pardon(caller);
            }
        }
        Ok(book)
    }

    /// The locks in force, read up to the newest entry.
    pub async fn reveal_locks(&self) -> Result<BTreeMap<String, Lock>, StoreError> {
        Ok(self.read_locks(true).await?.locks().clone())
    }

    /// The lock on a caller (the audit log's name of it), as this node knows it (read at most
    /// [`LOCKS_READ_EVERY`] ago).
    pub async fn reveal_lock_of(&self, caller: &str) -> Result<Option<Lock>, StoreError> {
        Ok(self.read_locks(false).await?.lock_of(caller).cloned())
    }

    /// Refuses a locked caller's reveal or export: each token's (or the export's) refusal
    /// audited; `Ok` when the caller is not locked.
    pub async fn refuse_if_locked(
        &self,
        caller: &Caller,
        refusals: impl FnOnce(&str) -> Vec<AuditDraft>,
    ) -> Result<(), VaultError> {
        let who = caller.actor().to_string();
        let Some(lock) = self.reveal_lock_of(&who).await? else {
            return Ok(());
        };
        let drafts = refusals(&format!(
            "locked since {} (audit entry {})",
            lock.since, lock.seq
        ));
        self.store().record_reveals(drafts, Vec::new()).await?;
        Err(VaultError::Locked)
    }

    /// Counts what a caller is about to be shown; the rule it breaks, if any.
    pub fn watch_reveals(&self, caller: &Caller, seen: &[Seen<'_>], t: i64) -> Option<Trip> {
        let mut detector = self
            .reveal_watch()
            .detector
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        detector.observe(&caller.actor().to_string(), &caller.role.anomaly, seen, t)
    }

    /// The entry that locks `caller` for `trip`, to be written with the request's refusals.
    pub fn lock_entry(caller: &Caller, trip: &Trip, t: i64) -> AuditDraft {
        AuditDraft::new(t, Actor::Vault, Action::RevealLock, Outcome::Ok)
            .detail(format!("{} {trip}", caller.actor()))
            .from(caller.client)
    }

    /// Takes up a lock just written (this node refuses the caller from now on) and reports it:
    /// the log (an alert), the metrics, the webhook.
    pub async fn report_lock(&self, caller: &Caller, trip: &Trip) -> Result<(), StoreError> {
        drop(self.read_locks(true).await?);
        let who = caller.actor().to_string();
        tracing::error!(alert = "reveal_lockout", caller = %who, role = %caller.role_name, reason = %trip, "caller locked: its reveals are refused until unlocked");
        self.metrics().lockout(&caller.role_name);
        self.alert(crate::alerts::Alert::new(
            crate::alerts::AlertKind::Lockout,
            who,
            format!(
                "reveals of role {} locked: {trip}; `fieldseal-vault locks unlock` lifts it",
                caller.role_name
            ),
        ));
        Ok(())
    }

    /// Lifts the lock on `caller` (as the audit log names it), by `actor`; `false` if it is not
    /// locked. Audited (`reveal.unlock`, naming the lock it lifts).
    pub async fn unlock(
        &self,
        actor: Actor,
        from: Option<crate::client::ClientAddr>,
        caller: &str,
    ) -> Result<bool, VaultError> {
        let Some(lock) = self.read_locks(true).await?.lock_of(caller).cloned() else {
            return Ok(false);
        };
        let mut entry = AuditDraft::new(
            crate::vault::now(),
            actor,
            Action::RevealUnlock,
            Outcome::Ok,
        )
        .detail(unlock_detail(caller, &lock));
        if let Some(from) = from {
            entry = entry.from(from);
        }
        self.store().append_audit(entry).await?;
        // Read back: this node clears the caller's counts.
        drop(self.read_locks(true).await?);
        Ok(true)
    }
}

/// Whether `text` is a caller as the audit log names one: `apikey:ID` (12 hex digits) or
/// `operator:NAME` (an operator name).
pub fn valid_caller(text: &str) -> bool {
    match text.split_once(':') {
        Some(("apikey", id)) => {
            id.len() == 12
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }
        Some(("operator", name)) => crate::operators::valid_name(name),
        _ => false,
    }
}

/// One caller's states, for consoles (`GET /v1/locks`).
#[derive(Debug, serde::Serialize)]
pub struct CallerLockState {
    /// `apikey:ID` or `operator:NAME`.
    pub caller: String,
    /// Its role.
    pub role: String,
    /// `active`, `revoked`, `expired` (API keys); `active`, `disabled`, `locked` (operators'
    /// sign-in); `tampered` when its row fails its integrity check.
    pub state: &'static str,
    /// The reveal lock in force, if any.
    pub reveal_lock: Option<Lock>,
}

impl<S: Store> Vault<S> {
    /// Every API key and operator with its state and reveal lock; then the locks of callers no
    /// longer on record.
    pub async fn caller_states(&self) -> Result<Vec<CallerLockState>, StoreError> {
        let mut locks = self.reveal_locks().await?;
        let t = crate::vault::now();
        let rows = self.row_key();
        let mut out = Vec::new();
        for k in self.store().api_keys().await? {
            let caller = Actor::ApiKey(k.id.clone()).to_string();
            let state = if !rows.api_key_ok(&k) {
                "tampered"
            } else if k.revoked_at.is_some() {
                "revoked"
            } else if k.expires_at.is_some_and(|e| e <= t) {
                "expired"
            } else {
                "active"
            };
            out.push(CallerLockState {
                reveal_lock: locks.remove(&caller),
                caller,
                role: k.role,
                state,
            });
        }
        for o in self.store().operators().await? {
            let caller = Actor::Operator(o.name.clone()).to_string();
            let state = if !rows.operator_ok(&o) {
                "tampered"
            } else if o.disabled_at.is_some() {
                "disabled"
            } else if o.locked_until.is_some_and(|u| u > t) {
                "locked"
            } else {
                "active"
            };
            out.push(CallerLockState {
                reveal_lock: locks.remove(&caller),
                caller,
                role: o.role,
                state,
            });
        }
        out.extend(locks.into_iter().map(|(caller, lock)| CallerLockState {
            caller,
            role: String::new(),
            state: "unknown",
            reveal_lock: Some(lock),
        }));
        Ok(out)
    }
}

/// The OpenAPI paths of the lock routes, for [`crate::openapi::document`].
pub fn openapi_paths() -> serde_json::Value {
    use crate::openapi::{error_response, rate_limited_response};
    serde_json::json!({
            "/v1/locks": {
                "get": {
                    "summary": "Every API key and operator with its state and its reveal lock, for consoles (roles with `audit` or `unlock`).",
                    "security": [{ "apiKey": [] }],
                    "responses": {
                        "200": { "description": "Callers", "content": { "application/json": {
                            "schema": { "type": "object", "required": ["callers"], "properties": { "callers": { "type": "array", "items": { "type": "object", "required": ["caller", "role", "state"], "properties": {
                                "caller": { "type": "string", "description": "`apikey:ID` or `operator:NAME`" },
                                "role": { "type": "string" },
                                "state": { "type": "string", "enum": ["active", "revoked", "expired", "disabled", "locked", "tampered", "unknown"], "description": "An API key's (`active`, `revoked`, `expired`), an operator's sign-in (`active`, `disabled`, `locked`); `tampered`: its row failed its integrity check" },
                                "reveal_lock": { "oneOf": [{ "type": "null" }, { "type": "object", "required": ["seq", "since", "reason"], "properties": { "seq": { "type": "integer" }, "since": { "type": "integer" }, "reason": { "type": "string" } } }] }
                            } } } } },
                            "example": { "callers": [{ "caller": "apikey:9f3c2a1b7d4e", "role": "support", "state": "active", "reveal_lock": { "seq": 812, "since": 1795000000, "reason": "sweep: 31 tokens never revealed before within a minute (limit 30: 4 x a baseline of 2.0/min)" } }, { "caller": "operator:sasha", "role": "support", "state": "active", "reveal_lock": null }] }
                        } } },
                        "401": error_response("Missing, unknown or revoked API key"),
                        "403": error_response("The role may neither read the audit log nor unlock callers"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute")
                    }
                }
            },
            "/v1/locks/unlock": {
                "post": {
                    "summary": "Lift a caller's reveal lock (audited `reveal.unlock`): an operator's session of a role with `unlock`, within `step_up_secs` of its last TOTP code, and not its own lock. API keys cannot unlock.",
                    "security": [{ "apiKey": [] }],
                    "requestBody": { "required": true, "content": { "application/json": {
                        "schema": { "type": "object", "additionalProperties": false, "required": ["caller"], "properties": { "caller": { "type": "string", "pattern": "^(apikey|operator):[A-Za-z0-9._-]{1,64}$" } } },
                        "example": { "caller": "apikey:9f3c2a1b7d4e" }
                    } } },
                    "responses": {
                        "200": { "description": "Unlocked", "content": { "application/json": { "example": { "unlocked": "apikey:9f3c2a1b7d4e" } } } },
                        "400": error_response("Malformed request: caller is not apikey:ID or operator:NAME"),
                        "401": error_response("Missing, unknown or revoked API key or session"),
                        "403": error_response("`not_an_operator`: API keys cannot unlock; `forbidden`: the role may not unlock, or the operator's own lock; `step_up_required`: the last TOTP code is older than `step_up_secs` (step up, then retry)"),
                        "404": error_response("`not_locked`: the caller is not locked"),
                        "408": error_response("`request_timeout`: the body did not arrive in time"),
                        "413": error_response("Body too large"),
                        "415": error_response("`unsupported_media_type`: the body is not `application/json`"),
                        "503": error_response("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)"),
                        "429": rate_limited_response("`too_many_failures`: too many failed authentications from this address this minute")
                    }
                }
            }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn details_name_the_caller_first() {
        assert_eq!(
            parse_detail("apikey:k_1 sweep: 31 tokens; from 10.0.0.1"),
            ("apikey:k_1", "sweep: 31 tokens")
        );
        assert_eq!(
            parse_detail("operator:sam; from 10.0.0.1 via 10.0.0.2"),
            ("operator:sam", "")
        );
        assert_eq!(parse_detail("apikey:k_1"), ("apikey:k_1", ""));
    }

    /// Someone who can write the database (without the audit key) adds an unlock entry, turns a
    /// refused one into "ok", edits the lock away, or adds a row far past the end: each entry that
    /// fails its MAC locks the caller it names (fail closed) and moves nothing. An unlock lifts
    /// only the lock it names.
    #[test]
    fn forged_entries_fail_closed_and_unlocks_name_their_lock() {
        use fieldseal_vault_store::audit::AuditChain;
        const K: &str = "apikey:0123456789ab";
        let key = SymmetricKey::from_bytes(&[7; 32]).unwrap();
        let chain = AuditChain::new(SymmetricKey::from_bytes(&[7; 32]).unwrap());
        let mut log = chain.begin(None, None, None, true).unwrap();
        let lock = log.append(
            &AuditDraft::new(10, Actor::Vault, Action::RevealLock, Outcome::Ok)
                .detail(format!("{K} sweep: 31 tokens never revealed before"))
                .from("10.0.0.1"),
        );
        let refused = log.append(
            &AuditDraft::new(
                11,
                Actor::Operator("aud".into()),
                Action::RevealUnlock,
                Outcome::Denied,
            )
            .detail("role auditor: unlock callers"),
        );
        let mut book = LockBook::default();
        assert!(
            book.apply(&key, &[lock.clone(), refused.clone()])
                .is_empty()
        );
        assert_eq!(
            book.lock_of(K).map(|l| (l.seq, l.since, l.reason.as_str())),
            Some((1, 10, "sweep: 31 tokens never revealed before"))
        );
        assert_eq!(book.after, 2);
        // Forged: the refused entry made to say "ok" for the locked key; a new unlock far past
        // the end; the lock itself turned into an unlock.
        let mut forged = refused.clone();
        forged.outcome = "ok".into();
        forged.detail = format!("{K} lock 1");
        let mut far = forged.clone();
        far.seq = 1_000_000;
        let mut turned = lock.clone();
        turned.action = "reveal.unlock".into();
        assert!(book.apply(&key, &[forged, far, turned]).is_empty());
        assert_eq!(book.lock_of(K).map(|l| l.seq), Some(1), "still locked");
        assert_eq!(book.after, 2, "a forged entry moves nothing");
        // A fresh book that never saw the genuine lock: the edited lock entry locks by itself.
        let mut edited = lock.clone();
        edited.detail = format!("{K} (nothing to see)");
        let mut other = LockBook::default();
        other.apply(&key, &[edited]);
        assert!(
            other
                .lock_of(K)
                .unwrap()
                .reason
                .contains("failed its integrity check")
        );
        // An unlock naming another lock lifts nothing; the one naming this lock does.
        let stale = log.append(
            &AuditDraft::new(12, Actor::Cli, Action::RevealUnlock, Outcome::Ok)
                .detail(format!("{K} lock 99")),
        );
        assert!(book.apply(&key, &[stale]).is_empty());
        assert!(book.lock_of(K).is_some());
        let unlock = log.append(
            &AuditDraft::new(
                13,
                Actor::Operator("sec".into()),
                Action::RevealUnlock,
                Outcome::Ok,
            )
            .detail(unlock_detail(K, &book.lock_of(K).unwrap().clone()))
            .from("10.0.0.2"),
        );
        assert_eq!(book.apply(&key, &[unlock]), [K]);
        assert!(book.locks().is_empty());
    }

    #[test]
    fn callers_are_api_key_ids_or_operator_names() {
        assert!(valid_caller("apikey:0123456789ab") && valid_caller("operator:sam.k"));
        for bad in [
            "apikey:0123456789AB",
            "apikey:k_1",
            "operator:Sam",
            "operator:-x",
            "root:x",
            "operator:a b",
        ] {
            assert!(!valid_caller(bad), "{bad}");
        }
    }
}

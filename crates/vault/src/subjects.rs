//! Data subjects: whose values a token holds, so that a customer's data can be erased
//! (GDPR Art. 17, CCPA 1798.105) and exported (GDPR Art. 20, CCPA 1798.100) as a whole.
//!
//! A tokenize item may carry `subject`, the merchant's customer id. The vault stores only its keyed
//! hash (`subj_` and HMAC-SHA256 under the lookup keys' fingerprint key, in a domain of its own;
//! `subjN_` under version N: a subject keeps the hash it first got, and erasure and export look
//! under every version, see [`crate::lookup`]), and encrypts the
//! subject's values under a key of the subject's own, made at its first value and stored wrapped
//! by the data key (the row records which data key id wrapped it: [`wrap_subject_key`] and
//! [`unwrap_subject_key`] are the one place that wraps and unwraps). Erasure deletes the subject's
//! key and tokens in one audited transaction, then makes the deleted rows unrecoverable from the
//! database's own files (SQLite: `secure_delete` and a truncating WAL checkpoint). A ciphertext of
//! the subject's that survives elsewhere after the erasure (PostgreSQL free space and WAL, a log
//! of row changes, a copy made afterwards) cannot be opened: its key is gone from the database.
//! What crypto-shredding cannot do is reach into a copy of the database taken before the erasure,
//! which still holds the wrapped key: see `docs/threat-model.md`.

use std::sync::Arc;

use fieldseal_core::at_rest::SymmetricKey;
use fieldseal_core::envelope::FieldKind;
use fieldseal_vault_store::audit::{Action, AuditDraft, Outcome};
use fieldseal_vault_store::records::encode_subject_key_aad;
use fieldseal_vault_store::{Store, StoreError, SubjectKeyRecord, TokenRecord};
use serde::Serialize;

use crate::keys::Secrets;
use crate::lookup::LookupVersion;
use crate::policy::Reveal;
use crate::refusal::Refusal;
use crate::values;
use crate::vault::{Caller, Vault, VaultError, now};

/// Longest subject id, in characters.
pub const MAX_SUBJECT_LEN: usize = 256;

/// What [`check_id`] accepts, as an ECMA-262 (and Python) regular expression for the API
/// document: no control character (C0, DEL, C1: `char::is_control`) and at least one character
/// that is not Unicode white space (`char::is_whitespace`). The length is the schema's
/// `maxLength`, counted in characters as here.
pub const SUBJECT_ID_PATTERN: &str = concat!(
    r"^[^\u0000-\u001f\u007f-\u009f]*",
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\u0000-\u001f\u007f-\u009f]*$"
);

/// Checks a subject id: 1 to 256 characters, no control characters, not only white space.
pub fn check_id(id: &str) -> Result<(), Refusal> {
    if id.trim().is_empty()
        || id.chars().count() > MAX_SUBJECT_LEN
        || id.chars().any(char::is_control)
    {
        return Err(Refusal::BadSubject);
    }
    Ok(())
}

/// The stored forms a subject id may have: its keyed hash under each lookup key version, newest
/// first (the first for a new subject), with the version.
pub fn subject_hashes(secrets: &Secrets, id: &str) -> Vec<(Arc<LookupVersion>, String)> {
    secrets
        .lookup
        .newest_first()
        .into_iter()
        .map(|v| {
            let hash = v.subject_hash(id);
            (v, hash)
        })
        .collect()
}

/// Wraps a subject's key under the data key in use; returns the record to store.
pub fn wrap_subject_key(
    secrets: &Secrets,
    subject: &str,
    key: &SymmetricKey,
    created_at: i64,
) -> Result<SubjectKeyRecord, StoreError> {
    let (data_key_id, data_key) = secrets
        .data_keys
        .for_new_value()
        .ok_or_else(|| StoreError::Database("no data key loaded".into()))?;
    let wrapped = data_key
        .encrypt(
            key.expose(),
            &encode_subject_key_aad(subject, data_key_id, created_at),
        )
        .map_err(|_| StoreError::Database("subject key wrapping failed".into()))?;
    secrets.data_keys.count(data_key_id, 1);
    Ok(SubjectKeyRecord {
        subject: subject.to_owned(),
        data_key_id,
        wrapped,
        created_at,
        erased_in_log: false,
    })
}

/// Unwraps a stored subject key with the data key its row names (`data_key`, `None` if the vault
/// holds no such version): `None` if that data key is not held, the row fails authentication
/// (moved to another subject, altered), or the log erased the subject after the key was made (the
/// row was put back from an older copy).
pub fn unwrap_subject_key(
    data_key: Option<&SymmetricKey>,
    record: &SubjectKeyRecord,
) -> Option<SymmetricKey> {
    if record.erased_in_log {
        return None;
    }
    let plain = data_key?
        .decrypt(
            &record.wrapped,
            &encode_subject_key_aad(&record.subject, record.data_key_id, record.created_at),
        )
        .ok()?;
    SymmetricKey::from_bytes(plain.expose()).ok()
}

/// One value of an export.
#[derive(Serialize)]
pub struct Exported {
    /// The token.
    pub token: String,
    /// Field kind.
    pub kind: String,
    /// When it was stored (seconds since the epoch).
    pub created_at: i64,
    /// When it expires, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// `plain`, `masked`, or `withheld` (the role may not see this kind; card security codes
    /// are never exported).
    pub reveal: &'static str,
    /// The value as the role may see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl std::fmt::Debug for Exported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Exported({}, {}, {}, [REDACTED])",
            self.token, self.kind, self.reveal
        )
    }
}

/// What an erasure or export found.
#[derive(Debug)]
pub enum SubjectOutcome<T> {
    /// Done.
    Done(T),
    /// The vault holds nothing of this subject (never seen, or erased already).
    NotFound,
    /// Not a valid subject id.
    BadId,
}

impl<S: Store> Vault<S> {
    /// The stored hash and key of the subject `id` names: the key it has under any lookup key
    /// version's hash, else a new one made and stored under the newest's. `None` if the stored key
    /// fails its integrity check (reported).
    pub(crate) async fn subject_key_for(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<(String, Arc<SymmetricKey>)>, VaultError> {
        let hashes = subject_hashes(self.secrets(), id);
        let mut found = None;
        for (version, hash) in &hashes {
            if let Some(k) = self.store().subject_key(hash).await? {
                found = Some((Arc::clone(version), k));
                break;
            }
        }
        let (version, stored) = match found {
            Some(k) => k,
            None => {
                let (version, subject) = hashes
                    .first()
                    .ok_or_else(|| StoreError::Database("no lookup key loaded".into()))?;
                let key = SymmetricKey::generate()
                    .map_err(|_| StoreError::Database("no randomness for a subject key".into()))?;
                let t = now();
                let record = wrap_subject_key(self.secrets(), subject, &key, t)?;
                let audit = caller
                    .draft(t, Action::SubjectKey, Outcome::Ok)
                    .detail(subject);
                (
                    Arc::clone(version),
                    self.store().put_subject_key(record, audit).await?,
                )
            }
        };
        self.count_subject_lookup(&version);
        Ok(self
            .unwrap_checked(&stored)
            .await?
            .map(|key| (stored.subject.clone(), key)))
    }

    /// Unwraps a stored subject key, reporting a row that fails.
    async fn unwrap_checked(
        &self,
        stored: &SubjectKeyRecord,
    ) -> Result<Option<Arc<SymmetricKey>>, VaultError> {
        let data_key = self.data_key(stored.data_key_id).await?;
        match unwrap_subject_key(data_key.as_deref(), stored) {
            Some(k) => Ok(Some(Arc::new(k))),
            None => {
                self.report_tampered(None, &format!("subject key {}", stored.subject))
                    .await?;
                Ok(None)
            }
        }
    }

    /// The stored key of the subject a token names: `None` if the subject was erased, or its key
    /// fails its integrity check (reported).
    pub(crate) async fn stored_subject_key(
        &self,
        subject: &str,
    ) -> Result<Option<Arc<SymmetricKey>>, VaultError> {
        match self.store().subject_key(subject).await? {
            Some(stored) => self.unwrap_checked(&stored).await,
            None => Ok(None),
        }
    }

    /// The stored forms of a subject id a caller named, newest version first (after loading the
    /// versions made elsewhere since: a subject made under one must not be missed); `None`
    /// (audited as `base` with the reason) if it is not a valid id.
    async fn subject_of(
        &self,
        id: &str,
        base: &AuditDraft,
    ) -> Result<Option<Vec<(Arc<LookupVersion>, String)>>, VaultError> {
        if check_id(id).is_err() {
            self.store()
                .append_audit(base.clone().detail("not a subject id"))
                .await?;
            return Ok(None);
        }
        self.load_lookup_keys().await?;
        Ok(Some(subject_hashes(self.secrets(), id)))
    }

    /// Counts a use of the lookup key version whose subject hash matched (`keys status`).
    fn count_subject_lookup(&self, version: &LookupVersion) {
        self.count_key_use("fingerprint", version.fingerprint_name());
    }

    /// Erases a data subject for a role with `erase` (the caller checks it): its key destroyed
    /// and its tokens deleted in one audited transaction, then the deleted rows made
    /// unrecoverable from the database's files. Returns how many tokens went.
    pub async fn erase_subject(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<SubjectOutcome<u64>, VaultError> {
        let t = now();
        let base = caller.draft(t, Action::SubjectErase, Outcome::NotFound);
        let Some(hashes) = self.subject_of(id, &base).await? else {
            return Ok(SubjectOutcome::BadId);
        };
        // Under every lookup key version's hash it has (one, unless nodes disagreed on the newest
        // version for a moment): each erased in its own audited transaction.
        let mut erased = None;
        for (version, subject) in &hashes {
            let known = self.store().subject_key(subject).await?.is_some()
                || !self.store().subject_tokens(subject, 0).await?.is_empty();
            if !known {
                continue;
            }
            // The erasure's detail is exactly the subject's hash (the log is read with subject
            // keys by it, to catch one put back): where the request came from goes in the
            // deletion's entry.
            let audit = AuditDraft {
                outcome: Outcome::Ok,
                from: None,
                ..base.clone().detail(subject)
            };
            let deleted = caller
                .draft(t, Action::Delete, Outcome::Ok)
                .detail(format!("{subject} erased"));
            let n = self.store().erase_subject(subject, audit, deleted).await?;
            self.count_subject_lookup(version);
            erased = Some(erased.unwrap_or(0) + n);
        }
        let Some(n) = erased else {
            let newest = hashes.first().map(|(_, h)| h.clone()).unwrap_or_default();
            self.store().append_audit(base.detail(newest)).await?;
            return Ok(SubjectOutcome::NotFound);
        };
        self.store().checkpoint().await?;
        Ok(SubjectOutcome::Done(n))
    }

    /// A data subject's values for a role with `export` (the caller checks it), each as the role
    /// may see it, with kinds and dates. Every value's outcome is audited (`reveal`, purpose
    /// `subject export`) with one `subject.export` entry, before anything is returned.
    pub async fn export_subject(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<SubjectOutcome<Vec<Exported>>, VaultError> {
        let t = now();
        let base = caller.draft(t, Action::SubjectExport, Outcome::NotFound);
        // A caller locked for an anomaly in its reveals exports nothing either.
        self.refuse_if_locked(caller, |why| {
            vec![AuditDraft {
                outcome: Outcome::Denied,
                ..base.clone().detail(why)
            }]
        })
        .await?;
        let Some(hashes) = self.subject_of(id, &base).await? else {
            return Ok(SubjectOutcome::BadId);
        };
        // The subject's values under every lookup key version's hash, each with its key.
        let mut found = Vec::new();
        for (version, hash) in &hashes {
            let records = self.store().subject_tokens(hash, t).await?;
            if records.is_empty() {
                continue;
            }
            if let Some(key) = self.stored_subject_key(hash).await? {
                self.count_subject_lookup(version);
                found.push((hash.clone(), records, key));
            }
        }
        let Some(subject) = found.first().map(|(hash, _, _)| hash.clone()) else {
            let newest = hashes.first().map(|(_, h)| h.clone()).unwrap_or_default();
            self.store().append_audit(base.detail(newest)).await?;
            return Ok(SubjectOutcome::NotFound);
        };
        let count = found.iter().map(|(_, r, _)| r.len()).sum::<usize>();
        let mut out = Vec::with_capacity(count);
        let mut audit = Vec::with_capacity(count + 1);
        // An operator's session exports in the clear only within the step-up window, as for a
        // plain reveal; otherwise nothing is exported.
        let needs_step_up = caller.needs_step_up(t, self.settings().step_up_secs);
        let records: Vec<(&TokenRecord, &SymmetricKey)> = found
            .iter()
            .flat_map(|(_, records, key)| records.iter().map(|r| (r, key.as_ref())))
            .collect();
        for (record, key) in records {
            let Some((kind, value)) = self.open_record(record, Some(key), t).await? else {
                continue;
            };
            let reveal = match caller.role.reveal(kind) {
                // A card security code is used once, by the payment; it is never exported.
                _ if kind == FieldKind::Cvc => Reveal::Denied,
                r => r,
            };
            if reveal == Reveal::Plain && needs_step_up {
                let refused = AuditDraft {
                    outcome: Outcome::Denied,
                    ..base.detail(format!(
                        "{subject}: role {}: step-up required",
                        caller.role_name
                    ))
                };
                self.store().append_audit(refused).await?;
                return Err(VaultError::StepUpRequired);
            }
            let (outcome, label, shown) = match reveal {
                Reveal::Plain => (
                    Outcome::Plain,
                    "plain",
                    Some(value.expose_str().unwrap_or_default().to_owned()),
                ),
                Reveal::Masked => (Outcome::Masked, "masked", Some(values::mask(kind, &value))),
                Reveal::Denied => (Outcome::Denied, "withheld", None),
            };
            audit.push(
                caller
                    .draft(t, Action::Reveal, outcome)
                    .token(&record.token)
                    .kind(kind.as_str())
                    .purpose("subject export"),
            );
            out.push(Exported {
                token: record.token.clone(),
                kind: kind.as_str().into(),
                created_at: record.created_at,
                expires_at: record.expires_at,
                reveal: label,
                value: shown,
            });
        }
        // What is about to be shown is watched as any reveal is: an export after export is a
        // sweep like any other.
        let watched: Vec<crate::anomaly::Seen<'_>> = out
            .iter()
            .filter(|e| e.value.is_some())
            .filter_map(|e| {
                Some(crate::anomaly::Seen {
                    kind: e.kind.parse::<FieldKind>().ok()?,
                    plain: e.reveal == "plain",
                    token: e.token.as_str(),
                })
            })
            .collect();
        if let Some(trip) = self.watch_reveals(caller, &watched, t) {
            for entry in &mut audit {
                if matches!(entry.outcome, Outcome::Plain | Outcome::Masked) {
                    entry.outcome = Outcome::Denied;
                    entry.detail = format!("anomaly: {trip}");
                }
            }
            audit.push(AuditDraft {
                outcome: Outcome::Denied,
                ..base.detail(format!("{subject}: anomaly: {trip}"))
            });
            audit.push(Self::lock_entry(caller, &trip, t));
            self.store().record_reveals(audit, Vec::new()).await?;
            self.report_lock(caller, &trip).await?;
            return Err(VaultError::Locked);
        }
        audit.push(AuditDraft {
            outcome: Outcome::Ok,
            ..base.detail(format!("{subject}: {} values", out.len()))
        });
        self.store().record_reveals(audit, Vec::new()).await?;
        Ok(SubjectOutcome::Done(out))
    }
}

/// The OpenAPI paths of the subject routes, for [`crate::openapi::document`].
pub fn openapi_paths() -> serde_json::Value {
    let error = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
        })
    };
    serde_json::json!({
            "/v1/subjects/{id}": {
                "delete": {
                    "summary": "Erase a data subject (roles with `erase = true`): its key destroyed and every token of it deleted, in one audited transaction (`subject.erase`, and a `delete` entry per token). Its tokens then answer not_found.",
                    "security": [{ "apiKey": [] }],
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": MAX_SUBJECT_LEN, "pattern": SUBJECT_ID_PATTERN }, "description": "The merchant's customer id, as sent in tokenize items' `subject`" }],
                    "responses": {
                        "200": { "description": "Erased", "content": { "application/json": { "example": { "erased": true, "tokens_deleted": 3 } } } },
                        "400": error("Not a subject id"),
                        "401": error("Missing, unknown or revoked API key"),
                        "403": error("The role may not erase subjects"),
                        "404": error("The vault holds nothing of this subject"),
                        "423": error("`locked`: the caller's reveals are locked after an anomaly in them (nothing is exported)"),
                        "503": error("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)")
                    }
                }
            },
            "/v1/subjects/{id}/export": {
                "get": {
                    "summary": "Export a data subject's values (roles with `export = true`), each as the role may reveal it, with kinds and dates. Every value's outcome is audited (`reveal`, purpose `subject export`) with one `subject.export` entry. Card security codes are never exported.",
                    "security": [{ "apiKey": [] }],
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": MAX_SUBJECT_LEN, "pattern": SUBJECT_ID_PATTERN } }],
                    "responses": {
                        "200": { "description": "The subject's values", "content": { "application/json": {
                            "schema": { "type": "object", "required": ["exported_at", "values"], "properties": {
                                "exported_at": { "type": "integer" },
                                "values": { "type": "array", "items": { "type": "object", "required": ["token", "kind", "created_at", "reveal"], "properties": {
                                    "token": { "type": "string" }, "kind": { "type": "string" }, "created_at": { "type": "integer" }, "expires_at": { "type": "integer" },
                                    "reveal": { "enum": ["plain", "masked", "withheld"] }, "value": { "type": "string" }
                                } } }
                            } },
                            "example": { "exported_at": 1795000100, "values": [{ "token": "tok_3JxB8q0Wc2rW1yTtq4nQ9A", "kind": "email", "created_at": 1795000000, "reveal": "plain", "value": "jane.doe@example.com" }, { "token": "tok_9aQ2…", "kind": "pan", "created_at": 1795000000, "expires_at": 1829560000, "reveal": "masked", "value": "411111******1111" }] }
                        } } },
                        "400": error("Not a subject id"),
                        "401": error("Missing, unknown or revoked API key"),
                        "403": error("The role may not export subjects; `step_up_required`: an operator's session asked for values in the clear more than `step_up_secs` after its last TOTP code (nothing is exported)"),
                        "404": error("The vault holds nothing of this subject"),
                        "503": error("`audit_broken`: the audit log failed its check; audited operations are refused (also `storage_busy`)")
                    }
                }
            }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{MAX_SUBJECT_LEN, SUBJECT_ID_PATTERN, check_id};

    /// The API document's pattern accepts exactly the ids the server accepts: otherwise a client
    /// that validates against the document sends ids the vault refuses, or the reverse.
    #[test]
    fn the_documented_pattern_is_the_rule() {
        let pattern = regex::Regex::new(SUBJECT_ID_PATTERN).unwrap();
        let mut checked = 0_u32;
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            for id in [c.to_string(), format!("a{c}"), format!("{c}{c}")] {
                assert_eq!(
                    pattern.is_match(&id),
                    check_id(&id).is_ok(),
                    "U+{:04X} in {id:?}",
                    u32::from(c)
                );
                checked += 1;
            }
        }
        assert!(checked > 3_000_000);
        // Length is counted in characters, as JSON Schema's maxLength counts it.
        assert!(check_id(&"é".repeat(MAX_SUBJECT_LEN)).is_ok());
        assert!(check_id(&"é".repeat(MAX_SUBJECT_LEN + 1)).is_err());
        assert!(check_id("").is_err());
        assert!(!pattern.is_match(""));
    }
}

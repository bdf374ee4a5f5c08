//! Operator actions, for the CLI (and any other front end): initialize, API keys, HPKE keys, the
//! audit log. The CLI only parses arguments and prints what these return; every store access and
//! every check goes through here, over any backend.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use fieldseal_vault_store::audit::{
    Action, Actor, AuditDraft, ExpectedHead, Head, Outcome, check_stored,
};
use fieldseal_vault_store::verify::{Verification, verify_chain};
use fieldseal_vault_store::{ApiKeyRecord, OperatorRecord, Store, StoreError};
use serde::Serialize;

use fieldseal_core::ecdh::PublicKey;
use fieldseal_core::keyset::KeyId;

use crate::apikeys::{self, NewApiKey};
use crate::config::KekKind;
use crate::config::Settings;
use crate::kek::Pkcs11Kek;
use crate::keys::{self, KekProvider, KeyError, LocalKek, Secrets};
use crate::operators::Enrolment;
use crate::policy::{Policy, PolicyError};
use crate::vault::{VaultError, kek_from_settings, now, open_store};

/// The person running this process's operator commands (`--operator NAME`, or the OS user),
/// set once by the command line.
static CLI_OPERATOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the person running this process's operator commands: every audit entry of a change
/// made from the command line names them (`cli:NAME`) instead of `cli`.
pub fn set_cli_operator(name: &str) {
    let _ = CLI_OPERATOR.set(name.to_owned());
}

/// Who the command line's changes are audited as: `cli:NAME` once [`set_cli_operator`] named
/// someone, else `cli`.
pub fn cli_actor() -> Actor {
    CLI_OPERATOR
        .get()
        .map_or(Actor::Cli, |name| Actor::CliOperator(name.clone()))
}

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Keys.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Opening the vault.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A role the policy does not have.
    #[error("unknown role {role:?}; the policy has {known}")]
    UnknownRole {
        /// The role asked for.
        role: String,
        /// The policy's roles, comma-separated.
        known: String,
    },
    /// No live API key with this id.
    #[error("no active API key with id {0}")]
    NoSuchApiKey(String),
    /// Not a caller as the audit log names one.
    #[error("{0:?} is not a caller: apikey:ID (12 hex digits) or operator:NAME")]
    NotACaller(String),
    /// No HPKE key with this id.
    #[error("no HPKE key with id {0}")]
    NoSuchKey(String),
    /// No operator with this name (or its row failed its integrity check).
    #[error("no operator named {0}")]
    NoSuchOperator(String),
    /// The operator's row contradicts the audit log: put back from an older copy.
    #[error(
        "operator {0}'s row is older than the audit log allows (put back from an older copy of \
         the database?): `operator reset {0}` gives it new credentials"
    )]
    OperatorRolledBack(String),
    /// An operator with this name exists.
    #[error("an operator named {0} exists already")]
    OperatorExists(String),
    /// Not a valid operator name.
    #[error(
        "invalid operator name {0:?}: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    BadOperatorName(String),
    /// Writing output or creating the data directory.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The random source failed.
    #[error("random source unavailable")]
    Random,
    /// A backup or restore refused or failed (why).
    #[error("{0}")]
    Backup(String),
}

/// What `init` did.
#[derive(Debug)]
pub struct Initialized {
    /// The database URL.
    pub database: String,
    /// Where the KEK is (never the key).
    pub master_key: String,
    /// The first HPKE key's id.
    pub first_key: String,
}

/// Initializes a vault: the data directory (mode 0700), the database, the KEK and the first keys.
/// The KEK is the configured one: `FIELDSEAL_MASTER_KEY`; a key in the PKCS#11 token (made inside
/// the token, non-extractable, unless one with the label is there); or the key file, made if
/// absent, which must lie outside the data directory ([`KeyError::KekInDataDir`]; see
/// [`init_dev`]).
pub async fn init(settings: &Settings) -> Result<Initialized, AdminError> {
    init_with(settings, false).await
}

/// [`init`] for a development vault (the demo): the KEK file may be the default
/// `<data_dir>/master.key`, next to the data it protects.
pub async fn init_dev(settings: &Settings) -> Result<Initialized, AdminError> {
    init_with(settings, true).await
}

async fn init_with(settings: &Settings, dev: bool) -> Result<Initialized, AdminError> {
    let mut settings = settings.clone();
    let kind = settings.kek_kind();
    if kind == KekKind::File && !dev {
        let file = settings.master_key_file();
        if inside(&file, &settings.data_dir) {
            return Err(KeyError::KekInDataDir(file.display().to_string()).into());
        }
    }
    fieldseal_vault_store::fs::create_private_dir(&settings.data_dir)?;
    let store = open_store(&settings).await?;
    if keys::is_initialized(&store).await? {
        return Err(KeyError::AlreadyInitialized.into());
    }
    let kek: Box<dyn KekProvider> = match kind {
        KekKind::File => {
            let file = settings.master_key_file();
            if file.exists() {
                Box::new(LocalKek::from_file(&file)?)
            } else {
                Box::new(LocalKek::generate_file(&file)?)
            }
        }
        KekKind::Pkcs11 => {
            let kek = Pkcs11Kek::configure(&settings)?;
            kek.ensure_key()?;
            Box::new(kek)
        }
        KekKind::Env => crate::kek::from_settings(&mut settings)?,
    };
    let first_key = keys::init(&store, kek.as_ref(), now(), lifetime(&settings)).await?;
    Ok(Initialized {
        database: settings.database_url(),
        master_key: kek.describe(),
        first_key,
    })
}

/// Where `kek rotate` moves the KEK: the settings of the new provider. Unset PKCS#11 fields keep
/// the current settings' values.
#[derive(Debug, Clone, Default)]
pub struct KekTarget {
    /// The new provider.
    pub provider: Option<KekKind>,
    /// `file`: the new key file (outside the data directory), made if absent.
    pub master_key_file: Option<std::path::PathBuf>,
    /// `pkcs11`: the module.
    pub pkcs11_module: Option<std::path::PathBuf>,
    /// `pkcs11`: the token label.
    pub pkcs11_token: Option<String>,
    /// `pkcs11`: the new key's label (made in the token if absent).
    pub pkcs11_key_label: Option<String>,
    /// `pkcs11`: the PIN file.
    pub pkcs11_pin_file: Option<std::path::PathBuf>,
}

/// Rewraps every key of the vault under a new KEK (see [`keys::rotate_kek`]); resumable. The new
/// KEK is made if absent (a key file outside the data directory, or a non-extractable key in the
/// token). Returns the new KEK's description and what was done; `progress` hears each key.
pub async fn rotate_kek(
    settings: &Settings,
    target: &KekTarget,
    pause: std::time::Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(String, keys::KekRotation), AdminError> {
    let mut current = settings.clone();
    let store = open_store(&current).await?;
    let old = crate::kek::from_settings(&mut current)?;
    let mut next = settings.clone();
    next.master_key = None;
    let kind = target.provider.unwrap_or(KekKind::Pkcs11);
    next.kek_provider = Some(kind);
    if let Some(f) = &target.master_key_file {
        next.master_key_file = Some(f.clone());
    }
    if let Some(m) = &target.pkcs11_module {
        next.pkcs11_module = Some(m.clone());
    }
    if let Some(t) = &target.pkcs11_token {
        next.pkcs11_token = Some(t.clone());
    }
    if let Some(l) = &target.pkcs11_key_label {
        next.pkcs11_key_label = l.clone();
    }
    if let Some(p) = &target.pkcs11_pin_file {
        next.pkcs11_pin_file = Some(p.clone());
    }
    let new: Box<dyn KekProvider> = match kind {
        KekKind::File => {
            let file = next.master_key_file.clone().ok_or_else(|| {
                KeyError::NoMasterKey("kek rotate to a file needs the new file's path".into())
            })?;
            if inside(&file, &next.data_dir) {
                return Err(KeyError::KekInDataDir(file.display().to_string()).into());
            }
            if file.exists() {
                Box::new(LocalKek::from_file(&file)?)
            } else {
                Box::new(LocalKek::generate_file(&file)?)
            }
        }
        KekKind::Pkcs11 => {
            let kek = Pkcs11Kek::configure(&next)?;
            kek.ensure_key()?;
            Box::new(kek)
        }
        KekKind::Env => {
            let text = std::env::var("FIELDSEAL_NEW_MASTER_KEY").map_err(|_| {
                KeyError::NoMasterKey("kek rotate to env needs FIELDSEAL_NEW_MASTER_KEY".into())
            })?;
            let text = zeroize::Zeroizing::new(text);
            Box::new(LocalKek::from_base64(&text, "FIELDSEAL_MASTER_KEY")?)
        }
    };
    if old.describe() == new.describe() {
        return Err(KeyError::SameKek(new.describe()).into());
    }
    let report = keys::rotate_kek(&store, old.as_ref(), new.as_ref(), pause, progress).await?;
    Ok((new.describe(), report))
}

/// Whether `path` is inside `dir` (both made absolute; symlinks resolved where they exist).
fn inside(path: &std::path::Path, dir: &std::path::Path) -> bool {
    let absolute = |p: &std::path::Path| {
        p.canonicalize().unwrap_or_else(|_| {
            // Not there yet: resolve the nearest existing ancestor.
            let mut base = p.to_path_buf();
            let mut rest = Vec::new();
            while !base.exists() {
                match (base.file_name().map(ToOwned::to_owned), base.parent()) {
                    (Some(name), Some(parent)) => {
                        rest.push(name);
                        base = parent.to_path_buf();
                    }
                    _ => break,
                }
            }
            let mut out = std::path::absolute(&base)
                .ok()
                .and_then(|b| b.canonicalize().ok())
                .unwrap_or(base);
            out.extend(rest.iter().rev());
            out
        })
    };
    absolute(path).starts_with(absolute(dir))
}

/// The lifetime of a new HPKE key, in seconds.
fn lifetime(settings: &Settings) -> i64 {
    i64::try_from(settings.key_lifetime_days.saturating_mul(86_400)).unwrap_or(i64::MAX / 2)
}

/// An API key as listed: its row, and whether the row passed its integrity check.
#[derive(Debug, Clone)]
pub struct ApiKeyStatus {
    /// The stored row.
    pub record: ApiKeyRecord,
    /// `active`, `revoked`, `expired`, or `TAMPERED` (the row fails its MAC; it authenticates
    /// nothing).
    pub status: &'static str,
}

/// An HPKE key as listed.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    /// Key id.
    pub kid: String,
    /// `primary`, `next` (published, primary from `not_before`), `active`, `expired`, `retired`,
    /// or `TAMPERED`.
    pub status: &'static str,
    /// The RFC 7638 JWK thumbprint of the public key: what a page pins (`load({ pins })`).
    pub thumbprint: String,
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub expires_at: i64,
}

/// A key as `keys status` lists it.
#[derive(Debug, Clone)]
pub struct KeyInventory {
    /// `kek`, `hpke`, `data`, `fingerprint`, `deterministic`, `audit` or `row`.
    pub kind: &'static str,
    /// Its id (key id, secret name, or the KEK's provider).
    pub id: String,
    /// Its version.
    pub version: i64,
    /// When it was made, if recorded.
    pub created_at: Option<i64>,
    /// How many times it was used, where counted: encryptions under a data key; envelopes opened
    /// with an HPKE key; fingerprints or deterministic tokens made with a lookup key.
    pub uses: Option<i64>,
    /// Its last use (as the nodes counted, every few seconds), where counted.
    pub last_used: Option<i64>,
    /// Its state.
    pub state: String,
    /// Where it lives (never the key).
    pub lives: String,
}

/// What `incident report` finds in the audit log for a time range.
#[derive(Debug, Default, Serialize)]
pub struct IncidentReport {
    /// Start, Unix seconds.
    pub from: i64,
    /// End, Unix seconds (included).
    pub to: i64,
    /// Whether the whole audit log verified before the report was drawn (if not, entries may
    /// have been edited or deleted: the report cannot be trusted).
    pub log_intact: bool,
    /// Entries verified.
    pub log_verified: i64,
    /// The first entry that did not verify.
    pub log_broken_at: Option<i64>,
    /// Every reveal (and subject export value) in the range, in order.
    pub reveals: Vec<RevealRecord>,
    /// Every actor with an entry in the range (API keys by id, operators by name, the CLI).
    pub actors: BTreeMap<String, ActorActivity>,
}

/// One reveal in an incident report: never the value.
#[derive(Debug, Serialize)]
pub struct RevealRecord {
    /// The audit entry.
    pub seq: i64,
    /// When.
    pub at: i64,
    /// Who (`apikey:ID`, `operator:NAME`).
    pub actor: String,
    /// Which token.
    pub token: Option<String>,
    /// Its kind.
    pub kind: Option<String>,
    /// `plain`, `masked`, `denied`, `not_found`.
    pub outcome: String,
    /// The purpose stated.
    pub purpose: Option<String>,
    /// Where the request came from, as the entry says.
    pub from: Option<String>,
}

/// An actor's activity in an incident report.
#[derive(Debug, Serialize)]
pub struct ActorActivity {
    /// Its first entry in the range.
    pub first: i64,
    /// Its last entry in the range.
    pub last: i64,
    /// Its entries by action.
    pub actions: BTreeMap<String, u64>,
}

/// An operator and its status.
#[derive(Debug)]
pub struct OperatorStatus {
    /// The row (no secret in the clear: a password hash and an encrypted TOTP secret).
    pub record: OperatorRecord,
    /// `active`, `locked`, `disabled` or `TAMPERED`.
    pub status: &'static str,
}

/// What `keys check-retired` found.
#[derive(Debug, Serialize)]
pub struct RetiredCheck {
    /// The key.
    pub kid: String,
    /// Its status now (`retired` once it opens nothing).
    pub status: &'static str,
    /// When it was last retired, per the audit log.
    pub retired_at: Option<i64>,
    /// Envelopes sealed to it that arrived after that.
    pub sealed_since: Vec<SealedToRetired>,
    /// The first entry at which the audit log failed verification, if it did: the search is
    /// then not to be trusted (a deleted refusal would hide a page still sealing to the key).
    pub log_broken_at: Option<i64>,
}

/// The last entry a verification vouched for: the anchored head it ended at (0 with none). The
/// searches over the log stop there: an entry appended after the walk read the head, or slipped
/// in after it, was not verified.
fn verified_end(v: &Verification) -> i64 {
    v.head.as_ref().map_or(0, |h| h.seq)
}

impl RetiredCheck {
    /// Whether no page is left sealing to the key: retired, unpublished, and no envelope to it
    /// since.
    pub fn clear(&self) -> bool {
        self.log_broken_at.is_none()
            && self.retired_at.is_some()
            && self.status == "retired"
            && self.sealed_since.is_empty()
    }
}

/// An envelope sealed to a retired key, refused.
#[derive(Debug, Serialize)]
pub struct SealedToRetired {
    /// Its audit entry.
    pub seq: i64,
    /// When.
    pub at: i64,
    /// Who sent it (the API key or operator).
    pub actor: String,
    /// From where.
    pub from: String,
}

/// An initialized vault opened for operator actions.
pub struct Admin<S: Store> {
    store: S,
    settings: Settings,
    kek: Arc<dyn KekProvider>,
    secrets: Secrets,
    /// Who the audit entries of changes name (`cli`, or `cli:NAME`).
    actor: Actor,
}

impl Admin<crate::AnyStore> {
    /// Opens the vault the settings describe (checks the KEK, unwraps the keys).
    pub async fn open(settings: &Settings) -> Result<Self, AdminError> {
        let mut settings = settings.clone();
        let store = open_store(&settings).await?;
        let kek = kek_from_settings(&mut settings)?;
        Self::with_store(store, settings, kek).await
    }
}

impl<S: Store> Admin<S> {
    /// Opens an initialized vault over any store.
    pub async fn with_store(
        store: S,
        settings: Settings,
        kek: Arc<dyn KekProvider>,
    ) -> Result<Self, AdminError> {
        let secrets = keys::load_secrets(&store, kek.as_ref()).await?;
        Ok(Self {
            store,
            settings,
            kek,
            secrets,
            actor: cli_actor(),
        })
    }

    /// Names `operator` (the person at the command line) in the audit entries of the changes
    /// made from now on.
    pub fn acting_as(mut self, operator: &str) -> Self {
        self.actor = Actor::CliOperator(operator.into());
        self
    }

    /// Who the audit entries of changes name.
    pub fn actor(&self) -> Actor {
        self.actor.clone()
    }

    /// The reveal locks in force (`locks list`), by caller.
    pub async fn reveal_locks(&self) -> Result<BTreeMap<String, crate::locks::Lock>, AdminError> {
        let mut book = crate::locks::LockBook::default();
        book.refresh(&self.store, &self.secrets.audit_key).await?;
        Ok(book.locks().clone())
    }

    /// Locks a caller's reveals by hand (`locks lock`; audited `reveal.lock`): what the anomaly
    /// detector does by itself, for a caller suspected otherwise. `false` if it is locked already.
    pub async fn lock(&self, caller: &str, reason: &str) -> Result<bool, AdminError> {
        if !crate::locks::valid_caller(caller) {
            return Err(AdminError::NotACaller(caller.into()));
        }
        if self.reveal_locks().await?.contains_key(caller) {
            return Ok(false);
        }
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        self.store
            .append_audit(
                AuditDraft::new(now(), self.actor(), Action::RevealLock, Outcome::Ok)
                    .detail(format!("{caller} by hand: {reason}")),
            )
            .await?;
        Ok(true)
    }

    /// Lifts a caller's reveal lock (`locks unlock`; audited `reveal.unlock`); `false` if it is
    /// not locked. Every node takes it up before its next reveal.
    pub async fn unlock(&self, caller: &str) -> Result<bool, AdminError> {
        if !crate::locks::valid_caller(caller) {
            return Err(AdminError::NotACaller(caller.into()));
        }
        let Some(lock) = self.reveal_locks().await?.remove(caller) else {
            return Ok(false);
        };
        self.store
            .append_audit(
                AuditDraft::new(now(), self.actor(), Action::RevealUnlock, Outcome::Ok)
                    .detail(crate::locks::unlock_detail(caller, &lock)),
            )
            .await?;
        Ok(true)
    }

    /// Enrols an operator with a role of the policy: a new random password and TOTP secret,
    /// returned once (in the result) and stored only as an Argon2id hash and encrypted.
    pub async fn add_operator(&self, name: &str, role: &str) -> Result<Enrolment, AdminError> {
        if !crate::operators::valid_name(name) {
            return Err(AdminError::BadOperatorName(name.into()));
        }
        self.check_role(role).await?;
        let (enrolment, hash, wrapped) =
            crate::operators::new_credentials(&self.secrets.row_key, name, 1)
                .ok_or(AdminError::Random)?;
        let at = now();
        let record = self.secrets.row_key.seal_operator(OperatorRecord {
            name: name.into(),
            role: role.into(),
            password_hash: hash,
            totp_wrapped: wrapped,
            created_at: at,
            disabled_at: None,
            failed_attempts: 0,
            locked_until: None,
            last_totp_step: None,
            generation: 1,
            mac: String::new(),
            log: fieldseal_vault_store::OperatorLog::default(),
        });
        let audit = AuditDraft::new(at, self.actor(), Action::OperatorAdd, Outcome::Ok)
            .detail(format!("operator {name} role {role}"));
        if !self.store.insert_operator(record, audit).await? {
            return Err(AdminError::OperatorExists(name.into()));
        }
        Ok(enrolment)
    }

    async fn check_role(&self, role: &str) -> Result<(), AdminError> {
        let policy = self.policy().await?;
        if policy.role(role).is_none() {
            return Err(AdminError::UnknownRole {
                role: role.into(),
                known: policy.role_names().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(())
    }

    /// Every operator with its status.
    pub async fn operators(&self) -> Result<Vec<OperatorStatus>, AdminError> {
        let t = now();
        Ok(self
            .store
            .operators()
            .await?
            .into_iter()
            .map(|record| {
                let status = if !self.secrets.row_key.operator_ok(&record)
                    || record.contradicts_log().is_some()
                {
                    "TAMPERED"
                } else if record.disabled_at.is_some() {
                    "disabled"
                } else if record.locked_until.is_some_and(|u| u > t) {
                    "locked"
                } else {
                    "active"
                };
                OperatorStatus { record, status }
            })
            .collect())
    }

    /// Changes an authentic operator row with `change`, auditing it as `action`.
    async fn change_operator(
        &self,
        name: &str,
        action: Action,
        detail: String,
        change: impl Fn(OperatorRecord) -> OperatorRecord,
    ) -> Result<(), AdminError> {
        for _attempt in 0..8 {
            let row = self
                .store
                .operator(name)
                .await?
                .filter(|r| self.secrets.row_key.operator_ok(r))
                .ok_or_else(|| AdminError::NoSuchOperator(name.into()))?;
            // Disabling or enabling a row put back from before a reset would bind the old
            // credentials to a generation the log accepts: only `reset` repairs such a row.
            if row.contradicts_log().is_some() {
                return Err(AdminError::OperatorRolledBack(name.into()));
            }
            let old_mac = row.mac.clone();
            let updated = self.secrets.row_key.seal_operator(change(row));
            let audit =
                AuditDraft::new(now(), self.actor(), action, Outcome::Ok).detail(detail.clone());
            if self
                .store
                .update_operator(updated, &old_mac, vec![audit])
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError::Busy.into())
    }

    /// Disables an operator: no sign-in, and its sessions end.
    pub async fn disable_operator(&self, name: &str) -> Result<(), AdminError> {
        let at = now();
        let row_key = &self.secrets.row_key;
        self.change_operator(
            name,
            Action::OperatorDisable,
            format!("operator {name}"),
            |r| {
                // A new generation ends the sessions; the TOTP secret, bound to the generation,
                // follows it so that `enable` restores the same credentials. One that does not
                // open stays as it is (the operator then needs `operator reset`, as before).
                let generation = r.generation.saturating_add(1);
                let totp_wrapped = crate::operators::rewrap_totp(row_key, &r, generation)
                    .unwrap_or_else(|| r.totp_wrapped.clone());
                OperatorRecord {
                    disabled_at: Some(r.disabled_at.unwrap_or(at)),
                    generation,
                    totp_wrapped,
                    ..r
                }
            },
        )
        .await
    }

    /// Locks an operator now (an incident): no sign-in, its sessions refused, until `operator
    /// reset` gives it new credentials. Audited as `operator.lock` by the CLI's operator.
    pub async fn lock_operator(&self, name: &str) -> Result<(), AdminError> {
        self.change_operator(
            name,
            Action::OperatorLock,
            format!("operator {name}"),
            |r| OperatorRecord {
                locked_until: Some(crate::operators::LOCKED_BY_ADMIN_UNTIL),
                ..r
            },
        )
        .await
    }

    /// Enables a disabled operator again (with the credentials it had).
    pub async fn enable_operator(&self, name: &str) -> Result<(), AdminError> {
        self.change_operator(
            name,
            Action::OperatorEnable,
            format!("operator {name}"),
            |r| OperatorRecord {
                disabled_at: None,
                ..r
            },
        )
        .await
    }

    /// Gives an operator a new password and TOTP secret (returned once): the lock and the failure
    /// count are cleared and its sessions end.
    pub async fn reset_operator(&self, name: &str) -> Result<Enrolment, AdminError> {
        // A concurrent sign-in may change the row (its failure count) between read and write:
        // read it again and retry, as other operator changes do.
        for _attempt in 0..8 {
            let row = self
                .store
                .operator(name)
                .await?
                .filter(|r| self.secrets.row_key.operator_ok(r))
                .ok_or_else(|| AdminError::NoSuchOperator(name.into()))?;
            let generation = crate::operators::next_generation(&row);
            let (enrolment, hash, wrapped) =
                crate::operators::new_credentials(&self.secrets.row_key, name, generation)
                    .ok_or(AdminError::Random)?;
            let audit = AuditDraft::new(now(), self.actor(), Action::OperatorReset, Outcome::Ok)
                .detail(format!("operator {name}"));
            let old_mac = row.mac.clone();
            let updated = self.secrets.row_key.seal_operator(OperatorRecord {
                password_hash: hash,
                totp_wrapped: wrapped,
                failed_attempts: 0,
                locked_until: None,
                last_totp_step: None,
                generation,
                ..row
            });
            if self
                .store
                .update_operator(updated, &old_mac, vec![audit])
                .await?
            {
                return Ok(enrolment);
            }
        }
        Err(StoreError::Busy.into())
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The policy in force: the one stored for every node (`policy load`), else the file or the
    /// built-in policy.
    pub async fn policy(&self) -> Result<Policy, AdminError> {
        Ok(
            match Policy::stored(&self.store, &self.secrets.audit_key).await? {
                Some((policy, _)) => policy,
                None => Policy::load(self.settings.policy_file.as_deref())?,
            },
        )
    }

    /// Stores the policy in `text` for every node on the database (an audit entry holding the
    /// text: authenticated, chained, exported with the log). Running nodes take it up within 5
    /// seconds; it takes precedence over their policy files. Returns its description.
    pub async fn store_policy(&self, text: &str) -> Result<String, AdminError> {
        let policy = Policy::parse(text)?;
        self.store
            .append_audit(
                AuditDraft::new(now(), self.actor(), Action::PolicyStore, Outcome::Ok).detail(text),
            )
            .await?;
        Ok(policy.describe().to_owned())
    }

    /// Creates an API key for a role of the policy; the full key is in the result, to show once.
    pub async fn create_api_key(
        &self,
        role: &str,
        label: &str,
        expires_in_days: Option<u64>,
    ) -> Result<NewApiKey, AdminError> {
        self.create_bound_api_key(role, label, expires_in_days, None)
            .await
    }

    /// [`Admin::create_api_key`], bound to the client certificate whose SHA-256 is
    /// `client_cert_sha256`: the key authenticates only on a mutual-TLS connection presenting it.
    pub async fn create_bound_api_key(
        &self,
        role: &str,
        label: &str,
        expires_in_days: Option<u64>,
        client_cert_sha256: Option<[u8; 32]>,
    ) -> Result<NewApiKey, AdminError> {
        let policy = self.policy().await?;
        if policy.role(role).is_none() {
            return Err(AdminError::UnknownRole {
                role: role.into(),
                known: policy.role_names().collect::<Vec<_>>().join(", "),
            });
        }
        let key = apikeys::generate().ok_or(AdminError::Random)?;
        let at = now();
        let expires_at = expires_in_days.map(|d| {
            at.saturating_add(i64::try_from(d.saturating_mul(86_400)).unwrap_or(i64::MAX))
        });
        let record = self.secrets.row_key.seal_api_key(ApiKeyRecord {
            id: key.id.clone(),
            digest: key.digest.to_vec(),
            role: role.into(),
            label: label.into(),
            created_at: at,
            revoked_at: None,
            expires_at,
            previous_digest: None,
            previous_expires_at: None,
            client_cert_sha256: client_cert_sha256.map(|h| fieldseal_core::encoding::hex(&h)),
            last_used_at: None,
            mac: String::new(),
            revoked_in_log: false,
        });
        let bound = client_cert_sha256.map_or_else(String::new, |h| {
            format!(
                " bound to certificate sha256 {}",
                fieldseal_core::encoding::hex(&h)
            )
        });
        let audit = AuditDraft::new(at, self.actor(), Action::ApiKeyCreate, Outcome::Ok)
            .detail(format!("{} role {role}{bound}", key.id));
        self.store.insert_api_key(record, audit).await?;
        Ok(key)
    }

    /// Every API key with its status; rows failing their integrity check are listed as such.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyStatus>, AdminError> {
        let t = now();
        Ok(self
            .store
            .api_keys()
            .await?
            .into_iter()
            .map(|record| {
                let status = if !self.secrets.row_key.api_key_ok(&record)
                    || (record.revoked_in_log && record.revoked_at.is_none())
                {
                    "TAMPERED"
                } else if record.revoked_at.is_some() {
                    "revoked"
                } else if record.expires_at.is_some_and(|e| e <= t) {
                    "expired"
                } else if self
                    .settings
                    .api_key_idle_before(t)
                    .is_some_and(|b| record.last_used_at.unwrap_or(record.created_at) < b)
                {
                    "idle"
                } else {
                    "active"
                };
                ApiKeyStatus { record, status }
            })
            .collect())
    }

    /// The row of a live API key (authentic, not revoked).
    async fn live_api_key(&self, id: &str) -> Result<ApiKeyRecord, AdminError> {
        self.store
            .api_key(id)
            .await?
            .filter(|r| {
                self.secrets.row_key.api_key_ok(r) && r.revoked_at.is_none() && !r.revoked_in_log
            })
            .ok_or_else(|| AdminError::NoSuchApiKey(id.into()))
    }

    /// Revokes an API key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), AdminError> {
        let at = now();
        let record = self.live_api_key(id).await?;
        let revoked = self.secrets.row_key.seal_api_key(ApiKeyRecord {
            revoked_at: Some(at),
            ..record
        });
        let audit = AuditDraft::new(at, self.actor(), Action::ApiKeyRevoke, Outcome::Ok).detail(id);
        if !self
            .store
            .revoke_api_key(id, at, revoked.mac, audit)
            .await?
        {
            return Err(AdminError::NoSuchApiKey(id.into()));
        }
        Ok(())
    }

    /// Revokes every live API key of `role` (an incident: a role's keys leaked); returns the
    /// ids revoked, and those of rows of the role that fail their integrity check (they do not
    /// authenticate; listed for the operator to look into). Each revocation is audited as
    /// `apikey.revoke`. A role no longer in the policy is accepted: its keys may still exist.
    pub async fn revoke_role(&self, role: &str) -> Result<(Vec<String>, Vec<String>), AdminError> {
        let (mut revoked, mut tampered) = (Vec::new(), Vec::new());
        for k in self.api_keys().await? {
            if k.record.role != role || k.record.revoked_at.is_some() {
                continue;
            }
            if k.status == "TAMPERED" {
                tampered.push(k.record.id);
                continue;
            }
            self.revoke_api_key(&k.record.id).await?;
            revoked.push(k.record.id);
        }
        Ok((revoked, tampered))
    }

    /// What the audit log says of `from..=to` (Unix seconds), for a breach notification: every
    /// reveal and export (who, which token and kind, plain or masked or refused, the purpose,
    /// from where), and every actor active (its first and last entry, its entries by action).
    /// Drawing it is audited (`incident.report`), before it is returned.
    pub async fn incident_report(
        &self,
        from: i64,
        to: i64,
        expect: Option<ExpectedHead>,
    ) -> Result<IncidentReport, AdminError> {
        // The log is checked first: a report drawn from a log someone edited would be clean.
        let verification = self.verify_audit(expect).await?;
        let end = verified_end(&verification);
        let mut report = IncidentReport {
            from,
            to,
            log_intact: verification.intact(),
            log_verified: verification.verified,
            log_broken_at: verification.broken.as_ref().map(|b| b.seq),
            ..IncidentReport::default()
        };
        let mut after = 0;
        while after < end {
            let page = self.store.audit_log(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in page
                .iter()
                .filter(|e| e.seq <= end && (from..=to).contains(&e.at))
            {
                let actor = report
                    .actors
                    .entry(e.actor.clone())
                    .or_insert_with(|| ActorActivity {
                        first: e.at,
                        last: e.at,
                        actions: BTreeMap::new(),
                    });
                // Nodes' clocks differ a little: entries need not be in time order.
                actor.first = actor.first.min(e.at);
                actor.last = actor.last.max(e.at);
                *actor.actions.entry(e.action.clone()).or_insert(0) += 1;
                if e.action == "reveal" {
                    report.reveals.push(RevealRecord {
                        seq: e.seq,
                        at: e.at,
                        actor: e.actor.clone(),
                        token: e.token.clone(),
                        kind: e.kind.clone(),
                        outcome: e.outcome.clone(),
                        purpose: e.purpose.clone(),
                        from: e
                            .detail
                            .rsplit_once("; from ")
                            .map(|(_, a)| a)
                            .or_else(|| e.detail.strip_prefix("from "))
                            .map(str::to_owned),
                    });
                }
            }
        }
        let plain = report
            .reveals
            .iter()
            .filter(|r| r.outcome == "plain")
            .count();
        self.store
            .append_audit(
                AuditDraft::new(now(), self.actor(), Action::IncidentReport, Outcome::Ok).detail(
                    format!(
                        "from {from} to {to}: {} reveals ({plain} plain), {} actors",
                        report.reveals.len(),
                        report.actors.len()
                    ),
                ),
            )
            .await?;
        Ok(report)
    }

    /// Gives a live API key a new secret (shown once, in the result); the current secret keeps
    /// authenticating for `overlap_hours` more (0: not at all), so that its holders can switch.
    /// A secret kept from an earlier rotation is dropped.
    pub async fn rotate_api_key(
        &self,
        id: &str,
        overlap_hours: u64,
    ) -> Result<NewApiKey, AdminError> {
        let at = now();
        let record = self.live_api_key(id).await?;
        let key = apikeys::generate_for(id).ok_or(AdminError::Random)?;
        let until = at
            .saturating_add(i64::try_from(overlap_hours.saturating_mul(3600)).unwrap_or(i64::MAX));
        let rotated = self.secrets.row_key.seal_api_key(ApiKeyRecord {
            previous_digest: Some(record.digest.clone()),
            previous_expires_at: Some(until),
            digest: key.digest.to_vec(),
            ..record
        });
        let audit = AuditDraft::new(at, self.actor(), Action::ApiKeyRotate, Outcome::Ok)
            .detail(format!("{id}; previous secret accepted until {until}"));
        if !self.store.rotate_api_key(rotated, audit).await? {
            return Err(AdminError::NoSuchApiKey(id.into()));
        }
        Ok(key)
    }

    /// Every HPKE key with its status, newest first.
    pub async fn keys(&self) -> Result<Vec<KeyStatus>, AdminError> {
        let t = now();
        let rows = self.store.hpke_keys().await?;
        let authentic =
            |k: &fieldseal_vault_store::HpkeKeyRecord| keys::hpke_row_ok(&self.secrets.row_key, k);
        let primary = rows
            .iter()
            .filter(|k| {
                authentic(k) && k.retired_at.is_none() && k.expires_at > t && k.not_before <= t
            })
            .max_by_key(|k| k.not_before)
            .map(|k| k.kid.clone());
        Ok(rows
            .iter()
            .rev()
            .map(|k| KeyStatus {
                kid: k.kid.clone(),
                status: if !authentic(k) {
                    "TAMPERED"
                } else if k.retired_at.is_some_and(|r| r > t) {
                    "retiring"
                } else if k.retired_at.is_some() {
                    "retired"
                } else if k.expires_at <= t {
                    "expired"
                } else if primary.as_deref() == Some(k.kid.as_str()) {
                    "primary"
                } else if k.not_before > t {
                    "next"
                } else {
                    "active"
                },
                thumbprint: PublicKey::from_sec1(&k.public_key)
                    .map(|pk| KeyId::thumbprint(&pk).as_str().to_owned())
                    .unwrap_or_default(),
                not_before: k.not_before,
                expires_at: k.expires_at,
            })
            .collect())
    }

    /// Makes a new primary HPKE key; returns its id.
    pub async fn rotate_key(&self) -> Result<String, AdminError> {
        self.rotate_key_ahead(0).await
    }

    /// Adds a new HPKE key that is published at once and becomes the primary `ahead_secs` from
    /// now (at once for 0); returns its id.
    pub async fn rotate_key_ahead(&self, ahead_secs: u64) -> Result<String, AdminError> {
        Ok(keys::rotate(
            &self.store,
            self.kek.as_ref(),
            &self.secrets.row_key,
            now(),
            (
                lifetime(&self.settings),
                i64::try_from(ahead_secs).unwrap_or(i64::MAX / 4),
            ),
            self.actor(),
        )
        .await?)
    }

    /// The keys `GET /v1/keys` publishes (the primary, the next key if one was made ahead, older
    /// keys still live), newest first, with their thumbprints: the pins for a page.
    pub async fn pins(&self) -> Result<Vec<KeyStatus>, AdminError> {
        Ok(self
            .keys()
            .await?
            .into_iter()
            .filter(|k| matches!(k.status, "primary" | "next" | "active"))
            .collect())
    }

    /// Retires an HPKE key, expired or not: it leaves the key set at once and opens envelopes
    /// for the freshness window more (those sealed just before keep their worth).
    pub async fn retire_key(&self, kid: &str) -> Result<(), AdminError> {
        let grace = i64::try_from(self.settings.freshness_window_secs).unwrap_or(i64::MAX / 4);
        Ok(keys::retire(
            &self.store,
            &self.secrets.row_key,
            kid,
            (now(), grace),
            self.actor(),
        )
        .await?)
    }

    /// Retires an HPKE key at once (a compromised key): it opens nothing from now on.
    pub async fn retire_key_now(&self, kid: &str) -> Result<(), AdminError> {
        Ok(keys::retire(
            &self.store,
            &self.secrets.row_key,
            kid,
            (now(), 0),
            self.actor(),
        )
        .await?)
    }

    /// After retiring `kid`: whether any page is still sealing to it. Reads the whole audit log
    /// for envelopes refused as `unknown_key` to that key since its (last) retirement, and checks
    /// that it is out of the published key set. Envelopes before `since` (Unix seconds) are left
    /// out.
    pub async fn check_retired(
        &self,
        kid: &str,
        since: i64,
        expect: Option<ExpectedHead>,
    ) -> Result<RetiredCheck, AdminError> {
        let status = self
            .keys()
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| AdminError::NoSuchKey(kid.into()))?;
        // The log is checked first: with a refusal deleted, the search would come back clear.
        let verification = self.verify_audit(expect).await?;
        let end = verified_end(&verification);
        let mut retired_at = None;
        let mut sealed = Vec::new();
        let needle = format!(" to key {kid}");
        let mut after = 0;
        while after < end {
            let page = self.store.audit_log(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in page.into_iter().filter(|e| e.seq <= end) {
                if e.action == Action::KeyRetire.as_str() && e.detail == kid {
                    retired_at = Some(e.at);
                    sealed.clear();
                } else if retired_at.is_some()
                    && e.at >= since
                    && e.action == Action::Tokenize.as_str()
                    && e.detail.starts_with("unknown_key;")
                    && e.detail.contains(&needle)
                {
                    sealed.push(SealedToRetired {
                        seq: e.seq,
                        at: e.at,
                        actor: e.actor,
                        from: e
                            .detail
                            .rsplit_once("; from ")
                            .map(|(_, f)| f.to_owned())
                            .unwrap_or_default(),
                    });
                }
            }
        }
        let check = RetiredCheck {
            kid: kid.into(),
            status: status.status,
            retired_at,
            sealed_since: sealed,
            log_broken_at: verification.broken.as_ref().map(|b| b.seq),
        };
        let found = match (check.log_broken_at, check.retired_at) {
            (Some(seq), _) => format!("audit log broken at entry {seq}"),
            (None, None) => "not retired".to_owned(),
            (None, Some(at)) => format!(
                "{} envelopes sealed to it since {}",
                check.sealed_since.len(),
                since.max(at)
            ),
        };
        // Refused: the check did not come back clear (a SIEM can filter on it).
        let outcome = if check.clear() {
            Outcome::Ok
        } else {
            Outcome::Refused
        };
        self.store
            .append_audit(
                AuditDraft::new(now(), self.actor(), Action::KeyCheckRetired, outcome)
                    .detail(format!("{kid}: {found}")),
            )
            .await?;
        Ok(check)
    }

    /// Makes a new data key version for new values; serving nodes take it up and move the stored
    /// values to it in the background (progress in [`Admin::inventory`] and their logs). Returns
    /// the new version.
    pub async fn rotate_data_key(&self) -> Result<i64, AdminError> {
        let newest = self.store.data_keys().await?.last().map_or(0, |r| r.id);
        Ok(crate::datakeys::rotate(
            &self.store,
            self.kek.as_ref(),
            newest,
            (now(), self.actor(), "on demand"),
        )
        .await?)
    }

    /// Makes the next version of the lookup keys (`keys rotate-lookup`): new fingerprints,
    /// deterministic tokens and subject hashes use it once each node has loaded it (within its
    /// key upkeep, seconds); lookups keep accepting the older versions. Returns the version.
    pub async fn rotate_lookup_keys(&self) -> Result<u32, AdminError> {
        let v =
            crate::lookup::rotate(&self.store, self.kek.as_ref(), (now(), self.actor())).await?;
        self.secrets
            .lookup
            .load_new(&self.store, self.kek.as_ref())
            .await?;
        Ok(v)
    }

    /// Every key of the vault: where it lives, its version, when made, how much used, its state.
    pub async fn inventory(&self) -> Result<Vec<KeyInventory>, AdminError> {
        let mut out = vec![KeyInventory {
            kind: "kek",
            id: self.settings.kek_kind().as_str().into(),
            version: 1,
            created_at: None,
            uses: None,
            last_used: None,
            state: "in use".into(),
            lives: self.kek.describe(),
        }];
        let wrapped = format!("database, wrapped under the KEK ({})", self.kek.describe());
        let hpke = self.store.hpke_keys().await?;
        for k in self.keys().await? {
            let created = hpke.iter().find(|r| r.kid == k.kid).map(|r| r.created_at);
            out.push(KeyInventory {
                kind: "hpke",
                id: k.kid.clone(),
                version: 1,
                created_at: created,
                uses: None,
                last_used: None,
                state: format!("{} (nbf {}, exp {})", k.status, k.not_before, k.expires_at),
                lives: wrapped.clone(),
            });
        }
        let data = self.store.data_keys().await?;
        let newest = data.last().map_or(0, |r| r.id);
        for d in &data {
            let values = |n: i64| format!("{n} value{}", if n == 1 { "" } else { "s" });
            let state = if d.id == newest {
                format!("current, {}", values(d.values))
            } else if d.values > 0 {
                format!("re-encrypting: {} left", values(d.values))
            } else {
                "replaced, no values".into()
            };
            out.push(KeyInventory {
                kind: "data",
                id: crate::datakeys::secret_name(d.id),
                version: d.id,
                created_at: Some(d.created_at),
                uses: Some(d.encryptions),
                last_used: None,
                state,
                lives: wrapped.clone(),
            });
        }
        self.secrets
            .lookup
            .load_new(&self.store, self.kek.as_ref())
            .await?;
        let versions = self.secrets.lookup.loaded();
        let newest = versions.last().copied().unwrap_or(1);
        for v in versions {
            let (fp, det) = crate::lookup::secret_names(v);
            let state = if v == newest {
                "current".to_owned()
            } else {
                "older: accepted for lookups".to_owned()
            };
            for (kind, id) in [("fingerprint", fp), ("deterministic", det)] {
                out.push(KeyInventory {
                    kind,
                    id,
                    version: i64::from(v),
                    created_at: None,
                    uses: None,
                    last_used: None,
                    state: state.clone(),
                    lives: wrapped.clone(),
                });
            }
        }
        for (kind, id) in [("audit", "audit-key"), ("row", "row-key")] {
            out.push(KeyInventory {
                kind,
                id: id.into(),
                version: 1,
                created_at: None,
                uses: None,
                last_used: None,
                state: "in use".into(),
                lives: wrapped.clone(),
            });
        }
        // When each wrapped key was made, and what the nodes counted: last uses, and use counts
        // where not counted otherwise.
        let made = self.store.secrets_made().await?;
        let counted = self.store.key_uses().await?;
        for k in &mut out {
            if k.created_at.is_none() && k.kind != "kek" {
                k.created_at = made.iter().find(|(n, _)| *n == k.id).map(|(_, t)| *t);
            }
            let Some(u) = counted.iter().find(|u| u.kind == k.kind && u.id == k.id) else {
                continue;
            };
            k.last_used = Some(u.last_used_at);
            if k.uses.is_none() {
                k.uses = Some(u.uses);
            }
        }
        Ok(out)
    }

    /// Walks the whole chain: every entry's hash and MAC, the anchored head, and a recorded head
    /// if one is given.
    pub async fn verify_audit(
        &self,
        expect: Option<ExpectedHead>,
    ) -> Result<Verification, AdminError> {
        Ok(verify_chain(&self.store, &self.secrets.audit_key, expect).await?)
    }

    /// The anchored head, after checking it against the last entry (as before an append): the
    /// value an operator or a SIEM records outside the database.
    pub async fn audit_head(&self) -> Result<Head, AdminError> {
        let tail = self.store.last_audit_entry().await?;
        let head = self.store.audit_head().await?;
        check_stored(&self.secrets.audit_key, tail.as_ref(), head.as_ref(), false)
            .map_err(StoreError::AuditBroken)?;
        // A verified state with entries always has a head.
        head.ok_or_else(|| AdminError::Store(StoreError::Database("no anchored head".into())))
    }

    /// Writes entries after `after` as JSON lines; returns how many, and the last one's sequence
    /// number (`after` if none).
    pub async fn export_audit(
        &self,
        after: i64,
        out: &mut dyn Write,
    ) -> Result<(u64, i64), AdminError> {
        let mut after = after;
        let mut count = 0u64;
        loop {
            let page = self.store.audit_log(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                out.write_all(entry.to_json().map_err(std::io::Error::from)?.as_bytes())?;
                out.write_all(b"\n")?;
                count += 1;
            }
        }
        out.flush()?;
        Ok((count, after))
    }
}

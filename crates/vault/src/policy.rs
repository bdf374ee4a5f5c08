//! Roles and what they may do, per field kind: tokenize (and, separately, receive fingerprints,
//! deterministic tokens and card-number hints), reveal plain, reveal masked, delete; and how fast.
//!
//! ```toml
//! [roles.checkout]          # the merchant's checkout back end
//! tokenize = ["*"]
//! hints = ["brand", "last4"]
//! rate.tokenize = { per_minute = 6000, burst = 1000 }
//!
//! [roles.support]           # support agents
//! reveal_masked = ["pan", "email", "phone", "name"]
//! rate.reveal = { per_minute = 120, burst = 30 }
//!
//! [roles.payments]          # the payment job
//! reveal_plain = ["pan", "exp", "cvc", "name"]
//! reveal_masked = ["*"]
//! delete = ["*"]
//! rate.reveal = { per_minute = 600, burst = 100 }
//! anomaly = { per_minute = 600, plain_per_hour = 36000, new_tokens_per_hour = 36000 }
//!
//! [roles.auditor]           # compliance: reads and verifies the audit log, sees no value
//! audit = true
//!
//! [roles.security]          # security officers: the audit log, and unlocking locked callers
//! audit = true
//! unlock = true
//!
//! [roles.privacy]           # data protection: erasure and export requests of customers
//! reveal_plain = ["name", "email", "phone", "address", "postal-code", "birth-date"]
//! reveal_masked = ["*"]
//! erase = true
//! export = true
//! ```
//!
//! `anomaly` sets a role's reveal anomaly limits (a top-level `[anomaly]` table sets them for
//! every role): a caller whose reveals leave them is locked ([`crate::anomaly`]). `unlock = true`
//! lets a role's operators lift such a lock, with a fresh second factor.
//!
//! `"*"` stands for every kind. A kind listed under `reveal_plain` is revealed in the clear, one
//! under `reveal_masked` only masked; a kind under neither is refused. `audit = true` lets a role
//! read the audit log and its verification over HTTP; `erase = true` lets it erase a data subject
//! and `export = true` export one's values (each as the role may reveal it).
//!
//! Least privilege: tokenizing gives a token and nothing else. A keyed fingerprint comes back only
//! for kinds under `fingerprint`, a `deterministic` token format is accepted only for kinds under
//! `deterministic`, and a card number's `brand`, `bin` and `last4` only as listed under `hints`:
//! with a fingerprint (or a deterministic token) and the BIN and last four, anyone able to seal
//! envelopes could try the ~10^5 candidates of a 16-digit card number and recognise the one that
//! matches. The built-in roles hold neither, and none of them both tokenizes and reveals in the
//! clear.
//!
//! `rate.tokenize` and `rate.reveal` are token buckets per API key (on each vault node): each
//! envelope or token counts one, `burst` at once at most, refilled at `per_minute`. A request
//! beyond them gets `429` with `Retry-After`. A role without a `rate` entry gets
//! [`DEFAULT_TOKENIZE_RATE`] and [`DEFAULT_REVEAL_RATE`]; `{ unlimited = true }` lifts a limit.

use std::collections::BTreeMap;
use std::path::Path;

use fieldseal_core::envelope::FieldKind;
use serde::Deserialize;

/// The built-in policy, used when no policy file is configured.
pub const DEFAULT_POLICY: &str = r#"
[roles.checkout]
tokenize = ["*"]
hints = ["brand", "last4"]
rate.tokenize = { per_minute = 6000, burst = 1000 }

[roles.support]
reveal_masked = ["pan", "email", "phone", "name"]
rate.reveal = { per_minute = 120, burst = 30 }

[roles.payments]
reveal_plain = ["pan", "exp", "cvc", "name"]
reveal_masked = ["*"]
delete = ["*"]
rate.reveal = { per_minute = 600, burst = 100 }
anomaly = { per_minute = 600, plain_per_hour = 36000, new_tokens_per_hour = 36000 }

[roles.auditor]
audit = true

[roles.security]
audit = true
unlock = true

[roles.privacy]
reveal_plain = ["name", "email", "phone", "address", "postal-code", "birth-date"]
reveal_masked = ["*"]
erase = true
export = true
"#;

/// The tokenize limit of a role whose policy entry names none.
pub const DEFAULT_TOKENIZE_RATE: Rate = Rate {
    per_minute: 6000,
    burst: 1000,
};

/// The reveal limit of a role whose policy entry names none.
pub const DEFAULT_REVEAL_RATE: Rate = Rate {
    per_minute: 600,
    burst: 100,
};

/// Why a policy was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {0}: {1}")]
    Read(String, std::io::Error),
    /// Not TOML of the expected shape.
    #[error("invalid policy: {0}")]
    Parse(String),
    /// A kind name that does not exist.
    #[error("invalid policy: role {role}: unknown field kind {kind:?}")]
    UnknownKind {
        /// The role.
        role: String,
        /// The name.
        kind: String,
    },
    /// A role name outside `a-z 0-9 _ -` or longer than 64.
    #[error("invalid policy: bad role name {0:?}")]
    BadRoleName(String),
    /// An `anomaly` table out of range.
    #[error("invalid policy: {0}")]
    Anomaly(String),
    /// The newest stored policy's audit entry does not verify.
    #[error("the stored policy (audit entry {0}) failed its integrity check")]
    Tampered(i64),
    /// The stored policy could not be read.
    #[error("cannot read the stored policy: {0}")]
    Store(String),
    /// A hint name other than `brand`, `bin` and `last4`.
    #[error("invalid policy: role {role}: unknown hint {hint:?} (brand, bin, last4)")]
    UnknownHint {
        /// The role.
        role: String,
        /// The name.
        hint: String,
    },
    /// A rate limit that is neither `{ per_minute, burst }` (both at least 1) nor
    /// `{ unlimited = true }`.
    #[error(
        "invalid policy: role {role}: rate.{what} needs per_minute and burst of at least 1, or \
         unlimited = true"
    )]
    BadRate {
        /// The role.
        role: String,
        /// `tokenize` or `reveal`.
        what: &'static str,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    roles: BTreeMap<String, RoleDoc>,
    /// Retention period per kind ([`crate::retention`]).
    #[serde(default)]
    retention_days: BTreeMap<String, u32>,
    /// Reveal anomaly limits of every role ([`crate::anomaly`]).
    #[serde(default)]
    anomaly: crate::anomaly::AnomalyDoc,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RoleDoc {
    tokenize: Vec<String>,
    reveal_plain: Vec<String>,
    reveal_masked: Vec<String>,
    delete: Vec<String>,
    fingerprint: Vec<String>,
    deterministic: Vec<String>,
    hints: Vec<String>,
    audit: bool,
    erase: bool,
    export: bool,
    unlock: bool,
    rate: RatesDoc,
    anomaly: Option<crate::anomaly::AnomalyDoc>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RatesDoc {
    tokenize: Option<RateDoc>,
    reveal: Option<RateDoc>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RateDoc {
    per_minute: u32,
    burst: u32,
    unlimited: bool,
}

impl RateDoc {
    fn parse(
        doc: Option<&Self>,
        default: Rate,
        role: &str,
        what: &'static str,
    ) -> Result<Option<Rate>, PolicyError> {
        match doc {
            None => Ok(Some(default)),
            Some(d) if d.unlimited && d.per_minute == 0 && d.burst == 0 => Ok(None),
            Some(d) if !d.unlimited && d.per_minute > 0 && d.burst > 0 => Ok(Some(Rate {
                per_minute: d.per_minute,
                burst: d.burst,
            })),
            Some(_) => Err(PolicyError::BadRate {
                role: role.into(),
                what,
            }),
        }
    }
}

/// A token bucket's shape: `burst` items at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Items added to the bucket per minute.
    pub per_minute: u32,
    /// The bucket's size: the most items at once.
    pub burst: u32,
}

/// Which public facts of a card number a role gets back when it tokenizes one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// The card brand.
    pub brand: bool,
    /// The first six digits.
    pub bin: bool,
    /// The last four digits.
    pub last4: bool,
}

impl Hints {
    fn parse(role: &str, names: &[String]) -> Result<Self, PolicyError> {
        let mut h = Self::default();
        for name in names {
            match name.as_str() {
                "*" => {
                    h = Self {
                        brand: true,
                        bin: true,
                        last4: true,
                    };
                }
                "brand" => h.brand = true,
                "bin" => h.bin = true,
                "last4" => h.last4 = true,
                _ => {
                    return Err(PolicyError::UnknownHint {
                        role: role.into(),
                        hint: name.clone(),
                    });
                }
            }
        }
        Ok(h)
    }

    /// The names granted.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.brand, "brand"),
            (self.bin, "bin"),
            (self.last4, "last4"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// A set of field kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindSet(Vec<FieldKind>);

impl KindSet {
    fn parse(role: &str, names: &[String]) -> Result<Self, PolicyError> {
        let mut kinds = Vec::new();
        for name in names {
            if name == "*" {
                return Ok(Self(FieldKind::ALL.to_vec()));
            }
            let kind = name.parse().map_err(|_| PolicyError::UnknownKind {
                role: role.into(),
                kind: name.clone(),
            })?;
            kinds.push(kind);
        }
        Ok(Self(kinds))
    }

    /// Whether the set holds `kind`.
    pub fn contains(&self, kind: FieldKind) -> bool {
        self.0.contains(&kind)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The kinds' names.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|k| k.as_str()).collect()
    }
}

/// How a token's value may be revealed to a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    /// In the clear.
    Plain,
    /// Masked.
    Masked,
    /// Not at all.
    Denied,
}

/// One role's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    /// Kinds the role may tokenize.
    pub tokenize: KindSet,
    /// Kinds revealed in the clear.
    pub reveal_plain: KindSet,
    /// Kinds revealed masked.
    pub reveal_masked: KindSet,
    /// Kinds whose tokens the role may delete.
    pub delete: KindSet,
    /// Kinds whose keyed fingerprint the role gets back when it tokenizes them.
    pub fingerprint: KindSet,
    /// Kinds the role may ask deterministic tokens for.
    pub deterministic: KindSet,
    /// The card-number hints the role gets back when it tokenizes a card number.
    pub hints: Hints,
    /// Whether the role may read and verify the audit log.
    pub audit: bool,
    /// The tokenize limit per API key; `None` for unlimited.
    pub tokenize_rate: Option<Rate>,
    /// The reveal limit per API key; `None` for unlimited.
    pub reveal_rate: Option<Rate>,
    /// Whether the role may erase a data subject (`DELETE /v1/subjects/{id}`).
    pub erase: bool,
    /// Whether the role may export a data subject's values, as it may see them.
    pub export: bool,
    /// Whether the role's operators may unlock a caller locked for a reveal anomaly (with a
    /// fresh second factor); the role also sees every caller's lock state.
    pub unlock: bool,
    /// The limits its reveals are watched against ([`crate::anomaly`]).
    pub anomaly: crate::anomaly::AnomalyPolicy,
}

impl Role {
    /// How `kind` is revealed to this role.
    pub fn reveal(&self, kind: FieldKind) -> Reveal {
        if self.reveal_plain.contains(kind) {
            Reveal::Plain
        } else if self.reveal_masked.contains(kind) {
            Reveal::Masked
        } else {
            Reveal::Denied
        }
    }

    /// Whether the role may reveal anything at all.
    pub fn may_reveal(&self) -> bool {
        !self.reveal_plain.is_empty() || !self.reveal_masked.is_empty()
    }

    /// Whether the role can tell which value a token stands for without revealing it: it gets
    /// fingerprints or deterministic tokens for some kind.
    pub fn links_values(&self) -> bool {
        !self.fingerprint.is_empty() || !self.deterministic.is_empty()
    }
}

/// All roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    roles: BTreeMap<String, Role>,
    retention: crate::retention::Retention,
    /// Where it came from and the SHA-256 of its text, for the audit log.
    origin: String,
}

fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

impl Policy {
    /// Parses a policy document.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let doc: PolicyDoc = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        let anomaly = doc
            .anomaly
            .apply(&crate::anomaly::AnomalyPolicy::default(), "anomaly")
            .map_err(PolicyError::Anomaly)?;
        let mut roles = BTreeMap::new();
        for (name, r) in doc.roles {
            if !valid_role_name(&name) {
                return Err(PolicyError::BadRoleName(name));
            }
            let role = Role {
                tokenize: KindSet::parse(&name, &r.tokenize)?,
                reveal_plain: KindSet::parse(&name, &r.reveal_plain)?,
                reveal_masked: KindSet::parse(&name, &r.reveal_masked)?,
                delete: KindSet::parse(&name, &r.delete)?,
                fingerprint: KindSet::parse(&name, &r.fingerprint)?,
                deterministic: KindSet::parse(&name, &r.deterministic)?,
                hints: Hints::parse(&name, &r.hints)?,
                audit: r.audit,
                tokenize_rate: RateDoc::parse(
                    r.rate.tokenize.as_ref(),
                    DEFAULT_TOKENIZE_RATE,
                    &name,
                    "tokenize",
                )?,
                reveal_rate: RateDoc::parse(
                    r.rate.reveal.as_ref(),
                    DEFAULT_REVEAL_RATE,
                    &name,
                    "reveal",
                )?,
                erase: r.erase,
                export: r.export,
                unlock: r.unlock,
                anomaly: match &r.anomaly {
                    Some(own) => own
                        .apply(&anomaly, &format!("roles.{name}.anomaly"))
                        .map_err(PolicyError::Anomaly)?,
                    None => anomaly.clone(),
                },
            };
            roles.insert(name, role);
        }
        let digest =
            fieldseal_core::encoding::hex(&fieldseal_core::at_rest::sha256(text.as_bytes()));
        Ok(Self {
            roles,
            retention: crate::retention::Retention::parse(&doc.retention_days)?,
            origin: format!("sha256 {digest}"),
        })
    }

    /// Loads the policy file, or the built-in policy.
    pub fn load(file: Option<&Path>) -> Result<Self, PolicyError> {
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| PolicyError::Read(path.display().to_string(), e))?;
                let mut policy = Self::parse(&text)?;
                policy.origin = format!("{} of {}", policy.origin, path.display());
                Ok(policy)
            }
            None => {
                let mut policy = Self::parse(DEFAULT_POLICY)?;
                policy.origin = format!("{} of the built-in policy", policy.origin);
                Ok(policy)
            }
        }
    }

    /// The policy stored for every node on the database: the newest `policy.store` audit entry's
    /// text and the entry's position, if one exists. An entry that does not verify is
    /// [`PolicyError::Tampered`]: the vault keeps the policy it has rather than trust it.
    pub async fn stored<S: fieldseal_vault_store::Store>(
        store: &S,
        audit_key: &fieldseal_core::at_rest::SymmetricKey,
    ) -> Result<Option<(Self, i64)>, PolicyError> {
        let entry = store
            .last_audit_entry_of(fieldseal_vault_store::audit::Action::PolicyStore.as_str())
            .await
            .map_err(|e| PolicyError::Store(e.to_string()))?;
        match entry {
            None => Ok(None),
            Some(e) if !fieldseal_vault_store::audit::entry_authentic(audit_key, &e) => {
                Err(PolicyError::Tampered(e.seq))
            }
            Some(e) => {
                let mut policy = Self::parse(&e.detail)?;
                policy.origin = format!("{} of audit entry {}", policy.origin, e.seq);
                Ok(Some((policy, e.seq)))
            }
        }
    }

    /// Where the policy came from and its text's SHA-256, as the audit log records it
    /// (`sha256 <hex> of <file>`).
    pub fn describe(&self) -> &str {
        &self.origin
    }

    /// The role with this name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// How long values of each kind are kept.
    pub fn retention(&self) -> &crate::retention::Retention {
        &self.retention
    }

    /// The role names.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_policy_grants_what_it_says() {
        let p = Policy::load(None).unwrap();
        let support = p.role("support").unwrap();
        assert_eq!(support.reveal(FieldKind::Pan), Reveal::Masked);
        assert_eq!(support.reveal(FieldKind::Cvc), Reveal::Denied);
        assert!(!support.tokenize.contains(FieldKind::Pan));
        let payments = p.role("payments").unwrap();
        assert_eq!(payments.reveal(FieldKind::Pan), Reveal::Plain);
        assert_eq!(payments.reveal(FieldKind::Email), Reveal::Masked);
        let checkout = p.role("checkout").unwrap();
        assert!(!checkout.may_reveal());
        assert!(checkout.tokenize.contains(FieldKind::Iban));
        // Least privilege: a token back, the brand and last four for a receipt, nothing that
        // links or enumerates values.
        assert!(!checkout.links_values());
        assert_eq!(checkout.hints.names(), ["brand", "last4"]);
        assert!(checkout.tokenize_rate.is_some());
        assert!(!checkout.audit && !support.audit && !payments.audit);
        let auditor = p.role("auditor").unwrap();
        assert!(auditor.audit && !auditor.may_reveal() && auditor.tokenize.is_empty());
        assert!(p.role("admin").is_none());
        // No built-in role both tokenizes and reveals in the clear, and none gets fingerprints or
        // deterministic tokens.
        for name in p.role_names() {
            let r = p.role(name).unwrap();
            assert!(
                r.tokenize.is_empty() || r.reveal_plain.is_empty(),
                "{name} tokenizes and reveals plain"
            );
            assert!(!r.links_values(), "{name}");
            if r.may_reveal() {
                assert!(r.reveal_rate.is_some(), "{name} reveals without a limit");
            }
        }
    }

    #[test]
    fn rates_default_limit_and_unlimited() {
        let p = Policy::parse(
            "[roles.a]\ntokenize = [\"*\"]\n\
             [roles.b]\nrate.tokenize = { unlimited = true }\n\
             rate.reveal = { per_minute = 60, burst = 5 }\n",
        )
        .unwrap();
        let a = p.role("a").unwrap();
        assert_eq!(a.tokenize_rate, Some(DEFAULT_TOKENIZE_RATE));
        assert_eq!(a.reveal_rate, Some(DEFAULT_REVEAL_RATE));
        let b = p.role("b").unwrap();
        assert_eq!(b.tokenize_rate, None);
        assert_eq!(
            b.reveal_rate,
            Some(Rate {
                per_minute: 60,
                burst: 5
            })
        );
        for bad in [
            "rate.reveal = { per_minute = 0, burst = 5 }",
            "rate.reveal = { per_minute = 5 }",
            "rate.reveal = { unlimited = true, burst = 5 }",
            "rate.reveal = { unlimited = false }",
        ] {
            assert!(
                matches!(
                    Policy::parse(&format!("[roles.a]\n{bad}\n")),
                    Err(PolicyError::BadRate { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Policy::parse("[roles.a]\nhints = [\"pan\"]\n"),
            Err(PolicyError::UnknownHint { .. })
        ));
    }

    #[test]
    fn refuses_unknown_kinds_fields_and_bad_names() {
        assert!(matches!(
            Policy::parse("[roles.a]\ntokenize = [\"card\"]\n"),
            Err(PolicyError::UnknownKind { .. })
        ));
        assert!(matches!(
            Policy::parse("[roles.a]\nreveal = [\"pan\"]\n"),
            Err(PolicyError::Parse(_))
        ));
        assert!(matches!(
            Policy::parse("[roles.\"A B\"]\n"),
            Err(PolicyError::BadRoleName(_))
        ));
    }
}

//! How long values are kept: a retention period per kind in the policy file (`retention_days`), a
//! shorter time to live per tokenize item (`ttl_secs`), and for card security codes the
//! seconds-long `cvc_retention_secs` of the settings, which no policy lengthens (PCI DSS 3.3.1: no
//! sensitive authentication data after authorization).
//!
//! ```toml
//! [retention_days]
//! "*" = 730          # every kind not listed: two years
//! pan = 400          # card numbers: the chargeback window and some
//! email = 1095
//! ```
//!
//! A token's expiry is fixed when it is stored and bound to its value (the row's associated data):
//! at that time the background purge deletes it, audited, and until then a reveal after it answers
//! `not_found`, like a token never issued. Kinds without a period are kept until deleted.

use std::collections::BTreeMap;

use fieldseal_core::envelope::FieldKind;

use crate::policy::PolicyError;
use crate::refusal::Refusal;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Longest retention period a policy may set (100 years): beyond it, omit the kind.
const MAX_DAYS: u32 = 36_500;

/// Retention periods per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Days by kind (its header code).
    days: BTreeMap<u8, u32>,
}

impl Retention {
    /// Parses the policy's `retention_days` table (kind name or `"*"` to days).
    pub fn parse(table: &BTreeMap<String, u32>) -> Result<Self, PolicyError> {
        let bad = |why: String| PolicyError::Parse(format!("retention_days: {why}"));
        let mut days = BTreeMap::new();
        let default = table.get("*").copied();
        for (name, &d) in table {
            if d == 0 || d > MAX_DAYS {
                return Err(bad(format!(
                    "{name} = {d}: a period is 1 to {MAX_DAYS} days (omit a kind to keep its \
                     values until deleted)"
                )));
            }
            if name == "*" {
                continue;
            }
            let kind: FieldKind = name.parse().map_err(|_| PolicyError::UnknownKind {
                role: "retention_days".into(),
                kind: name.clone(),
            })?;
            if kind == FieldKind::Cvc {
                return Err(bad(
                    "cvc is kept for cvc_retention_secs (seconds) at most, never days".into(),
                ));
            }
            days.insert(kind.code(), d);
        }
        if let Some(d) = default {
            for kind in FieldKind::ALL {
                if kind != FieldKind::Cvc {
                    days.entry(kind.code()).or_insert(d);
                }
            }
        }
        Ok(Self { days })
    }

    /// The longest a value of `kind` may be kept, in seconds (`cvc_secs` for card security codes);
    /// `None`: until deleted.
    pub fn limit_secs(&self, kind: FieldKind, cvc_secs: u64) -> Option<i64> {
        if kind == FieldKind::Cvc {
            return Some(i64::try_from(cvc_secs).unwrap_or(i64::MAX));
        }
        self.days.get(&kind.code()).map(|d| i64::from(*d) * DAY)
    }

    /// When a value of `kind` stored at `now` with the item's `ttl_secs` expires: the TTL if given
    /// (refused if zero or longer than the kind's period), else the kind's period, else never.
    pub fn expiry(
        &self,
        kind: FieldKind,
        now: i64,
        ttl_secs: Option<u64>,
        cvc_secs: u64,
    ) -> Result<Option<i64>, Refusal> {
        let limit = self.limit_secs(kind, cvc_secs);
        let secs = match ttl_secs {
            None => limit,
            Some(0) => return Err(Refusal::BadTtl(None)),
            Some(ttl) => {
                let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
                match limit {
                    Some(max) if ttl > max => return Err(Refusal::BadTtl(Some(max))),
                    _ => Some(ttl),
                }
            }
        };
        Ok(secs.map(|s| now.saturating_add(s)))
    }

    /// The periods as the policy description shows them (`pan 400d, email 1095d`).
    pub fn describe(&self) -> String {
        self.days
            .iter()
            .filter_map(|(k, d)| Some(format!("{} {d}d", FieldKind::from_code(*k)?.as_str())))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a stored token is older than its kind's retention period under `policy` (which may have
/// been shortened since the token was stored).
pub fn outlived(
    policy: &crate::policy::Policy,
    settings: &crate::config::Settings,
    record: &fieldseal_vault_store::TokenRecord,
    now: i64,
) -> bool {
    record
        .kind
        .parse::<FieldKind>()
        .ok()
        .and_then(|k| {
            policy
                .retention()
                .limit_secs(k, settings.cvc_retention_secs)
        })
        .is_some_and(|limit| record.created_at.saturating_add(limit) <= now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn periods_bound_ttls_and_cvc_keeps_seconds() {
        let r = Retention::parse(&table(&[("*", 730), ("pan", 400)])).unwrap();
        assert_eq!(r.limit_secs(FieldKind::Pan, 60), Some(400 * DAY));
        assert_eq!(r.limit_secs(FieldKind::Email, 60), Some(730 * DAY));
        assert_eq!(r.limit_secs(FieldKind::Cvc, 60), Some(60));
        assert_eq!(
            r.expiry(FieldKind::Pan, 1000, None, 60),
            Ok(Some(1000 + 400 * DAY))
        );
        assert_eq!(r.expiry(FieldKind::Pan, 1000, Some(30), 60), Ok(Some(1030)));
        assert_eq!(
            r.expiry(FieldKind::Pan, 1000, Some(400 * 86_400 + 1), 60),
            Err(Refusal::BadTtl(Some(400 * DAY)))
        );
        assert_eq!(r.expiry(FieldKind::Cvc, 1000, None, 60), Ok(Some(1060)));
        assert_eq!(
            r.expiry(FieldKind::Cvc, 1000, Some(61), 60),
            Err(Refusal::BadTtl(Some(60)))
        );
        assert_eq!(
            r.expiry(FieldKind::Pan, 1000, Some(0), 60),
            Err(Refusal::BadTtl(None))
        );
        let none = Retention::default();
        assert_eq!(none.expiry(FieldKind::Email, 5, None, 60), Ok(None));
        assert_eq!(none.expiry(FieldKind::Email, 5, Some(10), 60), Ok(Some(15)));
    }

    #[test]
    fn refuses_cvc_days_unknown_kinds_and_empty_periods() {
        assert!(Retention::parse(&table(&[("cvc", 1)])).is_err());
        assert!(matches!(
            Retention::parse(&table(&[("card", 1)])),
            Err(PolicyError::UnknownKind { .. })
        ));
        assert!(Retention::parse(&table(&[("pan", 0)])).is_err());
        assert!(Retention::parse(&table(&[("pan", MAX_DAYS + 1)])).is_err());
    }
}

//! Repeated denials (failed authentications, requests over a rate limit), counted instead of
//! written one by one: a caller must not be able to grow the audit log (and the database) by one
//! entry per request.
//!
//! Per source address and presented key id, the first denial of each minute is audited at once
//! (the request fails if that entry cannot be written); the rest of that minute's denials are
//! counted and audited as one entry with the count once the minute is over. An address denied
//! [`Limits::throttle_after`] times in a minute is refused outright (`429`, before any database
//! work) until the minute ends; its refused requests are counted too. Memory is bounded:
//! at most [`Limits::max_keys_per_address`] key ids per address and [`Limits::max_addresses`]
//! addresses per minute are told apart, the rest are counted together under `*`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

/// The length of a counting window, in seconds.
pub const WINDOW_SECS: i64 = 60;

/// Thresholds and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures from one address in a minute after which it is refused until the minute ends.
    pub throttle_after: u32,
    /// Key ids told apart per address and minute.
    pub max_keys_per_address: usize,
    /// Addresses told apart per minute.
    pub max_addresses: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            throttle_after: 20,
            max_keys_per_address: 16,
            max_addresses: 4096,
        }
    }
}

/// What to do with one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The first of its address and key id this minute: audit it now.
    AuditNow,
    /// Counted; audited in the minute's summary.
    Counted,
}

/// One audit entry summing up a finished minute's failures of one address and key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The source address (`*` for addresses past the bound).
    pub address: String,
    /// The key id presented (`-` for none or malformed, `*` for ids past the bound).
    pub key_id: String,
    /// The minute's first second (Unix).
    pub minute: i64,
    /// Failures not yet audited one by one, per reason.
    pub reasons: BTreeMap<String, u64>,
    /// What was counted (`failed authentications`).
    pub noun: &'static str,
}

impl Summary {
    /// Failures in the summary.
    pub fn count(&self) -> u64 {
        self.reasons.values().sum()
    }

    /// The audit entry's detail.
    pub fn detail(&self) -> String {
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        format!(
            "{} more {} from {} with key {} in the minute from {} ({})",
            self.count(),
            self.noun,
            self.address,
            self.key_id,
            self.minute,
            reasons.join(", ")
        )
    }
}

#[derive(Default)]
struct Minute {
    start: i64,
    /// Per address: its failures this minute and per key id the unaudited failures by reason.
    addresses: HashMap<String, AddressCount>,
}

#[derive(Default)]
struct AddressCount {
    failures: u32,
    keys: HashMap<String, BTreeMap<String, u64>>,
}

/// The counters of the current minute and the summaries of ended ones not yet written.
pub struct DenialCounter {
    limits: Limits,
    noun: &'static str,
    state: Mutex<(Minute, Vec<Summary>)>,
}

impl DenialCounter {
    /// Counters with these limits, of `noun` (plural, for the summaries' text).
    pub fn new(limits: Limits, noun: &'static str) -> Self {
        Self {
            limits,
            noun,
            state: Mutex::new((Minute::default(), Vec::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Minute, Vec<Summary>)> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Moves to the minute of `now`, turning the previous minute's counts into summaries.
    fn roll(&self, state: &mut (Minute, Vec<Summary>), now: i64) {
        let start = now - now.rem_euclid(WINDOW_SECS);
        if state.0.start == start {
            return;
        }
        let ended = std::mem::replace(
            &mut state.0,
            Minute {
                start,
                ..Minute::default()
            },
        );
        for (address, count) in ended.addresses {
            for (key_id, reasons) in count.keys {
                if !reasons.is_empty() {
                    state.1.push(Summary {
                        address: address.clone(),
                        key_id,
                        minute: ended.start,
                        reasons,
                        noun: self.noun,
                    });
                }
            }
        }
    }

    /// Seconds until `address` may try again, if it failed too often this minute.
    pub fn throttled(&self, address: IpAddr, now: i64) -> Option<u64> {
        let mut state = self.lock();
        self.roll(&mut state, now);
        let count = state.0.addresses.get(&address.to_string())?;
        (count.failures >= self.limits.throttle_after).then(|| {
            u64::try_from(state.0.start + WINDOW_SECS - now)
                .unwrap_or(1)
                .max(1)
        })
    }

    /// Counts a failure of `address` presenting `key_id` (`None`: no or a malformed key) for
    /// `reason`.
    pub fn record(&self, address: IpAddr, key_id: Option<&str>, reason: &str, now: i64) -> Record {
        let mut state = self.lock();
        self.roll(&mut state, now);
        let minute = &mut state.0;
        let mut address = address.to_string();
        if !minute.addresses.contains_key(&address)
            && minute.addresses.len() >= self.limits.max_addresses
        {
            address = "*".into();
        }
        let count = minute.addresses.entry(address).or_default();
        count.failures = count.failures.saturating_add(1);
        let mut key = key_id.unwrap_or("-").to_owned();
        if !count.keys.contains_key(&key) && count.keys.len() >= self.limits.max_keys_per_address {
            key = "*".into();
        }
        match count.keys.get_mut(&key) {
            None => {
                count.keys.insert(key, BTreeMap::new());
                Record::AuditNow
            }
            Some(reasons) => {
                *reasons.entry(reason.to_owned()).or_default() += 1;
                Record::Counted
            }
        }
    }

    /// Summaries of minutes ended by `now`, to audit. (Taken: a caller that fails to write them
    /// puts them back with [`DenialCounter::restore`].)
    pub fn take_ended(&self, now: i64) -> Vec<Summary> {
        let mut state = self.lock();
        self.roll(&mut state, now);
        std::mem::take(&mut state.1)
    }

    /// Summaries of the current minute too (at shutdown).
    pub fn take_all(&self) -> Vec<Summary> {
        let mut state = self.lock();
        let start = state.0.start;
        self.roll(&mut state, start + WINDOW_SECS);
        std::mem::take(&mut state.1)
    }

    /// Puts back summaries that could not be written.
    pub fn restore(&self, mut summaries: Vec<Summary>) {
        let mut state = self.lock();
        summaries.append(&mut state.1);
        state.1 = summaries;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_failure_per_address_and_key_now_the_rest_summed_up() {
        let f = DenialCounter::new(Limits::default(), "failed authentications");
        let t = 6_000_000;
        let a = ip("192.0.2.1");
        assert_eq!(f.record(a, Some("k1"), "wrong secret", t), Record::AuditNow);
        for _ in 0..5 {
            assert_eq!(
                f.record(a, Some("k1"), "wrong secret", t + 1),
                Record::Counted
            );
        }
        assert_eq!(f.record(a, Some("k1"), "revoked", t + 2), Record::Counted);
        assert_eq!(f.record(a, None, "malformed", t + 3), Record::AuditNow);
        assert_eq!(
            f.record(ip("192.0.2.2"), Some("k1"), "x", t),
            Record::AuditNow
        );
        assert!(f.take_ended(t + 59).is_empty());
        let mut s = f.take_ended(t + 60);
        s.sort_by(|x, y| x.key_id.cmp(&y.key_id));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].count(), 6);
        assert_eq!(s[0].key_id, "k1");
        assert!(
            s[0].detail()
                .contains("6 more failed authentications from 192.0.2.1")
        );
        // A new minute audits the first failure again.
        assert_eq!(
            f.record(a, Some("k1"), "wrong secret", t + 61),
            Record::AuditNow
        );
    }

    #[test]
    fn throttles_an_address_until_the_minute_ends() {
        let limits = Limits {
            throttle_after: 3,
            ..Limits::default()
        };
        let f = DenialCounter::new(limits, "failed authentications");
        let t = 6_000_000;
        let a = ip("2001:db8::1");
        for _ in 0..3 {
            assert_eq!(f.throttled(a, t), None);
            f.record(a, None, "malformed", t);
        }
        assert_eq!(f.throttled(a, t + 10), Some(50));
        assert_eq!(f.throttled(ip("2001:db8::2"), t + 10), None);
        assert_eq!(f.throttled(a, t + 60), None);
    }

    #[test]
    fn memory_and_entries_stay_bounded_whatever_the_ids_and_addresses() {
        let limits = Limits {
            throttle_after: u32::MAX,
            max_keys_per_address: 4,
            max_addresses: 8,
        };
        let f = DenialCounter::new(limits, "failed authentications");
        let t = 6_000_000;
        let mut now = 0;
        for i in 0..10_000u32 {
            let a = IpAddr::from([10, 0, (i % 256) as u8, (i / 256) as u8]);
            if f.record(a, Some(&format!("{i:012x}")), "unknown", t) == Record::AuditNow {
                now += 1;
            }
        }
        // 8 addresses and `*`, each with at most 4 ids and `*`.
        assert!(now <= 9 * 5, "{now} entries at once");
        let s = f.take_all();
        assert!(s.len() <= 9 * 5);
        assert_eq!(s.iter().map(Summary::count).sum::<u64>() + now, 10_000);
    }
}

//! Reveal anomaly detection: the vault's own intrusion detection. Each caller (an API key, or an
//! operator) has, on each vault node, a learned baseline of its reveal rate per kind and per mode
//! (plain or masked), and of the tokens it reveals for the first time; the policy file sets
//! absolute ceilings. A reveal request outside them locks the caller: its reveals are refused
//! with `423 locked` until an operator with a fresh second factor, or the CLI, unlocks it
//! (docs/incident-response.md).
//!
//! ```toml
//! [anomaly]                       # every role, unless the role says otherwise
//! per_minute = 200                # most reveals of one kind and mode, or first-time tokens, in 60 s
//! factor = 4.0                    # once learned: at most factor x the baseline per minute ...
//! floor = 30                      # ... but never fewer than this
//! learn_minutes = 60              # minutes since a series' first reveal before it counts
//! plain_per_hour = 5000           # most plain reveals in an hour
//! new_tokens_per_hour = 2000      # most first-time tokens in an hour (a sweep)
//! off_hours = "22-06"             # plain reveals between these UTC hours lock (unset: never)
//!
//! [roles.payments.anomaly]        # a role's own ceilings (the rest from [anomaly])
//! plain_per_hour = 40000
//! ```
//!
//! The rules, checked at every revealed token, in order:
//! - off hours: a plain reveal within `off_hours` locks at once;
//! - sweep: more first-time tokens (not among the up to 400,000 this caller revealed on this node
//!   in its last one to two days of activity) than the minute limit of that series within 60
//!   seconds, or more than `new_tokens_per_hour` within an hour;
//! - burst: more than the minute limit of one kind and mode within the last 60 seconds. The
//!   minute limit is `per_minute` until the series is `learn_minutes` old on this node, then the
//!   larger of `factor` times its baseline (an exponentially weighted per-minute rate, half-life
//!   one hour) and 1.5 times its busiest minute (fading, half-life a day), at least `floor` and at
//!   most `per_minute`;
//! - ceiling: more than `plain_per_hour` plain reveals within an hour.
//!
//! "Within 60 seconds" is this minute's count plus the share of the previous minute's that the
//! window still covers: a burst split across a minute boundary can reach about twice the limit.
//! A sweep over tokens never revealed before is locked at the latest at its `per_minute + 1`-th
//! token within a minute (201 with the defaults), or at its `new_tokens_per_hour + 1`-th within an
//! hour when slower; against a learned baseline, at the first token past the learned limit.
//!
//! Everything here is pure: the time is an argument, so tests run days of traffic in
//! milliseconds. Baselines live in each node's memory (a restart relearns them); locks live in the
//! audit log, so every node refuses a locked caller.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

use fieldseal_core::envelope::FieldKind;
use serde::Deserialize;

/// Seconds of one bucket: the detector counts per minute.
const MINUTE: i64 = 60;

/// Minutes kept per series: one hour.
const HOUR_BUCKETS: usize = 60;

/// First-time tokens remembered per caller and generation; two generations are kept, the older
/// dropped when the newer fills or is a day old.
const SEEN_PER_GENERATION: usize = 200_000;

/// How long a generation of remembered tokens lasts, in seconds.
const SEEN_GENERATION_SECS: i64 = 24 * 3600;

/// One role's anomaly limits (policy file `[anomaly]`, `[roles.NAME.anomaly]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyPolicy {
    /// Whether reveals of this role are watched at all.
    pub enabled: bool,
    /// Most reveals of one kind and mode (or first-time tokens) within 60 seconds.
    pub per_minute: u32,
    /// Once learned, the minute limit is this many times the baseline ...
    pub factor: f64,
    /// ... and never below this.
    pub floor: u32,
    /// Minutes of history before the baseline counts.
    pub learn_minutes: u32,
    /// Most plain reveals within an hour.
    pub plain_per_hour: u32,
    /// Most first-time tokens within an hour.
    pub new_tokens_per_hour: u32,
    /// UTC hours `[start, end)` (wrapping past midnight) in which a plain reveal locks.
    pub off_hours: Option<(u8, u8)>,
}

/// The factor is checked finite when parsed.
impl Eq for AnomalyPolicy {}

impl Default for AnomalyPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            per_minute: 200,
            factor: 4.0,
            floor: 30,
            learn_minutes: 60,
            plain_per_hour: 5000,
            new_tokens_per_hour: 2000,
            off_hours: None,
        }
    }
}

/// The policy file's `anomaly` table: every member optional, the rest inherited.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AnomalyDoc {
    enabled: Option<bool>,
    per_minute: Option<u32>,
    factor: Option<f64>,
    floor: Option<u32>,
    learn_minutes: Option<u32>,
    plain_per_hour: Option<u32>,
    new_tokens_per_hour: Option<u32>,
    off_hours: Option<String>,
}

impl AnomalyDoc {
    /// `base` with this table's members applied; `scope` names the table in errors.
    pub(crate) fn apply(&self, base: &AnomalyPolicy, scope: &str) -> Result<AnomalyPolicy, String> {
        let mut p = base.clone();
        if let Some(v) = self.enabled {
            p.enabled = v;
        }
        for (slot, value, name) in [
            (&mut p.per_minute, self.per_minute, "per_minute"),
            (&mut p.floor, self.floor, "floor"),
            (&mut p.plain_per_hour, self.plain_per_hour, "plain_per_hour"),
            (
                &mut p.new_tokens_per_hour,
                self.new_tokens_per_hour,
                "new_tokens_per_hour",
            ),
        ] {
            if let Some(v) = value {
                if v == 0 {
                    return Err(format!("{scope}.{name} must be at least 1"));
                }
                *slot = v;
            }
        }
        if let Some(v) = self.learn_minutes {
            p.learn_minutes = v;
        }
        if let Some(v) = self.factor {
            if !(v.is_finite() && v >= 1.0) {
                return Err(format!("{scope}.factor must be a number of at least 1"));
            }
            p.factor = v;
        }
        if let Some(text) = &self.off_hours {
            p.off_hours = Some(parse_hours(text).ok_or_else(|| {
                format!(
                    "{scope}.off_hours must be \"HH-HH\" (UTC hours 0 to 23, start and end differ)"
                )
            })?);
        }
        if p.floor > p.per_minute {
            return Err(format!(
                "{scope}: floor ({}) above per_minute ({})",
                p.floor, p.per_minute
            ));
        }
        Ok(p)
    }
}

fn parse_hours(text: &str) -> Option<(u8, u8)> {
    let (a, b) = text.split_once('-')?;
    let a: u8 = a.trim().parse().ok()?;
    let b: u8 = b.trim().parse().ok()?;
    (a < 24 && b < 24 && a != b).then_some((a, b))
}

/// Whether Unix time `t` falls within the UTC hours `[start, end)`.
fn within_hours(t: i64, (start, end): (u8, u8)) -> bool {
    let hour = u8::try_from(t.rem_euclid(86_400) / 3600).unwrap_or(0);
    if start < end {
        (start..end).contains(&hour)
    } else {
        hour >= start || hour < end
    }
}

/// One revealed token, as the detector sees it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Its kind.
    pub kind: FieldKind,
    /// Revealed in the clear (else masked).
    pub plain: bool,
    /// The token.
    pub token: &'a str,
}

/// What a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Series {
    /// Reveals of a kind, plain or masked.
    Reveals(FieldKind, bool),
    /// First-time tokens, any kind.
    NewTokens,
    /// Plain reveals, any kind.
    Plain,
}

impl Series {
    fn describe(self) -> String {
        match self {
            Self::Reveals(kind, plain) => format!(
                "{} reveals of {}",
                if plain { "plain" } else { "masked" },
                kind.as_str()
            ),
            Self::NewTokens => "tokens never revealed before".into(),
            Self::Plain => "plain reveals".into(),
        }
    }
}

/// Per-minute counts of the last hour, and the learned rate.
#[derive(Debug, Clone)]
struct Counts {
    /// Counts of minutes `minute - 59 ..= minute`, at `minute % 60`.
    buckets: [u32; HOUR_BUCKETS],
    /// The minute of the newest bucket.
    minute: i64,
    /// Exponentially weighted per-minute rate of the completed minutes (before correction).
    weighted: f64,
    /// The weight `weighted` has gathered (`1 - decay^minutes`): dividing by it corrects the
    /// average's start from zero.
    weight: f64,
    /// Completed minutes folded in.
    minutes: u32,
    /// The busiest completed minute, fading with a half-life of a day: a client that works in
    /// batches (idle, then its rate limit for a few minutes) is held to its own bursts.
    peak: f64,
}

/// Per-minute decay of the baseline: a half-life of one hour.
fn decay() -> f64 {
    0.5_f64.powf(1.0 / 60.0)
}

impl Counts {
    fn new(minute: i64) -> Self {
        Self {
            buckets: [0; HOUR_BUCKETS],
            minute,
            weighted: 0.0,
            weight: 0.0,
            minutes: 0,
            peak: 0.0,
        }
    }

    fn slot(minute: i64) -> usize {
        usize::try_from(minute.rem_euclid(HOUR_BUCKETS as i64)).unwrap_or(0)
    }

    /// The learned per-minute rate.
    fn baseline(&self) -> f64 {
        if self.weight > 0.0 {
            self.weighted / self.weight
        } else {
            0.0
        }
    }

    /// Moves the window to `minute`: the newest bucket's minute is complete and enters the
    /// baseline, the minutes between were empty (they only decay it), and their buckets, an hour
    /// old, are cleared.
    fn advance(&mut self, minute: i64) {
        if minute <= self.minute {
            return;
        }
        let d = decay();
        let steps = minute - self.minute;
        let count = f64::from(self.buckets[Self::slot(self.minute)]);
        let idle = i32::try_from(steps - 1).unwrap_or(i32::MAX);
        let fade = d.powi(idle);
        self.weighted = (self.weighted * d + count * (1.0 - d)) * fade;
        self.weight = 1.0 - (1.0 - self.weight) * d * fade;
        let day = 0.5_f64.powf(1.0 / (24.0 * 60.0));
        self.peak = (self.peak * day).max(count) * day.powi(idle);
        self.minutes = self
            .minutes
            .saturating_add(u32::try_from(steps).unwrap_or(u32::MAX));
        for m in (self.minute + 1)..=minute.min(self.minute + HOUR_BUCKETS as i64) {
            self.buckets[Self::slot(m)] = 0;
        }
        self.minute = minute;
    }

    fn add(&mut self, t: i64) {
        let minute = t.div_euclid(MINUTE);
        self.advance(minute);
        let slot = &mut self.buckets[Self::slot(minute)];
        *slot = slot.saturating_add(1);
    }

    /// The count within the last 60 seconds at `t`: this minute's, plus the share of the previous
    /// minute's that the window still covers.
    fn last_minute(&self, t: i64) -> f64 {
        let minute = t.div_euclid(MINUTE);
        let current = f64::from(self.buckets[Self::slot(minute)]);
        let previous = f64::from(self.buckets[Self::slot(minute - 1)]);
        let covered = 1.0 - (t.rem_euclid(MINUTE) as f64) / (MINUTE as f64);
        current + previous * covered
    }

    fn last_hour(&self) -> u64 {
        self.buckets.iter().map(|&c| u64::from(c)).sum()
    }

    /// Clears the counts of the last hour, keeping what was learned.
    fn clear(&mut self) {
        self.buckets = [0; HOUR_BUCKETS];
    }
}

/// Tokens a caller revealed before, in two generations.
#[derive(Debug, Default)]
struct SeenTokens {
    current: HashSet<u64>,
    previous: HashSet<u64>,
    started: i64,
}

impl SeenTokens {
    /// Records `hash`; whether it is new.
    fn insert(&mut self, hash: u64, t: i64) -> bool {
        if self.current.contains(&hash) || self.previous.contains(&hash) {
            return false;
        }
        if self.current.len() >= SEEN_PER_GENERATION || t - self.started >= SEEN_GENERATION_SECS {
            self.previous = std::mem::take(&mut self.current);
            self.started = t;
        }
        self.current.insert(hash);
        true
    }
}

/// One caller's history on this node.
#[derive(Debug)]
struct CallerState {
    series: HashMap<Series, Counts>,
    seen: SeenTokens,
    /// Its last reveal.
    last: i64,
}

/// A caller with no reveal for this long is forgotten (its memory freed; a key revoked or an
/// operator gone stays no longer).
const IDLE_FORGOTTEN_SECS: i64 = 2 * 24 * 3600;

/// Why a caller was locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip(pub String);

impl std::fmt::Display for Trip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The detector: every caller's history on this node.
#[derive(Debug, Default)]
pub struct Detector {
    callers: HashMap<String, CallerState>,
    /// Observations since idle callers were last looked for.
    since_sweep: u32,
    /// Keys the hash of remembered tokens (per process): the detector keeps no token itself.
    hasher: std::collections::hash_map::RandomState,
}

impl Detector {
    /// A detector with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets a caller's history.
    pub fn forget(&mut self, caller: &str) {
        self.callers.remove(caller);
    }

    /// Clears a caller's counts of the last hour (it was unlocked), keeping its learned rates:
    /// it does not start again from the ceilings.
    pub fn pardon(&mut self, caller: &str) {
        if let Some(state) = self.callers.get_mut(caller) {
            state.series.values_mut().for_each(Counts::clear);
        }
    }

    /// How many callers the detector remembers.
    pub fn callers(&self) -> usize {
        self.callers.len()
    }

    /// Counts the tokens a caller is about to be shown at `t`; the first rule they break, if any.
    pub fn observe(
        &mut self,
        caller: &str,
        policy: &AnomalyPolicy,
        revealed: &[Seen<'_>],
        t: i64,
    ) -> Option<Trip> {
        if !policy.enabled || revealed.is_empty() {
            return None;
        }
        self.since_sweep += 1;
        if self.since_sweep >= 10_000 {
            self.since_sweep = 0;
            self.callers
                .retain(|_, state| t - state.last < IDLE_FORGOTTEN_SECS);
        }
        let hasher = &self.hasher;
        let state = self
            .callers
            .entry(caller.to_owned())
            .or_insert_with(|| CallerState {
                series: HashMap::new(),
                seen: SeenTokens {
                    started: t,
                    ..SeenTokens::default()
                },
                last: t,
            });
        state.last = state.last.max(t);
        let mut trip = None;
        for item in revealed {
            if let Some((start, end)) = policy.off_hours.filter(|_| item.plain)
                && within_hours(t, (start, end))
            {
                trip.get_or_insert_with(|| {
                    Trip(format!(
                        "off hours: a plain reveal of {} between {start:02}:00 and {end:02}:00 UTC",
                        item.kind.as_str()
                    ))
                });
            }
            let hit = |series: Series, state: &mut CallerState| {
                let counts = state
                    .series
                    .entry(series)
                    .or_insert_with(|| Counts::new(t.div_euclid(MINUTE)));
                counts.add(t);
                check(series, counts, policy, t)
            };
            // A sweep first: the most telling name for what a run of new tokens is.
            let mut h = hasher.build_hasher();
            item.token.hash(&mut h);
            if state.seen.insert(std::hash::Hasher::finish(&h), t)
                && let Some(why) = hit(Series::NewTokens, state)
            {
                trip.get_or_insert(why);
            }
            if let Some(why) = hit(Series::Reveals(item.kind, item.plain), state) {
                trip.get_or_insert(why);
            }
            if item.plain
                && let Some(why) = hit(Series::Plain, state)
            {
                trip.get_or_insert(why);
            }
        }
        trip
    }
}

/// The rule `counts` breaks at `t`, if any.
fn check(series: Series, counts: &Counts, policy: &AnomalyPolicy, t: i64) -> Option<Trip> {
    let learned = counts.minutes >= policy.learn_minutes;
    match series {
        Series::Plain => {
            let hour = counts.last_hour();
            (hour > u64::from(policy.plain_per_hour)).then(|| {
                Trip(format!(
                    "ceiling: {hour} plain reveals within an hour (policy: {})",
                    policy.plain_per_hour
                ))
            })
        }
        Series::NewTokens | Series::Reveals(..) => {
            if series == Series::NewTokens {
                let hour = counts.last_hour();
                if hour > u64::from(policy.new_tokens_per_hour) {
                    return Some(Trip(format!(
                        "sweep: {hour} tokens never revealed before within an hour (policy: {})",
                        policy.new_tokens_per_hour
                    )));
                }
            }
            let limit = minute_limit(counts, policy, learned);
            let minute = counts.last_minute(t);
            let label = if series == Series::NewTokens {
                "sweep"
            } else {
                "burst"
            };
            (minute > limit).then(|| {
                let basis = if learned {
                    format!(
                        "{} x a baseline of {:.1}/min, {PEAK_MARGIN} x a peak of {:.0}",
                        policy.factor,
                        counts.baseline(),
                        counts.peak
                    )
                } else {
                    "not learned yet".to_owned()
                };
                Trip(format!(
                    "{label}: {minute:.0} {} within a minute (limit {limit:.0}: {basis})",
                    series.describe()
                ))
            })
        }
    }
}

/// Once learned, a minute may hold this many times the caller's busiest recent minute.
const PEAK_MARGIN: f64 = 1.5;

/// The most of one series a minute may hold.
fn minute_limit(counts: &Counts, policy: &AnomalyPolicy, learned: bool) -> f64 {
    let ceiling = f64::from(policy.per_minute);
    if learned {
        (policy.factor * counts.baseline())
            .max(PEAK_MARGIN * counts.peak)
            .clamp(f64::from(policy.floor), ceiling)
    } else {
        ceiling
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A small deterministic generator (xorshift), for traffic that varies the same way each run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// A Poisson-distributed count of mean `mean` (Knuth's method).
        fn poisson(&mut self, mean: f64) -> u32 {
            let limit = (-mean).exp();
            let mut p = 1.0;
            let mut k = 0;
            loop {
                p *= (self.below(1 << 30) as f64 + 0.5) / f64::from(1u32 << 30);
                if p <= limit {
                    return k;
                }
                k += 1;
            }
        }
    }

    fn seen(kind: FieldKind, plain: bool, token: &str) -> Seen<'_> {
        Seen { kind, plain, token }
    }

    /// Two weeks of a payments job's reveals: a daily cycle from 5 to 25 a minute, random from
    /// minute to minute, a third of them tokens revealed for the first time, the rest repeats, in
    /// requests of a few tokens. Never locked.
    #[test]
    fn a_steady_client_is_never_locked_over_two_weeks() {
        let policy = AnomalyPolicy::default();
        let mut detector = Detector::new();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = 1_800_000_000_i64;
        let mut fresh = 0u64;
        let mut revealed = 0u64;
        for minute in 0..(14 * 24 * 60) {
            let day = (minute % (24 * 60)) as f64 / (24.0 * 60.0);
            let mean = 15.0 + 10.0 * (day * std::f64::consts::TAU).sin();
            let n = rng.poisson(mean);
            let tokens: Vec<String> = (0..n)
                .map(|_| {
                    if rng.below(3) == 0 || fresh < 100 {
                        fresh += 1;
                        format!("tok_{fresh}")
                    } else {
                        format!("tok_{}", fresh - rng.below(fresh.min(5000)))
                    }
                })
                .collect();
            let requests = tokens.len().div_ceil(4).max(1) as i64;
            for (i, chunk) in tokens.chunks(4).enumerate() {
                // Spread over the minute, in order.
                let t = start + minute * 60 + i as i64 * 60 / requests;
                let items: Vec<Seen<'_>> = chunk
                    .iter()
                    .map(|tok| seen(FieldKind::Pan, true, tok))
                    .collect();
                revealed += items.len() as u64;
                let trip = detector.observe("apikey:payments", &policy, &items, t);
                assert_eq!(trip, None, "locked at minute {minute}");
            }
        }
        assert!(revealed > 250_000, "{revealed}");
    }

    /// After a week of steady use, the same key sweeps tokens it never revealed, at the role's
    /// rate limit (two a second): locked within the minute, at the first token past the learned
    /// limit.
    #[test]
    fn a_sweep_is_locked_within_a_bounded_number_of_reveals() {
        let policy = AnomalyPolicy::default();
        let mut detector = Detector::new();
        let start = 1_800_000_000_i64;
        // A week of 10 reveals a minute over the same 50 tokens, and 2 new ones a minute.
        let mut n = 0;
        for minute in 0..(7 * 24 * 60) {
            let t = start + minute * 60;
            let mut tokens: Vec<String> = (0..10)
                .map(|i| format!("old_{}", (minute + i) % 50))
                .collect();
            tokens.push(format!("new_{n}"));
            tokens.push(format!("new_{}", n + 1));
            n += 2;
            let items: Vec<Seen<'_>> = tokens
                .iter()
                .map(|tok| seen(FieldKind::Email, false, tok))
                .collect();
            assert_eq!(detector.observe("apikey:support", &policy, &items, t), None);
        }
        // The baseline of first-time tokens is 2 a minute: the limit is the floor, 30.
        let t0 = start + 7 * 24 * 3600 + 30 * 60;
        let mut locked_at = None;
        for i in 0..500 {
            let token = format!("sweep_{i}");
            let t = t0 + i / 2;
            if let Some(trip) = detector.observe(
                "apikey:support",
                &policy,
                &[seen(FieldKind::Email, false, &token)],
                t,
            ) {
                assert!(trip.0.starts_with("sweep: "), "{trip}");
                locked_at = Some(i + 1);
                break;
            }
        }
        // Half an hour after its last steady minute, the learned limit of first-time tokens is
        // the floor: locked at the 31st sweep token, 15 seconds in.
        assert_eq!(locked_at, Some(31));
    }

    /// A key with no history (stolen before it was ever used) is held to the ceilings: a fast
    /// sweep locked at `per_minute + 1`, a slow one at `new_tokens_per_hour + 1`.
    #[test]
    fn without_a_baseline_the_ceilings_hold() {
        let policy = AnomalyPolicy::default();
        let mut detector = Detector::new();
        let t = 1_800_000_000_i64 / 60 * 60;
        let tokens: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
        let at = tokens
            .iter()
            .position(|tok| {
                detector
                    .observe(
                        "apikey:fast",
                        &policy,
                        &[seen(FieldKind::Pan, false, tok)],
                        t,
                    )
                    .is_some()
            })
            .unwrap();
        assert_eq!(at + 1, 201);

        // 40 a minute (under the minute ceiling), each new: the hour's ceiling of 2000.
        let slow = AnomalyPolicy {
            learn_minutes: 10_000,
            ..AnomalyPolicy::default()
        };
        let mut count = 0;
        let trip = (0..60)
            .flat_map(|minute| (0..40).map(move |j| t + minute * 60 + j))
            .find_map(|when| {
                count += 1;
                let tok = format!("s{count}");
                detector.observe(
                    "apikey:slow",
                    &slow,
                    &[seen(FieldKind::Pan, false, &tok)],
                    when,
                )
            })
            .unwrap();
        assert_eq!(count, 2001, "{trip}");
        assert!(trip.0.contains("within an hour"), "{trip}");
    }

    #[test]
    fn a_burst_of_one_kind_is_locked_and_repeats_count() {
        let policy = AnomalyPolicy {
            per_minute: 30,
            ..AnomalyPolicy::default()
        };
        let mut detector = Detector::new();
        let t = 1_800_000_000_i64;
        // The same 5 tokens again and again: not a sweep, but a burst of plain card numbers.
        let tokens = ["a", "b", "c", "d", "e"];
        let mut n = 0;
        let trip = loop {
            let items: Vec<Seen<'_>> = tokens
                .iter()
                .map(|tok| seen(FieldKind::Pan, true, tok))
                .collect();
            n += items.len();
            if let Some(trip) = detector.observe("operator:sam", &policy, &items, t) {
                break trip;
            }
        };
        assert_eq!(n, 35);
        assert!(
            trip.0.starts_with("burst: 31 plain reveals of pan"),
            "{trip}"
        );
    }

    /// A job that works in batches: idle most of the hour, then 100 plain card numbers a minute
    /// (new ones) for 5 minutes, every hour for three days. Its mean is 8 a minute, but it is
    /// held to its own bursts, not to factor x mean: never locked. The same key sweeping at 300 a
    /// minute is.
    #[test]
    fn a_batch_job_is_held_to_its_own_bursts() {
        let policy = AnomalyPolicy {
            per_minute: 600,
            plain_per_hour: 36_000,
            new_tokens_per_hour: 36_000,
            ..AnomalyPolicy::default()
        };
        let mut detector = Detector::new();
        let start = 1_800_000_000_i64;
        let mut n = 0u64;
        for hour in 0..72 {
            for minute in 0..5 {
                for chunk in 0..10 {
                    let t = start + hour * 3600 + minute * 60 + chunk * 6;
                    let tokens: Vec<String> = (0..10)
                        .map(|_| {
                            n += 1;
                            format!("b{n}")
                        })
                        .collect();
                    let items: Vec<Seen<'_>> = tokens
                        .iter()
                        .map(|tok| seen(FieldKind::Pan, true, tok))
                        .collect();
                    let trip = detector.observe("apikey:job", &policy, &items, t);
                    assert_eq!(trip, None, "hour {hour} minute {minute}");
                }
            }
        }
        let t0 = start + 72 * 3600 + 30 * 60;
        let at = (0..600)
            .position(|i| {
                let tok = format!("s{i}");
                detector
                    .observe(
                        "apikey:job",
                        &policy,
                        &[seen(FieldKind::Pan, true, &tok)],
                        t0 + i / 5,
                    )
                    .is_some()
            })
            .unwrap();
        // 1.5 x its busiest minute (100), faded over the 85 minutes since (half-life a day).
        assert!(
            (140..=151).contains(&(at + 1)),
            "locked at the {}th",
            at + 1
        );
    }

    #[test]
    fn off_hours_plain_reveals_lock_masked_ones_do_not() {
        let policy = AnomalyPolicy {
            off_hours: Some((22, 6)),
            ..AnomalyPolicy::default()
        };
        let mut detector = Detector::new();
        let midnight = 1_800_000_000_i64 / 86_400 * 86_400;
        let at = |h: i64| midnight + h * 3600 + 5;
        assert_eq!(
            detector.observe("k", &policy, &[seen(FieldKind::Pan, true, "a")], at(12)),
            None
        );
        assert_eq!(
            detector.observe("k", &policy, &[seen(FieldKind::Pan, false, "a")], at(23)),
            None
        );
        assert!(
            detector
                .observe("k", &policy, &[seen(FieldKind::Pan, true, "a")], at(23))
                .is_some()
        );
        assert!(
            detector
                .observe("k", &policy, &[seen(FieldKind::Pan, true, "a")], at(3))
                .is_some()
        );
        assert_eq!(
            detector.observe("k", &policy, &[seen(FieldKind::Pan, true, "a")], at(6)),
            None
        );
    }

    #[test]
    fn forgetting_pardoning_and_idle_callers() {
        let policy = AnomalyPolicy {
            per_minute: 3,
            floor: 1,
            ..AnomalyPolicy::default()
        };
        let mut detector = Detector::new();
        let items = [seen(FieldKind::Pan, false, "a"); 4];
        assert!(detector.observe("k", &policy, &items, 100).is_some());
        detector.forget("k");
        assert_eq!(detector.observe("k", &policy, &items[..3], 101), None);
        // Pardoned: this hour's counts cleared, the rest kept.
        assert!(detector.observe("k", &policy, &items[..1], 102).is_some());
        detector.pardon("k");
        assert_eq!(detector.observe("k", &policy, &items[..3], 103), None);
        // Callers idle for two days are forgotten at the next sweep.
        for i in 0..10_000 {
            let caller = format!("busy{}", i % 2);
            detector.observe(
                &caller,
                &policy,
                &items[..1],
                104 + 3 * 24 * 3600 + i64::from(i) * 60,
            );
        }
        assert_eq!(detector.callers(), 2, "k forgotten");
    }

    #[test]
    fn the_baseline_follows_the_rate() {
        let mut counts = Counts::new(0);
        for minute in 0..600 {
            for _ in 0..10 {
                counts.add(minute * 60);
            }
        }
        // Learned from the start (the correction), and steady.
        assert!(
            (counts.baseline() - 10.0).abs() < 1e-6,
            "{}",
            counts.baseline()
        );
        assert_eq!(counts.minutes, 599);
        // Half an hour idle: the last busy half hour is still in the hour.
        counts.advance(599 + 30);
        assert_eq!(counts.last_hour(), 300);
        counts.advance(599 + 60);
        assert!(
            (counts.baseline() - 5.0).abs() < 0.1,
            "{}",
            counts.baseline()
        );
        assert_eq!(counts.last_hour(), 0);
        counts.advance(599 + 24 * 60);
        assert!(counts.baseline() < 0.01);
    }

    #[test]
    fn policy_tables_inherit_and_check() {
        let base = AnomalyPolicy::default();
        let doc: AnomalyDoc = toml::from_str("per_minute = 50\noff_hours = \"22-6\"").unwrap();
        let p = doc.apply(&base, "anomaly").unwrap();
        assert_eq!(
            (p.per_minute, p.off_hours, p.floor),
            (50, Some((22, 6)), 30)
        );
        for bad in [
            "per_minute = 0",
            "factor = 0.5",
            "off_hours = \"7-7\"",
            "off_hours = \"25-3\"",
            "floor = 500",
        ] {
            let doc: AnomalyDoc = toml::from_str(bad).unwrap();
            assert!(doc.apply(&base, "anomaly").is_err(), "{bad}");
        }
        assert!(toml::from_str::<AnomalyDoc>("per_minit = 3").is_err());
    }
}

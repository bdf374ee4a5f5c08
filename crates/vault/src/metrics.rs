//! Metrics in the Prometheus text format (OpenMetrics 1.0, which Prometheus scrapes), on a
//! listener of their own (`metrics_listen`; none by default): requests by route template, method
//! and status, latency histograms by route template, tokenizations and reveals by role, kind,
//! format and outcome, refusals by code, alerts sent, failed and dropped by kind, callers locked
//! for reveal anomalies, the syslog forwarder's entries sent and its cursor, and, read at each
//! scrape, the audit chain head's sequence, key ages, data key encryption counts, locked
//! operators and callers, and database connections.
//!
//! No label holds a value, a token or a key's secret: routes are templates (`/v1/tokens/{token}`,
//! never the path asked for), kinds, formats, roles and codes come from fixed vocabularies or the
//! policy, and keys are named by their public id (HPKE `kid`, `data-key:N`).

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A metric's labels: name and value pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Latency histograms: 1 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// One vault's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    tokenized: Family<Labels, Counter>,
    revealed: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    audit_head: Gauge,
    key_age: Family<Labels, Gauge>,
    data_key_encryptions: Family<Labels, Gauge>,
    operators_locked: Gauge,
    lockouts: Family<Labels, Counter>,
    reveal_locks: Gauge,
    database_connections: Family<Labels, Gauge>,
    alerts: [Family<Labels, Counter>; 3],
    forwarded: Counter,
    forward_cursor: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fieldseal");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route template",
            latency.clone(),
        );
        let tokenized = Family::<Labels, Counter>::default();
        registry.register(
            "tokenize_items",
            "Tokenize items, by role, kind, format and outcome (ok, or the refusal code; kind `-` \
             for a refused item)",
            tokenized.clone(),
        );
        let revealed = Family::<Labels, Counter>::default();
        registry.register(
            "reveal_items",
            "Reveal items, by role, kind and outcome (plain, masked, or the refusal code; kind `-` \
             for a refused item)",
            revealed.clone(),
        );
        let refusals = Family::<Labels, Counter>::default();
        registry.register(
            "refusals",
            "Requests refused, by error code (audit_broken and storage_busy: audit writes that \
             failed)",
            refusals.clone(),
        );
        let audit_head = Gauge::default();
        registry.register(
            "audit_head_seq",
            "Sequence number of the audit chain's last entry",
            audit_head.clone(),
        );
        let key_age = Family::<Labels, Gauge>::default();
        registry.register(
            "key_age_seconds",
            "Age of each HPKE and data key, by kind and public id",
            key_age.clone(),
        );
        let data_key_encryptions = Family::<Labels, Gauge>::default();
        registry.register(
            "data_key_encryptions",
            "Encryptions counted under each data key (a new one is made at \
             data_key_max_encryptions)",
            data_key_encryptions.clone(),
        );
        let operators_locked = Gauge::default();
        registry.register(
            "operators_locked",
            "Operators locked now (after failed sign-ins, or by `operator lock`)",
            operators_locked.clone(),
        );
        let database_connections = Family::<Labels, Gauge>::default();
        registry.register(
            "database_connections",
            "The database connections of this node at the scrape: in_use, open, max (the pool's \
             size) and waiting (calls waiting for one)",
            database_connections.clone(),
        );
        let lockouts = Family::<Labels, Counter>::default();
        registry.register(
            "reveal_lockouts",
            "Callers locked by the reveal anomaly detector on this node, by role",
            lockouts.clone(),
        );
        let reveal_locks = Gauge::default();
        registry.register(
            "reveal_locks",
            "Callers (API keys and operators) whose reveals are locked now",
            reveal_locks.clone(),
        );
        let alerts = [
            (
                "alerts_sent",
                "Alerts the webhook accepted (a 2xx answer), by kind",
            ),
            (
                "alerts_failed",
                "Alerts given up after alert_max_attempts failed posts, by kind",
            ),
            (
                "alerts_dropped",
                "Alerts dropped because the alert queue was full, by kind",
            ),
        ]
        .map(|(name, help)| {
            let family = Family::<Labels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        });
        let forwarded = Counter::default();
        registry.register(
            "syslog_forwarded_entries",
            "Audit entries the syslog forwarder sent and committed its cursor past (an entry sent \
             again after a failed connection counts again)",
            forwarded.clone(),
        );
        let forward_cursor = Gauge::default();
        registry.register(
            "syslog_forward_cursor_seq",
            "The syslog forwarder's committed cursor: the last audit entry the receiver holds \
             (compare with audit_head_seq)",
            forward_cursor.clone(),
        );
        Self {
            registry,
            alerts,
            requests,
            latency,
            tokenized,
            revealed,
            refusals,
            audit_head,
            key_age,
            data_key_encryptions,
            operators_locked,
            lockouts,
            reveal_locks,
            database_connections,
            forwarded,
            forward_cursor,
        }
    }
}

impl Metrics {
    /// Counts an answered request and its latency. A method outside the standard ones counts as
    /// `OTHER` (any token is a method in HTTP: labels from the request would grow without bound).
    pub fn request(&self, route: &str, method: &str, status: u16, secs: f64) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.requests
            .get_or_create(&vec![
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("route", route.to_owned())])
            .observe(secs);
    }

    /// Counts a request refused with `code`.
    pub fn refusal(&self, code: &str) {
        self.refusals
            .get_or_create(&vec![("code", code.to_owned())])
            .inc();
    }

    /// Counts a tokenize item.
    pub fn tokenized(&self, role: &str, kind: &str, format: &str, outcome: &str) {
        self.tokenized
            .get_or_create(&vec![
                ("role", role.to_owned()),
                ("kind", kind.to_owned()),
                ("format", format.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Counts a reveal item.
    pub fn revealed(&self, role: &str, kind: &str, outcome: &str) {
        self.revealed
            .get_or_create(&vec![
                ("role", role.to_owned()),
                ("kind", kind.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Counts a caller locked for a reveal anomaly.
    pub fn lockout(&self, role: &str) {
        self.lockouts
            .get_or_create(&vec![("role", role.to_owned())])
            .inc();
    }

    /// Counts an alert of `kind` that ended as `outcome`.
    pub fn alert(&self, kind: &'static str, outcome: AlertOutcome) {
        self.alerts[outcome as usize]
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc();
    }

    /// Counts `entries` forwarded to syslog and committed, the cursor now at `cursor`.
    pub fn forwarded(&self, entries: u64, cursor: i64) {
        self.forwarded.inc_by(entries);
        self.forward_cursor.set(cursor);
    }

    /// Sets what is read at a scrape: the audit head, key ages and counts, locked operators.
    pub fn set_state(&self, state: &State) {
        self.audit_head.set(state.audit_head);
        self.key_age.clear();
        for (kind, id, age) in &state.key_ages {
            self.key_age
                .get_or_create(&vec![("kind", (*kind).to_owned()), ("id", id.clone())])
                .set(*age);
        }
        self.data_key_encryptions.clear();
        for (id, n) in &state.data_key_encryptions {
            self.data_key_encryptions
                .get_or_create(&vec![("id", id.clone())])
                .set(*n);
        }
        self.operators_locked.set(state.operators_locked);
        self.reveal_locks.set(state.reveal_locks);
        if let Some(p) = state.pool {
            for (name, n) in [
                ("in_use", p.in_use),
                ("open", p.open),
                ("max", p.max),
                ("waiting", p.waiting),
            ] {
                self.database_connections
                    .get_or_create(&vec![("state", name.to_owned())])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// The text a scrape gets.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// How an alert ended, for [`Metrics::alert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOutcome {
    /// Posted: the webhook answered 2xx.
    Sent = 0,
    /// Given up after its last attempt.
    Failed = 1,
    /// Dropped: the queue was full.
    Dropped = 2,
}

/// What a scrape reads from the database.
#[derive(Debug, Default)]
pub struct State {
    /// The audit chain head's sequence number.
    pub audit_head: i64,
    /// (kind, public id, age in seconds) of each HPKE and data key.
    pub key_ages: Vec<(&'static str, String, i64)>,
    /// (data key id, encryptions).
    pub data_key_encryptions: Vec<(String, i64)>,
    /// Operators locked now.
    pub operators_locked: i64,
    /// Callers whose reveals are locked now.
    pub reveal_locks: i64,
    /// The database connections now.
    pub pool: Option<fieldseal_vault_store::PoolUse>,
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Shared metrics.
pub type Shared = Arc<Metrics>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counters_and_state_are_encoded_with_their_labels() {
        let m = Metrics::default();
        m.request("/v1/tokens/{token}", "DELETE", 204, 0.002);
        m.request("(unmatched)", "FOO123", 404, 0.001);
        m.request("(unmatched)", "BAR456", 404, 0.001);
        m.tokenized("checkout", "pan", "random", "ok");
        m.tokenized("checkout", "pan", "random", "ok");
        m.revealed("payments", "pan", "plain");
        m.refusal("unauthorized");
        m.alert("lockout", AlertOutcome::Dropped);
        m.alert("lockout", AlertOutcome::Sent);
        m.alert("lockout", AlertOutcome::Sent);
        m.forwarded(3, 12);
        m.set_state(&State {
            audit_head: 42,
            key_ages: vec![("hpke", "k1".into(), 10)],
            data_key_encryptions: vec![("data-key:1".into(), 7)],
            operators_locked: 1,
            reveal_locks: 2,
            pool: Some(fieldseal_vault_store::PoolUse {
                in_use: 3,
                open: 5,
                max: 16,
                waiting: 0,
            }),
        });
        m.lockout("support");
        let text = m.encode().unwrap();
        for line in [
            "fieldseal_http_requests_total{route=\"/v1/tokens/{token}\",method=\"DELETE\",status=\"204\"} 1",
            "fieldseal_tokenize_items_total{role=\"checkout\",kind=\"pan\",format=\"random\",outcome=\"ok\"} 2",
            "fieldseal_reveal_items_total{role=\"payments\",kind=\"pan\",outcome=\"plain\"} 1",
            "fieldseal_refusals_total{code=\"unauthorized\"} 1",
            "fieldseal_http_requests_total{route=\"(unmatched)\",method=\"OTHER\",status=\"404\"} 2",
            "fieldseal_audit_head_seq 42",
            "fieldseal_key_age_seconds{kind=\"hpke\",id=\"k1\"} 10",
            "fieldseal_data_key_encryptions{id=\"data-key:1\"} 7",
            "fieldseal_operators_locked 1",
            "fieldseal_reveal_locks 2",
            "fieldseal_database_connections{state=\"in_use\"} 3",
            "fieldseal_database_connections{state=\"max\"} 16",
            "fieldseal_reveal_lockouts_total{role=\"support\"} 1",
            "fieldseal_alerts_sent_total{kind=\"lockout\"} 2",
            "fieldseal_alerts_dropped_total{kind=\"lockout\"} 1",
            "fieldseal_syslog_forwarded_entries_total 3",
            "fieldseal_syslog_forward_cursor_seq 12",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.contains("fieldseal_http_request_duration_seconds_bucket{le=\"0.002\",route=\"/v1/tokens/{token}\"} 1")
            || text.contains("fieldseal_http_request_duration_seconds_bucket{route=\"/v1/tokens/{token}\",le=\"0.002\"} 1"), "{text}");
        assert!(!text.contains("FOO123") && !text.contains("BAR456"));
        assert!(text.ends_with("# EOF\n"));
    }
}

//! Counters for `/metrics`: plain atomics, so counting never takes a lock on the hot path.
//! Rendered in the Prometheus text format on demand.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Why a TLS handshake ended the way it did.
pub const HANDSHAKE_OUTCOMES: [&str; 13] = [
    "ok",
    "no-cert",
    "unknown-ca",
    "expired",
    "not-yet-valid",
    "revoked",
    "wrong-purpose",
    "crl-expired",
    "bad-certificate",
    "protocol",
    "peer-alert",
    "timeout",
    "io",
];

/// What the policy (or the path check before it) decided.
pub const DECISIONS: [&str; 6] = [
    "allow",
    "unauthenticated",
    "forbidden",
    "no-rule",
    "bad-request",
    "misdirected",
];
/// Indices into [`DECISIONS`].
pub const ALLOW: usize = 0;
pub const UNAUTHENTICATED: usize = 1;
pub const FORBIDDEN: usize = 2;
pub const NO_RULE: usize = 3;
pub const BAD_REQUEST: usize = 4;
pub const MISDIRECTED: usize = 5;

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// All counters of one gate process.
#[derive(Debug, Default)]
pub struct Metrics {
    handshakes: [AtomicU64; HANDSHAKE_OUTCOMES.len()],
    decisions: [AtomicU64; DECISIONS.len()],
    /// By status class: 1xx … 5xx.
    statuses: [AtomicU64; 5],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    /// Sum of latencies in microseconds.
    latency_sum_us: AtomicU64,
    open_connections: AtomicI64,
    upstream_errors: AtomicU64,
    upstream_timeouts: AtomicU64,
    /// Set when shutdown begins (`/readyz` answers 503).
    draining: std::sync::atomic::AtomicBool,
}

/// Index of a handshake outcome in [`HANDSHAKE_OUTCOMES`] (unknown names count as "io").
pub fn outcome_index(name: &str) -> usize {
    HANDSHAKE_OUTCOMES
        .iter()
        .position(|o| *o == name)
        .unwrap_or(HANDSHAKE_OUTCOMES.len() - 1)
}

impl Metrics {
    pub fn handshake(&self, outcome: &str) {
        self.handshakes[outcome_index(outcome)].fetch_add(1, Relaxed);
    }

    pub fn decision(&self, index: usize) {
        if let Some(c) = self.decisions.get(index) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub fn response(&self, status: u16, seconds: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.statuses[class].fetch_add(1, Relaxed);
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Relaxed);
    }

    pub fn ready(&self) -> bool {
        !self.draining.load(Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.draining.store(!ready, Relaxed);
    }

    pub fn upstream_error(&self, timeout: bool) {
        if timeout {
            self.upstream_timeouts.fetch_add(1, Relaxed);
        } else {
            self.upstream_errors.fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition (format 0.0.4). `expiry` lists
    /// (kind, subject, days until notAfter) for the served certificate and the CAs.
    pub fn render(&self, expiry: &[(&str, String, f64)]) -> String {
        let mut o = String::with_capacity(4096);
        let _ = writeln!(
            o,
            "# HELP portcullis_handshakes_total TLS handshakes by outcome."
        );
        let _ = writeln!(o, "# TYPE portcullis_handshakes_total counter");
        for (name, c) in HANDSHAKE_OUTCOMES.iter().zip(&self.handshakes) {
            let _ = writeln!(
                o,
                "portcullis_handshakes_total{{outcome=\"{name}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_requests_total Requests by access decision."
        );
        let _ = writeln!(o, "# TYPE portcullis_requests_total counter");
        for (name, c) in DECISIONS.iter().zip(&self.decisions) {
            let _ = writeln!(
                o,
                "portcullis_requests_total{{decision=\"{name}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_responses_total Responses by status class."
        );
        let _ = writeln!(o, "# TYPE portcullis_responses_total counter");
        for (i, c) in self.statuses.iter().enumerate() {
            let _ = writeln!(
                o,
                "portcullis_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP portcullis_request_duration_seconds Time from request to response headers."
        );
        let _ = writeln!(o, "# TYPE portcullis_request_duration_seconds histogram");
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(
                o,
                "portcullis_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            o,
            "portcullis_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "portcullis_request_duration_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "portcullis_request_duration_seconds_count {count}");
        let _ = writeln!(
            o,
            "# HELP portcullis_ready 1 while accepting connections, 0 while draining."
        );
        let _ = writeln!(o, "# TYPE portcullis_ready gauge");
        let _ = writeln!(o, "portcullis_ready {}", u8::from(self.ready()));
        let _ = writeln!(
            o,
            "# HELP portcullis_open_connections TLS connections open now."
        );
        let _ = writeln!(o, "# TYPE portcullis_open_connections gauge");
        let _ = writeln!(
            o,
            "portcullis_open_connections {}",
            self.open_connections.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_upstream_errors_total Upstream failures (502) and timeouts (504)."
        );
        let _ = writeln!(o, "# TYPE portcullis_upstream_errors_total counter");
        let _ = writeln!(
            o,
            "portcullis_upstream_errors_total{{kind=\"error\"}} {}",
            self.upstream_errors.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "portcullis_upstream_errors_total{{kind=\"timeout\"}} {}",
            self.upstream_timeouts.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP portcullis_certificate_expiry_days Days until a served or trusted certificate expires."
        );
        let _ = writeln!(o, "# TYPE portcullis_certificate_expiry_days gauge");
        for (kind, subject, days) in expiry {
            let subject = subject.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                o,
                "portcullis_certificate_expiry_days{{kind=\"{kind}\",subject=\"{subject}\"}} {days:.2}"
            );
        }
        o
    }
}

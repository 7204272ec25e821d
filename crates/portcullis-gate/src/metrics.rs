//! Metrics for `/metrics`, on `prometheus-client` with typed label sets. Every counter
//! a request or handshake touches is created at start and kept as a handle, so counting is
//! one atomic add: no lock and no label lookup on the hot path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::outcome::{Decision, HandshakeOutcome};

/// The content type of [`Metrics::render`]: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

impl EncodeLabelValue for HandshakeOutcome {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(e, self.as_str())
    }
}

impl EncodeLabelValue for Decision {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(e, self.as_str())
    }
}

/// Why an accepted TCP connection was closed before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shed {
    /// `max_connections` was reached.
    MaxConnections,
    /// `max_connections_per_client` was reached for the client's address.
    PerClient,
}

impl EncodeLabelValue for Shed {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(
            e,
            match self {
                Shed::MaxConnections => "max-connections",
                Shed::PerClient => "per-client",
            },
        )
    }
}

/// Why the gate closed a connection that was serving (not a graceful idle close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Closed {
    /// The client stopped taking the response (`write_timeout_secs`).
    Stalled,
    /// A drain that did not finish in time after an idle, age or shutdown close.
    Drain,
}

impl EncodeLabelValue for Closed {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(
            e,
            match self {
                Closed::Stalled => "stalled",
                Closed::Drain => "drain-timeout",
            },
        )
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: HandshakeOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: Decision,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabel {
    reason: Shed,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabel {
    reason: Closed,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExpiryLabel {
    kind: &'static str,
    subject: String,
}

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram of plain atomics (prometheus-client's own takes a mutex per
/// observation), encoded by prometheus-client.
#[derive(Debug, Clone, Default)]
struct Latency(Arc<LatencyCells>);

#[derive(Debug, Default)]
struct LatencyCells {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Latency {
    fn observe(&self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Relaxed);
        self.0.count.fetch_add(1, Relaxed);
        self.0.sum_us.fetch_add((seconds * 1e6) as u64, Relaxed);
    }
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.0.buckets)
            .map(|(le, c)| (le, c.load(Relaxed)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_us.load(Relaxed) as f64 / 1e6,
            self.0.count.load(Relaxed),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// All metrics of one gate process, kept across reloads.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    handshakes: Vec<Counter>,
    decisions: Vec<Counter>,
    /// By status class: 1xx … 5xx.
    responses: [Counter; 5],
    latency: Latency,
    open: Gauge,
    parked: Gauge,
    shed: [Counter; 2],
    closed: [Counter; 2],
    upstream_errors: [Counter; 2],
    ready: Gauge,
    expiry: Family<ExpiryLabel, Gauge<f64, AtomicU64>>,
    log_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let handshakes = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "handshakes",
            "TLS handshakes by outcome",
            handshakes.clone(),
        );
        let decisions = Family::<DecisionLabel, Counter>::default();
        registry.register("requests", "Requests by access decision", decisions.clone());
        let responses = Family::<ClassLabel, Counter>::default();
        registry.register("responses", "Responses by status class", responses.clone());
        let latency = Latency::default();
        registry.register_with_unit(
            "request_duration",
            "Time from request to response headers",
            Unit::Seconds,
            latency.clone(),
        );
        let open = Gauge::default();
        registry.register("open_connections", "TLS connections open now", open.clone());
        let parked = Gauge::default();
        registry.register(
            "parked_connections",
            "Idle HTTP/1.1 connections holding no HTTP buffers",
            parked.clone(),
        );
        let shed = Family::<ShedLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "TCP connections closed before the handshake because a connection limit was reached",
            shed.clone(),
        );
        let closed = Family::<ClosedLabel, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections the gate cut: the client stopped reading, or a drain took too long",
            closed.clone(),
        );
        let upstream = Family::<KindLabel, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures (502) and timeouts (504)",
            upstream.clone(),
        );
        let ready = Gauge::default();
        ready.set(1);
        registry.register(
            "ready",
            "1 while accepting connections, 0 while draining",
            ready.clone(),
        );
        let expiry = Family::<ExpiryLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "certificate_expiry_days",
            "Days until a served or trusted certificate expires",
            expiry.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "log_dropped_lines",
            "Log lines dropped because the writer fell behind",
            log_dropped.clone(),
        );
        Metrics {
            registry,
            handshakes: HandshakeOutcome::all()
                .map(|outcome| handshakes.get_or_create_owned(&OutcomeLabel { outcome }))
                .collect(),
            decisions: Decision::ALL
                .iter()
                .map(|&decision| decisions.get_or_create_owned(&DecisionLabel { decision }))
                .collect(),
            responses: ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .map(|class| responses.get_or_create_owned(&ClassLabel { class })),
            latency,
            open,
            parked,
            shed: [Shed::MaxConnections, Shed::PerClient]
                .map(|reason| shed.get_or_create_owned(&ShedLabel { reason })),
            closed: [Closed::Stalled, Closed::Drain]
                .map(|reason| closed.get_or_create_owned(&ClosedLabel { reason })),
            upstream_errors: ["error", "timeout"]
                .map(|kind| upstream.get_or_create_owned(&KindLabel { kind })),
            ready,
            expiry,
            log_dropped,
        }
    }
}

impl Metrics {
    pub fn handshake(&self, outcome: HandshakeOutcome) {
        // `all()` lists the outcomes in `index()` order (tested in `outcome`).
        if let Some(c) = self.handshakes.get(outcome.index()) {
            c.inc();
        }
    }

    pub fn decision(&self, d: Decision) {
        self.decisions[d as usize].inc();
    }

    pub fn response(&self, status: u16, seconds: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].inc();
        self.latency.observe(seconds);
    }

    pub fn connection_opened(&self) {
        self.open.inc();
    }

    pub fn connection_closed(&self) {
        self.open.dec();
    }

    /// The gauge of parked connections (see `park.rs`).
    pub(crate) fn parked(&self) -> Gauge {
        self.parked.clone()
    }

    pub fn shed(&self, why: Shed) {
        self.shed[why as usize].inc();
    }

    pub fn closed(&self, why: Closed) {
        self.closed[why as usize].inc();
    }

    pub fn upstream_error(&self, timeout: bool) {
        self.upstream_errors[usize::from(timeout)].inc();
    }

    pub fn ready(&self) -> bool {
        self.ready.get() == 1
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The text exposition. `expiry` lists (kind, subject, days until notAfter) of the
    /// served certificates and client CAs in force; `log_dropped` is the log writer's
    /// count of dropped lines so far.
    pub fn render(&self, expiry: &[(&'static str, String, f64)], log_dropped: u64) -> String {
        // A reload may drop a certificate: the gauges show only what is in force.
        self.expiry.clear();
        for (kind, subject, days) in expiry {
            self.expiry
                .get_or_create(&ExpiryLabel {
                    kind,
                    subject: subject.clone(),
                })
                .set(*days);
        }
        self.log_dropped
            .inc_by(log_dropped.saturating_sub(self.log_dropped.get()));
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

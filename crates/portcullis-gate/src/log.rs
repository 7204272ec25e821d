//! The gate's log: lifecycle events, failed handshakes and one line per request, in one
//! format — compact text or JSON lines — on standard output.
//!
//! Events are `tracing` events. Lines are formatted on the task that logs them and handed
//! to one writer thread through a bounded queue (`tracing-appender`): a slow terminal or
//! pipe never holds up a request, and when the writer falls behind, lines are dropped and
//! counted (`portcullis_log_dropped_lines_total`) instead of queueing without limit.
//!
//! Every value is escaped: control characters and Unicode bidirectional controls (U+202E…)
//! from certificates, paths or SNI names are written as `\u{202e}`, so a certificate cannot
//! forge or reorder a log line. Secrets never reach this module: it sees names,
//! fingerprints and reasons.

use std::fmt;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::outcome::{Decision, HandshakeOutcome};

/// `access_log` in the configuration: the format of every log line, and whether requests
/// are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `2026-11-23T19:30:00.123Z request client=127.0.0.1:50123 identity=CN=alice …`
    #[default]
    Text,
    /// One JSON object per line.
    Json,
    /// Text, without a line per request.
    Off,
}

/// Lines the writer may hold before it drops new ones.
const QUEUE_LINES: usize = 16_384;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the log writer running; dropping it flushes what is queued.
#[must_use = "the log stops when the guard is dropped"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Installs the gate's log as the process's `tracing` subscriber. Call once, first thing;
/// keep the guard for the life of the process.
pub fn init(format: Format) -> LogGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("portcullis-log")
        // The writer thread takes every line waiting, then flushes: under load, many
        // lines per write(2) instead of one each (stdout alone flushes at every newline).
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    let _ = DROPPED.set(writer.error_counter());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .event_format(Line {
            json: format == Format::Json,
        })
        .finish();
    // A second call (tests that load several gates) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
    LogGuard(guard)
}

/// Lines dropped so far because the writer fell behind.
pub fn dropped() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// A lifecycle event ("listening on …", "reload: …").
pub fn event(message: &str) {
    tracing::info!("{message}");
}

/// A warning that needs the operator's attention (an expired CRL in force…).
pub fn warning(message: &str) {
    tracing::warn!(level = "warning", "{message}");
}

/// One request, as the access log sees it.
#[derive(Debug)]
pub struct RequestLine<'a> {
    pub client: SocketAddr,
    pub sni: Option<&'a str>,
    /// `CN=alice`, `anonymous` or `anonymous(FAILED:reason)`.
    pub identity: &'a str,
    pub fingerprint: Option<&'a str>,
    pub method: &'a str,
    /// The canonical path for allowed requests, the path as sent for refused ones.
    pub path: &'a str,
    pub rule: Option<usize>,
    pub decision: Decision,
    pub status: u16,
    /// Size of the response body, when known in advance.
    pub bytes: Option<u64>,
    /// Time to the upstream's response headers.
    pub upstream: Option<Duration>,
    pub total: Duration,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub fn request(r: &RequestLine<'_>) {
    tracing::info!(
        client = %r.client,
        sni = r.sni.unwrap_or("-"),
        identity = r.identity,
        fingerprint = r.fingerprint.unwrap_or("-"),
        method = r.method,
        path = r.path,
        rule = r.rule.map_or(-1, |r| r as i64),
        decision = r.decision.as_str(),
        status = r.status,
        bytes = r.bytes.map_or(-1, |b| b as i64),
        upstream_ms = r.upstream.map_or(-1.0, ms),
        total_ms = ms(r.total),
        "request"
    );
}

/// A TLS handshake that did not complete, with its outcome (never key material).
pub fn handshake_failed(client: SocketAddr, outcome: HandshakeOutcome, detail: &str) {
    tracing::info!(
        client = %client,
        reason = outcome.as_str(),
        detail,
        "handshake failed"
    );
}

/// A client certificate that came without its intermediate CAs and found no path to a
/// trusted root: its subject and issuer (from the client, so in quoted fields, never in
/// the message), and the fixes.
pub fn lone_certificate(subject: &str, issuer: &str) {
    tracing::warn!(
        level = "warning",
        subject,
        issuer,
        "client certificate without its intermediate CAs, and its issuer is not a trusted root: the client should send its chain file, or list the issuer in client_ca"
    );
}

// === formatting ===

/// A field value as logged.
enum Value {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Text(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::Int(i64::try_from(value).unwrap_or(i64::MAX)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here and print with Display.
        self.put(field, Value::Text(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("message", Value::Text(t)) => self.message = t,
            (name, value) => self.rest.push((name, value)),
        }
    }
}

/// Writes `s` with control and bidirectional-control characters as `\u{…}`.
fn escaped(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(bad) {
        return s.into();
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            o.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            o.push(c);
        }
    }
    o.into()
}

/// Text: `TIME message key=value …`, values quoted when they contain spaces, `=` or `"`
/// (logfmt). JSON: `{"time":…,"message":…,"key":value,…}`.
struct Line {
    json: bool,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let t = OffsetDateTime::now_utc();
        let t = t.replace_millisecond(t.millisecond()).unwrap_or(t);
        let time = t.format(&Rfc3339).unwrap_or_default();
        if self.json {
            let mut map = serde_json::Map::new();
            map.insert("time".into(), time.into());
            map.insert(
                "message".into(),
                escaped(&fields.message).into_owned().into(),
            );
            for (name, value) in fields.rest {
                let v = match value {
                    Value::Text(s) => serde_json::Value::from(escaped(&s).into_owned()),
                    Value::Int(i) => i.into(),
                    Value::Float(f) => f.into(),
                    Value::Bool(b) => b.into(),
                };
                map.insert(name.into(), v);
            }
            writeln!(w, "{}", serde_json::Value::Object(map))
        } else {
            write!(w, "{time} {}", escaped(&fields.message))?;
            for (name, value) in fields.rest {
                match value {
                    Value::Text(s) => {
                        let s = escaped(&s);
                        if s.is_empty() || s.contains([' ', '=', '"']) {
                            write!(
                                w,
                                " {name}=\"{}\"",
                                s.replace('\\', "\\\\").replace('"', "\\\"")
                            )?;
                        } else {
                            write!(w, " {name}={s}")?;
                        }
                    }
                    Value::Int(i) => write!(w, " {name}={i}")?,
                    Value::Float(f) => write!(w, " {name}={f}")?,
                    Value::Bool(b) => write!(w, " {name}={b}")?,
                }
            }
            writeln!(w)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(escaped("bob\u{202e} nimda"), "bob\\u{202e} nimda");
        assert_eq!(escaped("a\nb\x1b[31m"), "a\\u{a}b\\u{1b}[31m");
        assert_eq!(escaped("plain CN=alice"), "plain CN=alice");
    }
}

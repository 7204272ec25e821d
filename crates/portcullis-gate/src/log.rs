//! The gate's log: lifecycle events, failed handshakes and one line per request, in one
//! format — compact text or JSON lines — on standard output.
//!
//! Events are `tracing` events; request lines are written here directly (see [`request`]).
//! Lines are formatted on the task that logs them and handed to one writer thread through
//! a bounded queue: a slow terminal or pipe never holds up a request, and when the writer
//! falls behind, lines are dropped and counted (`portcullis_log_dropped_lines_total`)
//! instead of queueing without limit.
//!
//! Every value is escaped: control characters and Unicode bidirectional controls (U+202E…)
//! from certificates, paths or SNI names are written as `\u{202e}`, so a certificate cannot
//! forge or reorder a log line. Secrets never reach this module: it sees names,
//! fingerprints and reasons.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
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

/// How long the writer thread rests after writing what it found queued. Lines queued
/// meanwhile wake nobody: under load the thread wakes about every 50 ms for a batch, not
/// for every line (with a thread that waits on the queue, each request cost two
/// `sched_yield` and its own `write`). A line reaches the file within 50 ms; the queue
/// holds 50 ms of 300,000 lines a second, more than a gate serves. Resting 5 ms, the
/// thread's wakes cost about 1% of a full handshake's CPU (6.5 µs a connection, measured
/// by its schedstat over 8,000); resting 50 ms, 1.0 µs.
const REST: Duration = Duration::from_millis(50);

enum Msg {
    Line(Vec<u8>),
    /// Write what is queued, then answer and end.
    Stop(crossbeam_channel::Sender<()>),
}

/// The queue to the writer thread, lossy: a line that finds it full is dropped and
/// counted, so a slow terminal or pipe never holds up a request.
struct Queue {
    tx: crossbeam_channel::Sender<Msg>,
    dropped: AtomicU64,
    json: bool,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();

impl Queue {
    fn push(&self, line: &[u8]) {
        if self.tx.try_send(Msg::Line(line.to_vec())).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// The writer thread: what is queued, in one `write(2)`, then a rest.
fn write_lines(rx: &crossbeam_channel::Receiver<Msg>, out: &mut impl std::io::Write) {
    while let Ok(mut msg) = rx.recv() {
        loop {
            match msg {
                Msg::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Msg::Stop(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                    return;
                }
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        let _ = out.flush();
        std::thread::sleep(REST);
    }
}

/// The subscriber's writer: each event arrives as one whole line.
struct QueueWriter(&'static Queue);

impl std::io::Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keeps the log writer running; dropping it writes what is queued (waiting a second at
/// most) and stops it.
#[must_use = "the log stops when the guard is dropped"]
#[derive(Debug)]
pub struct LogGuard {
    /// Whether this call installed the log (a second call changes nothing).
    installed: bool,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(queue) = QUEUE.get().filter(|_| self.installed) else {
            return;
        };
        let (done, wait) = crossbeam_channel::bounded(1);
        let second = Duration::from_secs(1);
        if queue.tx.send_timeout(Msg::Stop(done), second).is_ok() {
            let _ = wait.recv_timeout(second);
        }
    }
}

/// Installs the gate's log as the process's `tracing` subscriber, on standard output. Call
/// once, first thing; keep the guard for the life of the process.
pub fn init(format: Format) -> LogGuard {
    let json = format == Format::Json;
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_LINES);
    let queue = Queue {
        tx,
        dropped: AtomicU64::new(0),
        json,
    };
    // A second call (tests that load several gates) keeps the first log.
    if QUEUE.set(queue).is_err() {
        return LogGuard { installed: false };
    }
    let Some(queue) = QUEUE.get() else {
        return LogGuard { installed: false };
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(|| QueueWriter(queue))
        .with_ansi(false)
        .event_format(Line { json })
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
    let started = std::thread::Builder::new()
        .name("portcullis-log".into())
        .spawn(move || {
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
            write_lines(&rx, &mut out);
        });
    LogGuard {
        installed: started.is_ok(),
    }
}

/// Lines dropped so far because the writer fell behind.
pub fn dropped() -> u64 {
    QUEUE.get().map_or(0, |q| q.dropped.load(Relaxed))
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
#[derive(Debug, Clone)]
pub struct RequestLine<'a> {
    /// The client's address and port.
    pub client: &'a str,
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

thread_local! {
    /// Each thread's request line, reused.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Logs one request. With the gate's log installed, the line is formatted here and handed
/// to its writer, without `tracing`'s dispatch and field visitor: those took about 16,000
/// instructions a line, more than the rest of a request. The line is the one [`Line`]
/// would write for the same event (a test holds them equal).
pub fn request(r: &RequestLine<'_>) {
    let Some(queue) = QUEUE.get() else {
        request_event(r);
        return;
    };
    LINE.with_borrow_mut(|line| {
        line.clear();
        r.write(line, now(), queue.json);
        queue.push(line);
    });
}

/// The request as a `tracing` event, for a process whose subscriber is not the gate's.
fn request_event(r: &RequestLine<'_>) {
    tracing::info!(
        client = r.client,
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

impl RequestLine<'_> {
    /// The line as [`Line`] formats the `request` event, at `time`, written piece by piece:
    /// `write!` costs more than the rest of a line.
    fn write(&self, o: &mut Vec<u8>, time: OffsetDateTime, json: bool) {
        let rule = self.rule.map_or(-1, |r| r as i64);
        let bytes = self.bytes.map_or(-1, |b| b as i64);
        let (sni, fingerprint) = (self.sni.unwrap_or("-"), self.fingerprint.unwrap_or("-"));
        let mut int = itoa::Buffer::new();
        let put = |o: &mut Vec<u8>, parts: &[&[u8]]| {
            for p in parts {
                o.extend_from_slice(p);
            }
        };
        // Writing to a Vec cannot fail.
        if json {
            // In the order of serde_json's map: sorted by key.
            let string = |o: &mut Vec<u8>, key: &str, v: &str| {
                put(o, &[b"\"", key.as_bytes(), b"\":"]);
                let _ = serde_json::to_writer(&mut *o, &*escaped(v));
                o.push(b',');
            };
            put(o, &[b"{\"bytes\":", int.format(bytes).as_bytes(), b","]);
            string(o, "client", self.client);
            string(o, "decision", self.decision.as_str());
            string(o, "fingerprint", fingerprint);
            string(o, "identity", self.identity);
            string(o, "message", "request");
            string(o, "method", self.method);
            string(o, "path", self.path);
            put(o, &[b"\"rule\":", int.format(rule).as_bytes(), b","]);
            string(o, "sni", sni);
            put(
                o,
                &[b"\"status\":", int.format(self.status).as_bytes(), b","],
            );
            o.extend_from_slice(b"\"time\":\"");
            let _ = time.format_into(&mut *o, &Rfc3339);
            o.extend_from_slice(b"\",\"total_ms\":");
            let _ = serde_json::to_writer(&mut *o, &ms(self.total));
            o.extend_from_slice(b",\"upstream_ms\":");
            let _ = serde_json::to_writer(&mut *o, &self.upstream.map_or(-1.0, ms));
            o.extend_from_slice(b"}\n");
        } else {
            let _ = time.format_into(&mut *o, &Rfc3339);
            o.extend_from_slice(b" request");
            let text = |o: &mut Vec<u8>, key: &str, v: &str| {
                put(o, &[b" ", key.as_bytes(), b"="]);
                let _ = put_text(&mut LineBuf(o), v);
            };
            text(o, "client", self.client);
            text(o, "sni", sni);
            text(o, "identity", self.identity);
            text(o, "fingerprint", fingerprint);
            text(o, "method", self.method);
            text(o, "path", self.path);
            put(o, &[b" rule=", int.format(rule).as_bytes()]);
            text(o, "decision", self.decision.as_str());
            put(o, &[b" status=", int.format(self.status).as_bytes()]);
            put(o, &[b" bytes=", int.format(bytes).as_bytes()]);
            o.extend_from_slice(b" upstream_ms=");
            match self.upstream {
                Some(d) => put_ms(o, d),
                None => o.extend_from_slice(b"-1"),
            }
            o.extend_from_slice(b" total_ms=");
            put_ms(o, self.total);
            o.push(b'\n');
        }
    }
}

/// [`ms`]'s value as `f64`'s `Display` writes it (`2.345`, `1.5`, `3000`, `0.001`): a
/// whole number of microseconds over a thousand, so written without float formatting.
fn put_ms(o: &mut Vec<u8>, d: Duration) {
    // As `ms` rounds; exact in an f64 up to 2^53 microseconds.
    let micros = (d.as_secs_f64() * 1e6).round() as u64;
    o.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
    let frac = micros % 1000;
    if frac > 0 {
        let digits = [frac / 100, frac / 10 % 10, frac % 10].map(|d| b'0' + d as u8);
        let len = 3 - digits.iter().rev().take_while(|&&d| d == b'0').count();
        o.push(b'.');
        o.extend_from_slice(&digits[..len]);
    }
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
fn escaped(s: &str) -> Cow<'_, str> {
    // Printable ASCII, the usual case, needs no look at characters.
    if every_byte(s, |b| (b' '..=b'~').contains(&b)) {
        return s.into();
    }
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

/// Writes a text value: escaped, and quoted when it is empty or contains a space, `=` or
/// `"` (logfmt), with `\\` and `"` escaped inside the quotes.
fn put_text(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let plain = |b: u8| (b'!'..=b'~').contains(&b) && b != b'=' && b != b'"';
    if !s.is_empty() && every_byte(s, plain) {
        return w.write_str(s);
    }
    let s = escaped(s);
    if !s.is_empty() && !s.bytes().any(|b| matches!(b, b' ' | b'=' | b'"')) {
        return w.write_str(&s);
    }
    w.write_char('"')?;
    let mut rest = &*s;
    while let Some(i) = rest.bytes().position(|b| b == b'\\' || b == b'"') {
        w.write_str(&rest[..i])?;
        w.write_char('\\')?;
        w.write_str(&rest[i..=i])?;
        rest = &rest[i + 1..];
    }
    w.write_str(rest)?;
    w.write_char('"')
}

/// Whether every byte of `s` passes `ok`. Without `all`'s early exit the compiler checks
/// 16 bytes at a time; these checks were most of what a text line cost (1,500
/// instructions a request with a fingerprint and a path).
fn every_byte(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    s.bytes().fold(true, |all, b| all & ok(b))
}

/// A line being written, for [`put_text`].
struct LineBuf<'a>(&'a mut Vec<u8>);

impl fmt::Write for LineBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The time of a line, to the millisecond.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond()).unwrap_or(t)
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
        let time = now().format(&Rfc3339).unwrap_or_default();
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
                        write!(w, " {name}=")?;
                        put_text(&mut w, &s)?;
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

    /// A writer that keeps what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The line the generic formatter writes for the request event, and the one the
    /// access log's own path writes, without the time (each read the clock).
    fn both(r: &RequestLine<'_>, json: bool) -> (String, String) {
        let captured = Captured::default();
        let out = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .event_format(Line { json })
            .finish();
        tracing::subscriber::with_default(subscriber, || request_event(r));
        let generic = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let mut own = Vec::new();
        r.write(&mut own, now(), json);
        let own = String::from_utf8(own).unwrap();
        let untimed = |line: &str| -> String {
            if json {
                let at = line.find("\"time\":\"").unwrap() + 8;
                let end = at + line[at..].find('"').unwrap();
                format!("{}{}", &line[..at], &line[end..])
            } else {
                line.split_once(' ').unwrap().1.to_owned()
            }
        };
        (untimed(&generic), untimed(&own))
    }

    #[test]
    fn request_lines_are_the_lines_the_generic_formatter_writes() {
        let lines = [
            RequestLine {
                client: "127.0.0.1:50123",
                sni: Some("localhost"),
                identity: "CN=alice,O=Example Corp",
                fingerprint: Some("ab12"),
                method: "GET",
                path: "/me",
                rule: Some(3),
                decision: Decision::Allow,
                status: 200,
                bytes: Some(512),
                upstream: Some(Duration::from_micros(1500)),
                total: Duration::from_micros(2345),
            },
            RequestLine {
                client: "[::1]:443",
                sni: None,
                identity: "anonymous(FAILED:expired)",
                fingerprint: None,
                method: "POST",
                path: "/a b/\u{202e}x=\"y\"\\z",
                rule: None,
                decision: Decision::Unauthenticated,
                status: 401,
                bytes: None,
                upstream: None,
                total: Duration::from_secs(3),
            },
            RequestLine {
                client: "10.0.0.1:1",
                sni: Some(""),
                identity: "CN=bob\n",
                fingerprint: Some("-"),
                method: "GET",
                path: "/",
                rule: Some(0),
                decision: Decision::Forbidden,
                status: 403,
                bytes: Some(0),
                upstream: Some(Duration::ZERO),
                total: Duration::from_nanos(1),
            },
        ];
        // Times as `f64`'s `Display` writes them: trailing zeros, whole and tiny values,
        // half a microsecond.
        let micros = [1, 10, 100, 120, 999, 1000, 1001, 1500, 3_000_000, 1_234_567];
        let timed = micros.iter().flat_map(|&us| {
            [
                Duration::from_micros(us),
                Duration::from_nanos(us * 1000 + 500),
                Duration::from_nanos(us * 1000 - 1),
            ]
            .map(|total| RequestLine {
                total,
                upstream: Some(total / 3),
                ..lines[0]
            })
        });
        for json in [false, true] {
            for r in lines.iter().cloned().chain(timed.clone()) {
                let (generic, own) = both(&r, json);
                assert!(generic.contains("request"), "{generic}");
                assert_eq!(own, generic);
            }
        }
    }

    #[test]
    fn text_values_are_quoted_only_when_they_must_be() {
        let text = |s: &str| {
            let mut o = String::new();
            put_text(&mut o, s).unwrap();
            o
        };
        assert_eq!(text("CN=alice"), r#""CN=alice""#);
        assert_eq!(text("plain"), "plain");
        assert_eq!(text(""), r#""""#);
        assert_eq!(text("a b"), r#""a b""#);
        assert_eq!(text(r#"say "hi"\now"#), r#""say \"hi\"\\now""#);
        assert_eq!(text("x\u{202e}y"), r"x\u{202e}y");
        assert_eq!(text("x\u{202e} y"), r#""x\\u{202e} y""#);
    }

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(escaped("bob\u{202e} nimda"), "bob\\u{202e} nimda");
        assert_eq!(escaped("a\nb\x1b[31m"), "a\\u{a}b\\u{1b}[31m");
        assert_eq!(escaped("plain CN=alice"), "plain CN=alice");
    }
}

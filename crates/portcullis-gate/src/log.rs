//! The access log (one line per request) and the event log (handshake failures, start,
//! shutdown), as compact text or JSON lines on standard output.
//!
//! Lines are formatted on the request's task and handed over a channel to one writer
//! thread, so a slow terminal or pipe never holds up a request, and no request takes the
//! stdout lock. Secrets never reach this module: it sees names, fingerprints and reasons.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::metrics::DECISIONS;
use crate::server::{Connection, Peer};

/// `access_log` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `2026-11-23T19:30:00Z 127.0.0.1:50123 localhost CN=alice GET /admin/x rule=2 allow 200 …`
    #[default]
    Text,
    Json,
    Off,
}

/// One request, as the access log sees it.
#[derive(Debug)]
pub struct RequestLine<'a> {
    pub conn: &'a Connection,
    pub method: &'a http::Method,
    /// The canonical path for allowed requests, the path as sent for refused ones.
    pub path: &'a str,
    pub rule: Option<usize>,
    pub decision: usize,
    pub status: u16,
    /// Size of the response body, when known in advance.
    pub bytes: Option<u64>,
    /// Time to the upstream's response headers.
    pub upstream: Option<Duration>,
    pub total: Duration,
}

/// The log sink.
#[derive(Debug)]
pub struct Log {
    tx: mpsc::Sender<String>,
    format: Format,
}

/// Now, to the millisecond.
fn now() -> String {
    let t = OffsetDateTime::now_utc();
    let t = t.replace_millisecond(t.millisecond()).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Log {
    /// Starts the writer thread; `None` for `Format::Off`.
    pub fn start(format: Format) -> Option<Log> {
        if format == Format::Off {
            return None;
        }
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("portcullis-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    // Lock stdout per batch, not for the thread's life: the rest of the
                    // program prints too.
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    let _ = writeln!(out, "{line}");
                    // Batch what is queued, then flush so lines are never held back.
                    while let Ok(more) = rx.try_recv() {
                        let _ = writeln!(out, "{more}");
                    }
                    let _ = out.flush();
                }
            })
            .ok()?;
        Some(Log { tx, format })
    }

    fn send(&self, line: String) {
        let _ = self.tx.send(line);
    }

    pub fn request(&self, r: &RequestLine<'_>) {
        let (who, fingerprint) = match &r.conn.peer {
            Peer::Verified(v) => (
                v.label.clone(),
                Some(v.identity.fingerprint_sha256.as_str()),
            ),
            Peer::Anonymous => ("anonymous".to_owned(), None),
            Peer::Failed(reason) => (format!("anonymous(FAILED:{reason})"), None),
        };
        let decision = DECISIONS.get(r.decision).copied().unwrap_or("?");
        let sni = r.conn.sni.as_deref().unwrap_or("-");
        let line = match self.format {
            Format::Json => json!({
                "time": now(),
                "client": r.conn.peer_addr.to_string(),
                "sni": r.conn.sni,
                "identity": who,
                "fingerprint": fingerprint,
                "method": r.method.as_str(),
                "path": r.path,
                "rule": r.rule,
                "decision": decision,
                "status": r.status,
                "bytes": r.bytes,
                "upstream_ms": r.upstream.map(ms),
                "total_ms": ms(r.total),
            })
            .to_string(),
            _ => format!(
                "{} {} {sni} {who} {} {} rule={} {decision} {} bytes={} upstream_ms={} total_ms={}",
                now(),
                r.conn.peer_addr,
                r.method,
                r.path,
                r.rule.map_or("-".to_owned(), |i| i.to_string()),
                r.status,
                r.bytes.map_or("-".to_owned(), |b| b.to_string()),
                r.upstream.map_or("-".to_owned(), |d| ms(d).to_string()),
                ms(r.total),
            ),
        };
        self.send(line);
    }

    /// A TLS handshake that did not complete, with the reason (never key material).
    pub fn handshake_failed(&self, peer: SocketAddr, reason: &str, detail: &str) {
        let line = match self.format {
            Format::Json => json!({
                "time": now(), "event": "handshake_failed", "client": peer.to_string(),
                "reason": reason, "detail": detail,
            })
            .to_string(),
            _ => format!("{} {peer} handshake failed: {reason} ({detail})", now()),
        };
        self.send(line);
    }
}

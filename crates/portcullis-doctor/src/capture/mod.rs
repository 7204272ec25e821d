//! Packet captures: `portcullis doctor capture FILE`. Pure and synchronous; the file is
//! attacker-influenced data, so every parser is bounded and none may panic.
//!
//! ```text
//! reader (pcap/pcapng → link → IP → TCP segments)
//!   ─► tcp (two-direction reassembly per connection, gaps reported)
//!   ─► tls (records → handshake messages, what each side said in the clear, and when)
//!   ─► Observations, one per TLS connection ─► diagnose() and the fix catalog, unchanged
//! ```
//!
//! A capture shows what the *client* did with the server's certificate: when it went on
//! with the handshake it accepted the chain, and the doctor does not second-guess it with
//! this machine's trust store; when it ended the handshake itself, the chain is judged
//! (against `--ca` when given, else the system and Mozilla stores) to say why. TLS 1.3
//! encrypts the certificate, the CertificateRequest and later alerts: a finding says what
//! could not be seen.
//!
//! ```no_run
//! let file = std::fs::File::open("bad.pcap").unwrap();
//! let report = portcullis_doctor::capture::read(file, "bad.pcap", &Default::default()).unwrap();
//! for c in &report.connections {
//!     println!("{} → {}: {}", c.client, c.server, c.cause);
//! }
//! ```

pub mod compare;
pub mod keylog;
pub mod reader;
pub mod tcp;
pub mod tls;

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

use crate::diagnose::{Finding, Severity};
use crate::fixes::Fix;
use crate::observe::*;
use crate::raw::{alert_name, suite_name, version_name};
use crate::{Report, causes, certs, trust};
use tls::TlsConn;

/// Why a capture could not be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("not a packet capture: {0}")]
    NotACapture(String),
}

/// How to judge what the capture shows.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--ca`: the CAs the client trusts (DER); the chain a client refused is judged
    /// against them instead of the system and Mozilla stores.
    pub ca: Option<Vec<Vec<u8>>>,
    pub ca_files: Vec<String>,
    /// `--keylog`: TLS 1.3 handshake secrets, to open the encrypted handshake.
    pub keylog: Option<keylog::KeyLog>,
}

/// Every TLS connection of a capture with its verdict, and a summary.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureReport {
    pub file: String,
    pub connections: Vec<ConnectionReport>,
    pub summary: Summary,
}

impl CaptureReport {
    /// 0 when every TLS connection is healthy (warnings allowed), 1 when one is not.
    pub fn exit_code(&self) -> u8 {
        if self.summary.problems == 0 { 0 } else { 1 }
    }
}

/// One TLS connection's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionReport {
    pub client: String,
    pub server: String,
    pub sni: Option<String>,
    /// The version the server chose, when a ServerHello was seen.
    pub version: Option<String>,
    /// The first error finding's slug (the live doctor's slugs), or `ok`.
    pub cause: String,
    pub verdict: String,
    pub findings: Vec<Finding>,
    /// The handshake as the capture shows it, for people.
    pub trace: Vec<String>,
    /// What the hellos offered and chose, and how the connection ended, field by field.
    pub facts: Facts,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tls_connections: usize,
    pub healthy: usize,
    pub problems: usize,
    /// Connection count per cause (`ok` included).
    pub causes: BTreeMap<String, usize>,
    /// TCP connections that did not start with a ClientHello.
    pub other_tcp_connections: u64,
    /// Connections not followed because too many were open at once.
    pub untracked_connections: u64,
    /// TLS connections counted but not judged: the facts already kept reached
    /// [`MAX_RETAINED`].
    pub unjudged_connections: u64,
    /// Connections whose data exceeded the memory bounds (their start was still read).
    pub clipped_connections: u64,
    pub read: reader::ReadStats,
}

/// The TLS connections of one capture, their facts extracted (stream bytes dropped), and
/// what the reader counted on the way.
#[derive(Debug, Clone)]
pub struct Extracted {
    /// In the order they started.
    pub conns: Vec<TlsConn>,
    pub other_tcp_connections: u64,
    pub untracked_connections: u64,
    /// TLS connections dropped after [`MAX_RETAINED`] bytes of facts were kept.
    pub unjudged_connections: u64,
    pub clipped_connections: u64,
    pub read: reader::ReadStats,
}

/// The most the facts of a capture's TLS connections may weigh (see [`weight`]): stream
/// bytes are bounded by the reassembler, this bounds what is kept of closed connections.
/// About 40,000 ordinary connections (a 100 MB capture holds some 13,000).
pub const MAX_RETAINED: usize = 256 * 1024 * 1024;

/// What keeping a connection's facts (and later its verdict) costs, roughly, in bytes.
fn weight(t: &TlsConn) -> usize {
    let side = |s: &tls::Side| {
        s.chain
            .as_ref()
            .map_or(0, |(_, c)| c.iter().map(|d| d.len() + 32).sum::<usize>())
            + s.hellos
                .iter()
                .map(|h| {
                    40 * (h.suites.len() + h.groups.len() + h.signature_algorithms.len())
                        + h.alpn.iter().map(|a| a.len() + 32).sum::<usize>()
                })
                .sum::<usize>()
            + s.cert_request
                .as_ref()
                .map_or(0, |(_, n)| n.iter().map(|x| x.len() + 32).sum())
            + 16 * (s.alerts.len() + s.encrypted.len() + s.encrypted_handshake.len())
            + s.not_tls.as_ref().map_or(0, |(_, p)| p.len())
    };
    // The verdict: the trace (at most 64 lines), findings and facts as text.
    8 * 1024 + 2 * (side(&t.client) + side(&t.server))
}

/// Reads a capture down to its TLS connections: streaming, bounded by the reassembler's
/// caps; each connection's stream bytes are dropped as soon as its facts are read.
pub fn extract(input: impl Read) -> Result<Extracted, CaptureError> {
    extract_with(input, None)
}

/// [`extract`], opening TLS 1.3 handshakes with the secrets of `keylog`.
pub fn extract_with(
    input: impl Read,
    keylog: Option<&keylog::KeyLog>,
) -> Result<Extracted, CaptureError> {
    let mut conns: Vec<TlsConn> = Vec::new();
    let mut other = 0u64;
    let (mut retained, mut unjudged) = (0usize, 0u64);
    let mut on_conn = |c: tcp::Conn| match tls::analyze_with(c, keylog) {
        Some(mut t) => {
            // The facts are extracted: the stream bytes and arrival marks are not
            // needed any more.
            for s in [&mut t.tcp.up, &mut t.tcp.down] {
                s.data = Vec::new();
                s.marks = Vec::new();
            }
            let w = weight(&t);
            if retained + w <= MAX_RETAINED {
                retained += w;
                conns.push(t);
            } else {
                unjudged += 1;
            }
        }
        None => other += 1,
    };
    let mut tcp = tcp::Reassembler::default();
    let stats = reader::read(input, |seg| tcp.segment(seg, &mut on_conn))?;
    let (untracked, clipped) = (tcp.untracked, tcp.clipped_flows);
    tcp.finish(&mut on_conn);
    conns.sort_by_key(|c| c.tcp.start_us);
    Ok(Extracted {
        conns,
        other_tcp_connections: other,
        untracked_connections: untracked,
        unjudged_connections: unjudged,
        clipped_connections: clipped,
        read: stats,
    })
}

/// Up to 8 other connections of `all` to the same server as `all[i]`: the retries the
/// live doctor would make.
fn same_server(all: &[TlsConn], i: usize) -> Vec<&TlsConn> {
    all.iter()
        .enumerate()
        .filter(|(j, o)| *j != i && o.tcp.server == all[i].tcp.server)
        .map(|(_, o)| o)
        .take(8)
        .collect()
}

/// [`same_server`] for every connection at once, without a quadratic scan: the first 9
/// connections to each server (the earliest others, as `same_server` picks them).
fn same_server_all(all: &[TlsConn]) -> Vec<Vec<&TlsConn>> {
    let mut first: std::collections::HashMap<std::net::SocketAddr, Vec<usize>> =
        std::collections::HashMap::new();
    for (i, c) in all.iter().enumerate() {
        let v = first.entry(c.tcp.server).or_default();
        if v.len() < 9 {
            v.push(i);
        }
    }
    (0..all.len())
        .map(|i| {
            first
                .get(&all[i].tcp.server)
                .map(|v| {
                    v.iter()
                        .filter(|j| **j != i)
                        .take(8)
                        .map(|j| &all[*j])
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Reads a capture and judges each TLS connection in it.
pub fn read(input: impl Read, file: &str, opts: &Options) -> Result<CaptureReport, CaptureError> {
    Ok(judge(
        extract_with(input, opts.keylog.as_ref())?,
        file,
        opts,
    ))
}

/// Judges each TLS connection of an extracted capture.
pub fn judge(x: Extracted, file: &str, opts: &Options) -> CaptureReport {
    let conns = x.conns;
    let mut stores = None;
    let mut reports = Vec::with_capacity(conns.len());
    for (c, others) in conns.iter().zip(same_server_all(&conns)) {
        reports.push(connection(c, &others, opts, &mut stores));
    }
    let mut causes = BTreeMap::new();
    for r in &reports {
        *causes.entry(r.cause.clone()).or_insert(0) += 1;
    }
    let healthy = reports.iter().filter(|r| r.cause == "ok").count();
    CaptureReport {
        file: file.into(),
        summary: Summary {
            tls_connections: reports.len(),
            healthy,
            problems: reports.len() - healthy,
            causes,
            other_tcp_connections: x.other_tcp_connections,
            untracked_connections: x.untracked_connections,
            unjudged_connections: x.unjudged_connections,
            clipped_connections: x.clipped_connections,
            read: x.read,
        },
        connections: reports,
    }
}

// === facts of one connection ===

/// The first non-retry ServerHello.
fn server_hello(c: &TlsConn) -> Option<&tls::ServerHello> {
    c.server.server_hellos.iter().find(|s| !s.retry)
}

fn is_tls13(c: &TlsConn) -> bool {
    server_hello(c).is_some_and(|s| s.version == 0x0304)
}

/// An encrypted record this short holds an alert (2 bytes, the type, a 16-byte tag),
/// not a Finished (at least 32 + 1 + 16).
const ALERT_SIZED: usize = 24;

/// When the client's Finished went (TLS 1.2: its ChangeCipherSpec; TLS 1.3: its first
/// encrypted record after the server's encrypted flight, unless alert-sized).
fn client_finished(c: &TlsConn) -> Option<u64> {
    if let Some(us) = c.client.finished_us {
        return Some(us);
    }
    if is_tls13(c) {
        let flight = c.server.encrypted.first()?.1;
        c.client
            .encrypted
            .iter()
            .find(|(_, t)| *t >= flight)
            .filter(|(len, _)| *len > ALERT_SIZED)
            .map(|(_, t)| *t)
    } else {
        c.client.ccs_us
    }
}

fn complete(c: &TlsConn) -> bool {
    client_finished(c).is_some()
        && if is_tls13(c) {
            !c.server.encrypted.is_empty()
        } else {
            c.server.ccs_us.is_some()
        }
}

/// The server showed its certificate (TLS 1.2), or its encrypted flight (TLS 1.3).
fn past_certificate(c: &TlsConn) -> bool {
    if is_tls13(c) {
        !c.server.encrypted.is_empty()
    } else {
        c.server.chain.is_some() || c.server.hello_done_us.is_some()
    }
}

fn stage(c: &TlsConn) -> Stage {
    if complete(c) {
        Stage::AfterHandshake
    } else if past_certificate(c) {
        Stage::Certificate
    } else {
        Stage::Hello
    }
}

/// The first alert in the clear that is not close_notify.
fn alert(side: &tls::Side) -> Option<(u64, u8)> {
    side.alerts
        .iter()
        .find_map(|a| a.code.filter(|c| *c != 0).map(|c| (a.us, c)))
}

/// How the client ended a handshake it did not accept, after the server's certificate.
fn client_refusal(c: &TlsConn) -> Option<String> {
    if !past_certificate(c) || complete(c) {
        return None;
    }
    if let Some((_, code)) = alert(&c.client) {
        return Some(format!(
            "the client sent alert {code} ({})",
            alert_name(code)
        ));
    }
    if is_tls13(c) {
        let flight = c.server.encrypted.first().map_or(0, |r| r.1);
        if let Some((len, _)) = c.client.encrypted.iter().find(|(_, t)| *t >= flight) {
            return Some(format!(
                "the client answered the server's encrypted flight with one {len}-byte encrypted record (the size of an alert, not of a Finished)"
            ));
        }
    }
    if c.client.alerts.iter().any(|a| a.code.is_none()) {
        return Some("the client sent an encrypted alert".into());
    }
    let server_closed = c.tcp.down.fin.is_some() || c.tcp.down.rst_us.is_some();
    let client_closed_at = c.tcp.up.fin.map(|f| f.0).or(c.tcp.up.rst_us);
    let server_closed_at = c.tcp.down.fin.map(|f| f.0).or(c.tcp.down.rst_us);
    // A fatal server alert before the client closed ended the handshake: a client that
    // closes on reading it, before the server's FIN reaches the capture, refused nothing.
    // (Times are the capture's: near the server, a client's FIN sent just before the
    // alert arrived can show after it; the alert is the server's verdict either way.)
    let server_ended = c.server.alerts.iter().any(|a| {
        a.fatal
            && a.code.is_some_and(|code| code != 0)
            && client_closed_at.is_none_or(|cl| a.us <= cl)
    });
    if server_ended {
        return None;
    }
    match (client_closed_at, server_closed_at) {
        (Some(a), Some(b)) if a <= b => {
            Some("the client closed the connection without an alert".into())
        }
        (Some(_), None) if !server_closed => {
            Some("the client closed the connection without an alert".into())
        }
        _ => None,
    }
}

fn hello_sent(c: &TlsConn) -> HelloSent {
    let h = c.client.hellos.first().cloned().unwrap_or_default();
    HelloSent {
        sni: h.sni,
        versions: h.versions.iter().map(|v| version_name(*v)).collect(),
        alpn: h.alpn,
        cipher_suites: h.suites.iter().map(|s| suite_name(*s)).collect(),
        client_cert: c
            .client
            .chain
            .as_ref()
            .is_some_and(|(_, chain)| !chain.is_empty()),
    }
}

/// What the server answered, as the live doctor's raw probes record it.
fn response(c: &TlsConn) -> RawResponse {
    if let Some((_, p)) = &c.server.not_tls {
        return RawResponse::NotTls { preview: p.clone() };
    }
    if let Some(sh) = server_hello(c) {
        return RawResponse::ServerHello {
            version: version_name(sh.version),
            cipher_suite: suite_name(sh.suite),
        };
    }
    if let Some((_, code)) = alert(&c.server) {
        return RawResponse::Alert {
            code,
            name: alert_name(code).into(),
        };
    }
    if c.tcp.down.rst_us.is_some() {
        RawResponse::Closed { reset: true }
    } else if c.tcp.down.fin.is_some() {
        RawResponse::Closed { reset: false }
    } else {
        RawResponse::Timeout
    }
}

/// What one connection's hellos said and how it ended, as structured fields (names, not
/// numbers; unknown values as `0x….`): what `compare-captures` sets side by side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// The ClientHello's server_name.
    pub sni: Option<String>,
    /// Offered by the client (supported_versions, else the legacy version).
    pub versions: Vec<String>,
    pub cipher_suites: Vec<String>,
    pub groups: Vec<String>,
    pub signature_algorithms: Vec<String>,
    pub alpn: Vec<String>,
    /// What the server chose, when a ServerHello was seen.
    pub server_version: Option<String>,
    pub server_cipher_suite: Option<String>,
    /// TLS 1.3: the key-exchange group of the server's key share.
    pub server_group: Option<String>,
    /// A HelloRetryRequest asked for this group.
    pub hello_retry_group: Option<String>,
    pub server_alpn: Option<String>,
    /// The CA names of the server's CertificateRequest, when it sent one in the clear.
    pub certificate_request: Option<Vec<String>>,
    /// `not requested`, `not sent`, `sent: SUBJECT`, or `not visible (TLS 1.3)`.
    pub client_certificate: String,
    /// The first alert in the clear (not close_notify), `server: 40 handshake_failure`, or
    /// an encrypted one before the handshake completed; `none`.
    pub alert: String,
    /// Who closed first and how: `client (FIN)`, `server (RST)`, `nobody (the capture
    /// ended first)`.
    pub closed_by: String,
}

fn sigalg_name(s: u16) -> String {
    let name = match s {
        0x0401 => "rsa_pkcs1_sha256",
        0x0501 => "rsa_pkcs1_sha384",
        0x0601 => "rsa_pkcs1_sha512",
        0x0403 => "ecdsa_secp256r1_sha256",
        0x0503 => "ecdsa_secp384r1_sha384",
        0x0603 => "ecdsa_secp521r1_sha512",
        0x0804 => "rsa_pss_rsae_sha256",
        0x0805 => "rsa_pss_rsae_sha384",
        0x0806 => "rsa_pss_rsae_sha512",
        0x0807 => "ed25519",
        0x0808 => "ed448",
        0x0809 => "rsa_pss_pss_sha256",
        0x080a => "rsa_pss_pss_sha384",
        0x080b => "rsa_pss_pss_sha512",
        0x081a => "ecdsa_brainpoolP256r1tls13_sha256",
        0x081b => "ecdsa_brainpoolP384r1tls13_sha384",
        0x081c => "ecdsa_brainpoolP512r1tls13_sha512",
        0x0201 => "rsa_pkcs1_sha1",
        0x0203 => "ecdsa_sha1",
        0x0301 => "rsa_pkcs1_sha224",
        0x0303 => "ecdsa_sha224",
        0x0101 => "rsa_pkcs1_md5",
        other => return format!("0x{other:04x}"),
    };
    name.into()
}

/// The structured facts of one connection.
pub fn facts(c: &TlsConn) -> Facts {
    let h = c.client.hellos.first().cloned().unwrap_or_default();
    let sh = server_hello(c);
    let hrr = c.server.server_hellos.iter().find(|s| s.retry);
    let client_certificate = match (&c.client.chain, &c.server.cert_request) {
        (Some((_, chain)), _) if !chain.is_empty() => {
            format!("sent: {}", certs::details(&chain[0]).subject)
        }
        (Some(_), _) => "not sent (an empty Certificate message)".into(),
        (None, Some(_)) => "not sent".into(),
        (None, None) if is_tls13(c) => "not visible (TLS 1.3 encrypts it)".into(),
        (None, None) => "not requested".into(),
    };
    let done = complete(c);
    let clear = |side: &tls::Side, who: &str| {
        side.alerts.iter().find_map(|a| match a.code {
            Some(0) => None,
            Some(code) => Some((a.us, format!("{who}: {code} {}", alert_name(code)))),
            None if !done => Some((a.us, format!("{who}: encrypted alert"))),
            None => None,
        })
    };
    let alert = match (clear(&c.client, "client"), clear(&c.server, "server")) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a.1 } else { b.1 }),
        (a, b) => a.or(b).map(|x| x.1),
    };
    let close = |s: &tcp::Stream| match (s.fin.map(|f| f.0), s.rst_us) {
        (Some(f), Some(r)) if r < f => Some((r, "RST")),
        (Some(f), _) => Some((f, "FIN")),
        (None, Some(r)) => Some((r, "RST")),
        (None, None) => None,
    };
    let closed_by = match (close(&c.tcp.up), close(&c.tcp.down)) {
        (Some((a, how)), Some((b, _))) if a <= b => format!("client ({how})"),
        (Some((_, how)), None) => format!("client ({how})"),
        (_, Some((_, how))) => format!("server ({how})"),
        (None, None) => "nobody (the capture ended first)".into(),
    };
    Facts {
        sni: h.sni,
        versions: h.versions.iter().map(|v| version_name(*v)).collect(),
        cipher_suites: h.suites.iter().map(|v| suite_name(*v)).collect(),
        groups: h.groups.iter().map(|v| group_name(*v)).collect(),
        signature_algorithms: h
            .signature_algorithms
            .iter()
            .map(|v| sigalg_name(*v))
            .collect(),
        alpn: h.alpn,
        server_version: sh.map(|s| version_name(s.version)),
        server_cipher_suite: sh.map(|s| suite_name(s.suite)),
        server_group: sh.and_then(|s| s.group).map(group_name),
        hello_retry_group: hrr.and_then(|s| s.retry_group).map(group_name),
        server_alpn: sh.and_then(|s| s.alpn.clone()),
        certificate_request: c.server.cert_request.as_ref().map(|(_, n)| n.clone()),
        client_certificate,
        alert: alert.unwrap_or_else(|| "none".into()),
        closed_by,
    }
}

fn ms(c: &TlsConn, us: u64) -> u64 {
    us.saturating_sub(c.tcp.start_us) / 1000
}

fn group_name(g: u16) -> String {
    match g {
        0x17 => "secp256r1".into(),
        0x18 => "secp384r1".into(),
        0x19 => "secp521r1".into(),
        0x1d => "x25519".into(),
        0x1e => "x448".into(),
        0x11ec => "X25519MLKEM768".into(),
        0x100..=0x104 => format!(
            "ffdhe{}",
            [2048, 3072, 4096, 6144, 8192][(g - 0x100) as usize]
        ),
        other => format!("0x{other:04x}"),
    }
}

/// The handshake, step by step, as the capture shows it.
fn steps(c: &TlsConn) -> Vec<Step> {
    let mut v: Vec<(u64, &str, String)> = Vec::new();
    let (cl, sv) = ("sent", "received");
    for (i, h) in c.client.hellos.iter().enumerate() {
        v.push((
            h.us,
            cl,
            format!(
                "ClientHello{}: SNI {}, versions {}, ALPN {}, groups {}, {} cipher suites",
                if i > 0 { " (again)" } else { "" },
                h.sni.as_deref().unwrap_or("none"),
                h.versions
                    .iter()
                    .map(|x| version_name(*x))
                    .collect::<Vec<_>>()
                    .join("/"),
                if h.alpn.is_empty() {
                    "none".into()
                } else {
                    h.alpn.join(",")
                },
                h.groups
                    .iter()
                    .map(|g| group_name(*g))
                    .collect::<Vec<_>>()
                    .join(","),
                h.suites.len()
            ),
        ));
    }
    for s in &c.server.server_hellos {
        if s.retry {
            v.push((
                s.us,
                sv,
                format!(
                    "HelloRetryRequest (the server wants a key share for {})",
                    s.retry_group.map_or("?".into(), group_name)
                ),
            ));
        } else {
            v.push((
                s.us,
                sv,
                format!(
                    "ServerHello {} {}{}",
                    version_name(s.version),
                    suite_name(s.suite),
                    s.alpn
                        .as_ref()
                        .map(|a| format!(", ALPN {a}"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    if let Some((us, chain)) = &c.server.chain {
        v.push((
            *us,
            sv,
            format!("Certificate ({} certificates)", chain.len()),
        ));
    }
    if let Some((us, names)) = &c.server.cert_request {
        v.push((
            *us,
            sv,
            format!(
                "CertificateRequest (accepted CAs: {})",
                if names.is_empty() {
                    "not listed".into()
                } else {
                    names.join("; ")
                }
            ),
        ));
    }
    if let Some(us) = c.server.hello_done_us {
        v.push((us, sv, "ServerHelloDone".into()));
    }
    if let Some((us, chain)) = &c.client.chain {
        v.push((
            *us,
            cl,
            if chain.is_empty() {
                "Certificate (empty: no client certificate)".into()
            } else {
                format!("Certificate ({} client certificates)", chain.len())
            },
        ));
    }
    if let Some(us) = c.client.ccs_us.filter(|_| !is_tls13(c)) {
        v.push((us, cl, "ChangeCipherSpec, Finished".into()));
    }
    if let Some(us) = c.server.ccs_us.filter(|_| !is_tls13(c)) {
        v.push((us, sv, "ChangeCipherSpec, Finished".into()));
    }
    if is_tls13(c) {
        if let Some((_, us)) = c.server.encrypted.first() {
            v.push((
                *us,
                sv,
                if c.server.opened.is_empty() {
                    "encrypted handshake (TLS 1.3: certificate not visible)".into()
                } else {
                    format!(
                        "encrypted handshake, opened with --keylog: {}",
                        c.server.opened.join(", ")
                    )
                },
            ));
        }
        if !c.client.opened.is_empty() {
            v.push((
                client_finished(c).unwrap_or(c.tcp.end_us),
                cl,
                format!(
                    "encrypted handshake, opened with --keylog: {}",
                    c.client.opened.join(", ")
                ),
            ));
        }
        if let Some(us) = client_finished(c) {
            v.push((us, cl, "encrypted Finished".into()));
        }
    }
    for (side, who) in [(&c.client, cl), (&c.server, sv)] {
        for a in side.alerts.iter().take(4) {
            v.push((
                a.us,
                who,
                match a.code {
                    Some(code) => format!("alert {code} ({})", alert_name(code)),
                    None => "encrypted alert".into(),
                },
            ));
        }
        if let Some((us, p)) = &side.not_tls {
            v.push((*us, who, format!("not TLS: \"{p}\"")));
        }
        if let Some(b) = &side.broken {
            v.push((0, "note", format!("{who}: {b}")));
        }
    }
    let app = |side: &tls::Side, after: Option<u64>| {
        side.encrypted
            .iter()
            .filter(|(_, t)| after.is_none_or(|a| *t > a))
            .map(|(l, _)| *l)
            .sum::<usize>()
    };
    if complete(c) {
        let after = if is_tls13(c) {
            client_finished(c)
        } else {
            None
        };
        let (up, down) = (app(&c.client, after), app(&c.server, after));
        let end = c.tcp.end_us;
        v.push((
            end,
            "note",
            format!(
                "application data: {up} bytes sent, {down} bytes received (encrypted, never opened{})",
                if c.server.opened.is_empty() && c.client.opened.is_empty() {
                    ""
                } else {
                    "; with --keylog only records of an alert's size are opened, and kept only if they are alerts"
                }
            ),
        ));
    }
    for (s, who) in [(&c.tcp.up, "client"), (&c.tcp.down, "server")] {
        if let Some((us, _)) = s.fin {
            v.push((us, "closed", format!("{who} closed (FIN)")));
        }
        if let Some(us) = s.rst_us {
            v.push((us, "closed", format!("{who} reset (RST)")));
        }
        if let Some((at, missing)) = s.gap {
            v.push((
                c.tcp.end_us,
                "note",
                format!(
                    "gap in the {who}'s bytes at offset {at}{}: the capture lost them; nothing after the gap is read",
                    if missing > 0 { format!(" ({missing} bytes missing)") } else { String::new() }
                ),
            ));
        }
    }
    v.sort_by_key(|(t, _, _)| *t);
    v.into_iter()
        .take(64)
        .map(|(t, dir, what)| Step {
            ms: ms(c, t),
            dir: dir.into(),
            what,
        })
        .collect()
}

/// The connection as the doctor's observations, plus the capture's own findings.
fn connection(
    c: &TlsConn,
    others: &[&TlsConn],
    opts: &Options,
    stores: &mut Option<trust::Stores>,
) -> ConnectionReport {
    let sent = hello_sent(c);
    let sh = server_hello(c);
    let tls13 = is_tls13(c);
    let st = stage(c);
    let refusal = client_refusal(c);
    // The client completed the handshake, sent nothing and closed: it may have refused
    // the server then (curl checks the name after the handshake), or it only probed.
    // Only the chain's judgement decides, and no finding says "refused" on this alone.
    let quiet_close = refusal.is_none()
        && !tls13
        && complete(c)
        && c.client.encrypted.is_empty()
        && (c.tcp.up.fin.is_some() || c.tcp.up.rst_us.is_some());
    // A server that chose a version below TLS 1.2, refused by a client that offered it
    // only nominally (OpenSSL's security level): the version is the cause, not the chain.
    let old_version = refusal.is_some() && sh.is_some_and(|s| s.version < 0x0303);
    let server_closed = |c: &TlsConn| match (c.tcp.down.rst_us, c.tcp.down.fin) {
        (Some(_), _) => Some(true),
        (None, Some(_)) => Some(false),
        _ => None,
    };
    let mut notes: Vec<String> = Vec::new();

    let outcome = if c.server.not_tls.is_some() {
        HandshakeOutcome::NotTls {
            stage: Stage::Hello,
        }
    } else if let Some((_, code)) = alert(&c.server) {
        HandshakeOutcome::Alert {
            code,
            name: alert_name(code).into(),
            stage: st,
        }
    } else if refusal.is_some() {
        // The server did its part; the client judged what it got. The live doctor's
        // recording verifier goes on the same way and judges the chain apart.
        HandshakeOutcome::Established
    } else if sh.is_none()
        && let Some((_, code)) = alert(&c.client)
    {
        HandshakeOutcome::ClientError {
            message: format!("the client sent alert {code} ({})", alert_name(code)),
            stage: Stage::Hello,
        }
    } else if !complete(c) {
        match server_closed(c) {
            Some(reset) => HandshakeOutcome::Closed { reset, stage: st },
            None => HandshakeOutcome::Timeout { stage: st },
        }
    } else if tls13 && let Some(reset) = server_closed(c) {
        // After the client's Finished a TLS 1.3 server that refuses the client's
        // certificate sends one encrypted alert and closes; one that accepts sends
        // tickets and answers.
        let fin = client_finished(c).unwrap_or(0);
        let after: Vec<usize> = c
            .server
            .encrypted
            .iter()
            .filter(|(_, t)| *t > fin)
            .map(|(l, _)| *l)
            .collect();
        if after.len() <= 1 && after.iter().all(|l| *l <= ALERT_SIZED) {
            notes.push(format!(
                "after the client's Finished the server sent {} and closed: a TLS 1.3 server that refuses the client's certificate does exactly this (alert 116 certificate_required, 42 or 48, encrypted); the capture cannot show which alert",
                if after.is_empty() { "nothing".to_owned() } else { format!("one {}-byte encrypted record (the size of an alert)", after[0]) }
            ));
            HandshakeOutcome::Closed {
                reset,
                stage: Stage::AfterHandshake,
            }
        } else {
            HandshakeOutcome::Established
        }
    } else {
        HandshakeOutcome::Established
    };

    let chain: Vec<Vec<u8>> = c
        .server
        .chain
        .as_ref()
        .map(|(_, ch)| ch.clone())
        .unwrap_or_default();
    let mut steps = steps(c);
    if let Some(r) = &refusal {
        steps.push(Step {
            ms: steps.last().map_or(0, |s| s.ms),
            dir: "note".into(),
            what: format!("{r}: it did not accept what the server sent"),
        });
    }
    let handshake = Handshake {
        label: "as captured".into(),
        sent: sent.clone(),
        outcome,
        version: sh.map(|s| version_name(s.version)),
        cipher_suite: sh.map(|s| suite_name(s.suite)),
        alpn: sh.and_then(|s| s.alpn.clone()),
        cert_request: c.server.cert_request.as_ref().map(|(_, n)| n.clone()),
        chain_len: chain.len(),
        signature_error: None,
        steps,
        ms: ms(c, c.tcp.end_us),
    };

    let mut obs = Observations {
        target: TargetInfo {
            host: c.tcp.server.ip().to_string(),
            port: c.tcp.server.port(),
            path: String::new(),
            servername: sent.sni.clone(),
            ca_files: opts.ca_files.clone(),
            client_cert: None,
            client_key: None,
            tls: None,
            alpn: sent.alpn.clone(),
            // The client in a capture is whoever it was: trust is judged with --ca or
            // the stores here.
            as_client: None,
        },
        now: (c.tcp.start_us / 1_000_000) as i64,
        tcp: Some(TcpObservation {
            address: c.tcp.server.to_string(),
            outcome: TcpOutcome::Connected,
            error: None,
            ms: 0,
        }),
        ..Default::default()
    };
    if let Some((_, p)) = &c.server.not_tls {
        obs.raw.push(RawProbe {
            label: "this connection".into(),
            sent: sent.clone(),
            response: RawResponse::NotTls { preview: p.clone() },
            ms: ms(c, c.server.not_tls.as_ref().map_or(0, |n| n.0)),
        });
    }
    // The other connections to the same server in this capture are the retries the live
    // doctor would make: what another ClientHello got.
    for o in others {
        obs.raw.push(RawProbe {
            label: format!("captured connection from {}", o.tcp.client),
            sent: hello_sent(o),
            response: response(o),
            ms: ms(o, o.tcp.end_us),
        });
    }
    if handshake.outcome.stage() == Some(Stage::Hello)
        && !matches!(handshake.outcome, HandshakeOutcome::NotTls { .. })
    {
        obs.sni_found = others
            .iter()
            .filter(|o| server_hello(o).is_some())
            .filter_map(|o| o.client.hellos.first().and_then(|h| h.sni.clone()))
            .find(|n| Some(n) != sent.sni.as_ref());
    }
    obs.handshakes.push(handshake);
    if !chain.is_empty() {
        obs.chain = chain.iter().map(|d| certs::details(d)).collect();
        if (refusal.is_some() || quiet_close) && !old_version {
            let stores = stores.get_or_insert_with(|| trust::Stores::load(opts.ca.as_deref()));
            obs.trust = trust::judge(&chain, &obs.chain, stores);
            obs.name_check = Some(trust::check_name(&chain[0], obs.target.verify_name()));
        }
    }

    let mut report = Report::from_observations(obs, 0);
    let mut extra: Vec<Finding> = Vec::new();
    let trace: Vec<String> = report
        .observations
        .handshakes
        .first()
        .map(|h| {
            h.steps
                .iter()
                .map(|s| format!("+{} ms {} {}", s.ms, s.dir, s.what))
                .collect()
        })
        .unwrap_or_default();
    if let (Some(r), Some(sh)) = (&refusal, sh.filter(|_| old_version)) {
        extra.push(finding(
            "protocol-version-mismatch",
            Severity::Error,
            format!(
                "the server chose {}, and the client refused it ({r}): the client offered it only nominally, its security settings require TLS 1.2 or later",
                version_name(sh.version)
            ),
            trace.clone(),
            &report.observations,
        ));
    } else if let Some(r) = &refusal
        && !report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error)
    {
        extra.push(finding(
            "client-aborted-handshake",
            Severity::Error,
            format!(
                "{r} after the server's {}: the client refused the server's certificate or parameters{}",
                if tls13 { "encrypted flight" } else { "certificate" },
                if tls13 {
                    "; TLS 1.3 encrypts the certificate, so the capture cannot show which check failed"
                } else if opts.ca.is_none() {
                    "; the chain is trusted by this machine's stores and the name matches, so the client trusts something else (give its CAs with --ca)"
                } else {
                    ""
                }
            ),
            trace.clone(),
            &report.observations,
        ));
    }
    if tls13 && c.server.opened.is_empty() {
        let mut ev = trace.clone();
        ev.extend(notes.iter().cloned());
        extra.push(finding(
            "encrypted-handshake",
            Severity::Warning,
            format!(
                "TLS 1.3: the server's certificate, its CertificateRequest and later alerts are encrypted; this capture cannot judge them (the certificate was not checked){}",
                notes.first().map(|n| format!("; {n}")).unwrap_or_default()
            ),
            ev,
            &report.observations,
        ));
    }
    if report.cause == "ok" {
        // The live verdict says "certificate verified"; a capture only shows that the
        // client went on.
        report.verdict = format!(
            "healthy: {}{}, the handshake completed and the client went on with it",
            sh.map(|s| version_name(s.version)).unwrap_or_default(),
            sh.map(|s| format!(" {}", suite_name(s.suite)))
                .unwrap_or_default()
        );
    }
    if !extra.is_empty() {
        report.findings.extend(extra);
        report
            .findings
            .sort_by_key(|f| (f.severity == Severity::Warning, causes::rank(&f.cause)));
        let first = report
            .findings
            .iter()
            .find(|f| f.severity == Severity::Error);
        report.cause = first.map_or_else(|| "ok".into(), |f| f.cause.clone());
        if let Some(f) = first {
            report.verdict = format!("the connection fails: {}", f.summary);
        }
    }
    ConnectionReport {
        client: c.tcp.client.to_string(),
        server: c.tcp.server.to_string(),
        sni: sent.sni,
        version: sh.map(|s| version_name(s.version)),
        cause: report.cause,
        verdict: report.verdict,
        findings: report.findings,
        trace,
        facts: facts(c),
    }
}

/// A finding of the capture's own, with the fix catalog's fixes for its cause (or the
/// cause's one-line fix when the catalog has none).
fn finding(
    cause: &str,
    severity: Severity,
    summary: String,
    evidence: Vec<String>,
    obs: &Observations,
) -> Finding {
    let c = causes::get(cause);
    let catalog = crate::fixes::for_cause(cause, obs);
    Finding {
        cause: cause.into(),
        severity,
        summary,
        evidence,
        errors_seen: c
            .map(|c| c.errors.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
        fixes: if !catalog.is_empty() {
            catalog
        } else {
            c.map(|c| {
                vec![Fix {
                    ecosystem: "all".into(),
                    summary: c.fix.into(),
                    snippet: String::new(),
                }]
            })
            .unwrap_or_default()
        },
    }
}

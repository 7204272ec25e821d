//! TLS in a reassembled connection: records (tls-parser), handshake messages reassembled
//! across records, what each side said in the clear, and when. Encrypted records are
//! counted and dated, never opened.

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_client_hello_extensions,
    parse_tls_message_handshake, parse_tls_raw_record, parse_tls_server_hello_extensions,
};

use super::keylog::{KeyLog, Opener};
use super::tcp::{Conn, Stream};
use crate::certs;
use crate::raw::looks_like_tls;

/// What a ClientHello offered (GREASE values left out).
#[derive(Debug, Clone, Default)]
pub struct ClientHello {
    pub us: u64,
    /// The 32-byte random: what a key log is indexed by.
    pub random: Vec<u8>,
    pub sni: Option<String>,
    /// supported_versions when present, else the legacy version.
    pub versions: Vec<u16>,
    pub suites: Vec<u16>,
    pub groups: Vec<u16>,
    pub signature_algorithms: Vec<u16>,
    pub alpn: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ServerHello {
    pub us: u64,
    pub version: u16,
    pub suite: u16,
    pub alpn: Option<String>,
    /// A TLS 1.3 HelloRetryRequest (a ServerHello with the special random).
    pub retry: bool,
    /// The group a HelloRetryRequest asks for.
    pub retry_group: Option<u16>,
    /// The key-exchange group the server chose (TLS 1.3 key_share; in a
    /// HelloRetryRequest, the group it asks for).
    pub group: Option<u16>,
}

/// An alert in the clear (`code`), or an encrypted record of the alert type (TLS 1.2
/// after ChangeCipherSpec: `code` is `None`).
#[derive(Debug, Clone, Copy)]
pub struct Alert {
    pub us: u64,
    pub fatal: bool,
    pub code: Option<u8>,
}

/// One side's part of the connection.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub hellos: Vec<ClientHello>,
    pub server_hellos: Vec<ServerHello>,
    /// Certificate message: the DER chain and when it arrived.
    pub chain: Option<(u64, Vec<Vec<u8>>)>,
    /// CertificateRequest: the CA names it lists.
    pub cert_request: Option<(u64, Vec<String>)>,
    pub hello_done_us: Option<u64>,
    pub ccs_us: Option<u64>,
    pub alerts: Vec<Alert>,
    /// Application-data records (TLS 1.3: every encrypted record): (length, time).
    pub encrypted: Vec<(usize, u64)>,
    /// Handshake records after ChangeCipherSpec (TLS 1.2 Finished).
    pub encrypted_handshake: Vec<(usize, u64)>,
    /// The first bytes were not a TLS record: a printable preview of them.
    pub not_tls: Option<(u64, String)>,
    /// Where the record layer stopped making sense (bytes that are not a record).
    pub broken: Option<String>,
    /// TLS 1.3 with `--keylog`: the encrypted handshake messages that were opened, in
    /// order (`Certificate`, `CertificateRequest`, `Finished`, `alert 116`…).
    pub opened: Vec<String>,
    /// TLS 1.3 with `--keylog`: when this side's Finished went.
    pub finished_us: Option<u64>,
}

/// A connection that starts with a ClientHello.
#[derive(Debug, Clone)]
pub struct TlsConn {
    pub tcp: Conn,
    pub client: Side,
    pub server: Side,
}

/// Caps on what is parsed per direction, whatever the input says.
pub const MAX_RECORDS: usize = 4096;
pub const MAX_HANDSHAKE: usize = 128 * 1024;
pub const MAX_LIST: usize = 256;

/// Reads the TLS of one connection; `None` when the client did not start with a
/// ClientHello (not TLS, or a capture that began mid-connection).
pub fn analyze(tcp: Conn) -> Option<TlsConn> {
    analyze_with(tcp, None)
}

/// [`analyze`], opening a TLS 1.3 handshake with the secrets of `keylog`.
pub fn analyze_with(mut tcp: Conn, keylog: Option<&KeyLog>) -> Option<TlsConn> {
    let starts_hello = |s: &Stream| s.data.len() >= 6 && s.data[0] == 22 && s.data[5] == 1;
    if !starts_hello(&tcp.up) {
        if starts_hello(&tcp.down) {
            // We took the wrong side for the client (no SYN in the capture).
            std::mem::swap(&mut tcp.up, &mut tcp.down);
            std::mem::swap(&mut tcp.client, &mut tcp.server);
        } else {
            return None;
        }
    }
    let client = side(&tcp.up, true);
    if client.hellos.is_empty() {
        return None;
    }
    let mut server = side(&tcp.down, false);
    let mut client = client;
    if let Some(log) = keylog
        && let Some(hello) = client.hellos.first()
        && let Some(secrets) = log.get(&hello.random)
        && let Some(sh) = server.server_hellos.iter().find(|s| !s.retry)
        && sh.version == 0x0304
    {
        let suite = sh.suite;
        open_side(
            &tcp.down,
            &mut server,
            suite,
            secrets.server_handshake.as_deref(),
            secrets.server_traffic.as_deref(),
            false,
        );
        open_side(
            &tcp.up,
            &mut client,
            suite,
            secrets.client_handshake.as_deref(),
            secrets.client_traffic.as_deref(),
            true,
        );
    }
    Some(TlsConn {
        tcp,
        client,
        server,
    })
}

/// The size of an encrypted alert record's body: two bytes, the content type, the tag.
const SEALED_ALERT: usize = 2 + 1 + 16;

/// Opens one side's encrypted TLS 1.3 records: with the handshake secret every record
/// until one does not open (the handshake is over); then, with the application secret,
/// only records of exactly an alert's size, kept only if they are alerts. Handshake
/// messages go through the same reader as those in the clear.
fn open_side(
    stream: &Stream,
    out: &mut Side,
    suite: u16,
    handshake_secret: Option<&[u8]>,
    traffic_secret: Option<&[u8]>,
    from_client: bool,
) {
    let Some(mut hs) = handshake_secret.and_then(|s| Opener::new(suite, s)) else {
        return;
    };
    let mut app = traffic_secret.and_then(|s| Opener::new(suite, s));
    let mut in_handshake = true;
    let mut buffer: Vec<u8> = Vec::new();
    let data = &stream.data;
    let mut rest: &[u8] = data;
    let mut records = 0;
    while !rest.is_empty() && records < MAX_RECORDS {
        records += 1;
        let Ok((next, rec)) = parse_tls_raw_record(rest) else {
            break;
        };
        let header = &rest[..5];
        let end = (data.len() - next.len()) as u64;
        let us = stream.time_at(end).unwrap_or(0);
        rest = next;
        if rec.hdr.record_type.0 != 23 {
            continue;
        }
        let opened = if in_handshake {
            match hs.open(header, rec.data) {
                Some(x) => Some(x),
                None => {
                    in_handshake = false;
                    None
                }
            }
        } else {
            None
        };
        let opened = match opened {
            Some(x) => x,
            None if !in_handshake => {
                // Application keys: an alert-sized record is opened, nothing else.
                let Some(app) = app.as_mut() else { break };
                if rec.data.len() != SEALED_ALERT {
                    app.skip();
                    continue;
                }
                match app.open(header, rec.data) {
                    Some((21, alert)) => (21, alert),
                    _ => continue,
                }
            }
            None => continue,
        };
        match opened {
            (21, a) if a.len() == 2 => {
                out.alerts.push(Alert {
                    us,
                    fatal: a[0] == 2,
                    code: Some(a[1]),
                });
                out.opened
                    .push(format!("alert {} ({})", a[1], crate::raw::alert_name(a[1])));
            }
            (22, content) if in_handshake => {
                if buffer.len() + content.len() > MAX_HANDSHAKE {
                    break;
                }
                buffer.extend_from_slice(&content);
                while buffer.len() >= 4 {
                    let len = u32::from_be_bytes([0, buffer[1], buffer[2], buffer[3]]) as usize;
                    if buffer.len() < 4 + len {
                        break;
                    }
                    let msg: Vec<u8> = buffer.drain(..4 + len).collect();
                    message13(&msg, us, from_client, out);
                }
            }
            _ => {}
        }
    }
}

/// One TLS 1.3 handshake message from an opened record. The Certificate and
/// CertificateRequest of TLS 1.3 differ from TLS 1.2's (a request context, extensions per
/// certificate, the CA names in an extension), which tls-parser does not read: their
/// length-prefixed fields are read here, bounded; the names themselves are DER, read by
/// x509-parser.
fn message13(msg: &[u8], us: u64, from_client: bool, out: &mut Side) {
    let body = &msg[4..];
    let name = match msg[0] {
        8 => "EncryptedExtensions",
        11 => {
            if out.chain.is_none() {
                out.chain = Some((us, certificate13(body).unwrap_or_default()));
            }
            "Certificate"
        }
        13 if !from_client => {
            out.cert_request = Some((us, certificate_request13(body).unwrap_or_default()));
            "CertificateRequest"
        }
        15 => "CertificateVerify",
        20 => {
            out.finished_us.get_or_insert(us);
            "Finished"
        }
        _ => return,
    };
    if out.opened.len() < 16 {
        out.opened.push(name.into());
    }
}

/// A cursor over length-prefixed fields; every read is bounded by what is left.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn len_prefixed(&mut self, width: usize) -> Option<&'a [u8]> {
        let n = self
            .take(width)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        self.take(n)
    }
}

/// TLS 1.3 Certificate: request context, then (certificate, extensions) entries.
fn certificate13(body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut c = Cursor(body);
    c.len_prefixed(1)?;
    let mut list = Cursor(c.len_prefixed(3)?);
    let mut out = Vec::new();
    while !list.0.is_empty() && out.len() < 16 {
        out.push(list.len_prefixed(3)?.to_vec());
        list.len_prefixed(2)?;
    }
    Some(out)
}

/// TLS 1.3 CertificateRequest: request context, extensions; the CA names are in
/// certificate_authorities (47).
fn certificate_request13(body: &[u8]) -> Option<Vec<String>> {
    let mut c = Cursor(body);
    c.len_prefixed(1)?;
    let mut exts = Cursor(c.len_prefixed(2)?);
    let mut names = Vec::new();
    while !exts.0.is_empty() {
        let kind = exts.take(2)?;
        let data = exts.len_prefixed(2)?;
        if kind == [0, 47] {
            let mut list = Cursor(Cursor(data).len_prefixed(2)?);
            while !list.0.is_empty() && names.len() < MAX_LIST {
                names.push(certs::name_string(list.len_prefixed(2)?));
            }
        }
    }
    Some(names)
}

fn side(stream: &Stream, from_client: bool) -> Side {
    let mut out = Side::default();
    let data = &stream.data;
    if data.is_empty() {
        return out;
    }
    if !looks_like_tls(data) {
        out.not_tls = Some((stream.time_at(1).unwrap_or(0), crate::raw::preview(data)));
        return out;
    }
    let mut rest: &[u8] = data;
    let mut handshake: Vec<u8> = Vec::new();
    let mut hs_us = 0u64;
    let mut records = 0;
    while !rest.is_empty() && records < MAX_RECORDS {
        records += 1;
        let (next, rec) = match parse_tls_raw_record(rest) {
            Ok(r) => r,
            Err(pcap_parser::nom::Err::Incomplete(_)) => break, // the stream stops mid-record
            Err(_) => {
                out.broken = Some(format!(
                    "bytes that are not a TLS record at offset {}: {}",
                    data.len() - rest.len(),
                    crate::raw::preview(&rest[..rest.len().min(16)])
                ));
                break;
            }
        };
        let end = (data.len() - next.len()) as u64;
        let us = stream.time_at(end).unwrap_or(0);
        rest = next;
        let encrypted_phase = out.ccs_us.is_some();
        match rec.hdr.record_type.0 {
            20 => {
                out.ccs_us.get_or_insert(us);
            }
            21 => {
                if !encrypted_phase && rec.data.len() == 2 {
                    out.alerts.push(Alert {
                        us,
                        fatal: rec.data[0] == 2,
                        code: Some(rec.data[1]),
                    });
                } else {
                    out.alerts.push(Alert {
                        us,
                        fatal: true,
                        code: None,
                    });
                }
            }
            22 if encrypted_phase => out.encrypted_handshake.push((rec.data.len(), us)),
            22 => {
                if handshake.is_empty() {
                    hs_us = us;
                }
                if handshake.len() + rec.data.len() > MAX_HANDSHAKE {
                    out.broken = Some("a handshake message larger than 128 KiB".into());
                    break;
                }
                handshake.extend_from_slice(rec.data);
                // Every complete message in the buffer.
                loop {
                    if handshake.len() < 4 {
                        break;
                    }
                    let len =
                        u32::from_be_bytes([0, handshake[1], handshake[2], handshake[3]]) as usize;
                    if handshake.len() < 4 + len {
                        break;
                    }
                    let msg: Vec<u8> = handshake.drain(..4 + len).collect();
                    message(&msg, hs_us.max(us), from_client, &mut out);
                    hs_us = us;
                }
            }
            23 => out.encrypted.push((rec.data.len(), us)),
            _ => {
                out.broken = Some(format!("record type {}", rec.hdr.record_type.0));
                break;
            }
        }
    }
    out
}

/// GREASE (RFC 8701): 0x?A?A values a client adds to keep servers tolerant.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// The SHA-256 of "HelloRetryRequest": the random of a ServerHello that is one.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

fn message(msg: &[u8], us: u64, from_client: bool, out: &mut Side) {
    let Ok((_, TlsMessage::Handshake(hs))) = parse_tls_message_handshake(msg) else {
        return;
    };
    match hs {
        TlsMessageHandshake::ClientHello(ch) if from_client => {
            let mut h = ClientHello {
                us,
                random: ch.random.to_vec(),
                versions: vec![ch.version.0],
                suites: ch
                    .ciphers
                    .iter()
                    .map(|c| c.0)
                    .filter(|c| !grease(*c))
                    .take(MAX_LIST)
                    .collect(),
                ..Default::default()
            };
            let exts = ch
                .ext
                .and_then(|e| parse_tls_client_hello_extensions(e).ok())
                .map(|(_, v)| v)
                .unwrap_or_default();
            for e in exts {
                match e {
                    TlsExtension::SNI(names) => {
                        h.sni = names
                            .iter()
                            .find(|(t, _)| t.0 == 0)
                            .map(|(_, n)| String::from_utf8_lossy(n).into_owned());
                    }
                    TlsExtension::SupportedVersions(v) => {
                        let v: Vec<u16> = v.iter().map(|x| x.0).filter(|x| !grease(*x)).collect();
                        if !v.is_empty() {
                            h.versions = v;
                        }
                    }
                    TlsExtension::EllipticCurves(g) => {
                        h.groups = g.iter().map(|x| x.0).filter(|x| !grease(*x)).collect();
                    }
                    TlsExtension::SignatureAlgorithms(s) => {
                        h.signature_algorithms = s.into_iter().filter(|x| !grease(*x)).collect();
                    }
                    TlsExtension::ALPN(p) => {
                        h.alpn = p
                            .iter()
                            .take(MAX_LIST)
                            .map(|x| String::from_utf8_lossy(x).into_owned())
                            .collect();
                    }
                    _ => {}
                }
            }
            h.groups.truncate(MAX_LIST);
            h.signature_algorithms.truncate(MAX_LIST);
            if out.hellos.len() < 4 {
                out.hellos.push(h);
            }
        }
        TlsMessageHandshake::ServerHello(sh) if !from_client => {
            let mut s = ServerHello {
                us,
                version: sh.version.0,
                suite: sh.cipher.0,
                retry: sh.random == &HRR_RANDOM[..],
                ..Default::default()
            };
            let exts = sh
                .ext
                .and_then(|e| parse_tls_server_hello_extensions(e).ok())
                .map(|(_, v)| v)
                .unwrap_or_default();
            for e in exts {
                match e {
                    TlsExtension::SupportedVersions(v) => {
                        if let Some(v) = v.first() {
                            s.version = v.0;
                        }
                    }
                    TlsExtension::ALPN(p) => {
                        s.alpn = p.first().map(|x| String::from_utf8_lossy(x).into_owned());
                    }
                    // In a HelloRetryRequest the key_share is just the selected group.
                    // In a ServerHello it starts with the chosen group.
                    TlsExtension::KeyShare(k) | TlsExtension::KeyShareOld(k) if k.len() >= 2 => {
                        s.group = Some(u16::from_be_bytes([k[0], k[1]]));
                        s.retry_group = s.group;
                    }
                    _ => {}
                }
            }
            if !s.retry {
                s.retry_group = None;
            }
            if out.server_hellos.len() < 4 {
                out.server_hellos.push(s);
            }
        }
        TlsMessageHandshake::Certificate(c) if out.chain.is_none() => {
            let chain = c
                .cert_chain
                .iter()
                .take(16)
                .map(|c| c.data.to_vec())
                .collect();
            out.chain = Some((us, chain));
        }
        TlsMessageHandshake::CertificateRequest(r) if !from_client => {
            let names = r
                .unparsed_ca
                .iter()
                .take(MAX_LIST)
                .map(|n| certs::name_string(n))
                .collect();
            out.cert_request = Some((us, names));
        }
        TlsMessageHandshake::ServerDone(_) if !from_client => {
            out.hello_done_us.get_or_insert(us);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values() {
        assert!(grease(0x0a0a) && grease(0xfafa) && !grease(0x0304) && !grease(0x0a1a));
    }

    #[test]
    fn our_own_client_hello_reads_back() {
        let hello = crate::raw::RawHello::modern(Some("example.test".into()), vec!["h2".into()]);
        let mut s = Stream {
            data: hello.encode(),
            ..Default::default()
        };
        s.marks.push((s.data.len() as u64, 5));
        let side = side(&s, true);
        let h = &side.hellos[0];
        assert_eq!(h.sni.as_deref(), Some("example.test"));
        assert_eq!(h.versions, vec![0x0304, 0x0303]);
        assert_eq!(h.alpn, vec!["h2".to_owned()]);
        assert_eq!(h.groups, vec![0x1d, 0x17, 0x18]);
        assert!(h.suites.contains(&0x1301));
        assert_eq!(h.us, 5);
    }

    #[test]
    fn garbage_is_not_a_panic() {
        let mut s = Stream::default();
        for data in [
            vec![22, 3, 1, 0, 4, 1, 0, 0, 200],
            vec![22, 3, 3, 0xff, 0xff],
            vec![21, 3, 3, 0, 2, 2],
            vec![22, 3, 3, 0, 4, 11, 0xff, 0xff, 0xff],
            vec![23; 40],
        ] {
            s.data = data;
            let _ = side(&s, false);
            let _ = side(&s, true);
        }
    }
}

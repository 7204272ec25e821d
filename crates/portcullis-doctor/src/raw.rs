//! Hand-built ClientHellos and a TLS record reader, for what rustls will not do: offer
//! TLS 1.0/1.1 or legacy cipher suites, leave SNI out for a DNS name, and look at the first
//! bytes a server sends back even when they are not TLS. These probes never get past the
//! ServerHello: we send one ClientHello, read one answer, and hang up.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::observe::{HelloSent, RawResponse};

/// What to put in a ClientHello.
#[derive(Debug, Clone)]
pub struct RawHello {
    pub sni: Option<String>,
    /// The highest version offered. 0x0304 (TLS 1.3) adds supported_versions and key_share.
    pub max_version: u16,
    /// The lowest version offered through supported_versions (TLS 1.3 hellos only).
    pub min_version: u16,
    pub suites: Vec<u16>,
    pub alpn: Vec<String>,
}

/// TLS 1.3 and ECDHE + AEAD suites: what a current client offers.
pub const MODERN_SUITES: &[u16] = &[
    0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
];

/// CBC, RSA key exchange, 3DES and RC4: what old servers may still insist on.
pub const LEGACY_SUITES: &[u16] = &[
    0xc013, 0xc014, 0xc009, 0xc00a, 0x009c, 0x009d, 0x002f, 0x0035, 0x003c, 0x000a, 0x0005, 0x0004,
];

impl RawHello {
    pub fn modern(sni: Option<String>, alpn: Vec<String>) -> RawHello {
        RawHello {
            sni,
            max_version: 0x0304,
            min_version: 0x0303,
            suites: MODERN_SUITES.to_vec(),
            alpn,
        }
    }

    /// A hello for one old-style version (no supported_versions), modern and legacy suites.
    pub fn legacy(sni: Option<String>, version: u16) -> RawHello {
        let mut suites = MODERN_SUITES[3..].to_vec();
        suites.extend_from_slice(LEGACY_SUITES);
        RawHello {
            sni,
            max_version: version,
            min_version: version,
            suites,
            alpn: Vec::new(),
        }
    }

    /// What this hello offers, for the trace.
    pub fn describe(&self) -> HelloSent {
        let versions = if self.max_version >= 0x0304 {
            (self.min_version..=self.max_version)
                .rev()
                .map(version_name)
                .collect()
        } else {
            vec![version_name(self.max_version)]
        };
        HelloSent {
            sni: self.sni.clone(),
            versions,
            alpn: self.alpn.clone(),
            cipher_suites: self.suites.iter().map(|s| suite_name(*s)).collect(),
            client_cert: false,
        }
    }

    /// The ClientHello as one TLS record.
    pub fn encode(&self) -> Vec<u8> {
        let tls13 = self.max_version >= 0x0304;
        let mut random = [0u8; 32];
        // A failed RNG only makes the hello predictable, which is harmless for a probe
        // that never completes a handshake.
        let _ = aws_lc_rs::rand::fill(&mut random);

        let mut body = Vec::new();
        body.extend_from_slice(&(if tls13 { 0x0303 } else { self.max_version }).to_be_bytes());
        body.extend_from_slice(&random);
        if tls13 {
            // A 32-byte session id: TLS 1.3 "middlebox compatibility mode".
            body.push(32);
            body.extend_from_slice(&random);
        } else {
            body.push(0);
        }
        let mut suites = self.suites.clone();
        suites.push(0x00ff); // renegotiation SCSV, expected by old servers
        put_u16(&mut body, (suites.len() * 2) as u16);
        for s in suites {
            put_u16(&mut body, s);
        }
        body.extend_from_slice(&[1, 0]); // compression: null only

        let mut ext = Vec::new();
        if let Some(name) = &self.sni {
            let mut list = vec![0u8]; // host_name
            put_u16(&mut list, name.len() as u16);
            list.extend_from_slice(name.as_bytes());
            let mut data = Vec::new();
            put_u16(&mut data, list.len() as u16);
            data.extend_from_slice(&list);
            extension(&mut ext, 0, &data);
        }
        extension(&mut ext, 10, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]); // x25519, P-256, P-384
        extension(&mut ext, 11, &[1, 0]); // uncompressed points
        let sigs: &[u16] = &[
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0203, 0x0201,
        ];
        let mut data = Vec::new();
        put_u16(&mut data, (sigs.len() * 2) as u16);
        for s in sigs {
            put_u16(&mut data, *s);
        }
        extension(&mut ext, 13, &data);
        if !self.alpn.is_empty() {
            let mut list = Vec::new();
            for p in &self.alpn {
                list.push(p.len() as u8);
                list.extend_from_slice(p.as_bytes());
            }
            let mut data = Vec::new();
            put_u16(&mut data, list.len() as u16);
            data.extend_from_slice(&list);
            extension(&mut ext, 16, &data);
        }
        extension(&mut ext, 23, &[]); // extended_master_secret
        extension(&mut ext, 0xff01, &[0]); // renegotiation_info
        if tls13 {
            let mut versions = Vec::new();
            for v in (self.min_version..=self.max_version).rev() {
                versions.extend_from_slice(&v.to_be_bytes());
            }
            let mut data = vec![versions.len() as u8];
            data.extend_from_slice(&versions);
            extension(&mut ext, 43, &data);
            extension(&mut ext, 45, &[1, 1]); // psk_dhe_ke
            // key_share: one X25519 share. Any 32 bytes are a valid X25519 public key; we
            // never finish the handshake, so no private key is needed.
            let mut share = Vec::new();
            put_u16(&mut share, 0x1d);
            put_u16(&mut share, 32);
            share.extend_from_slice(&random);
            let mut data = Vec::new();
            put_u16(&mut data, share.len() as u16);
            data.extend_from_slice(&share);
            extension(&mut ext, 51, &data);
        }
        put_u16(&mut body, ext.len() as u16);
        body.extend_from_slice(&ext);

        let mut hs = vec![1u8]; // client_hello
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);

        // Record version 0x0301 for every hello: some old servers reject anything higher.
        let mut record = vec![22, 3, 1];
        put_u16(&mut record, hs.len() as u16);
        record.extend_from_slice(&hs);
        record
    }
}

fn put_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn extension(ext: &mut Vec<u8>, kind: u16, data: &[u8]) {
    put_u16(ext, kind);
    put_u16(ext, data.len() as u16);
    ext.extend_from_slice(data);
}

/// Reads what a server answered and classifies it. Pure: works on the bytes received and
/// how the stream ended, so it can also run over a capture.
pub fn classify(bytes: &[u8], ended: Ended) -> RawResponse {
    if bytes.is_empty() {
        return match ended {
            Ended::Eof => RawResponse::Closed { reset: false },
            Ended::Reset => RawResponse::Closed { reset: true },
            Ended::Timeout => RawResponse::Timeout,
            Ended::Error(message) => RawResponse::Error { message },
        };
    }
    if !looks_like_tls(bytes) {
        return RawResponse::NotTls {
            preview: preview(bytes),
        };
    }
    match bytes[0] {
        21 if bytes.len() >= 7 => RawResponse::Alert {
            code: bytes[6],
            name: alert_name(bytes[6]).to_owned(),
        },
        // A record header is 5 bytes; a reply may stop before the end of one.
        22 => match bytes.get(5..).and_then(parse_server_hello) {
            Some((version, suite)) => RawResponse::ServerHello {
                version: version_name(version),
                cipher_suite: suite_name(suite),
            },
            None => RawResponse::Error {
                message: "a handshake record that is not a ServerHello".into(),
            },
        },
        _ => RawResponse::Error {
            message: format!("unexpected TLS record type {}", bytes[0]),
        },
    }
}

/// How the read side ended.
#[derive(Debug, Clone)]
pub enum Ended {
    Eof,
    Reset,
    Timeout,
    Error(String),
}

/// First bytes of a TLS record: a known content type, then version 3.x.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes[0], 20..=23) && bytes.get(1).is_none_or(|&b| b == 3)
}

/// Up to 64 bytes, printable ASCII kept, the rest as `\xNN`.
pub fn preview(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(64) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// (version, cipher suite) from a ServerHello handshake message; the version comes from
/// supported_versions when present (TLS 1.3).
fn parse_server_hello(hs: &[u8]) -> Option<(u16, u16)> {
    if *hs.first()? != 2 {
        return None;
    }
    let body = hs.get(4..)?;
    let mut version = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let sid_len = *body.get(34)? as usize;
    let at = 35 + sid_len;
    let suite = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
    // compression (1 byte), then extensions
    let mut p = at + 3;
    if let (Some(&a), Some(&b)) = (body.get(p), body.get(p + 1)) {
        let end = (p + 2 + u16::from_be_bytes([a, b]) as usize).min(body.len());
        p += 2;
        while p + 4 <= end {
            let kind = u16::from_be_bytes([body[p], body[p + 1]]);
            let len = u16::from_be_bytes([body[p + 2], body[p + 3]]) as usize;
            if kind == 43 && len == 2 && p + 6 <= end {
                version = u16::from_be_bytes([body[p + 4], body[p + 5]]);
            }
            p += 4 + len;
        }
    }
    Some((version, suite))
}

/// Sends `hello` on a fresh connection and reads the first answer (one record, or the
/// first bytes of something else), within `timeout`.
pub async fn probe(
    addr: std::net::SocketAddr,
    hello: &RawHello,
    timeout: Duration,
) -> (RawResponse, u64) {
    let start = Instant::now();
    let ms = |s: Instant| s.elapsed().as_millis() as u64;
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return (
                RawResponse::Error {
                    message: format!("connect: {e}"),
                },
                ms(start),
            );
        }
        Err(_) => {
            return (
                RawResponse::Error {
                    message: "connect timed out".into(),
                },
                ms(start),
            );
        }
    };
    let (bytes, ended) = exchange(&mut stream, &hello.encode(), timeout).await;
    (classify(&bytes, ended), ms(start))
}

/// Writes `out`, then reads until one full record arrived, the peer ended the stream, or
/// the deadline passed.
pub async fn exchange(stream: &mut TcpStream, out: &[u8], timeout: Duration) -> (Vec<u8>, Ended) {
    let deadline = tokio::time::Instant::now() + timeout;
    // A banner (SSH, SMTP) may already be waiting; writing first is still fine.
    if let Err(e) = stream.write_all(out).await {
        return (Vec::new(), io_end(&e));
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return (buf, Ended::Timeout),
            Ok(Ok(0)) => return (buf, Ended::Eof),
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if !looks_like_tls(&buf) || record_complete(&buf) {
                    return (buf, Ended::Eof);
                }
            }
            Ok(Err(e)) => return (buf, io_end(&e)),
        }
    }
}

fn record_complete(buf: &[u8]) -> bool {
    buf.len() >= 5 && buf.len() >= 5 + u16::from_be_bytes([buf[3], buf[4]]) as usize
}

fn io_end(e: &std::io::Error) -> Ended {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe => Ended::Reset,
        UnexpectedEof => Ended::Eof,
        _ => Ended::Error(e.to_string()),
    }
}

pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        other => format!("0x{other:04x}"),
    }
}

pub fn suite_name(s: u16) -> String {
    let name = match s {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0xc02b => "ECDHE-ECDSA-AES128-GCM-SHA256",
        0xc02f => "ECDHE-RSA-AES128-GCM-SHA256",
        0xc02c => "ECDHE-ECDSA-AES256-GCM-SHA384",
        0xc030 => "ECDHE-RSA-AES256-GCM-SHA384",
        0xcca9 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        0xcca8 => "ECDHE-RSA-CHACHA20-POLY1305",
        0xc013 => "ECDHE-RSA-AES128-SHA",
        0xc014 => "ECDHE-RSA-AES256-SHA",
        0xc009 => "ECDHE-ECDSA-AES128-SHA",
        0xc00a => "ECDHE-ECDSA-AES256-SHA",
        0x009c => "AES128-GCM-SHA256",
        0x009d => "AES256-GCM-SHA384",
        0x002f => "AES128-SHA",
        0x0035 => "AES256-SHA",
        0x003c => "AES128-SHA256",
        0x000a => "DES-CBC3-SHA",
        0x0005 => "RC4-SHA",
        0x0004 => "RC4-MD5",
        0x00ff => "EMPTY-RENEGOTIATION-INFO-SCSV",
        other => return format!("0x{other:04x}"),
    };
    name.into()
}

/// RFC 8446 §6 alert names, as OpenSSL spells them in its messages.
pub fn alert_name(code: u8) -> &'static str {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_one_well_formed_record() {
        let h = RawHello::modern(Some("example.test".into()), vec!["h2".into()]).encode();
        assert_eq!(&h[..3], &[22, 3, 1]);
        assert_eq!(h.len(), 5 + u16::from_be_bytes([h[3], h[4]]) as usize);
        assert_eq!(h[5], 1);
        let hs_len = u32::from_be_bytes([0, h[6], h[7], h[8]]) as usize;
        assert_eq!(hs_len + 4, h.len() - 5);
        assert!(h.windows(12).any(|w| w == b"example.test"));
    }

    #[test]
    fn plaintext_is_not_tls() {
        let r = classify(b"SSH-2.0-OpenSSH_9.2\r\n", Ended::Eof);
        assert_eq!(
            r,
            RawResponse::NotTls {
                preview: "SSH-2.0-OpenSSH_9.2\\r\\n".into()
            }
        );
    }

    #[test]
    fn alert_record_is_read() {
        let r = classify(&[21, 3, 3, 0, 2, 2, 112], Ended::Eof);
        assert_eq!(
            r,
            RawResponse::Alert {
                code: 112,
                name: "unrecognized_name".into()
            }
        );
    }
}

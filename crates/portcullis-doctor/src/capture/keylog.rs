//! `--keylog FILE`: the `SSLKEYLOGFILE` format (curl, Firefox, Chrome, Python, Node's
//! `--tls-keylog`), used to open a TLS 1.3 *handshake* so that its certificates, its
//! CertificateRequest and its alerts become evidence.
//!
//! Application data is never decrypted: only the handshake traffic secrets
//! (`CLIENT_HANDSHAKE_TRAFFIC_SECRET`, `SERVER_HANDSHAKE_TRAFFIC_SECRET`) open records,
//! and they cannot open anything sent after the handshake. The one exception is an
//! alert, which TLS 1.3 sends under the application secrets once the handshake is done
//! (`certificate_required` after the client's Finished): with `CLIENT_TRAFFIC_SECRET_0` /
//! `SERVER_TRAFFIC_SECRET_0` only a record of exactly an alert's size (19 bytes: two
//! bytes, the content type, the tag) is opened, and its content is kept only when it is an
//! alert. Keys come from HKDF-Expand-Label (RFC 8446 §7.1) and records are opened with the
//! suite's AEAD, both from aws-lc-rs.

use std::collections::HashMap;

use aws_lc_rs::aead::{
    AES_128_GCM, AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey,
};
use aws_lc_rs::hkdf::{HKDF_SHA256, HKDF_SHA384, KeyType, Prk};

/// At most this many client randoms are read from a key log.
const MAX_ENTRIES: usize = 1_000_000;

/// The secrets of one connection (by its ClientHello random).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    pub client_traffic: Option<Vec<u8>>,
    pub server_traffic: Option<Vec<u8>>,
}

/// A key log: the TLS 1.3 secrets per client random.
#[derive(Debug, Clone, Default)]
pub struct KeyLog {
    entries: HashMap<[u8; 32], Secrets>,
    /// Lines that were not a secret this reader uses (TLS 1.2's `CLIENT_RANDOM`, exporter
    /// secrets, comments, malformed lines).
    pub ignored_lines: usize,
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl KeyLog {
    /// Reads the text of a key log; lines it does not use are counted, never an error.
    pub fn parse(text: &str) -> KeyLog {
        let mut log = KeyLog::default();
        for line in text.lines() {
            let mut parts = line.split_ascii_whitespace();
            let (Some(label), Some(random), Some(secret), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                log.ignored_lines += usize::from(!line.trim().is_empty());
                continue;
            };
            let (Some(random), Some(secret)) = (hex(random), hex(secret)) else {
                log.ignored_lines += 1;
                continue;
            };
            let Ok(random) = <[u8; 32]>::try_from(random.as_slice()) else {
                log.ignored_lines += 1;
                continue;
            };
            let slot: fn(&mut Secrets) -> &mut Option<Vec<u8>> = match label {
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => |e| &mut e.client_handshake,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => |e| &mut e.server_handshake,
                "CLIENT_TRAFFIC_SECRET_0" => |e| &mut e.client_traffic,
                "SERVER_TRAFFIC_SECRET_0" => |e| &mut e.server_traffic,
                _ => {
                    log.ignored_lines += 1;
                    continue;
                }
            };
            if !log.entries.contains_key(&random) && log.entries.len() >= MAX_ENTRIES {
                log.ignored_lines += 1;
                continue;
            }
            *slot(log.entries.entry(random).or_default()) = Some(secret);
        }
        log
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, client_random: &[u8]) -> Option<&Secrets> {
        <[u8; 32]>::try_from(client_random)
            .ok()
            .and_then(|r| self.entries.get(&r))
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label(secret, label, "", len), RFC 8446 §7.1.
fn expand_label(sha384: bool, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let prk = Prk::new_less_safe(if sha384 { HKDF_SHA384 } else { HKDF_SHA256 }, secret);
    let full = format!("tls13 {label}");
    let length = (len as u16).to_be_bytes();
    let label_len = [full.len() as u8];
    let info: [&[u8]; 4] = [&length, &label_len, full.as_bytes(), &[0u8]];
    let mut out = vec![0u8; len];
    prk.expand(&info, Len(len)).ok()?.fill(&mut out).ok()?;
    Some(out)
}

/// A record-protection key of one direction: its AEAD key, IV and record counter.
pub struct Opener {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener")
    }
}

impl Opener {
    /// The key of `suite` (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
    /// TLS_CHACHA20_POLY1305_SHA256) from a traffic secret.
    pub fn new(suite: u16, secret: &[u8]) -> Option<Opener> {
        let (alg, sha384, len) = match suite {
            0x1301 => (&AES_128_GCM, false, 16),
            0x1302 => (&AES_256_GCM, true, 32),
            0x1303 => (&CHACHA20_POLY1305, false, 32),
            _ => return None,
        };
        let key = expand_label(sha384, secret, "key", len)?;
        let iv = expand_label(sha384, secret, "iv", 12)?;
        Some(Opener {
            key: LessSafeKey::new(UnboundKey::new(alg, &key).ok()?),
            iv: iv.try_into().ok()?,
            seq: 0,
        })
    }

    /// Counts a record that is not opened (the nonce follows the record count).
    pub fn skip(&mut self) {
        self.seq += 1;
    }

    /// Opens the next record (`header`: its 5 bytes, `body`: the ciphertext and tag):
    /// the inner content type and the content, or `None` when it does not open (another
    /// key: the handshake is over).
    pub fn open(&mut self, header: &[u8], body: &[u8]) -> Option<(u8, Vec<u8>)> {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut buf,
            )
            .ok()?;
        self.seq += 1;
        // TLSInnerPlaintext: content, the type, zero padding.
        let end = plain.iter().rposition(|b| *b != 0)?;
        let kind = plain[end];
        Some((kind, plain[..end].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8448 §3 (simple 1-RTT handshake): the server handshake traffic secret, and the
    /// key and IV it gives.
    #[test]
    fn rfc8448_server_handshake_key() {
        let secret = hex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
            .unwrap_or_default();
        let key = expand_label(false, &secret, "key", 16).unwrap_or_default();
        let iv = expand_label(false, &secret, "iv", 12).unwrap_or_default();
        assert_eq!(
            key,
            hex("3fce516009c21727d0f2e4e86ee403bc").unwrap_or_default()
        );
        assert_eq!(iv, hex("5d313eb2671276ee13000b30").unwrap_or_default());
    }

    #[test]
    fn a_key_log_keeps_the_tls13_secrets_and_counts_the_rest() {
        let r = "aa".repeat(32);
        let text = format!(
            "# comment\nCLIENT_RANDOM {r} {s}\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {s}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {s}\nnonsense\nEXPORTER_SECRET {r} {s}\n",
            s = "01".repeat(32)
        );
        let log = KeyLog::parse(&text);
        assert_eq!(log.len(), 1);
        let s = log.get(&[0xaa; 32]).cloned().unwrap_or_default();
        assert!(s.client_handshake.is_some() && s.server_handshake.is_some());
        assert!(s.client_traffic.is_none());
        assert_eq!(log.ignored_lines, 4);
    }
}

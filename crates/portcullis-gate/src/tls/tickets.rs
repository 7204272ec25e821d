//! Session tickets: sealed with keys shared by replicas, or with keys this process makes.

use std::path::Path;
use std::sync::Arc;

use crate::config::ListenerConfig;
use crate::error::{Error, Result};

/// Session tickets for every site of a gate: sealed with the shared key file when there is
/// one (so any replica can resume them), otherwise with keys this process makes and rotates
/// itself. One ticketer serves all sites; rustls refuses to resume a session under another
/// SNI name, so sharing keys never lets a session cross hosts.
pub fn ticketer(config: &ListenerConfig) -> Result<Arc<dyn rustls::server::ProducesTickets>> {
    Ok(match &config.ticket_keys {
        Some(path) => Arc::new(SharedKeyTicketer::load(
            path,
            config.limits.ticket_lifetime_secs,
        )?),
        None => rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| Error::Tls(format!("session tickets: {e}")))?,
    })
}

// === impl SharedKeyTicketer ===

/// TLS session tickets sealed with keys from a file that every replica reads, so a client
/// can resume on any replica behind a load balancer. The file holds one 32-byte key per
/// line in hex (64 digits; `#` starts a comment). The first key seals new tickets; every
/// key opens them. To rotate: put a new key first, reload all replicas, and drop the last
/// key once tickets sealed with it have expired (`lifetime`).
///
/// Tickets are AES-256-GCM: `key id (4) ‖ nonce (12) ‖ ciphertext ‖ tag`, with the key id
/// (the first 4 bytes of the key's SHA-256) as associated data.
pub struct SharedKeyTicketer {
    keys: Vec<([u8; 4], aws_lc_rs::aead::LessSafeKey)>,
    lifetime: u32,
}

impl std::fmt::Debug for SharedKeyTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: the keys themselves never appear in logs.
        let ids: Vec<String> = self.keys.iter().map(|(id, _)| hex_id(id)).collect();
        f.debug_struct("SharedKeyTicketer")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

fn hex_id(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl SharedKeyTicketer {
    /// Reads the key file. Errors name the file and line, never the key.
    pub fn load(path: &Path, lifetime: u32) -> Result<SharedKeyTicketer> {
        let text = String::from_utf8(super::read(path)?).map_err(|_| Error::Invalid {
            path: path.to_owned(),
            reason: "not a text file of hex keys".into(),
        })?;
        SharedKeyTicketer::parse(&text, path, lifetime)
    }

    /// Parses the key file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, lifetime: u32) -> Result<SharedKeyTicketer> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = || Error::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "line {}: expected 64 hex digits (a 32-byte key), e.g. from `openssl rand -hex 32`",
                    n + 1
                ),
            };
            // Hex digits only, checked before slicing: a line may hold any UTF-8.
            if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let mut key = [0u8; 32];
            for (i, b) in key.iter_mut().enumerate() {
                *b = u8::from_str_radix(&line[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
            }
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key);
            let mut id = [0u8; 4];
            id.copy_from_slice(&digest.as_ref()[..4]);
            let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &key)
                .map_err(|_| bad())?;
            keys.push((id, aws_lc_rs::aead::LessSafeKey::new(unbound)));
        }
        if keys.is_empty() {
            return Err(Error::Invalid {
                path: path.to_owned(),
                reason: "no key; put one per line, e.g. from `openssl rand -hex 32`".into(),
            });
        }
        Ok(SharedKeyTicketer { keys, lifetime })
    }
}

impl rustls::server::ProducesTickets for SharedKeyTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{Aad, Nonce};
        let (id, key) = self.keys.first()?;
        let mut nonce = [0u8; 12];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id),
            &mut sealed,
        )
        .ok()?;
        let mut out = Vec::with_capacity(16 + sealed.len());
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{Aad, Nonce};
        if cipher.len() < 16 {
            return None;
        }
        let (id, rest) = cipher.split_at(4);
        let (nonce, sealed) = rest.split_at(12);
        let (kid, key) = self.keys.iter().find(|(k, _)| k.as_slice() == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(kid), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

//! Session tickets: sealed with keys shared by replicas, or with keys this process makes.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

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
        None => Arc::new(
            RotatingTicketer::new(config.limits.ticket_lifetime_secs)
                .ok_or_else(|| Error::Tls("session tickets: no random key".into()))?,
        ),
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
            keys.push(sealing_key(&key).ok_or_else(bad)?);
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

/// A ticket key and its id: the first 4 bytes of the key's SHA-256.
fn sealing_key(key: &[u8; 32]) -> Option<([u8; 4], aws_lc_rs::aead::LessSafeKey)> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    let mut id = [0u8; 4];
    id.copy_from_slice(&digest.as_ref()[..4]);
    let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key).ok()?;
    Some((id, aws_lc_rs::aead::LessSafeKey::new(unbound)))
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

// === impl RotatingTicketer ===

/// Tickets sealed as [`SharedKeyTicketer`] seals them (AES-256-GCM), with random keys this
/// process makes when no key file is configured: a new key every `lifetime`, the previous
/// one kept to open what it sealed, so no key lives longer than two lifetimes. rustls's
/// own default (AES-CBC, then HMAC-SHA256 over the ticket) costs about twice the CPU per
/// ticket, and every full handshake seals two.
pub struct RotatingTicketer {
    lifetime: u32,
    keys: ArcSwap<Generation>,
}

struct Generation {
    /// The current key first, then the previous one.
    ticketer: SharedKeyTicketer,
    key: [u8; 32],
    /// Unix time at which the next key takes over.
    until: u64,
}

impl std::fmt::Debug for RotatingTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingTicketer")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl RotatingTicketer {
    /// `None` when the system has no randomness to give.
    pub fn new(lifetime: u32) -> Option<RotatingTicketer> {
        let first = Generation::after(None, lifetime, unix_now())?;
        Some(RotatingTicketer {
            lifetime,
            keys: ArcSwap::from_pointee(first),
        })
    }

    /// The keys in force at `now`, rotating first when the current key's time is up.
    fn keys(&self, now: u64) -> arc_swap::Guard<Arc<Generation>> {
        let keys = self.keys.load();
        if now < keys.until {
            return keys;
        }
        // When the system cannot give a new key, tickets stop: `encrypt` finds no key in
        // force and a full handshake follows, instead of sealing with an old key forever.
        let next = Generation::after(Some(&keys), self.lifetime, now);
        let next = next.map_or_else(|| Generation::empty(now), Arc::new);
        // Two threads may race here; one generation wins and both use it.
        self.keys.compare_and_swap(&keys, next);
        self.keys.load()
    }
}

impl Generation {
    fn after(previous: Option<&Generation>, lifetime: u32, now: u64) -> Option<Generation> {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).ok()?;
        let mut keys = vec![sealing_key(&key)?];
        if let Some(p) = previous.filter(|p| !p.ticketer.keys.is_empty()) {
            keys.push(sealing_key(&p.key)?);
        }
        Some(Generation {
            ticketer: SharedKeyTicketer { keys, lifetime },
            key,
            until: now.saturating_add(u64::from(lifetime.max(1))),
        })
    }

    /// No key: nothing is sealed or opened until a key can be made (retried each second).
    fn empty(now: u64) -> Arc<Generation> {
        Arc::new(Generation {
            ticketer: SharedKeyTicketer {
                keys: Vec::new(),
                lifetime: 0,
            },
            key: [0; 32],
            until: now + 1,
        })
    }
}

fn unix_now() -> u64 {
    rustls::pki_types::UnixTime::now().as_secs()
}

impl rustls::server::ProducesTickets for RotatingTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.keys(unix_now()).ticketer.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.keys(unix_now()).ticketer.decrypt(cipher)
    }
}

#[cfg(test)]
mod tests {
    use rustls::server::ProducesTickets;

    use super::*;

    fn seal(t: &RotatingTicketer, now: u64, plain: &[u8]) -> Vec<u8> {
        t.keys(now).ticketer.encrypt(plain).unwrap()
    }

    fn open(t: &RotatingTicketer, now: u64, cipher: &[u8]) -> Option<Vec<u8>> {
        t.keys(now).ticketer.decrypt(cipher)
    }

    /// A ticket opens under its own key and the next one, never after that: a key lives
    /// two lifetimes at most.
    #[test]
    fn rotating_keys_open_tickets_for_two_lifetimes_at_most() {
        let t = RotatingTicketer::new(3600).unwrap();
        let start = t.keys.load().until - 3600;
        let ticket = seal(&t, start, b"session");
        assert_ne!(
            ticket,
            seal(&t, start, b"session"),
            "a fresh nonce per ticket"
        );
        assert_eq!(
            open(&t, start + 10, &ticket).as_deref(),
            Some(&b"session"[..])
        );
        let rotated = start + 3600;
        assert_eq!(open(&t, rotated, &ticket).as_deref(), Some(&b"session"[..]));
        let newer = seal(&t, rotated, b"later");
        assert_eq!(
            open(&t, rotated + 3600, &ticket),
            None,
            "two rotations later"
        );
        assert_eq!(
            open(&t, rotated + 3600, &newer).as_deref(),
            Some(&b"later"[..])
        );
        // A forged or truncated ticket opens nothing.
        let mut forged = newer.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(open(&t, rotated + 3600, &forged), None);
        assert_eq!(open(&t, rotated + 3600, &newer[..10]), None);
        assert!(t.enabled() && t.lifetime() == 3600);
    }
}

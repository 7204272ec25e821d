//! The open connections of verified clients, so that a reload which revokes a certificate
//! can close the connections already authenticated with it.
//!
//! The lock is taken when a verified connection opens or closes and during a reload; never
//! per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, UnixTime};

use crate::tls::Recheck;
use tokio::sync::Notify;

#[derive(Debug)]
struct Entry {
    chain: Arc<[CertificateDer<'static>]>,
    /// Which site (virtual host) the connection belongs to.
    site: String,
    close: Arc<Notify>,
}

/// Verified connections by id.
#[derive(Debug, Default)]
pub struct Registry {
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
}

/// Removes its connection from the registry when dropped.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    id: u64,
    /// Notified when the connection must close.
    pub close: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection whose client presented `chain`.
    pub fn register(
        self: &Arc<Self>,
        chain: Arc<[CertificateDer<'static>]>,
        site: &str,
    ) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        self.lock().insert(
            id,
            Entry {
                chain,
                site: site.to_owned(),
                close: close.clone(),
            },
        );
        Registration {
            registry: self.clone(),
            id,
            close,
        }
    }

    /// Verifies every open connection's certificate again with its site's verifier in the
    /// new configuration (its CAs and CRLs) and tells those that fail to close. A site that
    /// no longer exists, or no longer verifies clients, closes its connections too.
    /// Returns how many.
    pub fn close_failing<'a>(&self, recheck_for: impl Fn(&str) -> Option<&'a Recheck>) -> usize {
        let mut closed = 0;
        let now = UnixTime::now();
        for entry in self.lock().values() {
            let ok = recheck_for(&entry.site).is_some_and(|r| r.check(&entry.chain, now).is_ok());
            if !ok {
                // notify_one keeps the wake-up if the connection is not waiting yet.
                entry.close.notify_one();
                closed += 1;
            }
        }
        closed
    }
}

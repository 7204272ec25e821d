//! A loaded gate: one configuration version with its sites, plus what outlives reloads
//! (metrics, the registry of open connections).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{Config, ListenerConfig};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::site::{self, Site};
use crate::tls;

/// Configuration versions, in load order: a connection compares its binding's generation
/// with the gate in force to know whether a reload happened.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// What every configuration version of one process shares.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub metrics: Metrics,
    /// Open connections of verified clients.
    pub registry: Arc<Registry>,
}

/// A loaded gate: the listener settings and its sites (virtual hosts). Immutable once
/// loaded; a reload builds a new one. Share it behind an `Arc`.
pub struct Gate {
    config: Config,
    /// The default site first, then the hosts.
    sites: Vec<Arc<Site>>,
    pub(crate) generation: u64,
    pub(crate) shared: Arc<Shared>,
    loaded_at: String,
    /// Finishes handshakes that no site serves (`no_sni = "reject"`) with an alert.
    pub(crate) refusing: Arc<rustls::ServerConfig>,
    /// Seals and opens session tickets for every site.
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("listen", &self.config.listener.listen)
            .field("version", &self.config.version)
            .field("sites", &self.sites)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Reads every file the configuration names and builds the gate. `key_passphrase`
    /// unlocks an encrypted server key.
    pub fn load(
        config: Config,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
    ) -> Result<Gate> {
        Gate::build(config, key_passphrase, Arc::default(), None)
    }

    /// Loads a new configuration for a reload: everything is read and checked again, and
    /// the new gate keeps this one's metrics and connection registry, and its own session
    /// ticket keys if both use them.
    pub fn reload(
        &self,
        config: Config,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
    ) -> Result<Gate> {
        Gate::build(config, key_passphrase, self.shared.clone(), Some(self))
    }

    fn build(
        config: Config,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
        shared: Arc<Shared>,
        previous: Option<&Gate>,
    ) -> Result<Gate> {
        // One ticketer for every site: rustls refuses to resume a session under another
        // SNI name, so shared keys never let a session cross hosts. The keys this process
        // made itself survive a reload, so that sessions do too: with `watch_files`, every
        // CRL published would otherwise end every session. Resumed sessions are checked
        // against the configuration in force, whatever configuration issued their ticket.
        let own_keys = |c: &Config| c.listener.ticket_keys.is_none();
        let ticketer = match previous {
            Some(old)
                if own_keys(&old.config)
                    && own_keys(&config)
                    && old.config.listener.limits.ticket_lifetime_secs
                        == config.listener.limits.ticket_lifetime_secs =>
            {
                old.ticketer.clone()
            }
            _ => tls::ticketer(&config.listener)?,
        };
        let sites = config
            .sites()
            .map(|s| {
                Site::load(
                    s.clone(),
                    key_passphrase,
                    &config.listener,
                    ticketer.clone(),
                )
                .map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Gate {
            sites,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            shared,
            loaded_at: time::OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default(),
            refusing: tls::refusing_config(),
            ticketer,
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn listener(&self) -> &ListenerConfig {
        &self.config.listener
    }

    /// The sites: the default one (the main file's) first, then the hosts.
    pub fn sites(&self) -> &[Arc<Site>] {
        &self.sites
    }

    /// Which configuration this is (a SHA-256 prefix of its files), and when it was loaded.
    pub fn version(&self) -> (&str, &str) {
        (&self.config.version, &self.loaded_at)
    }

    /// The site for an SNI name (see [`site::site_for`]).
    pub(crate) fn site_for(&self, sni: Option<&str>) -> Option<&Arc<Site>> {
        site::site_for(&self.sites, self.config.listener.no_sni, sni)
    }

    /// After a reload: closes the open connections whose client certificate this
    /// configuration no longer accepts (revoked, expired, CA removed). Returns how many.
    pub fn close_revoked(&self) -> usize {
        if !self.config.listener.close_revoked_connections {
            return 0;
        }
        self.shared.registry.close_failing(|key| {
            let site = self.sites.iter().find(|s| s.key() == key)?;
            site.tls.recheck.as_ref()
        })
    }

    /// Whether this configuration accepts the certificate a connection was verified with:
    /// its site still exists, still verifies clients, and the chain passes today.
    pub(crate) fn still_accepts(
        &self,
        conn: &crate::conn::Connection,
        session: &rustls::ServerConnection,
    ) -> bool {
        let Some(site) = self.site_for(conn.sni.as_deref()) else {
            return false;
        };
        let (Some(recheck), Some(chain)) = (site.tls.recheck.as_ref(), session.peer_certificates())
        else {
            return false;
        };
        site.key() == conn.site_key()
            && recheck
                .check(chain, rustls::pki_types::UnixTime::now())
                .is_ok()
    }

    /// Every file this configuration depends on, for the reload watcher.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config.source.clone()];
        files.extend(self.config.listener.ticket_keys.iter().cloned());
        for c in self.config.sites() {
            files.extend([c.source.clone(), c.cert.clone(), c.key.clone()]);
            files.extend(c.client_ca.iter().cloned());
            files.extend(c.crl.iter().cloned());
            files.extend(c.role_files.iter().cloned());
            if let Some(dir) = &c.pages_dir {
                files.extend(crate::pages::STATUSES.map(|code| dir.join(format!("{code}.html"))));
            }
        }
        files.sort();
        files.dedup();
        files
    }
}

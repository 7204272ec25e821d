//! The Portcullis gate: a TLS front door that verifies client certificates, turns them
//! into identities with roles, applies route rules, and forwards allowed requests with
//! the identity in standard headers.
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//! use portcullis_gate::{Config, Gate};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_file(Path::new("portcullis.toml"))?;
//! let gate = Arc::new(Gate::load(config, None)?);
//! let listener = gate.bind().await?;
//! gate.serve(listener).await?;
//! # Ok(()) }
//! ```
//!
//! What happens to a request, in order, is documented once in [`handler`]; the security
//! rules it implements are in the project's SECURITY.md.

pub mod config;
pub mod dev;
pub mod embed;
pub mod error;
pub mod handler;
pub mod identity_headers;
pub mod log;
pub mod metrics;
pub mod pages;
pub mod registry;
pub mod reload;
pub mod server;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use config::{ClientAuth, Config, ConfigError, InvalidCert, Upstream};
pub use error::{Error, Result};

/// One virtual host: its configuration, TLS (certificate, client CAs, CRLs, mode),
/// compiled policy, pages and upstream client.
pub struct Site {
    pub config: Config,
    pub tls: tls::Tls,
    acceptor_config: Arc<rustls::ServerConfig>,
    /// Host names accepted from clients that send no SNI.
    hosts: Vec<String>,
    names: identity_headers::Names,
    pages: pages::Pages,
    client: Option<Client<HttpConnector, hyper::body::Incoming>>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("names", &self.hosts)
            .field("client_auth", &self.config.client_auth)
            .field("upstream", &self.config.upstream)
            .finish_non_exhaustive()
    }
}

impl Site {
    fn load(
        config: Config,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
        limits: &config::Limits,
        ticketer: Arc<dyn rustls::server::ProducesTickets>,
    ) -> Result<Site> {
        let tls = tls::load(&config, key_passphrase, ticketer)?;
        let hosts = if config.server_names.is_empty() {
            tls.cert_names.clone()
        } else {
            config.server_names.clone()
        };
        let client = match &config.upstream {
            Upstream::Http { http2, .. } => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(Duration::from_secs(
                    limits.upstream_connect_timeout_secs,
                )));
                let mut builder = Client::builder(TokioExecutor::new());
                builder.pool_idle_timeout(Duration::from_secs(60));
                if *http2 {
                    builder.http2_only(true);
                }
                Some(builder.build(connector))
            }
            Upstream::Whoami => None,
        };
        Ok(Site {
            acceptor_config: tls.server_config.clone(),
            names: identity_headers::Names::new(&config.headers),
            pages: pages::Pages::load(config.pages_dir.as_deref())?,
            hosts,
            tls,
            client,
            config,
        })
    }

    /// Host names this site accepts.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The name the connection registry files this site's connections under.
    fn key(&self) -> &str {
        self.config.server_names.first().map_or("", String::as_str)
    }
}

/// A loaded gate: the listener settings and its sites (virtual hosts), plus the metrics,
/// log and connection registry that outlive reloads. Immutable once loaded; share it
/// behind an `Arc`.
pub struct Gate {
    /// The main file: listener settings, and the default site.
    pub config: Config,
    /// The default site first, then the hosts of `config.hosts`.
    pub sites: Vec<Arc<Site>>,
    /// Counters for `/metrics`, kept across reloads.
    pub metrics: Arc<metrics::Metrics>,
    log: Option<Arc<log::Log>>,
    /// Open connections of verified clients, kept across reloads.
    registry: Arc<registry::Registry>,
    /// Which configuration this is: a SHA-256 prefix of the file, and when it was loaded.
    pub version: String,
    pub loaded_at: String,
    /// Finishes handshakes that no site serves (`no_sni = "reject"`) with an alert.
    refusing: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("listen", &self.config.listen)
            .field("sites", &self.sites)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Reads every file the config names and builds the gate. `key_passphrase` unlocks an
    /// encrypted server key.
    pub fn load(
        config: Config,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
    ) -> Result<Gate> {
        let log = log::Log::start(config.access_log).map(Arc::new);
        Gate::build(config, key_passphrase, Arc::default(), log, Arc::default())
    }

    /// Loads a new configuration for a reload: everything is read and checked again, and
    /// the new gate keeps this one's metrics, log and connection registry.
    pub fn reload(
        &self,
        config: Config,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
    ) -> Result<Gate> {
        Gate::build(
            config,
            key_passphrase,
            self.metrics.clone(),
            self.log.clone(),
            self.registry.clone(),
        )
    }

    /// After a reload: closes the open connections whose client certificate this
    /// configuration no longer accepts (revoked, expired, CA removed). Returns how many.
    pub fn close_revoked(&self) -> usize {
        if !self.config.close_revoked_connections {
            return 0;
        }
        self.registry.close_failing(|key| {
            let site = self.sites.iter().find(|s| s.key() == key)?;
            site.tls.recheck.as_deref()
        })
    }

    fn build(
        mut config: Config,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
        metrics: Arc<metrics::Metrics>,
        log: Option<Arc<log::Log>>,
        registry: Arc<registry::Registry>,
    ) -> Result<Gate> {
        // Listener settings (limits, ticket keys) come from the main file for every site.
        let limits = config.limits;
        let ticketer = tls::ticketer(&config)?;
        let hosts = std::mem::take(&mut config.hosts);
        let mut sites = vec![Arc::new(Site::load(
            config.clone(),
            key_passphrase,
            &limits,
            ticketer.clone(),
        )?)];
        for host in &hosts {
            sites.push(Arc::new(Site::load(
                host.clone(),
                key_passphrase,
                &limits,
                ticketer.clone(),
            )?));
        }
        config.hosts = hosts;
        Ok(Gate {
            metrics,
            log,
            registry,
            version: config.version.clone(),
            loaded_at: time::OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default(),
            sites,
            refusing: tls::refusing_config(),
            config,
        })
    }

    /// The default site (the main file's).
    pub fn default_site(&self) -> &Arc<Site> {
        &self.sites[0]
    }

    /// The site for an SNI name: the host that lists it, else the default site, or
    /// `None` when `no_sni = "reject"`.
    pub fn site_for(&self, sni: Option<&str>) -> Option<&Arc<Site>> {
        if let Some(name) = sni {
            if let Some(site) = self.sites[1..]
                .iter()
                .find(|s| s.hosts.iter().any(|h| h.eq_ignore_ascii_case(name)))
            {
                return Some(site);
            }
            if self.sites[0]
                .hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
            {
                return Some(&self.sites[0]);
            }
        }
        match self.config.no_sni {
            config::NoSni::Default => Some(&self.sites[0]),
            config::NoSni::Reject => None,
        }
    }

    /// Every file this configuration depends on, for the reload watcher.
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        let mut files = vec![self.config.source.clone()];
        files.extend(self.config.ticket_keys.iter().cloned());
        for site in &self.sites {
            let c = &site.config;
            files.extend([c.source.clone(), c.cert.clone(), c.key.clone()]);
            files.extend(c.client_ca.iter().cloned());
            files.extend(c.crl.iter().cloned());
            if let Some(dir) = &c.pages_dir {
                files.extend(
                    [400, 401, 403, 421, 502, 504].map(|code| dir.join(format!("{code}.html"))),
                );
            }
        }
        files
    }
}

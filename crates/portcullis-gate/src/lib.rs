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
pub mod server;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use config::{ClientAuth, Config, ConfigError, InvalidCert, Upstream};
pub use error::{Error, Result};

/// A loaded gate: configuration, TLS, compiled policy, pages and the upstream client.
/// Immutable once loaded; share it behind an `Arc`.
pub struct Gate {
    pub config: Config,
    pub tls: tls::Tls,
    acceptor: tokio_rustls::TlsAcceptor,
    /// Hosts accepted from clients that send no SNI.
    hosts: Vec<String>,
    names: identity_headers::Names,
    pages: pages::Pages,
    client: Option<Client<HttpConnector, hyper::body::Incoming>>,
    /// Counters for `/metrics`, kept across reloads.
    pub metrics: Arc<metrics::Metrics>,
    log: Option<Arc<log::Log>>,
    /// Open connections of verified clients, kept across reloads.
    registry: Arc<registry::Registry>,
    /// Which configuration this is: a SHA-256 prefix of the file, and when it was loaded.
    pub version: String,
    pub loaded_at: String,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("listen", &self.config.listen)
            .field("client_auth", &self.config.client_auth)
            .field("hosts", &self.hosts)
            .field("upstream", &self.config.upstream)
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
    /// the new gate keeps this one's metrics and log.
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
        match (&self.tls.recheck, self.config.close_revoked_connections) {
            (Some(verifier), true) => self.registry.close_failing(verifier.as_ref()),
            _ => 0,
        }
    }

    fn build(
        config: Config,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
        metrics: Arc<metrics::Metrics>,
        log: Option<Arc<log::Log>>,
        registry: Arc<registry::Registry>,
    ) -> Result<Gate> {
        let tls = tls::load(&config, key_passphrase)?;
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
                    config.limits.upstream_connect_timeout_secs,
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
            acceptor: tokio_rustls::TlsAcceptor::from(tls.server_config.clone()),
            names: identity_headers::Names::new(&config.headers),
            pages: pages::Pages::load(config.pages_dir.as_deref())?,
            hosts,
            tls,
            client,
            config,
        })
    }

    /// Host names accepted from clients that send no SNI.
    pub fn default_hosts(&self) -> &[String] {
        &self.hosts
    }
}

/// Runs the gate until the process ends: the HTTPS listener and, if configured, the
/// plain-HTTP redirect listener.
pub async fn run(gate: Arc<Gate>) -> Result<()> {
    let listener = gate.bind().await?;
    if let Some(addr) = gate.config.redirect_http {
        let plain = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let https_port = listener
            .local_addr()
            .map_or(gate.config.listen.port(), |a| a.port());
        tokio::spawn(gate.clone().serve_redirects(plain, https_port));
    }
    if let Some(addr) = gate.config.admin {
        let admin = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        tokio::spawn(gate.clone().serve_admin(admin));
    }
    gate.serve(listener).await
}

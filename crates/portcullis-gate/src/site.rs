//! A site: one virtual host with its TLS configuration, policy, header names, pages and
//! upstream client, and the choice of a site by SNI.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, ListenerConfig, NoSni, SiteConfig, Upstream};
use crate::error::{Error, Result};
use crate::names::Names;
use crate::pages::Pages;
use crate::tls::{self, SiteTls};

/// One virtual host, immutable once loaded.
pub struct Site {
    config: SiteConfig,
    pub(crate) tls: SiteTls,
    /// Host names clients may ask for (lower case): `server_names`, or the certificate's.
    names: Vec<String>,
    pub(crate) headers: Arc<Names>,
    pub(crate) pages: Pages,
    pub(crate) client: Option<crate::upstream::Upstream>,
    pub(crate) enroll: Option<crate::enroll::Enroller>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("names", &self.names)
            .field("client_auth", &self.config.client_auth)
            .field("upstream", &self.config.upstream)
            .finish_non_exhaustive()
    }
}

impl Site {
    pub(crate) fn load(
        config: SiteConfig,
        key_passphrase: Option<&portcullis_pki::Passphrase>,
        listener: &ListenerConfig,
        ticketer: Arc<dyn rustls::server::ProducesTickets>,
    ) -> Result<Site> {
        let tls = tls::load(
            &config,
            key_passphrase,
            ticketer,
            listener.limits.session_tickets,
        )
        .map_err(|e| locate(&config, e))?;
        let names = if config.server_names.is_empty() {
            tls.cert_names.clone()
        } else {
            config.server_names.clone()
        };
        let client = match &config.upstream {
            Upstream::Http { authority, http2 } => {
                let target = http::Uri::builder()
                    .scheme("http")
                    .authority(authority.clone())
                    .path_and_query("/")
                    .build()
                    .map_err(|e| crate::error::Error::Invalid {
                        path: config.source.clone(),
                        reason: format!("upstream: {e}"),
                    })?;
                Some(crate::upstream::Upstream::new(
                    target,
                    *http2,
                    Duration::from_secs(listener.limits.upstream_connect_timeout_secs),
                ))
            }
            Upstream::Whoami => None,
        };
        let enroll = config
            .enroll
            .as_ref()
            .map(crate::enroll::Enroller::open)
            .transpose()
            .map_err(|e| locate(&config, e))?;
        Ok(Site {
            enroll,
            headers: Arc::new(Names::new(&config.headers)),
            pages: Pages::load(config.pages_dir.as_deref()).map_err(|e| locate(&config, e))?,
            names,
            tls,
            client,
            config,
        })
    }

    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    /// Host names this site accepts in `Host` / `:authority`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether requests go to the upstream as h2c.
    pub(crate) fn upstream_http2(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.is_http2())
    }

    /// Whether `host` (without port) is one of this site's names.
    pub(crate) fn serves(&self, host: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(host))
    }

    /// The DNS and IP names of the served certificate.
    pub fn cert_names(&self) -> &[String] {
        &self.tls.cert_names
    }

    /// The CA directory that issues online (`[enroll]`), if any.
    pub fn enroll_ca(&self) -> Option<&std::path::Path> {
        self.enroll.as_ref().map(|e| e.ca_dir())
    }

    /// Subjects of the CAs that issue client certificates.
    pub fn client_ca_subjects(&self) -> &[String] {
        &self.tls.client_ca_subjects
    }

    /// CRLs past their nextUpdate, described for a warning.
    pub fn expired_crls(&self) -> &[String] {
        &self.tls.expired_crls
    }

    /// A name that stays the same across reloads: the first server name, or empty for the
    /// default site. A connection stays with the site it was authenticated for.
    pub(crate) fn key(&self) -> &str {
        self.config.server_names.first().map_or("", String::as_str)
    }
}

/// An error about a file the site's configuration names, turned into one that also says
/// where it was named (file, line, key) and what to do; other errors unchanged.
fn locate(config: &SiteConfig, e: Error) -> Error {
    let (Error::Read { path, .. } | Error::Invalid { path, .. }) = &e else {
        return e;
    };
    let Some(origin) = config.origins.iter().find(|o| &o.path == path) else {
        return e;
    };
    let missing =
        matches!(&e, Error::Read { error, .. } if error.kind() == std::io::ErrorKind::NotFound);
    let hint = match (origin.key, missing) {
        ("cert" | "key", true) => {
            "; issue a server certificate with `portcullis pki issue server HOST --dns HOST`"
        }
        ("client_ca", true) => {
            "; list the CA certificates that issue client certificates, e.g. pki/root.crt from `portcullis pki init`"
        }
        ("client_ca", false) => {
            "; client_ca lists CA certificate files (PEM or DER), e.g. pki/root.crt"
        }
        ("crl", true) => "; `portcullis pki crl` publishes one (pki/crl.pem)",
        _ => "",
    };
    Error::Config(ConfigError {
        file: config.source.clone(),
        line: origin.line,
        key: Some(origin.key.into()),
        message: format!("{e}{hint}"),
    })
}

/// The site for an SNI name: the host that lists it, else the default site (the first),
/// or `None` when `no_sni = "reject"`.
pub(crate) fn site_for<'a>(
    sites: &'a [Arc<Site>],
    no_sni: NoSni,
    sni: Option<&str>,
) -> Option<&'a Arc<Site>> {
    if let Some(name) = sni {
        let hosts = sites.get(1..).unwrap_or_default();
        if let Some(site) = hosts.iter().chain(sites.first()).find(|s| s.serves(name)) {
            return Some(site);
        }
    }
    match no_sni {
        NoSni::Default => sites.first(),
        NoSni::Reject => None,
    }
}

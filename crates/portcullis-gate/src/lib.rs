//! The Portcullis gate: a TLS front door that verifies client certificates, turns them
//! into identities with roles, applies route rules, and forwards allowed requests with
//! the identity in standard headers.
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//! use arc_swap::ArcSwap;
//! use portcullis_gate::{Config, Gate};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_file(Path::new("portcullis.toml"))?;
//! let gate = Arc::new(Gate::load(config, None)?);
//! let listener = gate.bind().await?;
//! portcullis_gate::serve(Arc::new(ArcSwap::new(gate)), listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! What happens to a request, stage by stage and in which order, is written down once in
//! the private `request` module; the security rules it implements are in the project's
//! SECURITY.md, and `docs/gate.md` says which tests cover each.
//!
//! Inside, dependencies point one way: `listener → request → gate → conn → site →
//! config / tls / names / pages`, with `log`, `metrics` and `outcome` below them all.

mod config;
mod conn;
pub mod dev;
mod embed;
pub mod enroll;
mod error;
mod gate;
mod listener;
mod log;
mod metrics;
mod names;
mod outcome;
mod pages;
mod park;
mod registry;
pub mod reload;
mod request;
mod sidewake;
mod site;
mod tls;
mod upstream;
mod verified;

pub use config::{
    ClientAuth, Config, ConfigError, DEFAULT_LISTEN, EnrollConfig, HeaderNames, InvalidCert,
    Limits, ListenerConfig, NoSni, OVERRIDE_HEADERS, SiteConfig, Upstream,
};
pub use conn::Connection;
pub use embed::{Caller, PolicyLayer, PolicyService};
pub use error::{Error, Result};
pub use gate::Gate;
pub use listener::{Current, serve, serve_admin, serve_redirects};
pub use request::{ConditionResult, Granted, Judgement, Question, Tried};
pub use site::Site;

/// The gate's log: install it once at start ([`logging::init`]); lifecycle messages go
/// through [`logging::event`] so that every line has the same format.
pub mod logging {
    pub use crate::log::{Format, LogGuard, event, init, warning};
}

/// Entry points for the fuzz targets in `fuzz/` and their replay tests: thin calls into
/// private stages. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use http::{HeaderMap, Uri, Version};

    use crate::config::HeaderNames;
    use crate::names::Names;

    /// Stage 3 (header integrity) on `headers`, with names compiled from `cfg`.
    pub fn sanitize(headers: &mut HeaderMap, cfg: &HeaderNames) {
        crate::request::sanitize_headers(headers, &Names::new(cfg));
    }

    /// Whether stage 3 treats `name` as one the gate speaks for.
    pub fn is_protected(cfg: &HeaderNames, name: &str) -> bool {
        Names::new(cfg).is_protected(name)
    }

    /// Stage 2 (authority) for a site serving `names` on `port`: the checked value and
    /// its host, or why it was refused.
    pub fn authority(
        version: Version,
        uri: &Uri,
        headers: &HeaderMap,
        sni: Option<&str>,
        names: &[&str],
        port: u16,
    ) -> Result<(String, String), String> {
        crate::request::check_authority(
            version,
            uri,
            headers,
            sni,
            |h| names.iter().any(|n| n.eq_ignore_ascii_case(h)),
            |p| p == port || p == 443,
        )
        .map(|a| (a.as_str().to_owned(), a.host().to_owned()))
        .map_err(|p| p.to_string())
    }

    /// A client-CA file and a CRL file, read as the gate reads them at load (PEM or DER),
    /// then a client verifier built from them: whether it all loads.
    pub fn trust_files(ca_file: &[u8], crl_file: &[u8]) -> bool {
        let path = std::path::Path::new("fuzz.pem");
        let mut roots = rustls::RootCertStore::empty();
        let mut expired = Vec::new();
        let (Ok(_), Ok(crls)) = (
            crate::tls::add_anchors(ca_file.to_vec(), path, &mut roots, Some(&mut Vec::new())),
            crate::tls::read_crls(crl_file.to_vec(), path, &mut expired),
        ) else {
            return false;
        };
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .with_crls(crls)
        .build()
        .is_ok()
    }

    /// The shared ticket-key file's parser: whether `text` holds usable keys.
    pub fn ticket_keys(text: &str) -> bool {
        crate::tls::SharedKeyTicketer::parse(text, std::path::Path::new("ticket.keys"), 3600)
            .is_ok()
    }
}

/// Whether a server key file is passphrase-protected (so a caller knows to ask).
pub fn key_is_encrypted(path: &std::path::Path) -> Result<bool> {
    tls::key_is_encrypted(path)
}

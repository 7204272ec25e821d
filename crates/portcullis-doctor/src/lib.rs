//! Tells why a TLS connection fails, shows the evidence, and gives the secure fix.
//!
//! The doctor collects first and judges after:
//!
//! ```text
//! probe (tokio, hard timeouts) ─► Observations (plain, serializable data)
//!   ─► diagnose(&Observations) -> findings        (pure: no I/O, no clock)
//!   ─► fix catalog: cause × ecosystem             (Node.js, curl, openssl, Python, Rust)
//!   ─► render: text for people, JSON for scripts
//! ```
//!
//! The probe connects with a *recording* verifier (see the `danger` module) that accepts
//! any chain so it can be inspected, then judges that chain against the system store,
//! Mozilla's list and the user's `--ca`. That is how it tells a self-signed leaf from a
//! missing intermediate from an untrusted root, which rustls reports alike. With `--as`
//! (and `--compare`), the stores particular clients read on this machine are judged too
//! (the `clients` module gathers them: Node's bundled list and `NODE_EXTRA_CA_CERTS`,
//! requests' certifi bundle, curl's, Java's `cacerts`…), so "works from curl but not from
//! Node" is answered with the store that differs. No application
//! data is ever sent on such a connection. Where rustls cannot go (TLS 1.0, legacy suites,
//! leaving SNI out for a DNS name, plaintext answers), hand-built ClientHellos do.
//!
//! Some servers (nginx `ssl_verify_client on`) ask for a client certificate, complete
//! the handshake without one and refuse in HTTP. So when the server asked for a
//! certificate and a client would trust it, the doctor makes one HTTP request (see the
//! `http` module) on a connection of its own, verified by rustls against that store.
//!
//! ```no_run
//! use std::time::Duration;
//! use portcullis_doctor::{Request, Target};
//!
//! # fn main() -> Result<(), portcullis_doctor::Error> {
//! let req = Request {
//!     target: Target::parse("127.0.0.1:8443")?,
//!     servername: Some("app.internal".into()),
//!     ca_files: vec![],
//!     ca: None,
//!     client: None,
//!     tls: None,
//!     alpn: vec![],
//!     timeout: Duration::from_secs(5),
//!     compare: false,
//!     as_client: Some("node".into()),
//! };
//! let report = portcullis_doctor::run(&req)?;
//! println!("{}: {}", report.cause, report.verdict);
//! # Ok(()) }
//! ```

pub mod audit;
pub mod capture;
pub mod causes;
pub mod certs;
pub mod clients;
pub mod compare;
mod danger;
pub mod diagnose;
pub mod error;
pub mod explain;
pub mod fixes;
mod forge;
pub mod http;
pub mod observe;
pub mod probe;
pub mod raw;
pub mod render;
pub mod trust;

use std::time::Instant;

use serde::Serialize;

pub use diagnose::{Diagnosis, Finding, Severity, diagnose};
pub use error::Error;
pub use observe::Observations;
pub use probe::{ClientIdentity, Request};

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The URL's path and query (`/` when none was given): the HTTP check requests it.
    pub path: String,
}

impl Target {
    /// `HOST`, `HOST:PORT`, `[v6]:PORT`, or `https://HOST[:PORT]/path` (port 443 by default).
    pub fn parse(input: &str) -> Result<Target, Error> {
        let bad = |reason: &str| Error::Target {
            input: input.into(),
            reason: reason.into(),
        };
        let mut s = input.trim();
        if let Some((scheme, rest)) = s.split_once("://") {
            if !scheme.eq_ignore_ascii_case("https") {
                return Err(bad("only https:// URLs carry TLS"));
            }
            s = rest;
        }
        let (s, rest) = s.split_at(s.find(['/', '?', '#']).unwrap_or(s.len()));
        let rest = rest.split('#').next().unwrap_or("");
        let path = if rest.starts_with('/') {
            rest.to_owned()
        } else {
            format!("/{rest}")
        };
        let s = s.rsplit_once('@').map_or(s, |(_, h)| h);
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, after.strip_prefix(':'))
        } else if s.matches(':').count() > 1 {
            (s, None) // a bare IPv6 address
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 443,
            Some(p) => p
                .parse()
                .map_err(|_| bad("the port is not a number 1-65535"))?,
        };
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(Target {
            host: host.to_owned(),
            port,
            path,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything a doctor run produced: the verdict, the findings with their fixes, the
/// compare matrix when asked for, and the raw observations.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    /// The first error finding's slug, or `ok`.
    pub cause: String,
    /// One line for people.
    pub verdict: String,
    pub findings: Vec<Finding>,
    pub compare: Option<compare::Comparison>,
    pub elapsed_ms: u64,
    pub observations: Observations,
}

impl Report {
    /// 0 when the connection is healthy (warnings allowed), 1 when a problem was found.
    pub fn exit_code(&self) -> u8 {
        if self.cause == "ok" { 0 } else { 1 }
    }

    /// Builds the report from observations (pure).
    pub fn from_observations(obs: Observations, elapsed_ms: u64) -> Report {
        let d = diagnose(&obs);
        let target = format!(
            "{}{}",
            Target {
                host: obs.target.host.clone(),
                port: obs.target.port,
                path: obs.target.path.clone(),
            },
            obs.target
                .servername
                .as_ref()
                .filter(|s| **s != obs.target.host)
                .map(|s| format!(" (name {s})"))
                .unwrap_or_default()
        );
        let verdict = match d.findings.iter().find(|f| f.severity == Severity::Error) {
            Some(f) => format!("the connection fails: {}", f.summary),
            None => {
                let h = obs.handshakes.first();
                format!(
                    "healthy: {}{}, certificate verified{}",
                    h.and_then(|h| h.version.clone()).unwrap_or_default(),
                    h.and_then(|h| h.cipher_suite.clone())
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default(),
                    if d.findings.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} warning(s))", d.findings.len())
                    }
                )
            }
        };
        let compare = obs.compare.as_ref().map(|v| {
            // Another trust store fixes only a failure of trust.
            let trust_problem = matches!(
                d.cause.as_str(),
                "self-signed"
                    | "untrusted-root"
                    | "missing-intermediate"
                    | "pinned-ca-mismatch"
                    | "trust-store-differs"
            );
            compare::compare(&obs, v, d.healthy(), trust_problem)
        });
        Report {
            target,
            cause: d.cause,
            verdict,
            findings: d.findings,
            compare,
            elapsed_ms,
            observations: obs,
        }
    }
}

/// Probes the target, judges what it saw, and returns the report.
pub fn run(req: &Request) -> Result<Report, Error> {
    let start = Instant::now();
    let mut stores = trust::Stores::load(req.ca.as_deref());
    // `--as` judges with one client's store; `--compare` shows every client's.
    let env = clients::Env::from_process();
    let wanted: Vec<&str> = if req.compare {
        clients::CLIENTS.to_vec()
    } else {
        req.as_client.iter().map(String::as_str).collect()
    };
    for c in wanted {
        stores
            .clients
            .extend(clients::gather(c, &env, &stores.system));
    }
    let obs = probe::run(req, &stores)?;
    Ok(Report::from_observations(
        obs,
        start.elapsed().as_millis() as u64,
    ))
}

/// A report for a problem found before connecting (an unreadable client key, say).
pub fn local_report(req: &Request, cause: &str, detail: String) -> Report {
    let mut obs = Observations::default();
    obs.target.host = req.target.host.clone();
    obs.target.port = req.target.port;
    obs.local.push(observe::LocalIssue {
        cause: cause.into(),
        detail,
    });
    Report::from_observations(obs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |s: &str| Target::parse(s).map(|t| (t.host, t.port)).ok();
        assert_eq!(t("example.com"), Some(("example.com".into(), 443)));
        assert_eq!(t("example.com:8443"), Some(("example.com".into(), 8443)));
        assert_eq!(
            t("https://example.com:9/x/y?z"),
            Some(("example.com".into(), 9))
        );
        assert_eq!(t("[::1]:4433"), Some(("::1".into(), 4433)));
        assert_eq!(t("::1"), Some(("::1".into(), 443)));
        assert_eq!(t("http://example.com"), None);
        let path = |s: &str| Target::parse(s).map(|t| t.path).ok();
        assert_eq!(path("example.com"), Some("/".into()));
        assert_eq!(path("https://example.com:9/x/y?z#f"), Some("/x/y?z".into()));
        assert_eq!(path("example.com?q"), Some("/?q".into()));
        assert_eq!(t("example.com:x"), None);
        assert_eq!(t(""), None);
    }

    /// Every store a client is gathered into has a fix with that client's knob.
    #[test]
    fn every_client_store_has_its_fix() {
        let s = fixes::ClientSettings::default();
        for store in fixes::STORES {
            assert!(fixes::store_fix(store, &s, "ca.pem").is_some(), "{store}");
        }
        assert!(fixes::store_fix("lynx", &s, "ca.pem").is_none());
    }

    #[test]
    fn no_fix_disables_verification() {
        let catalog = fixes::whole_catalog().to_lowercase();
        for bad in INSECURE {
            assert!(!catalog.contains(bad), "the fix catalog suggests {bad:?}");
        }
        // The catalog is not empty: this test can fail.
        assert!(catalog.contains("servername"));
    }

    /// Advice that turns certificate verification off, in the spellings people copy.
    pub(crate) const INSECURE: &[&str] = &[
        "rejectunauthorized: false",
        "rejectunauthorized:false",
        "node_tls_reject_unauthorized",
        "curl -k",
        " -k ",
        "--insecure",
        "verify=false",
        "danger_accept_invalid",
        "cert_none",
        "check_hostname = false",
        "insecureskipverify",
        "-verify_return_error 0",
        "trustall",
    ];
}

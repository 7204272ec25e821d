//! `portcullis.toml`: parsed strictly (unknown keys are errors), validated completely,
//! and every error names the file, the line and the key.
//!
//! ```toml
//! listen = "127.0.0.1:8443"
//! cert = "pki/issued/localhost.chain.pem"   # leaf + intermediates
//! key = "pki/issued/localhost.key"          # may be encrypted: see key_passphrase_file
//! client_auth = "optional"                  # require | optional | off
//! client_ca = ["pki/root.crt"]
//! crl = ["pki/crl.pem"]
//! upstream = "http://127.0.0.1:3000"        # or "builtin:whoami"
//!
//! [[roles]]
//! role = "admin"
//! ou = "Admins"
//!
//! [[rules]]
//! path = "/admin/**"
//! require = "role:admin"
//! ```
//!
//! Relative paths are relative to the config file's directory.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use portcullis_policy::{Condition, Policy, Requirement};
use serde::Deserialize;
use toml::Spanned;

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: usize,
    /// The key, like `rules[2].require`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(k) = &self.key {
            write!(f, ": {k}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// How the gate treats client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No valid client certificate, no handshake.
    Require,
    /// A valid certificate is used; none means anonymous; an invalid one fails the handshake.
    Optional,
    /// Client certificates are not requested.
    Off,
}

/// What happens to a client certificate that is presented but fails verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidCert {
    /// The TLS handshake fails (the default, and the only choice in `require` mode).
    #[default]
    Reject,
    /// The client continues as anonymous; `X-Client-Verify: FAILED:reason` and the 401
    /// page say why. Only with `client_auth = "optional"`.
    Anonymous,
}

/// What a client that sends no SNI, or a name no host serves, gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoSni {
    /// The default host: the one the main file describes.
    #[default]
    Default,
    /// A handshake failure: a TLS alert (access_denied), not a silent close.
    Reject,
}

/// Keys that belong to the listener and so only to the main file, not to a host file.
const LISTENER_KEYS: [&str; 10] = [
    "listen",
    "admin",
    "redirect_http",
    "access_log",
    "limits",
    "ticket_keys",
    "watch_files",
    "close_revoked_connections",
    "hosts",
    "no_sni",
];

/// Where requests go after the policy allows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The built-in "who am I" page.
    Whoami,
    /// An HTTP origin: scheme, authority and a path prefix (usually empty).
    Http {
        authority: http::uri::Authority,
        /// Speak HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
        http2: bool,
    },
}

/// Names of the identity headers the gate sets (and strips from every request).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderNames {
    /// RFC 9440 leaf certificate header.
    pub cert: String,
    /// RFC 9440 chain header.
    pub chain: String,
    /// Prefix of the convenience headers (`X-Client-Verify`, `X-Client-CN`, …).
    pub prefix: String,
    /// More inbound headers to strip, e.g. the ones an older proxy used.
    pub strip: Vec<String>,
}

impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            cert: "Client-Cert".into(),
            chain: "Client-Cert-Chain".into(),
            prefix: "X-Client-".into(),
            strip: Vec::new(),
        }
    }
}

/// Time and size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub handshake_timeout_secs: u64,
    pub header_timeout_secs: u64,
    pub upstream_connect_timeout_secs: u64,
    pub upstream_timeout_secs: u64,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// On SIGTERM, how long in-flight requests may take to finish before the gate exits.
    pub shutdown_grace_secs: u64,
    /// How long a TLS session ticket may be used to resume.
    pub ticket_lifetime_secs: u32,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 and h2).
    pub idle_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout_secs: 10,
            header_timeout_secs: 10,
            upstream_connect_timeout_secs: 5,
            upstream_timeout_secs: 30,
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            shutdown_grace_secs: 30,
            ticket_lifetime_secs: 3600,
            idle_timeout_secs: 60,
        }
    }
}

/// A validated configuration. Files it names are read by [`crate::Gate::load`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, or a description for built-in configs.
    pub source: PathBuf,
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub key_passphrase_file: Option<PathBuf>,
    /// Session-ticket keys shared by replicas (see `tls::SharedKeyTicketer`).
    pub ticket_keys: Option<PathBuf>,
    /// Host names accepted from clients that send no SNI (empty: the certificate's SANs).
    pub server_names: Vec<String>,
    pub client_auth: ClientAuth,
    pub invalid_cert: InvalidCert,
    pub client_ca: Vec<PathBuf>,
    pub crl: Vec<PathBuf>,
    /// Accept clients while a CRL is past its nextUpdate (off by default: fail closed).
    pub allow_expired_crl: bool,
    /// On reload, close open connections whose certificate is no longer accepted.
    pub close_revoked_connections: bool,
    /// Reload when the configuration or a file it names changes.
    pub watch_files: bool,
    pub upstream: Upstream,
    pub redirect_http: Option<SocketAddr>,
    /// Loopback address of the admin listener (`/metrics`, `/healthz`, `/readyz`); off when unset.
    pub admin: Option<SocketAddr>,
    pub access_log: crate::log::Format,
    pub pages_dir: Option<PathBuf>,
    pub headers: HeaderNames,
    pub limits: Limits,
    pub policy: Policy,
    /// Rule descriptions for logs and `portcullis check`, in order.
    pub rule_names: Vec<String>,
    /// First 12 hex digits of the SHA-256 of the file, to tell configurations apart.
    pub version: String,
    /// Virtual hosts, each from its own file in this same format (listener keys excepted),
    /// chosen by SNI among their `server_names`.
    pub hosts: Vec<Config>,
    pub no_sni: NoSni,
    /// Host files not read yet (`from_str` parses, `from_file` follows them).
    host_files: Vec<(PathBuf, Range<usize>)>,
}

// === raw TOML ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<Spanned<String>>,
    cert: Spanned<PathBuf>,
    key: Spanned<PathBuf>,
    key_passphrase_file: Option<PathBuf>,
    ticket_keys: Option<PathBuf>,
    #[serde(default)]
    hosts: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    no_sni: NoSni,
    #[serde(default)]
    server_names: Vec<String>,
    client_auth: ClientAuth,
    #[serde(default)]
    invalid_cert: InvalidCert,
    #[serde(default)]
    client_ca: Vec<PathBuf>,
    #[serde(default)]
    crl: Vec<PathBuf>,
    #[serde(default)]
    allow_expired_crl: bool,
    #[serde(default = "yes")]
    close_revoked_connections: bool,
    #[serde(default = "yes")]
    watch_files: bool,
    upstream: Spanned<String>,
    #[serde(default)]
    upstream_http2: bool,
    redirect_http: Option<Spanned<String>>,
    admin: Option<Spanned<String>>,
    #[serde(default)]
    access_log: crate::log::Format,
    pages_dir: Option<PathBuf>,
    #[serde(default)]
    headers: HeaderNames,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    roles: Vec<Spanned<RawRole>>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    role: String,
    cn: Option<Vec<String>>,
    ou: Option<String>,
    o: Option<String>,
    email: Option<String>,
    uri_prefix: Option<String>,
    dns: Option<String>,
    fingerprint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: String,
    #[serde(default)]
    methods: Vec<String>,
    host: Option<String>,
    require: Option<Spanned<String>>,
    any_of: Option<Spanned<Vec<String>>>,
    all_of: Option<Spanned<Vec<String>>>,
}

/// Default listening address: loopback, so a first run exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

impl Config {
    /// Reads and validates a config file, and the host files it lists.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text(path)?;
        let mut config = Config::from_str(&text, path)?;
        let mut seen: Vec<String> = config.server_names.clone();
        for (i, host) in std::mem::take(&mut config.host_files)
            .into_iter()
            .enumerate()
        {
            let (host_path, span) = host;
            let host_text = read_text(&host_path).map_err(|e| ConfigError {
                file: path.to_owned(),
                line: line_of(&text, span.start),
                key: Some(format!("hosts[{i}]")),
                message: e.message,
            })?;
            // Listener settings live in the main file only; say so instead of ignoring them.
            for (n, line) in host_text.lines().enumerate() {
                let key = line
                    .trim_start()
                    .split(['=', ' ', ']'])
                    .next()
                    .unwrap_or("")
                    .trim_start_matches('[');
                if LISTENER_KEYS.contains(&key) {
                    return Err(ConfigError {
                        file: host_path.clone(),
                        line: n + 1,
                        key: Some(key.to_owned()),
                        message: format!(
                            "{key} belongs in the main file ({}), not in a host file",
                            path.display()
                        ),
                    });
                }
            }
            let site = Config::from_str(&host_text, &host_path)?;
            if site.server_names.is_empty() {
                return Err(ConfigError {
                    file: host_path.clone(),
                    line: 0,
                    key: Some("server_names".into()),
                    message: "a host file needs server_names: the SNI names this host answers"
                        .into(),
                });
            }
            if let Some(dup) = site.server_names.iter().find(|n| seen.contains(n)) {
                return Err(ConfigError {
                    file: host_path.clone(),
                    line: 0,
                    key: Some("server_names".into()),
                    message: format!("{dup:?} is already served by another host"),
                });
            }
            seen.extend(site.server_names.iter().cloned());
            config.hosts.push(site);
        }
        Ok(config)
    }

    /// Parses and validates config text; `path` locates errors and relative paths.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let at = |span: Option<Range<usize>>, key: Option<String>, message: String| ConfigError {
            file: path.to_owned(),
            line: span.map_or(0, |s| line_of(text, s.start)),
            key,
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_owned();
            at(e.span(), None, msg)
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };

        let listen = match &raw.listen {
            Some(l) => l.get_ref().parse().map_err(|_| {
                at(
                    Some(l.span()),
                    Some("listen".into()),
                    format!(
                        "{:?} is not an address like 127.0.0.1:8443 or [::1]:8443",
                        l.get_ref()
                    ),
                )
            })?,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| at(None, None, "bad default".into()))?,
        };
        let redirect_http = match &raw.redirect_http {
            Some(l) => Some(l.get_ref().parse().map_err(|_| {
                at(
                    Some(l.span()),
                    Some("redirect_http".into()),
                    format!("{:?} is not an address like 127.0.0.1:8080", l.get_ref()),
                )
            })?),
            None => None,
        };
        let admin = match &raw.admin {
            Some(a) => {
                let addr: SocketAddr = a.get_ref().parse().map_err(|_| {
                    at(
                        Some(a.span()),
                        Some("admin".into()),
                        format!("{:?} is not an address like 127.0.0.1:9901", a.get_ref()),
                    )
                })?;
                // Metrics name clients and certificates: keep them off the network.
                if !addr.ip().is_loopback() {
                    return Err(at(
                        Some(a.span()),
                        Some("admin".into()),
                        "the admin listener must be on a loopback address (127.0.0.1 or [::1])"
                            .into(),
                    ));
                }
                Some(addr)
            }
            None => None,
        };
        if raw.client_auth != ClientAuth::Off && raw.client_ca.is_empty() {
            return Err(at(
                None,
                Some("client_ca".into()),
                "client_auth needs the CA certificates that issue client certificates, e.g. client_ca = [\"pki/root.crt\"]".into(),
            ));
        }
        if raw.invalid_cert == InvalidCert::Anonymous && raw.client_auth != ClientAuth::Optional {
            return Err(at(
                None,
                Some("invalid_cert".into()),
                "\"anonymous\" only makes sense with client_auth = \"optional\"".into(),
            ));
        }
        let upstream = parse_upstream(raw.upstream.get_ref(), raw.upstream_http2)
            .map_err(|m| at(Some(raw.upstream.span()), Some("upstream".into()), m))?;
        for (name, v) in [
            ("headers.cert", &raw.headers.cert),
            ("headers.chain", &raw.headers.chain),
        ] {
            http::HeaderName::from_bytes(v.as_bytes()).map_err(|_| {
                at(
                    None,
                    Some(name.into()),
                    format!("{v:?} is not a header name"),
                )
            })?;
        }
        if raw.headers.prefix.is_empty()
            || http::HeaderName::from_bytes(format!("{}verify", raw.headers.prefix).as_bytes())
                .is_err()
        {
            return Err(at(
                None,
                Some("headers.prefix".into()),
                "must be a non-empty header name prefix".into(),
            ));
        }
        for h in &raw.headers.strip {
            http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                at(
                    None,
                    Some("headers.strip".into()),
                    format!("{h:?} is not a header name"),
                )
            })?;
        }

        let mut policy = Policy::new();
        for (i, r) in raw.roles.iter().enumerate() {
            let key = Some(format!("roles[{i}]"));
            let span = Some(r.span());
            let r = r.get_ref();
            let mut when = Vec::new();
            if let Some(v) = &r.cn {
                when.push(Condition::Cn(v.clone()));
            }
            if let Some(v) = &r.ou {
                when.push(Condition::Ou(v.clone()));
            }
            if let Some(v) = &r.o {
                when.push(Condition::O(v.clone()));
            }
            if let Some(v) = &r.email {
                when.push(Condition::Email(v.clone()));
            }
            if let Some(v) = &r.uri_prefix {
                when.push(Condition::UriPrefix(v.clone()));
            }
            if let Some(v) = &r.dns {
                when.push(Condition::Dns(v.clone()));
            }
            if let Some(v) = &r.fingerprint {
                when.push(Condition::Fingerprint(v.replace(':', "")));
            }
            policy.add_role(&r.role, when).map_err(|e| {
                let hint = if when_empty(r) {
                    " (add cn, ou, o, email, uri_prefix, dns or fingerprint)"
                } else {
                    ""
                };
                at(span.clone(), key.clone(), format!("{e}{hint}"))
            })?;
        }
        let mut rule_names = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let key = Some(format!("rules[{i}]"));
            let span = Some(r.span());
            let r = r.get_ref();
            let err = |m: String| at(span.clone(), key.clone(), m);
            let given = [r.require.is_some(), r.any_of.is_some(), r.all_of.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(err("give exactly one of require, any_of or all_of".into()));
            }
            // Errors about the requirement point at its own line.
            let req_span = r
                .require
                .as_ref()
                .map(Spanned::span)
                .or_else(|| r.any_of.as_ref().map(Spanned::span))
                .or_else(|| r.all_of.as_ref().map(Spanned::span));
            let one = |s: &str| {
                policy.requirement(s).map_err(|e| {
                    let known = policy.role_names().join(", ");
                    at(
                        req_span.clone(),
                        key.clone(),
                        format!(
                            "{e} (roles defined: {})",
                            if known.is_empty() { "none" } else { &known }
                        ),
                    )
                })
            };
            let require = if let Some(s) = &r.require {
                one(s.get_ref())?
            } else if let Some(list) = &r.any_of {
                Requirement::AnyOf(
                    list.get_ref()
                        .iter()
                        .map(|s| one(s))
                        .collect::<Result<_, _>>()?,
                )
            } else if let Some(list) = &r.all_of {
                Requirement::AllOf(
                    list.get_ref()
                        .iter()
                        .map(|s| one(s))
                        .collect::<Result<_, _>>()?,
                )
            } else {
                return Err(err("missing require".into()));
            };
            let desc = format!(
                "#{i} {}{} {}",
                if r.methods.is_empty() {
                    String::new()
                } else {
                    format!("{} ", r.methods.join(","))
                },
                r.path,
                match (&r.require, &r.any_of, &r.all_of) {
                    (Some(s), _, _) => s.get_ref().clone(),
                    (_, Some(l), _) => format!("any_of {}", l.get_ref().join("|")),
                    (_, _, Some(l)) => format!("all_of {}", l.get_ref().join("+")),
                    _ => String::new(),
                }
            );
            policy
                .add_rule(&r.path, &r.methods, r.host.as_deref(), require)
                .map_err(|e| err(e.to_string()))?;
            rule_names.push(desc);
        }
        if raw.rules.is_empty() {
            return Err(at(
                None,
                Some("rules".into()),
                "no [[rules]]: every request would be denied; add at least one rule".into(),
            ));
        }

        Ok(Config {
            source: path.to_owned(),
            listen,
            cert: rel(raw.cert.get_ref()),
            key: rel(raw.key.get_ref()),
            key_passphrase_file: raw.key_passphrase_file.as_deref().map(rel),
            ticket_keys: raw.ticket_keys.as_deref().map(rel),
            host_files: raw
                .hosts
                .iter()
                .map(|h| (rel(h.get_ref()), h.span()))
                .collect(),
            hosts: Vec::new(),
            no_sni: raw.no_sni,
            server_names: raw
                .server_names
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            client_auth: raw.client_auth,
            invalid_cert: raw.invalid_cert,
            client_ca: raw.client_ca.iter().map(|p| rel(p)).collect(),
            crl: raw.crl.iter().map(|p| rel(p)).collect(),
            allow_expired_crl: raw.allow_expired_crl,
            close_revoked_connections: raw.close_revoked_connections,
            watch_files: raw.watch_files,
            upstream,
            redirect_http,
            admin,
            access_log: raw.access_log,
            pages_dir: raw.pages_dir.as_deref().map(rel),
            headers: raw.headers,
            limits: raw.limits,
            policy,
            rule_names,
            version: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
                .as_ref()[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        })
    }
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: 0,
        key: None,
        message: format!("cannot read: {e}"),
    })
}

fn yes() -> bool {
    true
}

fn when_empty(r: &RawRole) -> bool {
    r.cn.is_none()
        && r.ou.is_none()
        && r.o.is_none()
        && r.email.is_none()
        && r.uri_prefix.is_none()
        && r.dns.is_none()
        && r.fingerprint.is_none()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// `builtin:whoami` or `http://host:port` (no path, query or userinfo).
pub fn parse_upstream(s: &str, http2: bool) -> Result<Upstream, String> {
    if s == "builtin:whoami" {
        return Ok(Upstream::Whoami);
    }
    let uri: http::Uri = s
        .parse()
        .map_err(|_| format!("{s:?} is not a URL; use http://host:port or builtin:whoami"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{s:?}: only http:// upstreams are supported (the gate terminates TLS; keep the upstream on a private address)"
        ));
    }
    let Some(authority) = uri.authority().cloned() else {
        return Err(format!("{s:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("{s:?}: credentials in the URL are not supported"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "{s:?}: give only scheme, host and port; the request path is forwarded as is"
        ));
    }
    Ok(Upstream::Http { authority, http2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:9443"
cert = "server.pem"
key = "server.key"
client_auth = "optional"
client_ca = ["ca.pem"]
upstream = "builtin:whoami"

[[roles]]
role = "admin"
ou = "Admins"

[[rules]]
path = "/admin/**"
require = "role:admin"

[[rules]]
path = "/**"
methods = ["GET"]
require = "anonymous"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(text, Path::new("/etc/gate/portcullis.toml"))
    }

    #[test]
    fn good_config() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.listen.port(), 9443);
        assert_eq!(c.cert, Path::new("/etc/gate/server.pem"));
        assert_eq!(c.client_auth, ClientAuth::Optional);
        assert_eq!(c.policy.rules().len(), 2);
        assert_eq!(c.upstream, Upstream::Whoami);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("ou = \"Admins\"", "ou = \"Admins\"\norganisation = \"x\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 12, "{e}");
        assert!(
            e.to_string().starts_with("/etc/gate/portcullis.toml:12"),
            "{e}"
        );
        assert!(e.message.contains("organisation"), "{e}");
    }

    #[test]
    fn unknown_role_in_rule_is_located() {
        let text = GOOD.replace("role:admin", "role:admn");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("rules[0]"));
        assert_eq!(e.line, 15, "the line of `require`: {e}");
        assert!(
            e.message.contains("admn") && e.message.contains("roles defined: admin"),
            "{e}"
        );
    }

    #[test]
    fn other_errors() {
        let e = parse(&GOOD.replace("127.0.0.1:9443", "localhost")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("listen"));
        assert_eq!(e.line, 2);
        let e = parse(&GOOD.replace("builtin:whoami", "https://app")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("upstream"));
        let e = parse(&GOOD.replace("client_ca = [\"ca.pem\"]\n", "")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("client_ca"));
        let e = parse(&GOOD.replace("\"optional\"", "\"maybe\"")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        let e = parse(&GOOD.replace("path = \"/admin/**\"", "path = \"/admin/**/x\"")).unwrap_err();
        assert!(e.message.contains("**"), "{e}");
        let e = parse(&GOOD.replace(
            "require = \"anonymous\"",
            "require = \"anonymous\"\nany_of = [\"authenticated\"]",
        ))
        .unwrap_err();
        assert!(e.message.contains("exactly one"), "{e}");
    }
}

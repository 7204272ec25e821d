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
//!
//! The main file holds the listener's settings ([`ListenerConfig`]) and the default
//! virtual host ([`SiteConfig`]); each file listed in `hosts` holds one more virtual host in
//! the same format, and listener settings there are an error, however they are spelled
//! (`limits.max_connections = 1` included).

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use portcullis_policy::{Condition, Policy, Requirement, Scope, When};
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
    /// Headers that make an application re-method or re-route a request after the gate
    /// decided (Express's method-override, Symfony's `X-Original-URL`…): stripped from
    /// every request. Set to `[]` to let them through.
    pub overrides: Vec<String>,
    /// Keep inbound headers whose names contain `_`. Off by default, like nginx's
    /// `underscores_in_headers`: CGI, WSGI, PHP and Rack read `X_Client_CN` as
    /// `X-Client-CN`. Names the gate protects are removed in every spelling either way.
    pub allow_underscores: bool,
}

/// The override headers stripped by default.
pub const OVERRIDE_HEADERS: [&str; 5] = [
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "X-Original-URL",
    "X-Rewrite-URL",
];

impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            cert: "Client-Cert".into(),
            chain: "Client-Cert-Chain".into(),
            prefix: "X-Client-".into(),
            strip: Vec::new(),
            overrides: OVERRIDE_HEADERS.map(String::from).to_vec(),
            allow_underscores: false,
        }
    }
}

/// The most `limits.session_tickets` may ask for.
pub const MAX_SESSION_TICKETS: usize = 8;

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
    /// TLS 1.3 session tickets sent after each handshake, at most
    /// [`MAX_SESSION_TICKETS`]; 0 turns session resumption off (TLS 1.2 included).
    pub session_tickets: usize,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 and h2).
    pub idle_timeout_secs: u64,
    /// A connection that has a response to deliver but makes no progress for this long
    /// (the client stopped reading, or keeps an HTTP/2 window at zero) is closed.
    pub write_timeout_secs: u64,
    /// Connections are asked to close (after the request in flight) at this age; 0: never.
    pub max_connection_age_secs: u64,
    /// Open connections allowed from one client address; 0: no limit.
    pub max_connections_per_client: usize,
    /// HTTP/2 streams one connection may have open at once.
    pub h2_max_concurrent_streams: u32,
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
            session_tickets: 1,
            idle_timeout_secs: 60,
            write_timeout_secs: 30,
            max_connection_age_secs: 3600,
            max_connections_per_client: 0,
            h2_max_concurrent_streams: 100,
        }
    }
}

/// A validated configuration: the main file and its host files. Files it names
/// (certificates, keys, CAs, CRLs) are read by [`crate::Gate::load`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file, or a description for built-in configs.
    pub source: PathBuf,
    /// First 12 hex digits of the SHA-256 of the main file and its host files, to tell
    /// configurations apart.
    pub version: String,
    pub listener: ListenerConfig,
    /// The default virtual host: the one the main file describes.
    pub site: SiteConfig,
    /// Further virtual hosts, one per file of `hosts`, chosen by SNI among their
    /// `server_names`.
    pub hosts: Vec<SiteConfig>,
}

/// Settings of the listener, shared by every virtual host: only in the main file.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub listen: SocketAddr,
    /// Loopback address of the admin listener (`/metrics`, `/healthz`, `/readyz`); off when unset.
    pub admin: Option<SocketAddr>,
    pub redirect_http: Option<SocketAddr>,
    pub access_log: crate::log::Format,
    pub limits: Limits,
    /// Session-ticket keys shared by replicas (see `tls::SharedKeyTicketer`).
    pub ticket_keys: Option<PathBuf>,
    /// Reload when the configuration or a file it names changes.
    pub watch_files: bool,
    /// On reload, close open connections whose certificate is no longer accepted.
    pub close_revoked_connections: bool,
    pub no_sni: NoSni,
}

/// One virtual host: its certificate, client authentication, policy, pages and upstream.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The file this host was read from.
    pub source: PathBuf,
    /// Host names this site answers (lower case). For host files, the SNI names that choose
    /// it; empty in the main file means the certificate's DNS and IP names.
    pub server_names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub key_passphrase_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub invalid_cert: InvalidCert,
    pub client_ca: Vec<PathBuf>,
    pub crl: Vec<PathBuf>,
    /// Accept clients while a CRL is past its nextUpdate (off by default: fail closed).
    pub allow_expired_crl: bool,
    /// Intermediate CAs in `client_ca` are trust anchors themselves: accept what they
    /// issued without trusting their root (off by default: they only complete paths).
    pub trust_intermediates: bool,
    pub upstream: Upstream,
    pub pages_dir: Option<PathBuf>,
    pub headers: HeaderNames,
    pub policy: Policy,
    /// Rule descriptions for logs and `portcullis check`, in order.
    pub rule_names: Vec<String>,
    /// Roles files read into [`SiteConfig::policy`], watched like every other file.
    pub role_files: Vec<PathBuf>,
    /// Online enrolment (`[enroll]`), if configured.
    pub enroll: Option<EnrollConfig>,
    /// Where each file was named in [`SiteConfig::source`].
    pub(crate) origins: Vec<Origin>,
}

/// `[enroll]`: certificates issued by the gate for one-time tokens and renewals.
#[derive(Debug, Clone)]
pub struct EnrollConfig {
    /// Canonical path of the endpoints' base, without a trailing slash (`/enroll`).
    pub path: String,
    /// The CA directory (`portcullis pki --dir`) whose issuing key signs.
    pub ca: PathBuf,
    pub ca_passphrase_file: Option<PathBuf>,
    /// Token and renewal attempts allowed per client address per minute.
    pub attempts_per_minute: u32,
    /// The role whose holders may make enrolment links on the gate (`PATH/admin`).
    pub admin_role: Option<String>,
    /// The page's fallback for browsers without WebCrypto: the gate makes the key and
    /// hands the bundle over once (`PATH/bundle`). Off unless set.
    pub server_keys: bool,
}

/// A file-valued key: the path it resolved to, and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub path: PathBuf,
    pub line: usize,
    pub key: &'static str,
}

// === raw TOML ===

/// A file as written. Listener keys are optional and keep their position, so a host file
/// that sets one is refused at the right line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    // Listener: main file only.
    listen: Option<Spanned<String>>,
    admin: Option<Spanned<String>>,
    redirect_http: Option<Spanned<String>>,
    access_log: Option<Spanned<crate::log::Format>>,
    limits: Option<Spanned<Limits>>,
    ticket_keys: Option<Spanned<PathBuf>>,
    watch_files: Option<Spanned<bool>>,
    close_revoked_connections: Option<Spanned<bool>>,
    hosts: Option<Spanned<Vec<Spanned<PathBuf>>>>,
    no_sni: Option<Spanned<NoSni>>,
    // Site.
    cert: Spanned<PathBuf>,
    key: Spanned<PathBuf>,
    key_passphrase_file: Option<PathBuf>,
    #[serde(default)]
    server_names: Vec<String>,
    client_auth: ClientAuth,
    #[serde(default)]
    invalid_cert: InvalidCert,
    #[serde(default)]
    client_ca: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    crl: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    allow_expired_crl: bool,
    #[serde(default)]
    trust_intermediates: bool,
    upstream: Spanned<String>,
    #[serde(default)]
    upstream_http2: bool,
    pages_dir: Option<Spanned<PathBuf>>,
    #[serde(default)]
    headers: HeaderNames,
    #[serde(default)]
    roles: Vec<Spanned<RawRole>>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
    enroll: Option<Spanned<RawEnroll>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnroll {
    #[serde(default = "default_enroll_path")]
    path: String,
    ca: PathBuf,
    ca_passphrase_file: Option<PathBuf>,
    #[serde(default = "default_enroll_attempts")]
    attempts_per_minute: u32,
    admin_role: Option<String>,
    #[serde(default)]
    server_keys: bool,
}

fn default_enroll_path() -> String {
    "/enroll".into()
}

fn default_enroll_attempts() -> u32 {
    10
}

impl Raw {
    /// The first listener key this file sets, with its position.
    fn listener_key(&self) -> Option<(&'static str, Range<usize>)> {
        [
            ("listen", self.listen.as_ref().map(Spanned::span)),
            ("admin", self.admin.as_ref().map(Spanned::span)),
            (
                "redirect_http",
                self.redirect_http.as_ref().map(Spanned::span),
            ),
            ("access_log", self.access_log.as_ref().map(Spanned::span)),
            ("limits", self.limits.as_ref().map(Spanned::span)),
            ("ticket_keys", self.ticket_keys.as_ref().map(Spanned::span)),
            ("watch_files", self.watch_files.as_ref().map(Spanned::span)),
            (
                "close_revoked_connections",
                self.close_revoked_connections.as_ref().map(Spanned::span),
            ),
            ("hosts", self.hosts.as_ref().map(Spanned::span)),
            ("no_sni", self.no_sni.as_ref().map(Spanned::span)),
        ]
        .into_iter()
        .find_map(|(k, span)| Some((k, span?)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    role: Option<String>,
    /// A roles file (TOML or JSON): `role = ["cn:alice", "email:…"]`, instead of `role`
    /// and conditions.
    file: Option<Spanned<PathBuf>>,
    cn: Option<Vec<String>>,
    ou: Option<String>,
    o: Option<String>,
    email: Option<String>,
    uri_prefix: Option<String>,
    dns: Option<String>,
    fingerprint: Option<String>,
    /// A CEL condition on `cert` and `now`.
    when: Option<Spanned<String>>,
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
    /// A CEL condition the request must also meet.
    when: Option<Spanned<String>>,
}

/// Default listening address: loopback, so a first run exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// Locates errors in one file.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, span: Option<Range<usize>>, key: Option<String>, message: String) -> ConfigError {
        ConfigError {
            file: self.path.to_owned(),
            line: span.map_or(0, |s| line_of(self.text, s.start)),
            key,
            message,
        }
    }

    fn parse(&self) -> Result<Raw, ConfigError> {
        toml::from_str(self.text).map_err(|e| {
            let msg = e.message().trim().to_owned();
            self.at(e.span(), None, msg)
        })
    }

    /// A path from the file, relative to the file's directory.
    fn rel(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.path.parent().unwrap_or(Path::new("")).join(p)
        }
    }
}

impl Config {
    /// Reads and validates a config file, and the host files it lists.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&read_text(path)?, path, read_text)
    }

    /// Validates config text; `path` locates errors and relative paths, and `read` reads
    /// the host files it lists.
    pub fn parse(
        text: &str,
        path: &Path,
        read: impl Fn(&Path) -> Result<String, ConfigError>,
    ) -> Result<Config, ConfigError> {
        let main = Locator { path, text };
        let raw = main.parse()?;
        let listener = listener(&main, &raw)?;
        let host_files: Vec<(PathBuf, Range<usize>)> = raw
            .hosts
            .as_ref()
            .map(|h| {
                h.get_ref()
                    .iter()
                    .map(|p| (main.rel(p.get_ref()), p.span()))
                    .collect()
            })
            .unwrap_or_default();
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        digest.update(text.as_bytes());
        let site = site_config(&main, raw, &read, &mut digest)?;
        let mut seen: Vec<String> = site.server_names.clone();
        let mut hosts = Vec::new();
        for (i, (host_path, span)) in host_files.into_iter().enumerate() {
            let host_text = read(&host_path)
                .map_err(|e| main.at(Some(span), Some(format!("hosts[{i}]")), e.message))?;
            digest.update(host_text.as_bytes());
            let file = Locator {
                path: &host_path,
                text: &host_text,
            };
            let raw = file.parse()?;
            // Listener settings live in the main file only; say so instead of ignoring them.
            if let Some((key, span)) = raw.listener_key() {
                return Err(file.at(
                    Some(span),
                    Some(key.to_owned()),
                    format!(
                        "{key} belongs in the main file ({}), not in a host file",
                        path.display()
                    ),
                ));
            }
            let host = site_config(&file, raw, &read, &mut digest)?;
            if host.server_names.is_empty() {
                return Err(file.at(
                    None,
                    Some("server_names".into()),
                    "a host file needs server_names: the SNI names this host answers".into(),
                ));
            }
            if let Some(dup) = host.server_names.iter().find(|n| seen.contains(n)) {
                return Err(file.at(
                    None,
                    Some("server_names".into()),
                    format!("{dup:?} is already served by another host"),
                ));
            }
            seen.extend(host.server_names.iter().cloned());
            hosts.push(host);
        }
        Ok(Config {
            source: path.to_owned(),
            version: digest.finish().as_ref()[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            listener,
            site,
            hosts,
        })
    }

    /// Every site: the default one first, then the hosts.
    pub fn sites(&self) -> impl Iterator<Item = &SiteConfig> {
        std::iter::once(&self.site).chain(&self.hosts)
    }
}

fn address(
    file: &Locator<'_>,
    value: &Spanned<String>,
    key: &str,
    example: &str,
) -> Result<SocketAddr, ConfigError> {
    value.get_ref().parse().map_err(|_| {
        file.at(
            Some(value.span()),
            Some(key.into()),
            format!("{:?} is not an address like {example}", value.get_ref()),
        )
    })
}

fn listener(file: &Locator<'_>, raw: &Raw) -> Result<ListenerConfig, ConfigError> {
    let listen = match &raw.listen {
        Some(l) => address(file, l, "listen", "127.0.0.1:8443 or [::1]:8443")?,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|_| file.at(None, None, "bad default".into()))?,
    };
    let redirect_http = match &raw.redirect_http {
        Some(l) => Some(address(file, l, "redirect_http", "127.0.0.1:8080")?),
        None => None,
    };
    let admin = match &raw.admin {
        Some(a) => {
            let addr = address(file, a, "admin", "127.0.0.1:9901")?;
            // Metrics name clients and certificates: keep them off the network.
            if !addr.ip().is_loopback() {
                return Err(file.at(
                    Some(a.span()),
                    Some("admin".into()),
                    "the admin listener must be on a loopback address (127.0.0.1 or [::1])".into(),
                ));
            }
            Some(addr)
        }
        None => None,
    };
    let limits = raw
        .limits
        .as_ref()
        .map(|l| *l.get_ref())
        .unwrap_or_default();
    for (key, value) in [
        ("limits.idle_timeout_secs", limits.idle_timeout_secs),
        ("limits.write_timeout_secs", limits.write_timeout_secs),
        (
            "limits.handshake_timeout_secs",
            limits.handshake_timeout_secs,
        ),
        ("limits.header_timeout_secs", limits.header_timeout_secs),
    ] {
        if value == 0 {
            return Err(file.at(
                raw.limits.as_ref().map(Spanned::span),
                Some(key.into()),
                "must be at least 1 second".into(),
            ));
        }
    }
    if limits.session_tickets > MAX_SESSION_TICKETS {
        return Err(file.at(
            raw.limits.as_ref().map(Spanned::span),
            Some("limits.session_tickets".into()),
            format!(
                "at most {MAX_SESSION_TICKETS}: each ticket is sealed with the client's chain in it, on every handshake"
            ),
        ));
    }
    Ok(ListenerConfig {
        listen,
        admin,
        redirect_http,
        access_log: raw
            .access_log
            .as_ref()
            .map(|a| *a.get_ref())
            .unwrap_or_default(),
        limits,
        ticket_keys: raw.ticket_keys.as_ref().map(|t| file.rel(t.get_ref())),
        watch_files: raw.watch_files.as_ref().is_none_or(|w| *w.get_ref()),
        close_revoked_connections: raw
            .close_revoked_connections
            .as_ref()
            .is_none_or(|c| *c.get_ref()),
        no_sni: raw
            .no_sni
            .as_ref()
            .map(|n| *n.get_ref())
            .unwrap_or_default(),
    })
}

fn header_name(file: &Locator<'_>, key: &str, v: &str) -> Result<(), ConfigError> {
    http::HeaderName::from_bytes(v.as_bytes())
        .map(drop)
        .map_err(|_| {
            file.at(
                None,
                Some(key.into()),
                format!("{v:?} is not a header name"),
            )
        })
}

fn site_config(
    file: &Locator<'_>,
    raw: Raw,
    read: &dyn Fn(&Path) -> Result<String, ConfigError>,
    digest: &mut aws_lc_rs::digest::Context,
) -> Result<SiteConfig, ConfigError> {
    if raw.client_auth != ClientAuth::Off && raw.client_ca.is_empty() {
        return Err(file.at(
            None,
            Some("client_ca".into()),
            "client_auth needs the CA certificates that issue client certificates, e.g. client_ca = [\"pki/root.crt\"]".into(),
        ));
    }
    if raw.invalid_cert == InvalidCert::Anonymous && raw.client_auth != ClientAuth::Optional {
        return Err(file.at(
            None,
            Some("invalid_cert".into()),
            "\"anonymous\" only makes sense with client_auth = \"optional\"".into(),
        ));
    }
    let upstream = parse_upstream(raw.upstream.get_ref(), raw.upstream_http2)
        .map_err(|m| file.at(Some(raw.upstream.span()), Some("upstream".into()), m))?;
    header_name(file, "headers.cert", &raw.headers.cert)?;
    header_name(file, "headers.chain", &raw.headers.chain)?;
    if raw.headers.prefix.is_empty()
        || http::HeaderName::from_bytes(format!("{}verify", raw.headers.prefix).as_bytes()).is_err()
    {
        return Err(file.at(
            None,
            Some("headers.prefix".into()),
            "must be a non-empty header name prefix".into(),
        ));
    }
    for h in &raw.headers.strip {
        header_name(file, "headers.strip", h)?;
    }
    for h in &raw.headers.overrides {
        header_name(file, "headers.overrides", h)?;
    }

    let mut policy = Policy::new();
    let mut role_files = Vec::new();
    for (i, r) in raw.roles.iter().enumerate() {
        let key = Some(format!("roles[{i}]"));
        let span = Some(r.span());
        let r = r.get_ref();
        if let Some(path) = &r.file {
            let more = r.role.is_some()
                || r.cn.is_some()
                || [&r.ou, &r.o, &r.email, &r.uri_prefix, &r.dns, &r.fingerprint]
                    .iter()
                    .any(|c| c.is_some());
            if more {
                return Err(file.at(
                    span,
                    key,
                    "a roles file names its roles and clients itself: give `file` alone, or `role` with conditions".into(),
                ));
            }
            let resolved = file.rel(path.get_ref());
            let text =
                read(&resolved).map_err(|e| file.at(Some(path.span()), key.clone(), e.message))?;
            digest.update(text.as_bytes());
            roles_file(&resolved, &text, &mut policy)?;
            role_files.push(resolved);
            continue;
        }
        let Some(role) = &r.role else {
            return Err(file.at(
                span,
                key,
                "give `role` and its conditions, or a roles `file`".into(),
            ));
        };
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
        if let Some(w) = &r.when {
            let compiled = When::compile(w.get_ref(), Scope::Role, &[])
                .map_err(|e| file.at(Some(w.span()), key.clone(), format!("when: {e}")))?;
            when.push(Condition::When(compiled));
        }
        let hint = if when.is_empty() {
            " (add cn, ou, o, email, uri_prefix, dns, fingerprint or when)"
        } else {
            ""
        };
        policy
            .add_role(role, when)
            .map_err(|e| file.at(span.clone(), key.clone(), format!("{e}{hint}")))?;
    }
    let mut rule_names = Vec::new();
    let mut rule_spans = Vec::new();
    for (i, r) in raw.rules.iter().enumerate() {
        rule_spans.push(r.span());
        let key = Some(format!("rules[{i}]"));
        let span = Some(r.span());
        let r = r.get_ref();
        let err = |m: String| file.at(span.clone(), key.clone(), m);
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
                file.at(
                    req_span.clone(),
                    key.clone(),
                    format!(
                        "{e} (roles defined: {})",
                        if known.is_empty() { "none" } else { &known }
                    ),
                )
            })
        };
        let (require, described) = if let Some(s) = &r.require {
            (one(s.get_ref())?, s.get_ref().clone())
        } else if let Some(list) = &r.any_of {
            let all = list
                .get_ref()
                .iter()
                .map(|s| one(s))
                .collect::<Result<_, _>>()?;
            (
                Requirement::AnyOf(all),
                format!("any_of {}", list.get_ref().join("|")),
            )
        } else if let Some(list) = &r.all_of {
            let all = list
                .get_ref()
                .iter()
                .map(|s| one(s))
                .collect::<Result<_, _>>()?;
            (
                Requirement::AllOf(all),
                format!("all_of {}", list.get_ref().join("+")),
            )
        } else {
            return Err(err("missing require".into()));
        };
        let methods = if r.methods.is_empty() {
            String::new()
        } else {
            format!("{} ", r.methods.join(","))
        };
        let when = match &r.when {
            Some(w) => Some(
                When::compile(w.get_ref(), Scope::Rule, policy.role_names())
                    .map_err(|e| file.at(Some(w.span()), key.clone(), format!("when: {e}")))?,
            ),
            None => None,
        };
        let condition = when
            .as_ref()
            // One line in listings and logs, however the expression was written.
            .map(|w| {
                format!(
                    " when {}",
                    w.source().split_whitespace().collect::<Vec<_>>().join(" ")
                )
            })
            .unwrap_or_default();
        policy
            .add_rule_when(&r.path, &r.methods, r.host.as_deref(), require, when)
            .map_err(|e| err(e.to_string()))?;
        // The host too: two rules for one path on different hosts must read differently.
        let host = r
            .host
            .as_ref()
            .map(|h| format!(" host {}", h.to_ascii_lowercase()))
            .unwrap_or_default();
        rule_names.push(format!(
            "#{i} {methods}{}{host} {described}{condition}",
            r.path
        ));
    }
    if raw.rules.is_empty() {
        return Err(file.at(
            None,
            Some("rules".into()),
            "no [[rules]]: every request would be denied; add at least one rule".into(),
        ));
    }
    if let Some((dead, by)) = policy.shadowed() {
        let path = |i: usize| raw.rules[i].get_ref().path.clone();
        return Err(file.at(
            rule_spans.get(dead).cloned(),
            Some(format!("rules[{dead}]")),
            format!(
                "can never match: rules[{by}] (path {:?}) comes first and matches every request this rule ({:?}) would; rules are tried in order, so put the narrower rule first",
                path(by),
                path(dead)
            ),
        ));
    }

    let enroll = match &raw.enroll {
        None => None,
        Some(e) => {
            let span = Some(e.span());
            let e = e.get_ref();
            let canonical = portcullis_policy::path::canonicalize(&e.path)
                .ok()
                .is_some_and(|p| p.as_str() == e.path);
            if !canonical || e.path == "/" || e.path.ends_with('/') || e.path.contains('*') {
                return Err(file.at(
                    span,
                    Some("enroll.path".into()),
                    format!(
                        "{:?} is not a path for the enrolment endpoints: write a canonical path such as \"/enroll\" (no trailing slash, no pattern)",
                        e.path
                    ),
                ));
            }
            if e.attempts_per_minute == 0 {
                return Err(file.at(
                    span,
                    Some("enroll.attempts_per_minute".into()),
                    "must be at least 1".into(),
                ));
            }
            if let Some(role) = &e.admin_role
                && !policy.role_names().iter().any(|r| r == role)
            {
                let known = policy.role_names().join(", ");
                return Err(file.at(
                    span,
                    Some("enroll.admin_role".into()),
                    format!(
                        "no role {role:?} is defined (roles defined: {})",
                        if known.is_empty() { "none" } else { &known }
                    ),
                ));
            }
            Some(EnrollConfig {
                admin_role: e.admin_role.clone(),
                server_keys: e.server_keys,
                path: e.path.clone(),
                ca: file.rel(&e.ca),
                ca_passphrase_file: e.ca_passphrase_file.as_deref().map(|p| file.rel(p)),
                attempts_per_minute: e.attempts_per_minute,
            })
        }
    };

    // Where each file was named, so that an error about the file can say so.
    let mut origins = Vec::new();
    let mut named = |key: &'static str, p: &Spanned<PathBuf>| {
        origins.push(Origin {
            path: file.rel(p.get_ref()),
            line: line_of(file.text, p.span().start),
            key,
        });
    };
    named("cert", &raw.cert);
    named("key", &raw.key);
    raw.client_ca.iter().for_each(|p| named("client_ca", p));
    raw.crl.iter().for_each(|p| named("crl", p));
    raw.pages_dir.iter().for_each(|p| named("pages_dir", p));
    Ok(SiteConfig {
        source: file.path.to_owned(),
        origins,
        cert: file.rel(raw.cert.get_ref()),
        key: file.rel(raw.key.get_ref()),
        key_passphrase_file: raw.key_passphrase_file.as_deref().map(|p| file.rel(p)),
        server_names: raw
            .server_names
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        client_auth: raw.client_auth,
        invalid_cert: raw.invalid_cert,
        client_ca: raw
            .client_ca
            .iter()
            .map(|p| file.rel(p.get_ref()))
            .collect(),
        crl: raw.crl.iter().map(|p| file.rel(p.get_ref())).collect(),
        allow_expired_crl: raw.allow_expired_crl,
        trust_intermediates: raw.trust_intermediates,
        upstream,
        pages_dir: raw.pages_dir.as_ref().map(|p| file.rel(p.get_ref())),
        headers: raw.headers,
        policy,
        rule_names,
        role_files,
        enroll,
    })
}

/// Reads a roles file into `policy`: TOML or (for a `.json` file) JSON, mapping each role
/// to the clients that hold it, as `KIND:VALUE` (`cn:alice`, `email:…`, `uri:…`,
/// `fingerprint:…`, `serial:…`). A principal listed twice for a role, or of an unknown
/// kind, is an error at its line.
fn roles_file(path: &Path, text: &str, policy: &mut Policy) -> Result<(), ConfigError> {
    let at = |offset: Option<usize>, key: String, message: String| ConfigError {
        file: path.to_owned(),
        line: offset.map_or(0, |o| line_of(text, o)),
        key: Some(key),
        message,
    };
    // Each role, with its principals as written and the offset where each is written.
    type Located = Vec<(String, Option<usize>)>;
    let mut entries: Vec<(String, Located)> = Vec::new();
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        let map: std::collections::BTreeMap<String, Vec<String>> = serde_json::from_str(text)
            .map_err(|e| ConfigError {
                file: path.to_owned(),
                line: e.line(),
                key: None,
                message: format!("{e} (expected {{\"ROLE\": [\"cn:NAME\", …]}})"),
            })?;
        // JSON parsers keep no positions: find each value's n-th spelling in the text.
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for (role, list) in map {
            let located = list
                .into_iter()
                .map(|v| {
                    let quoted = serde_json::to_string(&v).unwrap_or_default();
                    let n = seen.entry(quoted.clone()).or_default();
                    let offset = text.match_indices(&quoted).nth(*n).map(|(o, _)| o);
                    *n += 1;
                    (v, offset)
                })
                .collect();
            entries.push((role, located));
        }
    } else {
        let map: std::collections::BTreeMap<String, Vec<Spanned<String>>> = toml::from_str(text)
            .map_err(|e| ConfigError {
                file: path.to_owned(),
                line: e.span().map_or(0, |s| line_of(text, s.start)),
                key: None,
                message: format!("{} (expected ROLE = [\"cn:NAME\", …])", e.message().trim()),
            })?;
        for (role, list) in map {
            let located = list
                .into_iter()
                .map(|v| {
                    let start = v.span().start;
                    (v.into_inner(), Some(start))
                })
                .collect();
            entries.push((role, located));
        }
    }
    for (role, list) in entries {
        for (i, (written, offset)) in list.into_iter().enumerate() {
            let key = format!("{role}[{i}]");
            let who = portcullis_policy::Principal::parse(&written)
                .map_err(|m| at(offset, key.clone(), m))?;
            let new = policy
                .add_principal(&role, who)
                .map_err(|e| at(offset, key.clone(), e.to_string()))?;
            if !new {
                return Err(at(
                    offset,
                    key,
                    format!("{written:?} is listed twice for role {role:?}"),
                ));
            }
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: 0,
        key: None,
        message: format!("cannot read: {e}"),
    })
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

    /// Writes `text` as `portcullis.toml` (and `files` beside it) and reads it back.
    fn parse_with(
        text: &str,
        files: &[(&str, &str)],
    ) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let path = dir.path().join("portcullis.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::from_file(&path);
        (dir, config)
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_with(text, &[]).1
    }

    #[test]
    fn good_config() {
        let (dir, c) = parse_with(GOOD, &[]);
        let c = c.unwrap();
        assert_eq!(c.listener.listen.port(), 9443);
        assert_eq!(c.site.cert, dir.path().join("server.pem"));
        assert_eq!(c.site.client_auth, ClientAuth::Optional);
        assert_eq!(c.site.policy.rules().len(), 2);
        assert_eq!(c.site.upstream, Upstream::Whoami);
        assert_eq!(c.site.headers.overrides.len(), 5);
        assert!(!c.site.headers.allow_underscores);
    }

    #[test]
    fn listener_keys_in_a_host_file_are_refused_however_spelled() {
        let main = format!("hosts = [\"api.toml\"]\n{GOOD}");
        // Top-level keys go first; a table goes last, after the [[rules]].
        let host = |extra: &str| {
            let site = GOOD.replace("listen = \"127.0.0.1:9443\"\n", "");
            match extra.strip_prefix('[') {
                Some(_) => format!("server_names = [\"api.example\"]\n{site}\n{extra}\n"),
                None => format!("server_names = [\"api.example\"]\n{extra}\n{site}"),
            }
        };
        for (extra, key) in [
            ("limits.max_connections = 1", "limits"),
            ("[limits]\nmax_connections = 1", "limits"),
            ("no_sni = \"reject\"", "no_sni"),
            ("access_log = \"json\"", "access_log"),
            ("listen = \"127.0.0.1:1\"", "listen"),
        ] {
            let body = host(extra);
            let e = parse_with(&main, &[("api.toml", &body)]).1.unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{extra}: {e}");
            assert!(e.file.ends_with("api.toml") && e.line > 0, "{extra}: {e}");
            assert!(e.message.contains("main file"), "{e}");
        }
        // The same host without listener keys loads.
        let c = parse_with(&main, &[("api.toml", &host(""))]).1.unwrap();
        assert_eq!(c.hosts[0].server_names, ["api.example"]);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("ou = \"Admins\"", "ou = \"Admins\"\norganisation = \"x\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 12, "{e}");
        assert!(e.to_string().contains("portcullis.toml:12"), "{e}");
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
    fn a_rule_no_request_can_reach_is_an_error_at_its_line() {
        // The broad rule first: /admin would be open to every GET.
        let swapped = GOOD.replace(
            "path = \"/admin/**\"\nrequire = \"role:admin\"\n\n[[rules]]\npath = \"/**\"\nmethods = [\"GET\"]\nrequire = \"anonymous\"",
            "path = \"/**\"\nrequire = \"anonymous\"\n\n[[rules]]\npath = \"/admin/**\"\nrequire = \"role:admin\"",
        );
        assert_ne!(swapped, GOOD);
        let e = parse(&swapped).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("rules[1]"), "{e}");
        assert_eq!(e.line, 17, "{e}");
        assert!(
            e.message.contains("rules[0]") && e.message.contains("\"/**\""),
            "{e}"
        );
        // A broad rule for some methods leaves the others to later rules.
        let narrower = swapped.replace(
            "path = \"/**\"\nrequire",
            "path = \"/**\"\nmethods = [\"GET\"]\nrequire",
        );
        assert!(parse(&narrower).is_ok());
        // The order GOOD uses is fine.
        assert!(parse(GOOD).is_ok());
    }

    #[test]
    fn other_errors() {
        let e = parse(&GOOD.replace("127.0.0.1:9443", "localhost")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("listen"));
        assert_eq!(e.line, 2);
        let e = parse(&format!("{GOOD}\n[headers]\noverrides = [\"bad name\"]")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("headers.overrides"));
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

#[cfg(test)]
mod rule_name_tests {
    use super::*;

    /// `check`, `policy test` and the access log name rules by these: a rule for one host
    /// must not read like the same rule for every host.
    #[test]
    fn a_rule_for_one_host_names_its_host() {
        let text = r#"
cert = "server.pem"
key = "server.key"
client_auth = "off"
upstream = "builtin:whoami"

[[rules]]
path = "/**"
host = "Admin.Example.com"
require = "deny"

[[rules]]
path = "/**"
methods = ["GET"]
require = "anonymous"
"#;
        let config = Config::parse(text, Path::new("gate.toml"), |_| unreachable!()).unwrap();
        assert_eq!(
            config.site.rule_names,
            ["#0 /** host admin.example.com deny", "#1 GET /** anonymous"]
        );
    }
}

#[cfg(test)]
mod roles_file_tests {
    use super::*;
    use portcullis_policy::Identity;

    const MAIN: &str = r#"
cert = "server.pem"
key = "server.key"
client_auth = "optional"
client_ca = ["ca.pem"]
upstream = "builtin:whoami"

[[roles]]
role = "user"
ou = "Users"

[[roles]]
file = "people.toml"

[[rules]]
path = "/audit/**"
require = "role:auditor"
"#;

    fn load(name: &str, people: &str) -> Result<Config, ConfigError> {
        let main = MAIN.replace("people.toml", name);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), people).unwrap();
        let path = dir.path().join("portcullis.toml");
        std::fs::write(&path, main).unwrap();
        Config::from_file(&path)
    }

    fn roles(config: &Config, id: &Identity) -> Vec<String> {
        let p = &config.site.policy;
        p.role_list(p.roles_of(id, portcullis_policy::Timestamp::UNIX_EPOCH))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_roles_file_grants_roles_to_named_clients_in_toml_and_json() {
        let toml = "auditor = [\"cn:alice\", \"email:Carol@Example.com\"]\nadmin = [\"serial:00:0A:1B\", \"cn:alice\"]\n";
        let json = r#"{"auditor": ["cn:alice", "email:Carol@Example.com"], "admin": ["serial:00:0A:1B", "cn:alice"]}"#;
        for (name, text) in [("people.toml", toml), ("people.json", json)] {
            let config = load(name, text).unwrap();
            assert!(config.site.role_files[0].ends_with(name));
            let alice = Identity {
                common_name: Some("alice".into()),
                ..Default::default()
            };
            assert_eq!(roles(&config, &alice), ["admin", "auditor"], "{name}");
            // Email case-insensitively, serial without its leading zeros or colons.
            let carol = Identity {
                common_name: Some("carol".into()),
                email_sans: vec!["carol@example.COM".into()],
                serial: "A1B".into(),
                ..Default::default()
            };
            assert_eq!(roles(&config, &carol), ["admin", "auditor"], "{name}");
            let bob = Identity {
                common_name: Some("bob".into()),
                organizational_units: vec!["Users".into()],
                ..Default::default()
            };
            assert_eq!(roles(&config, &bob), ["user"], "{name}");
        }
    }

    #[test]
    fn duplicates_and_unknown_kinds_are_named_by_file_and_line() {
        let e = load(
            "people.toml",
            "auditor = [\n  \"cn:alice\",\n  \"cn:alice\",\n]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("people.toml:3: auditor[1]"), "{e}");
        assert!(e.to_string().contains("listed twice"), "{e}");
        let e = load(
            "people.toml",
            "auditor = [\"cn:alice\"]\nadmin = [\"phone:555\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("people.toml:2: admin[0]"), "{e}");
        assert!(e.to_string().contains("unknown kind \"phone\""), "{e}");
        let e = load(
            "people.json",
            "{\"auditor\": [\"cn:alice\",\n \"cn:alice\"]}",
        )
        .unwrap_err();
        assert!(e.to_string().contains("people.json:2: auditor[1]"), "{e}");
        let e = load("people.json", "{\"auditor\": \"cn:alice\"}").unwrap_err();
        assert!(e.to_string().contains("people.json:1"), "{e}");
        // A roles file with conditions beside it is a mistake, at the main file's line.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("people.toml"), "auditor = [\"cn:a\"]").unwrap();
        let path = dir.path().join("portcullis.toml");
        std::fs::write(
            &path,
            MAIN.replace(
                "file = \"people.toml\"",
                "file = \"people.toml\"\nou = \"x\"",
            ),
        )
        .unwrap();
        let e = Config::from_file(&path).unwrap_err();
        assert!(
            e.to_string().contains("roles[1]") && e.to_string().contains("alone"),
            "{e}"
        );
    }
}

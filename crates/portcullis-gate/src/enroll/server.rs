//! `[enroll]`: the gate issues certificates online, for one-time tokens and for renewals.
//!
//! Two endpoints under the configured path (default `/enroll`), answered by the gate
//! itself after the canonical-path, authority and header stages and before the rules: the
//! token, or the certificate being renewed, is the credential.
//!
//! * `GET /enroll` (with `/enroll/enroll.js` and `/enroll/enroll.css`) — the browser page:
//!   it makes the key with WebCrypto, sends a CSR with the token from the URL's fragment,
//!   and builds the PKCS#12 in the page. All three are embedded in the binary and served
//!   with a strict Content-Security-Policy: no inline script, nothing from elsewhere.
//! * `POST /enroll/csr` — `{"token": "…", "csr": "-----BEGIN CERTIFICATE REQUEST…"}`: a
//!   client certificate for the token's subject and the request's key.
//! * `POST /enroll/renew` — `{"csr": "…"}` over a connection with a valid client
//!   certificate this CA issued: the same subject and names for a new key.
//!
//! Both answer `{"serial", "common_name", "certificate", "chain", "not_granted"}` (PEM), or
//! `{"error": "…"}` with 400, 401, 403, 405, 413, 429 or 500. Attempts are limited per
//! client address, before any token is looked at. Issuing takes the CA directory's lock
//! and writes files, so it runs on a blocking thread; none of this is on the path of
//! ordinary requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use portcullis_pki::enroll::Enrolled;
use portcullis_pki::{Ca, Passphrase};
use serde::Deserialize;
use serde_json::json;

use crate::config::EnrollConfig;
use crate::conn::{Binding, Connection};
use crate::error::{Error, Result};
use crate::pages::{Page, respond};

/// Largest request body: a P-384 CSR in PEM is under 1 KiB.
const MAX_BODY: usize = 16 * 1024;
/// How long an issuance waits for another writer of the CA directory.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long the request body may take to arrive.
const BODY_TIME: Duration = Duration::from_secs(10);

/// Refuses what a web page could send. A browser attaches the user's client certificate
/// to any page's request, and a `text/plain` POST needs no CORS preflight: without this,
/// any site the user visits could renew their certificate for its own key (and a script
/// injected into a site behind the gate could read the answer). Programs send JSON and
/// no `Origin` or `Sec-Fetch-*`; browsers always send those on a cross-origin request
/// and on every `fetch`, and a custom content type forces a preflight the gate never
/// answers.
fn from_a_program(headers: &http::HeaderMap) -> std::result::Result<(), &'static str> {
    same_origin_json(headers)?;
    let from_a_page = headers.contains_key(http::header::ORIGIN)
        || headers.keys().any(|k| k.as_str().starts_with("sec-fetch-"));
    if from_a_page {
        return Err(
            "enrolment requests from web pages are refused; use `portcullis enroll` or `portcullis renew`",
        );
    }
    Ok(())
}

/// JSON (so a cross-origin page must ask a preflight the gate never grants), and if a
/// browser sent it, from this origin.
fn same_origin_json(headers: &http::HeaderMap) -> std::result::Result<(), &'static str> {
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err("send the request as Content-Type: application/json");
    }
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        None | Some(b"same-origin") => Ok(()),
        Some(_) => Err("enrolment requests from other sites are refused"),
    }
}

/// The browser page and what it loads, embedded so the gate needs no files to serve them.
const PAGE_HTML: &str = include_str!("page/enroll.html");
const PAGE_JS: &str = include_str!("page/enroll.js");
const PAGE_CSS: &str = include_str!("page/enroll.css");
const ADMIN_HTML: &str = include_str!("page/admin.html");
const ADMIN_JS: &str = include_str!("page/admin.js");

/// The page's policy: its own script, style and endpoints, and nothing else: no inline
/// script or style, no other origin, no form posts, no framing, no `<base>`.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The CA key, opened at load, and the endpoints.
pub(crate) struct Enroller {
    base: String,
    csr: String,
    renew: String,
    admin: String,
    admin_js: String,
    tokens: String,
    /// `[enroll] server_keys`: where the fallback posts, if allowed.
    bundle: Option<String>,
    /// The role that may make links from the gate (`[enroll] admin_role`).
    admin_role: Option<String>,
    admin_page: Bytes,
    script: String,
    style: String,
    /// The page, with the configured path written into it.
    page: Bytes,
    ca_dir: PathBuf,
    ca: Arc<Ca>,
    limiter: Limiter,
}

impl std::fmt::Debug for Enroller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enroller")
            .field("path", &self.base)
            .field("ca", &self.ca_dir)
            .finish_non_exhaustive()
    }
}

impl Enroller {
    /// Opens the CA of `[enroll]`. Its key passphrase comes from `ca_passphrase_file` or
    /// `PORTCULLIS_CA_PASSPHRASE`: a server cannot prompt, on start or on reload.
    pub(crate) fn open(config: &EnrollConfig) -> Result<Enroller> {
        let passphrase = match (
            &config.ca_passphrase_file,
            std::env::var("PORTCULLIS_CA_PASSPHRASE"),
        ) {
            (Some(file), _) => Some(Passphrase::from_file(file, "ca_passphrase_file")?),
            (None, Ok(v)) => Some(Passphrase::new(v, "PORTCULLIS_CA_PASSPHRASE")?),
            (None, Err(_)) => None,
        };
        let ca = Ca::open(&config.ca, passphrase.as_ref()).map_err(|e| match e {
            portcullis_pki::Error::PassphraseRequired { key, .. } => Error::Invalid {
                path: key,
                reason: "[enroll] needs this CA key, which is encrypted: set ca_passphrase_file in [enroll] or PORTCULLIS_CA_PASSPHRASE".into(),
            },
            other => Error::Pki(other),
        })?;
        Ok(Enroller {
            csr: format!("{}/csr", config.path),
            renew: format!("{}/renew", config.path),
            admin: format!("{}/admin", config.path),
            admin_js: format!("{}/admin.js", config.path),
            tokens: format!("{}/tokens", config.path),
            bundle: config
                .server_keys
                .then(|| format!("{}/bundle", config.path)),
            admin_role: config.admin_role.clone(),
            admin_page: Bytes::from(ADMIN_HTML.replace("{{BASE}}", &html_attr(&config.path))),
            script: format!("{}/enroll.js", config.path),
            style: format!("{}/enroll.css", config.path),
            page: Bytes::from(
                PAGE_HTML
                    .replace("{{BASE}}", &html_attr(&config.path))
                    .replace(
                        "{{SERVER_KEYS}}",
                        if config.server_keys { "yes" } else { "no" },
                    ),
            ),
            base: config.path.clone(),
            ca_dir: config.ca.clone(),
            ca: Arc::new(ca),
            limiter: Limiter::new(config.attempts_per_minute),
        })
    }

    /// Whether `path` (canonical) is one of the enrolment endpoints.
    pub(crate) fn owns(&self, path: &str) -> bool {
        let bundle = self.bundle.as_deref() == Some(path);
        let admin = self.admin_role.is_some()
            && [&self.admin, &self.admin_js, &self.tokens]
                .iter()
                .any(|p| p.as_str() == path);
        bundle
            || admin
            || [
                &self.base,
                &self.script,
                &self.style,
                &self.csr,
                &self.renew,
            ]
            .iter()
            .any(|p| p.as_str() == path)
    }

    pub(crate) fn ca_dir(&self) -> &Path {
        &self.ca_dir
    }

    /// Answers a request for one of the endpoints. `parts` carries the canonical path
    /// (stage 1 wrote it back): the endpoint is chosen on exactly what was checked.
    pub(crate) async fn handle(
        &self,
        conn: &Connection,
        binding: &Binding,
        parts: &Parts,
        body: Incoming,
    ) -> Page {
        let path = parts.uri.path();
        // The admin's page and script (the token endpoint is checked once its body is in).
        if path == self.admin || path == self.admin_js {
            if let Some(refused) = self.unless_admin(conn, binding) {
                return refused;
            }
            if path == self.admin {
                return page(
                    &parts.method,
                    "text/html; charset=utf-8",
                    self.admin_page.clone(),
                );
            }
            if path == self.admin_js {
                return page(
                    &parts.method,
                    "text/javascript; charset=utf-8",
                    Bytes::from_static(ADMIN_JS.as_bytes()),
                );
            }
        }
        let asset = if path == self.base {
            Some(("text/html; charset=utf-8", self.page.clone()))
        } else if path == self.script {
            Some((
                "text/javascript; charset=utf-8",
                Bytes::from_static(PAGE_JS.as_bytes()),
            ))
        } else if path == self.style {
            Some((
                "text/css; charset=utf-8",
                Bytes::from_static(PAGE_CSS.as_bytes()),
            ))
        } else {
            None
        };
        if let Some((content_type, body)) = asset {
            return page(&parts.method, content_type, body);
        }
        if parts.method != Method::POST {
            let mut page = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
            page.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return page;
        }
        let client = conn.peer_addr.ip();
        let allowed = self.limiter.allow(client);
        // The body is read (bounded in size and time) whatever the answer: refusing a
        // stream before it ends makes HTTP/2 clients report a framing error instead.
        let bytes =
            match tokio::time::timeout(BODY_TIME, Limited::new(body, MAX_BODY).collect()).await {
                Ok(Ok(b)) => b.to_bytes(),
                Ok(Err(_)) => {
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("the request body is over {MAX_BODY} bytes or was cut off"),
                    );
                }
                Err(_) => {
                    return error(
                        StatusCode::REQUEST_TIMEOUT,
                        &format!(
                            "the request body did not arrive within {}s",
                            BODY_TIME.as_secs()
                        ),
                    );
                }
            };
        if !allowed {
            tracing::warn!(%client, path, "enroll: too many attempts from this address");
            let mut page = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many attempts; wait a minute",
            );
            page.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("60"),
            );
            return page;
        }
        // Renewing uses the certificate on the connection, which a browser would attach
        // to any page's request: programs only. A token request may come from the
        // enrolment page itself, never from another site.
        let checked = match path == self.renew {
            true => from_a_program(&parts.headers),
            false => same_origin_json(&parts.headers),
        };
        if let Err(why) = checked {
            tracing::warn!(%client, path, why, "enroll: refused a request from a web page");
            return error(StatusCode::FORBIDDEN, why);
        }
        if path == self.csr {
            self.redeem(client, bytes).await
        } else if self.bundle.as_deref() == Some(path) {
            self.bundle(client, bytes).await
        } else if path == self.tokens {
            match self.unless_admin(conn, binding) {
                None => self.make_token(conn, parts, bytes).await,
                Some(refused) => refused,
            }
        } else if path == self.renew {
            self.renew(conn, client, bytes).await
        } else {
            error(StatusCode::NOT_FOUND, "no such enrolment endpoint")
        }
    }

    /// The refusal for a caller without `admin_role` under the configuration in force
    /// (`None`: an admin): the page and the token endpoint are for operators, checked on
    /// every request.
    fn unless_admin(&self, conn: &Connection, binding: &Binding) -> Option<Page> {
        let Some(role) = &self.admin_role else {
            return Some(error(StatusCode::NOT_FOUND, "no such enrolment endpoint"));
        };
        let Some(roles) = binding.roles.filter(|_| conn.verified().is_some()) else {
            return Some(error(
                StatusCode::UNAUTHORIZED,
                "making enrolment links needs a client certificate with the admin role",
            ));
        };
        let policy = &binding.site.config().policy;
        if policy.role_list(roles).any(|r| r == role) {
            return None;
        }
        Some(error(
            StatusCode::FORBIDDEN,
            &format!("making enrolment links needs role {role}"),
        ))
    }

    async fn make_token(&self, conn: &Connection, parts: &Parts, body: Bytes) -> Page {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ask {
            name: String,
            email: Option<String>,
            #[serde(default)]
            ou: Vec<String>,
            ttl: String,
            validity: String,
        }
        let ask: Ask = match json_body(&body, r#"{"name", "ttl", "validity", …}"#) {
            Ok(a) => a,
            Err(why) => return error(StatusCode::BAD_REQUEST, &why),
        };
        let duration = |what: &str, s: &str| {
            portcullis_pki::renewal::parse_duration(s).map_err(|e| format!("{what}: {e}"))
        };
        let (ttl, validity) = match (
            duration("ttl", &ask.ttl),
            duration("validity", &ask.validity),
        ) {
            (Ok(t), Ok(v)) => (t, v),
            (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
        };
        let req = portcullis_pki::enroll::TokenRequest {
            common_name: ask.name,
            email: ask.email.filter(|e| !e.is_empty()),
            organizational_units: ask.ou,
            organization: None,
            ttl,
            validity,
        };
        let dir = self.ca_dir.clone();
        let done = tokio::task::spawn_blocking(move || {
            portcullis_pki::enroll::create_token(&dir, &req, LOCK_WAIT)
        })
        .await;
        let by = conn.verified().map_or("?", |v| v.label.as_str());
        let client = conn.peer_addr.ip();
        match done {
            Ok(Ok((token, secret))) => {
                tracing::info!(%client, by, id = %token.id, cn = %token.common_name, "enroll: token made on the gate");
                let host = parts
                    .uri
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .or_else(|| {
                        parts
                            .headers
                            .get(http::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                let body = json!({
                    "id": token.id,
                    "common_name": token.common_name,
                    "expires": token.expires,
                    "token": secret,
                    "link": format!("https://{host}{}#{secret}", self.base),
                });
                // `respond` marks it no-store: it holds the token.
                respond(StatusCode::OK, "application/json", body.to_string())
            }
            Ok(Err(e)) => pki_error(client, &e),
            Err(e) => task_failed(client, &e),
        }
    }

    /// The page's fallback (`server_keys`): the key is made here, put into a PKCS#12
    /// protected by the person's password, and sent once; it is written nowhere.
    async fn bundle(&self, client: IpAddr, body: Bytes) -> Page {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ask {
            token: String,
            password: String,
        }
        let ask: Ask = match json_body(&body, r#"{"token": …, "password": …}"#) {
            Ok(a) => a,
            Err(why) => return error(StatusCode::BAD_REQUEST, &why),
        };
        if ask.password.chars().count() < 8 {
            return error(
                StatusCode::BAD_REQUEST,
                "the password must have at least 8 characters",
            );
        }
        let ca = self.ca.clone();
        let by = client.to_string();
        let done = tokio::task::spawn_blocking(move || {
            if let Err(refusal) = portcullis_pki::enroll::check_token(&ca.layout().dir, &ask.token)?
            {
                return Ok(Err(refusal));
            }
            let password = Passphrase::new(ask.password, "the enrolment page")?;
            let mut writer = ca.writer_waiting(LOCK_WAIT)?;
            let (enrolled, key) = match writer.redeem_with_new_key(&ask.token, &by)? {
                Ok(done) => done,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let p12 = portcullis_pki::p12::bundle(
                &key,
                &enrolled.chain,
                &enrolled.common_name,
                &password,
                portcullis_pki::P12Format::Modern,
            )?;
            Ok::<_, portcullis_pki::Error>(Ok((enrolled, p12)))
        })
        .await;
        match done {
            Ok(Ok(Ok((enrolled, p12)))) => {
                tracing::info!(%client, serial = %enrolled.serial, cn = %enrolled.common_name, "enroll: token used, key made by the gate (fallback), bundle sent");
                let body = json!({
                    "serial": enrolled.serial,
                    "common_name": enrolled.common_name,
                    "p12": data_encoding::BASE64.encode(&p12),
                });
                // `respond` marks it no-store: it holds the key, in a bundle.
                respond(StatusCode::OK, "application/json", body.to_string())
            }
            Ok(Ok(Err(refusal))) => {
                tracing::warn!(%client, reason = %refusal, "enroll: token refused");
                error(StatusCode::FORBIDDEN, &refusal.to_string())
            }
            Ok(Err(e)) => pki_error(client, &e),
            Err(e) => task_failed(client, &e),
        }
    }

    async fn redeem(&self, client: IpAddr, body: Bytes) -> Page {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ask {
            token: String,
            csr: String,
        }
        let ask: Ask = match json_body(&body, r#"{"token": …, "csr": …}"#) {
            Ok(a) => a,
            Err(why) => return error(StatusCode::BAD_REQUEST, &why),
        };
        let ca = self.ca.clone();
        let by = client.to_string();
        let done = tokio::task::spawn_blocking(move || {
            // Only a token that might issue takes the directory's lock.
            if let Err(refusal) = portcullis_pki::enroll::check_token(&ca.layout().dir, &ask.token)?
            {
                return Ok(Err(refusal));
            }
            let mut writer = ca.writer_waiting(LOCK_WAIT)?;
            writer.redeem(&ask.token, ask.csr.as_bytes(), &by)
        })
        .await;
        match done {
            Ok(Ok(Ok(enrolled))) => {
                tracing::info!(%client, serial = %enrolled.serial, cn = %enrolled.common_name, "enroll: token used, certificate issued");
                issued(&enrolled)
            }
            Ok(Ok(Err(refusal))) => {
                tracing::warn!(%client, reason = %refusal, "enroll: token refused");
                error(StatusCode::FORBIDDEN, &refusal.to_string())
            }
            Ok(Err(e)) => pki_error(client, &e),
            Err(e) => task_failed(client, &e),
        }
    }

    async fn renew(&self, conn: &Connection, client: IpAddr, body: Bytes) -> Page {
        let Some(verified) = conn.verified() else {
            return error(
                StatusCode::UNAUTHORIZED,
                "renewing needs the current certificate, valid and not revoked, on this connection",
            );
        };
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ask {
            csr: String,
        }
        let ask: Ask = match json_body(&body, r#"{"csr": …}"#) {
            Ok(a) => a,
            Err(why) => return error(StatusCode::BAD_REQUEST, &why),
        };
        let ca = self.ca.clone();
        // The certificate the handshake verified: its subject is what gets renewed.
        let current = verified.chain[0].to_vec();
        let done = tokio::task::spawn_blocking(move || {
            let mut writer = ca.writer_waiting(LOCK_WAIT)?;
            writer.renew_for_csr(&current, ask.csr.as_bytes())
        })
        .await;
        match done {
            Ok(Ok(enrolled)) => {
                tracing::info!(%client, serial = %enrolled.serial, cn = %enrolled.common_name, renewed = %verified.identity.serial, "enroll: certificate renewed");
                issued(&enrolled)
            }
            Ok(Err(e)) => pki_error(client, &e),
            Err(e) => task_failed(client, &e),
        }
    }
}

/// The page or one of its files, with the headers that keep it to itself: the policy,
/// no MIME sniffing, no Referer (the page's URL has the token in its fragment, which
/// browsers never send, but nothing else needs to leave either), no caching.
fn page(method: &Method, content_type: &'static str, body: Bytes) -> Page {
    use http::HeaderValue;
    use http::header;
    if method != Method::GET && method != Method::HEAD {
        let mut page = error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        page.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return page;
    }
    let mut page = respond(StatusCode::OK, content_type, body);
    let h = page.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    page
}

/// `s` escaped for an HTML attribute value in double quotes.
fn html_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn issued(e: &Enrolled) -> Page {
    let pem = |der: &Vec<u8>| portcullis_pki::ca::pem("CERTIFICATE", der);
    let body = json!({
        "serial": e.serial,
        "common_name": e.common_name,
        "certificate": e.chain.first().map(pem).unwrap_or_default(),
        "chain": e.chain.iter().map(pem).collect::<String>(),
        "not_granted": e.not_granted,
    });
    respond(StatusCode::OK, "application/json", body.to_string())
}

/// A refusal about the request (a CSR that does not verify, a certificate that cannot
/// renew) is the client's to read; anything else stays in the log.
fn pki_error(client: IpAddr, e: &portcullis_pki::Error) -> Page {
    use portcullis_pki::Error as E;
    match e {
        // About what the client sent (the request, or the certificate it renews with); other
        // errors can name the CA's files and stay in the log.
        E::CsrSignature { .. } | E::InvalidInput { .. } => {
            tracing::warn!(%client, error = %e, "enroll: request refused");
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        E::Malformed { path, .. } if path.as_path() == Path::new("the request") => {
            tracing::warn!(%client, error = %e, "enroll: request refused");
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        _ => {
            tracing::error!(%client, error = %e, "enroll: the CA could not issue");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the CA could not issue; see the gate's log",
            )
        }
    }
}

/// A request body read as JSON of type `T`; if it is not, why, naming the `shape` expected.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("expected {shape}: {e}"))
}

fn task_failed(client: IpAddr, e: &tokio::task::JoinError) -> Page {
    tracing::error!(%client, error = %e, "enroll: the issuing task failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the CA could not issue; see the gate's log",
    )
}

fn error(status: StatusCode, message: &str) -> Page {
    respond(
        status,
        "application/json",
        json!({ "error": message }).to_string(),
    )
}

/// Addresses the limiter remembers at once.
const MAX_TRACKED: usize = 10_000;

/// Attempts per client address (IPv6: per /64) per minute.
struct Limiter {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limiter {
    fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute,
            seen: Mutex::default(),
        }
    }

    fn allow(&self, client: IpAddr) -> bool {
        // An IPv6 client has a /64 to choose addresses from: that is the unit.
        let key = match client {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::from(o)
            }
            IpAddr::V6(v6) => IpAddr::V4(
                v6.to_ipv4_mapped()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            ),
            v4 => v4,
        };
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        // Many addresses (a scan): forget the ones whose minute is over; if that is not
        // enough, refuse newcomers until it is, rather than grow.
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&key) {
            seen.retain(|_, (start, _)| now.duration_since(*start) < minute);
            if seen.len() >= MAX_TRACKED {
                return false;
            }
        }
        let entry = seen.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= minute {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_counts_per_address_per_minute() {
        let l = Limiter::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!((0..3).all(|_| l.allow(a)));
        assert!(!l.allow(a));
        assert!(l.allow(b));
        // One /64 is one client, whatever address it picks.
        let l = Limiter::new(2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(l.allow(ip("2001:db8::1")));
        assert!(l.allow(ip("2001:db8::ffff:2")));
        assert!(!l.allow(ip("2001:db8::3:4:5:6")));
        assert!(l.allow(ip("2001:db8:0:1::1")));
    }
}

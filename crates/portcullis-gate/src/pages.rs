//! Built-in pages: the refusals (400, 401, 403, 421, 502, 504) and the "who am I" app.
//! HTML for browsers (`Accept: text/html`), JSON for everything else. A refusal never
//! reveals policy internals: a 403 names the missing role, not the rule.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use portcullis_policy::Identity;
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};

/// Response body of the gate: streamed from the upstream, or a page built here.
pub type Body = Either<crate::upstream::ResponseBody, Full<Bytes>>;

/// A page built by the gate.
pub type Page = Response<Full<Bytes>>;

/// The statuses of the gate's own pages, each replaceable by `pages_dir/NNN.html`.
pub const STATUSES: [u16; 6] = [400, 401, 403, 421, 502, 504];

/// Replacement HTML pages, by status (`401.html`, `403.html`, …), loaded at start.
#[derive(Debug, Default, Clone)]
pub struct Pages {
    custom: HashMap<u16, Bytes>,
}

impl Pages {
    /// Loads `NNN.html` files from `dir` for the statuses the gate produces.
    pub fn load(dir: Option<&Path>) -> Result<Pages> {
        let mut custom = HashMap::new();
        if let Some(dir) = dir {
            for code in STATUSES {
                let p = dir.join(format!("{code}.html"));
                match std::fs::read(&p) {
                    Ok(b) => {
                        custom.insert(code, Bytes::from(b));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(Error::Read { path: p, error }),
                }
            }
        }
        Ok(Pages { custom })
    }
}

/// What a refusal page explains.
#[derive(Debug)]
pub enum Refusal<'a> {
    BadRequest(&'a str),
    NoCertificate,
    /// A certificate was presented but refused (only with `invalid_cert = "anonymous"`).
    CertificateRefused(&'a str),
    Forbidden {
        who: &'a str,
        needs: &'a str,
    },
    NoRule {
        who: &'a str,
    },
    Misdirected {
        connection_host: &'a str,
        request_host: &'a str,
    },
    BadGateway,
    GatewayTimeout,
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The end of every page, after its body.
macro_rules! html_tail {
    () => {
        "<hr><small>portcullis</small></body></html>"
    };
}

fn html_page(title: &str, body: &str) -> String {
    html_head(title) + body + html_tail!()
}

/// A page's HTML before its body.
fn html_head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
<title>{t}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.6rem}}code,pre{{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}}pre{{padding:.6rem;overflow:auto}}\
table{{border-collapse:collapse}}td,th{{text-align:left;padding:.25rem .8rem .25rem 0;vertical-align:top}}th{{color:#555;font-weight:500}}</style>\
</head><body><h1>{t}</h1>",
        t = escape(title)
    )
}

pub fn wants_html(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Page {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl Pages {
    /// Renders a refusal.
    pub fn refusal(&self, refusal: &Refusal<'_>, html: bool) -> Page {
        let (status, code, title, text, detail_html) = match refusal {
            Refusal::BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                format!("The request was refused: {why}."),
                format!("<p>The request was refused: {}.</p>", escape(why)),
            ),
            Refusal::NoCertificate => (
                StatusCode::UNAUTHORIZED,
                "client_certificate_required",
                "A client certificate is required",
                "This page needs a client certificate, and this connection did not present one. \
                 Ask the site's administrator for a certificate (a .p12 file for browsers, or a \
                 certificate chain and key for programs) and present it with its intermediate CAs: \
                 curl --cert client.chain.pem --key client.key, or Node's https.request({ cert, key, ca }) \
                 with cert read from the chain file."
                    .to_owned(),
                "<p>This page needs a <b>client certificate</b>, and your browser did not present one.</p>\
<p><b>Get one:</b> ask the site's administrator for a certificate bundle (a <code>.p12</code> file and its password).</p>\
<p><b>Install it:</b></p><ul>\
<li>Chrome / Edge: Settings → Privacy and security → Security → Manage certificates → Import.</li>\
<li>Firefox: Settings → Privacy &amp; Security → Certificates → View Certificates → Your Certificates → Import.</li>\
<li>macOS Safari: double-click the <code>.p12</code> to add it to the login keychain (ask for the legacy bundle if it will not import).</li>\
</ul><p>Then restart the browser and reload this page; it will ask which certificate to use.</p>\
<p>Programs: present the certificate with its intermediate CAs, <code>curl --cert client.chain.pem --key client.key https://…</code></p>"
                    .to_owned(),
            ),
            Refusal::CertificateRefused(reason) => (
                StatusCode::UNAUTHORIZED,
                "client_certificate_refused",
                "Your client certificate was not accepted",
                format!(
                    "This page needs a valid client certificate; the one presented was refused ({reason}). \
                     Ask the site's administrator for a new certificate."
                ),
                format!(
                    "<p>This page needs a valid client certificate. The certificate your browser presented was refused: <b>{}</b>.</p>\
<p>Ask the site's administrator for a new certificate, import it, and remove the old one from your browser.</p>",
                    escape(reason)
                ),
            ),
            Refusal::Forbidden { who, needs } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access denied",
                format!("Your certificate ({who}) does not grant access to this page: it needs {needs}."),
                format!(
                    "<p>Your certificate (<code>{}</code>) does not grant access to this page: it needs <b>{}</b>.</p>\
<p>If you should have access, ask the administrator to grant it.</p>",
                    escape(who),
                    escape(needs)
                ),
            ),
            Refusal::NoRule { who } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access denied",
                format!("No access rule allows this request for {who}."),
                format!("<p>No access rule allows this request for <code>{}</code>.</p>", escape(who)),
            ),
            Refusal::Misdirected {
                connection_host,
                request_host,
            } => (
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                "Misdirected request",
                format!(
                    "This connection was authenticated for {connection_host}, but the request is for {request_host}. Open a new connection to {request_host}."
                ),
                format!(
                    "<p>This connection was authenticated for <code>{}</code>, but the request is for <code>{}</code>. Open a new connection to that host.</p>",
                    escape(connection_host),
                    escape(request_host)
                ),
            ),
            Refusal::BadGateway => (
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "Bad gateway",
                "The application behind this gateway could not be reached.".to_owned(),
                "<p>The application behind this gateway could not be reached. Try again shortly.</p>".to_owned(),
            ),
            Refusal::GatewayTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "Gateway timeout",
                "The application behind this gateway did not answer in time.".to_owned(),
                "<p>The application behind this gateway did not answer in time. Try again shortly.</p>".to_owned(),
            ),
        };
        if html {
            if let Some(custom) = self.custom.get(&status.as_u16()) {
                return respond(status, "text/html; charset=utf-8", custom.clone());
            }
            respond(
                status,
                "text/html; charset=utf-8",
                html_page(title, &detail_html),
            )
        } else {
            let body = json!({ "status": status.as_u16(), "error": code, "message": text });
            respond(status, "application/json", body.to_string())
        }
    }
}

#[derive(Serialize)]
struct Caller<'a> {
    authenticated: bool,
    subject: Subject<'a>,
    sans: Sans<'a>,
    issuer: &'a str,
    serial: &'a str,
    fingerprint_sha256: &'a str,
    not_before: i64,
    not_after: i64,
    roles: &'a [String],
}

#[derive(Serialize)]
struct Subject<'a> {
    cn: Option<&'a str>,
    email: Option<&'a str>,
    o: &'a [String],
    ou: &'a [String],
    l: &'a [String],
    st: &'a [String],
    c: &'a [String],
}

#[derive(Serialize)]
struct Sans<'a> {
    dns: &'a [String],
    email: &'a [String],
    uri: &'a [String],
    ip: &'a [std::net::IpAddr],
}

/// The built-in app: who the caller is, as the gate sees them. Everything but the request
/// path is known once per connection (and configuration version), so each format is
/// rendered once, at its first request, as the text before and after the path.
#[derive(Debug, Default)]
pub struct WhoAmI {
    /// Each format's text before the path; what follows it is constant.
    json: OnceLock<String>,
    html: OnceLock<String>,
}

impl WhoAmI {
    fn json(identity: Option<(&Identity, &[String])>) -> String {
        // "path" is the object's last member: the rest is serialized without it, and each
        // response puts it back before the closing brace.
        let json = match identity {
            Some((id, roles)) => serde_json::to_string(&Caller {
                authenticated: true,
                subject: Subject {
                    cn: id.common_name.as_deref(),
                    email: id.all_emails().next(),
                    o: &id.organizations,
                    ou: &id.organizational_units,
                    l: &id.localities,
                    st: &id.states,
                    c: &id.countries,
                },
                sans: Sans {
                    dns: &id.dns_sans,
                    email: &id.email_sans,
                    uri: &id.uri_sans,
                    ip: &id.ip_sans,
                },
                issuer: &id.issuer,
                serial: &id.serial,
                fingerprint_sha256: &id.fingerprint_sha256,
                not_before: id.not_before,
                not_after: id.not_after,
                roles,
            }),
            None => Ok(r#"{"authenticated":false}"#.to_owned()),
        };
        // Serializing borrowed strings and numbers cannot fail.
        let mut json = json.unwrap_or_default();
        json.pop(); // the closing brace
        json.push_str(",\"path\":");
        json
    }

    fn html(identity: Option<(&Identity, &[String])>) -> String {
        let (title, body) = match identity {
            None => (
                "Anonymous",
                "<p>You are not presenting a client certificate. This page is open to everyone; \
<a href=\"/me\">/me</a> needs a certificate.</p><p>Path: <code>"
                    .to_owned(),
            ),
            Some((id, roles)) => {
                // A field the certificate does not have gets no row.
                let mut rows = String::new();
                let mut row = |k: &str, v: &str| {
                    if !v.is_empty() {
                        rows += &format!("<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
                    }
                };
                row("Common name (CN)", id.common_name.as_deref().unwrap_or(""));
                row("Email", &id.all_emails().collect::<Vec<_>>().join(", "));
                row("Organization (O)", &id.organizations.join(", "));
                row(
                    "Organizational unit (OU)",
                    &id.organizational_units.join(", "),
                );
                row("Locality (L)", &id.localities.join(", "));
                row("State (ST)", &id.states.join(", "));
                row("Country (C)", &id.countries.join(", "));
                row("DNS names", &id.dns_sans.join(", "));
                row("URIs", &id.uri_sans.join(", "));
                let ips: Vec<String> = id.ip_sans.iter().map(ToString::to_string).collect();
                row("IP addresses", &ips.join(", "));
                row("Issuer", &id.issuer);
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                row("Valid", &validity(id.not_before, id.not_after, now));
                row("Serial", &id.serial);
                row("SHA-256", &id.fingerprint_sha256);
                row(
                    "Roles",
                    &if roles.is_empty() {
                        "none".into()
                    } else {
                        roles.join(", ")
                    },
                );
                (
                    "Authorized",
                    format!(
                        "<p>Hello {}, your certificate was issued by {}.</p><table>{rows}</table><p>Path: <code>",
                        escape(id.common_name.as_deref().unwrap_or("(no CN)")),
                        escape(&id.issuer),
                    ),
                )
            }
        };
        html_head(title) + &body
    }

    /// The page for one request from this caller.
    pub fn page(&self, identity: Option<(&Identity, &[String])>, path: &str, html: bool) -> Page {
        let (before, after, content_type) = if html {
            (
                self.html.get_or_init(|| WhoAmI::html(identity)),
                concat!("</code></p>", html_tail!()),
                "text/html; charset=utf-8",
            )
        } else {
            (
                self.json.get_or_init(|| WhoAmI::json(identity)),
                "}",
                "application/json",
            )
        };
        let mut body = Vec::with_capacity(before.len() + path.len() + 2 + after.len());
        body.extend_from_slice(before.as_bytes());
        if html {
            body.extend_from_slice(escape(path).as_bytes());
        } else {
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut body, path);
        }
        body.extend_from_slice(after.as_bytes());
        respond(StatusCode::OK, content_type, body)
    }
}

/// `2026-01-01T00:00:00Z to 2026-12-01T11:57:06Z (expires in 29 days)`: the dates as
/// `portcullis pki inspect` prints them (RFC 3339, UTC), and where `now` stands.
fn validity(not_before: i64, not_after: i64, now: i64) -> String {
    let days = |secs: i64| match secs / 86_400 {
        0 => "less than a day".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    };
    let relative = if now < not_before {
        format!("not valid yet: starts in {}", days(not_before - now))
    } else if now < not_after {
        format!("expires in {}", days(not_after - now))
    } else {
        format!("expired {} ago", days(now - not_after))
    };
    format!("{} to {} ({relative})", date(not_before), date(not_after))
}

/// Unix seconds as RFC 3339 in UTC; the number itself if it is beyond what RFC 3339 can
/// write (before year 0 or after 9999), which no certificate we accepted has.
fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{unix} (Unix time)"))
}

/// A 308 to the HTTPS origin, for the plain-HTTP listener.
pub fn redirect(location: &str) -> Page {
    let mut r = respond(
        StatusCode::PERMANENT_REDIRECT,
        "text/plain; charset=utf-8",
        "Use HTTPS.\n",
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn text(page: Page) -> String {
        let body = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(page.into_body().collect())
            .unwrap();
        String::from_utf8(body.to_bytes().to_vec()).unwrap()
    }

    /// The page is rendered once per caller and the path spliced in per request: each
    /// request's own path comes back exactly, whatever it holds.
    #[test]
    fn whoami_splices_each_requests_path_into_the_page_rendered_once() {
        let alice = Identity {
            common_name: Some("alice \"<b>\"".into()),
            organizational_units: vec!["Admins".into()],
            ..Default::default()
        };
        let roles = ["admin".to_owned()];
        for identity in [Some((&alice, &roles[..])), None] {
            let page = WhoAmI::default();
            for path in ["/me", "/a\"b\\c<d>&\u{1}/\u{e9}", "/me"] {
                let json: serde_json::Value =
                    serde_json::from_str(&text(page.page(identity, path, false))).unwrap();
                assert_eq!(json["path"], path);
                assert_eq!(json["authenticated"], identity.is_some());
                if identity.is_some() {
                    assert_eq!(json["subject"]["cn"], "alice \"<b>\"");
                    assert_eq!(json["roles"][0], "admin");
                }
                let html = text(page.page(identity, path, true));
                assert!(html.contains(&format!("<code>{}</code>", escape(path))));
                assert!(!html.contains("<d>") && !html.contains("<b>"));
                assert!(html.ends_with(html_tail!()));
            }
        }
    }

    /// 2026-01-01T00:00:00Z and 2026-12-01T11:57:06Z.
    const JAN_1: i64 = 1_767_225_600;
    const DEC_1: i64 = 1_796_126_226;
    const DAY: i64 = 86_400;

    #[test]
    fn whoami_validity_is_rfc3339_dates_and_how_long_is_left() {
        let dates = "2026-01-01T00:00:00Z to 2026-12-01T11:57:06Z";
        for (now, relative) in [
            (DEC_1 - 29 * DAY - 5, "expires in 29 days"),
            (DEC_1 - DAY, "expires in 1 day"),
            (DEC_1 - 1, "expires in less than a day"),
            (DEC_1, "expired less than a day ago"),
            (DEC_1 + 3 * DAY + 5, "expired 3 days ago"),
            (JAN_1 - 2 * DAY, "not valid yet: starts in 2 days"),
            (JAN_1, "expires in 334 days"),
        ] {
            assert_eq!(
                validity(JAN_1, DEC_1, now),
                format!("{dates} ({relative})"),
                "now = {now}"
            );
        }
    }

    #[test]
    fn whoami_dates_rfc3339_cannot_write_fall_back_to_the_number() {
        assert_eq!(date(0), "1970-01-01T00:00:00Z");
        // GeneralizedTime 99991231235959Z, "no well-defined expiration" (RFC 5280).
        assert_eq!(date(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(date(i64::MAX), format!("{} (Unix time)", i64::MAX));
    }

    #[test]
    fn whoami_html_leaves_out_fields_the_certificate_does_not_have() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let bare = Identity {
            common_name: Some("svc".into()),
            issuer: "CN=Portcullis Issuing CA".into(),
            not_before: now - DAY,
            not_after: now + 10 * DAY + 60,
            ..Default::default()
        };
        let html = WhoAmI::html(Some((&bare, &[])));
        for absent in [
            "Email",
            "(O)",
            "(OU)",
            "(L)",
            "(ST)",
            "(C)",
            "DNS names",
            "URIs",
            "IP addresses",
            "Serial",
            "SHA-256",
            "Unix time",
            "<td></td>",
            "<td>-</td>",
        ] {
            assert!(!html.contains(absent), "{absent:?} in {html}");
        }
        for present in [
            "<th>Common name (CN)</th><td>svc</td>",
            "<th>Issuer</th><td>CN=Portcullis Issuing CA</td>",
            "(expires in 10 days)</td>",
            "<th>Roles</th><td>none</td>",
        ] {
            assert!(html.contains(present), "no {present:?} in {html}");
        }

        let full = Identity {
            emails: vec!["a@example.com".into()],
            email_sans: vec!["a@example.com".into(), "b&c@example.com".into()],
            organizations: vec!["Acme".into()],
            dns_sans: vec!["svc.internal".into(), "*.svc.internal".into()],
            uri_sans: vec!["spiffe://corp/ops/<svc>".into()],
            ip_sans: vec![[10, 0, 0, 7].into(), "::1".parse().unwrap()],
            ..bare
        };
        let html = WhoAmI::html(Some((&full, &["ops".to_owned()])));
        for present in [
            "<th>Email</th><td>a@example.com, b&amp;c@example.com</td>",
            "<th>Organization (O)</th><td>Acme</td>",
            "<th>DNS names</th><td>svc.internal, *.svc.internal</td>",
            "<th>URIs</th><td>spiffe://corp/ops/&lt;svc&gt;</td>",
            "<th>IP addresses</th><td>10.0.0.7, ::1</td>",
            "<th>Roles</th><td>ops</td>",
        ] {
            assert!(html.contains(present), "no {present:?} in {html}");
        }
    }
}

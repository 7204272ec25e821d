//! One request through the gate. The steps run in this order, and the order matters:
//!
//! 1. **Canonicalize the path** — everything after judges the one canonical form, and the
//!    upstream receives that same form (SECURITY.md rule 2). Ambiguous paths stop here: 400.
//! 2. **Host must match SNI** — before any identity is used, so a connection authenticated
//!    for one virtual host cannot be used against another (rule 4): 421.
//! 3. **Policy** — on the canonical path, the host, the method and the roles computed when
//!    the connection was set up: 401 (no certificate) or 403 (not enough).
//! 4. **Rewrite headers** — inbound identity and forwarding headers are removed from every
//!    request, anonymous or not (rule 3), then ours are added.
//! 5. **Forward** to the upstream, or answer with the built-in app.
//!
//! Every failure becomes a response; nothing escapes to hyper (which would drop the
//! connection without an answer).

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use portcullis_policy::{Decision, path};

use crate::Gate;
use crate::config::Upstream;
use crate::pages::{self, Body, Page, Refusal};
use crate::server::{Connection, Peer};

/// The host part of a `Host` header or authority: no port, no IPv6 brackets.
pub fn host_only(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection only.
const HOP_BY_HOP: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// What [`check`] established about an allowed request.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// Whether the client asked for HTML, for pages rendered later.
    pub html: bool,
    /// Index of the rule that allowed it.
    pub rule: usize,
}

/// A refused request: the page to answer with, and what decided it (for logs and metrics).
#[derive(Debug)]
pub struct Refused {
    pub page: Page,
    /// Index into [`crate::metrics::DECISIONS`].
    pub decision: usize,
    pub rule: Option<usize>,
}

/// The host a request names: the authority of an absolute-form or h2 request, else the
/// Host header, without port. `Err` when they disagree or neither is there.
fn request_host<B>(req: &Request<B>) -> Result<&str, &'static str> {
    let header_host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match (req.uri().authority().map(|a| a.as_str()), header_host) {
        (Some(u), Some(h)) if !host_only(u).eq_ignore_ascii_case(host_only(h)) => {
            Err("the request target and the Host header name different hosts")
        }
        (Some(u), _) => Ok(host_only(u)),
        (None, Some(h)) => Ok(host_only(h)),
        (None, None) => Err("the Host header is missing"),
    }
}

/// Steps 1 to 4 for any request body type: on success the request carries the canonical
/// path, no inbound identity headers and the gate's own; otherwise the refusal page.
/// Counts the decision in the gate's metrics either way.
// The error holds a whole response, built only on the refusal path; boxing it would add
// an allocation there and save nothing on the hot path.
#[allow(clippy::result_large_err)]
pub fn check<B>(gate: &Gate, conn: &Connection, req: &mut Request<B>) -> Result<Allowed, Refused> {
    use crate::metrics::{ALLOW, BAD_REQUEST, FORBIDDEN, MISDIRECTED, NO_RULE, UNAUTHENTICATED};
    let html = pages::wants_html(req.headers());
    let refuse = |r: Refusal<'_>, d: usize, rule: Option<usize>| {
        gate.metrics.decision(d);
        Refused {
            page: conn.site.pages.refusal(&r, html),
            decision: d,
            rule,
        }
    };

    // 1. Canonical path; the request is rewritten to it so nothing after can see another.
    let canonical = match path::canonicalize(req.uri().path()) {
        Ok(p) => p,
        Err(e) => {
            return Err(refuse(
                Refusal::BadRequest(&e.to_string()),
                BAD_REQUEST,
                None,
            ));
        }
    };

    // 2. Host.
    let host = match request_host(req) {
        Ok(h) => h,
        Err(why) => return Err(refuse(Refusal::BadRequest(why), BAD_REQUEST, None)),
    };
    let host_ok = match &conn.sni {
        Some(sni) => sni.eq_ignore_ascii_case(host),
        None => conn.site.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)),
    };
    if !host_ok {
        let connection_host = conn
            .sni
            .as_deref()
            .unwrap_or("(no SNI: this server's default names)");
        let r = Refusal::Misdirected {
            connection_host,
            request_host: host,
        };
        return Err(refuse(r, MISDIRECTED, None));
    }

    // 3. Policy.
    let verified = conn.verified();
    let facts = portcullis_policy::Request {
        method: req.method().as_str(),
        host,
        path: &canonical,
    };
    let policy = &conn.site.config.policy;
    let who = || verified.map_or("anonymous", |v| v.label.as_str());
    let rule = match policy.decide(&facts, verified.map(|v| v.roles)) {
        Decision::Allow { rule } => rule,
        Decision::Unauthenticated { rule } => {
            let r = match conn.peer {
                Peer::Failed(reason) => Refusal::CertificateRefused(reason),
                _ => Refusal::NoCertificate,
            };
            return Err(refuse(r, UNAUTHENTICATED, Some(rule)));
        }
        Decision::Forbidden { rule, require } => {
            let needs = policy.describe(require);
            return Err(refuse(
                Refusal::Forbidden {
                    who: who(),
                    needs: &needs,
                },
                FORBIDDEN,
                Some(rule),
            ));
        }
        Decision::NoRule => return Err(refuse(Refusal::NoRule { who: who() }, NO_RULE, None)),
    };
    if canonical.as_str() != req.uri().path() {
        let pq = match req.uri().query() {
            Some(q) => format!("{}?{q}", canonical.as_str()),
            None => canonical.as_str().to_owned(),
        };
        let mut parts = req.uri().clone().into_parts();
        let rebuilt = pq.parse().ok().and_then(|p| {
            parts.path_and_query = Some(p);
            Uri::from_parts(parts).ok()
        });
        match rebuilt {
            Some(u) => *req.uri_mut() = u,
            None => {
                return Err(refuse(
                    Refusal::BadRequest("the request target is not valid"),
                    BAD_REQUEST,
                    None,
                ));
            }
        }
    }
    gate.metrics.decision(ALLOW);

    // 4. Headers: theirs out, ours in.
    let headers = req.headers_mut();
    conn.site.names.strip(headers);
    match verified {
        Some(v) => {
            headers.reserve(v.headers.len());
            for (name, value) in &v.headers {
                headers.insert(name.clone(), value.clone());
            }
        }
        None => {
            headers.insert(conn.site.names.verify.clone(), conn.verify_header.clone());
        }
    }
    Ok(Allowed { html, rule })
}

/// The whole pipeline for `portcullis serve`: [`check`], then the upstream or the
/// built-in app; then metrics and the access log.
pub async fn handle(gate: &Gate, conn: &Connection, mut req: Request<Incoming>) -> Response<Body> {
    let _active = conn.activity.begin();
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let (resp, decision, rule, upstream) = match check(gate, conn, &mut req) {
        Ok(allowed) => {
            let path = gate.log.as_ref().map(|_| req.uri().path().to_owned());
            let (resp, upstream) = forward(gate, conn, req, allowed).await;
            (
                resp,
                crate::metrics::ALLOW,
                Some(allowed.rule),
                (path, upstream),
            )
        }
        Err(r) => {
            let path = gate.log.as_ref().map(|_| req.uri().path().to_owned());
            (r.page.map(Either::Right), r.decision, r.rule, (path, None))
        }
    };
    let elapsed = start.elapsed();
    gate.metrics
        .response(resp.status().as_u16(), elapsed.as_secs_f64());
    if let Some(log) = &gate.log {
        log.request(&crate::log::RequestLine {
            conn,
            method: &method,
            path: upstream.0.as_deref().unwrap_or(""),
            rule,
            decision,
            status: resp.status().as_u16(),
            bytes: hyper::body::Body::size_hint(resp.body()).exact(),
            upstream: upstream.1,
            total: elapsed,
        });
    }
    resp
}

/// Step 5.
async fn forward(
    gate: &Gate,
    conn: &Connection,
    mut req: Request<Incoming>,
    allowed: Allowed,
) -> (Response<Body>, Option<Duration>) {
    let html = allowed.html;
    let refuse = |r: Refusal<'_>| (conn.site.pages.refusal(&r, html).map(Either::Right), None);
    match &conn.site.config.upstream {
        Upstream::Whoami => {
            let verified = conn.verified();
            let roles: Vec<&str> = verified
                .map(|v| v.role_names.iter().map(String::as_str).collect())
                .unwrap_or_default();
            let page = pages::whoami(
                verified.map(|v| (&v.identity, roles.as_slice())),
                req.uri().path(),
                html,
            );
            (page.map(Either::Right), None)
        }
        Upstream::Http { authority, http2 } => {
            let Some(client) = &conn.site.client else {
                return refuse(Refusal::BadGateway);
            };
            // `check` accepted the host, so this cannot fail; an empty host is harmless.
            let host = request_host(&req).unwrap_or_default().to_owned();
            let pq = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let uri = Uri::builder()
                .scheme("http")
                .authority(authority.clone())
                .path_and_query(pq)
                .build();
            let Ok(uri) = uri else {
                return refuse(Refusal::BadRequest("the query string is not valid"));
            };
            *req.uri_mut() = uri;
            *req.version_mut() = if *http2 {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            };
            let headers = req.headers_mut();
            // Fields named in Connection are hop-by-hop too.
            if let Some(listed) = headers
                .get(header::CONNECTION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
            {
                for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    headers.remove(name);
                }
            }
            for h in &HOP_BY_HOP {
                headers.remove(h);
            }
            headers.remove("keep-alive");
            headers.remove("proxy-connection");
            // h2 requests carry the host in :authority only; HTTP/1.1 upstreams need Host.
            if let (false, Ok(v)) = (
                headers.contains_key(header::HOST),
                HeaderValue::from_str(&host),
            ) {
                headers.insert(header::HOST, v);
            }
            headers.insert("x-forwarded-for", conn.forwarded_for.clone());
            headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
            if let Ok(v) = HeaderValue::from_str(&host) {
                headers.insert("x-forwarded-host", v);
            }
            if let Ok(v) =
                HeaderValue::from_str(&format!("{};host=\"{host}\"", conn.forwarded_prefix))
            {
                headers.insert(header::FORWARDED, v);
            }
            let timeout = Duration::from_secs(gate.config.limits.upstream_timeout_secs);
            let sent = std::time::Instant::now();
            match tokio::time::timeout(timeout, client.request(req)).await {
                Ok(Ok(resp)) => {
                    let (mut parts, body) = resp.into_parts();
                    for h in &HOP_BY_HOP {
                        parts.headers.remove(h);
                    }
                    parts.headers.remove("keep-alive");
                    (
                        Response::from_parts(parts, Either::Left(body)),
                        Some(sent.elapsed()),
                    )
                }
                Ok(Err(_)) => {
                    gate.metrics.upstream_error(false);
                    refuse(Refusal::BadGateway)
                }
                Err(_) => {
                    gate.metrics.upstream_error(true);
                    refuse(Refusal::GatewayTimeout)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_only;

    #[test]
    fn hosts() {
        assert_eq!(host_only("example.com:8443"), "example.com");
        assert_eq!(host_only("example.com"), "example.com");
        assert_eq!(host_only("[::1]:8443"), "::1");
        assert_eq!(host_only("[::1]"), "::1");
        assert_eq!(host_only("127.0.0.1:1"), "127.0.0.1");
    }
}

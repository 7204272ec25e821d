//! Stage 5: the gate's own headers, added last — the identity of the connection under the
//! configuration in force, and the forwarding headers with the checked authority — then the
//! upstream, or the built-in page.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;

use super::authority::Authority;
use crate::conn::{Binding, Connection};
use crate::metrics::Metrics;
use crate::names::StrippedTrailers;
use crate::pages::{self, Page, Refusal};
use crate::site::Site;

/// Adds the identity and forwarding headers. Stage 3 has removed every inbound copy, so
/// `append` leaves exactly one line of each.
pub fn add_headers(
    headers: &mut HeaderMap,
    conn: &Connection,
    binding: &Binding,
    authority: &Authority,
) {
    headers.reserve(18);
    binding.add_headers(conn.verified(), headers);
    // Host may be the one name stage 3 kept: the checked authority replaces it.
    headers.insert(header::HOST, authority.value().clone());
    headers.append(X_FORWARDED_FOR, conn.forwarded_for.clone());
    headers.append(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    headers.append(X_FORWARDED_HOST, authority.value().clone());
    // The authority's syntax admits no quote or backslash: it is safe in a quoted-string.
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{};host=\"{}\"",
        conn.forwarded_prefix,
        authority.as_str()
    )) {
        headers.append(header::FORWARDED, v);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The built-in "who am I" page.
pub fn whoami(conn: &Connection, binding: &Binding, path: &str, html: bool) -> Page {
    let identity = conn
        .verified()
        .map(|v| (&v.identity, binding.role_names.as_slice()));
    binding.whoami.page(identity, path, html)
}

/// Sends the request to the site's upstream. The request already carries the canonical
/// path and the gate's headers. Returns the response (or a 502/504 page) and the time to
/// the upstream's response headers.
pub async fn upstream(
    site: &Site,
    timeout: Duration,
    metrics: &Metrics,
    mut parts: Parts,
    body: Incoming,
    authority: &Authority,
    html: bool,
) -> (Response<pages::Body>, Option<Duration>) {
    let refuse = |r: Refusal<'_>| (site.pages.refusal(&r, html).map(Either::Right), None);
    let Some(client) = &site.client else {
        return refuse(Refusal::BadGateway);
    };
    // HTTP/1.1 sends the path in origin form (the checked host is in `Host`); an h2c
    // upstream takes the checked host from the URI as `:authority`. Either way the
    // connection goes to the configured upstream.
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let http2 = site.upstream_http2();
    let uri = if http2 {
        Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
    } else {
        Uri::builder().path_and_query(path).build()
    };
    let Ok(uri) = uri else {
        return refuse(Refusal::BadRequest("the query string is not valid"));
    };
    parts.uri = uri;
    parts.version = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let req = Request::from_parts(parts, StrippedTrailers::new(body, site.headers.clone()));
    let sent = std::time::Instant::now();
    match tokio::time::timeout(timeout, client.send(req)).await {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            super::headers::sanitize_response(&mut parts.headers);
            (
                Response::from_parts(parts, Either::Left(body)),
                Some(sent.elapsed()),
            )
        }
        Ok(Err(_)) => {
            metrics.upstream_error(false);
            refuse(Refusal::BadGateway)
        }
        Err(_) => {
            metrics.upstream_error(true);
            refuse(Refusal::GatewayTimeout)
        }
    }
}

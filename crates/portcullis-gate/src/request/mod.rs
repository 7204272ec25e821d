//! One request through the gate. The stages run in this order, and the order is the point:
//!
//! 0. **Binding** — the connection's standing under the configuration in force, so a
//!    reload decides the next request on every open connection (SECURITY.md rule 9).
//! 1. **Canonical** ([`canonical`]) — the method and path in the one form everything after
//!    judges and the upstream receives (rule 2): 400.
//! 2. **Authority** ([`authority`]) — exactly one valid host, a name of this site, the name
//!    the connection was made for (rule 4): 400 or 421.
//! 3. **Headers** ([`headers`]) — hop-by-hop fields and every inbound spelling of a name the
//!    gate speaks for are removed before anything is added (rule 3).
//! 4. **Authorize** ([`authorize`]) — the current policy and roles: 401 or 403 (rule 1).
//! 5. **Forward** ([`forward`]) — the gate's own headers are added, last; then the upstream
//!    or the built-in page.
//!
//! Stages 0–4 are [`admit`], shared by `portcullis serve` and the embedding layer. Every
//! failure becomes a response: nothing escapes to hyper, which would drop the connection
//! without an answer.

mod authority;
mod authorize;
mod canonical;
mod forward;
mod headers;
mod judge;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::request::Parts;
use http::{Request, Response, Uri};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::conn::{Binding, Connection, InFlight, Peer, Tracked};
use crate::gate::{Gate, Shared};
use crate::log;
use crate::outcome::Decision;
use crate::pages::{self, Page, Pages, Refusal};

pub(crate) use authority::{Authority, check as check_authority};
pub(crate) use headers::sanitize as sanitize_headers;
pub use judge::{ConditionResult, Granted, Judgement, Question, Tried};

/// The response body of `portcullis serve`: the upstream's or a page, counted as in flight
/// until it is delivered.
pub type Body = Tracked<pages::Body>;

/// A request the gate lets through: under which binding, by which rule, and for which
/// checked authority.
#[derive(Debug)]
pub struct Admitted {
    pub binding: Arc<Binding>,
    pub rule: usize,
    pub authority: Authority,
    /// Whether the client asked for HTML, for pages rendered later.
    pub html: bool,
    /// For the site's enrolment endpoints (`[enroll]`), which the gate answers itself and
    /// no rule decides (`rule` is 0 and means nothing).
    pub enroll: bool,
}

/// A refused request: the page to answer with, and what decided it.
#[derive(Debug)]
pub struct Refused {
    pub page: Page,
    pub decision: Decision,
    pub rule: Option<usize>,
}

/// Stages 0 to 4. On success `parts` carries the canonical path and no hop-by-hop or
/// refused headers; the gate's own headers are not added yet. Counts the decision.
// The error holds a whole response, built only on the refusal path; boxing it would add
// an allocation there and save nothing on the hot path.
#[allow(clippy::result_large_err)]
pub fn admit(gate: &Gate, conn: &Connection, parts: &mut Parts) -> Result<Admitted, Refused> {
    let html = pages::wants_html(&parts.headers);
    let metrics = &gate.shared.metrics;
    let refuse = |pages: &Pages, r: Refusal<'_>, decision: Decision, rule: Option<usize>| {
        metrics.decision(decision);
        Refused {
            page: pages.refusal(&r, html),
            decision,
            rule,
        }
    };
    let bad_request = |pages: &Pages, why: &dyn std::fmt::Display| {
        let why = why.to_string();
        refuse(pages, Refusal::BadRequest(&why), Decision::BadRequest, None)
    };

    // 0. The connection's standing now. A connection whose site is gone (a reload removed
    // the host it was made for) is never judged by another site's rules.
    let Some(binding) = conn.binding(gate.generation, gate.sites(), gate.listener().no_sni) else {
        let r = Refusal::Misdirected {
            connection_host: conn.sni.as_deref().unwrap_or("(no SNI)"),
            request_host: "this host",
        };
        return Err(refuse(&Pages::default(), r, Decision::Misdirected, None));
    };
    let site = &binding.site;

    // 1. Canonical method and path.
    let path = match canonical::check(&parts.method, parts.uri.path()) {
        Ok(p) => p,
        Err(e) => return Err(bad_request(&site.pages, &e)),
    };

    // 2. Authority.
    let authority = match authority::check(
        parts.version,
        &parts.uri,
        &parts.headers,
        conn.sni.as_deref(),
        |h| site.serves(h),
        |p| p == conn.local_port || p == 443,
    ) {
        Ok(a) => a,
        Err(p) if p.misdirected() => {
            let request_host = request_host(&parts.uri, &parts.headers);
            let r = Refusal::Misdirected {
                connection_host: conn
                    .sni
                    .as_deref()
                    .unwrap_or("(no SNI: this server's default names)"),
                request_host: &request_host,
            };
            return Err(refuse(&site.pages, r, Decision::Misdirected, None));
        }
        Err(p) => return Err(bad_request(&site.pages, &p)),
    };

    // 3. Headers: theirs out, before ours go in (stage 5).
    headers::sanitize(&mut parts.headers, &site.headers);

    // The enrolment endpoints: the token, or the certificate being renewed, is the
    // credential, so the rules do not apply; stages 0 to 3 did, and the canonical path
    // is written back below like any other.
    let enroll = site.enroll.as_ref().is_some_and(|e| e.owns(path.as_str()));

    // 4. Policy.
    let policy = &site.config().policy;
    let facts = portcullis_policy::Request {
        method: parts.method.as_str(),
        host: authority.host(),
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers: &authorize::HeaderView(&parts.headers),
        identity: conn.verified().map(|v| &v.identity),
        // Read only when a condition reads it: otherwise it decides nothing.
        now: match policy.reads_clock() {
            true => portcullis_policy::Timestamp::now(),
            false => portcullis_policy::Timestamp::UNIX_EPOCH,
        },
    };
    let decided = match enroll {
        true => Ok(0),
        false => authorize::decide(policy, binding.roles, &facts),
    };
    let rule = match decided {
        Ok(rule) => rule,
        Err(denied) => {
            let who = conn.verified().map_or("anonymous", |v| v.label.as_str());
            let rule = denied.rule();
            let (r, d) = match &denied {
                authorize::Denied::Unauthenticated { .. } => match conn.peer {
                    Peer::Failed(why) => (
                        Refusal::CertificateRefused(why.as_str()),
                        Decision::Unauthenticated,
                    ),
                    _ => (Refusal::NoCertificate, Decision::Unauthenticated),
                },
                authorize::Denied::Forbidden { needs, .. } => {
                    (Refusal::Forbidden { who, needs }, Decision::Forbidden)
                }
                authorize::Denied::NoRule => (Refusal::NoRule { who }, Decision::NoRule),
            };
            return Err(refuse(&site.pages, r, d, rule));
        }
    };

    // The request carries the path that was judged (usually it already did: no copy); the
    // enrolment endpoints answer for it too.
    let changed = match path.into_cow() {
        std::borrow::Cow::Owned(canonical) => Some(canonical),
        std::borrow::Cow::Borrowed(_) => None,
    };
    if let Some(canonical) = changed {
        let pq = match parts.uri.query() {
            Some(q) => format!("{canonical}?{q}"),
            None => canonical,
        };
        let mut uri = parts.uri.clone().into_parts();
        let rebuilt = pq.parse().ok().and_then(|p| {
            uri.path_and_query = Some(p);
            Uri::from_parts(uri).ok()
        });
        match rebuilt {
            Some(u) => parts.uri = u,
            None => {
                let r = Refusal::BadRequest("the request target is not valid");
                return Err(refuse(&site.pages, r, Decision::BadRequest, None));
            }
        }
    }
    metrics.decision(Decision::Allow);
    Ok(Admitted {
        binding,
        rule,
        authority,
        html,
        enroll,
    })
}

/// The host a refused request asked for, for the 421 page.
fn request_host(uri: &Uri, headers: &http::HeaderMap) -> String {
    uri.authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// The whole pipeline for `portcullis serve`: [`admit`], then the upstream or the built-in
/// page; then metrics and the access log.
///
/// Everything but the upstream and the enrolment endpoints runs here, when hyper hands the
/// request over, not when it first polls the future: the request's head lives in hyper's
/// read buffer, and hyper reads on (to see a client leave) before it polls. A head still
/// alive then makes hyper allocate a new read buffer for every request; dropped here, the
/// buffer is reused. Two consequences: on HTTP/2 this runs on the connection's task, not
/// the stream's, so a panic here would end every stream of the connection (the workspace
/// lints refuse `unwrap` and `expect`); and a request whose client left during hyper's
/// read-ahead is judged, counted and logged, where it used to be dropped unjudged — the
/// answer is never sent, as with any answer to a client that has gone.
pub fn handle(
    current: &arc_swap::ArcSwap<Gate>,
    shared: &Arc<Shared>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
) -> Step<impl Future<Output = Response<Body>> + Send + use<>> {
    let busy = conn.activity.begin();
    let start = Instant::now();
    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    // Read what this request needs from the configuration in force, then let it go: a
    // reload during a slow upstream call does not keep the old gate alive.
    let (admitted, timeout, logging) = {
        let gate = current.load();
        let listener = gate.listener();
        (
            admit(&gate, conn, &mut parts),
            Duration::from_secs(listener.limits.upstream_timeout_secs),
            listener.access_log != log::Format::Off,
        )
    };
    let exchange = Exchange {
        busy,
        start,
        method,
        path: logging.then(|| parts.uri.path().to_owned()),
    };
    let (page, decision, rule) = match admitted {
        Ok(a) if a.enroll || a.binding.site.client.is_some() => {
            if !a.enroll {
                forward::add_headers(&mut parts.headers, conn, &a.binding, &a.authority);
            }
            let (shared, conn) = (shared.clone(), conn.clone());
            return Step::Awaited {
                later: awaited(a, parts, body, exchange, shared, conn, timeout),
            };
        }
        Ok(a) => {
            let page = forward::whoami(conn, &a.binding, parts.uri.path(), a.html);
            (page, Decision::Allow, Some(a.rule))
        }
        Err(r) => (r.page, r.decision, r.rule),
    };
    drop((parts, body));
    let resp = exchange.finish(shared, conn, page.map(Either::Right), decision, rule, None);
    Step::Answered {
        ready: std::future::ready(resp),
    }
}

pin_project_lite::pin_project! {
    /// A response, ready or awaited, as hyper's service returns it. Not boxed: hyper keeps
    /// one future per connection and moves each request's into it, and a box would cost
    /// every proxied request an allocation and a copy.
    #[project = Projected]
    pub enum Step<F> {
        Answered { ready: std::future::Ready<Response<Body>> },
        Awaited { #[pin] later: F },
    }
}

impl<F: Future<Output = Response<Body>>> Future for Step<F> {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Projected::Answered { ready } => Pin::new(ready).poll(cx).map(Ok),
            Projected::Awaited { later } => later.poll(cx).map(Ok),
        }
    }
}

/// The upstream or the enrolment endpoints.
async fn awaited(
    a: Admitted,
    parts: Parts,
    body: Incoming,
    exchange: Exchange,
    shared: Arc<Shared>,
    conn: Arc<Connection>,
    timeout: Duration,
) -> Response<Body> {
    let site = &a.binding.site;
    let (resp, rule, upstream_time) = if a.enroll {
        let page = match &site.enroll {
            Some(e) => e.handle(&conn, &a.binding, &parts, body).await,
            None => site
                .pages
                .refusal(&Refusal::NoRule { who: "anonymous" }, a.html),
        };
        (page.map(Either::Right), None, None)
    } else {
        let (resp, upstream_time) = forward::upstream(
            site,
            timeout,
            &shared.metrics,
            parts,
            body,
            &a.authority,
            a.html,
        )
        .await;
        (resp, Some(a.rule), upstream_time)
    };
    exchange.finish(&shared, &conn, resp, Decision::Allow, rule, upstream_time)
}

/// What one request's metrics and access-log line need from its start.
struct Exchange {
    busy: InFlight,
    start: Instant,
    method: http::Method,
    /// The path to log, when the access log is on.
    path: Option<String>,
}

impl Exchange {
    fn finish(
        self,
        shared: &Shared,
        conn: &Connection,
        resp: Response<pages::Body>,
        decision: Decision,
        rule: Option<usize>,
        upstream: Option<Duration>,
    ) -> Response<Body> {
        let elapsed = self.start.elapsed();
        let status = resp.status().as_u16();
        shared.metrics.response(status, elapsed.as_secs_f64());
        if let Some(path) = &self.path {
            let (identity, fingerprint): (std::borrow::Cow<'_, str>, _) = match &conn.peer {
                Peer::Verified(v) => (
                    v.label.as_str().into(),
                    Some(v.identity.fingerprint_sha256.as_str()),
                ),
                Peer::Anonymous => ("anonymous".into(), None),
                Peer::Failed(why) => (format!("anonymous(FAILED:{})", why.as_str()).into(), None),
            };
            log::request(&log::RequestLine {
                client: conn.log_client(),
                sni: conn.sni.as_deref(),
                identity: &identity,
                fingerprint,
                method: self.method.as_str(),
                path,
                rule,
                decision,
                status,
                bytes: hyper::body::Body::size_hint(resp.body()).exact(),
                upstream,
                total: elapsed,
            });
        }
        // The request stays in flight until its body is delivered.
        resp.map(|b| Tracked::new(b, self.busy))
    }
}

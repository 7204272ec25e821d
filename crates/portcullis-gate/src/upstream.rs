//! The client side of the gate: connections to a site's upstream.
//!
//! HTTP/1.1 upstreams get a pool of their own: idle connections wait in a bounded
//! lock-free queue (crossbeam's array channel), so a proxied request takes no lock.
//! hyper-util's pool, which h2c upstreams still use, locks a mutex on every checkout and
//! every return. An HTTP/1.1 connection carries one request at a time and goes back to
//! the queue when its response has been read to the end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Empty};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_service::Service;

use crate::names::StrippedTrailers;

/// What the gate sends upstream as a request body: the client's, minus refused trailers.
pub type UpstreamBody = StrippedTrailers<Incoming>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle connections kept per upstream; more are closed when their response is done.
const IDLE: usize = 256;

/// Idle connections older than this are closed (hyper-util's pool did the same), and
/// TCP keep-alive probes a connection after this long without traffic.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a connection must have been idle before a request on it is copied to be
/// replayed (see `Pool::send`).
const REPLAY_AFTER: Duration = Duration::from_millis(100);

/// A site's upstream.
#[derive(Debug)]
pub enum Upstream {
    Http1(Arc<Pool>),
    /// HTTP/2 with prior knowledge: one multiplexed connection, hyper-util's client.
    H2c(Box<Client<Connector, UpstreamBody>>),
}

impl Upstream {
    /// `target`: `http://host:port/`; `connect_timeout` bounds each new connection.
    pub fn new(target: http::Uri, http2: bool, connect_timeout: Duration) -> Upstream {
        let mut dialer = HttpConnector::new();
        dialer.set_nodelay(true);
        // A connection a middlebox dropped without a word is found out, not waited on.
        dialer.set_keepalive(Some(IDLE_TIMEOUT));
        dialer.set_connect_timeout(Some(connect_timeout));
        let connector = Connector {
            inner: dialer,
            target,
        };
        if http2 {
            let mut builder = Client::builder(TokioExecutor::new());
            builder.pool_idle_timeout(Duration::from_secs(60));
            builder.http2_only(true);
            return Upstream::H2c(Box::new(builder.build(connector)));
        }
        let (idle_in, idle_out) = crossbeam_channel::bounded(IDLE);
        Upstream::Http1(Arc::new(Pool {
            connector,
            idle_in,
            idle_out,
        }))
    }

    /// Sends a request. Its URI is the checked client-facing one (for HTTP/1.1 in origin
    /// form, with the authority in `Host`; for h2c absolute, read as `:authority`); the
    /// connection always goes to the configured upstream.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, BoxError> {
        match self {
            Upstream::Http1(pool) => pool.send(req).await,
            Upstream::H2c(client) => Ok(client.request(req).await?.map(|inner| ResponseBody {
                inner,
                release: None,
            })),
        }
    }

    pub fn is_http2(&self) -> bool {
        matches!(self, Upstream::H2c(_))
    }
}

/// A request body as sent on an HTTP/1.1 connection: the client's, or nothing when the
/// client sent none (which lets a request be copied and sent again).
type Sent = Either<UpstreamBody, Empty<Bytes>>;

/// A copy of a request without a body.
fn copy(req: &Request<Sent>) -> Request<Sent> {
    let mut copy = Request::new(Either::Right(Empty::new()));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// Idle HTTP/1.1 connections to one upstream.
pub struct Pool {
    connector: Connector,
    idle_in: crossbeam_channel::Sender<(SendRequest<Sent>, Instant)>,
    idle_out: crossbeam_channel::Receiver<(SendRequest<Sent>, Instant)>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.connector.target)
            .field("idle", &self.idle_out.len())
            .finish()
    }
}

impl Pool {
    async fn send(
        self: &Arc<Self>,
        req: Request<UpstreamBody>,
    ) -> Result<Response<ResponseBody>, BoxError> {
        let (parts, body) = req.into_parts();
        let bodiless = body.is_end_stream();
        let body = if bodiless {
            Either::Right(Empty::new())
        } else {
            Either::Left(body)
        };
        let mut req = Request::from_parts(parts, body);
        let mut replayed = false;
        loop {
            let pooled = if replayed { None } else { self.checkout() };
            let (mut sender, idle) = match pooled {
                Some((sender, since)) => (sender, Some(since.elapsed())),
                None => (self.connect().await?, None),
            };
            let fresh = idle.is_none();
            // A connection idle for a while may have been closed by the upstream a moment
            // ago (its keep-alive timeout), the close still on its way: the request then
            // meets a reset. A request without a body and with an idempotent method is
            // sent again once, on a new connection (RFC 9110, 9.2.2; nginx's
            // `proxy_next_upstream error`); it is copied for that. Connections reused
            // within `REPLAY_AFTER`, as under load, skip the copy: no upstream closes
            // connections idle that briefly.
            let replay = (idle.is_some_and(|i| i >= REPLAY_AFTER)
                && bodiless
                && req.method().is_idempotent())
            .then(|| copy(&req));
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let (parts, inner) = response.into_parts();
                    let mut body = ResponseBody {
                        inner,
                        release: Some((sender, self.clone())),
                    };
                    // No body to read (HEAD, 204, 304, length 0): free at once.
                    if body.inner.is_end_stream() {
                        body.release();
                    }
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => {
                    let unsent = e.take_message();
                    let error = e.into_error();
                    req = match (unsent, replay) {
                        // Not sent: safe to send again, whatever the request. Each time a
                        // dead connection leaves the queue, so this ends.
                        (Some(unsent), _) if !fresh => unsent,
                        // Sent into a connection the upstream had closed, and not
                        // answered; any other failure is the upstream's answer.
                        (None, Some(copy)) if closed_under_us(&error) => {
                            replayed = true;
                            copy
                        }
                        _ => return Err(error.into()),
                    };
                }
            }
        }
    }

    /// An idle connection ready for a request, and since when it was idle. Connections
    /// idle for `IDLE_TIMEOUT` are closed. One whose response was read a moment ago may
    /// not be ready yet: it goes back to the queue.
    fn checkout(&self) -> Option<(SendRequest<Sent>, Instant)> {
        for _ in 0..self.idle_out.len() {
            let (sender, since) = self.idle_out.try_recv().ok()?;
            if sender.is_closed() || since.elapsed() >= IDLE_TIMEOUT {
                continue;
            }
            if sender.is_ready() {
                return Some((sender, since));
            }
            let _ = self.idle_in.try_send((sender, since));
        }
        None
    }

    /// A connection whose response has been read to the end. A full queue drops it,
    /// which closes it.
    fn checkin(&self, sender: SendRequest<Sent>) {
        if !sender.is_closed() {
            let _ = self.idle_in.try_send((sender, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<SendRequest<Sent>, BoxError> {
        let io = self
            .connector
            .clone()
            .call(self.connector.target.clone())
            .await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            // Ends when the upstream closes, or when every handle to it is dropped.
            let _ = conn.await;
        });
        sender.ready().await?;
        Ok(sender)
    }
}

/// Whether a request failed because the connection was closed under it: the upstream
/// reset it, or closed it before any response.
fn closed_under_us(error: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted);
        }
        source = e.source();
    }
    error.is_incomplete_message()
}

/// A response body from the upstream. Over HTTP/1.1 its connection goes back to the pool
/// once the body has been read to the end; dropped before that, the connection closes.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Incoming,
    release: Option<(SendRequest<Sent>, Arc<Pool>)>,
}

impl ResponseBody {
    fn release(&mut self) {
        if let Some((sender, pool)) = self.release.take() {
            pool.checkin(sender);
        }
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Dials the configured upstream whatever host a request's URI names.
#[derive(Debug, Clone)]
pub struct Connector {
    inner: HttpConnector,
    target: http::Uri,
}

impl Service<http::Uri> for Connector {
    type Response = <HttpConnector as Service<http::Uri>>::Response;
    type Error = <HttpConnector as Service<http::Uri>>::Error;
    type Future = <HttpConnector as Service<http::Uri>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _requested: http::Uri) -> Self::Future {
        self.inner.call(self.target.clone())
    }
}

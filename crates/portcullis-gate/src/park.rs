//! HTTP/1.1 connections that give hyper's buffers back while they wait for the next
//! request.
//!
//! hyper keeps a read buffer (8 KiB, reserved again before every read) and a write buffer
//! (8 KiB) for as long as a connection lives, idle or not: with thousands of idle
//! keep-alive connections that is most of their memory. nginx frees its request buffers
//! when a keep-alive connection goes idle (`ngx_http_set_keepalive`); this does the same.
//! Once a connection has served a request and stayed idle, [`Http1::park`] asks hyper to
//! close it (an idle hyper connection closes at once) while the socket is kept open; only
//! the TLS stream and the service remain, and a new hyper connection is made when the
//! socket turns readable.
//!
//! Parking is asked for only when nothing is in flight, and done only if hyper's
//! connection is between messages at that moment: then it closes at once, before it could
//! mark any response `Connection: close`, and what it had read of the next request head
//! is read first by the new one. A connection still busy with a request (a body the gate
//! never read, a response the client has not taken) is closed after that exchange
//! instead: what is left of a request must never be read as a new one. A connection whose
//! new hyper connection starts with part of a head is not parked again until a request
//! begins.
//!
//! A connection whose client asked to close it after a request (`Connection: close`,
//! HTTP/1.0) is never parked; see [`ends_keep_alive`]. The header timeout is the
//! watchdog's, parked or not: it ends a connection with no request head for
//! `header_timeout_secs` after its last exchange ([`Http1::cut`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::conn::Activity;

/// Whether hyper ends the connection after this request (RFC 9112, section 9.3): HTTP/1.0
/// unless it asks for keep-alive, HTTP/1.1 when a `Connection` line says `close`. hyper
/// then stops writing once it has answered, while it may still be reading the request's
/// body for the upstream; asked to close then, it closes at once, without a read or a
/// write that would show it was not between messages. Such a connection is never parked:
/// the rest of the body must never be read as a new request.
pub(crate) fn ends_keep_alive<B>(req: &http::Request<B>) -> bool {
    let says = |token: &str| {
        req.headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    match req.version() {
        http::Version::HTTP_10 => !says("keep-alive"),
        http::Version::HTTP_11 => says("close"),
        _ => false,
    }
}

/// The socket under an HTTP/1.1 connection, as parking needs it.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin {
    /// Ready when the peer sent something (or closed).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
    /// Bytes to be read again before anything new from the peer.
    fn unread(&mut self, bytes: Bytes);
    /// Whether it was read or written while `Activity::keeps_socket`.
    fn touched(&self) -> bool;
}

/// One HTTP/1.1 connection, parked while idle. A future that ends when the connection
/// does.
pub(crate) struct Http1<I, S>
where
    S: HttpService<Incoming>,
{
    builder: http1::Builder,
    activity: Arc<Activity>,
    parked: Gauge,
    state: State<I, S>,
    /// `Activity::begun` when the current hyper connection was made: it may be parked
    /// once something began on it.
    begun_at: u64,
}

enum State<I, S>
where
    S: HttpService<Incoming>,
{
    Serving {
        conn: Box<http1::Connection<TokioIo<I>, S>>,
        parking: bool,
    },
    // Boxed: the TLS stream is large, and this enum is moved on every poll.
    Parked {
        io: Box<I>,
        service: S,
        _counted: Counted,
    },
    Closing(Box<I>),
    Done,
}

impl<I, S, B> Http1<I, S>
where
    I: Socket,
    S: HttpService<Incoming, ResBody = B> + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// `parked` counts the connections parked now.
    pub(crate) fn new(
        builder: http1::Builder,
        activity: Arc<Activity>,
        parked: Gauge,
        io: I,
        service: S,
    ) -> Self {
        let mut http = Http1 {
            begun_at: 0,
            builder,
            activity,
            parked,
            state: State::Done,
        };
        http.serve(io, service);
        http
    }

    /// Asks for hyper's buffers back, done at the next poll, if something began on the
    /// connection since it was last made. The caller knows nothing is in flight.
    pub(crate) fn park(self: Pin<&mut Self>) {
        let this = self.get_mut();
        // Not while a response waits on the client: it would lose keep-alive.
        let (write_blocked, _) = this.activity.socket();
        if let State::Serving { parking, .. } = &mut this.state
            && this.activity.begun() > this.begun_at
            && !write_blocked
            && !this.activity.client_closes()
        {
            *parking = true;
        }
    }

    /// Finishes what is in flight, then closes (with TLS close_notify).
    pub(crate) fn graceful_shutdown(self: Pin<&mut Self>) {
        let this = self.get_mut();
        match &mut this.state {
            State::Serving { conn, parking } => {
                *parking = false;
                Pin::new(&mut **conn).graceful_shutdown();
            }
            State::Parked { .. } => {
                if let State::Parked { io, .. } = std::mem::replace(&mut this.state, State::Done) {
                    this.state = State::Closing(io);
                }
            }
            State::Closing(_) | State::Done => {}
        }
    }

    /// No request head within the header timeout: a parked connection closes cleanly; a
    /// hyper connection, which may hold part of a head or of a response the client stopped
    /// taking, is dropped without a TLS close_notify — as hyper's own header timeout
    /// drops it — so that a truncated response cannot pass for a whole one.
    pub(crate) fn cut(self: Pin<&mut Self>) {
        let this = self.get_mut();
        this.state = match std::mem::replace(&mut this.state, State::Done) {
            State::Parked { io, .. } | State::Closing(io) => State::Closing(io),
            State::Serving { .. } | State::Done => State::Done,
        };
    }

    /// hyper's connection closed: if it was idle, keep its socket and service, and hand
    /// what it had read of the next request back to the socket.
    fn take_apart(&mut self, conn: http1::Connection<TokioIo<I>, S>) {
        let parts = conn.into_parts();
        let mut io = parts.io.into_inner();
        if io.touched() {
            // It read or wrote in the poll that closed it: it finished an exchange then
            // (a flush that had waited, a body it gave up on), so it was not between
            // messages. What follows on the socket may be the rest of a request.
            self.state = State::Closing(Box::new(io));
        } else if parts.read_buf.is_empty() {
            self.state = State::Parked {
                io: Box::new(io),
                service: parts.service,
                _counted: Counted::new(&self.parked),
            };
        } else {
            // The start of a request head: hyper reads it again at once, and the connection
            // is not parked before that request begins.
            io.unread(parts.read_buf);
            self.serve(io, parts.service);
        }
    }

    fn serve(&mut self, io: I, service: S) {
        self.begun_at = self.activity.begun();
        let conn = Box::new(self.builder.serve_connection(TokioIo::new(io), service));
        self.state = State::Serving {
            conn,
            parking: false,
        };
    }
}

impl<I, S, B> Future for Http1<I, S>
where
    I: Socket,
    S: HttpService<Incoming, ResBody = B> + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, State::Done) {
                State::Serving { mut conn, parking } => {
                    if parking {
                        // An idle hyper connection closes at once when asked to; one that
                        // is still busy with a request (its body unread, its response not
                        // yet flushed) only stops keeping alive. That one is let end: what
                        // is left of the request must never be read as a new one.
                        this.activity.keep_socket(true);
                        Pin::new(&mut *conn).graceful_shutdown();
                    }
                    let polled = Pin::new(&mut *conn).poll(cx);
                    if parking {
                        this.activity.keep_socket(false);
                    }
                    match polled {
                        Poll::Pending => {
                            this.state = State::Serving {
                                conn,
                                parking: false,
                            };
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(())) if parking => this.take_apart(*conn),
                        Poll::Ready(_) => return Poll::Ready(()),
                    }
                }
                State::Parked {
                    io,
                    service,
                    _counted,
                } => match io.poll_readable(cx) {
                    Poll::Pending => {
                        this.state = State::Parked {
                            io,
                            service,
                            _counted,
                        };
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(())) => this.serve(*io, service),
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                },
                State::Closing(mut io) => {
                    if Pin::new(&mut *io).poll_shutdown(cx).is_pending() {
                        this.state = State::Closing(io);
                        return Poll::Pending;
                    }
                    return Poll::Ready(());
                }
                State::Done => return Poll::Ready(()),
            }
        }
    }
}

/// One in the parked gauge for as long as it lives.
struct Counted(Gauge);

impl Counted {
    fn new(gauge: &Gauge) -> Counted {
        gauge.inc();
        Counted(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Version};

    use super::ends_keep_alive;

    fn request(version: Version, connection: &[&str]) -> Request<()> {
        let mut r = Request::builder().version(version);
        for line in connection {
            r = r.header("connection", *line);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn requests_that_end_the_connection_are_known_as_hyper_knows_them() {
        assert!(ends_keep_alive(&request(Version::HTTP_10, &[])));
        assert!(!ends_keep_alive(&request(
            Version::HTTP_10,
            &["Keep-Alive"]
        )));
        assert!(!ends_keep_alive(&request(Version::HTTP_11, &[])));
        assert!(!ends_keep_alive(&request(
            Version::HTTP_11,
            &["keep-alive"]
        )));
        assert!(ends_keep_alive(&request(Version::HTTP_11, &["Close"])));
        assert!(ends_keep_alive(&request(Version::HTTP_11, &["x-a, close"])));
        // Every Connection line counts.
        assert!(ends_keep_alive(&request(
            Version::HTTP_11,
            &["x-a", " CLOSE "]
        )));
        assert!(!ends_keep_alive(&request(Version::HTTP_2, &["close"])));
    }
}

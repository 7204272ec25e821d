//! Listeners and connections: TCP accept with connection limits, the TLS handshake (bounded
//! in time) that turns a socket into a [`Connection`], HTTP/1.1 and h2 with the gate's
//! limits, and each connection's watchdog (idle, write progress, age, revocation,
//! shutdown). Also the admin and HTTP-redirect listeners.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::{ClientAuth, Limits};
use crate::conn::{Activity, Connection, Peer, Verified};
use crate::error::{Error, Result};
use crate::gate::{Gate, Shared};
use crate::log;
use crate::metrics::{Closed, Shed};
use crate::outcome::{HandshakeOutcome, Rejection};
use crate::pages;
use crate::park::{self, Http1};
use crate::request;
use crate::sidewake;
use crate::tls::TicketHold;

/// The gate in force. A reload stores a new one; the next request on every open
/// connection is decided by it. Reading it takes no lock.
pub type Current = Arc<ArcSwap<Gate>>;

/// HTTP/2 streams a client may reset before the server accepted them, per connection:
/// beyond this the connection is closed (GOAWAY ENHANCE_YOUR_CALM), which is h2's defence
/// against rapid reset (CVE-2023-44487). hyper's default, set here so it is on record.
const H2_PENDING_RESETS: usize = 20;
/// Streams the server itself may reset for protocol errors before closing the connection.
const H2_LOCAL_RESETS: usize = 256;

impl Gate {
    /// Binds the configured address.
    pub async fn bind(&self) -> Result<TcpListener> {
        let addr = self.listener().listen;
        TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })
    }

    /// An HTTP/1.1 + h2 connection builder with the gate's limits. CONTINUATION floods are
    /// bounded by `max_header_list_size` (h2 ≥ 0.4.4 closes a connection that sends more
    /// CONTINUATION frames than that size can need).
    pub fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let limits = self.listener().limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(limits.header_timeout_secs))
            .max_buf_size(limits.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .max_pending_accept_reset_streams(H2_PENDING_RESETS)
            .max_local_error_reset_streams(H2_LOCAL_RESETS);
        builder
    }

    /// The HTTP/1.1 half of [`Gate::http_builder`], for connections that did not
    /// negotiate h2 (over TLS, h2 must be negotiated with ALPN: RFC 9113, section 3.3).
    /// Without hyper's header timeout: the connection's watchdog enforces it (`watch`).
    fn http1_builder(&self) -> http1::Builder {
        let limits = self.listener().limits;
        let mut builder = http1::Builder::new();
        builder.max_buf_size(limits.max_header_bytes.max(8192));
        builder
    }

    /// The TLS half of the gate, for servers of your own (see [`crate::embed`]): the
    /// handshake, bounded by `handshake_timeout_secs`, then the client's identity, parsed
    /// once. `None` when the handshake fails or the certificate is refused.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer_addr: SocketAddr,
    ) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, Arc<Connection>)> {
        let local_port = tcp.local_addr().map_or(0, |a| a.port());
        let _ = tcp.set_nodelay(true);
        self.accept_on(tcp, peer_addr, local_port).await
    }

    /// [`Gate::accept`] over any stream, for a connection accepted on `local_port` (every
    /// connection a listener accepts has its port: `serve` asks the kernel once, not per
    /// connection).
    async fn accept_on<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        tcp: IO,
        peer_addr: SocketAddr,
        local_port: u16,
    ) -> Option<(tokio_rustls::server::TlsStream<IO>, Arc<Connection>)> {
        let metrics = &self.shared.metrics;
        let fail = |outcome: HandshakeOutcome, detail: &str| {
            metrics.handshake(outcome);
            log::handshake_failed(peer_addr, outcome, detail);
            None
        };
        // Read the ClientHello first: its SNI chooses the site, and so the certificate,
        // the client CAs and the client-auth mode of the handshake.
        let handshake = async {
            let start =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
                    .await
                    .map_err(|e| (crate::tls::handshake_failure(&e), e.to_string()))?;
            let sni = start.client_hello().server_name().map(str::to_owned);
            let Some(site) = self.site_for(sni.as_deref()).cloned() else {
                // Refuse with a TLS alert rather than a silent close, so the client can
                // tell a refusal from a network fault.
                let _ = start.into_stream(self.refusing.clone()).await;
                return Err((
                    HandshakeOutcome::NoHost,
                    format!(
                        "no host serves {:?} and no_sni = \"reject\"",
                        sni.as_deref().unwrap_or("(no SNI)")
                    ),
                ));
            };
            let config = site.tls.config_for(&start.client_hello());
            let stream = start
                .into_stream(config)
                .await
                .map_err(|e| (crate::tls::handshake_failure(&e), e.to_string()))?;
            Ok((stream, site))
        };
        let limit = Duration::from_secs(self.listener().limits.handshake_timeout_secs);
        let (tls, site) = match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err((outcome, detail))) => return fail(outcome, &detail),
            Err(_) => return fail(HandshakeOutcome::Timeout, "no complete handshake in time"),
        };
        let session = tls.get_ref().1;
        let sni = session.server_name().map(str::to_owned);
        // With client authentication off, no certificate is an identity — not even one a
        // session ticket brings back from a configuration that asked for it.
        let chain = session
            .peer_certificates()
            .filter(|c| !c.is_empty() && site.config().client_auth != ClientAuth::Off);
        // rustls enforces a mandatory certificate in full handshakes only: a resumed
        // session brings back whatever its ticket holds, and a ticket issued while the
        // site (or the site this SNI reached then) did not require one holds none.
        if chain.is_none() && site.config().client_auth == ClientAuth::Require {
            return fail(
                HandshakeOutcome::NoCertificate,
                "resumed session without a certificate; this host requires one",
            );
        }
        let peer = match chain {
            Some(chain) => {
                // With invalid_cert = "anonymous" the handshake deferred chain
                // verification to here; this check is what makes an identity possible.
                // A resumed session skipped verification in the handshake; check the
                // certificate again now, against today's CAs and CRLs.
                let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                let now = rustls::pki_types::UnixTime::now();
                let verified = match (resumed, &site.tls.recheck, &site.tls.deferred) {
                    (true, Some(recheck), _) => recheck.check(chain, now),
                    // A resumed session with nothing to check it against: no identity.
                    (true, None, _) => Err(Rejection::UnknownCa),
                    (false, _, Some(deferred)) => {
                        crate::tls::verify_chain(deferred.as_ref(), chain, now)
                            .and_then(|()| Verified::from_chain(chain).map(Arc::new))
                    }
                    // Verified in this handshake by the site's verifier.
                    (false, Some(recheck), None) => recheck.accepted(chain),
                    (false, None, None) => Verified::from_chain(chain).map(Arc::new),
                };
                match verified {
                    Ok(verified) => Peer::Verified(verified),
                    Err(why) if site.tls.deferred.is_some() => Peer::Failed(why),
                    // A verified certificate whose fields we refuse to interpret (a NUL in
                    // the CN, …), or a resumed session whose certificate is now refused,
                    // gets nothing: fail closed, close the connection.
                    Err(why) => {
                        let detail = if resumed {
                            "resumed session; the certificate was checked again and refused"
                        } else {
                            "the certificate's subject cannot be used as an identity"
                        };
                        return fail(HandshakeOutcome::Refused(why), detail);
                    }
                }
            }
            None => Peer::Anonymous,
        };
        let registration = match &peer {
            Peer::Verified(v) if self.listener().close_revoked_connections => {
                Some(self.shared.registry.register(v.chain.clone(), site.key()))
            }
            _ => None,
        };
        // How many responses can be in flight at once on this connection.
        let streams = match session.alpn_protocol() {
            Some(b"h2") => self.listener().limits.h2_max_concurrent_streams as usize + 8,
            _ => 2,
        };
        let conn = Connection::new(
            peer_addr,
            local_port,
            sni.as_deref(),
            peer,
            site,
            self.generation,
            registration,
            streams,
        );
        metrics.handshake(HandshakeOutcome::Ok);
        Some((tls, Arc::new(conn)))
    }
}

// === accept loop ===

/// Open connections per client address, for `max_connections_per_client`. The lock is
/// taken when a connection opens and closes, never per request.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One client's connection slot; returned when dropped.
struct ClientSlot(Arc<PerClient>, IpAddr);

impl PerClient {
    fn enter(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(ClientSlot(self.clone(), ip))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

/// Accepts connections until `shutdown` completes, then stops accepting, lets every open
/// connection finish the request it is serving (and close), and returns once they have —
/// or after `shutdown_grace_secs`. Returns the number of connections still open at the
/// deadline.
///
/// Each connection runs on its own task. Connections beyond `max_connections`, or beyond
/// `max_connections_per_client` for one address, are closed at once.
pub async fn serve(
    current: Current,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<usize> {
    let max = current.load().listener().limits.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let per_client = Arc::new(PerClient::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let local_port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (tcp, peer_addr) = match accepted {
            Ok(c) => c,
            // Out of file descriptors and similar: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let gate = current.load_full();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            gate.shared.metrics.shed(Shed::MaxConnections);
            continue;
        };
        let limit = gate.listener().limits.max_connections_per_client;
        let Some(client_slot) = per_client.enter(peer_addr.ip(), limit) else {
            gate.shared.metrics.shed(Shed::PerClient);
            continue;
        };
        let current = current.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(current, gate, tcp, peer_addr, local_port, stop).await;
            drop((permit, client_slot));
        });
    }
    drop(listener);
    let gate = current.load_full();
    gate.shared.metrics.set_ready(false);
    let grace = Duration::from_secs(gate.listener().limits.shutdown_grace_secs);
    // Every connection finishes the request it is serving and closes; each returns its
    // slot when done, so holding all slots means all are done.
    let _ = stop_tx.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(grace, slots.acquire_many(all)).await {
        Ok(_) => Ok(0),
        Err(_) => Ok(max - slots.available_permits()),
    }
}

/// One connection, from the handshake to the close. `gate` is the configuration in force
/// when it was accepted: its TLS settings and limits apply to the whole connection, while
/// each request is decided by the gate in `current` at that moment.
async fn connection(
    current: Current,
    gate: Arc<Gate>,
    tcp: TcpStream,
    peer_addr: SocketAddr,
    local_port: u16,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let shared = gate.shared.clone();
    // Made only for h2, and outliving the connection that borrows it.
    let h2_builder;
    // In a block, and the handshake boxed: an async fn keeps a slot in its state for each
    // local that lives across an await, even after it is moved, so the TLS stream and the
    // handshake would otherwise stay in this task for the connection's whole life (about
    // 5 KiB per idle connection). After the block only `serving`'s box holds the stream.
    let (conn, mut serving) = {
        let _ = tcp.set_nodelay(true);
        let tcp = TicketHold::new(tcp);
        let Some((mut tls, conn)) = Box::pin(gate.accept_on(tcp, peer_addr, local_port)).await
        else {
            return;
        };
        tls.get_mut().0.release();
        // A reload while this handshake ran may have revoked the certificate after the old
        // configuration verified it, and before this connection was registered for the
        // reload's sweep: check it against the configuration in force now.
        if conn.verified().is_some() {
            let now = current.load_full();
            if now.generation != gate.generation && !now.still_accepts(&conn, tls.get_ref().1) {
                let outcome = HandshakeOutcome::Refused(Rejection::Revoked);
                shared.metrics.handshake(outcome);
                log::handshake_failed(
                    peer_addr,
                    outcome,
                    "refused by a configuration loaded during the handshake",
                );
                return;
            }
        }
        let service = {
            let (current, shared, conn) = (current.clone(), shared.clone(), conn.clone());
            service_fn(move |req| {
                if park::ends_keep_alive(&req) {
                    conn.activity.set_client_closes();
                }
                request::handle(&current, &shared, &conn, req)
            })
        };
        let alpn_h2 = tls.get_ref().1.alpn_protocol().map(|p| p == b"h2");
        let mut io = Written {
            inner: tls,
            activity: conn.activity.clone(),
            unread: Bytes::new(),
            touched: false,
        };
        let header_timeout = Duration::from_secs(gate.listener().limits.header_timeout_secs);
        let h2 = match alpn_h2 {
            Some(h2) => h2,
            None => match starts_with_h2_preface(&mut io, header_timeout).await {
                Some(h2) => h2,
                None => return,
            },
        };
        let serving = if h2 {
            h2_builder = gate.http_builder();
            Serving::H2(Box::pin(
                h2_builder.serve_connection(TokioIo::new(io), service),
            ))
        } else {
            let (activity, parked) = (conn.activity.clone(), shared.metrics.parked());
            let http1 = Http1::new(gate.http1_builder(), activity, parked, io, service);
            Serving::Http1(Box::new(http1))
        };
        (conn, serving)
    };
    shared.metrics.connection_opened();
    let _open = OpenGuard(&shared.metrics);
    let limits = gate.listener().limits;
    drop(gate);
    match &mut serving {
        Serving::H2(h2) => {
            let h2 = h2.as_mut();
            let ask = |h2: Pin<&mut _>, ask| {
                if let Ask::Shut = ask {
                    auto::Connection::graceful_shutdown(h2);
                }
            };
            watch(&conn, &shared, limits, stop, h2, ask, None).await;
        }
        Serving::Http1(h1) => {
            let h1 = Pin::new(&mut **h1);
            let ask = |h1: Pin<&mut _>, ask| match ask {
                Ask::Shut => Http1::graceful_shutdown(h1),
                Ask::Park => Http1::park(h1),
                Ask::Cut => Http1::cut(h1),
            };
            let header_limit = Duration::from_secs(limits.header_timeout_secs);
            watch(&conn, &shared, limits, stop, h1, ask, Some(header_limit)).await;
        }
    }
}

/// Whether a client that negotiated no protocol with ALPN starts with HTTP/2's preface
/// (h2 with prior knowledge, which some proxies send over TLS although RFC 9113 section
/// 3.3 asks for ALPN). What it read is put back for the HTTP connection. `None` when
/// the client sends nothing within `within`, or the read fails.
async fn starts_with_h2_preface(
    io: &mut Written<tokio_rustls::server::TlsStream<TicketHold>>,
    within: Duration,
) -> Option<bool> {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut start = [0u8; 24];
    let mut n = 0;
    let read = async {
        while n < PREFACE.len() && start[..n] == PREFACE[..n] {
            match io.inner.read(&mut start[n..]).await? {
                0 => break,
                got => n += got,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(within, read).await.ok()?.ok()?;
    io.unread = Bytes::copy_from_slice(&start[..n]);
    Some(start[..n] == PREFACE[..])
}

/// The HTTP side of a connection: h2, or HTTP/1.1 parked while idle.
enum Serving<H2, H1> {
    H2(Pin<Box<H2>>),
    Http1(Box<H1>),
}

/// HTTP/1.1 connections idle this long give hyper's buffers back (see `park.rs`). A
/// client that pauses longer than this between requests pays for a new hyper connection
/// (about a microsecond); one that keeps its connection open for later keeps about 16 KiB
/// less in the gate.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// What the watchdog asks of the HTTP side of a connection.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// Finish what is in flight, then close (with TLS close_notify).
    Shut,
    /// Idle a while: give the HTTP buffers back (HTTP/1.1).
    Park,
    /// No request within the header timeout: close now (HTTP/1.1).
    Cut,
}

/// What woke the watchdog.
enum Event {
    Stop,
    Tick,
}

/// Serves a connection until it ends; closes it when it is idle too long, too old,
/// stalled or revoked, or when the gate stops; parks it when idle a while. `header_limit`
/// (HTTP/1.1): the time from the end of one exchange (or the handshake) to the next
/// request's head, which the watchdog enforces instead of hyper's `header_read_timeout`
/// — hyper's arms a timer for every request, and this costs nothing per request.
async fn watch<F: Future>(
    conn: &Connection,
    shared: &Shared,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut serving: Pin<&mut F>,
    mut ask: impl FnMut(Pin<&mut F>, Ask),
    header_limit: Option<Duration>,
) {
    let revoked = conn.registration.as_ref().map(|r| r.close.clone());
    let idle_limit = Duration::from_secs(limits.idle_timeout_secs);
    let write_limit = Duration::from_secs(limits.write_timeout_secs);
    let drain_limit = Duration::from_secs(limits.shutdown_grace_secs);
    let max_age = (limits.max_connection_age_secs > 0)
        .then(|| Duration::from_secs(limits.max_connection_age_secs));
    let activity = conn.activity.clone();
    let shortest = header_limit.map_or(idle_limit, |h| h.min(idle_limit));
    let tick =
        (shortest.min(write_limit) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let write_ticks =
        u64::try_from(write_limit.as_millis().div_ceil(tick.as_millis())).unwrap_or(u64::MAX);
    // When a graceful close began: a drain gets `shutdown_grace_secs`, then it is cut.
    let mut draining: Option<Instant> = None;
    // Since which tick the socket has waited on the client, and its write count then.
    let mut socket_wait: Option<(u64, u64)> = None;
    // The socket's write count at the previous tick.
    let mut written = 0;
    let wake = Arc::new(sidewake::SideWake::default());
    loop {
        let events = async {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop), if draining.is_none() => Event::Stop,
                () = async {
                    match &revoked {
                        Some(n) => n.notified().await,
                        None => std::future::pending().await,
                    }
                }, if draining.is_none() => Event::Stop,
                () = tokio::time::sleep(tick) => Event::Tick,
            }
        };
        let Some(event) = sidewake::race(&wake, serving.as_mut(), events).await else {
            return;
        };
        if let Event::Stop = event {
            ask(serving.as_mut(), Ask::Shut);
            draining = Some(Instant::now());
            continue;
        }
        let now = activity.tick();
        // A client that stops taking what it asked for is cut, draining or not: a
        // graceful close would wait for it forever.
        let (blocked, writes) = activity.socket();
        socket_wait = match socket_wait {
            Some((since, seen)) if blocked && seen == writes => Some((since, seen)),
            _ if blocked => Some((now, writes)),
            _ => None,
        };
        let socket_stalled = socket_wait.is_some_and(|(since, _)| now - since >= write_ticks);
        // Still delivering a response whose body has ended (hyper holds its last bytes).
        let writing = std::mem::replace(&mut written, writes) != writes;
        if socket_stalled || activity.body_stalled(now, write_ticks) {
            shared.metrics.closed(Closed::Stalled);
            return;
        }
        let idle = activity.idle();
        match draining {
            // Nothing in flight and still open (an h2 client that ignores GOAWAY), or
            // still busy when the drain's time is up.
            Some(began) if idle >= write_limit || began.elapsed() >= drain_limit => {
                shared.metrics.closed(Closed::Drain);
                return;
            }
            Some(_) => {}
            // A head begun and not finished, or none begun: as hyper's own header timeout
            // would, without an answer. Not while the last response is still being taken
            // (the write limit bounds that), nor after a client asked to close: hyper
            // closes those itself once the response is out, and cutting one could pass a
            // truncated response without a length for a whole one.
            None if header_limit.is_some_and(|h| idle >= h)
                && !(blocked || writing)
                && !activity.client_closes() =>
            {
                ask(serving.as_mut(), Ask::Cut);
                draining = Some(Instant::now());
            }
            None if idle >= idle_limit || max_age.is_some_and(|m| activity.age() >= m) => {
                ask(serving.as_mut(), Ask::Shut);
                draining = Some(Instant::now());
            }
            None if idle >= PARK_AFTER => ask(serving.as_mut(), Ask::Park),
            None => {}
        }
    }
}

/// Decrements the open-connections gauge however the connection task ends.
struct OpenGuard<'a>(&'a crate::metrics::Metrics);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// The client's socket, telling the connection's [`Activity`] when writes complete and
/// when they have to wait: the write-progress limit needs to know that the client stopped
/// reading.
struct Written<T> {
    inner: T,
    activity: Arc<Activity>,
    /// Read before `inner`: what hyper had read of a request when its connection was
    /// parked.
    unread: Bytes,
    /// Whether hyper read or wrote while asked to close for parking: then it was not
    /// idle, and the connection must end instead (see `park.rs`).
    touched: bool,
}

impl<T: AsyncRead + Unpin> AsyncRead for Written<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.touch();
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl park::Socket for Written<tokio_rustls::server::TlsStream<TicketHold>> {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.get_ref().0.tcp().poll_read_ready(cx)
    }

    fn unread(&mut self, bytes: Bytes) {
        self.unread = bytes;
    }

    fn touched(&self) -> bool {
        self.touched
    }
}

impl<T> Written<T> {
    fn touch(&mut self) {
        if self.activity.keeps_socket() {
            self.touched = true;
        }
    }
}

impl<T: AsyncWrite + Unpin> Written<T> {
    fn track<R: Copy + Into<usize>>(
        &self,
        polled: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        match &polled {
            Poll::Ready(Ok(n)) => self.activity.wrote(Some((*n).into())),
            Poll::Pending => self.activity.wrote(None),
            Poll::Ready(Err(_)) => {}
        }
        polled
    }
}

/// A flush moves no new bytes of its own: it counts as "not waiting", not as progress.
#[derive(Clone, Copy)]
struct Flushed;

impl From<Flushed> for usize {
    fn from(_: Flushed) -> usize {
        0
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Written<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.touch();
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.touch();
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(polled.map_ok(|()| Flushed)).map_ok(drop)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // hyper closing an idle connection that is being parked: the socket stays.
        if self.activity.keeps_socket() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// === admin and redirect listeners ===

/// Serves plain HTTP/1.1 on `listener`: each request answered by `page` with the gate in
/// force. For the admin and redirect listeners, which never see client certificates.
async fn serve_plain(
    current: Current,
    listener: TcpListener,
    page: impl Fn(&Gate, &http::Request<hyper::body::Incoming>) -> pages::Page
    + Clone
    + Send
    + Sync
    + 'static,
) -> Result<()> {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (current, page) = (current.clone(), page.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let answer = page(&current.load(), &req);
                async move { Ok::<_, Infallible>(answer) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Serves the admin listener: `/metrics` (Prometheus text), `/healthz` (the process is
/// up), `/readyz` (accepting connections; 503 while draining) and `/config` (the version
/// and load time of the configuration in force).
pub async fn serve_admin(current: Current, listener: TcpListener) -> Result<()> {
    serve_plain(current, listener, |gate, req| {
        admin_page(gate, req.uri().path())
    })
    .await
}

fn admin_page(gate: &Gate, path: &str) -> pages::Page {
    let (status, content_type, body) = match path {
        "/metrics" => {
            let now = x509_parser::time::ASN1Time::now().timestamp();
            let expiry: Vec<(&'static str, String, f64)> = gate
                .sites()
                .iter()
                .flat_map(|site| site.tls.expiry.iter())
                .map(|(k, s, t)| (*k, s.clone(), (t - now) as f64 / 86_400.0))
                .collect();
            (
                200,
                crate::metrics::CONTENT_TYPE,
                gate.shared.metrics.render(&expiry, log::dropped()),
            )
        }
        "/healthz" => (200, "text/plain", "ok\n".to_owned()),
        "/config" => {
            let (version, loaded_at) = gate.version();
            (
                200,
                "application/json",
                serde_json::json!({
                    "version": version,
                    "loaded_at": loaded_at,
                    "file": gate.config().source,
                })
                .to_string(),
            )
        }
        "/readyz" if !gate.shared.metrics.ready() => (503, "text/plain", "draining\n".to_owned()),
        "/readyz" => (200, "text/plain", "ready\n".to_owned()),
        _ => (
            404,
            "text/plain",
            "not found: try /metrics, /healthz, /readyz or /config\n".to_owned(),
        ),
    };
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// Serves the plain-HTTP listener: a request for one of the gate's names gets a 308 to
/// HTTPS on `https_port` (the port the TLS listener really bound); any other Host gets
/// 400, so the listener is never an open redirect.
pub async fn serve_redirects(
    current: Current,
    listener: TcpListener,
    https_port: u16,
) -> Result<()> {
    serve_plain(current, listener, move |gate, req| {
        redirect(gate, req, https_port)
    })
    .await
}

fn redirect<B>(gate: &Gate, req: &http::Request<B>, https_port: u16) -> pages::Page {
    // The port of a plain-HTTP Host is not the HTTPS one: any port will do.
    let checked = request::check_authority(
        req.version(),
        req.uri(),
        req.headers(),
        None,
        |h| gate.sites().iter().any(|s| s.serves(h)),
        |_| true,
    );
    let Ok(authority) = checked else {
        return pages::Pages::default().refusal(
            &pages::Refusal::BadRequest("this server redirects only its own host names to HTTPS"),
            false,
        );
    };
    let host = authority.host();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    pages::redirect(&format!("https://{host}{port}{pq}"))
}

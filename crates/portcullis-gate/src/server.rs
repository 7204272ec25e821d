//! Listeners and connections: TCP accept, TLS handshake (bounded in time), the identity
//! parsed once per connection, then hyper (HTTP/1.1 and h2) with the gate's handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_policy::{Identity, RoleSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::Gate;
use crate::error::{Error, Result};
use crate::handler;
use crate::pages;

/// Who is on the other end of a connection, decided once after the handshake.
#[derive(Debug)]
pub enum Peer {
    /// No certificate (optional mode, or client auth off).
    Anonymous,
    /// A certificate that rustls verified (chain, validity, CRL, clientAuth EKU).
    Verified(Box<Verified>),
    /// A certificate was presented and refused (`invalid_cert = "anonymous"` only):
    /// treated as anonymous, with the reason shown to pages and the upstream.
    Failed(&'static str),
}

/// A verified client: its identity, roles and the headers that carry them upstream.
#[derive(Debug)]
pub struct Verified {
    pub identity: Identity,
    pub roles: RoleSet,
    pub role_names: Vec<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `CN=alice`-style label for pages.
    pub label: String,
}

impl Connection {
    /// The verified client, if there is one.
    pub fn verified(&self) -> Option<&Verified> {
        match &self.peer {
            Peer::Verified(v) => Some(v),
            Peer::Anonymous | Peer::Failed(_) => None,
        }
    }
}

/// Per-connection facts shared by all requests on it.
#[derive(Debug)]
pub struct Connection {
    pub peer_addr: SocketAddr,
    /// Lower-case SNI host name, if the client sent one.
    pub sni: Option<String>,
    pub peer: Peer,
    /// `for=…;proto=https` of the Forwarded header, and the X-Forwarded-For value.
    pub forwarded_for: HeaderValue,
    pub forwarded_prefix: String,
    /// For verified clients: the entry that lets a reload close this connection when the
    /// certificate is revoked. Removed from the registry when the connection is dropped.
    pub registration: Option<crate::registry::Registration>,
    /// The virtual host this connection was made for (chosen by SNI).
    pub site: Arc<crate::Site>,
    /// Requests in flight and when the last one ended, for the idle limit.
    pub activity: Activity,
    /// `X-Client-Verify` for a caller without an identity: `NONE`, or `FAILED:reason`.
    pub verify_header: HeaderValue,
}

/// Per-connection request activity: two atomics, updated by the handler.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    /// Milliseconds since the connection opened, when the last request ended.
    last_ms: std::sync::atomic::AtomicU64,
    opened: std::sync::OnceLock<std::time::Instant>,
}

impl Activity {
    fn new() -> Activity {
        let a = Activity::default();
        let _ = a.opened.set(std::time::Instant::now());
        a
    }

    fn now_ms(&self) -> u64 {
        self.opened.get().map_or(0, |t| {
            u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
        })
    }

    /// Marks a request as started; the guard marks it ended.
    pub fn begin(&self) -> ActivityGuard<'_> {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ActivityGuard(self)
    }

    /// How long the connection has had nothing in flight (zero while a request runs).
    pub fn idle(&self) -> Duration {
        if self.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = self.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }
}

/// Ends a request's activity when dropped (however the request ends).
#[derive(Debug)]
pub struct ActivityGuard<'a>(&'a Activity);

impl Drop for ActivityGuard<'_> {
    fn drop(&mut self) {
        self.0
            .last_ms
            .store(self.0.now_ms(), std::sync::atomic::Ordering::Relaxed);
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Gate {
    /// Binds the configured address.
    pub async fn bind(&self) -> Result<TcpListener> {
        let addr = self.config.listen;
        TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })
    }

    /// Accepts connections forever (see [`Gate::serve_until`]).
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        self.serve_until(listener, std::future::pending())
            .await
            .map(drop)
    }

    /// [`serve_current`] with this gate and no reloads.
    pub async fn serve_until(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<usize> {
        serve_current(Arc::new(ArcSwap::new(self)), listener, shutdown).await
    }
}

/// The gate in force. A reload stores a new one; new connections take the current gate,
/// open connections keep the one they started with. Reading it takes no lock.
pub type Current = Arc<ArcSwap<Gate>>;

/// Accepts connections until `shutdown` completes, then stops accepting, lets every open
/// connection finish the request it is serving (and close), and returns once they have —
/// or after `shutdown_grace_secs`. Returns the number of connections still open at the
/// deadline.
///
/// Each connection runs on its own task; the number of open connections is capped
/// (excess connections are closed at once).
pub async fn serve_current(
    current: Current,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<usize> {
    let max = current.load().config.limits.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        // A connection lives with the configuration it started under.
        let gate = current.load_full();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            gate.connection(tcp, peer_addr, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let gate = current.load_full();
    gate.metrics.set_ready(false);
    let grace = Duration::from_secs(gate.config.limits.shutdown_grace_secs);
    // Every connection finishes the request it is serving and closes; each returns its
    // slot when done, so holding all slots means all are done.
    let _ = stop_tx.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(grace, slots.acquire_many(all)).await {
        Ok(_) => Ok(0),
        Err(_) => Ok(max - slots.available_permits()),
    }
}

impl Gate {
    /// The TLS half of the gate, for servers of your own (see [`crate::embed`]): the
    /// handshake, bounded by `handshake_timeout_secs`, then the client's identity, parsed
    /// once. `None` when the handshake fails or the certificate is refused.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer_addr: SocketAddr,
    ) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, Arc<Connection>)> {
        let _ = tcp.set_nodelay(true);
        // Read the ClientHello first: its SNI chooses the site, and so the certificate,
        // the client CAs and the client-auth mode of the handshake.
        let handshake = async {
            let start =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
                    .await?;
            let sni = start.client_hello().server_name().map(str::to_owned);
            let Some(site) = self.site_for(sni.as_deref()).cloned() else {
                // Refuse with a TLS alert rather than a silent close, so the client can
                // tell a refusal from a network fault.
                let _ = start.into_stream(self.refusing.clone()).await;
                return Err(std::io::Error::other(rustls::Error::General(format!(
                    "no host serves {:?} and no_sni = \"reject\"",
                    sni.as_deref().unwrap_or("(no SNI)")
                ))));
            };
            let stream = start.into_stream(site.acceptor_config.clone()).await?;
            Ok((stream, site))
        };
        let limit = Duration::from_secs(self.config.limits.handshake_timeout_secs);
        let (tls, site) = match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let reason = crate::tls::handshake_failure(&e);
                self.metrics.handshake(reason);
                if let Some(log) = &self.log {
                    log.handshake_failed(peer_addr, reason, &e.to_string());
                }
                return None;
            }
            Err(_) => {
                self.metrics.handshake("timeout");
                if let Some(log) = &self.log {
                    log.handshake_failed(peer_addr, "timeout", "no complete handshake in time");
                }
                return None;
            }
        };
        let (_, session) = tls.get_ref();
        let sni = session.server_name().map(str::to_ascii_lowercase);
        let peer = match session.peer_certificates() {
            Some(chain) if !chain.is_empty() => {
                // With invalid_cert = "anonymous" the handshake deferred chain
                // verification to here; this check is what makes an identity possible.
                // A resumed session skipped verification in the handshake; check the
                // certificate again now, against today's CAs and CRLs.
                let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                let verifier = match (&site.tls.deferred, resumed) {
                    (Some(v), _) => Some(v),
                    (None, true) => site.tls.recheck.as_ref(),
                    (None, false) => None,
                };
                let verdict = match verifier {
                    Some(verifier) => verifier
                        .verify_client_cert(
                            &chain[0],
                            &chain[1..],
                            rustls::pki_types::UnixTime::now(),
                        )
                        .map(drop)
                        .map_err(|e| crate::tls::failure_reason(&e)),
                    None => Ok(()),
                };
                match verdict
                    .and_then(|()| Identity::from_der(&chain[0]).map_err(|_| "invalid-subject"))
                {
                    Ok(identity) => {
                        Peer::Verified(Box::new(Gate::verified(&site, identity, chain)))
                    }
                    Err(reason) if site.tls.deferred.is_some() => Peer::Failed(reason),
                    // A verified certificate whose fields we refuse to interpret (a NUL in
                    // the CN, …) gets nothing: fail closed, close the connection.
                    Err(reason) => {
                        // A resumed session re-checked and refused says why (revoked, …).
                        let outcome = if reason == "invalid-subject" {
                            "bad-certificate"
                        } else {
                            reason
                        };
                        self.metrics.handshake(outcome);
                        if let Some(log) = &self.log {
                            let detail = if resumed {
                                "resumed session, certificate re-checked"
                            } else {
                                reason
                            };
                            log.handshake_failed(peer_addr, outcome, detail);
                        }
                        return None;
                    }
                }
            }
            _ => Peer::Anonymous,
        };
        let ip = peer_addr.ip();
        let forwarded_prefix = match ip {
            std::net::IpAddr::V4(a) => format!("for={a};proto=https"),
            std::net::IpAddr::V6(a) => format!("for=\"[{a}]\";proto=https"),
        };
        let registration = match (&peer, session.peer_certificates()) {
            (Peer::Verified(_), Some(chain)) if self.config.close_revoked_connections => {
                Some(self.registry.register(chain, site.key()))
            }
            _ => None,
        };
        let verify_header = match &peer {
            Peer::Failed(reason) => crate::identity_headers::text(&format!("FAILED:{reason}")),
            _ => HeaderValue::from_static("NONE"),
        };
        let conn = Arc::new(Connection {
            peer_addr,
            sni,
            peer,
            forwarded_for: crate::identity_headers::text(&ip.to_string()),
            verify_header,
            forwarded_prefix,
            registration,
            site,
            activity: Activity::new(),
        });

        self.metrics.handshake("ok");
        Some((tls, conn))
    }

    /// An HTTP/1.1 + h2 connection builder with the gate's limits.
    pub fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let limits = self.config.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(limits.header_timeout_secs))
            .max_buf_size(limits.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        builder
    }

    async fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer_addr: SocketAddr,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some((tls, conn)) = self.accept(tcp, peer_addr).await else {
            return;
        };
        self.metrics.connection_opened();
        let _open = OpenGuard(&self.metrics);
        let revoked = conn.registration.as_ref().map(|r| r.close.clone());
        let idle_limit = Duration::from_secs(self.config.limits.idle_timeout_secs.max(1));
        let watched = conn.clone();
        let gate = self.clone();
        let service = service_fn(move |req| {
            let gate = gate.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(handler::handle(&gate, &conn, req).await) }
        });
        let builder = self.http_builder();
        let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(tls), service));
        // Close gracefully (the request in flight finishes, then the connection closes)
        // when the gate shuts down or a reload revokes this client's certificate.
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.wait_for(|stop| *stop) => {}
            () = async {
                match &revoked {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            } => {}
            // HTTP/1.1 idles end at the header timeout; this covers h2 as well.
            () = async {
                loop {
                    tokio::time::sleep(idle_limit / 4).await;
                    if watched.activity.idle() >= idle_limit {
                        break;
                    }
                }
            } => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }

    fn verified(
        site: &crate::Site,
        identity: Identity,
        chain: &[rustls::pki_types::CertificateDer<'_>],
    ) -> Verified {
        let policy = &site.config.policy;
        let roles = policy.roles_of(&identity);
        let headers = site.names.for_identity(&identity, chain, policy, roles);
        let role_names = policy.role_list(roles).map(str::to_owned).collect();
        let label = match &identity.common_name {
            Some(cn) => format!("CN={cn}"),
            None => identity.subject.clone(),
        };
        Verified {
            identity,
            roles,
            role_names,
            headers,
            label,
        }
    }

    /// [`serve_admin`] for this gate alone.
    pub async fn serve_admin(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        serve_admin(Arc::new(ArcSwap::new(self)), listener).await
    }
}

/// Serves the admin listener: `/metrics` (Prometheus text), `/healthz` (the process is
/// up), `/readyz` (accepting connections; 503 while draining) and `/config` (the version
/// and load time of the configuration in force).
pub async fn serve_admin(current: Current, listener: TcpListener) -> Result<()> {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let current = current.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let gate = current.load_full();
                async move { Ok::<_, Infallible>(gate.admin_page(req.uri().path())) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

impl Gate {
    fn admin_page(&self, path: &str) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        let now = x509_parser::time::ASN1Time::now().timestamp();
        let (status, content_type, body) = match path {
            "/metrics" => {
                let expiry: Vec<(&str, String, f64)> = self
                    .sites
                    .iter()
                    .flat_map(|site| site.tls.expiry.iter())
                    .map(|(k, s, t)| (*k, s.clone(), (t - now) as f64 / 86_400.0))
                    .collect();
                (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.render(&expiry),
                )
            }
            "/healthz" => (200, "text/plain", "ok\n".to_owned()),
            "/config" => (
                200,
                "application/json",
                serde_json::json!({ "version": self.version, "loaded_at": self.loaded_at, "file": self.config.source }).to_string(),
            ),
            "/readyz" if !self.metrics.ready() => {
                (503, "text/plain", "draining\n".to_owned())
            }
            "/readyz" => (200, "text/plain", "ready\n".to_owned()),
            _ => (
                404,
                "text/plain",
                "not found: try /metrics, /healthz or /readyz\n".to_owned(),
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

    /// Serves the plain-HTTP listener: every request gets a 308 to HTTPS on `https_port`
    /// (the port the TLS listener really bound), nothing else.
    pub async fn serve_redirects(
        self: Arc<Self>,
        listener: TcpListener,
        https_port: u16,
    ) -> Result<()> {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(
                    move |req: http::Request<hyper::body::Incoming>| async move {
                        let host = req
                            .headers()
                            .get(http::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .map(|h| handler::host_only(h).to_owned());
                        let pq = req
                            .uri()
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_owned();
                        Ok::<_, Infallible>(match host {
                            Some(h) if !h.is_empty() => {
                                let h = if h.contains(':') { format!("[{h}]") } else { h };
                                let port = if https_port == 443 {
                                    String::new()
                                } else {
                                    format!(":{https_port}")
                                };
                                pages::redirect(&format!("https://{h}{port}{pq}"))
                            }
                            _ => pages::Pages::default().refusal(
                                &pages::Refusal::BadRequest("the Host header is missing"),
                                false,
                            ),
                        })
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
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

//! The gate inside your own server: TLS with client certificates on your listener, the
//! policy as a tower layer in front of your routes, and the caller's identity as a request
//! extension — so handlers contain no security code.
//!
//! ```text
//! let gate = Arc::new(Gate::load(Config::from_file(path)?, None)?);
//! let listener = gate.bind().await?;
//! loop {
//!     let (tcp, addr) = listener.accept().await?;
//!     let (gate, app) = (gate.clone(), app.clone());
//!     tokio::spawn(async move {
//!         let Some((tls, conn)) = gate.accept(tcp, addr).await else { return };
//!         let service = gate.layer(conn).layer(app);          // tower_layer::Layer
//!         let _ = gate.http_builder()
//!             .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
//!             .await;
//!     });
//! }
//! // In a handler: Extension(caller): Extension<Caller>, caller.identity(), caller.roles()
//! ```
//!
//! `examples/authorized.rs` is a complete axum application, and the `upstream` setting of
//! the configuration is not used when embedding.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use portcullis_policy::Identity;

use crate::Gate;
use crate::handler::check;
use crate::server::{Connection, Peer};

/// The caller of a request, for handlers (axum: `Extension<Caller>`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Caller(Arc<Connection>);

impl Caller {
    /// The verified identity, or `None` for an anonymous caller.
    pub fn identity(&self) -> Option<&Identity> {
        self.0.verified().map(|v| &v.identity)
    }

    /// The roles the policy granted this caller.
    pub fn roles(&self) -> &[String] {
        self.0.verified().map_or(&[], |v| v.role_names.as_slice())
    }

    /// Why a presented certificate was refused (`invalid_cert = "anonymous"` only).
    pub fn refused_because(&self) -> Option<&'static str> {
        match self.0.peer {
            Peer::Failed(reason) => Some(reason),
            _ => None,
        }
    }

    /// The client's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.0.peer_addr
    }
}

/// Applies the gate's checks (canonical path, Host vs SNI, policy, identity headers) in
/// front of a service, for one connection. Build one per accepted connection with
/// [`Gate::layer`].
#[derive(Debug, Clone)]
pub struct PolicyLayer {
    gate: Arc<Gate>,
    conn: Arc<Connection>,
}

impl Gate {
    /// The policy layer for a connection returned by [`Gate::accept`].
    pub fn layer(self: &Arc<Self>, conn: Arc<Connection>) -> PolicyLayer {
        PolicyLayer {
            gate: self.clone(),
            conn,
        }
    }
}

impl<S> tower_layer::Layer<S> for PolicyLayer {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> PolicyService<S> {
        PolicyService {
            inner,
            gate: self.gate.clone(),
            conn: self.conn.clone(),
        }
    }
}

/// The service [`PolicyLayer`] produces. Refusals are answered here with the gate's pages;
/// allowed requests reach `inner` with a [`Caller`] extension and the canonical path.
#[derive(Debug, Clone)]
pub struct PolicyService<S> {
    inner: S,
    gate: Arc<Gate>,
    conn: Arc<Connection>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> tower_service::Service<Request<B>> for PolicyService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>, Error = Infallible>,
    S::Future: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match check(&self.gate, &self.conn, &mut req) {
            Ok(_) => {
                req.extensions_mut().insert(Caller(self.conn.clone()));
                let fut = self.inner.call(req);
                let conn = self.conn.clone();
                Box::pin(async move {
                    let _active = conn.activity.begin();
                    fut.await.map(|r| r.map(Either::Left))
                })
            }
            Err(refused) => Box::pin(std::future::ready(Ok(refused.page.map(Either::Right)))),
        }
    }
}

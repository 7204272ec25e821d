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

use crate::conn::{Binding, Connection, Peer};
use crate::gate::Gate;
use crate::request::admit;

/// The caller of a request, for handlers (axum: `Extension<Caller>`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Caller {
    conn: Arc<Connection>,
    binding: Arc<Binding>,
}

impl Caller {
    /// The verified identity, or `None` for an anonymous caller.
    pub fn identity(&self) -> Option<&Identity> {
        self.conn.verified().map(|v| &v.identity)
    }

    /// The roles the policy granted this caller.
    pub fn roles(&self) -> &[String] {
        &self.binding.role_names
    }

    /// Why a presented certificate was refused (`invalid_cert = "anonymous"` only).
    pub fn refused_because(&self) -> Option<&'static str> {
        match self.conn.peer {
            Peer::Failed(why) => Some(why.as_str()),
            _ => None,
        }
    }

    /// The client's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.conn.peer_addr
    }
}

/// Applies the gate's request stages — canonical method and path, Host against SNI and the
/// site's names, header integrity, the policy — in front of a service, for one connection.
/// Build one per accepted connection with [`Gate::layer`]. The identity reaches handlers as
/// the [`Caller`] extension; no identity headers are added (there is nothing to forward).
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        match admit(&self.gate, &self.conn, &mut parts) {
            // The enrolment endpoints need the request body as hyper gives it to
            // `portcullis serve`; an embedding app serves its own routes.
            Ok(admitted) if admitted.enroll => {
                let page = crate::pages::respond(
                    http::StatusCode::NOT_FOUND,
                    "application/json",
                    r#"{"error": "online enrolment is served by portcullis serve, not by the embedding layer"}"#,
                );
                Box::pin(std::future::ready(Ok(page.map(Either::Right))))
            }
            Ok(admitted) => {
                parts.extensions.insert(Caller {
                    conn: self.conn.clone(),
                    binding: admitted.binding,
                });
                let busy = self.conn.activity.begin();
                let fut = self.inner.call(Request::from_parts(parts, body));
                Box::pin(async move {
                    let resp = fut.await;
                    drop(busy);
                    resp.map(|r| r.map(Either::Left))
                })
            }
            Err(refused) => Box::pin(std::future::ready(Ok(refused.page.map(Either::Right)))),
        }
    }
}

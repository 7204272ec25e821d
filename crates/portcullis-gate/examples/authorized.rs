//! The classic Express client-certificate demo — "Authorized / Unauthorized" — ported to
//! axum, with the security taken out of the handlers.
//!
//! In the Express version the handler itself checks `req.client.authorized`, reads
//! `getPeerCertificate()` and picks 200, 401 or 403. Here the gate's policy decides before
//! any handler runs, answers 401/403 with its own pages, and hands the handler a verified
//! identity. The policy lives in the configuration:
//!
//! ```toml
//! client_auth = "optional"
//! invalid_cert = "anonymous"   # a refused certificate gets the gate's 401 page, with why
//! [[rules]]
//! path = "/"
//! require = "anonymous"
//! [[rules]]
//! path = "/authenticate"
//! require = "authenticated"
//! ```
//!
//! Run: `cargo run -p portcullis-gate --example authorized -- portcullis.toml`

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use portcullis_gate::Caller;
use portcullis_gate::{Config, Gate};
use tokio::net::TcpListener;
use tower_layer::Layer;

/// The application: two routes and no security code.
pub fn app() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { Html(r#"<a href="authenticate">Log in using client certificate</a>"#) }),
        )
        .route("/authenticate", get(authenticate))
}

/// Reached only by callers with a verified certificate (the policy says so).
async fn authenticate(Extension(caller): Extension<Caller>) -> String {
    match caller.identity() {
        Some(id) => format!(
            "Hello {}, your certificate was issued by {}!",
            id.common_name.as_deref().unwrap_or("(no CN)"),
            id.issuer
        ),
        // Unreachable with the policy above; a misconfiguration shows instead of panicking.
        None => "This route is not protected by the policy.".into(),
    }
}

/// Serves `app()` behind the gate on `listener` until the task is dropped.
pub async fn serve(gate: Arc<Gate>, listener: TcpListener) {
    let app = app();
    loop {
        let Ok((tcp, addr)) = listener.accept().await else {
            continue;
        };
        let (gate, app) = (gate.clone(), app.clone());
        tokio::spawn(async move {
            // TLS and the client's identity, parsed once for the connection…
            let Some((tls, conn)) = gate.accept(tcp, addr).await else {
                return;
            };
            // …then the policy in front of the routes.
            let service = gate.layer(conn).layer(app);
            let _ = gate
                .http_builder()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await;
        });
    }
}

#[allow(dead_code)] // the integration test reuses `serve` and `app` without `main`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: authorized CONFIG.toml")?;
    let gate = Arc::new(Gate::load(Config::from_file(path.as_ref())?, None)?);
    tokio::runtime::Runtime::new()?.block_on(async move {
        let listener = gate.bind().await?;
        println!("listening on https://{}", listener.local_addr()?);
        serve(gate, listener).await;
        Ok(())
    })
}

//! The servers the bench brings itself: the bare rustls + hyper server that shows what
//! TLS and HTTP alone cost (the floor the gate is held to), the same server proxying with
//! hyper-util's client (the floor for proxying), and the plain-HTTP upstream the proxies
//! forward to. Each runs in its own process and prints `port N` when it listens.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::pki;

fn ok() -> hyper::Response<Full<Bytes>> {
    hyper::Response::new(Full::new(Bytes::from_static(b"ok\n")))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // The same runtime the gate uses; under `taskset -c 0` it has one worker.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The upstream client of the bare proxy: hyper-util's pooled client, as its docs show it.
type Upstream = Client<HttpConnector, Incoming>;

/// Sends a request on to the upstream as it came, but for the URI (the upstream's).
async fn forward(
    client: Upstream,
    port: u16,
    mut req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Incoming>, hyper_util::client::legacy::Error> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Ok(uri) = format!("http://127.0.0.1:{port}{path}").parse() {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = hyper::Version::HTTP_11;
    client.request(req).await
}

/// A TLS 1.3 server with the same certificate, client verifier (client certificate
/// required, CRL checked), ALPN and cipher-suite preference as the gate, answering "ok" to
/// every request, or with `upstream` passing every request to it: roughly the 100 lines a
/// user would write without the gate.
pub fn serve_tls(dir: &Path, upstream: Option<u16>) -> Result<()> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // The gate prefers AES-128-GCM-SHA256 whatever the client's order (portcullis-gate's
    // tls module says why); the floor it is held to makes the same choice.
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let provider = Arc::new(provider);
    let roots = pki::roots(dir)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .with_crls(pki::crls(&dir.join(pki::CRL))?)
    .only_check_end_entity_revocation()
    .enforce_revocation_expiration()
    .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            pki::certs(&dir.join(pki::SERVER_CHAIN))?,
            pki::key(&dir.join(pki::SERVER_KEY))?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let upstream = upstream.map(|port| {
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        (client, port)
    });
    // The accept loop runs on the worker, as the gate's does: from the main thread each
    // connection would cost a cross-thread wake-up.
    let runtime = runtime()?;
    let main = runtime.spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("port {}", listener.local_addr()?.port());
        loop {
            let (tcp, _) = listener.accept().await?;
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let io = TokioIo::new(tls);
                let _ = match upstream {
                    None => {
                        let service = service_fn(|_| async { Ok::<_, Infallible>(ok()) });
                        builder.serve_connection(io, service).await
                    }
                    Some((client, port)) => {
                        let service = service_fn(move |req| forward(client.clone(), port, req));
                        builder.serve_connection(io, service).await
                    }
                };
            });
        }
    });
    runtime.block_on(main)?
}

/// The application behind both proxies: plain HTTP/1.1 on loopback, "ok" to everything.
/// It prints how many connections it accepted when asked (`GET /connections`), which
/// shows whether a proxy reused its pool.
pub fn serve_upstream() -> Result<()> {
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the upstream")?;
        println!("port {}", listener.local_addr()?.port());
        let accepted = Arc::new(AtomicU64::new(0));
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            accepted.fetch_add(1, Ordering::Relaxed);
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<_>| {
                    let body = if req.uri().path() == "/connections" {
                        Bytes::from(accepted.load(Ordering::Relaxed).to_string())
                    } else {
                        Bytes::from_static(b"ok\n")
                    };
                    async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(body))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    })
}

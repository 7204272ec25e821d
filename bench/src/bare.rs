//! The two servers the bench brings itself: the bare rustls + hyper server that shows what
//! TLS and HTTP alone cost (the floor the gate is held to), and the plain-HTTP upstream
//! both proxies forward to. Each runs in its own process and prints `port N` when it
//! listens.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
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

/// A TLS 1.3 server with the same certificate, client verifier (client certificate
/// required, CRL checked), ALPN and cipher-suite preference as the gate, answering "ok" to
/// every request: roughly the 100 lines a user would write without the gate.
pub fn serve_tls(dir: &Path) -> Result<()> {
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
    // The accept loop runs on the worker, as the gate's does: from the main thread each
    // connection would cost a cross-thread wake-up.
    let runtime = runtime()?;
    let main = runtime.spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("port {}", listener.local_addr()?.port());
        loop {
            let (tcp, _) = listener.accept().await?;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|_| async { Ok::<_, Infallible>(ok()) });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
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

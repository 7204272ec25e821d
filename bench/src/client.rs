//! The bench's own mTLS client, for what oha cannot do: full handshakes without session
//! resumption (oha's rustls client resumes every connection after the first, so its
//! `--disable-keepalive` measures resumptions), resumptions counted as such, and thousands
//! of connections held idle.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use crate::pki;

pub struct Client {
    config: Arc<rustls::ClientConfig>,
    port: u16,
    path: &'static str,
    /// Connections whose handshake resumed a session.
    resumed: AtomicUsize,
}

/// Whether connections resume the sessions of earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// Every connection is a full handshake.
    Full,
    /// Every connection resumes with a ticket from an earlier one, when it has one.
    Resume,
}

/// A connection kept open after one request.
pub struct Held {
    sender: SendRequest<Empty<Bytes>>,
    _conn: tokio::task::JoinHandle<()>,
}

impl Client {
    pub fn new(dir: &Path, port: u16, path: &'static str, sessions: Sessions) -> Result<Client> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = pki::roots(dir)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(
                pki::certs(&dir.join(pki::CLIENT_CHAIN))?,
                pki::key(&dir.join(pki::CLIENT_KEY))?,
            )?;
        if sessions == Sessions::Full {
            config.resumption = rustls::client::Resumption::disabled();
        }
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            config: Arc::new(config),
            port,
            path,
            resumed: AtomicUsize::new(0),
        })
    }

    async fn connect(&self) -> Result<Held> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(ServerName::try_from("localhost")?, tcp)
            .await
            .context("TLS handshake")?;
        // Every server must do the same cryptography for the figures to compare.
        let suite = tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite());
        if suite != Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256) {
            bail!("the server chose {suite:?}, not TLS13_AES_128_GCM_SHA256");
        }
        if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut held = Held {
            sender,
            _conn: conn,
        };
        self.get(&mut held).await?;
        Ok(held)
    }

    async fn get(&self, held: &mut Held) -> Result<()> {
        let request = hyper::Request::get(self.path)
            .header("host", "localhost")
            .body(Empty::new())?;
        let response = held.sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status != 200 {
            bail!("GET {} answered {status}", self.path);
        }
        Ok(())
    }

    /// How many connections so far resumed a session.
    pub fn resumed(&self) -> usize {
        self.resumed.load(Ordering::Relaxed)
    }

    /// `total` requests, one after another, on one connection.
    pub async fn keep_alive(&self, total: usize) -> Result<()> {
        let mut held = self.connect().await?;
        for _ in 1..total {
            self.get(&mut held).await?;
        }
        Ok(())
    }

    /// `total` requests spread over the held connections, all of them busy at once;
    /// gives the connections back for the next batch.
    pub async fn requests(self: &Arc<Self>, held: Vec<Held>, total: usize) -> Result<Vec<Held>> {
        let each = total.div_ceil(held.len().max(1));
        let mut tasks = Vec::new();
        for mut connection in held {
            let client = self.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..each {
                    client.get(&mut connection).await?;
                }
                Ok::<_, anyhow::Error>(connection)
            }));
        }
        let mut back = Vec::new();
        for task in tasks {
            back.push(task.await??);
        }
        Ok(back)
    }

    /// `total` connections, `concurrency` at a time, each a handshake and one request,
    /// closed after it.
    pub async fn handshakes(self: &Arc<Self>, total: usize, concurrency: usize) -> Result<()> {
        self.open(total, concurrency, false).await.map(drop)
    }

    /// Opens `total` connections (a handshake and one request each) and keeps them.
    pub async fn hold(self: &Arc<Self>, total: usize, concurrency: usize) -> Result<Vec<Held>> {
        self.open(total, concurrency, true).await
    }

    async fn open(
        self: &Arc<Self>,
        total: usize,
        concurrency: usize,
        keep: bool,
    ) -> Result<Vec<Held>> {
        let started = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, started) = (self.clone(), started.clone());
            tasks.push(tokio::spawn(async move {
                let mut held = Vec::new();
                while started.fetch_add(1, Ordering::Relaxed) < total {
                    let connection = client.connect().await?;
                    if keep {
                        held.push(connection);
                    }
                }
                Ok::<_, anyhow::Error>(held)
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await??);
        }
        Ok(all)
    }
}

//! The client of `[enroll]`: send a CSR with a token, or renew over mTLS, and read the
//! certificate back. One HTTP/1.1 request on a verified TLS connection; the server is
//! always verified (against the roots given, usually the CA's own root).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

/// How long connecting, the handshake and the answer may take together.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read: a chain of a few certificates.
const MAX_ANSWER: usize = 64 * 1024;

/// What the gate issued.
#[derive(Debug, Clone, Deserialize)]
pub struct Issued {
    pub serial: String,
    pub common_name: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// The certificate and its intermediates, PEM.
    pub chain: String,
    /// What the request asked for that the CA did not grant.
    #[serde(default)]
    pub not_granted: Vec<String>,
}

/// Why enrolment failed: the gate's own words when it answered.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0} is not an https:// URL with a host")]
    Url(String),
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url} answered something that is not an enrolment answer: {reason}")]
    Answer { url: String, reason: String },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Sends `csr` (PEM) with the one-time `token` to `base` (the `[enroll]` path, such as
/// `https://gate.example.com/enroll`).
pub async fn redeem(
    base: &str,
    roots: RootCertStore,
    token: &str,
    csr: &str,
) -> Result<Issued, EnrollError> {
    let body = serde_json::json!({ "token": token.trim(), "csr": csr });
    post(base, "csr", roots, None, body).await
}

/// Renews the certificate `chain` (leaf first), presented with `key`, for the key of
/// `csr`.
pub async fn renew(
    base: &str,
    roots: RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    csr: &str,
) -> Result<Issued, EnrollError> {
    let body = serde_json::json!({ "csr": csr });
    post(base, "renew", roots, Some((chain, key)), body).await
}

async fn post(
    base: &str,
    endpoint: &str,
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    body: serde_json::Value,
) -> Result<Issued, EnrollError> {
    let url = format!("{}/{endpoint}", base.trim_end_matches('/'));
    let uri: Uri = url.parse().map_err(|_| EnrollError::Url(base.into()))?;
    let (Some("https"), Some(authority)) = (uri.scheme_str(), uri.authority().cloned()) else {
        return Err(EnrollError::Url(base.into()));
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(443);
    let connect_err = |reason: String| EnrollError::Connect {
        url: url.clone(),
        reason,
    };

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EnrollError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| EnrollError::Tls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(host.clone()).map_err(|_| EnrollError::Url(base.into()))?;

    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| connect_err(causes(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri.path())
            .header(header::HOST, authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| connect_err(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| connect_err(causes(&e)))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| connect_err(format!("reading the answer: {}", causes(&*e))))?
            .to_bytes();
        Ok::<_, EnrollError>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| connect_err(format!("no answer within {}s", TIMEOUT.as_secs())))??;
    if status != StatusCode::OK {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        return Err(EnrollError::Refused {
            url,
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| EnrollError::Answer {
        url,
        reason: e.to_string(),
    })
}

/// An error with its causes: hyper's "connection error" alone hides the TLS alert (a
/// revoked or expired certificate) that explains it.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

//! The HTTP check. nginx with `ssl_verify_client on` sends a CertificateRequest, accepts
//! an empty Certificate, completes the handshake and only then refuses, in HTTP:
//! `400 No required SSL certificate was sent` (`400 The SSL certificate error` for a
//! certificate it does not accept; 495/496 when `error_page` maps them). A handshake
//! alone calls that server healthy.
//!
//! So, when the server asked for a client certificate and the handshake completed, the
//! probe makes one request: `GET path HTTP/1.1`, `Host: name`, `Connection: close`,
//! bounded in time and in the bytes read. It goes over a connection of its own, made with
//! rustls's standard verifier against the store the user's client would use: if that
//! verification fails, nothing is sent (the recording connections never carry data).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::observe::HttpCheck;
use crate::probe::{Profile, Request};

/// At most this much of the response is read.
const MAX_RESPONSE: usize = 16 * 1024;
/// The response's words are cut to this many characters.
const MAX_TEXT: usize = 160;

/// Where and how to make the request.
pub(crate) struct Check<'a> {
    pub addr: SocketAddr,
    /// The name sent in SNI and verified in the certificate (an IP address when none).
    pub name: &'a str,
    /// The store the user's client would use, and its name.
    pub store: (&'a str, &'a [TrustAnchor<'static>]),
    pub profile: &'a Profile,
}

/// Makes the request; every failure is written down in the result, never raised.
pub(crate) async fn check(
    c: &Check<'_>,
    req: &Request,
    provider: &Arc<CryptoProvider>,
) -> HttpCheck {
    let path = request_path(&req.target.path);
    let host = if req.target.port == 443 {
        bracket(c.name)
    } else {
        format!("{}:{}", bracket(c.name), req.target.port)
    };
    let client = req.client.as_ref().filter(|_| c.profile.client_cert);
    let mut out = HttpCheck {
        request: format!("GET {path} HTTP/1.1"),
        host: host.clone(),
        client_cert: client.is_some(),
        verified_by: c.store.0.into(),
        ..Default::default()
    };
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + req.timeout;
    let result = tokio::time::timeout_at(deadline, async {
        let config = config(c, client, provider)?;
        let name = ServerName::try_from(c.name.to_owned())
            .map_err(|e| format!("not a name to verify: {e}"))?;
        let tcp = TcpStream::connect(c.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("the verified handshake failed, so nothing was sent: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portcullis-doctor\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        while response.len() < MAX_RESPONSE {
            match tls.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
                // What came before a reset or a missing close_notify is still the answer.
                Err(e) if !response.is_empty() => {
                    let _ = e;
                    break;
                }
                Err(e) => return Err(format!("reading the response: {e}")),
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), tls.shutdown()).await;
        Ok(response)
    })
    .await;
    out.ms = start.elapsed().as_millis() as u64;
    match result {
        Err(_) => out.error = Some(format!("no complete answer within {} ms", out.ms)),
        Ok(Err(e)) => out.error = Some(e),
        Ok(Ok(bytes)) => {
            let r = parse_response(&bytes);
            if r.status_line.is_none() {
                out.error = Some(if bytes.is_empty() {
                    "the server closed the connection without an answer".into()
                } else {
                    "the answer is not HTTP".into()
                });
            }
            out.status_line = r.status_line;
            out.status = r.status;
            out.text = r.text;
        }
    }
    out
}

fn config(
    c: &Check<'_>,
    client: Option<&crate::probe::ClientIdentity>,
    provider: &Arc<CryptoProvider>,
) -> Result<ClientConfig, String> {
    let roots = RootCertStore {
        roots: c.store.1.to_vec(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&crate::probe::versions(c.profile.tls.as_deref()))
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match client {
        Some(id) => {
            let chain = id
                .chain
                .iter()
                .map(|d| CertificateDer::from(d.clone()))
                .collect();
            let key = PrivateKeyDer::try_from(id.key_pkcs8.clone()).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    // The request is HTTP/1.1, so that is the only protocol offered.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_sni = c.profile.sni.is_some();
    Ok(config)
}

/// The path as it goes in the request line: visible ASCII only, the rest percent-encoded.
fn request_path(path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bracket(name: &str) -> String {
    if name.contains(':') {
        format!("[{name}]")
    } else {
        name.to_owned()
    }
}

/// What a response says, for people.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub status_line: Option<String>,
    pub status: Option<u16>,
    /// The HTML title, else the first text of the body, tags dropped, truncated.
    pub text: Option<String>,
}

/// Reads the status line and the response's own words from the bytes of a response.
pub fn parse_response(bytes: &[u8]) -> Response {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .map(|l| clean(l, MAX_TEXT));
    let Some(line) = status_line else {
        return Response::default();
    };
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked { dechunk(body) } else { body.into() };
    let lower = body.to_ascii_lowercase();
    let title = lower.find("<title").and_then(|at| {
        let open = at + lower[at..].find('>')? + 1;
        let close = open + lower[open..].find("</title")?;
        Some(&body[open..close])
    });
    let words = match title.map(|t| clean(t, MAX_TEXT)).filter(|t| !t.is_empty()) {
        Some(t) => Some(t),
        None => Some(clean(&strip_tags(&body), MAX_TEXT)).filter(|t| !t.is_empty()),
    };
    Response {
        status_line: Some(line),
        status,
        text: words,
    }
}

/// The data of a chunked body (as far as it goes).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        let Some(chunk) = after.get(..n.min(after.len())) else {
            break;
        };
        out.push_str(chunk);
        rest = after.get(n..).unwrap_or("").trim_start_matches("\r\n");
    }
    out
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Printable text on one line, whitespace collapsed, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if one_line.chars().count() > max {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_refusal_pages() {
        let page =
            b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n\
            Content-Length: 246\r\nConnection: close\r\n\r\n<html>\r\n<head><title>400 No required \
            SSL certificate was sent</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1>\
            </center>\r\n<center>No required SSL certificate was sent</center>\r\n<hr><center>nginx\
            </center>\r\n</body>\r\n</html>\r\n";
        let r = parse_response(page);
        assert_eq!(r.status, Some(400));
        assert_eq!(r.status_line.as_deref(), Some("HTTP/1.1 400 Bad Request"));
        assert_eq!(
            r.text.as_deref(),
            Some("400 No required SSL certificate was sent")
        );
    }

    #[test]
    fn plain_and_chunked_bodies() {
        let r = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n\
              13\r\nSorry, but you need\r\n2d\r\n to provide a client certificate to continue.\r\n0\r\n\r\n",
        );
        assert_eq!(r.status, Some(401));
        assert_eq!(
            r.text.as_deref(),
            Some("Sorry, but you need to provide a client certificate to continue.")
        );
        let long = format!("HTTP/1.1 403 Forbidden\r\n\r\n{}", "x".repeat(500));
        let r = parse_response(long.as_bytes());
        assert_eq!(r.text.unwrap().chars().count(), MAX_TEXT + 1);
        assert_eq!(parse_response(b"SSH-2.0-x\r\n"), Response::default());
        assert_eq!(parse_response(b""), Response::default());
    }

    #[test]
    fn paths_are_safe_in_a_request_line() {
        assert_eq!(request_path(""), "/");
        assert_eq!(request_path("/a b\r\nX: y"), "/a%20b%0D%0AX:%20y");
    }
}

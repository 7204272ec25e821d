//! Clients that send exactly the bytes a test gives (raw HTTP/1.1 over TLS, and HTTP/2 with
//! the `h2` crate), and an upstream that records exactly what it received.
//!
//! An attacker does not use curl: duplicate `Host` lines, lower-case methods, underscores
//! in header names, several `Connection` lines, trailers and zero flow-control windows are
//! all sent here as written. The recording upstream answers with the header lines it
//! received, in order and as spelled, so a test can judge them the way a WSGI or CGI
//! application would (`_` read as `-`, case folded).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::{Pki, Upstream};

// === TLS client configuration ===

/// Verifies the gate's certificate against the test root for `localhost`, whatever SNI
/// the client sends: a test can then send an unknown SNI, or none, and still know it talks
/// to the real gate.
#[derive(Debug)]
struct LocalhostVerifier(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for LocalhostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let localhost = ServerName::try_from("localhost").unwrap();
        self.0
            .verify_server_cert(end_entity, intermediates, &localhost, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn pem_certs(path: &str) -> Vec<CertificateDer<'static>> {
    let bytes = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .map(|b| b.unwrap())
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.contents))
        .collect()
}

fn key_der(path: &str) -> PrivateKeyDer<'static> {
    let text = std::fs::read_to_string(path).unwrap();
    let key = portcullis_pki::keys::from_pem(&text, path.as_ref(), None, "").unwrap();
    PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

/// Who the client is: nobody, a client of the test PKI, or a certificate paired with a
/// key that is not its own (to test the proof of possession).
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    Anonymous,
    Client(&'a str),
    /// The certificate chain of the first, signed with the key of the second.
    Impostor {
        cert_of: &'a str,
        key_of: &'a str,
    },
}

/// Always presents one certified key, even one whose key does not match its certificate
/// (rustls's `with_client_auth_cert` would refuse to build that).
#[derive(Debug)]
struct Present(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client configuration trusting the test root, with ALPN `alpn`.
pub fn client_config(pki: &Pki, who: As<'_>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(&pki.root()) {
        roots.add(c).unwrap();
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LocalhostVerifier(verifier)));
    let (cert_of, key_of) = match who {
        As::Anonymous => ("", ""),
        As::Client(w) => (w, w),
        As::Impostor { cert_of, key_of } => (cert_of, key_of),
    };
    let mut config = if cert_of.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = pem_certs(&pki.client(cert_of).0);
        let key = key_der(&pki.client(key_of).1);
        let signer = provider.key_provider.load_private_key(key).unwrap();
        builder.with_client_cert_resolver(Arc::new(Present(Arc::new(
            rustls::sign::CertifiedKey::new(chain, signer),
        ))))
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// The SNI a client sends.
#[derive(Debug, Clone, Copy)]
pub enum Sni<'a> {
    Name(&'a str),
    None,
}

fn server_name(sni: Sni<'_>) -> (ServerName<'static>, bool) {
    match sni {
        Sni::Name(n) => (ServerName::try_from(n.to_owned()).unwrap(), true),
        // An IP address is never sent as SNI.
        Sni::None => (ServerName::try_from("127.0.0.1").unwrap(), false),
    }
}

// === raw HTTP/1.1 over TLS ===

/// A response as the client read it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header lines as received (names lower-cased).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The recording upstream's report, when this response came from it.
    pub fn received(&self) -> Received {
        assert_eq!(self.status, 200, "not from the upstream: {self:?}");
        Received::parse(&self.body)
    }
}

/// One TLS connection on which raw HTTP/1.1 bytes are written and responses read.
pub struct H1 {
    stream: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl H1 {
    /// Connects and completes the handshake (panics if the gate refuses it).
    pub fn connect(pki: &Pki, port: u16, sni: Sni<'_>, who: As<'_>) -> H1 {
        H1::try_connect(pki, port, sni, who).unwrap()
    }

    /// Connects; `Err` with rustls's reason when the handshake fails.
    pub fn try_connect(pki: &Pki, port: u16, sni: Sni<'_>, who: As<'_>) -> Result<H1, String> {
        let mut config = (*client_config(pki, who, &[b"http/1.1"])).clone();
        let (name, send_sni) = server_name(sni);
        config.enable_sni = send_sni;
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        H1::finish(conn, tcp)
    }

    /// Connects with `config` as it is (its session store included), SNI localhost.
    pub fn connect_with(config: Arc<rustls::ClientConfig>, port: u16) -> H1 {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        H1::finish(conn, tcp).unwrap()
    }

    /// Whether the handshake resumed a session.
    pub fn resumed(&self) -> bool {
        self.stream.get_ref().conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Whether the server sends anything within `within` (looked at on the socket, below
    /// TLS, and left there to be read).
    pub fn sends_within(&self, within: Duration) -> bool {
        let sock = &self.stream.get_ref().sock;
        sock.set_read_timeout(Some(within)).unwrap();
        let sent = sock.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0);
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sent
    }

    /// Finishes a handshake now, so that refusals show here.
    fn finish(conn: rustls::ClientConnection, tcp: TcpStream) -> Result<H1, String> {
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(H1 {
            stream: BufReader::new(stream),
        })
    }

    /// Connects, stops after the server's first flight — the client's certificate not
    /// yet sent — runs `meanwhile`, then finishes the handshake. `Err` when it fails.
    pub fn connect_paused(
        pki: &Pki,
        port: u16,
        who: As<'_>,
        meanwhile: impl FnOnce(),
    ) -> Result<H1, String> {
        let config = client_config(pki, who, &[b"http/1.1"]);
        let mut conn =
            rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
                .unwrap();
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        conn.write_tls(&mut tcp).map_err(|e| e.to_string())?;
        // Read until the client has its second flight ready (Certificate, Finished).
        while !conn.wants_write() {
            conn.read_tls(&mut tcp).map_err(|e| e.to_string())?;
            conn.process_new_packets().map_err(|e| e.to_string())?;
        }
        meanwhile();
        H1::finish(conn, tcp)
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        assert!(self.try_send(bytes), "the gate closed the connection");
    }

    /// Sends `bytes`; false when the connection is closed.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        let s = self.stream.get_mut();
        s.write_all(bytes).and_then(|()| s.flush()).is_ok()
    }

    /// Reads one response (Content-Length or chunked body); `None` when the connection
    /// ended or failed before a complete response.
    pub fn read_response(&mut self) -> Option<Response> {
        let mut line = String::new();
        self.stream.read_line(&mut line).ok()?;
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.stream.read_line(&mut h).ok()?;
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':')?;
            headers.push((n.to_ascii_lowercase(), v.trim().to_owned()));
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v): &(String, String)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(len) = get("content-length") {
            body.resize(len.parse().ok()?, 0);
            self.stream.read_exact(&mut body).ok()?;
        } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size).ok()?;
                let size = usize::from_str_radix(size.trim(), 16).ok()?;
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).ok()?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        Some(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Reads up to `n` bytes of whatever arrives; 0 once the connection has ended.
    pub fn read_some(&mut self, n: usize) -> usize {
        let mut buf = vec![0u8; n];
        self.stream.read(&mut buf).unwrap_or(0)
    }

    /// The status line of a response with no body to read (to HEAD).
    pub fn read_status(&mut self) -> Option<u16> {
        let mut line = String::new();
        self.stream.read_line(&mut line).ok()?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Sends a request and reads its response.
    pub fn request(&mut self, bytes: &str) -> Option<Response> {
        self.send(bytes.as_bytes());
        self.read_response()
    }

    /// Whether the gate closed the connection within `within`: reading (and discarding
    /// whatever was already sent) reaches the end of the stream or an error, rather than
    /// running out of time.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream
                .get_ref()
                .sock
                .set_read_timeout(Some(left))
                .unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                }
            }
        }
    }
}

/// One request on a fresh connection: `GET`-style raw text with `\r\n` line ends.
pub fn h1(pki: &Pki, port: u16, who: As<'_>, request: &str) -> Response {
    H1::connect(pki, port, Sni::Name("localhost"), who)
        .request(request)
        .unwrap_or_else(|| panic!("no response to {request:?}"))
}

// === HTTP/2 ===

/// A request over HTTP/2 as the `h2` crate sends it: header names must be lower case (h2
/// requires it), anything else is sent as given, plus optional trailers.
pub struct H2Request<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub trailers: &'a [(&'a str, &'a str)],
}

impl Default for H2Request<'_> {
    fn default() -> Self {
        H2Request {
            method: "GET",
            authority: "localhost",
            path: "/",
            headers: &[],
            trailers: &[],
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn h2_connect(
    pki: &Pki,
    port: u16,
    who: As<'_>,
    window: Option<u32>,
) -> h2::client::SendRequest<bytes::Bytes> {
    h2_connect_offering(pki, port, who, window, &[b"h2"]).await
}

/// `h2_connect` offering `alpn` (none: HTTP/2 with prior knowledge).
async fn h2_connect_offering(
    pki: &Pki,
    port: u16,
    who: As<'_>,
    window: Option<u32>,
    alpn: &[&[u8]],
) -> h2::client::SendRequest<bytes::Bytes> {
    let config = client_config(pki, who, alpn);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut builder = h2::client::Builder::new();
    // A large connection window: one stream left unread must not stop the others.
    builder.initial_connection_window_size(64 << 20);
    if let Some(w) = window {
        builder.initial_window_size(w);
    }
    let (send, conn) = builder.handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

async fn h2_send(
    send: h2::client::SendRequest<bytes::Bytes>,
    r: &H2Request<'_>,
) -> Result<Response, String> {
    let mut send = send.ready().await.map_err(|e| e.to_string())?;
    let mut req = http::Request::builder()
        .method(http::Method::from_bytes(r.method.as_bytes()).unwrap())
        .uri(format!("https://{}{}", r.authority, r.path));
    for (n, v) in r.headers {
        req = req.header(*n, *v);
    }
    let end = r.trailers.is_empty();
    let (resp, mut stream) = send
        .send_request(req.body(()).unwrap(), end)
        .map_err(|e| e.to_string())?;
    if !end {
        let mut t = http::HeaderMap::new();
        for (n, v) in r.trailers {
            t.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        stream.send_trailers(t).map_err(|e| e.to_string())?;
    }
    let resp = resp.await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// One HTTP/2 request on a fresh connection.
pub fn h2(pki: &Pki, port: u16, who: As<'_>, r: &H2Request<'_>) -> Result<Response, String> {
    runtime().block_on(async {
        let send = h2_connect(pki, port, who, None).await;
        h2_send(send, r).await
    })
}

/// One HTTP/2 request with prior knowledge: no ALPN offered.
pub fn h2_without_alpn(pki: &Pki, port: u16, r: &H2Request<'_>) -> Result<Response, String> {
    runtime().block_on(async {
        let send = h2_connect_offering(pki, port, As::Anonymous, None, &[]).await;
        h2_send(send, r).await
    })
}

/// One HTTP/2 connection kept open for several requests.
pub struct H2Conn {
    rt: tokio::runtime::Runtime,
    send: h2::client::SendRequest<bytes::Bytes>,
    /// Responses whose bodies the client leaves unread.
    held: Vec<http::Response<h2::RecvStream>>,
}

impl H2Conn {
    pub fn open(pki: &Pki, port: u16, who: As<'_>) -> H2Conn {
        let rt = runtime();
        let send = rt.block_on(h2_connect(pki, port, who, None));
        H2Conn {
            rt,
            send,
            held: Vec::new(),
        }
    }

    /// The status of a GET on this connection.
    pub fn get(&mut self, path: &str) -> u16 {
        self.try_get(path).unwrap()
    }

    /// A GET on this connection, read to the end; `Err` once the connection is gone.
    pub fn try_get(&mut self, path: &str) -> Result<u16, String> {
        let r = H2Request {
            path,
            ..H2Request::default()
        };
        self.rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), h2_send(self.send.clone(), &r)).await
            })
            .map_err(|_| "timed out".to_owned())?
            .map(|r| r.status)
    }

    /// A GET whose response body the client never reads: its stream window fills and
    /// stays full, while the rest of the connection goes on.
    pub fn hold(&mut self, path: &str) -> u16 {
        let resp = self.rt.block_on(async {
            let mut send = self.send.clone().ready().await.unwrap();
            let req = http::Request::get(format!("https://localhost{path}"))
                .body(())
                .unwrap();
            let (resp, _) = send.send_request(req, true).unwrap();
            resp.await.unwrap()
        });
        let status = resp.status().as_u16();
        self.held.push(resp);
        status
    }
}

/// HTTP/2 connections that advertise a zero flow-control window and send one GET each:
/// the server can never write a response body. Held open until dropped.
pub struct ZeroWindow {
    _rt: tokio::runtime::Runtime,
    /// Each connection's request handle and response: dropping a response would reset its
    /// stream and let the server off the hook.
    _held: Vec<(
        h2::client::SendRequest<bytes::Bytes>,
        Option<http::Response<h2::RecvStream>>,
    )>,
}

impl ZeroWindow {
    pub fn open(pki: &Pki, port: u16, n: usize) -> ZeroWindow {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let held = rt.block_on(async {
            let mut held = Vec::new();
            for _ in 0..n {
                let send = h2_connect(pki, port, As::Client("bob"), Some(0)).await;
                let mut ready = send.clone().ready().await.unwrap();
                let req = http::Request::get("https://localhost/me").body(()).unwrap();
                let (resp, _) = ready.send_request(req, true).unwrap();
                // The headers do arrive; the body never can.
                let resp = tokio::time::timeout(Duration::from_secs(5), resp)
                    .await
                    .ok()
                    .and_then(Result::ok);
                held.push((send, resp));
            }
            held
        });
        ZeroWindow {
            _rt: rt,
            _held: held,
        }
    }
}

// === the recording upstream ===

/// What the upstream received for one request.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub url: String,
    pub version: String,
    /// Header lines in order, names as spelled on the wire (HTTP/2: lower case).
    pub headers: Vec<(String, String)>,
    pub trailers: Vec<(String, String)>,
}

/// A header name as WSGI, CGI, PHP and Rack read it: case folded, `_` the same as `-`,
/// and (PHP) `.` too.
pub fn fold(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    let flat: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    flat.chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

impl Received {
    /// The recording upstream's report, from a response body.
    pub fn parse(body: &str) -> Received {
        let v = super::json(body);
        Received {
            method: v["method"].as_str().unwrap().to_owned(),
            url: v["url"].as_str().unwrap().to_owned(),
            version: v["version"].as_str().unwrap().to_owned(),
            headers: pairs(&v["headers"]),
            trailers: pairs(&v["trailers"]),
        }
    }

    /// Every value an application that folds names (WSGI) reads for `name`, from headers
    /// and trailers.
    pub fn wsgi(&self, name: &str) -> Vec<&str> {
        let want = fold(name);
        self.headers
            .iter()
            .chain(&self.trailers)
            .filter(|(n, _)| fold(n) == want)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value a folding application reads for `name`; panics when there are
    /// several lines or none.
    pub fn one(&self, name: &str) -> &str {
        match self.wsgi(name).as_slice() {
            [v] => v,
            other => panic!("{name}: expected exactly one line, got {other:?} in {self:#?}"),
        }
    }

    /// Whether any header or trailer folds to `name`.
    pub fn has(&self, name: &str) -> bool {
        !self.wsgi(name).is_empty()
    }
}

/// The recording handler: answers with the request's method, URL, HTTP version, raw header
/// lines and raw trailer lines, once the body has been read.
const RECORD: &str = r#"(req, res) => {
    req.resume();
    req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ method: req.method, url: req.url, version: req.httpVersion,
            headers: req.rawHeaders, trailers: req.rawTrailers }));
    });
}"#;

impl Upstream {
    /// A recording HTTP/1.1 upstream (Node's `http`).
    pub fn recording() -> Upstream {
        Upstream::node(&format!("http.createServer({RECORD})"))
    }

    /// A recording h2c upstream (Node's `http2`, prior knowledge).
    pub fn recording_h2c() -> Upstream {
        Upstream::node(&format!("http2.createServer({RECORD})"))
    }

    /// A recording upstream speaking h2c or HTTP/1.1.
    pub fn recording_over(h2c: bool) -> Upstream {
        if h2c {
            Upstream::recording_h2c()
        } else {
            Upstream::recording()
        }
    }
}

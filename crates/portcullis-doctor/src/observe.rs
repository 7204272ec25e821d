//! Observations: plain, serializable facts the probe collected. Nothing here judges;
//! [`crate::diagnose`] does that, so a diagnosis can be replayed from a saved
//! observation file (or, later, from a packet capture) without a live server.

use serde::{Deserialize, Serialize};

/// Everything one doctor run saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observations {
    /// What the user asked for.
    pub target: TargetInfo,
    /// Unix time (seconds) the probe ran; certificate dates are judged against it.
    pub now: i64,
    /// Problems found locally, before any connection (unreadable key, key not matching cert).
    #[serde(default)]
    pub local: Vec<LocalIssue>,
    pub dns: Option<DnsObservation>,
    pub tcp: Option<TcpObservation>,
    /// TLS handshakes made with rustls (the first is the one the user asked for).
    #[serde(default)]
    pub handshakes: Vec<Handshake>,
    /// Hand-built ClientHellos sent where rustls cannot go, and what came back.
    #[serde(default)]
    pub raw: Vec<RawProbe>,
    /// The certificate chain the server presented, in the order it was sent.
    #[serde(default)]
    pub chain: Vec<CertDetails>,
    /// The chain judged against each trust store.
    #[serde(default)]
    pub trust: Vec<TrustVerdict>,
    /// The presented leaf checked against the name being verified.
    pub name_check: Option<NameCheck>,
    /// A host name that made a server accept our ClientHello when the name we sent
    /// (or no name) did not.
    pub sni_found: Option<String>,
    /// Our own client certificate chain (`--cert`/`--p12`), as we would present it.
    #[serde(default)]
    pub client_chain: Vec<CertDetails>,
    /// CA certificates found beside `--cert` (its NAME.chain.pem) that `--cert` itself
    /// does not hold: what a client that sends only its leaf leaves out.
    #[serde(default)]
    pub client_chain_beside: Vec<CertDetails>,
    /// `--compare`: the same handshake under other client profiles.
    pub compare: Option<Vec<Handshake>>,
    /// The one HTTP request made after a verified handshake in which the server asked
    /// for a client certificate (servers such as nginx refuse in HTTP, not in TLS).
    pub http: Option<HttpCheck>,
    /// `doctor audit`: the same request with the real client certificate and with each
    /// forged twin of it.
    #[serde(default)]
    pub audit: Option<AuditObservation>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetInfo {
    pub host: String,
    pub port: u16,
    /// The URL's path and query (empty: `/`).
    #[serde(default)]
    pub path: String,
    /// The name sent in SNI and verified in the certificate (`--servername`, else the host
    /// when it is a DNS name). `None` when connecting to an IP address without a name.
    pub servername: Option<String>,
    /// `--ca` files, when the user pinned their own trust anchors.
    #[serde(default)]
    pub ca_files: Vec<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// `--tls` (a single version) when given.
    pub tls: Option<String>,
    #[serde(default)]
    pub alpn: Vec<String>,
    /// `--as`: the client whose trust store judges the chain (`node`, `python`, `curl`,
    /// `openssl`, `java`, `go`, `rustls`).
    #[serde(default)]
    pub as_client: Option<String>,
}

impl TargetInfo {
    /// The name the certificate must carry: the servername, else the host (an IP address).
    pub fn verify_name(&self) -> &str {
        self.servername.as_deref().unwrap_or(&self.host)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalIssue {
    /// A cause slug (`client-key-mismatch`, `client-key-passphrase`).
    pub cause: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsObservation {
    pub addresses: Vec<String>,
    pub error: Option<String>,
    pub ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpOutcome {
    Connected,
    /// RST in answer to our SYN: nothing listens.
    Refused,
    /// No answer to our SYN within the timeout.
    Timeout,
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TcpObservation {
    pub address: String,
    pub outcome: TcpOutcome,
    pub error: Option<String>,
    pub ms: u64,
}

/// What a ClientHello offered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HelloSent {
    pub sni: Option<String>,
    pub versions: Vec<String>,
    pub alpn: Vec<String>,
    pub cipher_suites: Vec<String>,
    pub client_cert: bool,
}

/// How far a handshake got before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Before the server's certificate arrived (ClientHello / ServerHello).
    Hello,
    /// After the server's certificate, before the handshake completed.
    Certificate,
    /// The handshake completed; this is the short read that follows it (TLS 1.3 servers
    /// judge the client certificate after the client's Finished).
    AfterHandshake,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HandshakeOutcome {
    /// Handshake done and the server did not hang up during the short wait after it.
    Established,
    /// The server sent a fatal alert.
    Alert {
        code: u8,
        name: String,
        stage: Stage,
    },
    /// The server closed (FIN) or reset (RST) the connection without an alert.
    Closed { reset: bool, stage: Stage },
    /// Nothing came back within the timeout.
    Timeout { stage: Stage },
    /// The first bytes back were not a TLS record.
    NotTls { stage: Stage },
    /// rustls gave up on its own (no common version or suite, a malformed message…).
    ClientError { message: String, stage: Stage },
}

impl HandshakeOutcome {
    pub fn stage(&self) -> Option<Stage> {
        match self {
            HandshakeOutcome::Established => None,
            HandshakeOutcome::Alert { stage, .. }
            | HandshakeOutcome::Closed { stage, .. }
            | HandshakeOutcome::Timeout { stage }
            | HandshakeOutcome::NotTls { stage }
            | HandshakeOutcome::ClientError { stage, .. } => Some(*stage),
        }
    }
}

/// One step of a handshake trace, for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Milliseconds since the TCP connection started.
    pub ms: u64,
    /// `sent`, `received`, `closed` or `note`.
    pub dir: String,
    pub what: String,
}

/// A TLS handshake made with rustls and a recording verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handshake {
    /// Which client profile this was (`as requested`, `without SNI`, `TLS 1.2 only`…).
    pub label: String,
    pub sent: HelloSent,
    pub outcome: HandshakeOutcome,
    pub version: Option<String>,
    pub cipher_suite: Option<String>,
    pub alpn: Option<String>,
    /// The server asked for a client certificate; these are the CA names it listed.
    pub cert_request: Option<Vec<String>>,
    /// Number of certificates the server presented (0: none seen).
    pub chain_len: usize,
    /// The server's handshake signature did not verify with its certificate's key.
    pub signature_error: Option<String>,
    pub steps: Vec<Step>,
    pub ms: u64,
}

/// What came back for a hand-built ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RawResponse {
    ServerHello {
        version: String,
        cipher_suite: String,
    },
    Alert {
        code: u8,
        name: String,
    },
    Closed {
        reset: bool,
    },
    Timeout,
    /// Not TLS: the first bytes, printable characters kept and the rest escaped.
    NotTls {
        preview: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawProbe {
    /// What varied (`modern`, `without SNI`, `SNI localhost`, `TLS 1.0`, `legacy suites`…).
    pub label: String,
    pub sent: HelloSent,
    pub response: RawResponse,
    pub ms: u64,
}

/// One certificate as the server sent it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertDetails {
    pub subject: String,
    pub issuer: String,
    /// subjectAltName entries, `DNS:name` / `IP:addr`; `None` when the extension is absent.
    pub sans: Option<Vec<String>>,
    pub common_name: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub sha256: String,
    pub serial: String,
    pub signature_algorithm: String,
    /// `RSA 2048`, `EC P-256`, `Ed25519`…
    pub key: String,
    /// RSA modulus bits (0 for other key types).
    pub rsa_bits: u32,
    pub is_ca: bool,
    /// Issuer name equals subject name.
    pub self_issued: bool,
    /// extKeyUsage names, `None` when the extension is absent (any use allowed).
    pub eku: Option<Vec<String>>,
    /// The certificate in PEM, so a user can save exactly what was presented.
    pub pem: String,
}

/// The presented chain judged against one trust store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustVerdict {
    /// `system`, `mozilla` or `pinned`.
    pub store: String,
    pub trusted: bool,
    /// Trusted only with the dates set aside: no instant lies within every presented
    /// certificate's validity, so the path was checked link by link (names and
    /// signatures). The dates are findings of their own.
    #[serde(default)]
    pub dates_aside: bool,
    /// The anchor the path ended at (subject), when trusted.
    pub anchor: Option<String>,
    /// webpki's reason when not trusted (`UnknownIssuer`, `RequiredEkuNotFound`…).
    pub error: Option<String>,
    /// Whether the leaf's issuer (by name) is a certificate of this store.
    pub has_leaf_issuer: bool,
    /// Whether the issuer of the last presented certificate is in this store.
    pub has_top_issuer: bool,
    /// Number of anchors in the store (0: store empty or unreadable).
    pub anchors: usize,
    /// The anchors' subjects, for the `pinned` store only (the others are long lists).
    #[serde(default)]
    pub anchor_names: Vec<String>,
    /// For a client's store (`--as`, `--compare`): which client (`node`, `python`…).
    #[serde(default)]
    pub client: Option<String>,
    /// Whether this is the store that client uses by default (Python: requests when it
    /// is installed, else the `ssl` module's; rustls: rustls-native-certs).
    #[serde(default)]
    pub primary: bool,
    /// Where a client's store came from, in the order the client reads it: files,
    /// environment variables (set or not), the client's version when it matters.
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameCheck {
    pub name: String,
    pub valid: bool,
    pub error: Option<String>,
}

/// One HTTP/1.1 request (`GET path`, `Connection: close`) and what the server answered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HttpCheck {
    /// The request line sent, `GET /path HTTP/1.1`.
    pub request: String,
    /// The Host header sent.
    pub host: String,
    /// Whether our client certificate was presented on this connection.
    pub client_cert: bool,
    /// The trust store rustls verified the server's certificate with on this connection
    /// (`pinned`, `system` or `mozilla`); nothing is sent unless that succeeded.
    pub verified_by: String,
    /// `HTTP/1.1 400 Bad Request`, when a response came.
    pub status_line: Option<String>,
    pub status: Option<u16>,
    /// The response's own words: its HTML title, else the first text of its body,
    /// truncated.
    pub text: Option<String>,
    /// Why no response was read (the verified handshake failed, a timeout, a reset…).
    pub error: Option<String>,
    pub ms: u64,
}

/// What `doctor audit` sent and what came back: the real client certificate first, then
/// each forged twin, in order, until the answers settle the question.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditObservation {
    pub tries: Vec<AuditTry>,
}

/// One request of an audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditTry {
    /// `real`, `none`, `self-signed`, `same-name-issuer`, `expired` or `no-client-auth-eku`.
    pub twin: String,
    /// What was presented, for people.
    pub presented: String,
    pub http: HttpCheck,
}

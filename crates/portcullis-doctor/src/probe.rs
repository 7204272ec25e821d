//! The probe engine: resolve, connect, handshake with a recording verifier, and, when the
//! handshake dies before the server's certificate, hand-built ClientHellos that vary one
//! thing at a time (SNI, version, cipher suites). Every step has a hard timeout. The
//! output is plain [`Observations`]; nothing here decides what went wrong.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::danger::{self, RecordingClientAuth, RecordingVerifier};
use crate::error::Error;
use crate::observe::*;
use crate::raw::{self, RawHello};
use crate::trust::{self, Stores};
use crate::{Target, certs, http};

/// How long we listen after the handshake for the server's verdict on our client
/// certificate (TLS 1.3 servers send it after our Finished).
const AFTER_HANDSHAKE_WAIT: Duration = Duration::from_millis(600);

/// A client certificate and its (decrypted, PKCS#8) key.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub chain: Vec<Vec<u8>>,
    pub key_pkcs8: Vec<u8>,
    pub cert_file: String,
    pub key_file: String,
    /// CA certificates that issued the chain's certificates, found beside the certificate
    /// file (its NAME.chain.pem) but not in it: never sent, only used to tell a leaf sent
    /// without its intermediate from a certificate of a foreign CA.
    pub beside: Vec<Vec<u8>>,
}

impl ClientIdentity {
    /// The key and chain from a PKCS#12 bundle (`--p12`). A bundle the password does not
    /// open is [`Error::P12`]; the CLI reports it as `client-key-passphrase`.
    pub fn from_p12(
        der: &[u8],
        password: &str,
        origin: &str,
        path: &std::path::Path,
    ) -> Result<ClientIdentity, Error> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            der,
            password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| Error::P12 {
            path: path.to_owned(),
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        for (_, entry) in store.entries() {
            if let p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) = entry {
                let certs: Vec<Vec<u8>> =
                    chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
                if certs.is_empty() {
                    continue;
                }
                return Ok(ClientIdentity {
                    chain: certs,
                    key_pkcs8: chain.key().as_der().to_vec(),
                    cert_file: path.display().to_string(),
                    key_file: path.display().to_string(),
                    beside: Vec::new(),
                });
            }
        }
        Err(Error::P12Empty {
            path: path.to_owned(),
        })
    }
}

/// What the user asked the doctor to try.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    pub servername: Option<String>,
    /// `--ca` files (as named on the command line) and their certificates.
    pub ca_files: Vec<String>,
    pub ca: Option<Vec<Vec<u8>>>,
    pub client: Option<ClientIdentity>,
    /// `--tls`: "1.2" or "1.3".
    pub tls: Option<String>,
    pub alpn: Vec<String>,
    pub timeout: Duration,
    pub compare: bool,
    /// `--as`: judge trust with the store this client (one of [`crate::clients::CLIENTS`])
    /// uses on this machine.
    pub as_client: Option<String>,
}

/// One way of connecting; [`crate::compare`] varies these.
#[derive(Debug, Clone)]
pub struct Profile {
    pub label: String,
    /// The name sent in SNI; `None` sends none.
    pub sni: Option<String>,
    pub tls: Option<String>,
    pub alpn: Vec<String>,
    pub client_cert: bool,
}

impl Request {
    /// The name sent and verified: `--servername`, else the host when it is a DNS name.
    pub fn servername(&self) -> Option<String> {
        self.servername.clone().or_else(|| {
            self.target
                .host
                .parse::<IpAddr>()
                .is_err()
                .then(|| self.target.host.clone())
        })
    }

    pub fn profile(&self) -> Profile {
        Profile {
            label: "as requested".into(),
            sni: self.servername(),
            tls: self.tls.clone(),
            alpn: self.alpn.clone(),
            client_cert: self.client.is_some(),
        }
    }
}

/// Runs every probe and returns what was seen (with the compare matrix's handshakes when
/// asked for). Only fails when the doctor itself cannot work (no runtime).
pub fn run(req: &Request, stores: &Stores) -> Result<Observations, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    Ok(rt.block_on(run_async(req, stores)))
}

pub(crate) async fn run_async(req: &Request, stores: &Stores) -> Observations {
    let mut obs = Observations {
        target: TargetInfo {
            host: req.target.host.clone(),
            port: req.target.port,
            servername: req.servername(),
            ca_files: req.ca_files.clone(),
            client_cert: req.client.as_ref().map(|c| c.cert_file.clone()),
            client_key: req.client.as_ref().map(|c| c.key_file.clone()),
            tls: req.tls.clone(),
            alpn: req.alpn.clone(),
            path: req.target.path.clone(),
            as_client: req.as_client.clone(),
        },
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
        ..Default::default()
    };
    if let Some(c) = &req.client {
        obs.client_chain = c.chain.iter().map(|d| certs::details(d)).collect();
        obs.client_chain_beside = c.beside.iter().map(|d| certs::details(d)).collect();
    }
    if let Some(c) = &req.client
        && let Some(issue) = check_client_key(c)
    {
        obs.local.push(issue);
        return obs;
    }

    // DNS
    let start = Instant::now();
    let lookup = tokio::time::timeout(
        req.timeout,
        tokio::net::lookup_host((req.target.host.as_str(), req.target.port)),
    )
    .await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            obs.dns = Some(DnsObservation {
                addresses: vec![],
                error: Some(e.to_string()),
                ms: ms(start),
            });
            return obs;
        }
        Err(_) => {
            obs.dns = Some(DnsObservation {
                addresses: vec![],
                error: Some("resolver timed out".into()),
                ms: ms(start),
            });
            return obs;
        }
    };
    obs.dns = Some(DnsObservation {
        addresses: addrs.iter().map(|a| a.ip().to_string()).collect(),
        error: if addrs.is_empty() {
            Some("no addresses".into())
        } else {
            None
        },
        ms: ms(start),
    });

    // TCP: the first address that answers.
    let mut addr = None;
    let mut first_stream = None;
    for a in addrs.iter().take(4) {
        let start = Instant::now();
        let (outcome, error) = match tokio::time::timeout(req.timeout, TcpStream::connect(a)).await
        {
            Ok(Ok(s)) => {
                // Reused for the first handshake: a server that accepts only a few
                // connections (or logs each one) sees no extra empty connection.
                first_stream = Some(s);
                (TcpOutcome::Connected, None)
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                (TcpOutcome::Refused, Some(e.to_string()))
            }
            Ok(Err(e)) => (TcpOutcome::Error, Some(e.to_string())),
            Err(_) => (TcpOutcome::Timeout, None),
        };
        let connected = matches!(outcome, TcpOutcome::Connected);
        obs.tcp = Some(TcpObservation {
            address: a.to_string(),
            outcome,
            error,
            ms: ms(start),
        });
        if connected {
            addr = Some(*a);
            break;
        }
    }
    let Some(addr) = addr else {
        return obs;
    };

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let profile = req.profile();
    let (primary, mut chain) = handshake(addr, &profile, req, &provider, first_stream).await;
    let failed_early = primary.outcome.stage() == Some(Stage::Hello);
    obs.handshakes.push(primary);

    if failed_early {
        raw_probes(addr, req, &profile, &mut obs).await;
        if let Some(name) = obs.sni_found.clone() {
            // Collect the chain the server shows under the name it wants.
            let p = Profile {
                label: format!("SNI {name}"),
                sni: Some(name.clone()),
                ..profile.clone()
            };
            let (h, c) = handshake(addr, &p, req, &provider, None).await;
            obs.handshakes.push(h);
            chain = c;
        }
    } else if let Some(name) = name_for_client_auth(&obs, &profile, req, &chain) {
        // Client-certificate settings often belong to a name (Caddy's sites, nginx's
        // server blocks): reached by address, without SNI, the server completed the
        // handshake without asking for a certificate. One handshake naming the leaf's
        // first DNS name tells whether the name is what makes it ask.
        let p = Profile {
            label: format!("SNI {name}"),
            sni: Some(name.clone()),
            ..profile.clone()
        };
        let (h, c) = handshake(addr, &p, req, &provider, None).await;
        if h.cert_request.is_some() {
            obs.sni_found = Some(name);
            obs.handshakes.push(h);
            chain = c;
        }
    }

    if !chain.is_empty() {
        obs.chain = chain.iter().map(|d| certs::details(d)).collect();
        obs.trust = trust::judge(&chain, &obs.chain, stores);
        let name = obs
            .sni_found
            .clone()
            .unwrap_or_else(|| obs.target.verify_name().to_owned());
        obs.name_check = Some(trust::check_name(&chain[0], &name));
    }

    // The server asked for a client certificate and completed the handshake: some
    // servers (nginx `ssl_verify_client on`) only refuse in HTTP. One request tells.
    if obs
        .handshakes
        .last()
        .is_some_and(|main| main.cert_request.is_some())
        && let Some(route) = http_route(&obs, req, stores)
    {
        obs.http = Some(http::check(&route.check(), req, &provider).await);
    }

    if req.compare {
        let mut matrix = Vec::new();
        for p in crate::compare::profiles(req, &obs) {
            let (h, _) = handshake(addr, &p, req, &provider, None).await;
            matrix.push(h);
        }
        obs.compare = Some(matrix);
    }
    obs
}

/// Where and how a request may go after the probe: the address that answered, the name
/// to verify, the SNI of the handshake that completed, and the store the user's client
/// would trust it with.
pub(crate) struct Route<'a> {
    pub addr: SocketAddr,
    pub name: String,
    pub profile: Profile,
    pub store: (&'static str, &'a [TrustAnchor<'static>]),
}

impl Route<'_> {
    pub fn check(&self) -> http::Check<'_> {
        http::Check {
            addr: self.addr,
            name: &self.name,
            store: self.store,
            profile: &self.profile,
        }
    }
}

/// The route for HTTP requests, when the main handshake completed and a client would
/// trust the server (only then may data be sent).
pub(crate) fn http_route<'a>(
    obs: &Observations,
    req: &Request,
    stores: &'a Stores,
) -> Option<Route<'a>> {
    let main = obs.handshakes.last()?;
    if main.outcome != HandshakeOutcome::Established {
        return None;
    }
    let addr = obs.tcp.as_ref()?.address.parse().ok()?;
    let store = client_store(obs, stores)?;
    let name = obs
        .sni_found
        .clone()
        .unwrap_or_else(|| obs.target.verify_name().to_owned());
    Some(Route {
        addr,
        name,
        profile: Profile {
            sni: main.sent.sni.clone(),
            ..req.profile()
        },
        store,
    })
}

/// The store the user's client would use (`--ca`, else the system's, else Mozilla's), when
/// it trusts the presented chain and the name matches: only then may a client send data.
fn client_store<'a>(
    obs: &Observations,
    stores: &'a Stores,
) -> Option<(&'static str, &'a [TrustAnchor<'static>])> {
    let (name, anchors) = match &stores.pinned {
        Some(p) => ("pinned", p.as_slice()),
        None if !stores.system.is_empty() => ("system", stores.system.as_slice()),
        None => ("mozilla", stores.mozilla.as_slice()),
    };
    let trusted = obs
        .trust
        .iter()
        .any(|v| v.store == name && v.trusted && !v.dates_aside);
    let named = obs.name_check.as_ref().is_some_and(|n| n.valid);
    (trusted && named).then_some((name, anchors))
}

/// The name to retry with when a handshake without SNI completed and the server asked
/// for no client certificate: the target is an address and the leaf has a DNS name.
fn name_for_client_auth(
    obs: &Observations,
    profile: &Profile,
    req: &Request,
    chain: &[Vec<u8>],
) -> Option<String> {
    let primary = obs.handshakes.first()?;
    if primary.outcome != HandshakeOutcome::Established
        || primary.cert_request.is_some()
        || profile.sni.is_some()
        || req.target.host.parse::<IpAddr>().is_err()
    {
        return None;
    }
    let leaf = certs::details(chain.first()?);
    leaf.sans?
        .iter()
        .find_map(|s| s.strip_prefix("DNS:"))
        .filter(|n| !n.contains('*'))
        .map(str::to_owned)
}

/// Raw ClientHellos that vary one thing, to prove why the handshake died early.
async fn raw_probes(addr: SocketAddr, req: &Request, profile: &Profile, obs: &mut Observations) {
    let t = req.timeout;
    let run = |label: String, hello: RawHello| async move {
        let (response, ms) = raw::probe(addr, &hello, t).await;
        RawProbe {
            label,
            sent: hello.describe(),
            response,
            ms,
        }
    };
    let first = run(
        "modern hello".into(),
        RawHello::modern(profile.sni.clone(), profile.alpn.clone()),
    )
    .await;
    // A plain modern hello answered means our client's settings (--tls, --alpn) made the
    // difference; plaintext or silence need no variants either.
    let stop = matches!(
        first.response,
        RawResponse::NotTls { .. } | RawResponse::Timeout | RawResponse::ServerHello { .. }
    );
    obs.raw.push(first);
    if stop {
        return;
    }

    // SNI: leave it out, or try the names the hosts file gives the address.
    let mut sni = profile.sni.clone();
    if profile.sni.is_some() {
        let p = run(
            "without SNI".into(),
            RawHello::modern(None, profile.alpn.clone()),
        )
        .await;
        obs.raw.push(p);
    } else if let Ok(ip) = req.target.host.parse::<IpAddr>() {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for name in names_for(&hosts, ip).into_iter().take(3) {
            let p = run(
                format!("SNI {name}"),
                RawHello::modern(Some(name.clone()), profile.alpn.clone()),
            )
            .await;
            let ok = matches!(p.response, RawResponse::ServerHello { .. });
            obs.raw.push(p);
            if ok {
                obs.sni_found = Some(name.clone());
                sni = Some(name);
                break;
            }
        }
    }
    if obs.sni_found.is_some() {
        return;
    }

    // Versions and suites.
    let mut modern12 = RawHello::legacy(sni.clone(), 0x0303);
    modern12.suites = raw::MODERN_SUITES[3..].to_vec();
    let mut legacy12 = RawHello::legacy(sni.clone(), 0x0303);
    legacy12.suites = raw::LEGACY_SUITES.to_vec();
    for (label, hello) in [
        ("TLS 1.2, modern suites", modern12),
        ("TLS 1.2, legacy suites", legacy12),
        ("TLS 1.1", RawHello::legacy(sni.clone(), 0x0302)),
        ("TLS 1.0", RawHello::legacy(sni.clone(), 0x0301)),
    ] {
        let p = run(label.into(), hello).await;
        obs.raw.push(p);
    }
}

/// Host names a hosts file gives an address (`127.0.0.1 localhost` → `localhost`).
pub fn names_for(hosts: &str, ip: IpAddr) -> Vec<String> {
    let mut out = Vec::new();
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        if fields.next().and_then(|a| a.parse::<IpAddr>().ok()) == Some(ip) {
            for n in fields {
                if !out.iter().any(|o| o == n) {
                    out.push(n.to_owned());
                }
            }
        }
    }
    out
}

fn ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

pub(crate) fn versions(tls: Option<&str>) -> Vec<&'static SupportedProtocolVersion> {
    match tls {
        Some("1.2") => vec![&rustls::version::TLS12],
        Some("1.3") => vec![&rustls::version::TLS13],
        _ => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    }
}

fn certified_key(
    c: &ClientIdentity,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, rustls::Error> {
    let chain = c
        .chain
        .iter()
        .map(|d| CertificateDer::from(d.clone()))
        .collect();
    let key = PrivateKeyDer::try_from(c.key_pkcs8.clone())
        .map_err(|e| rustls::Error::General(e.into()))?;
    CertifiedKey::from_der(chain, key, provider)
}

/// A local check before any connection: the key must match the certificate.
fn check_client_key(c: &ClientIdentity) -> Option<LocalIssue> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    match certified_key(c, &provider) {
        Ok(_) => None,
        Err(rustls::Error::InconsistentKeys(_)) => Some(LocalIssue {
            cause: "client-key-mismatch".into(),
            detail: format!(
                "the private key in {} does not belong to the certificate in {}",
                c.key_file, c.cert_file
            ),
        }),
        Err(e) => Some(LocalIssue {
            cause: "client-key-mismatch".into(),
            detail: format!("cannot use {} with {}: {e}", c.key_file, c.cert_file),
        }),
    }
}

/// One rustls handshake with the recording verifier. Returns the trace and the chain.
pub(crate) async fn handshake(
    addr: SocketAddr,
    profile: &Profile,
    req: &Request,
    provider: &Arc<CryptoProvider>,
    connected: Option<TcpStream>,
) -> (Handshake, Vec<Vec<u8>>) {
    let record = danger::Shared::default();
    let key = if profile.client_cert {
        req.client
            .as_ref()
            .and_then(|c| certified_key(c, provider).ok())
            .map(Arc::new)
    } else {
        None
    };
    let vers = versions(profile.tls.as_deref());
    let suites: Vec<String> = provider
        .cipher_suites
        .iter()
        .filter(|s| vers.iter().any(|v| v.version == s.version().version))
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    let sent = HelloSent {
        sni: profile.sni.clone(),
        versions: vers
            .iter()
            .map(|v| {
                format!("{:?}", v.version)
                    .replace("v1_", "1.")
                    .replace("TLS", "TLS ")
            })
            .collect(),
        alpn: profile.alpn.clone(),
        cipher_suites: suites,
        client_cert: key.is_some(),
    };
    let mut h = Handshake {
        label: profile.label.clone(),
        sent,
        outcome: HandshakeOutcome::Timeout {
            stage: Stage::Hello,
        },
        version: None,
        cipher_suite: None,
        alpn: None,
        cert_request: None,
        chain_len: 0,
        signature_error: None,
        steps: Vec::new(),
        ms: 0,
    };

    let builder =
        match ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(&vers) {
            Ok(b) => b,
            Err(e) => {
                h.outcome = HandshakeOutcome::ClientError {
                    message: e.to_string(),
                    stage: Stage::Hello,
                };
                return (h, Vec::new());
            }
        };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier {
            record: record.clone(),
            provider: provider.clone(),
        }))
        .with_client_cert_resolver(Arc::new(RecordingClientAuth {
            record: record.clone(),
            key: key.clone(),
        }));
    config.alpn_protocols = profile.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.enable_sni = profile.sni.is_some();
    let server_name = match profile
        .sni
        .clone()
        .or_else(|| Some(req.target.host.clone()))
        .map(ServerName::try_from)
    {
        Some(Ok(n)) => n,
        _ => ServerName::IpAddress(addr.ip().into()),
    };

    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + req.timeout;
    let connect = async {
        match connected {
            Some(s) => Ok(s),
            None => TcpStream::connect(addr).await,
        }
    };
    let tcp = match tokio::time::timeout_at(deadline, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            h.outcome = HandshakeOutcome::ClientError {
                message: format!("connect: {e}"),
                stage: Stage::Hello,
            };
            return (h, Vec::new());
        }
        Err(_) => {
            h.ms = ms(start);
            return (h, Vec::new());
        }
    };
    let connect_ms = ms(start);
    h.steps
        .push(step(connect_ms, "sent", describe_hello(&h.sent)));
    let connector = TlsConnector::from(Arc::new(config));
    let result = tokio::time::timeout_at(deadline, connector.connect(server_name, tcp)).await;
    let stage_now = |r: &danger::Shared| {
        if r.lock().map(|g| g.chain.is_empty()).unwrap_or(true) {
            Stage::Hello
        } else {
            Stage::Certificate
        }
    };
    match result {
        Err(_) => {
            h.outcome = HandshakeOutcome::Timeout {
                stage: stage_now(&record),
            };
        }
        Ok(Err(e)) => h.outcome = from_io_error(&e, stage_now(&record)),
        Ok(Ok(mut tls)) => {
            {
                let (_, conn) = tls.get_ref();
                h.version = conn
                    .protocol_version()
                    .map(|v| format!("{v:?}").replace("v1_", "1.").replace("TLS", "TLS "));
                h.cipher_suite = conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()));
                h.alpn = conn
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
            }
            h.steps.push(step(
                ms(start),
                "note",
                format!(
                    "handshake complete: {} {}{}",
                    h.version.as_deref().unwrap_or("?"),
                    h.cipher_suite.as_deref().unwrap_or("?"),
                    h.alpn
                        .as_deref()
                        .map(|a| format!(", ALPN {a}"))
                        .unwrap_or_default()
                ),
            ));
            // Listen briefly: no application data is ever written on this connection.
            // Only when the server asked for a client certificate is there a verdict to
            // wait for; otherwise a quick look is enough.
            let asked_for_cert = record
                .lock()
                .map(|r| r.cert_request.is_some())
                .unwrap_or(false);
            let wait = if asked_for_cert {
                AFTER_HANDSHAKE_WAIT
            } else {
                Duration::from_millis(50)
            }
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let mut buf = [0u8; 1024];
            h.outcome = match tokio::time::timeout(wait, tls.read(&mut buf)).await {
                Err(_) | Ok(Ok(1..)) => HandshakeOutcome::Established,
                // A clean close after a handshake that did not involve a client
                // certificate is the server's business (it had nothing to reject).
                Ok(Ok(0)) if !asked_for_cert => {
                    h.steps.push(step(
                        ms(start),
                        "closed",
                        "the server closed the connection after the handshake".into(),
                    ));
                    HandshakeOutcome::Established
                }
                Ok(Ok(0)) => HandshakeOutcome::Closed {
                    reset: false,
                    stage: Stage::AfterHandshake,
                },
                Ok(Err(e)) => from_io_error(&e, Stage::AfterHandshake),
            };
            let _ = tokio::time::timeout(Duration::from_millis(200), tls.shutdown()).await;
        }
    }
    h.ms = ms(start);

    let rec = danger::snapshot(&record);
    let at = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(start).as_millis() as u64);
    if let Some(t) = at(rec.chain_at) {
        let leaf = rec
            .chain
            .first()
            .map(|d| certs::details(d).subject)
            .unwrap_or_default();
        h.steps.push(step(
            t,
            "received",
            format!(
                "ServerHello, Certificate ({} certificate{}; leaf {leaf})",
                rec.chain.len(),
                if rec.chain.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    if let (Some(t), Some(names)) = (at(rec.cert_request_at), &rec.cert_request) {
        let names: Vec<String> = names.iter().map(|n| certs::name_string(n)).collect();
        h.steps.push(step(
            t,
            "received",
            format!(
                "CertificateRequest (acceptable CAs: {})",
                if names.is_empty() {
                    "not listed".to_owned()
                } else {
                    names.join("; ")
                }
            ),
        ));
        h.steps.push(step(
            t,
            "sent",
            if key.is_some() {
                "Certificate (our client certificate)".to_owned()
            } else {
                "Certificate (empty: no client certificate configured)".to_owned()
            },
        ));
        h.cert_request = Some(names);
    }
    h.chain_len = rec.chain.len();
    h.signature_error = rec.signature_error;
    let end = h.ms;
    match &h.outcome {
        HandshakeOutcome::Established => h.steps.push(step(
            end,
            "closed",
            "we closed the connection (close_notify); no application data was sent".to_owned(),
        )),
        HandshakeOutcome::Alert { code, name, .. } => h.steps.push(step(
            end,
            "received",
            format!("alert {code} ({name}) from the server; it closed the connection"),
        )),
        HandshakeOutcome::Closed { reset, .. } => h.steps.push(step(
            end,
            "closed",
            if *reset {
                "the server reset the connection (RST), without an alert".to_owned()
            } else {
                "the server closed the connection (FIN), without an alert".to_owned()
            },
        )),
        HandshakeOutcome::Timeout { .. } => h.steps.push(step(
            end,
            "closed",
            format!("no answer after {end} ms; we gave up and closed"),
        )),
        HandshakeOutcome::NotTls { .. } => h.steps.push(step(
            end,
            "received",
            "bytes that are not a TLS record; we closed".to_owned(),
        )),
        HandshakeOutcome::ClientError { message, .. } => h.steps.push(step(
            end,
            "closed",
            format!("our client gave up: {message}"),
        )),
    }
    // Same-millisecond steps in protocol order: hello, server flight, completion, end.
    h.steps.sort_by_key(|s| {
        let rank = if s.what.starts_with("ClientHello") {
            0
        } else if s.what.starts_with("ServerHello")
            || s.what.starts_with("CertificateRequest")
            || s.what.starts_with("Certificate (")
        {
            1
        } else if s.what.starts_with("handshake complete") {
            2
        } else {
            3
        };
        (s.ms, rank)
    });
    (h, rec.chain)
}

fn step(ms: u64, dir: &str, what: String) -> Step {
    Step {
        ms,
        dir: dir.into(),
        what,
    }
}

fn describe_hello(s: &HelloSent) -> String {
    format!(
        "ClientHello (SNI {}, versions {}, ALPN {}, {} cipher suites{})",
        s.sni.as_deref().unwrap_or("none"),
        s.versions.join("/"),
        if s.alpn.is_empty() {
            "none".to_owned()
        } else {
            s.alpn.join(",")
        },
        s.cipher_suites.len(),
        if s.client_cert {
            ", client certificate ready"
        } else {
            ""
        }
    )
}

fn from_io_error(e: &std::io::Error, stage: Stage) -> HandshakeOutcome {
    use std::io::ErrorKind::*;
    if let Some(re) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match re {
            rustls::Error::AlertReceived(a) => {
                let code = u8::from(*a);
                HandshakeOutcome::Alert {
                    code,
                    name: raw::alert_name(code).into(),
                    stage,
                }
            }
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                HandshakeOutcome::NotTls { stage }
            }
            other => HandshakeOutcome::ClientError {
                message: other.to_string(),
                stage,
            },
        };
    }
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe => {
            HandshakeOutcome::Closed { reset: true, stage }
        }
        UnexpectedEof => HandshakeOutcome::Closed {
            reset: false,
            stage,
        },
        _ => HandshakeOutcome::ClientError {
            message: e.to_string(),
            stage,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names() {
        let hosts =
            "127.0.0.1 localhost\n# comment\n127.0.0.1 vm vm.local # x\n::1 ip6-localhost\n";
        assert_eq!(
            names_for(hosts, "127.0.0.1".parse().unwrap()),
            vec!["localhost", "vm", "vm.local"]
        );
        assert_eq!(
            names_for(hosts, "::1".parse().unwrap()),
            vec!["ip6-localhost"]
        );
    }
}

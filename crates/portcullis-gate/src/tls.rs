//! The rustls server configuration: certificate chain, private key, and the client
//! certificate verifier for the configured mode. Verification is always rustls/webpki's;
//! nothing here can turn it off.

use std::path::Path;
use std::sync::Arc;

use portcullis_pki::Passphrase;
use rustls::RootCertStore;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::*;

use crate::config::{ClientAuth, Config, InvalidCert};
use crate::error::{Error, Result};

/// Everything TLS-related the gate needs after loading.
#[derive(Debug)]
pub struct Tls {
    pub server_config: Arc<rustls::ServerConfig>,
    /// Set only with `invalid_cert = "anonymous"`: the handshake did NOT verify the client
    /// chain, and the gate must run this verifier on it before any identity exists
    /// (see [`DeferredVerifier`]).
    pub deferred: Option<Arc<dyn ClientCertVerifier>>,
    /// The client certificate verifier, for re-checking sessions that resume: rustls does
    /// not verify the client certificate again on resumption, and a certificate may have
    /// been revoked since the ticket was issued. `None` when client auth is off.
    pub recheck: Option<Arc<dyn ClientCertVerifier>>,
    /// DNS and IP names of the server certificate (lower case): the hosts accepted from
    /// clients that send no SNI, unless `server_names` overrides them.
    pub cert_names: Vec<String>,
    /// Subjects of the trusted client CAs, for pages and `portcullis check`.
    pub client_ca_subjects: Vec<String>,
    /// CRLs whose nextUpdate has passed (reported loudly at start).
    pub expired_crls: Vec<String>,
    /// (kind, subject, notAfter as Unix time) of the served certificate and the client CAs,
    /// for the expiry gauges of `/metrics`.
    pub expiry: Vec<(&'static str, String, i64)>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every `label` block of a PEM file, or the whole file if it is DER.
fn pem_blocks(path: &Path, label: &str) -> Result<Vec<Vec<u8>>> {
    let bytes = read(path)?;
    if !bytes.trim_ascii_start().starts_with(b"-----") {
        return Ok(vec![bytes]);
    }
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let block = block.map_err(|e| Error::Invalid {
            path: path.to_owned(),
            reason: format!("bad PEM: {e}"),
        })?;
        if block.label == label {
            out.push(block.contents);
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid {
            path: path.to_owned(),
            reason: format!("no {label} block found"),
        });
    }
    Ok(out)
}

/// Builds the TLS side of the gate from a config. `key_passphrase` unlocks an encrypted
/// server key.
/// Session tickets for every site of a gate: sealed with the shared key file when there is
/// one (so any replica can resume them), otherwise with keys this process makes and rotates
/// itself. One ticketer serves all sites; rustls refuses to resume a session under another
/// SNI name, so sharing keys never lets a session cross hosts.
pub fn ticketer(config: &Config) -> Result<Arc<dyn rustls::server::ProducesTickets>> {
    Ok(match &config.ticket_keys {
        Some(path) => Arc::new(SharedKeyTicketer::load(
            path,
            config.limits.ticket_lifetime_secs,
        )?),
        None => rustls::crypto::aws_lc_rs::Ticketer::new()
            .map_err(|e| Error::Tls(format!("session tickets: {e}")))?,
    })
}

pub fn load(
    config: &Config,
    key_passphrase: Option<&Passphrase>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
) -> Result<Tls> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

    let chain: Vec<CertificateDer<'static>> = pem_blocks(&config.cert, "CERTIFICATE")?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let mut cert_names = Vec::new();
    let mut expiry = Vec::new();
    {
        let (_, leaf) = parse_x509_certificate(&chain[0]).map_err(|e| Error::Invalid {
            path: config.cert.clone(),
            reason: format!("corrupt certificate: {e}"),
        })?;
        expiry.push((
            "server",
            leaf.subject().to_string(),
            leaf.validity().not_after.timestamp(),
        ));
        if leaf.is_ca() {
            return Err(Error::Invalid {
                path: config.cert.clone(),
                reason: "the first certificate is a CA; the file must start with the server's own certificate".into(),
            });
        }
        if let Ok(Some(san)) = leaf.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => cert_names.push(d.to_ascii_lowercase()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            cert_names.push(std::net::IpAddr::from(a).to_string());
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            cert_names.push(std::net::IpAddr::from(a).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    let key_text = String::from_utf8(read(&config.key)?).map_err(|_| Error::Invalid {
        path: config.key.clone(),
        reason: "not a PEM private key".into(),
    })?;
    let key = portcullis_pki::keys::from_pem(
        &key_text,
        &config.key,
        key_passphrase,
        "key_passphrase_file in the config, the PORTCULLIS_KEY_PASSPHRASE environment variable, or run in a terminal to be prompted",
    )?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    let mut client_ca_subjects = Vec::new();
    let mut expired_crls = Vec::new();
    let mut deferred = None;
    let mut recheck = None;
    let verifier = match config.client_auth {
        ClientAuth::Off => WebPkiClientVerifier::no_client_auth(),
        mode => {
            let mut roots = RootCertStore::empty();
            for path in &config.client_ca {
                for der in pem_blocks(path, "CERTIFICATE")? {
                    if let Ok((_, c)) = parse_x509_certificate(&der) {
                        client_ca_subjects.push(c.subject().to_string());
                        expiry.push((
                            "client-ca",
                            c.subject().to_string(),
                            c.validity().not_after.timestamp(),
                        ));
                    }
                    roots
                        .add(CertificateDer::from(der))
                        .map_err(|e| Error::Invalid {
                            path: path.clone(),
                            reason: format!("not a usable CA certificate: {e}"),
                        })?;
                }
            }
            let mut crls = Vec::new();
            let now = x509_parser::time::ASN1Time::now();
            for path in &config.crl {
                for der in pem_blocks(path, "X509 CRL")? {
                    let (_, crl) = parse_x509_crl(&der).map_err(|e| Error::Invalid {
                        path: path.clone(),
                        reason: format!("corrupt CRL: {e}"),
                    })?;
                    if crl.next_update().is_some_and(|n| n < now) {
                        expired_crls.push(format!(
                            "{} (issuer {}, nextUpdate {})",
                            path.display(),
                            crl.issuer(),
                            crl.next_update().map(|t| t.to_string()).unwrap_or_default()
                        ));
                    }
                    crls.push(CertificateRevocationListDer::from(der));
                }
            }
            let mut builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if !crls.is_empty() {
                // Leaves must be covered by a CRL; intermediates need not be (the usual
                // setup publishes only the issuing CA's CRL).
                builder = builder.with_crls(crls).only_check_end_entity_revocation();
                if !config.allow_expired_crl {
                    builder = builder.enforce_revocation_expiration();
                }
            }
            if mode == ClientAuth::Optional {
                builder = builder.allow_unauthenticated();
            }
            let verifier = builder
                .build()
                .map_err(|e| Error::Tls(format!("client certificate verifier: {e}")))?;
            recheck = Some(verifier.clone());
            if mode == ClientAuth::Optional && config.invalid_cert == InvalidCert::Anonymous {
                deferred = Some(verifier.clone());
                Arc::new(DeferredVerifier { inner: verifier })
            } else {
                verifier
            }
        }
    };

    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| Error::Invalid {
            path: config.key.clone(),
            reason: format!(
                "does not match the certificate in {}: {e}",
                config.cert.display()
            ),
        })?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    server_config.ticketer = ticketer;

    Ok(Tls {
        server_config: Arc::new(server_config),
        deferred,
        recheck,
        cert_names,
        client_ca_subjects,
        expired_crls,
        expiry,
    })
}

/// Whether the server key file is passphrase-protected (so the CLI knows to ask).
pub fn key_is_encrypted(path: &Path) -> Result<bool> {
    let bytes = read(path)?;
    Ok(portcullis_pki::keys::is_encrypted(
        &String::from_utf8_lossy(&bytes),
    ))
}

// === impl DeferredVerifier ===

/// For `invalid_cert = "anonymous"` only: lets the TLS handshake complete when the client
/// presents a certificate that fails chain verification, so the gate can answer with a
/// page ("your certificate is expired") instead of a bare handshake failure — like nginx's
/// `ssl_verify_client optional_no_ca` with `$ssl_client_verify`.
///
/// Verification is moved, not removed: the proof of possession (the client's handshake
/// signature) is still checked here, and the gate runs the real verifier, `inner`, on the
/// chain right after the handshake (`Tls::deferred`). Only a chain that passes becomes an
/// identity; any other is anonymous, with the failure reason in `X-Client-Verify`.
#[derive(Debug)]
struct DeferredVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        // Deferred to `Tls::deferred`, which the gate runs after the handshake.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a handshake failed, for logs and metrics: one of `metrics::HANDSHAKE_OUTCOMES`.
pub fn handshake_failure(e: &std::io::Error) -> &'static str {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return "io";
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "no-cert",
        // The client refused us (often: it does not trust the server certificate).
        rustls::Error::AlertReceived(_) => "peer-alert",
        rustls::Error::InvalidCertificate(_) => match failure_reason(tls) {
            "invalid" | "bad-signature" | "bad-encoding" | "unknown-revocation-status" => {
                "bad-certificate"
            }
            other => other,
        },
        _ => "protocol",
    }
}

/// A short, stable reason for a refused client certificate (`X-Client-Verify: FAILED:…`).
pub fn failure_reason(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "not-yet-valid",
            C::Revoked => "revoked",
            C::UnknownIssuer => "unknown-ca",
            C::UnknownRevocationStatus => "unknown-revocation-status",
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => "crl-expired",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "wrong-purpose",
            C::BadSignature => "bad-signature",
            C::BadEncoding => "bad-encoding",
            _ => "invalid",
        },
        _ => "invalid",
    }
}

// === impl SharedKeyTicketer ===

/// TLS session tickets sealed with keys from a file that every replica reads, so a client
/// can resume on any replica behind a load balancer. The file holds one 32-byte key per
/// line in hex (64 digits; `#` starts a comment). The first key seals new tickets; every
/// key opens them. To rotate: put a new key first, reload all replicas, and drop the last
/// key once tickets sealed with it have expired (`lifetime`).
///
/// Tickets are AES-256-GCM: `key id (4) ‖ nonce (12) ‖ ciphertext ‖ tag`, with the key id
/// (the first 4 bytes of the key's SHA-256) as associated data.
pub struct SharedKeyTicketer {
    keys: Vec<([u8; 4], aws_lc_rs::aead::LessSafeKey)>,
    lifetime: u32,
}

impl std::fmt::Debug for SharedKeyTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: the keys themselves never appear in logs.
        let ids: Vec<String> = self.keys.iter().map(|(id, _)| hex_id(id)).collect();
        f.debug_struct("SharedKeyTicketer")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

fn hex_id(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl SharedKeyTicketer {
    /// Reads the key file. Errors name the file and line, never the key.
    pub fn load(path: &Path, lifetime: u32) -> Result<SharedKeyTicketer> {
        let text = String::from_utf8(read(path)?).map_err(|_| Error::Invalid {
            path: path.to_owned(),
            reason: "not a text file of hex keys".into(),
        })?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = || Error::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "line {}: expected 64 hex digits (a 32-byte key), e.g. from `openssl rand -hex 32`",
                    n + 1
                ),
            };
            if line.len() != 64 {
                return Err(bad());
            }
            let mut key = [0u8; 32];
            for (i, b) in key.iter_mut().enumerate() {
                *b = u8::from_str_radix(&line[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
            }
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key);
            let mut id = [0u8; 4];
            id.copy_from_slice(&digest.as_ref()[..4]);
            let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &key)
                .map_err(|_| bad())?;
            keys.push((id, aws_lc_rs::aead::LessSafeKey::new(unbound)));
        }
        if keys.is_empty() {
            return Err(Error::Invalid {
                path: path.to_owned(),
                reason: "no key; put one per line, e.g. from `openssl rand -hex 32`".into(),
            });
        }
        Ok(SharedKeyTicketer { keys, lifetime })
    }
}

impl rustls::server::ProducesTickets for SharedKeyTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{Aad, Nonce};
        let (id, key) = self.keys.first()?;
        let mut nonce = [0u8; 12];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id),
            &mut sealed,
        )
        .ok()?;
        let mut out = Vec::with_capacity(16 + sealed.len());
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{Aad, Nonce};
        if cipher.len() < 16 {
            return None;
        }
        let (id, rest) = cipher.split_at(4);
        let (nonce, sealed) = rest.split_at(12);
        let (kid, key) = self.keys.iter().find(|(k, _)| k.as_slice() == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(kid), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

/// A server configuration that has no certificate for any name: a handshake started with
/// it ends with an access_denied alert (rustls's answer when no certificate resolves).
/// For `no_sni = "reject"`.
pub fn refusing_config() -> Arc<rustls::ServerConfig> {
    #[derive(Debug)]
    struct NoCertificate;
    impl rustls::server::ResolvesServerCert for NoCertificate {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    match rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => Arc::new(
            b.with_no_client_auth()
                .with_cert_resolver(Arc::new(NoCertificate)),
        ),
        // Cannot happen with the default provider; an empty config refuses just the same.
        Err(_) => Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(NoCertificate)),
        ),
    }
}

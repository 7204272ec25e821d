//! The rustls server configuration of a site: certificate chain, private key, and the
//! client certificate verifier for the configured mode. Verification is always
//! rustls/webpki's; nothing here can turn it off.

mod hold;
mod recheck;
mod tickets;
mod verifier;

use std::path::Path;
use std::sync::Arc;

use portcullis_pki::Passphrase;
use rustls::RootCertStore;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use x509_parser::prelude::*;

use crate::config::{ClientAuth, InvalidCert, SiteConfig};
use crate::error::{Error, Result};

pub(crate) use hold::TicketHold;
pub use recheck::Recheck;
pub use tickets::{SharedKeyTicketer, ticketer};
pub use verifier::{handshake_failure, verify_chain};

/// The cipher suites the gate prefers, whatever order the client lists them in: TLS 1.3
/// requires every implementation to support TLS_AES_128_GCM_SHA256 (RFC 8446 §9.1), its
/// 128-bit strength is that of the X25519 and P-256 key exchange and certificates, and
/// SHA-256 runs in hardware on current x86 and ARM CPUs where SHA-384 (SHA-512 inside)
/// does not: the handshake's hashing, the larger part of a resumption, costs a third as
/// much. Measured: a resumed connection 132 → 108 µs, a full one 285 → 265 µs
/// (docs/performance.md). Go's TLS server makes the same choice.
const AES_128_GCM: [rustls::CipherSuite; 3] = [
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// Everything TLS-related a site needs after loading.
#[derive(Debug)]
pub struct SiteTls {
    /// Chooses the cipher suite in the gate's order (AES-128-GCM first).
    server_config: Arc<rustls::ServerConfig>,
    /// The same configuration, choosing in the client's order: for clients that list
    /// ChaCha20-Poly1305 first, which says they lack AES hardware.
    client_order: Arc<rustls::ServerConfig>,
    /// Set only with `invalid_cert = "anonymous"`: the handshake did NOT verify the client
    /// chain, and the gate must run this verifier on it before any identity exists
    /// (see [`verifier::DeferredVerifier`]).
    pub deferred: Option<Arc<dyn ClientCertVerifier>>,
    /// The client certificate verifier, for re-checking sessions that resume (rustls does
    /// not verify the client certificate again on resumption, and a certificate may have
    /// been revoked since the ticket was issued) and open connections after a reload.
    /// `None` when client auth is off.
    pub recheck: Option<Recheck>,
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

/// Seals nothing and opens nothing: `limits.session_tickets = 0`.
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

impl SiteTls {
    /// The server configuration for a client's handshake.
    pub fn config_for(&self, hello: &rustls::server::ClientHello<'_>) -> Arc<rustls::ServerConfig> {
        if prefers_chacha(hello.cipher_suites()) {
            self.client_order.clone()
        } else {
            self.server_config.clone()
        }
    }
}

/// Whether a client lists a ChaCha20-Poly1305 suite first, ignoring GREASE values
/// (RFC 8701: 0x0A0A, 0x1A1A, …, which BoringSSL clients put first).
fn prefers_chacha(suites: &[rustls::CipherSuite]) -> bool {
    use rustls::CipherSuite as S;
    let grease = |v: u16| v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff;
    suites
        .iter()
        .find(|s| !grease(u16::from(**s)))
        .is_some_and(|s| {
            matches!(
                s,
                S::TLS13_CHACHA20_POLY1305_SHA256
                    | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                    | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            )
        })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| Error::Read {
        path: path.to_owned(),
        error,
    })
}

/// Every `label` block of a PEM file, or the whole file if it is DER.
fn pem_blocks(path: &Path, label: &str) -> Result<Vec<Vec<u8>>> {
    pem_blocks_in(read(path)?, path, label)
}

/// [`pem_blocks`] of a file's contents.
fn pem_blocks_in(bytes: Vec<u8>, path: &Path, label: &str) -> Result<Vec<Vec<u8>>> {
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

/// Builds the TLS side of one site. `key_passphrase` unlocks an encrypted server key;
/// `tickets` is how many session tickets to send after each handshake.
pub fn load(
    config: &SiteConfig,
    key_passphrase: Option<&Passphrase>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    tickets: usize,
) -> Result<SiteTls> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // AES-128-GCM first (see `SiteTls::config_for`); the rest in aws-lc-rs's order.
    provider
        .cipher_suites
        .sort_by_key(|s| !AES_128_GCM.contains(&s.suite()));
    let provider = Arc::new(provider);

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
        // A certificate clients will refuse is refused here, where the fix can be named.
        let reissue =
            "issue a server certificate, e.g. `portcullis pki issue server HOST --dns HOST`";
        if let Ok(Some(eku)) = leaf.extended_key_usage()
            && !eku.value.server_auth
            && !eku.value.any
        {
            return Err(Error::Invalid {
                path: config.cert.clone(),
                reason: format!(
                    "not a server certificate: its extended key usage lacks serverAuth{}, so clients refuse it; {reissue}",
                    if eku.value.client_auth {
                        " (it is a client certificate)"
                    } else {
                        ""
                    }
                ),
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
        if cert_names.is_empty() {
            return Err(Error::Invalid {
                path: config.cert.clone(),
                reason: format!(
                    "the certificate names no host (no DNS or IP subjectAltName), and clients match the host they connect to against those alone; {reissue}"
                ),
            });
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
            let mut intermediates = Vec::new();
            let mut listing_intermediates = None;
            for path in &config.client_ca {
                let intermediates = (!config.trust_intermediates).then_some(&mut intermediates);
                let listed = add_anchors(read(path)?, path, &mut roots, intermediates)?;
                for (subject, not_after) in listed.anchors {
                    client_ca_subjects.push(subject.clone());
                    expiry.push(("client-ca", subject, not_after));
                }
                if !listed.intermediates.is_empty() {
                    listing_intermediates.get_or_insert(path);
                }
                expiry.extend((listed.intermediates.into_iter()).map(|(s, t)| ("client-ca", s, t)));
            }
            if let (true, Some(path)) = (roots.is_empty(), listing_intermediates) {
                return Err(Error::Invalid {
                    path: path.clone(),
                    reason: "client_ca lists intermediate CAs but no root: by default an intermediate only completes the chains of clients that send their certificate alone and is not trusted by itself. Either list the root CA that issued it (e.g. pki/root.crt; this accepts every CA under that root), or set trust_intermediates = true to accept only what these intermediates issued".into(),
                });
            }
            let mut crls = Vec::new();
            for path in &config.crl {
                crls.extend(read_crls(read(path)?, path, &mut expired_crls)?);
            }
            let mut builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if !crls.is_empty() {
                // Leaves must be covered by a CRL; intermediates need not be (the usual
                // setup publishes only the issuing CA's CRL).
                builder = builder
                    .with_crls(crls.iter().cloned())
                    .only_check_end_entity_revocation();
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
            let verifier: Arc<dyn ClientCertVerifier> = Arc::new(verifier::WithIntermediates::new(
                verifier,
                intermediates.clone(),
            ));
            recheck = Some(Recheck::new(
                verifier.clone(),
                &crls,
                !config.allow_expired_crl,
                &intermediates,
            ));
            if mode == ClientAuth::Optional && config.invalid_cert == InvalidCert::Anonymous {
                deferred = Some(verifier.clone());
                Arc::new(verifier::DeferredVerifier { inner: verifier })
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
            reason: match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
                    "is not the private key of the certificate in {}; use the key issued with it (portcullis pki writes NAME.key beside NAME.chain.pem)",
                    config.cert.display()
                ),
                e => format!("cannot be used with the certificate in {}: {e}", config.cert.display()),
            },
        })?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    server_config.ticketer = ticketer;
    // One ticket per handshake, where rustls and OpenSSL send two: a TLS 1.3 client spends
    // a ticket on each resumption and every resumption brings a new one, so one keeps a
    // client supplied. A ticket carries the client's whole chain, so each costs sealing
    // it and a kilobyte or more on the wire.
    server_config.send_tls13_tickets = tickets;
    if tickets == 0 {
        // No resumption at all: no TLS 1.3 tickets, and neither TLS 1.2 tickets nor
        // session ids, which rustls would otherwise still offer.
        server_config.ticketer = Arc::new(NoTickets);
        server_config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    }
    let client_order = Arc::new(server_config.clone());
    server_config.ignore_client_order = true;

    Ok(SiteTls {
        server_config: Arc::new(server_config),
        client_order,
        deferred,
        recheck,
        cert_names,
        client_ca_subjects,
        expired_crls,
        expiry,
    })
}

/// What a client-CA file listed: (subject, notAfter as Unix time) of each certificate.
pub(crate) struct Listed {
    pub anchors: Vec<(String, i64)>,
    pub intermediates: Vec<(String, i64)>,
}

/// Reads a client-CA file: self-issued CA certificates (roots) go to `roots` as trust
/// anchors; the others (intermediates) to `intermediates`, only to complete the chains of
/// clients that send their certificate alone. An intermediate is not an anchor: trusting
/// it by itself would accept what it issued even when its root is not trusted, and OpenSSL
/// (nginx's `ssl_client_certificate`) does not either — unless the configuration asks for
/// exactly that (`trust_intermediates`, passed as `intermediates: None`).
pub(crate) fn add_anchors(
    bytes: Vec<u8>,
    path: &Path,
    roots: &mut RootCertStore,
    mut intermediates: Option<&mut Vec<CertificateDer<'static>>>,
) -> Result<Listed> {
    let mut listed = Listed {
        anchors: Vec::new(),
        intermediates: Vec::new(),
    };
    for der in pem_blocks_in(bytes, path, "CERTIFICATE")? {
        let invalid = |e: &dyn std::fmt::Display| Error::Invalid {
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {e}"),
        };
        let (_, c) = parse_x509_certificate(&der).map_err(|e| invalid(&e))?;
        let described = (c.subject().to_string(), c.validity().not_after.timestamp());
        let self_issued = c.subject().as_raw() == c.issuer().as_raw();
        match intermediates.as_deref_mut() {
            Some(list) if !self_issued => {
                listed.intermediates.push(described);
                list.push(CertificateDer::from(der));
            }
            _ => {
                // webpki never looks at an anchor's own extensions: a leaf listed here (a
                // self-signed one, to admit one client) would let whoever holds its key
                // sign any client certificate. Version 1 roots predate extensions.
                let ca = c
                    .basic_constraints()
                    .ok()
                    .flatten()
                    .is_some_and(|b| b.value.ca);
                if c.version() == X509Version::V3 && !ca {
                    return Err(Error::Invalid {
                        path: path.to_owned(),
                        reason: format!(
                            "{} is not a CA (no basicConstraints CA:TRUE): as a trust anchor, whoever holds its key could sign any client certificate; list the CA that issues your clients' certificates (or make one: portcullis pki init)",
                            described.0
                        ),
                    });
                }
                listed.anchors.push(described);
                roots
                    .add(CertificateDer::from(der))
                    .map_err(|e| invalid(&e))?;
            }
        }
    }
    Ok(listed)
}

/// The CRLs of a CRL file; those past their nextUpdate are described in `expired`.
pub(crate) fn read_crls(
    bytes: Vec<u8>,
    path: &Path,
    expired: &mut Vec<String>,
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let now = x509_parser::time::ASN1Time::now();
    let mut crls = Vec::new();
    for der in pem_blocks_in(bytes, path, "X509 CRL")? {
        let (_, crl) = parse_x509_crl(&der).map_err(|e| Error::Invalid {
            path: path.to_owned(),
            reason: format!("corrupt CRL: {e}"),
        })?;
        if crl.next_update().is_some_and(|n| n < now) {
            expired.push(format!(
                "{} (issuer {}, nextUpdate {})",
                path.display(),
                crl.issuer(),
                crl.next_update().map(|t| t.to_string()).unwrap_or_default()
            ));
        }
        crls.push(CertificateRevocationListDer::from(der));
    }
    Ok(crls)
}

/// Whether the server key file is passphrase-protected (so the CLI knows to ask).
pub fn key_is_encrypted(path: &Path) -> Result<bool> {
    let bytes = read(path)?;
    Ok(portcullis_pki::keys::is_encrypted(
        &String::from_utf8_lossy(&bytes),
    ))
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

#[cfg(test)]
mod tests {
    use rustls::CipherSuite as S;

    #[test]
    fn a_client_prefers_chacha_when_it_lists_it_first_grease_aside() {
        let chrome_without_aes = [
            S::Unknown(0x3a3a),
            S::TLS13_CHACHA20_POLY1305_SHA256,
            S::TLS13_AES_128_GCM_SHA256,
        ];
        assert!(super::prefers_chacha(&chrome_without_aes));
        assert!(super::prefers_chacha(&[
            S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        ]));
        for other in [
            &[S::Unknown(0x0a0a), S::TLS13_AES_256_GCM_SHA384][..],
            &[
                S::TLS13_AES_128_GCM_SHA256,
                S::TLS13_CHACHA20_POLY1305_SHA256,
            ],
            // Not GREASE: an unknown suite first is a preference for something else.
            &[S::Unknown(0x3a3b), S::TLS13_CHACHA20_POLY1305_SHA256],
            &[],
        ] {
            assert!(!super::prefers_chacha(other), "{other:?}");
        }
    }
}

//! The certificates every server in the comparison uses: one CA (root and issuing
//! intermediate, P-256), a server certificate for `localhost` and a client certificate for
//! alice, made with the project's own PKI library.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::{KeyType, Kind, LeafRequest, San, SaveOptions, Subject};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// Files under the bench directory, relative to it.
pub const ROOT: &str = "pki/root.crt";
pub const CRL: &str = "pki/crl.pem";
pub const SERVER_CHAIN: &str = "pki/issued/localhost.chain.pem";
pub const SERVER_KEY: &str = "pki/issued/localhost.key";
pub const CLIENT_CHAIN: &str = "pki/issued/alice.chain.pem";
pub const CLIENT_KEY: &str = "pki/issued/alice.key";
/// The issuing CA's CRL and the root's: what nginx needs (see [`create`]).
pub const CRLS_FOR_NGINX: &str = "pki/crls-for-nginx.pem";

pub fn create(dir: &Path) -> Result<()> {
    let root = dir.join("pki");
    ca::init(
        &root,
        &InitOptions {
            intermediate: true,
            key_type: KeyType::P256,
            ..Default::default()
        },
    )?;
    let ca = Ca::open(&root, None)?;
    let mut writer = ca.writer()?;
    for (name, kind, san, ou) in [
        (
            "localhost",
            Kind::Server,
            San::Dns("localhost".into()),
            None,
        ),
        (
            "alice",
            Kind::Client,
            San::Email("alice@example.com".into()),
            Some("Admins"),
        ),
    ] {
        let request = LeafRequest {
            kind,
            subject: Subject {
                common_name: name.into(),
                organizational_units: ou.map(|o| vec![o.into()]).unwrap_or_default(),
                ..Default::default()
            },
            sans: vec![san],
            days: 30,
            key_type: KeyType::P256,
        };
        let cert = ca.issue(&request, writer.index())?;
        let save = SaveOptions {
            out_dir: ca.layout().issued(),
            stem: name.into(),
            key_passphrase: None,
            p12: None,
            force: false,
        };
        writer.save(cert, &save)?;
    }
    writer.publish_crl(30)?;
    drop(writer);

    // nginx's `ssl_crl` makes OpenSSL check revocation of every certificate in the chain
    // (X509_V_FLAG_CRL_CHECK_ALL), the intermediate too, so without a CRL from the root
    // every client fails with "unable to get certificate CRL". The gate and the bare
    // server check the client's own certificate only. An nginx user has to publish the
    // root's CRL as well; so does the bench.
    let root_pem = fs::read_to_string(root.join("root.crt"))?;
    let key = rcgen::KeyPair::from_pem(&fs::read_to_string(root.join("root.key"))?)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&root_pem, key)?;
    // The CRL's authority key identifier must be the root's subject key identifier.
    let (_, block) = x509_parser::pem::parse_x509_pem(root_pem.as_bytes())?;
    let cert = block.parse_x509()?;
    let ski = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(id.0.to_vec())
            }
            _ => None,
        })
        .context("the root has no subject key identifier")?;
    let now = time::OffsetDateTime::now_utc();
    let root_crl = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(30),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::PreSpecified(ski),
    }
    .signed_by(&issuer)?;
    let both = fs::read_to_string(dir.join(CRL))? + &root_crl.pem()?;
    fs::write(dir.join(CRLS_FOR_NGINX), both)?;
    Ok(())
}

/// The root, as the trust anchor of clients and of client verification.
pub fn roots(dir: &Path) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(&dir.join(ROOT))? {
        roots.add(cert)?;
    }
    Ok(roots)
}

pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .with_context(|| format!("reading certificates from {}", path.display()))
}

pub fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    CertificateRevocationListDer::pem_file_iter(path)
        .and_then(|crls| crls.collect())
        .with_context(|| format!("reading CRLs from {}", path.display()))
}

pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("reading {}", path.display()))
}

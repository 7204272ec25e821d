//! `pki inspect`: what is in a file — certificates, chains, CSRs, CRLs, keys, PKCS#12 —
//! as plain data that prints for people and serializes for scripts. Key material is
//! never part of a report.

use std::path::Path;

use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;
use serde::Serialize;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use crate::build::{Kind, serial_hex};
use crate::ca::{LEAF_DAYS, LeafRequest, fingerprint};
use crate::error::{Error, Result};
use crate::keys::KeyType;
use crate::names::San;
use crate::secret::Passphrase;

/// Everything found in one file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub path: String,
    pub objects: Vec<Object>,
    /// Problems worth fixing (chain order, a root in a chain file, expiry).
    pub warnings: Vec<String>,
}

/// One thing in a file.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Object {
    Certificate(CertInfo),
    Csr {
        subject: String,
        sans: Vec<String>,
        key: String,
        signature_valid: bool,
    },
    Crl {
        issuer: String,
        this_update: String,
        next_update: Option<String>,
        crl_number: Option<String>,
        revoked: Vec<RevokedInfo>,
    },
    PrivateKey {
        encrypted: bool,
        algorithm: String,
    },
    Pkcs12 {
        has_private_key: bool,
        certificates: Vec<CertInfo>,
    },
}

/// The fields people look at in a certificate.
#[derive(Debug, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub sans: Vec<String>,
    pub key: String,
    pub signature_algorithm: String,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    pub not_before: String,
    pub not_after: String,
    /// `valid`, `expired` or `not-yet-valid`, at the time of inspection; `revoked` when
    /// the CA directory given says so (see [`mark_revoked`]).
    pub validity: String,
    pub self_signed: bool,
    pub fingerprint_sha256: String,
}

/// One entry of a CRL.
#[derive(Debug, Serialize)]
pub struct RevokedInfo {
    pub serial: String,
    pub revoked_at: String,
    pub reason: Option<String>,
}

fn time_str(t: ASN1Time) -> String {
    t.to_datetime().format(&Rfc3339).unwrap_or_default()
}

/// Inspects a file. `p12_password` opens PKCS#12 bundles; without it a bundle is reported
/// as such with a hint.
pub fn inspect(path: &Path, p12_password: Option<&Passphrase>) -> Result<Report> {
    inspect_bytes(&crate::fsio::read(path)?, path, p12_password)
}

/// Inspects the contents of a file; `path` names it in the report and in errors.
pub fn inspect_bytes(
    bytes: &[u8],
    path: &Path,
    p12_password: Option<&Passphrase>,
) -> Result<Report> {
    let mut report = Report {
        path: path.display().to_string(),
        objects: Vec::new(),
        warnings: Vec::new(),
    };
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        for block in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let block =
                block.map_err(|e| Error::malformed(path, format!("bad PEM block ({e})")))?;
            report
                .objects
                .push(object_from_block(&block.label, &block.contents, path)?);
        }
    } else {
        report
            .objects
            .push(object_from_der(bytes, path, p12_password)?);
    }
    if report.objects.is_empty() {
        return Err(Error::malformed(path, "nothing recognisable in this file"));
    }
    chain_warnings(&mut report);
    Ok(report)
}

fn object_from_block(label: &str, der: &[u8], path: &Path) -> Result<Object> {
    match label {
        "CERTIFICATE" | "TRUSTED CERTIFICATE" => cert_object(der, path),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => csr_object(der, path),
        "X509 CRL" => crl_object(der, path),
        "PRIVATE KEY" => Ok(Object::PrivateKey {
            encrypted: false,
            algorithm: pkcs8_algorithm(der),
        }),
        "ENCRYPTED PRIVATE KEY" => Ok(Object::PrivateKey {
            encrypted: true,
            algorithm: "unknown until decrypted".into(),
        }),
        "EC PRIVATE KEY" => Ok(Object::PrivateKey {
            encrypted: false,
            algorithm: "EC (SEC1 format)".into(),
        }),
        "RSA PRIVATE KEY" => Ok(Object::PrivateKey {
            encrypted: false,
            algorithm: "RSA (PKCS#1 format)".into(),
        }),
        other => Err(Error::malformed(
            path,
            format!("unsupported PEM block {other:?}"),
        )),
    }
}

fn object_from_der(der: &[u8], path: &Path, pw: Option<&Passphrase>) -> Result<Object> {
    if parse_x509_certificate(der).is_ok() {
        return cert_object(der, path);
    }
    if X509CertificationRequest::from_der(der).is_ok() {
        return csr_object(der, path);
    }
    if parse_x509_crl(der).is_ok() {
        return crl_object(der, path);
    }
    if pkcs8::PrivateKeyInfoRef::try_from(der).is_ok() {
        return Ok(Object::PrivateKey {
            encrypted: false,
            algorithm: pkcs8_algorithm(der),
        });
    }
    // What is left that starts with a SEQUENCE is most likely PKCS#12.
    let Some(pw) = pw else {
        return Err(Error::malformed(
            path,
            "not a certificate, CSR, CRL or key; if it is a PKCS#12 bundle, give its \
             password with --p12-password-file or PORTCULLIS_P12_PASSWORD",
        ));
    };
    let store = p12_keystore::KeyStore::from_pkcs12(
        der,
        pw.expose(),
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| {
        Error::malformed(
            path,
            format!(
                "not a PKCS#12 bundle this password ({}) opens: {e}",
                pw.origin()
            ),
        )
    })?;
    let mut certificates = Vec::new();
    let mut has_private_key = false;
    for (_, entry) in store.entries() {
        match entry {
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                has_private_key = true;
                for c in chain.certs() {
                    certificates.push(cert_info(c.as_der(), path)?);
                }
            }
            p12_keystore::KeyStoreEntry::Certificate(c) => {
                certificates.push(cert_info(c.as_der(), path)?)
            }
            _ => {}
        }
    }
    Ok(Object::Pkcs12 {
        has_private_key,
        certificates,
    })
}

fn cert_object(der: &[u8], path: &Path) -> Result<Object> {
    Ok(Object::Certificate(cert_info(der, path)?))
}

/// Builds the [`CertInfo`] of a DER certificate.
pub fn cert_info(der: &[u8], path: &Path) -> Result<CertInfo> {
    let (_, c) = parse_x509_certificate(der)
        .map_err(|e| Error::malformed(path, format!("corrupt certificate ({e})")))?;
    let mut key_usage = Vec::new();
    let mut eku = Vec::new();
    let mut is_ca = false;
    let mut path_len = None;
    let mut sans = Vec::new();
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                key_usage = ku.to_string().split(", ").map(str::to_owned).collect()
            }
            ParsedExtension::ExtendedKeyUsage(e) => {
                let pairs = [
                    (e.server_auth, "serverAuth"),
                    (e.client_auth, "clientAuth"),
                    (e.code_signing, "codeSigning"),
                    (e.email_protection, "emailProtection"),
                    (e.time_stamping, "timeStamping"),
                    (e.ocsp_signing, "OCSPSigning"),
                    (e.any, "anyExtendedKeyUsage"),
                ];
                eku = pairs
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| (*n).to_owned())
                    .collect();
                eku.extend(e.other.iter().map(|o| o.to_id_string()));
            }
            ParsedExtension::BasicConstraints(bc) => {
                is_ca = bc.ca;
                path_len = bc.path_len_constraint;
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                sans = san.general_names.iter().map(general_name_str).collect()
            }
            _ => {}
        }
    }
    let now = OffsetDateTime::now_utc();
    let start = c.validity().not_before.to_datetime();
    let end = c.validity().not_after.to_datetime();
    let validity = if now < start {
        "not-yet-valid"
    } else if now >= end {
        "expired"
    } else {
        "valid"
    };
    Ok(CertInfo {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: serial_hex(c.raw_serial()),
        sans,
        key: key_description(c.public_key()),
        signature_algorithm: signature_name(&c.signature_algorithm.algorithm),
        key_usage,
        extended_key_usage: eku,
        is_ca,
        path_len,
        not_before: time_str(c.validity().not_before),
        not_after: time_str(c.validity().not_after),
        validity: validity.into(),
        self_signed: c.subject().as_raw() == c.issuer().as_raw()
            && c.verify_signature(None).is_ok(),
        fingerprint_sha256: fingerprint(der),
    })
}

fn general_name_str(n: &GeneralName<'_>) -> String {
    match n {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::IPAddress(b) => match b.len() {
            4 => <[u8; 4]>::try_from(*b)
                .map(|a| format!("IP:{}", std::net::Ipv4Addr::from(a)))
                .unwrap_or_default(),
            16 => <[u8; 16]>::try_from(*b)
                .map(|a| format!("IP:{}", std::net::Ipv6Addr::from(a)))
                .unwrap_or_default(),
            _ => format!("IP:<{} bytes>", b.len()),
        },
        other => format!("{other}"),
    }
}

fn signature_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    x509_parser::oid_registry::OidRegistry::default()
        .with_all_crypto()
        .get(oid)
        .map(|e| e.sn().to_owned())
        .unwrap_or_else(|| oid.to_id_string())
}

/// "ECDSA P-256", "RSA 2048", "Ed25519".
pub fn key_description(spki: &SubjectPublicKeyInfo<'_>) -> String {
    match key_type_of(spki) {
        Some(KeyType::P256) => "ECDSA P-256".into(),
        Some(KeyType::P384) => "ECDSA P-384".into(),
        Some(KeyType::Ed25519) => "Ed25519".into(),
        _ => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
            Ok(PublicKey::EC(_)) => "ECDSA (other curve)".into(),
            _ => spki.algorithm.algorithm.to_id_string(),
        },
    }
}

/// Which of our key types a public key is, if any.
pub fn key_type_of(spki: &SubjectPublicKeyInfo<'_>) -> Option<KeyType> {
    use x509_parser::oid_registry::*;
    let alg = &spki.algorithm;
    if alg.algorithm == OID_SIG_ED25519 {
        return Some(KeyType::Ed25519);
    }
    if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok())?;
        return if curve == OID_EC_P256 {
            Some(KeyType::P256)
        } else if curve == OID_NIST_EC_P384 {
            Some(KeyType::P384)
        } else {
            None
        };
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => Some(match rsa.key_size() {
            0..=2048 => KeyType::Rsa2048,
            2049..=3072 => KeyType::Rsa3072,
            _ => KeyType::Rsa4096,
        }),
        _ => None,
    }
}

fn pkcs8_algorithm(der: &[u8]) -> String {
    let Ok(info) = pkcs8::PrivateKeyInfoRef::try_from(der) else {
        return "unreadable".into();
    };
    match info.algorithm.oid.to_string().as_str() {
        "1.2.840.10045.2.1" => "EC".into(),
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.3.101.112" => "Ed25519".into(),
        other => other.to_owned(),
    }
}

fn csr_object(der: &[u8], path: &Path) -> Result<Object> {
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| Error::malformed(path, format!("corrupt CSR ({e})")))?;
    let info = &csr.certification_request_info;
    let sans = csr
        .requested_extensions()
        .into_iter()
        .flatten()
        .filter_map(|e| match e {
            ParsedExtension::SubjectAlternativeName(s) => Some(s),
            _ => None,
        })
        .flat_map(|s| s.general_names.iter().map(general_name_str))
        .collect();
    Ok(Object::Csr {
        subject: info.subject.to_string(),
        sans,
        key: key_description(&info.subject_pki),
        signature_valid: csr.verify_signature().is_ok(),
    })
}

fn crl_object(der: &[u8], path: &Path) -> Result<Object> {
    let (_, crl) =
        parse_x509_crl(der).map_err(|e| Error::malformed(path, format!("corrupt CRL ({e})")))?;
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| RevokedInfo {
            serial: serial_hex(r.raw_serial()),
            revoked_at: time_str(r.revocation_date),
            // Spelled as `pki revoke --reason` takes it.
            reason: r.reason_code().map(|(_, rc)| {
                crate::ca::Reason::from_code(rc.0)
                    .map_or_else(|| rc.to_string(), |r| r.name().to_owned())
            }),
        })
        .collect();
    Ok(Object::Crl {
        issuer: crl.issuer().to_string(),
        this_update: time_str(crl.last_update()),
        next_update: crl.next_update().map(time_str),
        crl_number: crl.crl_number().map(|n| n.to_string()),
        revoked,
    })
}

/// Chain-order checks for files holding several certificates, plus expiry warnings.
fn chain_warnings(report: &mut Report) {
    let certs: Vec<&CertInfo> = report
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let mut warnings = Vec::new();
    for (i, c) in certs.iter().enumerate() {
        if c.validity != "valid" {
            warnings.push(format!(
                "certificate {} ({}) is {}",
                i + 1,
                c.subject,
                c.validity
            ));
        }
    }
    if certs.len() > 1 {
        if certs[0].is_ca && certs.iter().any(|c| !c.is_ca) {
            warnings.push(
                "the leaf is not first: a chain file must start with the leaf certificate".into(),
            );
        }
        for (i, pair) in certs.windows(2).enumerate() {
            if pair[0].issuer != pair[1].subject {
                warnings.push(format!(
                    "certificate {} ({}) is not the issuer of certificate {} (issued by {}): \
                     the chain is out of order or has an unrelated certificate",
                    i + 2,
                    pair[1].subject,
                    i + 1,
                    pair[0].issuer
                ));
            }
        }
        if certs.last().is_some_and(|c| c.self_signed) {
            warnings.push(
                "the chain includes its root; send leaf + intermediates only (the peer must \
                 already trust the root, so sending it only costs bytes)"
                    .into(),
            );
        }
    }
    report.warnings.extend(warnings);
}

/// Rebuilds the request that produced `cert`, for `pki renew`.
pub(crate) fn leaf_request_from(
    cert: &X509Certificate<'_>,
    path: &Path,
    days: Option<u32>,
    key_type: Option<KeyType>,
) -> Result<LeafRequest> {
    let mut dropped = Vec::new();
    let subject = crate::csr::subject_from_name(cert.subject(), &mut dropped, path)?;
    let mut kind = None;
    let mut sans = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(e) if e.server_auth => kind = Some(Kind::Server),
            ParsedExtension::ExtendedKeyUsage(e) if e.client_auth => kind = Some(Kind::Client),
            ParsedExtension::SubjectAlternativeName(s) => {
                for n in &s.general_names {
                    let str = general_name_str(n);
                    let san = match n {
                        GeneralName::DNSName(d) => San::Dns((*d).to_owned()),
                        GeneralName::RFC822Name(e) => San::Email((*e).to_owned()),
                        GeneralName::URI(u) => San::Uri((*u).to_owned()),
                        GeneralName::IPAddress(_) => {
                            match str.strip_prefix("IP:").map(str::parse) {
                                Some(Ok(ip)) => San::Ip(ip),
                                _ => continue,
                            }
                        }
                        _ => continue,
                    };
                    sans.push(san);
                }
            }
            _ => {}
        }
    }
    let kind = kind.ok_or_else(|| {
        Error::malformed(
            path,
            "neither serverAuth nor clientAuth: not a leaf this CA renews",
        )
    })?;
    let lifetime = (cert.validity().not_after.to_datetime()
        - cert.validity().not_before.to_datetime())
    .whole_days();
    Ok(LeafRequest {
        kind,
        subject,
        sans,
        days: days.unwrap_or_else(|| u32::try_from(lifetime).unwrap_or(LEAF_DAYS).max(1)),
        key_type: key_type
            .or_else(|| key_type_of(cert.public_key()))
            .unwrap_or_default(),
    })
}

/// Marks the certificates of a report that `index` (of the CA whose issuing certificate
/// has subject `issuer`) records as revoked: their validity becomes `revoked`, with a
/// warning saying when and why.
pub fn mark_revoked(report: &mut Report, index: &crate::Index, issuer: &str) {
    let mut warnings = Vec::new();
    let mut mark = |c: &mut CertInfo| {
        let revoked = index
            .records
            .iter()
            .filter(|r| r.serial == c.serial && c.issuer == issuer)
            .find_map(|r| r.revoked.as_ref());
        if let Some(rev) = revoked {
            c.validity = "revoked".into();
            warnings.push(format!(
                "{} (serial {}) was revoked by this CA at {} ({})",
                c.subject, c.serial, rev.at, rev.reason
            ));
        }
    };
    for o in &mut report.objects {
        match o {
            Object::Certificate(c) => mark(c),
            Object::Pkcs12 { certificates, .. } => certificates.iter_mut().for_each(&mut mark),
            _ => {}
        }
    }
    report.warnings.extend(warnings);
}

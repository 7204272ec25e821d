//! Certificate signing requests: reading those made by anyone (`openssl req`, Go, Java
//! keytool), and making one for another CA ([`create`]).
//!
//! A CSR is a wish list. We keep the subject fields and the subjectAltNames the profile
//! allows, and decide key usage, extended key usage and basic constraints ourselves; every
//! requested thing we do not grant is reported back, so nobody is surprised later.

use std::path::Path;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry;
use x509_parser::prelude::FromDer;

use crate::build::Kind;
use crate::error::{Error, Result};
use crate::fsio::{Outputs, PUBLIC, SECRET};
use crate::keys::KeyType;
use crate::names::{self, San, Subject};
use crate::secret::Passphrase;

/// What we take from a CSR.
#[derive(Debug)]
pub struct Request {
    pub subject: Subject,
    pub sans: Vec<San>,
    /// DER SubjectPublicKeyInfo, exactly as requested.
    pub spki: Vec<u8>,
    /// One sentence per requested item that will not be in the certificate.
    pub dropped: Vec<String>,
}

/// Parses PEM or DER, verifies the self-signature, and applies the profile.
pub fn read(bytes: &[u8], path: &Path, kind: Kind) -> Result<Request> {
    let der = if bytes.trim_ascii_start().starts_with(b"-----") {
        let block = x509_parser::pem::Pem::iter_from_buffer(bytes)
            .filter_map(|b| b.ok())
            .find(|b| b.label.ends_with("CERTIFICATE REQUEST"))
            .ok_or_else(|| Error::malformed(path, "no CERTIFICATE REQUEST block found"))?;
        block.contents
    } else {
        bytes.to_vec()
    };
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| Error::malformed(path, format!("not a valid CSR ({e})")))?;
    // A signature over SHA-1 proves little (chosen-prefix collisions are practical), and
    // a weak key is not certified whoever holds it.
    {
        use x509_parser::oid_registry::*;
        let sig = &csr.signature_algorithm.algorithm;
        // ecdsa-with-SHA1 has no constant in oid-registry.
        let ecdsa_sha1 = sig.to_id_string() == "1.2.840.10045.4.1";
        if *sig == OID_PKCS1_SHA1WITHRSA
            || *sig == OID_SHA1_WITH_RSA
            || *sig == OID_SIG_DSA_WITH_SHA1
            || ecdsa_sha1
        {
            return Err(Error::malformed(
                path,
                "the request is signed with SHA-1; sign it with SHA-256 (openssl req -sha256)",
            ));
        }
    }
    crate::keys::check_certifiable(&csr.certification_request_info.subject_pki, path)?;
    if csr.verify_signature().is_err() {
        return Err(Error::CsrSignature {
            path: path.to_owned(),
        });
    }
    let info = &csr.certification_request_info;
    let mut dropped = Vec::new();
    let subject = subject_from_name(&info.subject, &mut dropped, path)?;

    let mut sans = Vec::new();
    for attr in info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(req) = attr.parsed_attribute() else {
            continue;
        };
        for ext in &req.extensions {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match general_name(name, kind) {
                            Ok(Some(s)) => sans.push(s),
                            Ok(None) => dropped.push(format!(
                                "subjectAltName {name}: not allowed in a {} certificate",
                                kind_name(kind)
                            )),
                            Err(e) => dropped.push(format!("subjectAltName {name}: {e}")),
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) if bc.ca => dropped.push(
                    "basicConstraints CA:TRUE: a CSR cannot make itself a CA; issued as CA:FALSE"
                        .into(),
                ),
                ParsedExtension::BasicConstraints(_) => {}
                ParsedExtension::KeyUsage(_) => dropped.push(
                    "keyUsage: set by the profile (digitalSignature, plus keyEncipherment for RSA)"
                        .into(),
                ),
                ParsedExtension::ExtendedKeyUsage(_) => dropped.push(format!(
                    "extendedKeyUsage: set by the profile ({})",
                    match kind {
                        Kind::Server => "serverAuth",
                        _ => "clientAuth",
                    }
                )),
                _ => {
                    let name = oid_registry::OidRegistry::default()
                        .with_x509()
                        .get(&ext.oid)
                        .map(|e| e.sn().to_owned())
                        .unwrap_or_else(|| ext.oid.to_id_string());
                    dropped.push(format!("extension {name}: not supported, left out"));
                }
            }
        }
    }
    Ok(Request {
        subject,
        sans,
        spki: info.subject_pki.raw.to_vec(),
        dropped,
    })
}

/// A PEM CSR for `key` asking for `subject` and `sans`.
pub fn create(subject: &Subject, sans: &[San], key: &rcgen::KeyPair) -> Result<String> {
    subject.validate()?;
    let der = crate::build::request(subject, sans, key)?;
    Ok(crate::ca::pem("CERTIFICATE REQUEST", &der))
}

/// The key a new request is for.
#[derive(Debug)]
pub enum RequestKey {
    /// Made now and written as `STEM.key` (mode 0600; encrypted with the passphrase).
    New(KeyType, Option<Passphrase>),
    /// One that exists: only the request is written.
    Existing(rcgen::KeyPair),
}

/// Writes `STEM.csr` (and `STEM.key` for a new key) in `out`, all or nothing. Returns the
/// files written.
pub fn write(
    out: &Path,
    stem: &str,
    subject: &Subject,
    sans: &[San],
    key: RequestKey,
    force: bool,
) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Outputs::new();
    let key = match key {
        RequestKey::Existing(k) => k,
        RequestKey::New(key_type, passphrase) => {
            let new = key_type.generate()?;
            let pem = crate::keys::to_pem(&new, passphrase.as_ref())?;
            files.add(out.join(format!("{stem}.key")), pem.as_bytes(), SECRET);
            new
        }
    };
    files.add(
        out.join(format!("{stem}.csr")),
        create(subject, sans, &key)?,
        PUBLIC,
    );
    files.commit(force)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Server => "server",
        _ => "client",
    }
}

/// Maps a requested SAN onto our typed names; `Ok(None)` when the profile forbids it.
fn general_name(name: &GeneralName<'_>, kind: Kind) -> Result<Option<San>> {
    Ok(match (name, kind) {
        (GeneralName::DNSName(d), _) => Some(San::Dns(names::dns_name(d)?)),
        (GeneralName::IPAddress(b), _) => match b.len() {
            4 => Some(San::Ip(<[u8; 4]>::try_from(*b).map(Into::into).map_err(
                |_| Error::invalid("IP address", format!("{b:?}"), "bad length"),
            )?)),
            16 => Some(San::Ip(<[u8; 16]>::try_from(*b).map(Into::into).map_err(
                |_| Error::invalid("IP address", format!("{b:?}"), "bad length"),
            )?)),
            _ => {
                return Err(Error::invalid(
                    "IP address",
                    format!("{b:?}"),
                    "not 4 or 16 bytes",
                ));
            }
        },
        (GeneralName::URI(u), _) => Some(San::Uri(names::uri(u)?)),
        (GeneralName::RFC822Name(e), Kind::Client) => Some(San::Email(names::email(e)?)),
        _ => None,
    })
}

/// Reads the subject attributes we understand into a [`Subject`]; the rest are reported.
pub(crate) fn subject_from_name(
    name: &x509_parser::x509::X509Name<'_>,
    dropped: &mut Vec<String>,
    path: &Path,
) -> Result<Subject> {
    use oid_registry::*;
    let mut s = Subject::default();
    let mut cn = None;
    for attr in name.iter_attributes() {
        let oid = attr.attr_type();
        let Ok(value) = attr.as_str() else {
            dropped.push(format!("subject attribute {oid}: not a string"));
            continue;
        };
        let value = value.to_owned();
        let once = |slot: &mut Option<String>, label: &str, dropped: &mut Vec<String>| {
            if slot.is_none() {
                *slot = Some(value.clone());
            } else {
                dropped.push(format!(
                    "subject {label}={value}: only the first one is kept"
                ));
            }
        };
        if *oid == OID_X509_COMMON_NAME {
            once(&mut cn, "CN", dropped);
        } else if *oid == OID_X509_ORGANIZATION_NAME {
            once(&mut s.organization, "O", dropped);
        } else if *oid == OID_X509_ORGANIZATIONAL_UNIT {
            s.organizational_units.push(value);
        } else if *oid == OID_X509_LOCALITY_NAME {
            once(&mut s.locality, "L", dropped);
        } else if *oid == OID_X509_STATE_OR_PROVINCE_NAME {
            once(&mut s.state, "ST", dropped);
        } else if *oid == OID_X509_COUNTRY_NAME {
            once(&mut s.country, "C", dropped);
        } else if *oid == OID_PKCS9_EMAIL_ADDRESS {
            once(&mut s.email, "emailAddress", dropped);
        } else {
            dropped.push(format!("subject attribute {oid}={value}: not supported"));
        }
    }
    s.common_name =
        cn.ok_or_else(|| Error::malformed(path, "the subject has no common name (CN)"))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;

    #[test]
    fn a_created_request_reads_back_with_its_names_for_every_key_type() {
        let subject = Subject {
            common_name: "svc".into(),
            organizational_units: vec!["Ops".into(), "Web".into()],
            email: Some("ops@example.com".into()),
            ..Default::default()
        };
        let sans = vec![
            San::Dns("svc.internal".into()),
            San::Ip("::1".parse().unwrap()),
            San::Uri("spiffe://corp/svc".into()),
        ];
        for kt in KeyType::ALL {
            let key = kt.generate().unwrap();
            let pem = create(&subject, &sans, &key).unwrap();
            let back = read(pem.as_bytes(), Path::new("t.csr"), Kind::Server).unwrap();
            assert_eq!(back.subject, subject, "{kt}");
            assert_eq!(back.sans, sans, "{kt}");
            assert_eq!(
                back.spki,
                rcgen::PublicKeyData::subject_public_key_info(&key)
            );
            assert!(back.dropped.is_empty(), "{kt}: {:?}", back.dropped);
        }
    }
}

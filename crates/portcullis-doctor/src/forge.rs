//! Forged twins of a client certificate, for `doctor audit`. A server that really verifies
//! client certificates refuses every one of them; a server that reads the subject without
//! checking the verification result lets them in.
//!
//! A twin is the real certificate's own TBSCertificate, copied field by field and changed
//! only where the forgery needs it, then signed with a key of ours: the subject, the
//! serial, the SANs and every other extension stay byte for byte what the server saw in
//! the real one. The keys are fresh P-256 keys (aws-lc-rs, through rcgen as the PKI crate
//! makes them); twins and keys live in memory only and are dropped after the audit.
//! The DER is written with yasna, the writer the PKI crate uses.

use rcgen::{KeyPair, PublicKeyData, SigningKey};
use time::{Duration, OffsetDateTime};
use yasna::models::{GeneralizedTime, ObjectIdentifier, UTCTime};
use yasna::{DERWriter, Tag};

use crate::certs;
use crate::probe::ClientIdentity;

/// One forged variant of the real client certificate.
pub(crate) struct Twin {
    /// `none`, `self-signed`, `same-name-issuer`, `expired`, `no-client-auth-eku`.
    pub id: &'static str,
    /// What is presented, for people.
    pub presented: String,
    /// `None`: no certificate at all.
    pub identity: Option<ClientIdentity>,
}

/// The request without a certificate: the first thing to compare with.
pub(crate) fn none() -> Twin {
    Twin {
        id: "none",
        presented: "without a client certificate".into(),
        identity: None,
    }
}

/// The four forged certificates, in the order the audit sends them.
pub(crate) fn twins(real: &ClientIdentity, now: OffsetDateTime) -> Result<Vec<Twin>, String> {
    let leaf = real
        .chain
        .first()
        .ok_or("the client certificate file holds no certificate")?;
    let tbs = Tbs::parse(leaf)?;
    let issuer_text = certs::details(leaf).issuer;

    // Self-signed: issued by its own subject, with its own key.
    let own = new_key()?;
    let self_signed = tbs.reissue(
        &Edit {
            issuer: &tbs.subject,
            validity: None,
            spki: &own.subject_public_key_info(),
            issuer_key_id: &key_id(&own.subject_public_key_info()),
            eku: Eku::Keep,
        },
        &own,
    )?;

    // A throwaway CA whose name is the real issuer's, byte for byte, and three copies it
    // signs: as they are, expired, and without clientAuth. We do not hold the real CA's
    // key, so the expired and EKU copies are signed by the throwaway CA too.
    let ca_key = new_key()?;
    let ca = throwaway_ca(&tbs.issuer, &ca_key, now)?;
    let ca_key_id = key_id(&ca_key.subject_public_key_info());
    let key = new_key()?;
    let spki = key.subject_public_key_info();
    let signed_by_ca = |validity, eku| {
        tbs.reissue(
            &Edit {
                issuer: &tbs.issuer,
                validity,
                spki: &spki,
                issuer_key_id: &ca_key_id,
                eku,
            },
            &ca_key,
        )
    };
    let same_name = signed_by_ca(None, Eku::Keep)?;
    let expired = signed_by_ca(
        Some((now - Duration::days(30), now - Duration::days(1))),
        Eku::Keep,
    )?;
    let no_client_auth = signed_by_ca(None, Eku::ServerAuthOnly)?;

    let identity = |chain: Vec<Vec<u8>>, key: &KeyPair| {
        Some(ClientIdentity {
            chain,
            key_pkcs8: key.serialize_der(),
            cert_file: "(forged in memory)".into(),
            key_file: "(forged in memory)".into(),
            beside: Vec::new(),
        })
    };
    Ok(vec![
        Twin {
            id: "self-signed",
            presented: "a self-signed copy (same subject, SANs and serial; a key of ours)".into(),
            identity: identity(vec![self_signed], &own),
        },
        Twin {
            id: "same-name-issuer",
            presented: format!(
                "a copy signed by a throwaway CA named like the real issuer ({issuer_text})"
            ),
            identity: identity(vec![same_name, ca.clone()], &key),
        },
        Twin {
            id: "expired",
            presented: "an expired copy (ended yesterday; signed by the same throwaway CA)".into(),
            identity: identity(vec![expired, ca.clone()], &key),
        },
        Twin {
            id: "no-client-auth-eku",
            presented: "a copy for serverAuth only, without the clientAuth extendedKeyUsage \
                        (signed by the same throwaway CA)"
                .into(),
            identity: identity(vec![no_client_auth, ca], &key),
        },
    ])
}

fn new_key() -> Result<KeyPair, String> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("generating a key: {e}"))
}

/// Key identifier: SHA-256 of the SubjectPublicKeyInfo, truncated to 160 bits.
fn key_id(spki: &[u8]) -> Vec<u8> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    digest.as_ref()[..20].to_vec()
}

const SKI: &[u64] = &[2, 5, 29, 14];
const AKI: &[u64] = &[2, 5, 29, 35];
const EKU: &[u64] = &[2, 5, 29, 37];
const SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];

/// The fields of a TBSCertificate, each as its DER (RFC 5280 §4.1).
struct Tbs {
    serial: Vec<u8>,
    issuer: Vec<u8>,
    validity: Vec<u8>,
    subject: Vec<u8>,
    /// issuerUniqueID / subjectUniqueID, when present (kept as they are).
    unique_ids: Vec<Vec<u8>>,
    /// Each extension's OID and DER.
    extensions: Vec<(Vec<u64>, Vec<u8>)>,
}

enum Eku {
    Keep,
    /// extendedKeyUsage serverAuth only: present, and without clientAuth (a certificate
    /// without the extension at all is good for any purpose).
    ServerAuthOnly,
}

/// What a twin changes.
struct Edit<'a> {
    issuer: &'a [u8],
    /// `None` keeps the real validity.
    validity: Option<(OffsetDateTime, OffsetDateTime)>,
    spki: &'a [u8],
    /// Written as the authorityKeyIdentifier (when the real one has one).
    issuer_key_id: &'a [u8],
    eku: Eku,
}

impl Tbs {
    fn parse(cert: &[u8]) -> Result<Tbs, String> {
        let bad = |e: yasna::ASN1Error| format!("not an X.509 certificate: {e}");
        let parts =
            yasna::parse_der(cert, |r| r.collect_sequence_of(|r| r.read_der())).map_err(bad)?;
        let tbs = parts.first().ok_or("an empty certificate")?;
        let fields =
            yasna::parse_der(tbs, |r| r.collect_sequence_of(|r| r.read_der())).map_err(bad)?;
        let mut it = fields.into_iter().peekable();
        // [0] version, absent in v1 certificates.
        if it.peek().is_some_and(|f| f.first() == Some(&0xa0)) {
            it.next();
        }
        let mut next = |what: &str| it.next().ok_or(format!("the certificate has no {what}"));
        let serial = next("serial number")?;
        next("signature algorithm")?;
        let issuer = next("issuer")?;
        let validity = next("validity")?;
        let subject = next("subject")?;
        next("public key")?;
        let mut unique_ids = Vec::new();
        let mut extensions = Vec::new();
        for f in it {
            if f.first() == Some(&0xa3) {
                let list = yasna::parse_der(&f, |r| {
                    r.read_tagged(Tag::context(3), |r| r.collect_sequence_of(|r| r.read_der()))
                })
                .map_err(bad)?;
                for ext in list {
                    let oid = yasna::parse_der(&ext, |r| {
                        r.read_sequence(|r| {
                            let oid = r.next().read_oid()?;
                            r.read_optional(|r| r.read_bool())?;
                            r.next().read_bytes()?;
                            Ok(oid)
                        })
                    })
                    .map_err(bad)?;
                    extensions.push((oid.components().clone(), ext));
                }
            } else {
                unique_ids.push(f);
            }
        }
        Ok(Tbs {
            serial,
            issuer,
            validity,
            subject,
            unique_ids,
            extensions,
        })
    }

    /// This certificate with `edit` applied, signed by `signer`. Returns DER.
    fn reissue(&self, edit: &Edit<'_>, signer: &KeyPair) -> Result<Vec<u8>, String> {
        let mut extensions = Vec::new();
        let mut eku_written = false;
        for (oid, der) in &self.extensions {
            match oid.as_slice() {
                SKI => extensions.push(extension(SKI, false, &der_octets(&key_id(edit.spki)))),
                AKI => extensions.push(extension(AKI, false, &aki(edit.issuer_key_id))),
                EKU if matches!(edit.eku, Eku::ServerAuthOnly) => {
                    extensions.push(server_auth_only());
                    eku_written = true;
                }
                _ => extensions.push(der.clone()),
            }
        }
        if matches!(edit.eku, Eku::ServerAuthOnly) && !eku_written {
            extensions.push(server_auth_only());
        }
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_tagged(Tag::context(0), |w| w.write_u8(2)); // v3
                w.next().write_der(&self.serial);
                w.next().write_der(&signature_algorithm());
                w.next().write_der(edit.issuer);
                match edit.validity {
                    Some((from, to)) => w.next().write_sequence(|w| {
                        write_time(w.next(), from);
                        write_time(w.next(), to);
                    }),
                    None => w.next().write_der(&self.validity),
                }
                w.next().write_der(&self.subject);
                w.next().write_der(edit.spki);
                for u in &self.unique_ids {
                    w.next().write_der(u);
                }
                if !extensions.is_empty() {
                    w.next().write_tagged(Tag::context(3), |w| {
                        w.write_sequence(|w| {
                            for e in &extensions {
                                w.next().write_der(e);
                            }
                        })
                    });
                }
            })
        });
        sign(tbs, signer)
    }
}

/// A self-signed CA certificate named `name` (DER Name, copied byte for byte), valid for
/// a day, with `key`.
fn throwaway_ca(name: &[u8], key: &KeyPair, now: OffsetDateTime) -> Result<Vec<u8>, String> {
    let spki = key.subject_public_key_info();
    let id = key_id(&spki);
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|e| format!("a random serial: {e}"))?;
    serial[0] &= 0x7f;
    let extensions = [
        // basicConstraints: CA
        extension(
            &[2, 5, 29, 19],
            true,
            &yasna::construct_der(|w| w.write_sequence(|w| w.next().write_bool(true))),
        ),
        // keyUsage: keyCertSign (5), cRLSign (6)
        extension(
            &[2, 5, 29, 15],
            true,
            &yasna::construct_der(|w| w.write_bitvec_bytes(&[0x06], 7)),
        ),
        extension(SKI, false, &der_octets(&id)),
    ];
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_tagged(Tag::context(0), |w| w.write_u8(2));
            w.next().write_bigint_bytes(&serial, true);
            w.next().write_der(&signature_algorithm());
            w.next().write_der(name);
            w.next().write_sequence(|w| {
                write_time(w.next(), now - Duration::hours(1));
                write_time(w.next(), now + Duration::days(1));
            });
            w.next().write_der(name);
            w.next().write_der(&spki);
            w.next().write_tagged(Tag::context(3), |w| {
                w.write_sequence(|w| {
                    for e in &extensions {
                        w.next().write_der(e);
                    }
                })
            });
        })
    });
    sign(tbs, key)
}

fn sign(tbs: Vec<u8>, key: &KeyPair) -> Result<Vec<u8>, String> {
    let signature = key.sign(&tbs).map_err(|e| format!("signing a twin: {e}"))?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(&signature_algorithm());
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    }))
}

/// AlgorithmIdentifier ecdsa-with-SHA256 (our keys are P-256; no parameters).
fn signature_algorithm() -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_oid(&ObjectIdentifier::from_slice(ECDSA_WITH_SHA256))
        })
    })
}

/// An Extension: extnID, critical (when true), extnValue holding `value` (DER).
fn extension(oid: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&ObjectIdentifier::from_slice(oid));
            if critical {
                w.next().write_bool(true);
            }
            w.next().write_bytes(value);
        })
    })
}

fn server_auth_only() -> Vec<u8> {
    extension(
        EKU,
        false,
        &yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(SERVER_AUTH))
            })
        }),
    )
}

fn der_octets(bytes: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| w.write_bytes(bytes))
}

/// AuthorityKeyIdentifier { keyIdentifier [0] }.
fn aki(id: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_tagged_implicit(Tag::context(0), |w| w.write_bytes(id))
        })
    })
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
fn write_time(w: DERWriter<'_>, t: OffsetDateTime) {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    if (1950..2050).contains(&t.year()) {
        w.write_utctime(&UTCTime::from_datetime(t));
    } else {
        w.write_generalized_time(&GeneralizedTime::from_datetime(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client certificate as an OpenSSL-style CA would issue it, made with the PKI crate.
    fn alice() -> (ClientIdentity, Vec<u8>) {
        use portcullis_pki::build::{self, Kind, Spec};
        use portcullis_pki::{KeyType, San, Subject};
        let now = OffsetDateTime::now_utc();
        let ca_key = KeyType::P256.generate().unwrap();
        let ca_subject = Subject {
            common_name: "Clients CA".into(),
            organization: Some("Example".into()),
            ..Default::default()
        };
        let ca_name = build::subject_der(&ca_subject);
        let key = KeyType::P256.generate().unwrap();
        let subject = Subject {
            common_name: "alice".into(),
            organizational_units: vec!["eng".into(), "ops".into()],
            ..Default::default()
        };
        let ca_id = build::key_identifier(&ca_key.subject_public_key_info()).unwrap();
        let der = build::sign(
            &Spec {
                kind: Kind::Client,
                issuer_name: &ca_name,
                issuer_key_id: Some(&ca_id),
                subject: &subject,
                sans: &[San::Email("alice@example.com".into())],
                spki: &key.subject_public_key_info(),
                not_before: now - Duration::days(1),
                not_after: now + Duration::days(30),
                serial: &build::random_serial().unwrap(),
                crl_url: None,
                ca_issuers_url: None,
            },
            &ca_key,
        )
        .unwrap();
        (
            ClientIdentity {
                chain: vec![der],
                key_pkcs8: key.serialize_der(),
                cert_file: "alice.crt".into(),
                key_file: "alice.key".into(),
                beside: Vec::new(),
            },
            ca_name,
        )
    }

    fn parsed(der: &[u8]) -> x509_parser::certificate::X509Certificate<'_> {
        x509_parser::parse_x509_certificate(der).unwrap().1
    }

    fn eku(c: &x509_parser::certificate::X509Certificate<'_>) -> (bool, bool) {
        let e = c.extended_key_usage().unwrap().unwrap().value;
        (e.client_auth, e.server_auth)
    }

    #[test]
    fn twins_copy_the_real_certificate_where_it_matters() {
        let (real, ca_name) = alice();
        let now = OffsetDateTime::now_utc();
        let twins = twins(&real, now).unwrap();
        let ids: Vec<_> = twins.iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [
                "self-signed",
                "same-name-issuer",
                "expired",
                "no-client-auth-eku"
            ]
        );
        let r = parsed(&real.chain[0]);
        for t in &twins {
            let id = t.identity.as_ref().unwrap();
            let c = parsed(&id.chain[0]);
            assert_eq!(c.subject().as_raw(), r.subject().as_raw(), "{}", t.id);
            assert_eq!(c.raw_serial(), r.raw_serial(), "{}", t.id);
            assert_eq!(
                c.subject_alternative_name().unwrap().unwrap().value,
                r.subject_alternative_name().unwrap().unwrap().value,
                "{}",
                t.id
            );
            assert_ne!(
                c.public_key().raw,
                r.public_key().raw,
                "{}: a new key",
                t.id
            );
            // The key handed to rustls is the twin's own.
            let provider = rustls::crypto::aws_lc_rs::default_provider();
            let key = rustls::pki_types::PrivateKeyDer::try_from(id.key_pkcs8.clone()).unwrap();
            rustls::sign::CertifiedKey::from_der(
                id.chain.iter().map(|d| d.clone().into()).collect(),
                key,
                &provider,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", t.id));
        }
        // Self-signed: issuer is the subject, and its signature verifies with its own key.
        let s = parsed(&twins[0].identity.as_ref().unwrap().chain[0]);
        assert_eq!(s.issuer().as_raw(), r.subject().as_raw());
        s.verify_signature(None).unwrap();
        // Same-name issuer: the issuer's name byte for byte, signed by the throwaway CA
        // (sent second), not by the real one.
        let chain = &twins[1].identity.as_ref().unwrap().chain;
        let (n, ca) = (parsed(&chain[0]), parsed(&chain[1]));
        assert_eq!(n.issuer().as_raw(), ca_name.as_slice());
        assert_eq!(ca.subject().as_raw(), ca_name.as_slice());
        assert!(ca.is_ca());
        n.verify_signature(Some(ca.public_key())).unwrap();
        ca.verify_signature(None).unwrap();
        assert_eq!(eku(&n), (true, false));
        // Expired.
        let e = parsed(&twins[2].identity.as_ref().unwrap().chain[0]);
        assert!(e.validity().not_after.timestamp() < now.unix_timestamp());
        assert!(r.validity().not_after.timestamp() > now.unix_timestamp());
        // No clientAuth.
        let k = parsed(&twins[3].identity.as_ref().unwrap().chain[0]);
        assert_eq!(eku(&k), (false, true));
    }
}

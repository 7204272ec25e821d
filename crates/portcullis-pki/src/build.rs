//! Builds and signs X.509 v3 certificates.
//!
//! We write the TBSCertificate ourselves (with yasna, rcgen's DER writer) instead of
//! using rcgen's builder, because rcgen's subject type holds one value per attribute and
//! client certificates routinely carry several OUs (rustls/rcgen#81). The encoding here is
//! deliberately small and follows RFC 5280 §4.1; signing goes through aws-lc-rs via
//! rcgen's `KeyPair`.

use std::net::IpAddr;

use rcgen::{KeyPair, SigningKey};
use time::OffsetDateTime;
use yasna::models::{GeneralizedTime, UTCTime};
use yasna::{DERWriter, Tag};

use crate::error::{Error, Result};
use crate::keys::{oid, signature_algorithm_der};
use crate::names::{San, Subject};

/// What a certificate is for; decides basicConstraints, keyUsage and extKeyUsage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Self-signed root; may sign intermediates and leaves.
    Root,
    /// Issuing CA under the root; signs leaves only (pathLenConstraint 0).
    Intermediate,
    Server,
    Client,
}

/// Everything that goes into one certificate.
#[derive(Debug)]
pub struct Spec<'a> {
    pub kind: Kind,
    /// DER Name of the issuer, copied byte for byte from the issuer's certificate so that
    /// chain building by name comparison cannot be upset by re-encoding.
    pub issuer_name: &'a [u8],
    /// The issuer's subjectKeyIdentifier, written as our authorityKeyIdentifier.
    pub issuer_key_id: Option<&'a [u8]>,
    pub subject: &'a Subject,
    pub sans: &'a [San],
    /// DER SubjectPublicKeyInfo of the key being certified.
    pub spki: &'a [u8],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Big-endian serial bytes (we generate 16 random ones).
    pub serial: &'a [u8],
    /// An http:// URL for cRLDistributionPoints (leaves only).
    pub crl_url: Option<&'a str>,
    /// An http:// URL of the issuer's certificate, for authorityInfoAccess (leaves only).
    pub ca_issuers_url: Option<&'a str>,
}

/// A new random serial: 128 bits from the system RNG (CA/B Forum asks for at least 64).
pub fn random_serial() -> Result<[u8; 16]> {
    let mut s = [0u8; 16];
    aws_lc_rs::rand::fill(&mut s).map_err(|e| Error::crypto("random serial", e))?;
    Ok(s)
}

/// Serial as OpenSSL prints it: uppercase hex, no leading zero bytes.
pub fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    hex::encode_upper(&bytes[start..])
}

/// Key identifier per RFC 7093 §2 method 1: SHA-256 of the subjectPublicKey bits,
/// truncated to 160 bits.
pub fn key_identifier(spki: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|e| Error::crypto("parsing a public key", e))?;
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &parsed.subject_public_key.data);
    Ok(digest.as_ref()[..20].to_vec())
}

/// DER Name for a subject, in the conventional order C, ST, L, O, OU…, CN, emailAddress,
/// one attribute per RDN.
pub fn subject_der(s: &Subject) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            let mut rdn = |components: &[u64], value: &str, kind: StringKind| {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(components));
                        match kind {
                            StringKind::Printable => w.next().write_printable_string(value),
                            StringKind::Ia5 => w.next().write_ia5_string(value),
                            StringKind::Utf8 => w.next().write_utf8_string(value),
                        }
                    })
                })
            };
            if let Some(v) = &s.country {
                rdn(&[2, 5, 4, 6], v, StringKind::Printable);
            }
            if let Some(v) = &s.state {
                rdn(&[2, 5, 4, 8], v, StringKind::Utf8);
            }
            if let Some(v) = &s.locality {
                rdn(&[2, 5, 4, 7], v, StringKind::Utf8);
            }
            if let Some(v) = &s.organization {
                rdn(&[2, 5, 4, 10], v, StringKind::Utf8);
            }
            for v in &s.organizational_units {
                rdn(&[2, 5, 4, 11], v, StringKind::Utf8);
            }
            rdn(&[2, 5, 4, 3], &s.common_name, StringKind::Utf8);
            if let Some(v) = &s.email {
                rdn(&[1, 2, 840, 113549, 1, 9, 1], v, StringKind::Ia5);
            }
        })
    })
}

#[derive(Clone, Copy)]
enum StringKind {
    Printable,
    Ia5,
    Utf8,
}

/// Builds the certificate and signs it with `issuer_key`. Returns DER.
pub fn sign(spec: &Spec<'_>, issuer_key: &KeyPair) -> Result<Vec<u8>> {
    let sig_alg = signature_algorithm_der(issuer_key);
    let subject = subject_der(spec.subject);
    let ski = key_identifier(spec.spki)?;
    let rsa_subject = is_rsa_spki(spec.spki);

    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_tagged(Tag::context(0), |w| w.write_u8(2)); // v3
            w.next().write_bigint_bytes(spec.serial, true);
            w.next().write_der(&sig_alg);
            w.next().write_der(spec.issuer_name);
            w.next().write_sequence(|w| {
                write_time(w.next(), spec.not_before);
                write_time(w.next(), spec.not_after);
            });
            w.next().write_der(&subject);
            w.next().write_der(spec.spki);
            w.next().write_tagged(Tag::context(3), |w| {
                w.write_sequence(|w| {
                    write_extensions(w, spec, &ski, rsa_subject);
                })
            });
        })
    });

    let signature = issuer_key
        .sign(&tbs)
        .map_err(|e| Error::crypto("signing a certificate", e))?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(&sig_alg);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    }))
}

/// A PKCS#10 certificate signing request (RFC 2986) for `key`, asking for `subject` and,
/// in an extensionRequest attribute, `sans`. Returns DER. Key usages are left to the CA
/// that signs it: every CA decides them by its own profile.
pub fn request(subject: &Subject, sans: &[San], key: &KeyPair) -> Result<Vec<u8>> {
    let sig_alg = signature_algorithm_der(key);
    let info = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0); // v1
            w.next().write_der(&subject_der(subject));
            w.next()
                .write_der(&rcgen::PublicKeyData::subject_public_key_info(key));
            w.next().write_tagged_implicit(Tag::context(0), |w| {
                w.write_set(|w| {
                    if sans.is_empty() {
                        return;
                    }
                    w.next().write_sequence(|w| {
                        // PKCS#9 extensionRequest
                        w.next().write_oid(&oid(&[1, 2, 840, 113549, 1, 9, 14]));
                        w.next().write_set(|w| {
                            w.next().write_sequence(|w| {
                                extension(w, &[2, 5, 29, 17], false, |w| {
                                    w.write_sequence(|w| {
                                        for san in sans {
                                            write_general_name(w.next(), san);
                                        }
                                    })
                                });
                            })
                        })
                    })
                })
            });
        })
    });
    let signature = key
        .sign(&info)
        .map_err(|e| Error::crypto("signing a certificate request", e))?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&info);
            w.next().write_der(&sig_alg);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    }))
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
fn write_time(w: DERWriter<'_>, t: OffsetDateTime) {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    if t.year() < 2050 && t.year() >= 1950 {
        w.write_utctime(&UTCTime::from_datetime(t));
    } else {
        w.write_generalized_time(&GeneralizedTime::from_datetime(t));
    }
}

fn is_rsa_spki(spki: &[u8]) -> bool {
    // rsaEncryption OID 1.2.840.113549.1.1.1 encoded.
    const RSA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    spki.windows(RSA.len()).any(|w| w == RSA)
}

fn extension(
    w: &mut yasna::DERWriterSeq<'_>,
    components: &[u64],
    critical: bool,
    value: impl FnOnce(DERWriter<'_>),
) {
    let inner = yasna::construct_der(value);
    w.next().write_sequence(|w| {
        w.next().write_oid(&oid(components));
        if critical {
            w.next().write_bool(true);
        }
        w.next().write_bytes(&inner);
    });
}

fn write_extensions(w: &mut yasna::DERWriterSeq<'_>, spec: &Spec<'_>, ski: &[u8], rsa: bool) {
    // basicConstraints, critical on every certificate so a leaf can never act as a CA.
    extension(w, &[2, 5, 29, 19], true, |w| {
        w.write_sequence(|w| match spec.kind {
            Kind::Root => w.next().write_bool(true),
            Kind::Intermediate => {
                w.next().write_bool(true);
                w.next().write_u8(0);
            }
            Kind::Server | Kind::Client => {}
        })
    });

    // keyUsage bits (RFC 5280 §4.2.1.3): 0 digitalSignature, 2 keyEncipherment,
    // 5 keyCertSign, 6 cRLSign. keyEncipherment only for RSA leaves (TLS 1.2 RSA
    // key exchange); ECDSA and Ed25519 keys cannot encipher.
    let bits: &[usize] = match spec.kind {
        Kind::Root | Kind::Intermediate => &[0, 5, 6],
        Kind::Server | Kind::Client if rsa => &[0, 2],
        Kind::Server | Kind::Client => &[0],
    };
    extension(w, &[2, 5, 29, 15], true, |w| write_named_bits(w, bits));

    let eku: Option<&[u64]> = match spec.kind {
        Kind::Server => Some(&[1, 3, 6, 1, 5, 5, 7, 3, 1]),
        Kind::Client => Some(&[1, 3, 6, 1, 5, 5, 7, 3, 2]),
        Kind::Root | Kind::Intermediate => None,
    };
    if let Some(eku) = eku {
        extension(w, &[2, 5, 29, 37], false, |w| {
            w.write_sequence(|w| w.next().write_oid(&oid(eku)))
        });
    }

    if !spec.sans.is_empty() {
        extension(w, &[2, 5, 29, 17], false, |w| {
            w.write_sequence(|w| {
                for san in spec.sans {
                    write_general_name(w.next(), san);
                }
            })
        });
    }

    let leaf = matches!(spec.kind, Kind::Server | Kind::Client);
    if let Some(url) = spec.crl_url.filter(|_| leaf) {
        // DistributionPoint { distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] } } }
        extension(w, &[2, 5, 29, 31], false, |w| {
            w.write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_tagged(Tag::context(0), |w| {
                        w.write_tagged_implicit(Tag::context(0), |w| {
                            w.write_sequence(|w| {
                                w.next().write_tagged_implicit(Tag::context(6), |w| {
                                    w.write_ia5_string(url)
                                })
                            })
                        })
                    })
                })
            })
        });
    }
    if let Some(url) = spec.ca_issuers_url.filter(|_| leaf) {
        // AccessDescription { id-ad-caIssuers, uniformResourceIdentifier [6] }
        extension(w, &[1, 3, 6, 1, 5, 5, 7, 1, 1], false, |w| {
            w.write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(&[1, 3, 6, 1, 5, 5, 7, 48, 2]));
                    w.next()
                        .write_tagged_implicit(Tag::context(6), |w| w.write_ia5_string(url));
                })
            })
        });
    }

    extension(w, &[2, 5, 29, 14], false, |w| w.write_bytes(ski));
    let aki = spec.issuer_key_id.unwrap_or(ski);
    extension(w, &[2, 5, 29, 35], false, |w| {
        w.write_sequence(|w| {
            w.next()
                .write_tagged_implicit(Tag::context(0), |w| w.write_bytes(aki))
        })
    });
}

/// A DER named-bit BIT STRING: trailing zero bits are not encoded (X.690 §11.2.2).
fn write_named_bits(w: DERWriter<'_>, bits: &[usize]) {
    let len = bits.iter().max().map_or(0, |m| m + 1);
    let mut bytes = vec![0u8; len.div_ceil(8)];
    for &b in bits {
        bytes[b / 8] |= 0x80 >> (b % 8);
    }
    w.write_bitvec_bytes(&bytes, len);
}

fn write_general_name(w: DERWriter<'_>, san: &San) {
    match san {
        San::Email(v) => w.write_tagged_implicit(Tag::context(1), |w| w.write_ia5_string(v)),
        San::Dns(v) => w.write_tagged_implicit(Tag::context(2), |w| w.write_ia5_string(v)),
        San::Uri(v) => w.write_tagged_implicit(Tag::context(6), |w| w.write_ia5_string(v)),
        San::Ip(ip) => w.write_tagged_implicit(Tag::context(7), |w| match ip {
            IpAddr::V4(a) => w.write_bytes(&a.octets()),
            IpAddr::V6(a) => w.write_bytes(&a.octets()),
        }),
    }
}

//! Private keys: generation, and PEM files (plain PKCS#8 or passphrase-encrypted PKCS#8).
//!
//! Encrypted keys use PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, the scheme OpenSSL 3
//! writes by default for `openssl pkey -aes256` and the one `openssl pkey -passin` and
//! Node's `crypto.createPrivateKey({ key, passphrase })` read. The iteration count follows
//! OWASP's 2023 advice for PBKDF2-HMAC-SHA256 (600,000).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use pkcs8::der::pem::LineEnding;
use pkcs8::der::zeroize::Zeroizing;
use pkcs8::pkcs5::pbes2;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use rcgen::{KeyPair, SignatureAlgorithm};

use crate::error::{Error, Result};
use crate::secret::Passphrase;

/// PBKDF2 iterations for keys we encrypt.
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// The key algorithms the CA can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256: small, fast, accepted everywhere. The default.
    #[default]
    P256,
    /// ECDSA on P-384 with SHA-384.
    P384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    /// Ed25519: not accepted by browsers for TLS; fine between programs that support it.
    Ed25519,
}

impl KeyType {
    /// Every key type, in the order `--help` lists them.
    pub const ALL: [KeyType; 6] = [
        KeyType::P256,
        KeyType::P384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::Ed25519,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::P384 => "p384",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
            KeyType::Ed25519 => "ed25519",
        }
    }

    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// Generates a fresh key pair from the system's secure RNG (aws-lc-rs).
    pub fn generate(self) -> Result<KeyPair> {
        let size = match self {
            KeyType::Rsa2048 => rcgen::RsaKeySize::_2048,
            KeyType::Rsa3072 => rcgen::RsaKeySize::_3072,
            KeyType::Rsa4096 => rcgen::RsaKeySize::_4096,
            _ => {
                return KeyPair::generate_for(self.algorithm())
                    .map_err(|e| Error::crypto("generating a key", e));
            }
        };
        KeyPair::generate_rsa_for(self.algorithm(), size)
            .map_err(|e| Error::crypto("generating an RSA key", e))
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = KeyType::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown key type {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// DER of the AlgorithmIdentifier a certificate signed by `key` carries. RSA keys sign
/// with PKCS#1 v1.5 + SHA-256 (whose parameters are an explicit NULL, RFC 4055 §5).
pub(crate) fn signature_algorithm_der(key: &KeyPair) -> Vec<u8> {
    let alg = key.algorithm();
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
                w.next().write_oid(&oid(&[1, 2, 840, 10045, 4, 3, 2]));
            } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
                w.next().write_oid(&oid(&[1, 2, 840, 10045, 4, 3, 3]));
            } else if alg == &rcgen::PKCS_ED25519 {
                w.next().write_oid(&oid(&[1, 3, 101, 112]));
            } else {
                w.next().write_oid(&oid(&[1, 2, 840, 113549, 1, 1, 11]));
                w.next().write_null();
            }
        })
    })
}

pub(crate) fn oid(components: &[u64]) -> yasna::models::ObjectIdentifier {
    yasna::models::ObjectIdentifier::from_slice(components)
}

/// Writes a private key as PEM: `PRIVATE KEY` when `passphrase` is `None`, otherwise
/// `ENCRYPTED PRIVATE KEY`.
pub fn to_pem(key: &KeyPair, passphrase: Option<&Passphrase>) -> Result<Zeroizing<String>> {
    let der = Zeroizing::new(key.serialize_der());
    let Some(pass) = passphrase else {
        return pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|e| Error::crypto("encoding a key", e));
    };
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|e| Error::crypto("random salt", e))?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|e| Error::crypto("random IV", e))?;
    let params = pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, iv)
        .map_err(|e| Error::crypto("PBES2 parameters", e))?;
    let info =
        PrivateKeyInfoRef::try_from(der.as_slice()).map_err(|e| Error::crypto("PKCS#8", e))?;
    let doc = info
        .encrypt_with_params(params, pass.expose())
        .map_err(|e| Error::crypto("encrypting a key", e))?;
    doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|e| Error::crypto("encoding a key", e))
}

/// Whether a PEM key file is passphrase-protected.
pub fn is_encrypted(pem_text: &str) -> bool {
    pem_text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || pem_text.contains("Proc-Type: 4,ENCRYPTED")
}

/// Reads a private key from PEM text. `path` is only used in error messages;
/// `missing_hint` says how to supply a passphrase when the key needs one.
pub fn from_pem(
    text: &str,
    path: &Path,
    passphrase: Option<&Passphrase>,
    missing_hint: &str,
) -> Result<KeyPair> {
    let (label, der) = pkcs8::der::pem::decode_vec(text.trim_start().as_bytes())
        .map_err(|e| Error::malformed(path, format!("not a PEM private key ({e})")))?;
    let der = Zeroizing::new(der);
    let plain: Zeroizing<Vec<u8>> = match label {
        "ENCRYPTED PRIVATE KEY" => {
            let Some(pass) = passphrase else {
                return Err(Error::PassphraseRequired {
                    key: path.to_owned(),
                    hint: missing_hint.to_owned(),
                });
            };
            let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                .map_err(|e| Error::malformed(path, format!("bad encrypted key ({e})")))?;
            // A wrong passphrase shows up as bad padding or, rarely, as garbage that does
            // not decode; both mean the same thing to the user.
            let doc = info
                .decrypt(pass.expose())
                .map_err(|_| Error::WrongPassphrase {
                    key: path.to_owned(),
                    origin: pass.origin().to_owned(),
                })?;
            Zeroizing::new(doc.as_bytes().to_vec())
        }
        "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" => der.clone(),
        other => {
            return Err(Error::malformed(
                path,
                format!("expected a private key, found a PEM block labelled {other:?}"),
            ));
        }
    };
    KeyPair::try_from(plain.as_slice())
        .map_err(|e| Error::malformed(path, format!("unsupported or corrupt private key ({e})")))
}

/// An existing key to certify instead of making one (`issue --key`).
#[derive(Debug)]
pub enum BroughtKey {
    Private(KeyPair),
    /// DER SubjectPublicKeyInfo.
    Public(Vec<u8>),
}

/// Reads a key someone already has: a private key (see [`from_pem`]) or a `PUBLIC KEY`
/// (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes it) of a type the CA issues
/// for.
pub fn read_brought(
    text: &str,
    path: &Path,
    passphrase: Option<&Passphrase>,
    missing_hint: &str,
) -> Result<BroughtKey> {
    let Ok((label, der)) = pkcs8::der::pem::decode_vec(text.trim_start().as_bytes()) else {
        return from_pem(text, path, passphrase, missing_hint).map(BroughtKey::Private);
    };
    if label != "PUBLIC KEY" {
        return from_pem(text, path, passphrase, missing_hint).map(BroughtKey::Private);
    }
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&der)
        .map_err(|e| Error::malformed(path, format!("not a valid public key ({e})")))?;
    check_certifiable(&spki, path)?;
    Ok(BroughtKey::Public(der))
}

/// Refuses a public key of a type or size this CA does not certify: whoever brings it
/// (a key file, a CSR, an enrolment) gets the same answer.
pub fn check_certifiable(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    path: &Path,
) -> Result<()> {
    use x509_parser::oid_registry::*;
    let alg = &spki.algorithm;
    let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
    let supported = if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        curve.is_some_and(|c| c == OID_EC_P256 || c == OID_NIST_EC_P384)
    } else if alg.algorithm == OID_PKCS1_RSAENCRYPTION {
        matches!(spki.parsed(), Ok(x509_parser::public_key::PublicKey::RSA(r)) if r.key_size() >= 2048)
    } else {
        alg.algorithm == OID_SIG_ED25519
    };
    if !supported {
        return Err(Error::malformed(
            path,
            "the public key is not of a type certified here (P-256, P-384, Ed25519, or RSA of 2048 bits or more)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_round_trips_plain() {
        for kt in [
            KeyType::P256,
            KeyType::P384,
            KeyType::Ed25519,
            KeyType::Rsa2048,
        ] {
            let key = kt.generate().unwrap();
            let pem = to_pem(&key, None).unwrap();
            let back = from_pem(&pem, Path::new("k"), None, "").unwrap();
            assert_eq!(back.public_key_raw(), key.public_key_raw(), "{kt}");
        }
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let key = KeyType::P256.generate().unwrap();
        let good = Passphrase::new("correct horse".into(), "test").unwrap();
        let bad = Passphrase::new("wrong horse".into(), "the-file").unwrap();
        let pem = to_pem(&key, Some(&good)).unwrap();
        assert!(is_encrypted(&pem));
        let p = Path::new("ca.key");
        match from_pem(&pem, p, Some(&bad), "") {
            Err(Error::WrongPassphrase { key, origin }) => {
                assert_eq!(key, p);
                assert_eq!(origin, "the-file");
            }
            other => panic!("expected WrongPassphrase, got {other:?}"),
        }
        assert!(matches!(
            from_pem(&pem, p, None, "--x"),
            Err(Error::PassphraseRequired { .. })
        ));
        let back = from_pem(&pem, p, Some(&good), "").unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn truncated_pem_is_a_clear_error() {
        let key = KeyType::P256.generate().unwrap();
        let pem = to_pem(&key, None).unwrap();
        let cut = &pem[..pem.len() / 2];
        let e = from_pem(cut, Path::new("half.key"), None, "").unwrap_err();
        assert!(e.to_string().contains("half.key"), "{e}");
    }
}

//! Reading certificates into [`CertDetails`], and PEM in and out.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::public_key::PublicKey;

use crate::observe::CertDetails;

/// Everything a person (and `diagnose`) needs from one certificate. Certificates that do
/// not parse still get an entry, so the chain length stays true.
pub fn details(der: &[u8]) -> CertDetails {
    let pem = pem("CERTIFICATE", der);
    let sha256 = fingerprint(der);
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return CertDetails {
            subject: "(unparseable certificate)".into(),
            sha256,
            pem,
            ..Default::default()
        };
    };
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => Some(
            ext.value
                .general_names
                .iter()
                .map(|g| match g {
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    GeneralName::IPAddress(ip) => format!("IP:{}", ip_string(ip)),
                    GeneralName::RFC822Name(e) => format!("email:{e}"),
                    GeneralName::URI(u) => format!("URI:{u}"),
                    other => format!("{other:?}"),
                })
                .collect(),
        ),
        _ => None,
    };
    let eku = match cert.extended_key_usage() {
        Ok(Some(ext)) => {
            let e = ext.value;
            let mut v = Vec::new();
            if e.any {
                v.push("any".to_owned());
            }
            if e.server_auth {
                v.push("serverAuth".to_owned());
            }
            if e.client_auth {
                v.push("clientAuth".to_owned());
            }
            if e.code_signing {
                v.push("codeSigning".to_owned());
            }
            if e.email_protection {
                v.push("emailProtection".to_owned());
            }
            for o in &e.other {
                v.push(o.to_id_string());
            }
            Some(v)
        }
        _ => None,
    };
    let (key, rsa_bits) = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size() as u32;
            (format!("RSA {bits}"), bits)
        }
        Ok(PublicKey::EC(ec)) => (format!("EC {} bits", ec.key_size()), 0),
        Ok(PublicKey::Unknown(_)) | Err(_) => {
            let oid = cert.public_key().algorithm.algorithm.to_id_string();
            (
                if oid == "1.3.101.112" {
                    "Ed25519".into()
                } else {
                    oid
                },
                0,
            )
        }
        Ok(other) => (format!("{other:?}"), 0),
    };
    CertDetails {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        sha256,
        serial: cert.raw_serial_as_string().replace(':', "").to_uppercase(),
        signature_algorithm: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
        key,
        rsa_bits,
        is_ca: cert.is_ca(),
        self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        eku,
        pem,
    }
}

/// The raw DER issuer and subject names of a certificate.
pub fn raw_names(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some((
        cert.issuer().as_raw().to_vec(),
        cert.subject().as_raw().to_vec(),
    ))
}

/// A DER Name as `CN=…, O=…`. Accepts it with or without the outer SEQUENCE (TLS
/// CertificateRequest and webpki trust anchors carry only the contents).
pub fn name_string(der: &[u8]) -> String {
    if let Ok((_, n)) = X509Name::from_der(der) {
        return n.to_string();
    }
    let mut wrapped = vec![0x30];
    let len = der.len();
    if len < 0x80 {
        wrapped.push(len as u8);
    } else if len < 0x100 {
        wrapped.extend_from_slice(&[0x81, len as u8]);
    } else {
        wrapped.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    wrapped.extend_from_slice(der);
    match X509Name::from_der(&wrapped) {
        Ok((_, n)) => n.to_string(),
        Err(_) => format!("(unparseable name {})", hex::encode(der)),
    }
}

/// The contents of a DER SEQUENCE (drops tag and length).
pub fn seq_contents(der: &[u8]) -> &[u8] {
    let Some(&first_len) = der.get(1) else {
        return der;
    };
    let header = if first_len < 0x80 {
        2
    } else {
        2 + (first_len & 0x7f) as usize
    };
    der.get(header..).unwrap_or(der)
}

/// Lowercase hex, as every Portcullis command and the gate's headers print it.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

fn ip_string(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => hex::encode(b),
    }
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "Ed25519",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// Whether a signature algorithm name is one clients refuse (MD2, MD5, SHA-1).
pub fn is_weak_signature(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("md2") || n.contains("md5") || n.contains("sha1")
}

// === PEM ===

/// DER blocks labelled `CERTIFICATE` in PEM text (or the input itself when it is DER).
pub fn pem_certs(bytes: &[u8]) -> Vec<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    if bytes.first() == Some(&0x30) {
        return vec![bytes.to_vec()];
    }
    CertificateDer::pem_slice_iter(bytes)
        .filter_map(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .collect()
}

pub fn pem(label: &str, der: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (chunk.get(1).copied().unwrap_or(0) as u32) << 8
            | chunk.get(2).copied().unwrap_or(0) as u32;
        for i in 0..4 {
            if i <= n {
                b64.push(T[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        for len in [0usize, 1, 2, 3, 47, 48, 100] {
            let der: Vec<u8> = std::iter::once(0x30)
                .chain((0..len as u8).map(|x| x.wrapping_mul(7)))
                .collect();
            let text = pem("CERTIFICATE", &der);
            assert_eq!(pem_certs(text.as_bytes()), vec![der], "len {len}");
        }
    }
}

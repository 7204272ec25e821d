//! The typed identity of a verified client certificate, parsed once per connection.
//!
//! Every attribute is read as a parsed value of its declared type, never by slicing a DN
//! string (SECURITY.md rule 5): `CN=admin\0.attacker` is not `admin`, and an email in a
//! DNS SAN is not an email. A value with a NUL or control character makes the whole
//! certificate unusable for the gate. When a subject has several CNs, the one used is the
//! left-most in the subject's RFC 4514 string ([`Identity::subject`], what the upstream
//! receives as `X-Client-Subject`, and what Java's `X500Principal.getName()` and nginx's
//! `$ssl_client_s_dn` print): the last one in the certificate's encoding. So an
//! application that takes the first `CN=` of the subject string reads the same CN as the
//! gate's rules.

use std::net::IpAddr;

use serde::Serialize;
use x509_parser::oid_registry::*;
use x509_parser::prelude::*;

/// Why a certificate cannot become an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("the certificate does not parse: {0}")]
    Parse(String),
    #[error("the certificate's {field} contains a NUL or control character")]
    ControlCharacter { field: &'static str },
    #[error("the certificate's {field} is not a string type")]
    NotAString { field: &'static str },
}

/// What the gate knows about an authenticated client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Subject CN: with several, the left-most of [`Identity::subject`] (the last encoded).
    pub common_name: Option<String>,
    /// Subject emailAddress attributes.
    pub emails: Vec<String>,
    pub organizations: Vec<String>,
    pub organizational_units: Vec<String>,
    pub localities: Vec<String>,
    pub states: Vec<String>,
    pub countries: Vec<String>,
    pub dns_sans: Vec<String>,
    pub email_sans: Vec<String>,
    pub uri_sans: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    /// The subject as an RFC 4514 string (last RDN first, special characters escaped:
    /// `CN=mallory\, OU=Admins` is one CN), for display, logs and the upstream's
    /// `X-Client-Subject`. Never matched on.
    pub subject: String,
    /// The issuer, as an RFC 4514 string.
    pub issuer: String,
    /// Uppercase hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    /// Lowercase hex SHA-256 of the DER certificate.
    pub fingerprint_sha256: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

fn clean(field: &'static str, v: &str) -> Result<String, IdentityError> {
    if v.chars().any(char::is_control) {
        return Err(IdentityError::ControlCharacter { field });
    }
    Ok(v.to_owned())
}

impl Identity {
    /// An identity written out as `cn=alice,ou=Admins,email=alice@example.com`, for
    /// trying a policy without a certificate (`portcullis policy test --identity`). Keys:
    /// `cn`, `o`, `ou`, `l`, `st`, `c`, `email`, `dns`, `uri`, `ip`, `serial`,
    /// `fingerprint`; repeat a key for several values; `\,` is a comma inside a value.
    pub fn from_fields(text: &str) -> Result<Identity, String> {
        let mut id = Identity::default();
        let mut fields = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ',' => fields.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        fields.push(current);
        for field in fields.iter().filter(|f| !f.trim().is_empty()) {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("{field:?} is not key=value"))?;
            let value = clean("value", value.trim()).map_err(|e| e.to_string())?;
            match key.trim().to_ascii_lowercase().as_str() {
                "cn" => id.common_name = Some(value),
                "o" => id.organizations.push(value),
                "ou" => id.organizational_units.push(value),
                "l" => id.localities.push(value),
                "st" => id.states.push(value),
                "c" => id.countries.push(value),
                "email" => id.email_sans.push(value),
                "dns" => id.dns_sans.push(value),
                "uri" => id.uri_sans.push(value),
                "ip" => id.ip_sans.push(
                    value
                        .parse()
                        .map_err(|_| format!("{value:?} is not an IP address"))?,
                ),
                "serial" => id.serial = value.to_ascii_uppercase(),
                "fingerprint" => {
                    id.fingerprint_sha256 = value.replace(':', "").to_ascii_lowercase()
                }
                other => {
                    return Err(format!(
                        "unknown field {other:?}: use cn, o, ou, l, st, c, email, dns, uri, ip, serial or fingerprint"
                    ));
                }
            }
        }
        if id.common_name.is_none() {
            return Err("an identity needs a cn".into());
        }
        let mut subject = Vec::new();
        if let Some(cn) = &id.common_name {
            let mut v = String::new();
            escape_value(cn, &mut v);
            subject.push(format!("CN={v}"));
        }
        for (k, vals) in [("OU", &id.organizational_units), ("O", &id.organizations)] {
            for val in vals {
                let mut v = String::new();
                escape_value(val, &mut v);
                subject.push(format!("{k}={v}"));
            }
        }
        id.subject = subject.join(",");
        Ok(id)
    }

    /// Parses the leaf certificate of a chain the TLS layer already verified.
    pub fn from_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) =
            parse_x509_certificate(der).map_err(|e| IdentityError::Parse(e.to_string()))?;
        let mut id = Identity::default();
        // Every CN is checked; the left-most in RFC 4514 order (the last encoded) is the
        // identity's.
        let mut cns = Vec::new();
        for attr in cert.subject().iter_attributes() {
            let oid = attr.attr_type();
            let (field, slot): (&'static str, &mut Vec<String>) = if *oid == OID_X509_COMMON_NAME {
                ("CN", &mut cns)
            } else if *oid == OID_PKCS9_EMAIL_ADDRESS {
                ("emailAddress", &mut id.emails)
            } else if *oid == OID_X509_ORGANIZATION_NAME {
                ("O", &mut id.organizations)
            } else if *oid == OID_X509_ORGANIZATIONAL_UNIT {
                ("OU", &mut id.organizational_units)
            } else if *oid == OID_X509_LOCALITY_NAME {
                ("L", &mut id.localities)
            } else if *oid == OID_X509_STATE_OR_PROVINCE_NAME {
                ("ST", &mut id.states)
            } else if *oid == OID_X509_COUNTRY_NAME {
                ("C", &mut id.countries)
            } else {
                // Other attributes are not used for decisions; still refuse control bytes.
                if let Ok(v) = attr.as_str() {
                    clean("subject", v)?;
                }
                continue;
            };
            push_attr(attr, field, slot)?;
        }
        id.common_name = cns.pop();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(v) => id.dns_sans.push(clean("DNS SAN", v)?),
                    GeneralName::RFC822Name(v) => id.email_sans.push(clean("email SAN", v)?),
                    GeneralName::URI(v) => id.uri_sans.push(clean("URI SAN", v)?),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            id.ip_sans.push(IpAddr::from(a));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            id.ip_sans.push(IpAddr::from(a));
                        }
                    }
                    _ => {}
                }
            }
        }
        id.subject = clean("subject", &rfc4514(cert.subject()))?;
        id.issuer = clean("issuer", &rfc4514(cert.issuer()))?;
        let serial = cert.raw_serial();
        let start = serial
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(serial.len().saturating_sub(1));
        id.serial = hex::encode_upper(&serial[start..]);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        id.fingerprint_sha256 = hex::encode(digest.as_ref());
        id.not_before = cert.validity().not_before.timestamp();
        id.not_after = cert.validity().not_after.timestamp();
        Ok(id)
    }

    /// Every email address the certificate carries (subject and SAN), without duplicates.
    pub fn all_emails(&self) -> impl Iterator<Item = &str> {
        self.emails.iter().map(String::as_str).chain(
            self.email_sans
                .iter()
                .map(String::as_str)
                .filter(|e| !self.emails.iter().any(|s| s == e)),
        )
    }
}

fn push_attr(
    attr: &AttributeTypeAndValue<'_>,
    field: &'static str,
    slot: &mut Vec<String>,
) -> Result<(), IdentityError> {
    let v = attr
        .as_str()
        .map_err(|_| IdentityError::NotAString { field })?;
    slot.push(clean(field, v)?);
    Ok(())
}

/// The RFC 4514 string of a name: RDNs from last to first, separated by `,`; the values of
/// a multi-valued RDN joined by `+`; in values, `"+,;<>\` and a leading `#` or space or a
/// trailing space escaped with `\`, so that the string reads back as the same attributes.
/// Types without a short name in RFC 4514 (or OpenSSL's `emailAddress`) are written as
/// dotted OIDs, and values that are not strings as `#` and the hex of their DER encoding.
fn rfc4514(name: &X509Name<'_>) -> String {
    use x509_parser::der_parser::asn1_rs::ToDer;
    const SHORT: [(Oid<'static>, &str); 9] = [
        (OID_X509_COMMON_NAME, "CN"),
        (OID_X509_LOCALITY_NAME, "L"),
        (OID_X509_STATE_OR_PROVINCE_NAME, "ST"),
        (OID_X509_ORGANIZATION_NAME, "O"),
        (OID_X509_ORGANIZATIONAL_UNIT, "OU"),
        (OID_X509_COUNTRY_NAME, "C"),
        (OID_X509_STREET_ADDRESS, "STREET"),
        (OID_DOMAIN_COMPONENT, "DC"),
        (OID_PKCS9_EMAIL_ADDRESS, "emailAddress"),
    ];
    let short = |oid: &Oid<'_>| SHORT.iter().find(|(o, _)| o == oid).map(|(_, s)| *s);
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match short(attr.attr_type()) {
                Some(s) => out.push_str(s),
                None => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(v) => escape_value(v, &mut out),
                Err(_) => {
                    out.push('#');
                    for b in attr.attr_value().to_der_vec().unwrap_or_default() {
                        out.push_str(&format!("{b:02x}"));
                    }
                }
            }
        }
    }
    out
}

fn escape_value(v: &str, out: &mut String) {
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

//! Subject fields and subjectAltNames: validated when they enter, typed from then on.

use std::net::IpAddr;

use serde::Serialize;

use crate::error::{Error, Result};

/// The subject distinguished name of a certificate, by field. Several OUs are allowed
/// (`OU=Engineering, OU=Admins` is common in client certificates); other fields appear once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub common_name: String,
    pub organization: Option<String>,
    pub organizational_units: Vec<String>,
    pub locality: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    /// Legacy emailAddress attribute; the CA also writes it as an rfc822Name SAN.
    pub email: Option<String>,
}

/// One subjectAltName entry, by type. Types are never mixed: an IP address is only ever an
/// iPAddress SAN, never a dNSName (SECURITY.md, "PKI pitfalls").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Email(String),
    Uri(String),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(v) => write!(f, "DNS:{v}"),
            San::Ip(v) => write!(f, "IP:{v}"),
            San::Email(v) => write!(f, "email:{v}"),
            San::Uri(v) => write!(f, "URI:{v}"),
        }
    }
}

impl Subject {
    /// Checks every field: no control characters (a NUL in a CN is a classic way to fool
    /// string-matching verifiers), RFC 5280 upper bounds, a two-letter country.
    pub fn validate(&self) -> Result<()> {
        text("common name (CN)", &self.common_name, 64)?;
        if let Some(o) = &self.organization {
            text("organization (O)", o, 64)?;
        }
        for ou in &self.organizational_units {
            text("organizational unit (OU)", ou, 64)?;
        }
        if let Some(l) = &self.locality {
            text("locality (L)", l, 128)?;
        }
        if let Some(st) = &self.state {
            text("state (ST)", st, 128)?;
        }
        if let Some(c) = self
            .country
            .as_ref()
            .filter(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(Error::invalid(
                "country (C)",
                c,
                "must be a two-letter ISO 3166 code in capitals, like DE or US",
            ));
        }
        if let Some(e) = &self.email {
            email(e)?;
        }
        Ok(())
    }

    /// A one-line rendering in the order OpenSSL prints (`C=…, O=…, CN=…`).
    pub fn one_line(&self) -> String {
        let mut parts = Vec::new();
        let mut push = |k: &str, v: &str| parts.push(format!("{k}={v}"));
        if let Some(v) = &self.country {
            push("C", v);
        }
        if let Some(v) = &self.state {
            push("ST", v);
        }
        if let Some(v) = &self.locality {
            push("L", v);
        }
        if let Some(v) = &self.organization {
            push("O", v);
        }
        for v in &self.organizational_units {
            push("OU", v);
        }
        push("CN", &self.common_name);
        if let Some(v) = &self.email {
            push("emailAddress", v);
        }
        parts.join(", ")
    }
}

fn text(what: &'static str, v: &str, max: usize) -> Result<()> {
    if v.trim().is_empty() {
        return Err(Error::invalid(what, v, "must not be empty"));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(
            what,
            v,
            "contains a control character (NUL, newline, …); no verifier should ever see one",
        ));
    }
    if v.chars().count() > max {
        return Err(Error::invalid(
            what,
            v,
            format!("longer than {max} characters (RFC 5280 upper bound)"),
        ));
    }
    Ok(())
}

/// Validates a DNS name for a dNSName SAN: letters, digits and hyphens in labels of 1 to
/// 63 characters, an optional `*.` wildcard as the whole left-most label.
pub fn dns_name(name: &str) -> Result<String> {
    let bad = |reason: &str| Err(Error::invalid("DNS name", name, reason));
    if name.parse::<IpAddr>().is_ok() {
        return bad("is an IP address; pass it with --ip so it becomes an IP SAN");
    }
    if name.ends_with('.') {
        return bad("remove the trailing dot");
    }
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    let wildcard = name.strip_prefix("*.");
    let rest = wildcard.unwrap_or(name);
    // `*.com` would cover every name in a top-level domain; browsers refuse wildcards
    // over a public suffix. Two labels is the least a domain of one's own has (suffixes
    // like co.uk need the public suffix list, which this check does not carry).
    if wildcard.is_some() && rest.split('.').count() < 2 {
        return bad("a wildcard covers the names under a domain of yours, like *.example.com");
    }
    for label in rest.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return bad(
                "each label must be 1-63 letters, digits or hyphens, not starting or ending \
                 with a hyphen; a wildcard may only be the whole left-most label",
            );
        }
    }
    Ok(name.to_ascii_lowercase())
}

/// Validates an email address for an rfc822Name SAN (ASCII, one `@`, a valid domain).
pub fn email(addr: &str) -> Result<String> {
    let bad = |reason: &str| Err(Error::invalid("email address", addr, reason));
    let Some((local, domain)) = addr.split_once('@') else {
        return bad("needs exactly one @");
    };
    if local.is_empty()
        || domain.contains('@')
        || !local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b))
    {
        return bad("the part before @ must be printable ASCII without spaces or <>()[],;:\"");
    }
    if dns_name(domain).is_err() || domain.starts_with("*.") {
        return bad("the part after @ must be a host name");
    }
    Ok(addr.to_owned())
}

/// Validates a URI for a uniformResourceIdentifier SAN (e.g. `spiffe://corp/ops/alice`).
pub fn uri(value: &str) -> Result<String> {
    let scheme_ok = value.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    if !scheme_ok {
        return Err(Error::invalid(
            "URI",
            value,
            "needs a scheme, like spiffe://trust-domain/path or urn:…",
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "URI",
            value,
            "must be printable ASCII without spaces (percent-encode anything else)",
        ));
    }
    Ok(value.to_owned())
}

/// A file-name-safe stem for a certificate's name (`*.example.com` → `wildcard.example.com`).
pub fn file_stem(name: &str) -> String {
    let name = name.replacen("*.", "wildcard.", 1);
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = stem.trim_start_matches('.').to_owned();
    if stem.is_empty() { "cert".into() } else { stem }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert_eq!(dns_name("Example.COM").unwrap(), "example.com");
        assert!(dns_name("*.example.com").is_ok());
        assert!(dns_name("localhost").is_ok());
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a-.com",
            "foo.*.com",
            "*",
            "a b",
            "x.com.",
            "127.0.0.1",
            "::1",
            "*.com",
            "*.",
        ] {
            assert!(dns_name(bad).is_err(), "{bad:?} accepted");
        }
        let e = dns_name("10.0.0.1").unwrap_err().to_string();
        assert!(e.contains("--ip"), "{e}");
    }

    #[test]
    fn emails_and_uris() {
        assert!(email("alice@example.com").is_ok());
        for bad in ["alice", "a@b@c", "@x.com", "a b@x.com", "a@-x.com"] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
        assert!(uri("spiffe://corp/ops/alice").is_ok());
        assert!(uri("urn:uuid:1234").is_ok());
        for bad in ["noscheme", "a b://x", "https://x y"] {
            assert!(uri(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn control_characters_are_refused_in_every_field() {
        let mut s = Subject {
            common_name: "admin\0.attacker".into(),
            ..Default::default()
        };
        assert!(s.validate().is_err());
        s.common_name = "ok".into();
        s.organizational_units = vec!["a\nb".into()];
        assert!(s.validate().is_err());
        s.organizational_units.clear();
        s.country = Some("Germany".into());
        assert!(s.validate().is_err());
        s.country = Some("DE".into());
        assert!(s.validate().is_ok());
    }

    #[test]
    fn stems() {
        assert_eq!(file_stem("*.example.com"), "wildcard.example.com");
        assert_eq!(file_stem("Alice Smith/../x"), "Alice_Smith_.._x");
        assert_eq!(file_stem("../.."), "_..");
    }
}

//! The identity headers the upstream receives, and the stripping of every inbound copy
//! (SECURITY.md rule 3).
//!
//! Values are computed once per connection — base64 of the certificate, subject fields,
//! roles — and cloned into each request (a `HeaderValue` clone is a reference-count bump).

use http::header::{HeaderMap, HeaderName, HeaderValue};
use portcullis_policy::{Identity, Policy, RoleSet};
use rustls::pki_types::CertificateDer;

use crate::config::HeaderNames;

/// Header names resolved at load.
#[derive(Debug, Clone)]
pub struct Names {
    cert: HeaderName,
    chain: HeaderName,
    /// Lower-case prefix of the convenience headers.
    prefix: String,
    extra_strip: Vec<HeaderName>,
    pub verify: HeaderName,
    subject: HeaderName,
    cn: HeaderName,
    email: HeaderName,
    o: HeaderName,
    ou: HeaderName,
    serial: HeaderName,
    fingerprint: HeaderName,
    issuer: HeaderName,
    roles: HeaderName,
    not_after: HeaderName,
}

const FORWARDED: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

fn name(s: &str) -> HeaderName {
    // Validated in config::Config::from_str; a fallback keeps this infallible.
    HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
        .unwrap_or(HeaderName::from_static("x-portcullis-invalid"))
}

impl Names {
    pub fn new(cfg: &HeaderNames) -> Names {
        let p = cfg.prefix.to_ascii_lowercase();
        let n = |suffix: &str| name(&format!("{p}{suffix}"));
        Names {
            cert: name(&cfg.cert),
            chain: name(&cfg.chain),
            extra_strip: cfg.strip.iter().map(|s| name(s)).collect(),
            verify: n("verify"),
            subject: n("subject"),
            cn: n("cn"),
            email: n("email"),
            o: n("o"),
            ou: n("ou"),
            serial: n("serial"),
            fingerprint: n("fingerprint"),
            issuer: n("issuer"),
            roles: n("roles"),
            not_after: n("not-after"),
            prefix: p,
        }
    }

    /// Removes every header the gate sets, in any letter case (header names are
    /// case-insensitive and `HeaderMap` stores them lower-cased), all copies of each.
    pub fn strip(&self, headers: &mut HeaderMap) {
        // One pass over the request's few header names first: an ordinary request carries
        // none of ours and then costs no hashing at all.
        if !headers.keys().any(|k| self.is_ours(k.as_str())) {
            return;
        }
        headers.remove(&self.cert);
        headers.remove(&self.chain);
        for h in &self.extra_strip {
            headers.remove(h);
        }
        for h in FORWARDED {
            headers.remove(h);
        }
        // The whole prefix family, including names we do not set today. Only a request
        // that carries such a header pays for the scan's allocation.
        if headers.keys().any(|k| k.as_str().starts_with(&self.prefix)) {
            let doomed: Vec<HeaderName> = headers
                .keys()
                .filter(|k| k.as_str().starts_with(&self.prefix))
                .cloned()
                .collect();
            for k in doomed {
                headers.remove(k);
            }
        }
    }

    /// Whether a (lower-case) header name is one the gate sets or strips.
    fn is_ours(&self, name: &str) -> bool {
        name == self.cert.as_str()
            || name == self.chain.as_str()
            || name.starts_with(&self.prefix)
            || FORWARDED.contains(&name)
            || self.extra_strip.iter().any(|h| h.as_str() == name)
    }

    /// The headers for a verified client, computed once per connection.
    pub fn for_identity(
        &self,
        id: &Identity,
        chain: &[CertificateDer<'_>],
        policy: &Policy,
        roles: RoleSet,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(12);
        out.push((self.verify.clone(), HeaderValue::from_static("SUCCESS")));
        if let Some(leaf) = chain.first() {
            out.push((self.cert.clone(), sf_binary(leaf)));
        }
        if chain.len() > 1 {
            let list: Vec<String> = chain[1..]
                .iter()
                .map(|c| format!(":{}:", data_encoding::BASE64.encode(c)))
                .collect();
            out.push((self.chain.clone(), text(&list.join(", "))));
        }
        out.push((self.subject.clone(), text(&id.subject)));
        if let Some(cn) = &id.common_name {
            out.push((self.cn.clone(), text(cn)));
        }
        if let Some(e) = id.all_emails().next() {
            out.push((self.email.clone(), text(e)));
        }
        if !id.organizations.is_empty() {
            out.push((self.o.clone(), text(&id.organizations.join(","))));
        }
        if !id.organizational_units.is_empty() {
            out.push((self.ou.clone(), text(&id.organizational_units.join(","))));
        }
        out.push((self.serial.clone(), text(&id.serial)));
        out.push((self.fingerprint.clone(), text(&id.fingerprint_sha256)));
        out.push((self.issuer.clone(), text(&id.issuer)));
        let role_list: Vec<&str> = policy.role_list(roles).collect();
        out.push((self.roles.clone(), text(&role_list.join(","))));
        out.push((self.not_after.clone(), text(&id.not_after.to_string())));
        out
    }
}

/// RFC 8941 byte sequence: `:base64:`.
fn sf_binary(der: &[u8]) -> HeaderValue {
    text(&format!(":{}:", data_encoding::BASE64.encode(der)))
}

/// A header value from text: bytes outside printable ASCII, and `%`, are
/// percent-encoded so that UTF-8 names survive and nothing can break the header syntax.
pub fn text(s: &str) -> HeaderValue {
    let needs = s.bytes().any(|b| !(0x20..0x7f).contains(&b) || b == b'%');
    let owned;
    let s = if needs {
        let mut o = String::with_capacity(s.len() + 8);
        for b in s.bytes() {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                o.push(char::from(b));
            } else {
                o.push_str(&format!("%{b:02X}"));
            }
        }
        owned = o;
        owned.as_str()
    } else {
        s
    };
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_case_and_every_copy_and_the_whole_family() {
        let names = Names::new(&HeaderNames {
            strip: vec!["X-Remote-User".into()],
            ..HeaderNames::default()
        });
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("Client-Cert", ":AAAA:"),
            ("client-cert", ":BBBB:"),
            ("CLIENT-CERT-CHAIN", "x"),
            ("X-Client-Verify", "SUCCESS"),
            ("x-client-roles", "admin"),
            ("X-CLIENT-Made-Up", "x"),
            ("X-Remote-User", "admin"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("Forwarded", "for=1.2.3.4"),
            ("Accept", "*/*"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        names.strip(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn text_values_are_safe() {
        assert_eq!(text("Zoë 100%"), "Zo%C3%AB 100%25");
        assert_eq!(text("plain"), "plain");
    }
}

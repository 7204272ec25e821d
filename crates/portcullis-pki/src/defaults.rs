//! `DIR/ca.toml`: what `issue` and `sign` use when a flag is not given, so an
//! organisation's fields, lifetimes and URLs are written once.
//!
//! ```toml
//! [defaults]
//! o = "Acme"                    # subject fields: o, ou (a list), l, st, c
//! ou = ["Engineering"]
//! c = "DE"
//! days = 90                     # leaf validity
//! key_type = "p256"
//! crl_url = "http://pki.acme.example/crl.der"           # CRL distribution point
//! ca_issuers_url = "http://pki.acme.example/issuing.crt" # AIA caIssuers
//! ```
//!
//! Flags win over the file; a CSR's own subject fields win over the defaults, which only
//! fill what it leaves out.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::keys::KeyType;
use crate::names::Subject;

/// The `[defaults]` of a CA directory; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub organization: Option<String>,
    pub organizational_units: Vec<String>,
    pub locality: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub days: Option<u32>,
    pub key_type: Option<KeyType>,
    /// Written as the cRLDistributionPoints of every leaf.
    pub crl_url: Option<String>,
    /// Written as the authorityInfoAccess caIssuers of every leaf.
    pub ca_issuers_url: Option<String>,
    /// The file they came from, for messages; `None` when there is none.
    pub source: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Section,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    o: Option<Spanned<String>>,
    #[serde(default)]
    ou: Vec<Spanned<String>>,
    l: Option<Spanned<String>>,
    st: Option<Spanned<String>>,
    c: Option<Spanned<String>>,
    days: Option<Spanned<u32>>,
    key_type: Option<Spanned<String>>,
    crl_url: Option<Spanned<String>>,
    ca_issuers_url: Option<Spanned<String>>,
}

impl Defaults {
    /// Reads `path`; a missing file means no defaults.
    pub fn load(path: &Path) -> Result<Defaults> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Defaults::default()),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Defaults::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Defaults> {
        let at = |span: Option<std::ops::Range<usize>>, key: &str, reason: String| {
            let line = span.map_or(0, |s| {
                text.get(..s.start).unwrap_or(text).matches('\n').count() + 1
            });
            Error::Defaults {
                path: path.to_owned(),
                line,
                key: key.to_owned(),
                reason,
            }
        };
        let file: File = toml::from_str(text)
            .map_err(|e| at(e.span(), "defaults", e.message().trim().to_owned()))?;
        // Values are checked here, at their line, not at the first `issue` that uses them.
        let s = file.defaults;
        let key_type = s
            .key_type
            .map(|k| {
                k.get_ref()
                    .parse::<KeyType>()
                    .map_err(|e| at(Some(k.span()), "defaults.key_type", e))
            })
            .transpose()?;
        if let Some(days) = s.days.as_ref().filter(|d| *d.get_ref() == 0) {
            return Err(at(
                Some(days.span()),
                "defaults.days",
                "must be at least one day".into(),
            ));
        }
        for (key, url) in [
            ("crl_url", &s.crl_url),
            ("ca_issuers_url", &s.ca_issuers_url),
        ] {
            if let Some(url) = url {
                check_url(url.get_ref())
                    .map_err(|reason| at(Some(url.span()), &format!("defaults.{key}"), reason))?;
            }
        }
        // Each subject field is checked as a subject would check it, at its own line.
        let fields = [("o", &s.o), ("l", &s.l), ("st", &s.st), ("c", &s.c)];
        let ous = s.ou.iter().map(|v| ("ou", Some(v)));
        for (key, value) in fields.iter().map(|(k, v)| (*k, v.as_ref())).chain(ous) {
            let Some(value) = value else { continue };
            let mut probe = Subject {
                common_name: "x".into(),
                ..Default::default()
            };
            let v = Some(value.get_ref().clone());
            match key {
                "o" => probe.organization = v,
                "l" => probe.locality = v,
                "st" => probe.state = v,
                "c" => probe.country = v,
                _ => probe.organizational_units = v.into_iter().collect(),
            }
            probe.validate().map_err(|e| {
                at(
                    Some(value.span()),
                    &format!("defaults.{key}"),
                    e.to_string(),
                )
            })?;
        }
        let text_of = |v: Option<Spanned<String>>| v.map(Spanned::into_inner);
        let d = Defaults {
            organization: text_of(s.o),
            organizational_units: s.ou.into_iter().map(Spanned::into_inner).collect(),
            locality: text_of(s.l),
            state: text_of(s.st),
            country: text_of(s.c),
            days: s.days.map(Spanned::into_inner),
            key_type,
            crl_url: text_of(s.crl_url),
            ca_issuers_url: text_of(s.ca_issuers_url),
            source: Some(path.to_owned()),
        };
        Ok(d)
    }

    /// Fills the subject fields `subject` leaves empty.
    pub fn fill(&self, subject: &mut Subject) {
        let or = |mine: &mut Option<String>, default: &Option<String>| {
            if mine.is_none() {
                mine.clone_from(default);
            }
        };
        or(&mut subject.organization, &self.organization);
        or(&mut subject.locality, &self.locality);
        or(&mut subject.state, &self.state);
        or(&mut subject.country, &self.country);
        if subject.organizational_units.is_empty() {
            subject
                .organizational_units
                .clone_from(&self.organizational_units);
        }
    }

    /// One line per default that is set, for `pki list`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push(format!("{k} = {v}"));
            }
        };
        push("o", self.organization.clone());
        push(
            "ou",
            (!self.organizational_units.is_empty()).then(|| self.organizational_units.join(", ")),
        );
        push("l", self.locality.clone());
        push("st", self.state.clone());
        push("c", self.country.clone());
        push("days", self.days.map(|d| d.to_string()));
        push("key_type", self.key_type.map(|k| k.name().to_owned()));
        push("crl_url", self.crl_url.clone());
        push("ca_issuers_url", self.ca_issuers_url.clone());
        out
    }
}

/// Relying parties fetch CRLs and issuer certificates over plain HTTP: fetching them over
/// HTTPS would need the very validation they serve (RFC 5280 §4.2.1.13 and §4.2.2.1 name
/// HTTP and LDAP; the CA/Browser Forum requires HTTP).
fn check_url(url: &str) -> std::result::Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} must be an http:// URL: clients fetch it without TLS, because checking TLS would need what it serves"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || url
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control() || !c.is_ascii())
    {
        return Err(format!("{url:?} is not a URL with a host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line_and_key() {
        let p = Path::new("pki/ca.toml");
        let e = Defaults::parse("[defaults]\no = \"Acme\"\nkey_type = \"dsa\"\n", p).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("pki/ca.toml:3: defaults.key_type"),
            "{e}"
        );
        let e = Defaults::parse("[defaults]\ncrl_url = \"https://x.test/crl\"\n", p).unwrap_err();
        assert!(
            e.to_string().starts_with("pki/ca.toml:2: defaults.crl_url"),
            "{e}"
        );
        let e = Defaults::parse("[defaults]\n\norgan = \"x\"\n", p).unwrap_err();
        assert!(e.to_string().starts_with("pki/ca.toml:3:"), "{e}");
        let e = Defaults::parse("[defaults]\nc = \"Germany\"\n", p).unwrap_err();
        assert!(
            e.to_string().starts_with("pki/ca.toml:2: defaults.c"),
            "{e}"
        );
        assert!(e.to_string().contains("two-letter"), "{e}");
    }

    #[test]
    fn defaults_fill_only_what_is_empty() {
        let d = Defaults::parse(
            "[defaults]\no = \"Acme\"\nou = [\"Eng\"]\nc = \"DE\"\n",
            Path::new("ca.toml"),
        )
        .unwrap();
        let mut s = Subject {
            common_name: "a".into(),
            organization: Some("Other".into()),
            ..Default::default()
        };
        d.fill(&mut s);
        assert_eq!(s.organization.as_deref(), Some("Other"));
        assert_eq!(s.organizational_units, ["Eng"]);
        assert_eq!(s.country.as_deref(), Some("DE"));
    }
}

//! A verified client certificate, parsed once: the typed identity, and the values of the
//! headers that carry it upstream. Connections that resume with the same chain share one.

use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderValue};
use portcullis_policy::Identity;
use rustls::pki_types::CertificateDer;

use crate::names::{self, Names};
use crate::outcome::Rejection;

/// A verified client: its identity, and the values of the headers that carry it upstream,
/// computed once.
#[derive(Debug)]
pub struct Verified {
    pub identity: Identity,
    /// `CN=alice`-style label for pages and logs.
    pub label: String,
    /// The chain the client presented, leaf first.
    pub chain: Arc<[CertificateDer<'static>]>,
    /// The identity headers' values, built at the first request that forwards them: a
    /// site that serves the built-in page never needs them.
    values: OnceLock<Values>,
}

#[derive(Debug)]
struct Values {
    cert: HeaderValue,
    chain: Option<HeaderValue>,
    subject: HeaderValue,
    issuer: HeaderValue,
    cn: Option<HeaderValue>,
    email: Option<HeaderValue>,
    o: Option<HeaderValue>,
    ou: Option<HeaderValue>,
    serial: HeaderValue,
    fingerprint: HeaderValue,
    not_after: HeaderValue,
}

impl Verified {
    /// The client of a chain (leaf first) that was verified: the leaf's typed identity.
    /// A certificate whose fields the gate refuses to interpret (a NUL in the CN, …) is
    /// no identity.
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Result<Verified, Rejection> {
        let leaf = chain.first().ok_or(Rejection::BadCertificate)?;
        let identity = Identity::from_der(leaf).map_err(|_| Rejection::InvalidSubject)?;
        let label = match &identity.common_name {
            Some(cn) => format!("CN={cn}"),
            None => identity.subject.clone(),
        };
        Ok(Verified {
            identity,
            label,
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            values: OnceLock::new(),
        })
    }

    fn values(&self) -> &Values {
        self.values.get_or_init(|| {
            let id = &self.identity;
            let list = |v: &[String]| {
                (!v.is_empty()).then(|| names::string_list(v.iter().map(String::as_str)))
            };
            let chain = &self.chain;
            Values {
                cert: names::binary(chain.first().map(|c| c.as_ref())),
                chain: (chain.len() > 1)
                    .then(|| names::binary(chain[1..].iter().map(|c| c.as_ref()))),
                subject: names::text(&id.subject),
                issuer: names::text(&id.issuer),
                cn: id.common_name.as_deref().map(names::text),
                email: id.all_emails().next().map(names::text),
                o: list(&id.organizations),
                ou: list(&id.organizational_units),
                serial: names::text(&id.serial),
                fingerprint: names::text(&id.fingerprint_sha256),
                not_after: names::text(&id.not_after.to_string()),
            }
        })
    }

    /// Adds the identity headers under a site's header names. `roles` is the binding's
    /// `X-Client-Roles` value.
    pub(crate) fn add_headers(&self, n: &Names, roles: &HeaderValue, headers: &mut HeaderMap) {
        let v = self.values();
        let optional = [
            (&n.chain, &v.chain),
            (&n.cn, &v.cn),
            (&n.email, &v.email),
            (&n.o, &v.o),
            (&n.ou, &v.ou),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in [
            (&n.cert, &v.cert),
            (&n.subject, &v.subject),
            (&n.issuer, &v.issuer),
            (&n.serial, &v.serial),
            (&n.fingerprint, &v.fingerprint),
            (&n.not_after, &v.not_after),
            (&n.roles, roles),
        ] {
            headers.append(name.clone(), value.clone());
        }
    }
}

//! Judging a collected chain against each trust store: the system's
//! (rustls-native-certs), Mozilla's (webpki-roots, the list Node.js bundles) and the
//! user's `--ca`. This runs after the connection closed, offline.

use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::certs;
use crate::observe::{CertDetails, NameCheck, TrustVerdict};

/// The trust stores to judge against.
#[derive(Debug, Default)]
pub struct Stores {
    pub system: Vec<TrustAnchor<'static>>,
    pub mozilla: Vec<TrustAnchor<'static>>,
    /// `--ca`: when present, this is the store the user's client would use.
    pub pinned: Option<Vec<TrustAnchor<'static>>>,
}

impl Stores {
    /// Loads the system store (unreadable entries are skipped) and Mozilla's list.
    pub fn load(pinned_ders: Option<&[Vec<u8>]>) -> Stores {
        let native = rustls_native_certs::load_native_certs();
        let system = native
            .certs
            .iter()
            .filter_map(|c| {
                webpki::anchor_from_trusted_cert(c)
                    .ok()
                    .map(|a| a.to_owned())
            })
            .collect();
        Stores {
            system,
            mozilla: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            pinned: pinned_ders.map(anchors_from_ders),
        }
    }
}

/// Trust anchors from certificates (unusable ones skipped).
pub fn anchors_from_ders(ders: &[Vec<u8>]) -> Vec<TrustAnchor<'static>> {
    ders.iter()
        .filter_map(|d| {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(d.as_slice()))
                .ok()
                .map(|a| a.to_owned())
        })
        .collect()
}

/// A time at which every presented certificate is within its validity, so the trust
/// verdict says only whether the chain leads to the store (dates are judged apart).
fn judging_time(details: &[CertDetails]) -> UnixTime {
    let latest_start = details.iter().map(|d| d.not_before).max().unwrap_or(0);
    let earliest_end = details.iter().map(|d| d.not_after).min().unwrap_or(0);
    let t = if latest_start < earliest_end {
        latest_start + 1
    } else {
        details.first().map_or(0, |d| d.not_before + 1)
    };
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.max(0) as u64))
}

/// Judges `chain` (leaf first, as presented) against every store.
pub fn judge(chain: &[Vec<u8>], details: &[CertDetails], stores: &Stores) -> Vec<TrustVerdict> {
    let mut out = vec![
        verdict("system", chain, details, &stores.system),
        verdict("mozilla", chain, details, &stores.mozilla),
    ];
    if let Some(p) = &stores.pinned {
        out.push(verdict("pinned", chain, details, p));
    }
    out
}

fn verdict(
    store: &str,
    chain: &[Vec<u8>],
    details: &[CertDetails],
    anchors: &[TrustAnchor<'_>],
) -> TrustVerdict {
    let issuer_in_store = |der: &[u8]| {
        certs::raw_names(der).is_some_and(|(issuer, _)| {
            let contents = certs::seq_contents(&issuer);
            anchors
                .iter()
                .any(|a| a.subject.as_ref() == contents || a.subject.as_ref() == issuer.as_slice())
        })
    };
    let has_leaf_issuer = chain.first().is_some_and(|c| issuer_in_store(c));
    let has_top_issuer = chain.last().is_some_and(|c| issuer_in_store(c));
    let mut v = TrustVerdict {
        store: store.into(),
        trusted: false,
        anchor: None,
        error: None,
        has_leaf_issuer,
        has_top_issuer,
        anchors: anchors.len(),
        anchor_names: if store == "pinned" {
            anchors
                .iter()
                .map(|a| certs::name_string(a.subject.as_ref()))
                .collect()
        } else {
            Vec::new()
        },
    };
    let Some(leaf) = chain.first() else {
        v.error = Some("no certificate".into());
        return v;
    };
    let leaf = CertificateDer::from(leaf.as_slice());
    let ee = match EndEntityCert::try_from(&leaf) {
        Ok(ee) => ee,
        Err(e) => {
            v.error = Some(format!("{e:?}"));
            return v;
        }
    };
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    match ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        anchors,
        &intermediates,
        judging_time(details),
        KeyUsage::server_auth(),
        None,
        None,
    ) {
        Ok(path) => {
            v.trusted = true;
            v.anchor = Some(certs::name_string(path.anchor().subject.as_ref()));
        }
        Err(e) => v.error = Some(webpki_error_name(&e)),
    }
    v
}

/// webpki's error variant name, without the context payload.
fn webpki_error_name(e: &webpki::Error) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{']).next().unwrap_or(&s).to_owned()
}

/// Checks the leaf against the name the client verifies (DNS or IP SAN).
pub fn check_name(leaf: &[u8], name: &str) -> NameCheck {
    let cert = CertificateDer::from(leaf);
    let result = match (EndEntityCert::try_from(&cert), ServerName::try_from(name)) {
        (Ok(ee), Ok(sn)) => ee
            .verify_is_valid_for_subject_name(&sn)
            .map_err(|e| webpki_error_name(&e)),
        (Err(e), _) => Err(format!("{e:?}")),
        (_, Err(e)) => Err(format!("not a valid name: {e}")),
    };
    NameCheck {
        name: name.into(),
        valid: result.is_ok(),
        error: result.err(),
    }
}

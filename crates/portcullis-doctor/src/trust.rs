//! Judging a collected chain against each trust store: the system's
//! (rustls-native-certs), Mozilla's (webpki-roots, the list Node.js bundles), the
//! user's `--ca`, and with `--as` / `--compare` the stores particular clients use on this
//! machine (gathered by [`crate::clients`]). This runs after the connection closed,
//! offline.

use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::certs;
use crate::clients::ClientStore;
use crate::observe::{CertDetails, NameCheck, TrustVerdict};

/// The trust stores to judge against.
#[derive(Debug, Default)]
pub struct Stores {
    pub system: Vec<TrustAnchor<'static>>,
    pub mozilla: Vec<TrustAnchor<'static>>,
    /// `--ca`: when present, this is the store the user's client would use.
    pub pinned: Option<Vec<TrustAnchor<'static>>>,
    /// `--as` (one client) or `--compare` (every client): the stores those clients use.
    pub clients: Vec<ClientStore>,
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
            clients: Vec::new(),
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
    for c in &stores.clients {
        let mut v = verdict(&c.store, chain, details, &c.anchors);
        v.client = Some(c.client.to_owned());
        v.primary = c.primary;
        v.sources = c.sources.clone();
        out.push(v);
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
        dates_aside: false,
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
        client: None,
        primary: false,
        sources: Vec::new(),
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
        // webpki judges every certificate at one instant. When none lies within every
        // certificate's validity (an old leaf under a freshly issued intermediate), it can
        // only answer with a date; whether the chain leads to this store is then decided
        // link by link, dates aside. The dates are their own findings (`expired`,
        // `not-yet-valid`) and must never read as a trust problem.
        Err(e) if is_date_error(&e) => match leads_to_anchor(chain, details, anchors) {
            Some(anchor) => {
                v.trusted = true;
                v.dates_aside = true;
                v.anchor = Some(anchor);
            }
            None => v.error = Some("UnknownIssuer".into()),
        },
        Err(e) => v.error = Some(webpki_error_name(&e)),
    }
    v
}

fn is_date_error(e: &webpki::Error) -> bool {
    matches!(
        e,
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }
    )
}

/// Dates aside, does the presented chain lead to one of `anchors`? Each certificate's
/// issuer must be, by name, an anchor or another presented CA certificate, and its
/// signature must verify with that issuer's key. Only for judging a chain whose
/// certificates share no instant of validity; the doctor never trusts a connection on
/// the strength of it (application data goes only over connections rustls verified).
fn leads_to_anchor(
    chain: &[Vec<u8>],
    details: &[CertDetails],
    anchors: &[TrustAnchor<'_>],
) -> Option<String> {
    let parts: Vec<Parts<'_>> = chain.iter().map(|c| Parts::of(c)).collect::<Option<_>>()?;
    let mut used = vec![false; parts.len()];
    let mut current = 0;
    used[current] = true;
    for _ in 0..parts.len() {
        let cert = &parts[current];
        if let Some(a) = anchors.iter().find(|a| {
            a.subject.as_ref() == cert.issuer
                && cert.signed_with(a.subject_public_key_info.as_ref())
        }) {
            return Some(certs::name_string(a.subject.as_ref()));
        }
        current = (1..parts.len()).find(|&i| {
            !used[i]
                && details.get(i).is_some_and(|d| d.is_ca)
                && parts[i].subject == cert.issuer
                && cert.signed_with(parts[i].spki)
        })?;
        used[current] = true;
    }
    None
}

/// The pieces of a certificate a signature check needs, straight from its DER.
struct Parts<'a> {
    /// The signed bytes: tbsCertificate, tag and length included.
    tbs: &'a [u8],
    /// signatureAlgorithm, without its SEQUENCE header (as webpki's algorithm ids are).
    signature_alg: &'a [u8],
    /// The signature's bits.
    signature: &'a [u8],
    /// Names and key, without their SEQUENCE headers (as in webpki's trust anchors).
    issuer: &'a [u8],
    subject: &'a [u8],
    spki: &'a [u8],
}

impl<'a> Parts<'a> {
    fn of(der: &'a [u8]) -> Option<Parts<'a>> {
        let (cert, _) = tlv(der, 0x30)?;
        let (tbs_contents, rest) = tlv(cert, 0x30)?;
        let tbs = &cert[..cert.len() - rest.len()];
        let (signature_alg, rest) = tlv(rest, 0x30)?;
        let (bits, _) = tlv(rest, 0x03)?;
        let signature = bits.strip_prefix(&[0])?;
        // tbsCertificate: [0] version, serial, signature, issuer, validity, subject, spki.
        let mut t = tbs_contents;
        if t.first() == Some(&0xa0) {
            t = tlv(t, 0xa0)?.1;
        }
        let (_, t) = tlv(t, 0x02)?;
        let (_, t) = tlv(t, 0x30)?;
        let (issuer, t) = tlv(t, 0x30)?;
        let (_, t) = tlv(t, 0x30)?;
        let (subject, t) = tlv(t, 0x30)?;
        let (spki, _) = tlv(t, 0x30)?;
        Some(Parts {
            tbs,
            signature_alg,
            signature,
            issuer,
            subject,
            spki,
        })
    }

    /// Whether this certificate's signature verifies with `spki` (without its header).
    fn signed_with(&self, spki: &[u8]) -> bool {
        let Some((key_alg, rest)) = tlv(spki, 0x30) else {
            return false;
        };
        let Some(key) = tlv(rest, 0x03).and_then(|(bits, _)| bits.strip_prefix(&[0])) else {
            return false;
        };
        webpki::ALL_VERIFICATION_ALGS.iter().any(|alg| {
            alg.public_key_alg_id().as_ref() == key_alg
                && alg.signature_alg_id().as_ref() == self.signature_alg
                && alg.verify_signature(key, self.tbs, self.signature).is_ok()
        })
    }
}

/// One DER element with tag `tag` at the start of `input`: its contents and what follows.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((input.get(header..end)?, input.get(end..)?))
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

//! The client-certificate check of a resumed session, made cheap without being weakened.
//!
//! rustls does not verify the client's chain again when a session resumes: the ticket
//! brings it back. The gate must, because the certificate may have been revoked, expired,
//! or lost its CA since the ticket was issued. Repeating webpki's path validation costs
//! two signature checks per resumption, most of what a resumption costs. But for one
//! loaded configuration (a fixed CA set and fixed CRLs) the verdict on a chain can only
//! change with the clock: at the certificates' notBefore/notAfter, and at a CRL's
//! nextUpdate when expired CRLs are refused. So a chain the verifier accepted is
//! remembered with the window in which that verdict holds; inside the window a resumption
//! is checked by lookup, outside it (or for a chain not remembered) the verifier runs
//! again and decides.
//!
//! What is remembered belongs to one [`super::SiteTls`]: every reload builds new ones, so
//! a new CA set or a new CRL starts from nothing and nothing remembered can outlive the
//! files it was checked against.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use x509_parser::prelude::*;

use crate::outcome::Rejection;
use crate::verified::Verified;

/// Chains one site remembers at most. An entry holds the chain and the parsed client,
/// about 3 KB for a P-256 leaf and intermediate (shared with the connections open with
/// it): some 12 MB for 4,096 such clients, about 50 MB at worst (chains of
/// [`MAX_CHAIN_BYTES`], and only from holders of valid certificates). More distinct
/// certificates than that only means some are parsed, or verified, in full again.
const CAPACITY: usize = 4_096;

/// Longer chains are verified and parsed every time, never remembered: a client with one
/// valid certificate could otherwise pad its chain with certificates the verifier
/// ignores, up to rustls's 64 KB message, and fill the site's memory with them. Two P-256
/// certificates take about 1.2 KB, two RSA-4096 ones about 3.5 KB.
const MAX_CHAIN_BYTES: usize = 4 * 1024;

/// A site's verifier, with the chains it accepted (see the module documentation).
pub struct Recheck {
    verifier: Arc<dyn ClientCertVerifier>,
    /// The earliest moment (Unix time) at which a verdict may change for a reason outside
    /// the chain the client presented, after which no remembered verdict is used:
    /// - with expired CRLs refused, the earliest nextUpdate of the site's CRLs (the
    ///   verifier may then refuse a chain it accepted);
    /// - the earliest notAfter of the intermediates listed in `client_ca`, which complete
    ///   the paths of clients that send their certificate alone.
    deadline: Option<u64>,
    /// Hashes chains for the maps below: std's SipHash, with a key of its own.
    hasher: RandomState,
    accepted: Mutex<Generations>,
}

impl std::fmt::Debug for Recheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recheck")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// A keyed hash of the chain as presented. A chain found under its key is compared with
/// the one remembered before it is used, so two chains with one key only make a miss.
/// (A SHA-256 of the chain, the key before, cost every full handshake and resumption
/// some 27,000 instructions.)
type Key = u64;

/// A chain the verifier accepted: when the verdict holds, and the client it makes (its
/// identity parsed once, shared by every connection that resumes with it).
#[derive(Debug, Clone)]
struct Accepted {
    window: Window,
    verified: Arc<Verified>,
}

/// When a verdict holds: from the latest notBefore to the earliest notAfter of the chain's
/// certificates (Unix time, both inclusive, as webpki compares them).
#[derive(Debug, Clone, Copy)]
struct Window {
    from: u64,
    until: u64,
}

/// Two generations of remembered chains. New entries go into `young`; when it holds
/// `half` entries, `old` is dropped and `young` takes its place. A chain found in `old`
/// moves back to `young`, so chains in use stay and at most `2 × half` are kept.
#[derive(Debug)]
struct Generations {
    half: usize,
    young: HashMap<Key, Accepted>,
    old: HashMap<Key, Accepted>,
}

impl Recheck {
    /// `crls` are the site's CRLs; `enforce_crl_expiry` whether the verifier refuses
    /// chains once one of them is past its nextUpdate; `intermediates` those listed in
    /// `client_ca`.
    pub(super) fn new(
        verifier: Arc<dyn ClientCertVerifier>,
        crls: &[CertificateRevocationListDer<'_>],
        enforce_crl_expiry: bool,
        intermediates: &[CertificateDer<'_>],
    ) -> Recheck {
        Recheck::with_capacity(verifier, crls, enforce_crl_expiry, intermediates, CAPACITY)
    }

    fn with_capacity(
        verifier: Arc<dyn ClientCertVerifier>,
        crls: &[CertificateRevocationListDer<'_>],
        enforce_crl_expiry: bool,
        intermediates: &[CertificateDer<'_>],
        capacity: usize,
    ) -> Recheck {
        let secs = |t: ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
        // Whatever cannot be read counts as already past: the verifier refuses it too.
        let crl_updates =
            crls.iter()
                .filter(|_| enforce_crl_expiry)
                .map(|der| match parse_x509_crl(der) {
                    Ok((_, crl)) => crl.next_update().map_or(u64::MAX, secs),
                    Err(_) => 0,
                });
        let intermediate_ends = intermediates
            .iter()
            .map(|der| match parse_x509_certificate(der) {
                Ok((_, cert)) => secs(cert.validity().not_after),
                Err(_) => 0,
            });
        let half = (capacity / 2).max(1);
        Recheck {
            verifier,
            deadline: crl_updates.chain(intermediate_ends).min(),
            hasher: RandomState::new(),
            accepted: Mutex::new(Generations {
                half,
                young: HashMap::with_capacity(half.min(1024)),
                old: HashMap::new(),
            }),
        }
    }

    /// The client of a chain (leaf first) this site accepts at `now`: what its verifier
    /// would answer, by lookup when it accepted the same chain before and nothing that
    /// decides the verdict has changed since.
    pub fn check(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Arc<Verified>, Rejection> {
        let key = self.key(chain);
        let secs = now.as_secs();
        if self.deadline.is_none_or(|d| secs < d) {
            let found = self.generations().get(key, chain);
            if let Some(a) = found.filter(|a| a.window.from <= secs && secs <= a.window.until) {
                return Ok(a.verified);
            }
        }
        super::verify_chain(self.verifier.as_ref(), chain, now)?;
        self.remember(key, chain)
    }

    /// The client of a chain that this site's verifier accepted in the handshake just
    /// made: the one remembered for the same chain, else a new one, remembered from now
    /// on. Nothing here decides: the handshake verified the chain; what is shared is the
    /// client parsed from it (identity, fingerprint, names), which depends on the chain's
    /// bytes alone. A client reconnecting gets the same `Verified`, and its connections
    /// hold one copy.
    pub fn accepted(&self, chain: &[CertificateDer<'_>]) -> Result<Arc<Verified>, Rejection> {
        let key = self.key(chain);
        if let Some(a) = self.generations().get(key, chain) {
            return Ok(a.verified);
        }
        self.remember(key, chain)
    }

    /// The client of a chain just verified, remembered with the window of its verdict.
    fn remember(&self, key: Key, chain: &[CertificateDer<'_>]) -> Result<Arc<Verified>, Rejection> {
        let verified = Arc::new(Verified::from_chain(chain)?);
        let bytes: usize = chain.iter().map(|c| c.len()).sum();
        if bytes > MAX_CHAIN_BYTES {
            return Ok(verified);
        }
        if let Some(window) = Window::of(chain) {
            let accepted = Accepted {
                window,
                verified: verified.clone(),
            };
            self.generations().insert(key, accepted);
        }
        Ok(verified)
    }

    fn key(&self, chain: &[CertificateDer<'_>]) -> Key {
        let mut hasher = self.hasher.build_hasher();
        for der in chain {
            // Lengths first, so that no two different chains feed the hash the same bytes
            // (a certificate's own `Hash` is its bytes alone).
            hasher.write_usize(der.len());
            hasher.write(der);
        }
        hasher.finish()
    }

    fn generations(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Nothing panics while holding the lock; if something did, the maps are still
        // consistent (each operation is one insert or lookup).
        self.accepted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        let g = self.generations();
        g.young.len() + g.old.len()
    }
}

impl Generations {
    /// The entry of `chain`, found under `key`.
    fn get(&mut self, key: Key, chain: &[CertificateDer<'_>]) -> Option<Accepted> {
        let same = |a: &Accepted| *a.verified.chain == *chain;
        if let Some(a) = self.young.get(&key) {
            return same(a).then(|| a.clone());
        }
        let a = self.old.get(&key).filter(|a| same(a))?.clone();
        self.old.remove(&key);
        self.insert(key, a.clone());
        Some(a)
    }

    fn insert(&mut self, key: Key, accepted: Accepted) {
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, accepted);
    }
}

impl Window {
    /// The window of a chain, or `None` if a certificate cannot be read (then nothing is
    /// remembered and every check runs the verifier).
    fn of(chain: &[CertificateDer<'_>]) -> Option<Window> {
        let mut window = Window {
            from: 0,
            until: u64::MAX,
        };
        for der in chain {
            let (_, cert) = parse_x509_certificate(der).ok()?;
            let validity = cert.validity();
            window.from = window
                .from
                .max(u64::try_from(validity.not_before.timestamp()).unwrap_or(0));
            window.until = window
                .until
                .min(u64::try_from(validity.not_after.timestamp()).ok()?);
        }
        Some(window)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use ::time::OffsetDateTime;
    use portcullis_pki::ca::{self, Ca, InitOptions};
    use portcullis_pki::{Index, KeyType, Kind, Subject};
    use rustls::DistinguishedName;
    use rustls::server::WebPkiClientVerifier;
    use rustls::server::danger::ClientCertVerified;

    use super::*;

    /// The real verifier, counting how often it runs.
    #[derive(Debug)]
    struct Counting {
        inner: Arc<dyn ClientCertVerifier>,
        runs: AtomicUsize,
    }

    impl ClientCertVerifier for Counting {
        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            self.inner.root_hint_subjects()
        }
        fn verify_client_cert(
            &self,
            leaf: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            now: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            self.runs.fetch_add(1, Ordering::Relaxed);
            self.inner.verify_client_cert(leaf, intermediates, now)
        }
        super::super::verifier::inner_signatures!();
    }

    struct Pki {
        _dir: tempfile::TempDir,
        ca: Ca,
        now: OffsetDateTime,
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let opts = InitOptions {
                intermediate: true,
                ..Default::default()
            };
            ca::init(dir.path(), &opts).unwrap();
            let ca = Ca::open(dir.path(), None).unwrap();
            Pki {
                _dir: dir,
                ca,
                now: OffsetDateTime::now_utc(),
            }
        }

        /// A client chain (leaf, intermediate) valid from `from` to `until` hours from now.
        fn chain(&self, cn: &str, from: i64, until: i64) -> Vec<CertificateDer<'static>> {
            let key = KeyType::P256.generate().unwrap();
            let subject = Subject {
                common_name: cn.into(),
                ..Default::default()
            };
            let hours = |h| self.now + ::time::Duration::hours(h);
            let leaf = self
                .ca
                .sign_raw(
                    Kind::Client,
                    &subject,
                    &[],
                    &rcgen::PublicKeyData::subject_public_key_info(&key),
                    hours(from),
                    hours(until),
                )
                .unwrap();
            self.ca
                .chain_for(&leaf)
                .into_iter()
                .map(CertificateDer::from)
                .collect()
        }

        /// An empty CRL whose nextUpdate is `hours` from now.
        fn crl(&self, hours: i64) -> CertificateRevocationListDer<'static> {
            let der = self
                .ca
                .sign_crl_raw(
                    &Index::load(&self.ca.layout().index()).unwrap(),
                    1,
                    self.now,
                    self.now + ::time::Duration::hours(hours),
                )
                .unwrap();
            CertificateRevocationListDer::from(der)
        }

        /// The site's verifier as `tls::load` builds it (with `intermediates` from
        /// `client_ca`), counting its runs, and its recheck.
        fn recheck(
            &self,
            crls: &[CertificateRevocationListDer<'static>],
            enforce: bool,
            intermediates: &[CertificateDer<'static>],
            capacity: usize,
        ) -> (Recheck, Arc<Counting>) {
            let mut roots = rustls::RootCertStore::empty();
            let root = std::fs::read(self.ca.layout().root_cert()).unwrap();
            crate::tls::add_anchors(
                root,
                std::path::Path::new("root.crt"),
                &mut roots,
                Some(&mut Vec::new()),
            )
            .unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if !crls.is_empty() {
                builder = builder
                    .with_crls(crls.iter().cloned())
                    .only_check_end_entity_revocation();
                if enforce {
                    builder = builder.enforce_revocation_expiration();
                }
            }
            let mut inner = builder.build().unwrap();
            if !intermediates.is_empty() {
                inner = Arc::new(super::super::verifier::WithIntermediates::new(
                    inner,
                    intermediates.to_vec(),
                ));
            }
            let counting = Arc::new(Counting {
                inner,
                runs: AtomicUsize::new(0),
            });
            let recheck =
                Recheck::with_capacity(counting.clone(), crls, enforce, intermediates, capacity);
            (recheck, counting)
        }

        /// `hours` from now, as the verifier's clock.
        fn at(&self, hours: i64) -> UnixTime {
            let t = self.now + ::time::Duration::hours(hours);
            UnixTime::since_unix_epoch(Duration::from_secs(t.unix_timestamp() as u64))
        }
    }

    /// The verdict alone.
    fn check(r: &Recheck, chain: &[CertificateDer<'_>], at: UnixTime) -> Result<(), Rejection> {
        r.check(chain, at).map(drop)
    }

    /// Full handshakes verify in the handshake: `accepted` never runs the verifier, and
    /// shares one parsed client per chain, with later full handshakes and resumptions.
    #[test]
    fn full_handshakes_share_the_client_of_a_chain_without_deciding_anything() {
        let pki = Pki::new();
        let (recheck, verifier) = pki.recheck(&[], false, &[], CAPACITY);
        let alice = pki.chain("alice", -1, 24);
        let first = recheck.accepted(&alice).unwrap();
        let second = recheck.accepted(&alice).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.identity.common_name.as_deref(), Some("alice"));
        assert_eq!(verifier.runs.load(Ordering::Relaxed), 0);
        // A resumption inside the window finds it too.
        let resumed = recheck.check(&alice, pki.at(1)).unwrap();
        assert!(Arc::ptr_eq(&first, &resumed));
        assert_eq!(verifier.runs.load(Ordering::Relaxed), 0);
        // Another chain is another client.
        let bob = recheck.accepted(&pki.chain("bob", -1, 24)).unwrap();
        assert_eq!(bob.identity.common_name.as_deref(), Some("bob"));
        assert_eq!(recheck.remembered(), 2);
        // A chain padded past the limit is served but not remembered.
        let mut padded = pki.chain("carol", -1, 24);
        while padded.iter().map(|c| c.len()).sum::<usize>() <= MAX_CHAIN_BYTES {
            padded.push(padded[1].clone());
        }
        let carol = recheck.accepted(&padded).unwrap();
        assert_eq!(carol.identity.common_name.as_deref(), Some("carol"));
        assert_eq!(recheck.remembered(), 2);
    }

    /// Chains are found by a 64-bit hash: one found under another's key (a collision) is
    /// a miss, never the other's client, in either generation.
    #[test]
    fn a_chain_under_another_chains_key_is_never_taken_for_it() {
        let pki = Pki::new();
        let (recheck, _) = pki.recheck(&[], false, &[], 4);
        let alice = pki.chain("alice", -1, 24);
        let mallory = pki.chain("mallory", -1, 24);
        let first = recheck.accepted(&alice).unwrap();
        let key = recheck.key(&alice);
        assert!(recheck.generations().get(key, &mallory).is_none());
        let found = recheck.generations().get(key, &alice).unwrap();
        assert!(Arc::ptr_eq(&found.verified, &first));
        // Two more chains move alice's entry to the old generation.
        for cn in ["bob", "carol"] {
            recheck.accepted(&pki.chain(cn, -1, 24)).unwrap();
        }
        assert!(recheck.generations().old.contains_key(&key));
        assert!(recheck.generations().get(key, &mallory).is_none());
        let found = recheck.generations().get(key, &alice).unwrap();
        assert!(Arc::ptr_eq(&found.verified, &first));
        // Mallory's own chain makes mallory's client.
        let m = recheck.accepted(&mallory).unwrap();
        assert_eq!(m.identity.common_name.as_deref(), Some("mallory"));
        // The same bytes after the leaf, split into certificates differently, make another
        // key: lengths are hashed too.
        let tail = alice[1].as_ref();
        let split = |at: usize| {
            let part = |b: &[u8]| CertificateDer::from(b.to_vec());
            vec![alice[0].clone(), part(&tail[..at]), part(&tail[at..])]
        };
        assert_ne!(recheck.key(&split(10)), recheck.key(&split(11)));
    }

    #[test]
    fn an_accepted_chain_is_looked_up_only_while_its_verdict_holds() {
        let pki = Pki::new();
        let (recheck, verifier) = pki.recheck(&[], false, &[], CAPACITY);
        let runs = || verifier.runs.load(Ordering::Relaxed);
        // Valid from an hour ago until tomorrow.
        let alice = pki.chain("alice", -1, 24);

        assert_eq!(check(&recheck, &alice, pki.at(0)), Ok(()));
        assert_eq!(runs(), 1);
        assert_eq!(check(&recheck, &alice, pki.at(12)), Ok(()));
        assert_eq!(
            runs(),
            1,
            "inside its window the chain is found, not re-verified"
        );
        // Every connection that resumes with it shares one parsed client.
        let (a, b) = (
            recheck.check(&alice, pki.at(1)).unwrap(),
            recheck.check(&alice, pki.at(2)).unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.identity.common_name.as_deref(), Some("alice"));

        // The clock moves past notAfter (or back before notBefore): the verifier decides
        // again, and refuses with the reason it gives.
        assert_eq!(check(&recheck, &alice, pki.at(25)), Err(Rejection::Expired));
        assert_eq!(
            check(&recheck, &alice, pki.at(-2)),
            Err(Rejection::NotYetValid)
        );
        assert_eq!(runs(), 3);

        // Another chain, even with the same leaf, is another key.
        let mut reordered = alice.clone();
        reordered.push(alice[1].clone());
        assert_eq!(check(&recheck, &reordered, pki.at(0)), Ok(()));
        assert_eq!(runs(), 4);
        // A chain the verifier refuses is never remembered.
        let mallory = pki.chain("mallory", 1, 24);
        for _ in 0..2 {
            assert_eq!(
                check(&recheck, &mallory, pki.at(0)),
                Err(Rejection::NotYetValid)
            );
        }
        assert_eq!(runs(), 6);
    }

    #[test]
    fn no_remembered_verdict_outlives_the_crls_next_update() {
        let pki = Pki::new();
        let crls = [pki.crl(24)];
        let alice = pki.chain("alice", -1, 24 * 30);

        let (recheck, verifier) = pki.recheck(&crls, true, &[], CAPACITY);
        assert_eq!(check(&recheck, &alice, pki.at(0)), Ok(()));
        assert_eq!(check(&recheck, &alice, pki.at(23)), Ok(()));
        assert_eq!(verifier.runs.load(Ordering::Relaxed), 1);
        // Past the earlier nextUpdate, the verifier runs and refuses every chain.
        assert_eq!(
            check(&recheck, &alice, pki.at(25)),
            Err(Rejection::CrlExpired)
        );
        assert_eq!(verifier.runs.load(Ordering::Relaxed), 2);

        // With allow_expired_crl, the CRL's age decides nothing.
        let (recheck, verifier) = pki.recheck(&crls, false, &[], CAPACITY);
        assert_eq!(check(&recheck, &alice, pki.at(0)), Ok(()));
        assert_eq!(check(&recheck, &alice, pki.at(25)), Ok(()));
        assert_eq!(verifier.runs.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn no_remembered_verdict_outlives_an_intermediate_from_client_ca() {
        let pki = Pki::new();
        // Alice sends her certificate alone; the intermediate from client_ca completes
        // her path. Her certificate outlives it (another CA could have issued it so).
        let intermediate = CertificateDer::from(
            crate::tls::pem_blocks(&pki.ca.layout().intermediate_cert(), "CERTIFICATE")
                .unwrap()
                .remove(0),
        );
        let (_, parsed) = parse_x509_certificate(&intermediate).unwrap();
        let ends = parsed.validity().not_after.timestamp() - pki.now.unix_timestamp();
        let hours = ends / 3600;
        let alice = pki.chain("alice", -1, hours + 24 * 30);
        let leaf_only = &alice[..1];

        let (recheck, verifier) = pki.recheck(&[], false, &[intermediate], CAPACITY);
        assert_eq!(check(&recheck, leaf_only, pki.at(0)), Ok(()));
        assert_eq!(check(&recheck, leaf_only, pki.at(hours - 1)), Ok(()));
        assert_eq!(verifier.runs.load(Ordering::Relaxed), 1);
        // The intermediate has expired, alice's certificate has not: the verifier decides.
        assert_eq!(
            check(&recheck, leaf_only, pki.at(hours + 1)),
            Err(Rejection::Expired)
        );
        assert_eq!(verifier.runs.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn remembered_chains_are_bounded_and_the_ones_in_use_stay() {
        let pki = Pki::new();
        let (recheck, verifier) = pki.recheck(&[], false, &[], 8);
        let runs = || verifier.runs.load(Ordering::Relaxed);
        let regular = pki.chain("regular", -1, 24);
        assert_eq!(check(&recheck, &regular, pki.at(0)), Ok(()));
        for n in 0..40 {
            let chain = pki.chain(&format!("client{n}"), -1, 24);
            assert_eq!(check(&recheck, &chain, pki.at(0)), Ok(()));
            assert!(
                recheck.remembered() <= 8,
                "{} remembered",
                recheck.remembered()
            );
            // A client that keeps resuming keeps its place.
            let before = runs();
            assert_eq!(check(&recheck, &regular, pki.at(0)), Ok(()));
            assert_eq!(runs(), before, "after {n} others, regular was forgotten");
        }
        assert_eq!(runs(), 41);
    }
}

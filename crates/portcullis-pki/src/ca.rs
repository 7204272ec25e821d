//! The certificate authority directory: create it, unlock it, issue from it.
//!
//! ```text
//! pki/                      0700
//!   root.crt  root.key      self-signed root; the key is passphrase-encrypted by default
//!   intermediate.crt/.key   issuing CA (pathlen 0), when created with --intermediate
//!   index.jsonl             one line per issued certificate (see `index`)
//!   crl.pem  crl.der        latest CRL of the issuing CA;  crlnumber: its number
//!   issued/NAME.{key,crt,chain.pem,p12}
//!   archive/SERIAL/         files replaced by `pki renew`
//! ```
//!
//! Leaves are signed by the intermediate when there is one, otherwise by the root.
//! The root and intermediate keys share one passphrase.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ::time::format_description::well_known::Rfc3339;
use ::time::{Duration, OffsetDateTime};
use pkcs8::der::pem::LineEnding;
use rcgen::{KeyPair, PublicKeyData};
use x509_parser::prelude::*;

use crate::build::{self, Kind, Spec};
use crate::defaults::Defaults;
use crate::error::{Error, Result};
use crate::fsio::{self, Outputs, PUBLIC, SECRET};
use crate::index::{Index, KeyOrigin, Record};
use crate::keys::BroughtKey;
use crate::keys::{self, KeyType};
use crate::lock::{self, DirLock, Intent, Replaces};
use crate::names::{self, San, Subject};
use crate::p12::{self, P12Format};
use crate::secret::Passphrase;

/// Where `--dir` points when not given.
pub const DEFAULT_DIR: &str = "pki";
/// Validity defaults, in days. Leaves follow the CA/Browser Forum's 397-day ceiling so that
/// a certificate made here also works where public-CA rules are enforced (Apple platforms).
pub const ROOT_DAYS: u32 = 3650;
pub const INTERMEDIATE_DAYS: u32 = 1825;
pub const LEAF_DAYS: u32 = 397;
pub const CRL_DAYS: u32 = 30;
/// Certificates are back-dated this much so that a client whose clock is a little behind
/// does not reject a certificate made a moment ago.
const BACKDATE: Duration = Duration::minutes(5);

/// The shortest validity the CA issues.
const MIN_LIFETIME: Duration = Duration::minutes(1);

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

/// How far before now a leaf starts: [`BACKDATE`], or a tenth of a short lifetime, so a
/// certificate of minutes is not mostly in the past (renewal at two thirds of it must
/// still be in the future).
fn backdate(lifetime: Duration) -> Duration {
    BACKDATE.min(lifetime / 10)
}

/// The validity a leaf was issued for, from its dates: the inverse of [`backdate`].
pub fn issued_lifetime(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Duration {
    let span = not_after - not_before;
    if span > BACKDATE * 11 {
        span - BACKDATE
    } else {
        span * 10 / 11
    }
}

/// Paths inside a CA directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Layout { dir: dir.into() }
    }
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("root.crt")
    }
    pub fn root_key(&self) -> PathBuf {
        self.dir.join("root.key")
    }
    pub fn intermediate_cert(&self) -> PathBuf {
        self.dir.join("intermediate.crt")
    }
    pub fn intermediate_key(&self) -> PathBuf {
        self.dir.join("intermediate.key")
    }
    /// `[defaults]` for `issue` and `sign` (see [`crate::defaults`]).
    pub fn defaults(&self) -> PathBuf {
        self.dir.join("ca.toml")
    }
    pub fn index(&self) -> PathBuf {
        self.dir.join("index.jsonl")
    }
    pub fn crl_pem(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    pub fn crl_der(&self) -> PathBuf {
        self.dir.join("crl.der")
    }
    pub fn crl_number(&self) -> PathBuf {
        self.dir.join("crlnumber")
    }
    pub fn issued(&self) -> PathBuf {
        self.dir.join("issued")
    }
    pub fn archive(&self) -> PathBuf {
        self.dir.join("archive")
    }
    pub fn exists(&self) -> bool {
        self.root_cert().exists()
    }
}

/// How `pki init` makes a CA.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Used in the CA names: "NAME Root CA", "NAME Issuing CA".
    pub name: String,
    pub organization: Option<String>,
    pub key_type: KeyType,
    pub intermediate: bool,
    pub root_days: u32,
    pub intermediate_days: u32,
    /// `None` writes the CA keys unencrypted (the CLI asks for `--no-passphrase`).
    pub passphrase: Option<Passphrase>,
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            name: "Portcullis".into(),
            organization: None,
            key_type: KeyType::P256,
            intermediate: false,
            root_days: ROOT_DAYS,
            intermediate_days: INTERMEDIATE_DAYS,
            passphrase: None,
            force: false,
        }
    }
}

/// Creates a CA in `dir`. Returns the files written.
pub fn init(dir: &Path, opts: &InitOptions) -> Result<Vec<PathBuf>> {
    let layout = Layout::new(dir);
    if layout.exists() && !opts.force {
        return Err(Error::CaExists {
            dir: dir.to_owned(),
        });
    }
    // Replacing a CA waits for any command still changing the old one.
    let _lock = if dir.is_dir() {
        Some(DirLock::acquire(dir, lock::DEFAULT_WAIT)?.0)
    } else {
        None
    };
    let now = now_seconds();
    let root_subject = Subject {
        common_name: format!("{} Root CA", opts.name),
        organization: opts.organization.clone(),
        ..Default::default()
    };
    root_subject.validate()?;
    let root_key = opts.key_type.generate()?;
    let root_spki = root_key.subject_public_key_info();
    let root_name = build::subject_der(&root_subject);
    let root_end = now + Duration::days(i64::from(opts.root_days));
    let root_der = build::sign(
        &Spec {
            kind: Kind::Root,
            issuer_name: &root_name,
            issuer_key_id: None,
            subject: &root_subject,
            sans: &[],
            spki: &root_spki,
            not_before: now - BACKDATE,
            not_after: root_end,
            serial: &build::random_serial()?,
            crl_url: None,
            ca_issuers_url: None,
        },
        &root_key,
    )?;

    let pass = opts.passphrase.as_ref();
    let mut out = Outputs::new();
    out.add(layout.root_cert(), pem("CERTIFICATE", &root_der), PUBLIC);
    out.add(
        layout.root_key(),
        keys::to_pem(&root_key, pass)?.as_bytes(),
        SECRET,
    );

    // The CA that signs leaves and CRLs: the intermediate when there is one.
    let mut issuer = (root_der.clone(), layout.root_cert(), root_key);
    if opts.intermediate {
        let sub = Subject {
            common_name: format!("{} Issuing CA", opts.name),
            organization: opts.organization.clone(),
            ..Default::default()
        };
        let key = opts.key_type.generate()?;
        let spki = key.subject_public_key_info();
        let root_ski = build::key_identifier(&root_spki)?;
        let end = (now + Duration::days(i64::from(opts.intermediate_days))).min(root_end);
        let der = build::sign(
            &Spec {
                kind: Kind::Intermediate,
                issuer_name: &root_name,
                issuer_key_id: Some(&root_ski),
                subject: &sub,
                sans: &[],
                spki: &spki,
                not_before: now - BACKDATE,
                not_after: end,
                serial: &build::random_serial()?,
                crl_url: None,
                ca_issuers_url: None,
            },
            &issuer.2,
        )?;
        out.add(layout.intermediate_cert(), pem("CERTIFICATE", &der), PUBLIC);
        out.add(
            layout.intermediate_key(),
            keys::to_pem(&key, pass)?.as_bytes(),
            SECRET,
        );
        issuer = (der, layout.intermediate_cert(), key);
    } else if opts.force {
        // Replacing a CA that had an intermediate with one that has none: the old
        // intermediate would otherwise keep signing.
        let _ = std::fs::remove_file(layout.intermediate_cert());
        let _ = std::fs::remove_file(layout.intermediate_key());
    }

    // An empty CRL from the start, as number 1: a configuration that names the CRL (the
    // gate's `crl`, nginx's `ssl_crl`) works before anything is revoked.
    let crl = sign_crl(
        (&issuer.0, &issuer.1, &issuer.2),
        Vec::new(),
        1,
        (now, now + Duration::days(i64::from(CRL_DAYS))),
    )?;
    out.add(layout.crl_number(), b"1\n".to_vec(), PUBLIC);
    out.add(layout.crl_der(), crl.clone(), PUBLIC);
    out.add(layout.crl_pem(), pem("X509 CRL", &crl), PUBLIC);

    fsio::private_dir(dir)?;
    set_mode(dir, 0o700)?;
    let written = out.commit(opts.force)?;
    // The lock file exists from the start, so taking the lock never adds a file.
    let lock = DirLock::path(dir);
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&lock)
        .map_err(|source| Error::Write { path: lock, source })?;
    Ok(written)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        Error::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// PEM-encodes one DER object.
pub fn pem(label: &'static str, der: &[u8]) -> String {
    // Encoding to a String cannot fail for in-memory DER of sane size.
    pkcs8::der::pem::encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

/// Reads the certificates of a PEM (or DER) file, in file order.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = fsio::read(path)?;
    certs_from_bytes(&bytes, path)
}

pub(crate) fn certs_from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<Vec<u8>>> {
    if !bytes.starts_with(b"-----") && !bytes.trim_ascii_start().starts_with(b"-----") {
        // DER
        parse_x509_certificate(bytes)
            .map_err(|e| Error::malformed(path, format!("not a PEM or DER certificate ({e})")))?;
        return Ok(vec![bytes.to_vec()]);
    }
    let mut certs = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let block = block.map_err(|e| Error::malformed(path, format!("bad PEM ({e})")))?;
        if block.label == "CERTIFICATE" {
            parse_x509_certificate(&block.contents)
                .map_err(|e| Error::malformed(path, format!("corrupt certificate in PEM ({e})")))?;
            certs.push(block.contents);
        }
    }
    if certs.is_empty() {
        return Err(Error::malformed(path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

fn parse<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>> {
    parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| Error::malformed(path, format!("corrupt certificate ({e})")))
}

/// Now, to the second: certificates cannot carry more precision, and the index should
/// show what the certificate says.
fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// SHA-256 fingerprint in lowercase hex: the one spelling Portcullis prints everywhere
/// (`pki inspect`, `pki list`, the gate's `X-Client-Fingerprint` and access log), so
/// one can be searched for the other. Role conditions also accept OpenSSL's
/// `AB:CD:…` spelling.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// A new leaf certificate to issue with a fresh key.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    pub kind: Kind,
    pub subject: Subject,
    pub sans: Vec<San>,
    pub days: u32,
    pub key_type: KeyType,
}

/// A certificate the CA just signed, not yet written anywhere.
#[derive(Debug)]
pub struct Issued {
    pub key: IssuedKey,
    pub cert_der: Vec<u8>,
    pub record: Record,
}

/// The private key that goes with an issued certificate, and whether it is written.
#[derive(Debug)]
pub enum IssuedKey {
    /// Made here for this certificate: written as `STEM.key`.
    New(KeyPair),
    /// The requester's own (`issue --key`): it goes into the PKCS#12 bundle and is never
    /// written again, so no second copy of it exists.
    Theirs(KeyPair),
    /// Only the public key is known (a CSR, or `issue --key` with a public key): the
    /// requester keeps the private key, and no bundle can be made.
    PublicOnly,
}

impl IssuedKey {
    fn private(&self) -> Option<&KeyPair> {
        match self {
            IssuedKey::New(k) | IssuedKey::Theirs(k) => Some(k),
            IssuedKey::PublicOnly => None,
        }
    }
}

/// Where and how to write an issued certificate.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub out_dir: PathBuf,
    pub stem: String,
    pub key_passphrase: Option<Passphrase>,
    pub p12: Option<(Passphrase, P12Format)>,
    pub force: bool,
}

impl SaveOptions {
    pub fn key_path(&self) -> PathBuf {
        self.out_dir.join(format!("{}.key", self.stem))
    }
    pub fn cert_path(&self) -> PathBuf {
        self.out_dir.join(format!("{}.crt", self.stem))
    }
    pub fn chain_path(&self) -> PathBuf {
        self.out_dir.join(format!("{}.chain.pem", self.stem))
    }
    pub fn p12_path(&self) -> PathBuf {
        self.out_dir.join(format!("{}.p12", self.stem))
    }
}

/// Whether the signing key of the CA in `dir` is passphrase-protected (so callers only
/// prompt when they must).
pub fn needs_passphrase(dir: &Path) -> Result<bool> {
    let layout = Layout::new(dir);
    if !layout.exists() {
        return Err(Error::NoCa {
            dir: dir.to_owned(),
        });
    }
    let key = if layout.intermediate_cert().exists() {
        layout.intermediate_key()
    } else {
        layout.root_key()
    };
    let text = fsio::read(&key)?;
    Ok(keys::is_encrypted(&String::from_utf8_lossy(&text)))
}

/// An unlocked CA, ready to sign.
#[derive(Debug)]
pub struct Ca {
    layout: Layout,
    issuer_path: PathBuf,
    issuer_der: Vec<u8>,
    issuer_key: KeyPair,
    /// Intermediates to append after a leaf in chain files (empty for a root-only CA).
    intermediates: Vec<Vec<u8>>,
    /// `ca.toml`, or why it cannot be used: only issuing needs it, so a mistake in it does
    /// not stop a revocation or a CRL.
    defaults: std::result::Result<Defaults, String>,
}

/// How to ask for the CA passphrase, for error messages.
pub const CA_PASSPHRASE_HINT: &str = "--ca-passphrase-file FILE, the PORTCULLIS_CA_PASSPHRASE environment variable, or run it in a terminal to be prompted";

impl Ca {
    /// Loads the CA in `dir` and unlocks its signing key.
    pub fn open(dir: &Path, passphrase: Option<&Passphrase>) -> Result<Ca> {
        let layout = Layout::new(dir);
        if !layout.exists() {
            return Err(Error::NoCa {
                dir: dir.to_owned(),
            });
        }
        let (cert_path, key_path) = if layout.intermediate_cert().exists() {
            (layout.intermediate_cert(), layout.intermediate_key())
        } else {
            (layout.root_cert(), layout.root_key())
        };
        let issuer_der = read_certs(&cert_path)?.swap_remove(0);
        let key_text = String::from_utf8(fsio::read(&key_path)?)
            .map_err(|_| Error::malformed(&key_path, "not a PEM file (not text)"))?;
        let issuer_key = keys::from_pem(&key_text, &key_path, passphrase, CA_PASSPHRASE_HINT)?;
        let cert = parse(&issuer_der, &cert_path)?;
        if cert.public_key().raw != issuer_key.subject_public_key_info().as_slice() {
            return Err(Error::malformed(
                &key_path,
                format!("this key does not belong to {}", cert_path.display()),
            ));
        }
        let intermediates = if cert_path == layout.intermediate_cert() {
            vec![issuer_der.clone()]
        } else {
            Vec::new()
        };
        let defaults = Defaults::load(&layout.defaults()).map_err(|e| e.to_string());
        Ok(Ca {
            layout,
            issuer_path: cert_path,
            issuer_der,
            issuer_key,
            intermediates,
            defaults,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The directory's `[defaults]` (empty without `ca.toml`), or the mistake in it.
    pub fn defaults(&self) -> Result<&Defaults> {
        self.defaults
            .as_ref()
            .map_err(|e| Error::DefaultsUnusable(e.clone()))
    }

    /// The issuing CA's certificate (DER).
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer_der
    }

    /// `leaf` followed by the intermediates: what a server or client must send.
    pub fn chain_for(&self, leaf: &[u8]) -> Vec<Vec<u8>> {
        let mut chain = vec![leaf.to_vec()];
        chain.extend(self.intermediates.iter().cloned());
        chain
    }

    /// Issues a certificate with a fresh key. Subject fields the request leaves empty
    /// come from `ca.toml`'s defaults (its days and key type are the caller's to apply).
    pub fn issue(&self, req: &LeafRequest, index: &Index) -> Result<Issued> {
        self.issue_exact(&self.with_defaults(req)?, index)
    }

    /// The request with its empty subject fields filled from `ca.toml`.
    fn with_defaults(&self, req: &LeafRequest) -> Result<LeafRequest> {
        let mut req = req.clone();
        self.defaults()?.fill(&mut req.subject);
        Ok(req)
    }

    /// Issues exactly the subject asked for (a renewal keeps its subject).
    fn issue_exact(&self, req: &LeafRequest, index: &Index) -> Result<Issued> {
        let key = req.key_type.generate()?;
        let spki = key.subject_public_key_info();
        let (cert_der, record) = self.certify(
            req.kind,
            &req.subject,
            &req.sans,
            &spki,
            days(req.days),
            index,
        )?;
        Ok(Issued {
            key: IssuedKey::New(key),
            cert_der,
            record,
        })
    }

    /// Issues a certificate for a key the requester already has (`req.key_type` is not
    /// used). The key is never written: only the certificate files and, when the private
    /// key is given, the PKCS#12 bundle.
    pub fn issue_for_key(
        &self,
        req: &LeafRequest,
        key: BroughtKey,
        index: &Index,
    ) -> Result<Issued> {
        self.issue_for_key_lasting(req, key, index, days(req.days))
    }

    /// [`Ca::issue_for_key`] for a validity of any length (`req.days` is not used):
    /// enrolment issues certificates of hours or minutes, renewed automatically.
    pub fn issue_for_key_lasting(
        &self,
        req: &LeafRequest,
        key: BroughtKey,
        index: &Index,
        lifetime: Duration,
    ) -> Result<Issued> {
        let req = self.with_defaults(req)?;
        self.issue_brought(&req, key, index, lifetime)
    }

    /// A renewal for a key someone holds: `req` exactly as the certificate renewed had
    /// it, without the directory's `[defaults]` (a renewal never changes the subject).
    pub(crate) fn renew_for_key(
        &self,
        req: &LeafRequest,
        key: BroughtKey,
        index: &Index,
        lifetime: Duration,
    ) -> Result<Issued> {
        self.issue_brought(req, key, index, lifetime)
    }

    fn issue_brought(
        &self,
        req: &LeafRequest,
        key: BroughtKey,
        index: &Index,
        lifetime: Duration,
    ) -> Result<Issued> {
        let spki = match &key {
            BroughtKey::Private(k) => k.subject_public_key_info(),
            BroughtKey::Public(spki) => spki.clone(),
        };
        // A CA key certified as a leaf would end up in a user's PKCS#12 bundle, or let a
        // server speak with the CA's key.
        for ca_cert in [self.layout.root_cert(), self.layout.intermediate_cert()] {
            let Some(der) = read_certs(&ca_cert).ok().and_then(|c| c.into_iter().next()) else {
                continue;
            };
            if parse(&der, &ca_cert)?.public_key().raw == spki.as_slice() {
                return Err(Error::invalid(
                    "--key",
                    ca_cert.display().to_string(),
                    "this is the CA's own key (the key of that certificate): a leaf needs a key of its own",
                ));
            }
        }
        let (cert_der, mut record) =
            self.certify(req.kind, &req.subject, &req.sans, &spki, lifetime, index)?;
        record.key_origin = KeyOrigin::Owner;
        Ok(Issued {
            key: match key {
                BroughtKey::Private(k) => IssuedKey::Theirs(k),
                BroughtKey::Public(_) => IssuedKey::PublicOnly,
            },
            cert_der,
            record,
        })
    }

    /// Checks a leaf's names for its profile and signs it.
    fn certify(
        &self,
        kind: Kind,
        subject: &Subject,
        sans: &[San],
        spki: &[u8],
        lifetime: Duration,
        index: &Index,
    ) -> Result<(Vec<u8>, Record)> {
        check_leaf(kind, subject, sans)?;
        if lifetime < MIN_LIFETIME {
            return Err(Error::invalid(
                "validity",
                lifetime.to_string(),
                "must be at least a minute (and a day for certificates issued by hand)",
            ));
        }
        let issuer = parse(&self.issuer_der, &self.issuer_path)?;
        let now = now_seconds();
        let ca_start = issuer.validity().not_before.to_datetime();
        let ca_end = issuer.validity().not_after.to_datetime();
        if now < ca_start || now >= ca_end {
            return Err(Error::CaNotValid {
                path: self.issuer_path.clone(),
                not_before: rfc3339(ca_start),
                not_after: rfc3339(ca_end),
            });
        }
        // A leaf cannot outlive its issuer: clients would reject it after the CA expires.
        let not_after = (now + lifetime).min(ca_end);
        let not_before = now - backdate(lifetime);

        // 128 random bits make a collision practically impossible; checking costs nothing.
        let serial = loop {
            let s = build::random_serial()?;
            if !index.contains_serial(&build::serial_hex(&s)) {
                break s;
            }
        };
        let der = self.sign_spec(kind, subject, sans, spki, (not_before, not_after), &serial)?;
        let record = Record {
            serial: build::serial_hex(&serial),
            profile: match kind {
                Kind::Server => "server",
                _ => "client",
            }
            .into(),
            subject: subject.one_line(),
            sans: sans.iter().map(ToString::to_string).collect(),
            not_before: rfc3339(not_before),
            not_after: rfc3339(not_after),
            fingerprint_sha256: fingerprint(&der),
            cert: String::new(),
            revoked: None,
            replaced_by: None,
            key_origin: Default::default(),
        };
        Ok((der, record))
    }

    /// Signs a certificate exactly as described, skipping every profile check and the
    /// index: for test fixtures and tools that need certificates this CA would never
    /// issue (expired, a NUL in the CN, a CA used as a leaf). Not used by the CLI.
    pub fn sign_raw(
        &self,
        kind: Kind,
        subject: &Subject,
        sans: &[San],
        spki: &[u8],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        let serial = build::random_serial()?;
        self.sign_spec(kind, subject, sans, spki, (not_before, not_after), &serial)
    }

    /// Signs with this CA as issuer: its subject, key identifier and key.
    fn sign_spec(
        &self,
        kind: Kind,
        subject: &Subject,
        sans: &[San],
        spki: &[u8],
        (not_before, not_after): (OffsetDateTime, OffsetDateTime),
        serial: &[u8],
    ) -> Result<Vec<u8>> {
        let issuer = parse(&self.issuer_der, &self.issuer_path)?;
        let issuer_ski = issuer_key_id(&issuer);
        build::sign(
            &Spec {
                kind,
                issuer_name: issuer.subject().as_raw(),
                issuer_key_id: issuer_ski.as_deref(),
                subject,
                sans,
                spki,
                not_before,
                not_after,
                serial,
                crl_url: self.defaults()?.crl_url.as_deref(),
                ca_issuers_url: self.defaults()?.ca_issuers_url.as_deref(),
            },
            &self.issuer_key,
        )
    }

    /// Signs a CSR under a profile. Returns the certificate and, for the user, a sentence
    /// for each thing the CSR asked for that the profile does not grant.
    pub fn sign_csr(
        &self,
        csr_bytes: &[u8],
        path: &Path,
        kind: Kind,
        extra_sans: &[San],
        days: u32,
        index: &Index,
    ) -> Result<(Issued, Vec<String>)> {
        let mut req = crate::csr::read(csr_bytes, path, kind)?;
        // The requester's fields win; the CA's defaults fill what it left out.
        self.defaults()?.fill(&mut req.subject);
        let mut sans = req.sans;
        for s in extra_sans {
            if !sans.contains(s) {
                sans.push(s.clone());
            }
        }
        if kind == Kind::Client {
            add_email_san(&req.subject, &mut sans);
        }
        let (cert_der, mut record) = self.certify(
            kind,
            &req.subject,
            &sans,
            &req.spki,
            self::days(days),
            index,
        )?;
        record.key_origin = KeyOrigin::Owner;
        Ok((
            Issued {
                key: IssuedKey::PublicOnly,
                cert_der,
                record,
            },
            req.dropped,
        ))
    }

    /// Checks that `cert_path` holds a certificate this CA issued and returns its DER.
    pub fn check_issued_here(&self, cert_path: &Path) -> Result<Vec<u8>> {
        let der = read_certs(cert_path)?.swap_remove(0);
        let cert = parse(&der, cert_path)?;
        let issuer = parse(&self.issuer_der, &self.issuer_path)?;
        let signed_by_us = cert.issuer().as_raw() == issuer.subject().as_raw()
            && cert.verify_signature(Some(issuer.public_key())).is_ok();
        if !signed_by_us {
            return Err(Error::NotIssuedHere {
                path: cert_path.to_owned(),
                issuer: cert.issuer().to_string(),
                ca: issuer.subject().to_string(),
            });
        }
        Ok(der)
    }

    /// A new certificate with the subject and names of `cert_path` and a new key and
    /// serial. `days` defaults to the old certificate's lifetime. Write it with
    /// [`Writer::save_renewal`].
    pub fn renew(
        &self,
        cert_path: &Path,
        days: Option<u32>,
        key_type: Option<KeyType>,
        index: &Index,
    ) -> Result<Renewal> {
        let der = self.check_issued_here(cert_path)?;
        let cert = parse(&der, cert_path)?;
        let request = self.renewal_request(cert_path, days, key_type)?;
        Ok(Renewal {
            issued: self.issue_exact(&request, index)?,
            request,
            old_serial: build::serial_hex(cert.raw_serial()),
            cert_path: cert_path.to_owned(),
        })
    }

    /// What a renewal of `cert_path` will ask for (its profile decides whether a PKCS#12
    /// bundle is wanted), without the index: a caller can gather passwords before it takes
    /// the directory's lock.
    pub fn renewal_request(
        &self,
        cert_path: &Path,
        days: Option<u32>,
        key_type: Option<KeyType>,
    ) -> Result<LeafRequest> {
        let der = self.check_issued_here(cert_path)?;
        let cert = parse(&der, cert_path)?;
        crate::inspect::leaf_request_from(&cert, cert_path, days, key_type)
    }

    /// Signs a CRL with any dates, writing nothing: for test fixtures (an expired CRL) and
    /// tools; [`Writer::publish_crl`] uses it with today's dates.
    pub fn sign_crl_raw(
        &self,
        index: &Index,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        let mut revoked = Vec::new();
        for r in &index.records {
            let Some(rev) = &r.revoked else { continue };
            let serial = hex::decode(&r.serial).map_err(|e| Error::Index {
                path: self.layout.index(),
                line: 0,
                reason: format!("serial {}: {e}", r.serial),
            })?;
            let at = OffsetDateTime::parse(&rev.at, &Rfc3339).map_err(|e| Error::Index {
                path: self.layout.index(),
                line: 0,
                reason: format!("revocation time of {}: {e}", r.serial),
            })?;
            revoked.push(rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&serial),
                revocation_time: at,
                reason_code: Reason::from_name(&rev.reason).map(Reason::rcgen),
                invalidity_date: None,
            });
        }
        sign_crl(
            (&self.issuer_der, &self.issuer_path, &self.issuer_key),
            revoked,
            number,
            (this_update, next_update),
        )
    }
}

/// A CRL listing `revoked`, signed by the CA certificate `issuer` (DER, the file it came
/// from for errors, its key).
fn sign_crl(
    issuer: (&[u8], &Path, &KeyPair),
    revoked: Vec<rcgen::RevokedCertParams>,
    number: u64,
    (this_update, next_update): (OffsetDateTime, OffsetDateTime),
) -> Result<Vec<u8>> {
    let (der, path, key) = issuer;
    let params = rcgen::CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: rcgen::SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::PreSpecified(
            issuer_key_id(&parse(der, path)?).unwrap_or_default(),
        ),
    };
    let issuer = rcgen::Issuer::from_ca_cert_pem(&pem("CERTIFICATE", der), key)
        .map_err(|e| Error::crypto("reading the CA certificate", e))?;
    let crl = params
        .signed_by(&issuer)
        .map_err(|e| Error::crypto("signing the CRL", e))?;
    Ok(crl.der().to_vec())
}

// === impl Writer ===

/// A CA directory opened for changes: its lock, held until the writer is dropped, and the
/// index as it stands under the lock. Every change to the directory goes through a writer,
/// so two commands — or the CLI and a gate issuing online — never overwrite each other's
/// work (see [`crate::lock`]). Opening a writer first finishes or undoes whatever a writer
/// killed before it left unfinished.
#[derive(Debug)]
pub struct Writer<'ca> {
    ca: &'ca Ca,
    lock: DirLock,
    index: Index,
}

impl Ca {
    /// Opens the directory for changes, waiting up to [`lock::DEFAULT_WAIT`] for another
    /// writer to finish.
    pub fn writer(&self) -> Result<Writer<'_>> {
        self.writer_waiting(lock::DEFAULT_WAIT)
    }

    /// Opens the directory for changes, waiting up to `wait` for another writer.
    pub fn writer_waiting(&self, wait: std::time::Duration) -> Result<Writer<'_>> {
        let (lock, leftover) = DirLock::acquire(&self.layout.dir, wait)?;
        // The leftover intent stays recorded until recovery is done: if this process dies
        // (or fails) on the way, the next writer recovers instead.
        let mut writer = Writer {
            ca: self,
            lock,
            index: Index::load(&self.layout.index())?,
        };
        if let Some(intent) = leftover {
            writer.recover(&intent).map_err(|e| Error::Unfinished {
                dir: self.layout.dir.clone(),
                what: intent.describe(),
                source: Box::new(e),
            })?;
        }
        Ok(writer)
    }
}

/// The files of an issued certificate, the certificate itself last: once it is in place,
/// every other file is too.
fn planned_outputs(ca: &Ca, issued: &Issued, opts: &SaveOptions) -> Result<Outputs> {
    let chain = ca.chain_for(&issued.cert_der);
    let mut out = Outputs::new();
    if let IssuedKey::New(key) = &issued.key {
        out.add(
            opts.key_path(),
            keys::to_pem(key, opts.key_passphrase.as_ref())?.as_bytes(),
            SECRET,
        );
    }
    let chain_pem: String = chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
    out.add(opts.chain_path(), chain_pem, PUBLIC);
    if let (Some(key), Some((password, format))) = (issued.key.private(), &opts.p12) {
        let bundle = p12::bundle(key, &chain, &opts.stem, password, *format)?;
        out.add(opts.p12_path(), bundle, SECRET);
    }
    out.add(
        opts.cert_path(),
        pem("CERTIFICATE", &issued.cert_der),
        PUBLIC,
    );
    Ok(out)
}

/// `p` as an absolute path (from the working directory), so that a writer started
/// elsewhere reads an intent the same way.
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|source| Error::Write {
        path: p.to_owned(),
        source,
    })
}

/// Whether `path` holds the certificate with this SHA-256 fingerprint.
pub(crate) fn holds_certificate(path: &Path, fingerprint_sha256: &str) -> bool {
    read_certs(path)
        .ok()
        .and_then(|certs| certs.into_iter().next())
        .is_some_and(|der| fingerprint(&der) == fingerprint_sha256)
}

/// Moves files back where they came from, newest move first, and says whether every one
/// that is still aside could be put back.
fn restore(moved: &[(PathBuf, PathBuf)]) -> bool {
    let mut all = true;
    for (from, to) in moved.iter().rev() {
        if to.exists() && !from.exists() {
            all &= std::fs::rename(to, from).is_ok();
        }
    }
    all
}

impl Writer<'_> {
    /// The index as it stands under the lock.
    pub fn index(&self) -> &Index {
        &self.index
    }

    pub(crate) fn ca(&self) -> &Ca {
        self.ca
    }

    pub(crate) fn ca_dir(&self) -> &Path {
        &self.ca.layout.dir
    }

    /// Writes an issued certificate (and its key, chain and PKCS#12 bundle) and records it
    /// in the index. All files or none. With `opts.force`, files in the way are moved
    /// aside first and removed only once the new ones are in.
    pub fn save(&mut self, issued: Issued, opts: &SaveOptions) -> Result<Vec<PathBuf>> {
        self.commit_issued(issued, opts, Vec::new(), None)
    }

    /// Writes a renewal where the old certificate was: the old files (`STEM.key`, `.crt`,
    /// `.chain.pem`, `.p12`) first move to `archive/OLD-SERIAL/`, so nothing is
    /// overwritten; if writing the new ones fails, the old ones are put back. Returns the
    /// files written and the (old, archived) paths.
    pub fn save_renewal(
        &mut self,
        renewal: Renewal,
        key_passphrase: Option<Passphrase>,
        p12: Option<(Passphrase, P12Format)>,
    ) -> Result<(Vec<PathBuf>, Archived)> {
        let path = &renewal.cert_path;
        let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        let stem = issued_stem(path).unwrap_or("cert").to_owned();
        let dest = self.ca.layout.archive().join(&renewal.old_serial);
        let archive: Vec<(PathBuf, PathBuf)> = ["key", "crt", "chain.pem", "p12"]
            .iter()
            .map(|ext| {
                (
                    dir.join(format!("{stem}.{ext}")),
                    dest.join(format!("{stem}.{ext}")),
                )
            })
            .filter(|(from, _)| from.exists())
            .collect();
        // The old record will say where its certificate went.
        let archived_cert = ["crt", "chain.pem"].iter().find_map(|ext| {
            let from = dir.join(format!("{stem}.{ext}"));
            archive.iter().find(|(f, _)| *f == from).map(|(_, to)| to)
        });
        let replaces = Replaces {
            serial: renewal.old_serial.clone(),
            cert: archived_cert
                .map(|to| self.index.stored_path(to))
                .transpose()?,
        };
        let opts = SaveOptions {
            out_dir: dir,
            stem,
            key_passphrase,
            p12,
            force: false,
        };
        let written = self.commit_issued(renewal.issued, &opts, archive.clone(), Some(replaces))?;
        Ok((written, archive))
    }

    /// Records the intent, moves old files aside (a renewal's `archive`, or with `force`
    /// the files in the way), writes the new ones (the certificate last) without
    /// replacing anything, and records the certificate (and, for a renewal, that it
    /// `replaces` the old one, in the same index write). A failure undoes everything; a
    /// crash is finished or undone by the next writer.
    fn commit_issued(
        &mut self,
        mut issued: Issued,
        opts: &SaveOptions,
        archive: Vec<(PathBuf, PathBuf)>,
        replaces: Option<Replaces>,
    ) -> Result<Vec<PathBuf>> {
        let out = planned_outputs(self.ca, &issued, opts)?;
        issued.record.cert = self.index.stored_path(&opts.cert_path())?;
        let outputs = out
            .digests()
            .into_iter()
            .map(|(p, digest)| Ok((absolute(&p)?, digest)))
            .collect::<Result<Vec<_>>>()?;
        let archived = archive
            .iter()
            .map(|(from, to)| Ok((absolute(from)?, absolute(to)?)))
            .collect::<Result<Vec<_>>>()?;
        let replaced: Vec<(PathBuf, PathBuf)> = if opts.force {
            outputs
                .iter()
                .filter(|(p, _)| p.exists())
                .map(|(p, _)| {
                    let mut aside = p.clone().into_os_string();
                    aside.push(".portcullis-replaced");
                    (p.clone(), PathBuf::from(aside))
                })
                .collect()
        } else {
            Vec::new()
        };
        let intent = Intent::Issue {
            record: Box::new(issued.record.clone()),
            cert: absolute(&opts.cert_path())?,
            outputs,
            archived,
            replaced,
            replaces: replaces.clone(),
        };
        self.lock.intend(&intent)?;
        let Intent::Issue {
            archived, replaced, ..
        } = &intent
        else {
            unreachable!("built just above")
        };
        let moves: Vec<(PathBuf, PathBuf)> = archived.iter().chain(replaced).cloned().collect();
        let mut moved = Vec::new();
        for (from, to) in &moves {
            let step = match to.parent() {
                Some(parent) => fsio::private_dir(parent),
                None => Ok(()),
            }
            .and_then(|()| {
                std::fs::rename(from, to).map_err(|source| Error::Write {
                    path: to.clone(),
                    source,
                })
            });
            if let Err(e) = step {
                return Err(self.undo(&moved, e));
            }
            moved.push((from.clone(), to.clone()));
            lock::crash_point("mid-archive");
        }
        lock::crash_point("after-archive");
        let written = match out.commit(false) {
            Ok(w) => w,
            Err(e) => return Err(self.undo(&moved, e)),
        };
        lock::crash_point("after-files");
        let recorded = match &replaces {
            Some(old) => self
                .index
                .record_renewal(issued.record, &old.serial, old.cert.clone()),
            None => self.index.append(issued.record),
        };
        if let Err(e) = recorded {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            return Err(self.undo(&moved, e));
        }
        for (_, aside) in replaced {
            let _ = std::fs::remove_file(aside);
        }
        self.lock.done()?;
        Ok(written)
    }

    /// After a failed change: puts moved files back. If that worked, nothing is left to
    /// do; if not, the intent stays for the next writer. Returns `e`.
    fn undo(&mut self, moved: &[(PathBuf, PathBuf)], e: Error) -> Error {
        if restore(moved)
            && let Err(done) = self.lock.done()
        {
            return done;
        }
        e
    }

    /// Revokes a certificate in the index and publishes a CRL valid for `days` that lists
    /// it. Returns the record, the files written and the CRL number.
    pub fn revoke(
        &mut self,
        serial: &str,
        reason: Reason,
        days: u32,
    ) -> Result<(Record, Vec<PathBuf>, u64)> {
        self.lock.intend(&Intent::Crl { days })?;
        let rec = match self.index.revoke(serial, now_seconds(), reason.name()) {
            Ok(r) => r,
            Err(e) => {
                // Nothing changed.
                self.lock.done()?;
                return Err(e);
            }
        };
        lock::crash_point("after-revoke");
        let (written, number) = self.publish(days)?;
        self.lock.done()?;
        Ok((rec, written, number))
    }

    /// Signs and writes a CRL listing every revoked certificate in the index.
    /// Returns the files written and the CRL number used.
    pub fn publish_crl(&mut self, days: u32) -> Result<(Vec<PathBuf>, u64)> {
        self.lock.intend(&Intent::Crl { days })?;
        let published = self.publish(days)?;
        self.lock.done()?;
        Ok(published)
    }

    /// The number of the CRL in place (DER, else PEM), if it reads.
    fn number_in_place(&self) -> Option<u64> {
        let layout = &self.ca.layout;
        let der = std::fs::read(layout.crl_der()).ok().or_else(|| {
            let pem = std::fs::read(layout.crl_pem()).ok()?;
            let (_, block) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
            Some(block.contents)
        })?;
        let (_, crl) = x509_parser::parse_x509_crl(&der).ok()?;
        u64::try_from(crl.crl_number()?).ok()
    }

    /// The next CRL number is above both the one on record and the one of the CRL in
    /// place, and is recorded before the CRL is written: numbers never repeat, even after
    /// a crash between the two, or a lost or garbled `crlnumber`.
    fn publish(&mut self, days: u32) -> Result<(Vec<PathBuf>, u64)> {
        let layout = &self.ca.layout;
        let number_path = layout.crl_number();
        let on_record = std::fs::read_to_string(&number_path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let number = on_record
            .max(self.number_in_place().unwrap_or(0))
            .checked_add(1)
            .ok_or_else(|| Error::malformed(&number_path, "the CRL number cannot grow further"))?;
        fsio::write_atomic(&number_path, format!("{number}\n").as_bytes(), PUBLIC, true)?;
        lock::crash_point("after-crl-number");
        let now = now_seconds();
        let der = self.ca.sign_crl_raw(
            &self.index,
            number,
            now,
            now + Duration::days(i64::from(days.max(1))),
        )?;
        let mut out = Outputs::new();
        out.add(layout.crl_der(), der.clone(), PUBLIC);
        out.add(layout.crl_pem(), pem("X509 CRL", &der), PUBLIC);
        let mut written = vec![number_path];
        written.extend(out.commit(true)?);
        Ok((written, number))
    }

    /// Finishes or undoes what a killed writer left unfinished, then marks it done. A
    /// crash or failure half-way leaves the same intent for the next writer, and doing it
    /// again is harmless.
    fn recover(&mut self, intent: &Intent) -> Result<()> {
        let ca_dir = absolute(&self.ca.layout.dir)?;
        match intent {
            Intent::Issue {
                record,
                cert,
                outputs,
                archived,
                replaced,
                replaces,
            } => {
                // Temporary files of the interrupted write, where only this CA writes.
                let mut dirs: Vec<&Path> = outputs
                    .iter()
                    .filter_map(|(p, _)| p.parent())
                    .filter(|d| d.starts_with(&ca_dir))
                    .collect();
                dirs.push(&ca_dir);
                dirs.dedup();
                for dir in dirs {
                    fsio::remove_temporaries(dir);
                }
                lock::crash_point("mid-recovery");
                if holds_certificate(cert, &record.fingerprint_sha256) {
                    // The certificate is in place, so everything else is: record it, and
                    // drop what it replaced.
                    match replaces {
                        Some(old) => self.index.record_renewal(
                            (**record).clone(),
                            &old.serial,
                            old.cert.clone(),
                        )?,
                        None if !self.index.contains_serial(&record.serial) => {
                            self.index.append((**record).clone())?;
                        }
                        None => {}
                    }
                    for (_, aside) in replaced {
                        let _ = std::fs::remove_file(aside);
                    }
                } else {
                    // Remove only files that are byte for byte ours, then put back what
                    // was moved aside.
                    for (path, digest) in outputs {
                        let ours = std::fs::read(path).is_ok_and(|b| fsio::digest(&b) == *digest);
                        if ours {
                            std::fs::remove_file(path).map_err(|source| Error::Write {
                                path: path.clone(),
                                source,
                            })?;
                        }
                    }
                    let moved: Vec<_> = archived.iter().chain(replaced).cloned().collect();
                    if !restore(&moved) {
                        return Err(Error::malformed(
                            &ca_dir,
                            "files moved aside by an interrupted command could not be put back",
                        ));
                    }
                }
            }
            Intent::Crl { days } => {
                fsio::remove_temporaries(&ca_dir);
                self.publish(*days)?;
            }
        }
        self.lock.done()
    }
}

fn issuer_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

/// A renewed certificate, not yet written (see [`Ca::save_renewal`]).
#[derive(Debug)]
pub struct Renewal {
    pub issued: Issued,
    /// What was renewed: its profile decides whether a PKCS#12 bundle is wanted.
    pub request: LeafRequest,
    old_serial: String,
    cert_path: PathBuf,
}

impl Renewal {
    pub(crate) fn new(
        issued: Issued,
        request: LeafRequest,
        old_serial: String,
        cert_path: PathBuf,
    ) -> Self {
        Renewal {
            issued,
            request,
            old_serial,
            cert_path,
        }
    }

    /// The serial of the certificate renewed.
    pub fn old_serial(&self) -> &str {
        &self.old_serial
    }
}

/// The name the files issued together share (NAME.crt, NAME.chain.pem, NAME.key,
/// NAME.p12), from the path of one of the certificate files.
pub fn issued_stem(cert: &Path) -> Option<&str> {
    let name = cert.file_name()?.to_str()?;
    [".chain.pem", ".crt", ".pem"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
}

/// The file issued together with the certificate at `cert` that ends in `ext` (`key`,
/// `p12`): `NAME.key` beside `NAME.crt` or `NAME.chain.pem`.
pub fn issued_beside(cert: &Path, ext: &str) -> PathBuf {
    let stem = issued_stem(cert).unwrap_or("cert");
    cert.with_file_name(format!("{stem}.{ext}"))
}

/// (old path, archived path) of each file a renewal moved aside.
pub type Archived = Vec<(PathBuf, PathBuf)>;

/// The rfc822Name SAN every certificate with an emailAddress also carries.
pub fn add_email_san(subject: &Subject, sans: &mut Vec<San>) {
    if let Some(e) = &subject.email {
        let san = San::Email(e.clone());
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
}

/// Profile rules for leaf names.
fn check_leaf(kind: Kind, subject: &Subject, sans: &[San]) -> Result<()> {
    subject.validate()?;
    for (i, s) in sans.iter().enumerate() {
        if sans[..i].contains(s) {
            return Err(Error::invalid(
                "subjectAltName",
                s.to_string(),
                "listed twice",
            ));
        }
    }
    match kind {
        Kind::Server => {
            if !sans.iter().any(|s| matches!(s, San::Dns(_) | San::Ip(_))) {
                let hint = match names::dns_name(&subject.common_name) {
                    Ok(host) => format!("to grant the CN's name, pass --dns {host}"),
                    Err(_) => format!(
                        "the CN {:?} is not a host name either; pass --dns NAME and/or --ip ADDRESS",
                        subject.common_name
                    ),
                };
                return Err(Error::NoSubjectAltName { hint });
            }
            if let Some(e) = sans.iter().find(|s| matches!(s, San::Email(_))) {
                return Err(Error::invalid(
                    "subjectAltName",
                    e.to_string(),
                    "email addresses belong in client certificates",
                ));
            }
        }
        Kind::Client => {}
        Kind::Root | Kind::Intermediate => {
            return Err(Error::invalid("profile", "CA", "leaves only"));
        }
    }
    Ok(())
}

/// Server SANs from the command line: `--dns` and `--ip`, or, when both are empty, the
/// certificate name itself if it is a host name or an IP address.
pub fn server_sans(name: &str, dns: &[String], ips: &[IpAddr]) -> Result<Vec<San>> {
    let mut sans = Vec::new();
    for d in dns {
        sans.push(San::Dns(names::dns_name(d)?));
    }
    sans.extend(ips.iter().copied().map(San::Ip));
    if sans.is_empty() {
        if let Ok(ip) = name.parse::<IpAddr>() {
            sans.push(San::Ip(ip));
        } else if let Ok(d) = names::dns_name(name) {
            sans.push(San::Dns(d));
        }
    }
    Ok(sans)
}

/// RFC 5280 §5.3.1 revocation reasons, by the names `--reason` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::PrivilegeWithdrawn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "key-compromise",
            Reason::CaCompromise => "ca-compromise",
            Reason::AffiliationChanged => "affiliation-changed",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessation-of-operation",
            Reason::CertificateHold => "certificate-hold",
            Reason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    pub fn from_name(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The reason a CRL entry's reasonCode (RFC 5280 §5.3.1) stands for.
    pub fn from_code(code: u8) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.rcgen() as u8 == code)
    }

    fn rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            Reason::Unspecified => R::Unspecified,
            Reason::KeyCompromise => R::KeyCompromise,
            Reason::CaCompromise => R::CaCompromise,
            Reason::AffiliationChanged => R::AffiliationChanged,
            Reason::Superseded => R::Superseded,
            Reason::CessationOfOperation => R::CessationOfOperation,
            Reason::CertificateHold => R::CertificateHold,
            Reason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Reason::from_name(s).ok_or_else(|| {
            let names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
            format!("unknown reason {s:?}; expected one of {}", names.join(", "))
        })
    }
}

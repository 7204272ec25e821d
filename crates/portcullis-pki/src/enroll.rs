//! One-time enrolment tokens: the operator decides who a certificate is for; the person or
//! machine makes the key and proves it holds it with a CSR; the key never leaves them.
//!
//! A token is 32 random bytes, shown once (hex). The CA directory keeps only its SHA-256
//! (`enroll/tokens.json`, mode 0600), with the subject the operator chose, an expiry and
//! what became of it. Redeeming happens under the directory's writer lock, and the token
//! is marked used on disk before the certificate is written: two requests with one token
//! cannot both get a certificate, and a crash in between burns the token rather than
//! leaving it reusable.
//!
//! The certificate's subject and names come from the token, never from the CSR: a CSR
//! asking for another name, a CA bit or extra extensions gets the token's subject and the
//! client profile, and those requests are reported back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::build::Kind;
use crate::ca::{Issued, LeafRequest, Renewal, SaveOptions, Writer, add_email_san};
use crate::error::{Error, Result};
use crate::fsio;
use crate::index::Status;
use crate::keys::{BroughtKey, KeyType};
use crate::names::Subject;

/// Default validity of an enrolled certificate: short, since renewal is automatic.
pub const DEFAULT_VALIDITY: Duration = Duration::days(30);

/// One token as the CA directory records it (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Short, public name of the token, for `list` and `revoke`.
    pub id: String,
    /// SHA-256 of the secret, lowercase hex.
    pub hash: String,
    pub common_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Validity of the certificate it gives, in seconds.
    pub validity_secs: i64,
    pub created: String,
    pub expires: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<Used>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// When and by whom a token was used, and what it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    pub at: String,
    /// Who presented it (an address, or `cli`).
    pub by: String,
    /// The certificate issued, if issuing got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// Where a token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Open,
    Used,
    Expired,
    Revoked,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Open => "open",
            TokenState::Used => "used",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

impl Token {
    pub fn state(&self, now: OffsetDateTime) -> TokenState {
        if self.revoked.is_some() {
            return TokenState::Revoked;
        }
        if self.used.is_some() {
            return TokenState::Used;
        }
        match OffsetDateTime::parse(&self.expires, &Rfc3339) {
            Ok(end) if end > now => TokenState::Open,
            _ => TokenState::Expired,
        }
    }

    fn subject(&self) -> Subject {
        Subject {
            common_name: self.common_name.clone(),
            organization: self.organization.clone(),
            organizational_units: self.organizational_units.clone(),
            email: self.email.clone(),
            ..Subject::default()
        }
    }
}

/// What the operator decides when making a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub common_name: String,
    pub email: Option<String>,
    pub organizational_units: Vec<String>,
    pub organization: Option<String>,
    /// How long the token can be used.
    pub ttl: Duration,
    /// Validity of the certificate it gives (a minute or more).
    pub validity: Duration,
}

/// Why a token was not accepted. Deliberately the same words for "no such token" and
/// "already used" would hide a replay from the operator's log, so they differ; the
/// client-facing answer may merge them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no such enrolment token")]
    Unknown,
    #[error("this enrolment token was already used")]
    Used,
    #[error("this enrolment token has expired")]
    Expired,
    #[error("this enrolment token was revoked")]
    Revoked,
}

/// Whether `certificate_pem` (its first certificate) is for `key`: a client checks what
/// the gate sent back before it replaces anything.
pub fn issued_for(key: &rcgen::KeyPair, certificate_pem: &str) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&pem.contents) else {
        return false;
    };
    cert.public_key().raw == rcgen::PublicKeyData::subject_public_key_info(key).as_slice()
}

/// The file of tokens in a CA directory.
pub fn tokens_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join("enroll").join("tokens.json")
}

/// The tokens of the CA in `ca_dir` (none when the file does not exist).
pub fn list(ca_dir: &Path) -> Result<Vec<Token>> {
    let path = tokens_path(ca_dir);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let bytes = fsio::read(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::malformed(&path, e.to_string()))
}

fn store(ca_dir: &Path, tokens: &[Token]) -> Result<()> {
    let path = tokens_path(ca_dir);
    if let Some(dir) = path.parent() {
        fsio::private_dir(dir)?;
    }
    let mut text =
        serde_json::to_string_pretty(tokens).map_err(|e| Error::malformed(&path, e.to_string()))?;
    text.push('\n');
    fsio::write_atomic(&path, text.as_bytes(), 0o600, true)
}

fn hash(secret: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        secret.trim().as_bytes(),
    ))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A certificate issued for a token or a renewal: the files written and the chain to send
/// back (leaf first).
#[derive(Debug)]
pub struct Enrolled {
    pub serial: String,
    pub common_name: String,
    pub chain: Vec<Vec<u8>>,
    pub written: Vec<PathBuf>,
    /// What the CSR asked for that was not granted.
    pub not_granted: Vec<String>,
}

/// Whether `secret` names an open token, read without the directory's lock: a caller
/// takes the lock (and [`Writer::redeem`] checks again under it) only for one that
/// might issue, so a flood of made-up tokens cannot starve other writers.
pub fn check_token(dir: &Path, secret: &str) -> Result<std::result::Result<(), Refusal>> {
    let wanted = hash(secret);
    let tokens = list(dir)?;
    let Some(t) = tokens.iter().find(|t| {
        aws_lc_rs::constant_time::verify_slices_are_equal(t.hash.as_bytes(), wanted.as_bytes())
            .is_ok()
    }) else {
        return Ok(Err(Refusal::Unknown));
    };
    Ok(match t.state(now()) {
        TokenState::Open => Ok(()),
        TokenState::Used => Err(Refusal::Used),
        TokenState::Expired => Err(Refusal::Expired),
        TokenState::Revoked => Err(Refusal::Revoked),
    })
}

/// Makes a token for the CA in `dir`; returns its record and the secret, which is shown
/// once and kept nowhere. Needs the directory's lock, not the CA's key.
pub fn create_token(
    dir: &Path,
    req: &TokenRequest,
    wait: std::time::Duration,
) -> Result<(Token, String)> {
    let _lock = lock_ca(dir, wait)?;
    let subject = Subject {
        common_name: req.common_name.clone(),
        organization: req.organization.clone(),
        organizational_units: req.organizational_units.clone(),
        email: req.email.clone(),
        ..Subject::default()
    };
    subject.validate()?;
    if req.validity < Duration::minutes(1) {
        return Err(Error::invalid(
            "--validity",
            req.validity.to_string(),
            "must be at least a minute",
        ));
    }
    if req.ttl <= Duration::ZERO {
        return Err(Error::invalid(
            "--ttl",
            req.ttl.to_string(),
            "must be positive",
        ));
    }
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|e| Error::crypto("random token", e))?;
    let secret = hex::encode(secret);
    let hash = hash(&secret);
    let created = now();
    let token = Token {
        id: hash[..12].to_owned(),
        hash,
        common_name: req.common_name.clone(),
        email: req.email.clone(),
        organizational_units: req.organizational_units.clone(),
        organization: req.organization.clone(),
        validity_secs: req.validity.whole_seconds(),
        created: rfc3339(created),
        expires: rfc3339(created + req.ttl),
        used: None,
        revoked: None,
    };
    let mut tokens = list(dir)?;
    tokens.push(token.clone());
    store(dir, &tokens)?;
    Ok((token, secret))
}

/// Revokes a token by id (or a unique prefix of it). Revoking twice is not an error.
pub fn revoke_token(dir: &Path, id: &str, wait: std::time::Duration) -> Result<Token> {
    let _lock = lock_ca(dir, wait)?;
    let mut tokens = list(dir)?;
    let matching: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !id.is_empty() && t.id.starts_with(id))
        .map(|(i, _)| i)
        .collect();
    let i = match matching.as_slice() {
        [i] => *i,
        [] => {
            return Err(Error::invalid(
                "token id",
                id,
                "no token has this id (see `portcullis pki enroll list`)",
            ));
        }
        _ => {
            return Err(Error::invalid(
                "token id",
                id,
                "more than one token starts with this; give more of the id",
            ));
        }
    };
    if tokens[i].revoked.is_none() {
        tokens[i].revoked = Some(rfc3339(now()));
        store(dir, &tokens)?;
    }
    Ok(tokens[i].clone())
}

fn lock_ca(dir: &Path, wait: std::time::Duration) -> Result<crate::lock::DirLock> {
    if !crate::ca::Layout::new(dir).exists() {
        return Err(Error::NoCa {
            dir: dir.to_owned(),
        });
    }
    Ok(crate::lock::DirLock::acquire(dir, wait)?.0)
}

impl Writer<'_> {
    /// Redeems a token with a CSR: checks the token (open, not expired) and the CSR's
    /// signature (proof of possession), marks the token used, then issues a client
    /// certificate for the token's subject and the CSR's key into `issued/`.
    pub fn redeem(
        &mut self,
        secret: &str,
        csr: &[u8],
        by: &str,
    ) -> Result<std::result::Result<Enrolled, Refusal>> {
        let i = match self.open_token(secret)? {
            Ok(i) => i,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // Proof of possession first: a CSR that does not verify does not burn the token.
        let request = crate::csr::read(csr, Path::new("the request"), Kind::Client)?;
        let mut not_granted = request.dropped.clone();
        let token = &list(self.ca_dir())?[i];
        if request.subject.common_name != token.common_name || !request.sans.is_empty() {
            not_granted.push(format!(
                "the subject and names asked for ({}): the certificate is for {}, as the token says",
                request.subject.one_line(),
                token.common_name
            ));
        }
        self.issue_for_token(i, by, BroughtKey::Public(request.spki), not_granted)
            .map(Ok)
    }

    /// Redeems a token with a key made here, for a browser that cannot make one (the
    /// enrolment page's fallback, when the operator allows it): returns the certificate
    /// and the key, which is written nowhere; the caller hands it over once.
    pub fn redeem_with_new_key(
        &mut self,
        secret: &str,
        by: &str,
    ) -> Result<std::result::Result<(Enrolled, rcgen::KeyPair), Refusal>> {
        let i = match self.open_token(secret)? {
            Ok(i) => i,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let key = KeyType::P256.generate()?;
        let public = rcgen::PublicKeyData::subject_public_key_info(&key);
        let enrolled = self.issue_for_token(i, by, BroughtKey::Public(public), Vec::new())?;
        Ok(Ok((enrolled, key)))
    }

    /// The index of the open token `secret` names, under the lock.
    fn open_token(&self, secret: &str) -> Result<std::result::Result<usize, Refusal>> {
        let tokens = list(self.ca_dir())?;
        let wanted = hash(secret);
        // The hash of a 256-bit secret: comparing it in constant time costs nothing.
        let Some(i) = tokens.iter().position(|t| {
            aws_lc_rs::constant_time::verify_slices_are_equal(t.hash.as_bytes(), wanted.as_bytes())
                .is_ok()
        }) else {
            return Ok(Err(Refusal::Unknown));
        };
        Ok(match tokens[i].state(now()) {
            TokenState::Open => Ok(i),
            TokenState::Used => Err(Refusal::Used),
            TokenState::Expired => Err(Refusal::Expired),
            TokenState::Revoked => Err(Refusal::Revoked),
        })
    }

    /// Marks token `i` used (on disk, before anything is issued), then issues for `key`
    /// with the token's subject and validity, and records the serial on the token.
    fn issue_for_token(
        &mut self,
        i: usize,
        by: &str,
        key: BroughtKey,
        not_granted: Vec<String>,
    ) -> Result<Enrolled> {
        let dir = self.ca_dir().to_owned();
        let mut tokens = list(&dir)?;
        let token = tokens[i].clone();
        tokens[i].used = Some(Used {
            at: rfc3339(now()),
            by: by.to_owned(),
            serial: None,
        });
        store(&dir, &tokens)?;

        let subject = token.subject();
        let mut sans = Vec::new();
        add_email_san(&subject, &mut sans);
        let leaf = LeafRequest {
            kind: Kind::Client,
            subject,
            sans,
            days: 0,
            key_type: KeyType::default(),
        };
        let issued = self.ca().issue_for_key_lasting(
            &leaf,
            key,
            self.index(),
            Duration::seconds(token.validity_secs),
        )?;
        let enrolled = self.save_enrolled(issued, &token.common_name, not_granted)?;
        if let Some(u) = tokens[i].used.as_mut() {
            u.serial = Some(enrolled.serial.clone());
        }
        store(&dir, &tokens)?;
        Ok(enrolled)
    }

    /// Renews `current` (DER) — the certificate the caller's TLS layer verified on the
    /// connection — for the key of `csr`: the same subject and names, read from that
    /// certificate (never from a file, nor filled from `[defaults]`), the same validity, a
    /// new serial; the old one is recorded as renewed. Refused unless the index holds
    /// `current` as valid (not revoked, not expired, not already renewed) and its files
    /// are still this certificate's.
    pub fn renew_for_csr(&mut self, current: &[u8], csr: &[u8]) -> Result<Enrolled> {
        let fingerprint = crate::ca::fingerprint(current);
        let record = self
            .index()
            .records
            .iter()
            .find(|r| r.fingerprint_sha256 == fingerprint)
            .cloned()
            .ok_or_else(|| {
                Error::invalid(
                    "certificate",
                    &fingerprint,
                    "this CA's index does not list it",
                )
            })?;
        match record.status(OffsetDateTime::now_utc()) {
            Status::Valid | Status::Expiring => {}
            other => {
                return Err(Error::invalid(
                    "certificate",
                    &record.serial,
                    format!(
                        "it is {}: only a valid certificate can renew itself",
                        other.as_str()
                    ),
                ));
            }
        }
        let cert_path = self.index().cert_path(&record);
        // Its files may have been replaced (`issue --force` for the same name): renewing
        // would archive another certificate's files.
        if !crate::ca::holds_certificate(&cert_path, &fingerprint) {
            return Err(Error::invalid(
                "certificate",
                &record.serial,
                "its files in the CA directory now hold another certificate; enrol again",
            ));
        }
        let request = crate::csr::read(csr, Path::new("the request"), Kind::Client)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(current)
            .map_err(|e| Error::malformed("the presented certificate", e.to_string()))?;
        let leaf = crate::inspect::leaf_request_from(&parsed, &cert_path, None, None)?;
        // The same validity, to the second: an enrolled certificate may last minutes.
        let lifetime = crate::ca::issued_lifetime(
            parsed.validity().not_before.to_datetime(),
            parsed.validity().not_after.to_datetime(),
        );
        let issued = self.ca().renew_for_key(
            &leaf,
            BroughtKey::Public(request.spki),
            self.index(),
            lifetime,
        )?;
        let renewal = Renewal::new(issued, leaf, record.serial.clone(), cert_path);
        let serial = renewal.issued.record.serial.clone();
        let chain = self.ca().chain_for(&renewal.issued.cert_der);
        let common_name = renewal.request.subject.common_name.clone();
        let (written, _) = self.save_renewal(renewal, None, None)?;
        Ok(Enrolled {
            serial,
            common_name,
            chain,
            written,
            not_granted: request.dropped,
        })
    }

    fn save_enrolled(
        &mut self,
        issued: Issued,
        cn: &str,
        not_granted: Vec<String>,
    ) -> Result<Enrolled> {
        let serial = issued.record.serial.clone();
        let chain = self.ca().chain_for(&issued.cert_der);
        // One file set per certificate: a person enrolled twice keeps both until revoked.
        let stem = format!(
            "{}-{}",
            crate::names::file_stem(cn),
            &serial[..serial.len().min(8)]
        );
        let opts = SaveOptions {
            out_dir: self.ca().layout().issued(),
            stem,
            key_passphrase: None,
            p12: None,
            force: false,
        };
        let written = self.save(issued, &opts)?;
        Ok(Enrolled {
            serial,
            common_name: cn.to_owned(),
            chain,
            written,
            not_granted,
        })
    }
}

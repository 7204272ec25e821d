//! When a certificate is due for renewal, and renewing every due one unattended.
//!
//! A [`Threshold`] says when renewal becomes due: a fixed time before the end (`30d`,
//! `12h`), or when only a share of the lifetime is left (`33%`). The default is the one
//! smallstep's `step certificate needs-renewal` uses: once two thirds of the lifetime
//! have passed, so a 90-day certificate renews with 30 days left and a 24-hour one with 8
//! hours left.
//!
//! Choosing what is due ([`due_records`], [`Threshold::is_due`]) is pure: the time is
//! passed in. [`Ca::renew_due`] does the I/O: it renews each due certificate in turn,
//! under the directory's lock, and reports what it did with each.
//!
//! ```
//! use portcullis_pki::renewal::Threshold;
//! use time::macros::datetime;
//!
//! let within: Threshold = "30d".parse().unwrap();
//! let start = datetime!(2030-01-01 0:00 UTC);
//! let end = datetime!(2030-04-01 0:00 UTC);
//! assert!(!within.is_due(start, end, datetime!(2030-02-15 0:00 UTC)));
//! assert!(within.is_due(start, end, datetime!(2030-03-15 0:00 UTC)));
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::ca::{self, Archived, Ca};
use crate::error::{Error, Result};
use crate::index::{Index, KeyOrigin, Record};
use crate::keys::{self, KeyType};
use crate::p12::P12Format;
use crate::secret::Passphrase;

/// When a certificate is due for renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// When it expires within this time.
    Within(Duration),
    /// When no more than `num / den` of its lifetime is left.
    Remaining { num: u32, den: u32 },
}

impl Default for Threshold {
    /// Two thirds of the lifetime passed, as `step certificate needs-renewal`.
    fn default() -> Self {
        Threshold::Remaining { num: 1, den: 3 }
    }
}

impl Threshold {
    /// The moment renewal becomes due for a certificate valid from `not_before` to
    /// `not_after`.
    pub fn due_at(&self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
        match *self {
            Threshold::Within(d) => not_after.checked_sub(d).unwrap_or(not_before),
            Threshold::Remaining { num, den } => {
                let lifetime = (not_after - not_before).whole_seconds().max(0);
                let left = i128::from(lifetime) * i128::from(num) / i128::from(den.max(1));
                not_after - Duration::seconds(i64::try_from(left).unwrap_or(lifetime))
            }
        }
    }

    /// Whether renewal is due at `now`. An expired certificate is due.
    pub fn is_due(
        &self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> bool {
        now >= self.due_at(not_before, not_after)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Threshold::Within(d) => write!(f, "{}", human(d)),
            Threshold::Remaining { num: 1, den: 3 } => {
                f.write_str("the last third of its lifetime")
            }
            Threshold::Remaining { num, den: 100 } => {
                write!(f, "the last {num}% of its lifetime")
            }
            Threshold::Remaining { num, den } => write!(f, "the last {num}/{den} of its lifetime"),
        }
    }
}

impl FromStr for Threshold {
    type Err = String;
    /// `30d`, `12h`, `1d12h`, `90m`, `2w`, or a share of the lifetime left: `33%`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            return match p.trim().parse::<u32>() {
                Ok(num @ 1..=100) => Ok(Threshold::Remaining { num, den: 100 }),
                _ => Err(format!(
                    "{s:?}: a share of the lifetime is a whole percentage from 1% to 100%"
                )),
            };
        }
        parse_duration(s).map(Threshold::Within)
    }
}

/// `30d`, `12h`, `1d12h`, `90m`, `45s`, `2w`: numbers each followed by a unit.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let hint = "use a number and a unit: 30d, 12h, 90m, 45s, 2w (or 1d12h)";
    let mut total = Duration::ZERO;
    let mut digits = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(format!("{s:?}: unknown unit {c:?}; {hint}")),
        };
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("{s:?}: a number must come before {c:?}; {hint}"))?;
        let part = n
            .checked_mul(unit)
            .ok_or_else(|| format!("{s:?}: too long"))?;
        total = total
            .checked_add(Duration::seconds(part))
            .ok_or_else(|| format!("{s:?}: too long"))?;
        digits.clear();
        any = true;
    }
    if !digits.is_empty() || !any {
        return Err(format!("{s:?}: no unit; {hint}"));
    }
    Ok(total)
}

/// `2592000 s` → `30d`; `90 min` → `1h30m`.
fn human(d: Duration) -> String {
    let mut secs = d.whole_seconds();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

/// Whether a record is the certificate in use: neither revoked nor replaced by a renewal.
pub fn in_force(rec: &Record) -> bool {
    rec.revoked.is_none() && rec.replaced_by.is_none()
}

/// A record's validity; `None` when a date does not parse.
fn validity(rec: &Record) -> Option<(OffsetDateTime, OffsetDateTime)> {
    Some((
        OffsetDateTime::parse(&rec.not_before, &Rfc3339).ok()?,
        OffsetDateTime::parse(&rec.not_after, &Rfc3339).ok()?,
    ))
}

/// The records in force (not revoked, not renewed) that are due at `now`, expired ones
/// included, in index order. A record whose dates do not parse counts as due: better a
/// nag than a certificate nobody renews.
pub fn due_records<'a>(
    records: &'a [Record],
    threshold: &Threshold,
    now: OffsetDateTime,
) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| in_force(r))
        .filter(|r| validity(r).is_none_or(|(start, end)| threshold.is_due(start, end, now)))
        .collect()
}

/// What `needs-renewal` found in a certificate file.
#[derive(Debug, Clone)]
pub struct FileCheck {
    pub serial: String,
    pub not_after: OffsetDateTime,
    /// When renewal becomes (or became) due.
    pub due_at: OffsetDateTime,
    pub due: bool,
}

/// Whether the certificate in `path` (the first one of a chain) is due at `now`.
pub fn check_file(path: &Path, threshold: &Threshold, now: OffsetDateTime) -> Result<FileCheck> {
    let der = ca::read_certs(path)?.swap_remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| Error::malformed(path, format!("corrupt certificate ({e})")))?;
    let start = cert.validity().not_before.to_datetime();
    let end = cert.validity().not_after.to_datetime();
    let due_at = threshold.due_at(start, end);
    Ok(FileCheck {
        serial: crate::build::serial_hex(cert.raw_serial()),
        not_after: end,
        due_at,
        due: now >= due_at,
    })
}

// === impl Ca::renew_due ===

/// How [`Ca::renew_due`] renews.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    pub threshold: Threshold,
    /// Validity of the new certificates; `None`: each keeps its old lifetime.
    pub days: Option<u32>,
    /// Key type of the new keys; `None`: each keeps its old key's type.
    pub key_type: Option<KeyType>,
    /// Encrypts the new key of each certificate whose old key was encrypted (a plain key
    /// stays plain: whatever reads it has no passphrase). Without it, a certificate whose
    /// old key was encrypted is skipped rather than given an unencrypted one.
    pub key_passphrase: Option<Passphrase>,
    /// The password of new PKCS#12 bundles. Without it (and without `no_p12`), a client
    /// certificate with a bundle beside it is skipped.
    pub p12: Option<(Passphrase, P12Format)>,
    /// Renew client certificates without writing a new bundle (the old one is archived).
    pub no_p12: bool,
    /// How long to wait for the directory's lock, for each certificate.
    pub wait: std::time::Duration,
    pub now: OffsetDateTime,
}

/// What happened to one due certificate.
#[derive(Debug)]
pub enum Outcome {
    Renewed {
        old: String,
        new: String,
        /// The certificate file, now holding the new certificate.
        cert: PathBuf,
        written: Vec<PathBuf>,
        archived: Archived,
        /// The new certificate is due at once too: its lifetime is within the threshold.
        /// Give the renewals a longer life, or use a shorter threshold.
        due_again: bool,
    },
    /// Not renewed, on purpose; `reason` says why and what to do.
    Skipped {
        serial: String,
        subject: String,
        cert: PathBuf,
        reason: String,
    },
    Failed {
        serial: String,
        subject: String,
        cert: PathBuf,
        error: Error,
    },
}

impl Ca {
    /// Renews every certificate of this CA in force that is due by `opts.threshold` at
    /// `opts.now` and can be renewed unattended, one after the other, each under the
    /// directory's lock (taken and released per certificate, so other commands are not
    /// kept waiting for a long batch and each renewal is checked against the index as it
    /// stands). `report` sees each outcome as it happens; all are returned.
    ///
    /// Skipped: expired certificates (renewing one nobody renewed in time could bring
    /// back access meant to lapse: renew it by hand), certificates whose file is gone or
    /// holds another certificate, ones signed from a CSR (no key beside: the key is the
    /// requester's), ones whose key was encrypted when no key passphrase is given, and
    /// client certificates with a PKCS#12 bundle when no password is given.
    pub fn renew_due(
        &self,
        opts: &BatchOptions,
        mut report: impl FnMut(&Outcome),
    ) -> Result<Vec<Outcome>> {
        let index = Index::load(&self.layout().index())?;
        let due: Vec<(Record, PathBuf)> = due_records(&index.records, &opts.threshold, opts.now)
            .into_iter()
            .map(|r| (r.clone(), index.cert_path(r)))
            .collect();
        let mut outcomes = Vec::with_capacity(due.len());
        for (rec, cert) in due {
            let outcome = self.renew_one(&rec, cert, opts);
            report(&outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn renew_one(&self, rec: &Record, cert: PathBuf, opts: &BatchOptions) -> Outcome {
        let skip = |reason: String| Outcome::Skipped {
            serial: rec.serial.clone(),
            subject: rec.subject.clone(),
            cert: cert.clone(),
            reason,
        };
        let (p12, encrypted) = match unattended(rec, &cert, opts) {
            Ok(found) => found,
            Err(reason) => return skip(reason),
        };
        let key_passphrase = opts.key_passphrase.clone().filter(|_| encrypted);
        let fail = |error: Error| Outcome::Failed {
            serial: rec.serial.clone(),
            subject: rec.subject.clone(),
            cert: cert.clone(),
            error,
        };
        let mut writer = match self.writer_waiting(opts.wait) {
            Ok(w) => w,
            Err(e) => return fail(e),
        };
        // Under the lock: another command may have renewed or revoked it meanwhile.
        match writer.index().find(&rec.serial) {
            Some(now) if in_force(now) => {}
            _ => return skip("renewed or revoked by another command meanwhile".into()),
        }
        let renewal = match self.renew(&cert, opts.days, opts.key_type, writer.index()) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let new = renewal.issued.record.serial.clone();
        let due_again = due_records(
            std::slice::from_ref(&renewal.issued.record),
            &opts.threshold,
            opts.now,
        )
        .len()
            == 1;
        match writer.save_renewal(renewal, key_passphrase, p12) {
            Ok((written, archived)) => Outcome::Renewed {
                old: rec.serial.clone(),
                new,
                cert,
                written,
                archived,
                due_again,
            },
            Err(e) => fail(e),
        }
    }
}

/// Whether `rec`, whose certificate is at `cert`, can be renewed without anyone at hand;
/// if so, the PKCS#12 options its renewal takes and whether its old key was encrypted
/// (the new one is, then), else why not and what to do.
fn unattended(
    rec: &Record,
    cert: &Path,
    opts: &BatchOptions,
) -> std::result::Result<(Option<(Passphrase, P12Format)>, bool), String> {
    if validity(rec).is_some_and(|(_, end)| end <= opts.now) {
        return Err(format!(
            "expired on {}: renew it by hand (portcullis pki renew {}) if it is still needed, or revoke it",
            rec.not_after,
            cert.display()
        ));
    }
    let holds = ca::read_certs(cert)
        .ok()
        .and_then(|c| c.into_iter().next())
        .map(|der| ca::fingerprint(&der) == rec.fingerprint_sha256);
    match holds {
        None => {
            return Err(format!(
                "{} is missing or unreadable: put the certificate back, or revoke serial {}",
                cert.display(),
                rec.serial
            ));
        }
        Some(false) => {
            return Err(format!(
                "{} now holds another certificate (replaced by hand?): renew that one by name",
                cert.display()
            ));
        }
        Some(true) => {}
    }
    if rec.key_origin == KeyOrigin::Owner {
        return Err(OWNERS_KEY.into());
    }
    let key = ca::issued_beside(cert, "key");
    let Ok(key_text) = std::fs::read_to_string(&key) else {
        return Err(format!(
            "signed from a CSR (no {} beside it): its key belongs to whoever made the CSR; sign their new CSR, or renew it by hand with --new-key",
            key.display()
        ));
    };
    let encrypted = keys::is_encrypted(&key_text);
    if encrypted && opts.key_passphrase.is_none() {
        return Err(format!(
            "{} is encrypted: give a passphrase for the new keys (--key-passphrase-file or PORTCULLIS_KEY_PASSPHRASE) rather than get an unencrypted one",
            key.display()
        ));
    }
    let bundle = ca::issued_beside(cert, "p12");
    if !bundle.exists() || opts.no_p12 {
        return Ok((None, encrypted));
    }
    match &opts.p12 {
        Some(p12) => Ok((Some(p12.clone()), encrypted)),
        None => Err(format!(
            "has a PKCS#12 bundle ({}): give its new password (--p12-password-file or PORTCULLIS_P12_PASSWORD), or --no-p12 to renew without one",
            bundle.display()
        )),
    }
}

/// Why a certificate for its owner's key is not renewed here.
pub const OWNERS_KEY: &str = "its key is its owner's (signed from a CSR, or issued with --key), so the CA does not replace it: sign the owner's new CSR (pki sign), or issue again for their key (pki issue … --key FILE --force)";

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rec(serial: &str, not_before: &str, not_after: &str) -> Record {
        Record {
            serial: serial.into(),
            profile: "client".into(),
            subject: "CN=x".into(),
            sans: vec![],
            not_before: not_before.into(),
            not_after: not_after.into(),
            fingerprint_sha256: String::new(),
            cert: "issued/x.crt".into(),
            revoked: None,
            replaced_by: None,
            key_origin: Default::default(),
        }
    }

    #[test]
    fn durations_and_shares_parse_and_print() {
        assert_eq!("30d".parse(), Ok(Threshold::Within(Duration::days(30))));
        assert_eq!("12h".parse(), Ok(Threshold::Within(Duration::hours(12))));
        assert_eq!("1d12h".parse(), Ok(Threshold::Within(Duration::hours(36))));
        assert_eq!("2w".parse(), Ok(Threshold::Within(Duration::days(14))));
        assert_eq!(
            "33%".parse(),
            Ok(Threshold::Remaining { num: 33, den: 100 })
        );
        for bad in ["30", "", "d", "30x", "0%", "101%", "-3d", "1.5h"] {
            let e = bad.parse::<Threshold>().unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert_eq!(Threshold::Within(Duration::hours(36)).to_string(), "1d12h");
        assert_eq!(
            Threshold::default().to_string(),
            "the last third of its lifetime"
        );
    }

    #[test]
    fn the_default_is_due_once_two_thirds_of_the_lifetime_passed() {
        let t = Threshold::default();
        let start = datetime!(2030-01-01 0:00 UTC);
        let end = datetime!(2030-01-31 0:00 UTC); // 30 days: due from day 20
        assert_eq!(t.due_at(start, end), datetime!(2030-01-21 0:00 UTC));
        assert!(!t.is_due(start, end, datetime!(2030-01-20 23:59 UTC)));
        assert!(t.is_due(start, end, datetime!(2030-01-21 0:00 UTC)));
        assert!(
            t.is_due(start, end, datetime!(2031-01-01 0:00 UTC)),
            "expired"
        );
    }

    #[test]
    fn due_records_are_the_ones_in_force_that_expire_within_the_window() {
        let now = datetime!(2030-06-01 0:00 UTC);
        let mut renewed = rec("03", "2030-01-01T00:00:00Z", "2030-06-10T00:00:00Z");
        renewed.replaced_by = Some("05".into());
        let mut revoked = rec("04", "2030-01-01T00:00:00Z", "2030-06-10T00:00:00Z");
        revoked.revoked = Some(crate::index::Revocation {
            at: "2030-02-01T00:00:00Z".into(),
            reason: "superseded".into(),
        });
        let records = vec![
            rec("01", "2030-01-01T00:00:00Z", "2030-06-10T00:00:00Z"), // in 9 days
            rec("02", "2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z"), // in 7 months
            renewed,
            revoked,
            rec("05", "2030-05-01T00:00:00Z", "2031-05-01T00:00:00Z"),
            rec("06", "2029-01-01T00:00:00Z", "2030-05-01T00:00:00Z"), // expired
            rec("07", "garbled", "2031-01-01T00:00:00Z"),
        ];
        let within = Threshold::Within(Duration::days(30));
        let serials: Vec<_> = due_records(&records, &within, now)
            .iter()
            .map(|r| r.serial.as_str())
            .collect();
        assert_eq!(serials, ["01", "06", "07"]);
        let later = datetime!(2030-12-15 0:00 UTC);
        let serials: Vec<_> = due_records(&records, &within, later)
            .iter()
            .map(|r| r.serial.as_str())
            .collect();
        assert_eq!(serials, ["01", "02", "06", "07"]);
    }
}

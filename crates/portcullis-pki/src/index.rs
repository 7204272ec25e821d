//! The CA's memory: one JSON object per line in `index.jsonl`, one line per certificate
//! issued. Issuing appends a line (a single `write`, so a crash cannot leave half a line
//! among good ones); revoking and renewing rewrite the file atomically.
//!
//! Where a certificate's files are (`cert`) is stored relative to the CA directory when
//! they are inside it (`issued/alice.crt`, `archive/SERIAL/alice.crt`), and as an absolute
//! path otherwise: right from any working directory, and still right when the CA directory
//! is moved, restored from a backup or mounted elsewhere. [`Index::cert_path`] gives the
//! path to open. Indexes written before kept the path as given on the command line,
//! relative to the directory the command ran in; [`Index::load`] finds those files again
//! where it can (see [`Index::load`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};
use crate::fsio;

/// Certificates expiring within this many days are listed as "expiring".
pub const EXPIRING_SOON_DAYS: i64 = 30;

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Uppercase hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    /// `server` or `client`.
    pub profile: String,
    pub subject: String,
    pub sans: Vec<String>,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// Lowercase hex ([`crate::ca::fingerprint`]). Indexes written before that spelling
    /// held `AB:CD:…`; they read back in today's.
    #[serde(deserialize_with = "lowercase_hex")]
    pub fingerprint_sha256: String,
    /// Where the certificate is: relative to the CA directory when inside it, else
    /// absolute (see the module docs). Open it with [`Index::cert_path`].
    pub cert: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
    /// The serial of the certificate `pki renew` issued in its place; its files then moved
    /// to `archive/SERIAL/`. Absent in indexes written before renewals were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// Whose private key the certificate is for. Absent in older indexes (and for keys
    /// the CA made): [`KeyOrigin::Made`].
    #[serde(default, skip_serializing_if = "KeyOrigin::is_made")]
    pub key_origin: KeyOrigin,
}

/// Whose private key a certificate is for, which decides what a renewal may do with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    /// Made by the CA with the certificate (`issue`): `NAME.key` beside it is the CA's to
    /// archive and replace when renewing.
    #[default]
    Made,
    /// The certificate owner's (`sign` of a CSR, `issue --key`): never moved or replaced;
    /// a renewal is a new request from the owner.
    Owner,
}

impl KeyOrigin {
    fn is_made(&self) -> bool {
        *self == KeyOrigin::Made
    }
}

fn lowercase_hex<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let s = String::deserialize(d)?;
    Ok(s.chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect())
}

/// When and why a certificate was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// RFC 3339.
    pub at: String,
    pub reason: String,
}

/// The status `pki list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Valid,
    Expiring,
    Expired,
    Revoked,
    /// Replaced by a renewal: the certificate may still work until it expires, but its
    /// successor is the one in use.
    Renewed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Expiring => "expiring",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
            Status::Renewed => "renewed",
        }
    }
}

impl Record {
    /// Status at `now`. A record whose date does not parse counts as expired: we would
    /// rather nag than call an unreadable certificate valid.
    /// Revoked wins over renewed (a revoked certificate stops working; a renewed one
    /// keeps working until it expires).
    pub fn status(&self, now: OffsetDateTime) -> Status {
        if self.revoked.is_some() {
            return Status::Revoked;
        }
        if self.replaced_by.is_some() {
            return Status::Renewed;
        }
        match OffsetDateTime::parse(&self.not_after, &Rfc3339) {
            Ok(end) if end <= now => Status::Expired,
            Ok(end) if (end - now).whole_days() < EXPIRING_SOON_DAYS => Status::Expiring,
            Ok(_) => Status::Valid,
            Err(_) => Status::Expired,
        }
    }
}

/// The loaded index.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    pub records: Vec<Record>,
}

impl Index {
    /// Loads `path`; a missing file is an empty index.
    pub fn load(path: &Path) -> Result<Index> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut records = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec = serde_json::from_str(line).map_err(|e| Error::Index {
                path: path.to_owned(),
                line: n + 1,
                reason: e.to_string(),
            })?;
            records.push(rec);
        }
        let mut index = Index {
            path: path.to_owned(),
            records,
        };
        for i in 0..index.records.len() {
            if let Some(found) = index.find_legacy(&index.records[i].cert) {
                index.records[i].cert = found;
            }
        }
        Ok(index)
    }

    /// The CA directory this index belongs to.
    pub fn ca_dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// The path to open a record's certificate at, from the current working directory:
    /// the CA directory as this index was loaded through, joined with a relative `cert`.
    pub fn cert_path(&self, rec: &Record) -> PathBuf {
        let stored = Path::new(&rec.cert);
        if stored.is_absolute() {
            stored.to_owned()
        } else {
            self.ca_dir().join(stored)
        }
    }

    /// How `file` is stored in this index: relative to the CA directory when it is inside
    /// it, else absolute. Symbolic links and `..` in either path are resolved as far as
    /// the paths exist, so `--dir ../pki` and `--out /srv/pki/issued` agree.
    pub fn stored_path(&self, file: &Path) -> Result<String> {
        let file = real_path(file)?;
        let dir = real_path(self.ca_dir())?;
        Ok(match file.strip_prefix(&dir) {
            Ok(inside) => inside.display().to_string(),
            Err(_) => file.display().to_string(),
        })
    }

    /// A record written before paths were stored relative to the CA directory holds the
    /// path as given then, relative to the working directory of that command (usually
    /// `pki/issued/NAME.crt`). When it does not lead to a file from the CA directory,
    /// look for the file there under a shorter tail of the path (`issued/NAME.crt`), then
    /// from the current working directory. `None`: the stored path stands.
    fn find_legacy(&self, cert: &str) -> Option<String> {
        let stored = Path::new(cert);
        if stored.is_absolute() || self.ca_dir().join(stored).exists() {
            return None;
        }
        let parts: Vec<_> = stored.components().collect();
        for skip in 1..parts.len() {
            let tail: PathBuf = parts[skip..].iter().collect();
            if self.ca_dir().join(&tail).is_file() {
                return Some(tail.display().to_string());
            }
        }
        if stored.is_file() {
            return self.stored_path(stored).ok();
        }
        None
    }

    /// Finds a record by serial; accepts any case and OpenSSL's colon-separated form.
    pub fn find(&self, serial: &str) -> Option<&Record> {
        let want = normalize_serial(serial);
        self.records
            .iter()
            .find(|r| normalize_serial(&r.serial) == want)
    }

    pub fn contains_serial(&self, serial: &str) -> bool {
        self.find(serial).is_some()
    }

    /// Appends one record to the file (and to `self`). Only under the CA directory's lock:
    /// see [`crate::ca::Writer`].
    pub(crate) fn append(&mut self, rec: Record) -> Result<()> {
        let mut line = serde_json::to_string(&rec).map_err(|e| Error::Index {
            path: self.path.clone(),
            line: self.records.len() + 1,
            reason: e.to_string(),
        })?;
        line.push('\n');
        let err = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        // A failed write (a full disk) must not leave half a line, nor a line for a
        // certificate the caller then removes: cut the file back to where it was.
        let before = f.metadata().map_err(err)?.len();
        if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.sync_data()) {
            let _ = f.set_len(before);
            return Err(err(e));
        }
        self.records.push(rec);
        Ok(())
    }

    /// Marks `serial` revoked and rewrites the file atomically. Only under the CA
    /// directory's lock.
    pub(crate) fn revoke(
        &mut self,
        serial: &str,
        at: OffsetDateTime,
        reason: &str,
    ) -> Result<Record> {
        let want = normalize_serial(serial);
        let index = self.path.clone();
        let rec = self
            .records
            .iter_mut()
            .find(|r| normalize_serial(&r.serial) == want)
            .ok_or_else(|| Error::UnknownSerial {
                serial: want.clone(),
                index,
            })?;
        if let Some(r) = &rec.revoked {
            return Err(Error::AlreadyRevoked {
                serial: want,
                at: r.at.clone(),
            });
        }
        rec.revoked = Some(Revocation {
            at: at.format(&Rfc3339).unwrap_or_default(),
            reason: reason.to_owned(),
        });
        let rec = rec.clone();
        self.rewrite()?;
        Ok(rec)
    }

    /// Records `new` as the renewal of `old_serial`: the new record, and on the old one
    /// the new serial and where its files went (`old_cert`, stored form), in one atomic
    /// rewrite — both or neither. Doing it again changes nothing, so recovery after a
    /// crash can repeat it. An old serial missing from the index (a lost index) only
    /// records the new certificate. Only under the CA directory's lock.
    pub(crate) fn record_renewal(
        &mut self,
        new: Record,
        old_serial: &str,
        old_cert: Option<String>,
    ) -> Result<()> {
        let before = self.records.clone();
        let mut changed = false;
        if !self.contains_serial(&new.serial) {
            self.records.push(new.clone());
            changed = true;
        }
        let want = normalize_serial(old_serial);
        if let Some(old) = self
            .records
            .iter_mut()
            .find(|r| normalize_serial(&r.serial) == want)
            && old.replaced_by.as_deref() != Some(new.serial.as_str())
        {
            old.replaced_by = Some(new.serial.clone());
            if let Some(cert) = old_cert {
                old.cert = cert;
            }
            changed = true;
        }
        if changed && let Err(e) = self.rewrite() {
            self.records = before;
            return Err(e);
        }
        Ok(())
    }

    fn rewrite(&self) -> Result<()> {
        let mut text = String::new();
        for r in &self.records {
            let line = serde_json::to_string(r).map_err(|e| Error::Index {
                path: self.path.clone(),
                line: 0,
                reason: e.to_string(),
            })?;
            text.push_str(&line);
            text.push('\n');
        }
        fsio::write_atomic(&self.path, text.as_bytes(), fsio::PUBLIC, true)
    }
}

/// `path` made absolute, with its longest existing ancestor resolved (symbolic links,
/// `..`) and the rest, not yet created, appended as given.
fn real_path(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut rest = Vec::new();
    let mut base = abs.as_path();
    loop {
        if let Ok(real) = base.canonicalize() {
            return Ok(rest.iter().rev().fold(real, |p, c| p.join(c)));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                base = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// `03:9a:0B` → `39A0B`: the form serials are compared in (any case, colons or not,
/// leading zeros ignored).
pub fn normalize_serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(serial: &str, not_after: &str) -> Record {
        Record {
            serial: serial.into(),
            profile: "client".into(),
            subject: "CN=x".into(),
            sans: vec![],
            not_before: "2020-01-01T00:00:00Z".into(),
            not_after: not_after.into(),
            fingerprint_sha256: String::new(),
            cert: "x.crt".into(),
            revoked: None,
            replaced_by: None,
            key_origin: Default::default(),
        }
    }

    #[test]
    fn fingerprints_written_in_the_old_colon_spelling_read_back_in_todays() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.jsonl");
        let mut old = serde_json::to_value(rec("0A", "2999-01-01T00:00:00Z")).unwrap();
        old["fingerprint_sha256"] = "9D:51:1C:B6".into();
        std::fs::write(&p, format!("{old}\n")).unwrap();
        let idx = Index::load(&p).unwrap();
        assert_eq!(idx.records[0].fingerprint_sha256, "9d511cb6");
    }

    #[test]
    fn append_revoke_reload() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.jsonl");
        let mut idx = Index::load(&p).unwrap();
        idx.append(rec("0A", "2999-01-01T00:00:00Z")).unwrap();
        idx.append(rec("0B", "2999-01-01T00:00:00Z")).unwrap();
        idx.revoke("0b", OffsetDateTime::now_utc(), "keyCompromise")
            .unwrap();
        let again = Index::load(&p).unwrap();
        assert_eq!(again.records.len(), 2);
        assert!(again.find("0A").unwrap().revoked.is_none());
        assert!(again.find("0:b").unwrap().revoked.is_some());
        let mut again = again;
        assert!(matches!(
            again.revoke("0B", OffsetDateTime::now_utc(), "x"),
            Err(Error::AlreadyRevoked { .. })
        ));
        assert!(matches!(
            again.revoke("FF", OffsetDateTime::now_utc(), "x"),
            Err(Error::UnknownSerial { .. })
        ));
    }

    #[test]
    fn status() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(rec("1", "2999-01-01T00:00:00Z").status(now), Status::Valid);
        assert_eq!(
            rec("1", "2001-01-01T00:00:00Z").status(now),
            Status::Expired
        );
        let soon = (now + time::Duration::days(3)).format(&Rfc3339).unwrap();
        assert_eq!(rec("1", &soon).status(now), Status::Expiring);
    }

    #[test]
    fn a_renewal_marks_the_old_record_in_the_same_write_and_can_be_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.jsonl");
        let mut idx = Index::load(&p).unwrap();
        idx.append(rec("0A", "2999-01-01T00:00:00Z")).unwrap();
        let new = rec("0B", "2999-01-01T00:00:00Z");
        idx.record_renewal(new.clone(), "a", Some("archive/0A/x.crt".into()))
            .unwrap();
        // Recovery after a crash repeats it: nothing changes.
        idx.record_renewal(new, "0A", Some("archive/0A/x.crt".into()))
            .unwrap();
        let again = Index::load(&p).unwrap();
        assert_eq!(again.records.len(), 2);
        let old = again.find("0A").unwrap();
        assert_eq!(old.replaced_by.as_deref(), Some("0B"));
        assert_eq!(old.cert, "archive/0A/x.crt");
        let now = OffsetDateTime::now_utc();
        assert_eq!(old.status(now), Status::Renewed);
        assert_eq!(again.find("0B").unwrap().status(now), Status::Valid);
    }

    #[test]
    fn an_index_from_before_renewals_and_ca_relative_paths_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("pki");
        std::fs::create_dir_all(ca.join("issued")).unwrap();
        std::fs::write(ca.join("issued/alice.crt"), "x").unwrap();
        // As an older version wrote it, run from `dir` with `--dir pki`: no replaced_by,
        // the path relative to that working directory.
        let line = r#"{"serial":"0A","profile":"client","subject":"CN=alice","sans":[],"not_before":"2020-01-01T00:00:00Z","not_after":"2999-01-01T00:00:00Z","fingerprint_sha256":"","cert":"pki/issued/alice.crt"}"#;
        std::fs::write(ca.join("index.jsonl"), format!("{line}\n")).unwrap();
        let idx = Index::load(&ca.join("index.jsonl")).unwrap();
        let r = &idx.records[0];
        assert_eq!(r.replaced_by, None);
        assert_eq!(r.cert, "issued/alice.crt");
        assert_eq!(idx.cert_path(r), ca.join("issued/alice.crt"));
    }

    #[test]
    fn paths_are_stored_relative_to_the_ca_directory_inside_it_and_absolute_outside() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("pki");
        std::fs::create_dir_all(&ca).unwrap();
        let idx = Index::load(&ca.join("index.jsonl")).unwrap();
        // Inside, even through `..` and before the file's directory exists.
        let via = ca.join("..").join("pki").join("issued").join("a.crt");
        assert_eq!(idx.stored_path(&via).unwrap(), "issued/a.crt");
        let outside = dir.path().join("srv").join("a.crt");
        let stored = idx.stored_path(&outside).unwrap();
        assert!(Path::new(&stored).is_absolute(), "{stored}");
        assert!(stored.ends_with("srv/a.crt"), "{stored}");
    }

    #[test]
    fn corrupt_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.jsonl");
        std::fs::write(&p, "{\"serial\":\n").unwrap();
        let e = Index::load(&p).unwrap_err().to_string();
        assert!(e.contains("index.jsonl, line 1"), "{e}");
    }
}

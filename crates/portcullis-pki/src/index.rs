//! The CA's memory: one JSON object per line in `index.jsonl`, one line per certificate
//! issued. Issuing appends a line (a single `write`, so a crash cannot leave half a line
//! among good ones); revoking rewrites the file atomically.

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
    /// Where the certificate was written, as given on the command line.
    pub cert: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
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
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Expiring => "expiring",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }
}

impl Record {
    /// Status at `now`. A record whose date does not parse counts as expired: we would
    /// rather nag than call an unreadable certificate valid.
    pub fn status(&self, now: OffsetDateTime) -> Status {
        if self.revoked.is_some() {
            return Status::Revoked;
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
        Ok(Index {
            path: path.to_owned(),
            records,
        })
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
    fn corrupt_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.jsonl");
        std::fs::write(&p, "{\"serial\":\n").unwrap();
        let e = Index::load(&p).unwrap_err().to_string();
        assert!(e.contains("index.jsonl, line 1"), "{e}");
    }
}

//! File writes that cannot leave a half-written key behind.
//!
//! Every file goes to a temporary file in the destination directory, is flushed to disk,
//! and is then renamed into place. Without `force` the rename refuses to replace an
//! existing file (atomically, so two concurrent runs cannot both win). A command that
//! writes several files plans them all first ([`Outputs`]) and removes the ones it already
//! wrote if a later one fails.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Mode for private keys and anything else secret.
pub const SECRET: u32 = 0o600;
/// Mode for certificates, chains and CRLs.
pub const PUBLIC: u32 = 0o644;

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub fn private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` atomically with the given mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<()> {
    let mut out = Outputs::new();
    out.add(path.to_owned(), bytes, mode);
    out.commit(force).map(drop)
}

/// A set of files to write together: all or nothing.
#[derive(Debug, Default)]
pub struct Outputs {
    files: Vec<(PathBuf, Vec<u8>, u32)>,
}

impl Outputs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, path: PathBuf, bytes: impl Into<Vec<u8>>, mode: u32) {
        self.files.push((path, bytes.into(), mode));
    }

    /// The destinations, in the order they are renamed into place, each with the SHA-256
    /// of what will be written there.
    pub fn digests(&self) -> Vec<(PathBuf, String)> {
        self.files
            .iter()
            .map(|(p, bytes, _)| (p.clone(), digest(bytes)))
            .collect()
    }

    /// Checks every destination first, then writes in three passes: create and fill
    /// every temporary file, flush them all to disk, then rename them all into place.
    /// Every file is still on disk before its name appears, but the flushes share one
    /// journal commit instead of paying for one each. On failure, files already renamed
    /// by this call are removed again and the first error is returned.
    pub fn commit(self, force: bool) -> Result<Vec<PathBuf>> {
        if let Some((path, ..)) = self.files.iter().find(|(p, ..)| !force && p.exists()) {
            return Err(Error::Exists { path: path.clone() });
        }
        let mut staged = Vec::with_capacity(self.files.len());
        for (path, bytes, mode) in &self.files {
            staged.push((path, stage(path, bytes, *mode)?));
        }
        for (path, tmp) in &staged {
            tmp.as_file().sync_all().map_err(|source| Error::Write {
                path: (*path).clone(),
                source,
            })?;
        }
        let mut written = Vec::with_capacity(staged.len());
        for (path, tmp) in staged {
            if let Err(e) = persist(tmp, path, force) {
                for done in &written {
                    let _ = fs::remove_file(done);
                }
                return Err(e);
            }
            written.push(path.clone());
            crate::lock::crash_point("mid-commit");
        }
        Ok(written)
    }
}

/// The SHA-256 of `bytes`, in hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// Removes the temporary files a killed writer left in `dir` (they are only ever made
/// under the CA directory's lock, which the caller holds).
pub fn remove_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(".portcullis-") {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Creates a temporary file next to `path` (creating the directory, 0700, if needed)
/// holding `bytes`, with `mode`.
fn stage(path: &Path, bytes: &[u8], mode: u32) -> Result<tempfile::NamedTempFile> {
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    private_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".portcullis-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    Ok(tmp)
}

/// Renames a staged file into place; without `force`, atomically refuses to replace.
fn persist(tmp: tempfile::NamedTempFile, path: &Path, force: bool) -> Result<()> {
    let result = if force {
        tmp.persist(path).map(drop)
    } else {
        tmp.persist_noclobber(path).map(drop)
    };
    result.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Exists {
                path: path.to_owned(),
            }
        } else {
            Error::Write {
                path: path.to_owned(),
                source: e.error,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn keys_are_0600_and_never_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        write_atomic(&p, b"one", SECRET, false).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        let e = write_atomic(&p, b"two", SECRET, false).unwrap_err();
        assert!(matches!(e, Error::Exists { .. }), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two", SECRET, true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
    }

    #[test]
    fn outputs_write_nothing_when_one_target_exists() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&b, "old").unwrap();
        let mut out = Outputs::new();
        out.add(a.clone(), "new a", PUBLIC);
        out.add(b.clone(), "new b", PUBLIC);
        assert!(out.commit(false).is_err());
        assert!(!a.exists());
        assert_eq!(fs::read_to_string(&b).unwrap(), "old");
    }

    #[test]
    fn outputs_roll_back_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        // A path under a regular file cannot be created.
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let mut out = Outputs::new();
        out.add(a.clone(), "a", PUBLIC);
        out.add(blocker.join("b"), "b", PUBLIC);
        assert!(out.commit(false).is_err());
        assert!(!a.exists(), "first file must be removed again");
    }
}

//! One writer at a time per CA directory, and recovery from a writer that died.
//!
//! Every change to a CA directory — the index, the CRL and its number, issued files — runs
//! under an exclusive advisory lock (`flock`) on `DIR/.lock`, held across the whole
//! read-modify-write. The kernel releases the lock when its holder exits, however it
//! exits, so a dead process never blocks the next command.
//!
//! While it holds the lock, a writer keeps its process id and what it is about to do (an
//! [`Intent`]) in the lock file, and empties the file when it is done. A writer that finds
//! the file not empty knows its predecessor died mid-way, and finishes or undoes that work
//! before its own ([`crate::ca::Writer`] does the recovery). Readers (`list`, `inspect`,
//! the gate loading a CRL) take no lock: every file is replaced by an atomic rename, so
//! they never see half of one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::Record;

/// How long a command waits for another one to finish, unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// What a writer is about to do, kept in the lock file until it is done. Paths are
/// absolute, so a writer started from another directory reads them the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Intent {
    /// Move old files aside, write a certificate's files (the certificate itself last),
    /// then record it.
    Issue {
        record: Box<Record>,
        /// Where the certificate goes: in place (with the record's fingerprint) means every
        /// file is.
        cert: PathBuf,
        /// Every file to write, with the SHA-256 of its contents: recovery removes only
        /// files that are byte for byte this writer's.
        outputs: Vec<(PathBuf, String)>,
        /// A renewal's old files, moved to the archive (kept), as (from, to).
        archived: Vec<(PathBuf, PathBuf)>,
        /// With `--force`, the files in the way, moved aside until the new ones are in.
        replaced: Vec<(PathBuf, PathBuf)>,
        /// A renewal: the certificate this one replaces, marked so in the same index
        /// write that records this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<Replaces>,
    },
    /// Change the index's revocations and publish a CRL valid for `days`.
    Crl { days: u32 },
}

/// The certificate a renewal replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Replaces {
    pub(crate) serial: String,
    /// Where its certificate was archived, as the index stores paths; `None` when it was
    /// not moved.
    pub(crate) cert: Option<String>,
}

impl Intent {
    /// For error messages: what was left unfinished.
    pub(crate) fn describe(&self) -> String {
        match self {
            Intent::Issue { cert, .. } => format!("the writing of {}", cert.display()),
            Intent::Crl { .. } => "a CRL publication".into(),
        }
    }
}

/// The lock file's contents while a writer holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<Intent>,
}

/// The held lock of one CA directory. Dropping it releases the lock. The record of the
/// holder is cleared on the way unless an intent is still pending (an operation failed
/// half-way) or a panic is unwinding: then the next writer recovers, as after a crash.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
    pending: bool,
}

/// What the lock file said when the lock was taken: the unfinished intent of a holder that
/// died, if any.
pub(crate) type Leftover = Option<Intent>;

impl DirLock {
    /// The lock file of a CA directory.
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join(".lock")
    }

    /// Takes the lock of `dir`, waiting up to `wait` for another writer to finish. Returns
    /// the lock and the intent a dead holder left unfinished, which stays recorded (and
    /// pending) until the caller has recovered it and called [`DirLock::done`].
    pub(crate) fn acquire(dir: &Path, wait: Duration) -> Result<(DirLock, Leftover)> {
        let path = DirLock::path(dir);
        let err = |source| Error::Write {
            path: path.clone(),
            source,
        };
        let start = Instant::now();
        let mut file = loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(err)?;
            match file.try_lock() {
                // A lock file deleted or replaced meanwhile is locked by no one: lock the
                // file the name leads to now.
                Ok(()) if same_file(&file, &path) => break file,
                Ok(()) => continue,
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    drop(file);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file).map(|h| h.pid);
                    return Err(Error::Busy {
                        dir: dir.to_owned(),
                        holder,
                        waited: start.elapsed(),
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => return Err(err(source)),
            }
        };
        let leftover = read_holder(&mut file).and_then(|h| h.intent);
        let mut lock = DirLock {
            file,
            path,
            pending: leftover.is_some(),
        };
        lock.write(&Holder {
            pid: std::process::id(),
            intent: leftover.clone(),
        })?;
        Ok((lock, leftover))
    }

    /// Records what this writer is about to do.
    pub(crate) fn intend(&mut self, intent: &Intent) -> Result<()> {
        self.pending = true;
        self.write(&Holder {
            pid: std::process::id(),
            intent: Some(intent.clone()),
        })
    }

    /// Records that the last intent is done (or was undone completely).
    pub(crate) fn done(&mut self) -> Result<()> {
        self.write(&Holder {
            pid: std::process::id(),
            intent: None,
        })?;
        self.pending = false;
        Ok(())
    }

    /// Replaces the lock file's contents. No fsync: the record guards against a process
    /// that dies, not against losing power, and a dead process does not lose the page
    /// cache.
    fn write(&mut self, holder: &Holder) -> Result<()> {
        let err = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_string(holder).map_err(|e| Error::Index {
            path: self.path.clone(),
            line: 1,
            reason: e.to_string(),
        })?;
        self.file.set_len(0).map_err(err)?;
        self.file.rewind().map_err(err)?;
        self.file.write_all(text.as_bytes()).map_err(err)
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if !self.pending && !std::thread::panicking() {
            // Empty means "no writer, nothing unfinished". The lock itself goes with the
            // file descriptor.
            let _ = self.file.set_len(0);
        }
    }
}

/// Whether the open `file` is still the file at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The lock file's record of its last holder, if it has one.
fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Ends the process here when `PORTCULLIS_CRASH_AT` names this point: a test reproduces a
/// writer killed at exactly this moment. (A process can be killed anywhere; these are the
/// moments between two changes that must go together.)
/// Debug builds only: release builds have no such hook.
pub(crate) fn crash_point(name: &str) {
    if cfg!(debug_assertions) && std::env::var_os("PORTCULLIS_CRASH_AT").is_some_and(|v| v == name)
    {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_waits_then_gets_the_lock_and_a_third_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let (first, leftover) = DirLock::acquire(dir.path(), DEFAULT_WAIT).unwrap();
        assert_eq!(leftover, None);
        let e = DirLock::acquire(dir.path(), Duration::from_millis(100)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("another writer in this process") && text.contains("waited"),
            "{text}"
        );
        let waiter = std::thread::spawn({
            let dir = dir.path().to_owned();
            move || DirLock::acquire(&dir, Duration::from_secs(10)).map(|_| Instant::now())
        });
        std::thread::sleep(Duration::from_millis(200));
        let released = Instant::now();
        drop(first);
        let got = waiter.join().unwrap().unwrap();
        assert!(got >= released);
    }

    #[test]
    fn an_unfinished_intent_is_handed_to_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (mut lock, _) = DirLock::acquire(dir.path(), DEFAULT_WAIT).unwrap();
        lock.intend(&Intent::Crl { days: 7 }).unwrap();
        // Failed half-way: dropping the lock keeps the intent for the next writer.
        drop(lock);
        let (again, leftover) = DirLock::acquire(dir.path(), DEFAULT_WAIT).unwrap();
        assert_eq!(leftover, Some(Intent::Crl { days: 7 }));
        // That writer dies before recovering: the intent is still there for the next.
        drop(again);
        let (mut again, leftover) = DirLock::acquire(dir.path(), DEFAULT_WAIT).unwrap();
        assert_eq!(leftover, Some(Intent::Crl { days: 7 }));
        again.done().unwrap();
        drop(again);
        let (_, leftover) = DirLock::acquire(dir.path(), DEFAULT_WAIT).unwrap();
        assert_eq!(leftover, None);
    }
}

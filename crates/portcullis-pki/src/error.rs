//! The one error type of the PKI crate. Every variant says what failed, where (a file, a
//! serial, a field) and, when there is one, what to do about it.

use std::io;
use std::path::PathBuf;

/// Anything that can go wrong while running the CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },

    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists { path: PathBuf },

    #[error("{}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },

    #[error("wrong passphrase for {} (passphrase from {origin})", key.display())]
    WrongPassphrase { key: PathBuf, origin: String },

    #[error(
        "{} is encrypted and no passphrase was given; use {hint}",
        key.display()
    )]
    PassphraseRequired { key: PathBuf, hint: String },

    #[error("invalid passphrase from {origin}: {reason}")]
    BadPassphrase { origin: String, reason: String },

    #[error(
        "no certificate authority in {}: run `portcullis pki init --dir {}` first",
        dir.display(),
        dir.display()
    )]
    NoCa { dir: PathBuf },

    #[error("{} already holds a certificate authority; pass --force to replace it (this orphans every certificate it issued)", dir.display())]
    CaExists { dir: PathBuf },

    #[error(
        "the CA certificate {} is not valid now (valid {not_before} to {not_after}); \
         certificates it signed would be rejected, so nothing was issued",
        path.display()
    )]
    CaNotValid {
        path: PathBuf,
        not_before: String,
        not_after: String,
    },

    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "a server certificate needs its host names in subjectAltName (clients ignore CN); \
         {hint}"
    )]
    NoSubjectAltName { hint: String },

    #[error("{}: the CSR's self-signature does not verify, so its key holder cannot be trusted to have made it", path.display())]
    CsrSignature { path: PathBuf },

    #[error(
        "{} was not issued by this CA (its issuer is \"{issuer}\", this CA is \"{ca}\")",
        path.display()
    )]
    NotIssuedHere {
        path: PathBuf,
        issuer: String,
        ca: String,
    },

    #[error(
        "{} is changing {}; waited {:.1} s (try again, or wait longer: --lock-wait SECS)",
        match holder {
            Some(p) if *p == std::process::id() => "another writer in this process".to_owned(),
            Some(p) => format!("another portcullis process (pid {p})"),
            None => "another portcullis process".to_owned(),
        },
        dir.display(),
        waited.as_secs_f64()
    )]
    Busy {
        dir: PathBuf,
        holder: Option<u32>,
        waited: std::time::Duration,
    },
    #[error(
        "a command interrupted in {} left {what} unfinished, and finishing it failed: {source} (fix that, then run any `pki` command that changes the CA)",
        dir.display()
    )]
    Unfinished {
        dir: PathBuf,
        what: String,
        source: Box<Error>,
    },
    #[error("no certificate with serial {serial} in {}", index.display())]
    UnknownSerial { serial: String, index: PathBuf },

    #[error("certificate {serial} was already revoked on {at}")]
    AlreadyRevoked { serial: String, at: String },

    #[error("{}, line {line}: {reason}", path.display())]
    Index {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("{}:{line}: {key}: {reason}", path.display())]
    Defaults {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },

    /// `ca.toml` has a mistake (the message names it); issuing waits until it is fixed.
    #[error("{0}")]
    DefaultsUnusable(String),

    #[error("{what}: {reason}")]
    Crypto { what: &'static str, reason: String },

    #[error("{program} is not installed (needed for the {store}); {hint}")]
    ToolMissing {
        program: &'static str,
        store: &'static str,
        hint: &'static str,
    },

    #[error("`{program}` failed on {}: {detail}", path.display())]
    ToolFailed {
        program: &'static str,
        path: PathBuf,
        detail: String,
    },

    #[error("permission denied: cannot change {}; {hint}", path.display())]
    PermissionDenied { path: PathBuf, hint: &'static str },

    #[error("no {store} found: {reason}")]
    StoreNotFound { store: &'static str, reason: String },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn crypto(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Error::Crypto {
            what,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

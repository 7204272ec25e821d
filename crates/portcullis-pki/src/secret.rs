//! Passphrases: where they came from (for error messages) and never what they are.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// A passphrase plus a description of its origin ("--ca-passphrase-file ca.pass",
/// "PORTCULLIS_CA_PASSPHRASE", "prompt"). `Debug` and `Display` never show the value, so
/// a passphrase cannot leak through logs or error chains by accident.
#[derive(Clone)]
pub struct Passphrase {
    value: String,
    origin: String,
}

impl Passphrase {
    /// Minimum length we accept for anything that protects a key.
    pub const MIN_LEN: usize = 4;

    /// Wraps a passphrase obtained elsewhere (a prompt, an environment variable).
    /// Refuses empty ones: an empty password on a PKCS#12 or PKCS#8 file is no protection
    /// and several tools (macOS Keychain among them) mishandle it.
    pub fn new(value: String, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        if value.is_empty() {
            return Err(Error::BadPassphrase {
                origin,
                reason: "it is empty".into(),
            });
        }
        if value.chars().count() < Self::MIN_LEN {
            return Err(Error::BadPassphrase {
                origin,
                reason: format!("it is shorter than {} characters", Self::MIN_LEN),
            });
        }
        Ok(Passphrase { value, origin })
    }

    /// Reads the first line of `path` (like OpenSSL's `-passin file:`); a trailing
    /// newline (LF or CRLF) is not part of the passphrase.
    pub fn from_file(path: &Path, flag: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let line = text.lines().next().unwrap_or("");
        Self::new(line.to_owned(), format!("{flag} {}", path.display()))
    }

    /// The secret itself; call only where it is fed to a KDF.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where the passphrase came from, for error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Passphrase(<redacted>, from {})", self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let p = Passphrase::new("hunter22".into(), "prompt").unwrap();
        assert!(!format!("{p:?}").contains("hunter22"));
    }

    #[test]
    fn empty_and_short_are_refused() {
        assert!(Passphrase::new(String::new(), "x").is_err());
        assert!(Passphrase::new("abc".into(), "x").is_err());
    }

    #[test]
    fn file_takes_first_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p");
        std::fs::write(&f, "correct horse\r\nsecond line\n").unwrap();
        let p = Passphrase::from_file(&f, "--ca-passphrase-file").unwrap();
        assert_eq!(p.expose(), "correct horse");
        assert!(p.origin().contains("--ca-passphrase-file"));
    }
}

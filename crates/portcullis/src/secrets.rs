//! Where passphrases come from: a file, an environment variable, or a TTY prompt —
//! never a command-line argument (other users can read argv in `ps`).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use portcullis_pki::Passphrase;

/// One secret the CLI may need: its flag, environment variable, and prompt.
pub struct Source<'a> {
    pub file: Option<&'a Path>,
    pub flag: &'static str,
    pub env: &'static str,
    pub prompt: String,
}

pub const CA_ENV: &str = "PORTCULLIS_CA_PASSPHRASE";
pub const KEY_ENV: &str = "PORTCULLIS_KEY_PASSPHRASE";
pub const P12_ENV: &str = "PORTCULLIS_P12_PASSWORD";
pub const JAVA_STOREPASS_ENV: &str = "PORTCULLIS_JAVA_STOREPASS";

/// Whether a new secret is being set (asked twice) or an existing one entered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enter,
    Create,
}

impl Source<'_> {
    /// The secret from the first source that has one; `None` when there is none and no
    /// terminal to ask on.
    pub fn get(&self, mode: Mode) -> Result<Option<Passphrase>> {
        if let Some(f) = self.file {
            return Ok(Some(Passphrase::from_file(f, self.flag)?));
        }
        if let Ok(v) = std::env::var(self.env) {
            return Ok(Some(Passphrase::new(v, self.env)?));
        }
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        let first = rpassword::prompt_password(format!("{}: ", self.prompt))
            .context("reading the passphrase from the terminal")?;
        if mode == Mode::Create {
            let again = rpassword::prompt_password(format!("{} (again): ", self.prompt))
                .context("reading the passphrase from the terminal")?;
            if first != again {
                bail!("the two passphrases differ; nothing was written");
            }
        }
        Ok(Some(Passphrase::new(first, "prompt")?))
    }

    /// The secret from the file or the environment variable, never a prompt: for
    /// commands that run unattended.
    pub fn get_unattended(&self) -> Result<Option<Passphrase>> {
        if let Some(f) = self.file {
            return Ok(Some(Passphrase::from_file(f, self.flag)?));
        }
        match std::env::var(self.env) {
            Ok(v) => Ok(Some(Passphrase::new(v, self.env)?)),
            Err(_) => Ok(None),
        }
    }

    /// Like [`Source::get`], but a missing secret is an error that says how to give one.
    pub fn require(&self, mode: Mode) -> Result<Passphrase> {
        match self.get(mode)? {
            Some(p) => Ok(p),
            None => bail!("{}", self.missing()),
        }
    }

    pub fn missing(&self) -> String {
        format!(
            "{} needed: use {} FILE or the {} environment variable (no terminal to prompt on)",
            self.prompt, self.flag, self.env
        )
    }
}

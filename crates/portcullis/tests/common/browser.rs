//! A real browser: headless Chromium with its own HOME, whose NSS database
//! (`$HOME/.pki/nssdb`, where Chromium on Linux looks) holds the CAs it trusts and the
//! client certificates it may present, and a fresh profile for every page it loads.
//!
//! Choosing a client certificate: without help, Chromium asks the user, and a headless
//! Chromium waits for an answer forever. Chromium answers by itself for origins listed
//! in its `auto_select_certificate` content setting, which is what the
//! `AutoSelectCertificateForUrls` managed policy feeds. The policy is read only from
//! `/etc/chromium/policies/managed/*.json`, for every Chromium on the machine, and the
//! `--policy` switch is ignored by release builds (Debian's included: the run hangs). The
//! same content setting can be written into a profile's `Default/Preferences` before the
//! browser starts, and a profile is one directory of ours: so each run sets it for its own
//! origin only, and nothing outside the test's temporary directory changes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::bounded;

/// The longest one page load may take, start to exit.
const PAGE_LIMIT: Duration = Duration::from_secs(60);

/// What a page load left behind.
pub struct Visit {
    /// The DOM after load (`--dump-dom`); empty or an error page when the load failed
    /// (Chromium exits 0 then too).
    pub dom: String,
    /// Chromium's log: network errors such as `ERR_CERT_AUTHORITY_INVALID` show here.
    pub stderr: String,
    /// `--screenshot`: a PNG of the page, when one was asked for.
    pub screenshot: Option<PathBuf>,
}

/// A browser: HOME with an NSS database, under `dir`.
pub struct Browser {
    dir: PathBuf,
    home: PathBuf,
    db: PathBuf,
    /// (origin pattern, subject CN): which certificate to present where, without asking.
    auto_select: Option<(String, String)>,
}

impl Browser {
    /// A new browser under `dir` (created) with an empty NSS database.
    pub fn new(dir: &Path) -> Browser {
        let home = dir.join("home");
        let db = home.join(".pki/nssdb");
        std::fs::create_dir_all(&db).unwrap();
        let b = Browser {
            dir: dir.to_owned(),
            home,
            db,
            auto_select: None,
        };
        b.certutil(&["-N", "--empty-password"]);
        b
    }

    /// The HOME to run a browser with, so that it reads this NSS database.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The NSS database directory (what `pki trust install --nss-db` takes).
    pub fn db(&self) -> &Path {
        &self.db
    }

    fn db_arg(&self) -> String {
        format!("sql:{}", self.db.display())
    }

    /// Runs `certutil ARGS -d sql:DB`; returns stdout.
    pub fn certutil(&self, args: &[&str]) -> String {
        let out = Command::new("certutil")
            .args(args)
            .args(["-d", &self.db_arg()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run certutil (scripts/setup installs it): {e}"));
        assert!(
            out.status.success(),
            "certutil {args:?}:\n{}",
            super::text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `certutil -L`: the nicknames and trust flags in the database.
    pub fn list(&self) -> String {
        self.certutil(&["-L"])
    }

    /// Imports a PKCS#12 bundle (key, certificate, intermediates) with `pk12util`; the
    /// password goes through a file, not argv.
    pub fn import_p12(&self, p12: &Path, password: &str) {
        let pass = self.dir.join("p12.pass");
        std::fs::write(&pass, format!("{password}\n")).unwrap();
        let out = Command::new("pk12util")
            .arg("-i")
            .arg(p12)
            .arg("-w")
            .arg(&pass)
            .args(["-d", &self.db_arg()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pk12util (scripts/setup installs it): {e}"));
        assert!(
            out.status.success(),
            "pk12util -i {}:\n{}",
            p12.display(),
            super::text(&out)
        );
    }

    /// Present the certificate whose subject CN is `cn` to `origin` (`https://host:port`)
    /// without asking; every other origin would still ask.
    pub fn auto_select(&mut self, origin: &str, cn: &str) {
        self.auto_select = Some((origin.to_owned(), cn.to_owned()));
    }

    /// Loads `url` in a fresh profile named `run`; with `screenshot`, also saves a PNG of
    /// the page as `run.png`. Bounded: a run that does not finish is killed and fails.
    pub fn visit(&self, url: &str, run: &str, screenshot: bool) -> Visit {
        let profile = self.dir.join(format!("profile-{run}"));
        std::fs::create_dir_all(profile.join("Default")).unwrap();
        if let Some((origin, cn)) = &self.auto_select {
            // The shape Chromium itself stores: pattern "primary,secondary" → setting.
            let prefs = serde_json::json!({
                "profile": { "content_settings": { "exceptions": { "auto_select_certificate": {
                    format!("{origin},*"): {
                        "last_modified": "13370000000000000",
                        "setting": { "filters": [ { "SUBJECT": { "CN": cn } } ] }
                    }
                } } } }
            });
            std::fs::write(profile.join("Default/Preferences"), prefs.to_string()).unwrap();
        }
        let png = screenshot.then(|| self.dir.join(format!("{run}.png")));
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--window-size=1024,768",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
        if let Some(png) = &png {
            cmd.arg(format!("--screenshot={}", png.display()));
        }
        cmd.args(["--dump-dom", url])
            .env("HOME", &self.home)
            .current_dir(&self.dir);
        let (_, dom, stderr) = bounded(cmd, PAGE_LIMIT, &self.dir.join(format!("logs-{run}")));
        Visit {
            dom,
            stderr,
            screenshot: png,
        }
    }
}

impl Visit {
    /// Asserts the screenshot was taken: a file that is a PNG with something in it.
    pub fn assert_screenshot(&self) {
        let path = self.screenshot.as_ref().expect("no screenshot asked for");
        let bytes = std::fs::read(path).unwrap_or_else(|e| {
            panic!("no screenshot at {}: {e}\n{}", path.display(), self.stderr)
        });
        assert!(
            bytes.len() > 100 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
}

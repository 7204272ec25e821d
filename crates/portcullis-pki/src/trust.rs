//! Putting the CA's root certificate into trust stores, and taking it out again — what
//! `mkcert -install` and `step certificate install` do, for three kinds of store:
//!
//! - [`Store::System`]: Debian/Ubuntu's system store. The root is copied to
//!   `ROOT/usr/local/share/ca-certificates/LABEL.crt` and `update-ca-certificates`
//!   regenerates `ROOT/etc/ssl/certs/ca-certificates.crt` (what curl, OpenSSL, Python and
//!   Go read). `ROOT` is `/` unless [`Options::root`] names a scratch root.
//! - [`Store::Nss`]: NSS databases, which Chromium (`$HOME/.pki/nssdb`) and Firefox
//!   (each profile's `cert9.db`) read, changed with NSS's `certutil`.
//! - [`Store::Java`]: a Java keystore (the JDK's `cacerts` by default), changed with
//!   `keytool`. The store password reaches keytool through its environment, never argv.
//!
//! Work is split in two: [`plan`] looks at every store and decides what would change
//! (nothing is written); [`Plan::apply`] does one step. A dry run prints the plan; a real
//! run applies the same plan, so the two cannot disagree.
//!
//! ```no_run
//! use portcullis_pki::trust::{self, Anchor, Direction, Options, Store};
//!
//! # fn main() -> Result<(), portcullis_pki::Error> {
//! let anchor = Anchor::load(std::path::Path::new("pki/root.crt"))?;
//! let opts = Options { stores: vec![Store::Nss], ..Default::default() };
//! let plan = trust::plan(&anchor, Direction::Install, &opts)?;
//! for step in &plan.steps {
//!     plan.apply(step)?;
//!     println!("{}", step.describe(&anchor, false));
//! }
//! # Ok(()) }
//! ```
//!
//! Names: the root is stored under a label made of its subject CN and the first eight hex
//! digits of its SHA-256 fingerprint (`Acme Root CA 799d62b3` in NSS,
//! `acme-root-ca-799d62b3` as a file name and Java alias), so two CAs with the same name
//! never collide. The NSS nickname drops `:` (certutil reads `X:` as a token name) and
//! control and bidi characters.
//!
//! The root is recognised by its certificate, not its name, and uninstalling removes this
//! root and nothing else: in NSS, under whatever nickname it is stored (every nickname is
//! exported and compared, and the database is read again after `certutil -D`); in the
//! system store, from the bundle as well as the file (a `LABEL.crt` holding another
//! certificate is left alone); in Java, under its alias, when keytool's fingerprint for
//! it is this root's. A failed system step puts `LABEL.crt` back as it was. No tool run
//! here inherits a `PORTCULLIS_*` variable, and a scratch root's hooks never run.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::ca;
use crate::error::{Error, Result};
use crate::fsio;
use crate::secret::Passphrase;

/// A kind of trust store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Store {
    System,
    Nss,
    Java,
}

impl Store {
    /// Every kind, in the order stores are planned and changed.
    pub const ALL: [Store; 3] = [Store::System, Store::Nss, Store::Java];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Store::System => "system",
            Store::Nss => "nss",
            Store::Java => "java",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Store::System => "system trust store",
            Store::Nss => "NSS database (Chromium, Firefox)",
            Store::Java => "Java keystore",
        }
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the root goes in or comes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Install,
    Uninstall,
}

/// The root certificate to trust, with the names it is stored under.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// Where it was read from.
    pub path: PathBuf,
    pub der: Vec<u8>,
    /// Subject CN (or the whole subject when there is no CN), for printing: control and
    /// bidi characters written as `\u{…}`.
    pub name: String,
    /// SHA-256 in lowercase hex, as every Portcullis command prints it.
    pub fingerprint: String,
    /// NSS nickname: `CN xxxxxxxx` (first 8 hex digits of the fingerprint), the CN
    /// without `:`, control or bidi characters.
    pub nickname: String,
    /// File name stem and Java alias: the CN in lower case, `-` between words, then
    /// `-xxxxxxxx`.
    pub label: String,
}

impl Anchor {
    /// Reads the first certificate of a PEM or DER file; it must be a CA certificate.
    pub fn load(path: &Path) -> Result<Anchor> {
        let der = ca::read_certs(path)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::malformed(path, "no certificate"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| Error::malformed(path, format!("corrupt certificate ({e})")))?;
        if !cert.is_ca() {
            return Err(Error::malformed(
                path,
                "not a CA certificate (basicConstraints CA:FALSE); trust stores take the CA's root, e.g. pki/root.crt",
            ));
        }
        let raw = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| cert.subject().to_string());
        let fingerprint = ca::fingerprint(&der);
        let short = fingerprint.get(..8).unwrap_or(&fingerprint).to_owned();
        Ok(Anchor {
            path: path.to_owned(),
            nickname: format!("{} {short}", nss_safe(&raw)),
            label: format!("{}-{short}", slug(&raw)),
            name: escaped(&raw),
            fingerprint,
            der,
        })
    }

    fn pem(&self) -> String {
        ca::pem("CERTIFICATE", &self.der)
    }
}

/// Control characters and Unicode bidirectional controls: printed raw, they would let a
/// certificate rewrite what a terminal shows.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with control and bidi characters written as `\u{…}` (as the gate's log does).
fn escaped(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if unsafe_char(c) {
            o.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            o.push(c);
        }
    }
    o
}

/// The CN as an NSS nickname: certutil reads `TOKEN:` before a colon as a token name (a CA
/// called `NSS Certificate DB:x` would land under another name than the one asked for), so
/// colons go, and so do control and bidi characters.
fn nss_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| *c != ':' && !unsafe_char(*c))
        .collect();
    let s = s.trim();
    if s.is_empty() { "CA".into() } else { s.into() }
}

/// `Acme Root CA` → `acme-root-ca`: safe as a file name and a keytool alias.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "ca".into()
    } else {
        out.into()
    }
}

/// Which stores, and where they are.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The kinds of store to change. Empty: the ones a location below names, or, when none
    /// does, every store found on this machine (see [`plan`]).
    pub stores: Vec<Store>,
    /// NSS databases (directories holding `cert9.db`). Empty: `$HOME/.pki/nssdb` and
    /// Firefox profiles, where they exist.
    pub nss_dbs: Vec<PathBuf>,
    /// The Java keystore. None: `$JAVA_HOME/lib/security/cacerts`, or the one of the
    /// `java` on PATH.
    pub java_keystore: Option<PathBuf>,
    /// The Java keystore's password. None: `changeit`, the JDK's default.
    pub java_storepass: Option<Passphrase>,
    /// The file system root the system store lives under. None: `/`.
    pub root: Option<PathBuf>,
    /// The home directory searched for NSS databases. None: `$HOME`.
    pub home: Option<PathBuf>,
}

impl Options {
    /// The stores to look at, and whether the user chose them (then a store that cannot
    /// be found is an error, not a note).
    fn selection(&self) -> (Vec<Store>, bool) {
        if !self.stores.is_empty() {
            let mut s = self.stores.clone();
            s.sort();
            s.dedup();
            return (s, true);
        }
        let named: Vec<Store> = [
            (Store::System, self.root.is_some()),
            (Store::Nss, !self.nss_dbs.is_empty()),
            (Store::Java, self.java_keystore.is_some()),
        ]
        .into_iter()
        .filter_map(|(s, on)| on.then_some(s))
        .collect();
        if named.is_empty() {
            (Store::ALL.to_vec(), false)
        } else {
            (named, true)
        }
    }
}

/// One store to change (or to leave alone because it is already as asked).
#[derive(Debug, Clone)]
pub struct Step {
    pub target: Target,
    pub change: Change,
    /// Something the user should know about this step (a file left alone, say).
    pub note: Option<String>,
}

/// Where a step happens.
#[derive(Debug, Clone)]
pub enum Target {
    /// `file` under `root`'s `usr/local/share/ca-certificates`.
    System { root: PathBuf, file: PathBuf },
    /// An NSS database directory, and the nickname used in it: ours when adding, the one
    /// that holds the root when it is already there (it may have been imported by hand).
    Nss { db: PathBuf, nickname: String },
    /// A Java keystore file, and the alias used in it.
    Java { keystore: PathBuf, alias: String },
}

impl Target {
    pub fn store(&self) -> Store {
        match self {
            Target::System { .. } => Store::System,
            Target::Nss { .. } => Store::Nss,
            Target::Java { .. } => Store::Java,
        }
    }

    /// The file, database directory or keystore changed.
    pub fn path(&self) -> &Path {
        match self {
            Target::System { file, .. } => file,
            Target::Nss { db, .. } => db,
            Target::Java { keystore, .. } => keystore,
        }
    }

    /// The name the root has there: file name, nickname or alias (a nickname found in a
    /// database is returned as stored; print it escaped).
    pub fn name(&self) -> String {
        match self {
            Target::System { file, .. } => file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Target::Nss { nickname, .. } => nickname.clone(),
            Target::Java { alias, .. } => alias.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::System { file, .. } => write!(f, "system store ({})", file.display()),
            Target::Nss { db, nickname } => {
                let nickname = escaped(nickname);
                write!(f, "NSS database sql:{} as \"{nickname}\"", db.display())
            }
            Target::Java { keystore, alias } => {
                write!(f, "Java keystore {} as alias {alias}", keystore.display())
            }
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
    /// Installing, and the store already trusts this root.
    AlreadyTrusted,
    /// Uninstalling, and the store does not hold this root.
    NotPresent,
}

impl Step {
    /// One line for a person: what would happen (`dry_run`) or what happened.
    pub fn describe(&self, anchor: &Anchor, dry_run: bool) -> String {
        let who = &anchor.name;
        let regen = match &self.target {
            Target::System { root, .. } => format!(
                ", then regenerate {} with update-ca-certificates",
                root.join(BUNDLE).display()
            ),
            _ => String::new(),
        };
        let t = &self.target;
        let line = match (self.change, dry_run) {
            (Change::Add, true) => format!("would add {who} to {t}{regen}"),
            (Change::Add, false) => format!("added {who} to {t}"),
            (Change::Remove, true) => format!("would remove {who} from {t}{regen}"),
            (Change::Remove, false) => format!("removed {who} from {t}"),
            (Change::AlreadyTrusted, _) => format!("already trusted: {who} in {t}"),
            (Change::NotPresent, _) => format!("not there, nothing to remove: {who} in {t}"),
        };
        match &self.note {
            Some(note) => format!("{line} ({note})"),
            None => line,
        }
    }
}

/// A store that was looked for and not used, and why (with what to do about it).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub store: Store,
    pub reason: String,
}

/// What [`plan`] decided: the steps, in order, and the stores it passed over.
#[derive(Debug)]
pub struct Plan {
    pub direction: Direction,
    pub steps: Vec<Step>,
    pub skipped: Vec<Skipped>,
    anchor: Anchor,
    storepass: Option<Passphrase>,
}

// === impl plan ===

/// Looks at each selected store and decides what would change. Reads stores (running
/// `certutil -L` and `keytool -list`) but changes nothing.
///
/// Selection: `opts.stores` when given; else the stores whose location is named
/// (`nss_dbs`, `java_keystore`, `root`); else every store found on this machine. A store
/// the user selected that cannot be used (no database, tool not installed) is an error; a
/// store only looked for is listed in [`Plan::skipped`]. Finding no store at all is an
/// error.
pub fn plan(anchor: &Anchor, direction: Direction, opts: &Options) -> Result<Plan> {
    let (stores, chosen) = opts.selection();
    let mut steps = Vec::new();
    let mut skipped = Vec::new();
    for store in stores {
        let found = match store {
            Store::System => plan_system(anchor, direction, opts),
            Store::Nss => plan_nss(anchor, direction, opts),
            Store::Java => plan_java(anchor, direction, opts),
        };
        match found {
            Ok(mut s) => steps.append(&mut s),
            Err(e @ (Error::StoreNotFound { .. } | Error::ToolMissing { .. })) if !chosen => {
                skipped.push(Skipped {
                    store,
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        }
    }
    if steps.is_empty() {
        let why = skipped
            .iter()
            .map(|s| s.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::StoreNotFound {
            store: "trust store",
            reason: format!("{why}; name one with --store system|nss|java"),
        });
    }
    Ok(Plan {
        direction,
        steps,
        skipped,
        anchor: anchor.clone(),
        storepass: opts.java_storepass.clone(),
    })
}

fn change(direction: Direction, present: bool) -> Change {
    match (direction, present) {
        (Direction::Install, false) => Change::Add,
        (Direction::Install, true) => Change::AlreadyTrusted,
        (Direction::Uninstall, true) => Change::Remove,
        (Direction::Uninstall, false) => Change::NotPresent,
    }
}

// === impl Plan ===

impl Plan {
    /// Carries out one step of this plan. Steps that change nothing succeed at once.
    pub fn apply(&self, step: &Step) -> Result<()> {
        match (&step.target, step.change) {
            (_, Change::AlreadyTrusted | Change::NotPresent) => Ok(()),
            (Target::System { root, file }, c) => system_apply(&self.anchor, root, file, c),
            (Target::Nss { db, nickname }, c) => nss_apply(&self.anchor, db, nickname, c),
            (Target::Java { keystore, alias }, c) => {
                java_apply(&self.anchor, keystore, alias, self.storepass.as_ref(), c)
            }
        }
    }
}

// === system (Debian/Ubuntu update-ca-certificates) ===

const LOCAL_CERTS: &str = "usr/local/share/ca-certificates";
const DIST_CERTS: &str = "usr/share/ca-certificates";
const ETC_CERTS: &str = "etc/ssl/certs";
const BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";
const CERTS_CONF: &str = "etc/ca-certificates.conf";
const HOOKS: &str = "etc/ca-certificates/update.d";

const UPDATE_CA: Tool = Tool {
    program: "update-ca-certificates",
    store: Store::System,
    hint: "this is the Debian/Ubuntu system store (apt-get install ca-certificates); elsewhere use --store nss or --store java",
};

const SUDO_HINT: &str = "the system store belongs to root: run the command with sudo";

fn plan_system(anchor: &Anchor, direction: Direction, opts: &Options) -> Result<Vec<Step>> {
    let root = opts.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    // update-ca-certificates changes directory before it reads the other paths: relative
    // ones would point nowhere, and it would still exit 0.
    let root = std::path::absolute(&root).map_err(|source| Error::Read {
        path: root.clone(),
        source,
    })?;
    let etc = root.join(ETC_CERTS);
    if !etc.is_dir() {
        return Err(Error::StoreNotFound {
            store: Store::System.noun(),
            reason: format!(
                "{} does not exist, so this is not a Debian-style system{}",
                etc.display(),
                if opts.root.is_some() {
                    " root (a scratch --root needs etc/ssl/certs)"
                } else {
                    ""
                }
            ),
        });
    }
    UPDATE_CA.find()?;
    let file = root.join(LOCAL_CERTS).join(format!("{}.crt", anchor.label));
    let held = file_holds(anchor, &file)?;
    // What programs read is the bundle (and the links in etc/ssl/certs); the file is what
    // the next update-ca-certificates run builds them from. Trusted means both; present
    // means either, so a run that failed halfway is finished by the next one.
    let link = link_holds(anchor, &root, &file);
    let bundle = bundle_holds(anchor, &root.join(BUNDLE))?;
    let other = || format!("{} holds a different certificate", file.display());
    let (c, note) = match direction {
        Direction::Install => {
            let trusted = held == Held::Ours && link && bundle;
            let note = (held == Held::Other).then(|| format!("{}: replaced", other()));
            (change(direction, trusted), note)
        }
        Direction::Uninstall => {
            let present = held == Held::Ours || link || bundle;
            // Not ours to delete, whatever its name says.
            let note = (held == Held::Other).then(|| format!("{}: left alone", other()));
            (change(direction, present), note)
        }
    };
    Ok(vec![Step {
        target: Target::System { root, file },
        change: c,
        note,
    }])
}

/// What a file under our name holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Missing,
    Ours,
    Other,
}

fn file_holds(anchor: &Anchor, file: &Path) -> Result<Held> {
    match std::fs::read(file) {
        Ok(bytes) => Ok(if holds(anchor, &bytes, file) {
            Held::Ours
        } else {
            Held::Other
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Held::Missing),
        Err(source) => Err(Error::Read {
            path: file.to_owned(),
            source,
        }),
    }
}

fn holds(anchor: &Anchor, bytes: &[u8], path: &Path) -> bool {
    ca::certs_from_bytes(bytes, path).is_ok_and(|certs| certs.contains(&anchor.der))
}

/// Whether update-ca-certificates' link `etc/ssl/certs/LABEL.pem` still points at our file
/// (even a dangling link: the next run would clean it, this one must) or at our root.
fn link_holds(anchor: &Anchor, root: &Path, file: &Path) -> bool {
    let link = root.join(ETC_CERTS).join(format!("{}.pem", anchor.label));
    if std::fs::read_link(&link).is_ok_and(|to| to == file) {
        return true;
    }
    std::fs::read(&link).is_ok_and(|b| holds(anchor, &b, &link))
}

/// Whether the bundle holds the root. Each PEM block is read alone, so one damaged block
/// elsewhere in the bundle cannot hide ours.
fn bundle_holds(anchor: &Anchor, bundle: &Path) -> Result<bool> {
    match std::fs::read_to_string(bundle) {
        Ok(text) => Ok(bundle_without(anchor, &text, bundle).is_some()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Read {
            path: bundle.to_owned(),
            source,
        }),
    }
}

/// The bundle's text without our certificate; `None` when it does not hold it. Everything
/// else is kept as it was, byte for byte.
fn bundle_without(anchor: &Anchor, text: &str, path: &Path) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut block: Option<String> = None;
    let mut found = false;
    for line in text.split_inclusive('\n') {
        match block.as_mut() {
            None if line.trim() == "-----BEGIN CERTIFICATE-----" => block = Some(line.into()),
            None => out.push_str(line),
            Some(b) => {
                b.push_str(line);
                if line.trim() == "-----END CERTIFICATE-----" {
                    let b = block.take().unwrap_or_default();
                    if holds(anchor, b.as_bytes(), path) {
                        found = true;
                    } else {
                        out.push_str(&b);
                    }
                }
            }
        }
    }
    if let Some(b) = block {
        out.push_str(&b);
    }
    found.then_some(out)
}

fn system_apply(anchor: &Anchor, root: &Path, file: &Path, c: Change) -> Result<()> {
    // The file as it was, to put back if a later part of this step fails: a failed step
    // must not leave a state the next run (or the next apt upgrade) reads differently.
    let before = match std::fs::read(file) {
        Ok(bytes) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(fsio::PUBLIC);
            Some((bytes, mode))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::Read {
                path: file.to_owned(),
                source,
            });
        }
    };
    let ours = before.as_ref().is_some_and(|(b, _)| holds(anchor, b, file));
    let touched = match c {
        Change::Add => {
            let dir = root.join(LOCAL_CERTS);
            if !dir.is_dir() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(&dir)
                    .map_err(|e| denied(&dir, e))?;
            }
            fsio::write_atomic(file, anchor.pem().as_bytes(), fsio::PUBLIC, true).map_err(|e| {
                match e {
                    Error::Write { path, source } => denied(&path, source),
                    other => other,
                }
            })?;
            true
        }
        // Only a file that holds this root is ours to delete.
        Change::Remove if ours => {
            std::fs::remove_file(file).map_err(|e| denied(file, e))?;
            true
        }
        _ => false,
    };
    let done = update_ca(anchor, root, c);
    if let (Err(e), true) = (&done, touched) {
        let restored = match &before {
            Some((bytes, mode)) => fsio::write_atomic(file, bytes, *mode, true),
            None => std::fs::remove_file(file).map_err(|source| Error::Write {
                path: file.to_owned(),
                source,
            }),
        };
        if let Err(r) = restored {
            return Err(Error::ToolFailed {
                program: UPDATE_CA.program,
                path: file.to_owned(),
                detail: format!("{e}; and putting {} back failed: {r}", file.display()),
            });
        }
    }
    done
}

fn denied(path: &Path, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::PermissionDenied {
        Error::PermissionDenied {
            path: path.to_owned(),
            hint: SUDO_HINT,
        }
    } else {
        Error::Write {
            path: path.to_owned(),
            source,
        }
    }
}

/// Runs update-ca-certificates for `root` and checks the bundle it leaves.
fn update_ca(anchor: &Anchor, root: &Path, c: Change) -> Result<()> {
    // Every location spelled out, so a scratch root never reaches the machine's own
    // files; for `/` these are update-ca-certificates' defaults. A scratch root without
    // ca-certificates.conf has no distribution certificates to list: /dev/null says so.
    let conf = root.join(CERTS_CONF);
    let conf = if conf.is_file() {
        conf
    } else {
        PathBuf::from("/dev/null")
    };
    // A scratch root's hooks are not run: they are programs from a directory anyone may
    // have written, and under sudo they would run as root. An empty directory of our own.
    let no_hooks = if root == Path::new("/") {
        None
    } else {
        Some(tempfile::tempdir().map_err(|source| Error::Write {
            path: std::env::temp_dir(),
            source,
        })?)
    };
    let hooks = no_hooks
        .as_ref()
        .map_or_else(|| root.join(HOOKS), |d| d.path().to_owned());
    let mut cmd = UPDATE_CA.command()?;
    cmd.arg("--certsconf")
        .arg(&conf)
        .arg("--certsdir")
        .arg(root.join(DIST_CERTS))
        .arg("--localcertsdir")
        .arg(root.join(LOCAL_CERTS))
        .arg("--etccertsdir")
        .arg(root.join(ETC_CERTS))
        .arg("--hooksdir")
        .arg(&hooks);
    if c == Change::Remove {
        // Without --fresh the link to the removed file would stay in etc/ssl/certs.
        cmd.arg("--fresh");
    }
    let out = UPDATE_CA.run(cmd)?;
    if !out.status.success() {
        let mut detail = failure(&out);
        if detail.contains("Permission denied") || detail.contains("Read-only") {
            detail.push_str(&format!(" ({SUDO_HINT})"));
        }
        return Err(Error::ToolFailed {
            program: UPDATE_CA.program,
            path: root.join(ETC_CERTS),
            detail,
        });
    }
    // It exits 0 in more cases than it succeeds: check the bundle it left.
    let bundle = root.join(BUNDLE);
    if c == Change::Remove {
        // It rewrites the bundle only when it lists at least one certificate: with ours
        // the last one, the old bundle (trusting the root) stays. Take ours out ourselves.
        let text = match std::fs::read_to_string(&bundle) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(Error::Read {
                    path: bundle,
                    source,
                });
            }
        };
        if let Some(rest) = bundle_without(anchor, &text, &bundle) {
            fsio::write_atomic(&bundle, rest.as_bytes(), fsio::PUBLIC, true).map_err(
                |e| match e {
                    Error::Write { path, source } => denied(&path, source),
                    other => other,
                },
            )?;
        }
    }
    let holds = bundle_holds(anchor, &bundle)?;
    if holds != (c == Change::Add) {
        return Err(Error::ToolFailed {
            program: UPDATE_CA.program,
            path: bundle,
            detail: format!(
                "it succeeded, but the bundle {} the root afterwards; it said: {}",
                if holds {
                    "still holds"
                } else {
                    "does not hold"
                },
                failure(&out)
            ),
        });
    }
    Ok(())
}

// === NSS (certutil) ===

const CERTUTIL: Tool = Tool {
    program: "certutil",
    store: Store::Nss,
    hint: "install NSS's tools: apt-get install libnss3-tools (Debian/Ubuntu), dnf install nss-tools (Fedora)",
};

/// The NSS databases of this user: Chromium's and every Firefox profile's.
fn find_nss_dbs(home: &Path) -> Vec<PathBuf> {
    let mut dbs = Vec::new();
    let shared = home.join(".pki/nssdb");
    if shared.join("cert9.db").is_file() {
        dbs.push(shared);
    }
    for profiles in [
        home.join(".mozilla/firefox"),
        home.join("snap/firefox/common/.mozilla/firefox"),
    ] {
        let Ok(entries) = std::fs::read_dir(&profiles) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("cert9.db").is_file())
            .collect();
        found.sort();
        dbs.extend(found);
    }
    dbs
}

fn plan_nss(anchor: &Anchor, direction: Direction, opts: &Options) -> Result<Vec<Step>> {
    let dbs = if opts.nss_dbs.is_empty() {
        let home = opts
            .home
            .clone()
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
            .ok_or_else(|| Error::StoreNotFound {
                store: Store::Nss.noun(),
                reason: "HOME is not set; name a database with --nss-db DIR".into(),
            })?;
        let dbs = find_nss_dbs(&home);
        if dbs.is_empty() {
            return Err(Error::StoreNotFound {
                store: Store::Nss.noun(),
                reason: format!(
                    "no cert9.db in {} or {}/*/ (start Chromium or Firefox once, or name a database with --nss-db DIR)",
                    home.join(".pki/nssdb").display(),
                    home.join(".mozilla/firefox").display()
                ),
            });
        }
        dbs
    } else {
        opts.nss_dbs.clone()
    };
    for db in &dbs {
        if !db.join("cert9.db").is_file() {
            return Err(Error::StoreNotFound {
                store: Store::Nss.noun(),
                reason: format!(
                    "{} has no cert9.db; create an empty database with `certutil -N --empty-password -d sql:{}`",
                    db.display(),
                    db.display()
                ),
            });
        }
    }
    CERTUTIL.find()?;
    let mut steps = Vec::new();
    for db in dbs {
        let entries = nss_entries(&db)?;
        let holders = nss_holders(anchor, &entries);
        let step = |nickname: String, change| Step {
            target: Target::Nss {
                db: db.clone(),
                nickname,
            },
            change,
            note: None,
        };
        match (direction, holders.first()) {
            (Direction::Install, Some(n)) => steps.push(step(n.clone(), Change::AlreadyTrusted)),
            (Direction::Install, None) => steps.push(step(anchor.nickname.clone(), Change::Add)),
            (Direction::Uninstall, None) => {
                steps.push(step(anchor.nickname.clone(), Change::NotPresent))
            }
            // Every nickname that holds it, whatever it is called.
            (Direction::Uninstall, Some(_)) => {
                for n in holders {
                    steps.push(step(n, Change::Remove));
                }
            }
        }
    }
    Ok(steps)
}

fn sql(db: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from("sql:");
    s.push(db.as_os_str());
    s
}

/// One certificate of an NSS database: its nickname as `certutil -L` lists it (usable
/// with `-n` as it is, token prefix included), its trust flags, and what `certutil -L -n
/// NICK -a` exports for it — its own certificate first, then any others with the same
/// subject (NSS looks nicknames up by subject).
#[derive(Debug, Clone)]
struct NssEntry {
    nickname: String,
    trust: String,
    certs: Vec<Vec<u8>>,
}

/// Every certificate of `db`, found by listing its nicknames and exporting each. The root
/// is recognised by its DER, never by a name: it may have been imported by hand, or under
/// a nickname certutil read differently than it was written.
fn nss_entries(db: &Path) -> Result<Vec<NssEntry>> {
    let mut cmd = CERTUTIL.command()?;
    cmd.arg("-L").arg("-d").arg(sql(db));
    let out = CERTUTIL.run(cmd)?;
    if !out.status.success() {
        return Err(nss_failure(db, &out));
    }
    let mut entries: Vec<NssEntry> = Vec::new();
    for (nickname, trust) in nss_nicknames(&String::from_utf8_lossy(&out.stdout)) {
        if entries.iter().any(|e| e.nickname == nickname) {
            continue;
        }
        let mut cmd = CERTUTIL.command()?;
        cmd.arg("-L")
            .arg("-d")
            .arg(sql(db))
            .arg("-n")
            .arg(&nickname)
            .arg("-a");
        let out = CERTUTIL.run(cmd)?;
        // One we cannot read could be ours: "not there" would then be a guess.
        if !out.status.success() {
            return Err(nss_failure(db, &out));
        }
        let certs = ca::certs_from_bytes(&out.stdout, db)?;
        entries.push(NssEntry {
            nickname,
            trust,
            certs,
        });
    }
    Ok(entries)
}

/// `certutil -L`'s table: `NICKNAME<spaces>TRUST`, TRUST like `C,,` or `CT,C,C`; the
/// header lines (`… Trust Attributes`, `SSL,S/MIME,JAR/XPI`) do not match.
fn nss_nicknames(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|l| {
            let (nick, trust) = l.trim_end().rsplit_once([' ', '\t'])?;
            let is_trust = trust.split(',').count() == 3
                && trust.chars().all(|c| c == ',' || c.is_ascii_alphabetic());
            let nick = nick.trim_end();
            (is_trust && !nick.is_empty()).then(|| (nick.to_owned(), trust.to_owned()))
        })
        .collect()
}

/// The nicknames whose own certificate is the root. When none is (NSS returned the
/// root only second, behind another certificate of the same subject), the nicknames that
/// return it at all: deleting one of those is checked afterwards (see [`nss_remove`]).
fn nss_holders(anchor: &Anchor, entries: &[NssEntry]) -> Vec<String> {
    let own: Vec<String> = entries
        .iter()
        .filter(|e| e.certs.first() == Some(&anchor.der))
        .map(|e| e.nickname.clone())
        .collect();
    if !own.is_empty() {
        return own;
    }
    entries
        .iter()
        .filter(|e| e.certs.contains(&anchor.der))
        .map(|e| e.nickname.clone())
        .collect()
}

fn nss_has(anchor: &Anchor, entries: &[NssEntry]) -> bool {
    entries.iter().any(|e| e.certs.contains(&anchor.der))
}

fn nss_apply(anchor: &Anchor, db: &Path, nickname: &str, c: Change) -> Result<()> {
    if c == Change::Remove {
        return nss_remove(anchor, db, nickname);
    }
    let mut cmd = CERTUTIL.command()?;
    // "C,,": a CA trusted to issue TLS server certificates; nothing for mail or code.
    cmd.arg("-A")
        .arg("-d")
        .arg(sql(db))
        .arg("-t")
        .arg("C,,")
        .arg("-n")
        .arg(nickname)
        .arg("-i")
        .arg(&anchor.path);
    let out = CERTUTIL.run(cmd)?;
    if !out.status.success() {
        return Err(nss_failure(db, &out));
    }
    if !nss_has(anchor, &nss_entries(db)?) {
        return Err(Error::ToolFailed {
            program: CERTUTIL.program,
            path: db.to_owned(),
            detail: format!(
                "it succeeded, but the database does not hold the root afterwards; it said: {}",
                failure(&out)
            ),
        });
    }
    Ok(())
}

/// Deletes the root by nickname, then looks at the whole database: the root must be gone,
/// and nothing else may be. NSS files certificates of one subject together, and `certutil
/// -D -n NICK` deletes one certificate *of that subject*, not always the one the nickname
/// was given to (two CAs both named "Portcullis Root CA" are one such group). So: delete
/// until the root is gone (at most once per certificate of the group), then put back every
/// other certificate that went, with the nickname and trust that went with it.
fn nss_remove(anchor: &Anchor, db: &Path, nickname: &str) -> Result<()> {
    let certs_of = |entries: &[NssEntry]| -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = entries.iter().flat_map(|e| e.certs.clone()).collect();
        all.sort();
        all.dedup();
        all
    };
    let before = nss_entries(db)?;
    let mut now = before.clone();
    let mut last = None;
    for _ in 0..=certs_of(&before).len() {
        if !nss_has(anchor, &now) {
            break;
        }
        // The nickname given, while it is listed; else one whose group holds the root.
        let nick = if now.iter().any(|e| e.nickname == nickname) {
            nickname.to_owned()
        } else {
            match now.iter().find(|e| e.certs.contains(&anchor.der)) {
                Some(e) => e.nickname.clone(),
                None => break,
            }
        };
        let mut cmd = CERTUTIL.command()?;
        cmd.arg("-D").arg("-d").arg(sql(db)).arg("-n").arg(&nick);
        let out = CERTUTIL.run(cmd)?;
        if !out.status.success() {
            return Err(nss_failure(db, &out));
        }
        last = Some(out);
        now = nss_entries(db)?;
    }
    // What went besides the root: certificates by DER, nicknames (with trust) by name.
    let left = certs_of(&now);
    let gone_certs: Vec<Vec<u8>> = certs_of(&before)
        .into_iter()
        .filter(|c| *c != anchor.der && !left.contains(c))
        .collect();
    let gone_names: Vec<&NssEntry> = before
        .iter()
        .filter(|e| e.nickname != nickname && !now.iter().any(|a| a.nickname == e.nickname))
        .filter(|e| !(e.certs.len() == 1 && e.certs[0] == anchor.der))
        .collect();
    if !gone_certs.is_empty() {
        let mut detail = String::from("it deleted more than the root:");
        for (k, cert) in gone_certs.iter().enumerate() {
            // Paired in order: one nickname left with each certificate.
            let (name, trust) = gone_names.get(k).map_or(("restored", "C,,"), |e| {
                (e.nickname.as_str(), e.trust.as_str())
            });
            let back = nss_readd(db, name, trust, cert);
            if let Err(err) = back {
                detail.push_str(&format!(
                    " \"{}\" (could not be put back: {err})",
                    escaped(name)
                ));
                return Err(Error::ToolFailed {
                    program: CERTUTIL.program,
                    path: db.to_owned(),
                    detail,
                });
            }
        }
    }
    let after = nss_entries(db)?;
    if nss_has(anchor, &after) || certs_of(&after).len() + 1 < certs_of(&before).len() {
        return Err(Error::ToolFailed {
            program: CERTUTIL.program,
            path: db.to_owned(),
            detail: format!(
                "it succeeded, but the database still holds the root or lost another certificate; it said: {}",
                last.as_ref().map_or_else(String::new, failure)
            ),
        });
    }
    Ok(())
}

fn nss_readd(db: &Path, nickname: &str, trust: &str, der: &[u8]) -> Result<()> {
    let tmp = tempfile::NamedTempFile::new().map_err(|source| Error::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    std::fs::write(tmp.path(), der).map_err(|source| Error::Write {
        path: tmp.path().to_owned(),
        source,
    })?;
    // The nickname as listed may carry the token prefix; -A takes it the same way.
    let mut cmd = CERTUTIL.command()?;
    cmd.arg("-A")
        .arg("-d")
        .arg(sql(db))
        .arg("-t")
        .arg(trust)
        .arg("-n")
        .arg(nickname)
        .arg("-i")
        .arg(tmp.path());
    let out = CERTUTIL.run(cmd)?;
    if !out.status.success() {
        return Err(nss_failure(db, &out));
    }
    Ok(())
}

fn nss_failure(db: &Path, out: &Output) -> Error {
    let mut detail = failure(out);
    if detail.contains("SEC_ERROR_READ_ONLY") || detail.contains("Permission denied") {
        detail.push_str(" (the database is not writable by this user: run as its owner)");
    }
    Error::ToolFailed {
        program: CERTUTIL.program,
        path: db.to_owned(),
        detail,
    }
}

// === Java (keytool) ===

const KEYTOOL: Tool = Tool {
    program: "keytool",
    store: Store::Java,
    hint: "keytool comes with every JDK: install one (apt-get install default-jdk-headless) or set JAVA_HOME",
};

/// keytool reads the store password from this variable, set only in its environment.
const STOREPASS_VAR: &str = "PORTCULLIS_KEYTOOL_STOREPASS";
const DEFAULT_STOREPASS: &str = "changeit";

/// `lib/security/cacerts` (JDK 9+) or `jre/lib/security/cacerts` (JDK 8) under a JDK.
fn cacerts_under(java_home: &Path) -> Option<PathBuf> {
    ["lib/security/cacerts", "jre/lib/security/cacerts"]
        .iter()
        .map(|p| java_home.join(p))
        .find(|p| p.is_file())
}

/// The JDK's home: `$JAVA_HOME`, else two levels above the real path of `java` on PATH.
fn java_home() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    let java = which("java")?.canonicalize().ok()?;
    Some(java.parent()?.parent()?.to_owned())
}

fn keytool() -> Result<PathBuf> {
    if let Some(p) = java_home()
        .map(|h| h.join("bin/keytool"))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    KEYTOOL.find()
}

fn plan_java(anchor: &Anchor, direction: Direction, opts: &Options) -> Result<Vec<Step>> {
    let keystore = match &opts.java_keystore {
        Some(k) => k.clone(),
        None => {
            let home = java_home().ok_or_else(|| Error::StoreNotFound {
                store: Store::Java.noun(),
                reason: "no JDK found (JAVA_HOME is not set and no java on PATH); name the keystore with --java-keystore FILE".into(),
            })?;
            cacerts_under(&home).ok_or_else(|| Error::StoreNotFound {
                store: Store::Java.noun(),
                reason: format!(
                    "no lib/security/cacerts under the JDK at {}; name the keystore with --java-keystore FILE",
                    home.display()
                ),
            })?
        }
    };
    let tool = keytool()?;
    let alias = anchor.label.clone();
    let present = if keystore.exists() {
        java_holds(
            &tool,
            anchor,
            &keystore,
            &alias,
            opts.java_storepass.as_ref(),
        )?
    } else if direction == Direction::Install
        && keystore
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir())
    {
        return Err(Error::StoreNotFound {
            store: Store::Java.noun(),
            reason: format!(
                "{} does not exist and neither does its directory",
                keystore.display()
            ),
        });
    } else {
        // Installing creates the keystore (PKCS#12, with the given password).
        false
    };
    Ok(vec![Step {
        target: Target::Java { keystore, alias },
        change: change(direction, present),
        note: None,
    }])
}

fn keytool_cmd(
    tool: &Path,
    action: &str,
    keystore: &Path,
    alias: &str,
    pass: Option<&Passphrase>,
) -> Command {
    let mut cmd = child(tool);
    cmd.arg(action)
        .arg("-alias")
        .arg(alias)
        .arg("-keystore")
        .arg(keystore)
        // The password's name, never its value, is in argv (argv is public in `ps`).
        .arg("-storepass:env")
        .arg(STOREPASS_VAR)
        .env(
            STOREPASS_VAR,
            pass.map(Passphrase::expose).unwrap_or(DEFAULT_STOREPASS),
        )
        .env_remove("JAVA_TOOL_OPTIONS")
        .env_remove("_JAVA_OPTIONS");
    cmd
}

fn java_holds(
    tool: &Path,
    anchor: &Anchor,
    keystore: &Path,
    alias: &str,
    pass: Option<&Passphrase>,
) -> Result<bool> {
    let cmd = keytool_cmd(tool, "-list", keystore, alias, pass);
    let out = KEYTOOL.run(cmd)?;
    // keytool reports errors on stdout; read both to be safe.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        if text.contains("does not exist") && text.contains(alias) {
            return Ok(false);
        }
        return Err(java_failure(keystore, &out, pass));
    }
    // `keytool -list -alias A` prints "Certificate fingerprint (SHA-256): AA:BB:…".
    let theirs: String = text
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Ok(theirs.contains(&anchor.fingerprint))
}

fn java_apply(
    anchor: &Anchor,
    keystore: &Path,
    alias: &str,
    pass: Option<&Passphrase>,
    c: Change,
) -> Result<()> {
    let tool = keytool()?;
    let out = if c == Change::Add {
        let mut cmd = keytool_cmd(&tool, "-importcert", keystore, alias, pass);
        cmd.arg("-noprompt")
            .arg("-trustcacerts")
            .arg("-file")
            .arg(&anchor.path);
        KEYTOOL.run(cmd)?
    } else {
        KEYTOOL.run(keytool_cmd(&tool, "-delete", keystore, alias, pass))?
    };
    if !out.status.success() {
        return Err(java_failure(keystore, &out, pass));
    }
    Ok(())
}

fn java_failure(keystore: &Path, out: &Output, pass: Option<&Passphrase>) -> Error {
    let mut detail = failure(out);
    if detail.contains("password was incorrect") {
        let origin = pass.map_or("the default, changeit", Passphrase::origin);
        detail.push_str(&format!(
            " (store password from {origin}; give the right one with --java-storepass-file FILE or PORTCULLIS_JAVA_STOREPASS)"
        ));
    } else if detail.contains("Permission denied") || detail.contains("AccessDenied") {
        detail.push_str(&format!(" ({SUDO_HINT_JAVA})"));
    }
    Error::ToolFailed {
        program: KEYTOOL.program,
        path: keystore.to_owned(),
        detail,
    }
}

const SUDO_HINT_JAVA: &str =
    "the JDK's keystore belongs to root: run with sudo, or use --java-keystore FILE";

// === running tools ===

/// An external program a store needs, and how to get it.
struct Tool {
    program: &'static str,
    store: Store,
    hint: &'static str,
}

impl Tool {
    fn missing(&self) -> Error {
        Error::ToolMissing {
            program: self.program,
            store: self.store.noun(),
            hint: self.hint,
        }
    }

    /// Its path on PATH (also /usr/sbin and /sbin, where update-ca-certificates lives and
    /// which a non-root PATH often lacks).
    fn find(&self) -> Result<PathBuf> {
        which(self.program)
            .or_else(|| {
                ["/usr/sbin", "/sbin"]
                    .iter()
                    .map(|d| Path::new(d).join(self.program))
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| self.missing())
    }

    fn command(&self) -> Result<Command> {
        Ok(child(self.find()?))
    }

    /// Runs with no input (nothing may prompt) and collects its output.
    fn run(&self, mut cmd: Command) -> Result<Output> {
        cmd.stdin(Stdio::null())
            .output()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => self.missing(),
                _ => Error::ToolFailed {
                    program: self.program,
                    path: PathBuf::from(cmd.get_program()),
                    detail: format!("cannot start it: {source}"),
                },
            })
    }
}

/// A command for `program` whose environment has none of our own `PORTCULLIS_*`
/// variables: they hold the CA passphrase and other secrets, and the tools (and the hooks
/// update-ca-certificates runs) have no business with them.
fn child(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"PORTCULLIS_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The first executable file called `program` in PATH.
fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What a failed tool said, in one line (its stderr, or its stdout when stderr is empty:
/// keytool reports errors on stdout), and its exit status.
fn failure(out: &Output) -> String {
    let pick = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let mut said = pick(&out.stderr);
    if said.is_empty() {
        said = pick(&out.stdout);
    }
    let status = out
        .status
        .code()
        .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"));
    if said.is_empty() {
        status
    } else {
        format!("{said} ({status})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn slug_makes_a_file_name_and_alias() {
        assert_eq!(slug("Acme Root CA"), "acme-root-ca");
        assert_eq!(slug("  Ünïcode / Root  "), "n-code-root");
        assert_eq!(slug("///"), "ca");
    }

    #[test]
    fn names_lose_what_certutil_or_a_terminal_would_misread() {
        assert_eq!(
            nss_safe("NSS Certificate DB:evil"),
            "NSS Certificate DBevil"
        );
        assert_eq!(nss_safe("a\u{202e}b\u{1b}c"), "abc");
        assert_eq!(nss_safe(" : "), "CA");
        assert_eq!(
            escaped("Evil\u{202e}Root\u{1b}"),
            "Evil\\u{202e}Root\\u{1b}"
        );
        assert_eq!(escaped("Acme Root CA"), "Acme Root CA");
    }

    #[test]
    fn certutil_listing_gives_nicknames_and_trust() {
        let listing = "\nCertificate Nickname                                         Trust Attributes\n                                                             SSL,S/MIME,JAR/XPI\n\nAcme Root CA 799d62b3                                        C,,  \nNSS Certificate DB:a:b                                       CT,C,C\nu                                                            u,u,u\n";
        assert_eq!(
            nss_nicknames(listing),
            [
                ("Acme Root CA 799d62b3".to_owned(), "C,,".to_owned()),
                ("NSS Certificate DB:a:b".to_owned(), "CT,C,C".to_owned()),
                ("u".to_owned(), "u,u,u".to_owned()),
            ]
        );
    }

    #[test]
    fn locations_select_their_stores() {
        let o = Options {
            nss_dbs: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(o.selection(), (vec![Store::Nss], true));
        assert_eq!(Options::default().selection(), (Store::ALL.to_vec(), false));
        let o = Options {
            stores: vec![Store::Java, Store::System, Store::Java],
            nss_dbs: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(o.selection(), (vec![Store::System, Store::Java], true));
    }

    #[test]
    fn the_store_password_is_in_the_environment_not_argv() {
        let pass = Passphrase::new("s3cret-pass".into(), "test").unwrap_or_else(|e| panic!("{e}"));
        let cmd = keytool_cmd(
            Path::new("keytool"),
            "-list",
            Path::new("ks"),
            "a",
            Some(&pass),
        );
        assert!(cmd.get_args().all(|a| a != os("s3cret-pass")));
        assert!(
            cmd.get_envs()
                .any(|(k, v)| k == STOREPASS_VAR && v == Some(os("s3cret-pass")))
        );
    }
}

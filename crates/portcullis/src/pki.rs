//! `portcullis pki …`: argument handling and printing around `portcullis_pki`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::csr::RequestKey;
use portcullis_pki::defaults::Defaults;
use portcullis_pki::inspect::{CertInfo, Object, Report};
use portcullis_pki::names::{self, San, Subject};
use portcullis_pki::renewal::{self, BatchOptions};
use portcullis_pki::{
    BroughtKey, Index, KeyOrigin, KeyType, Kind, LeafRequest, P12Format, Passphrase, Reason,
    Record, SaveOptions, Threshold,
};
use serde::Serialize;

use crate::cli::{
    CaSecret, IssueCommand, IssueCommon, KeySecret, LeafSecrets, Output, PkiArgs, PkiCommand,
    Profile, SubjectFields, TrustArgs, TrustCommand, TrustStore,
};
use crate::secrets::{self, Mode, Source};

/// What a command that changes the CA did. People get its `lines`, then warnings on
/// stderr and the files written; `--json` prints it whole, in the same shape for every such
/// command (documented in docs/pki.md: change it deliberately).
#[derive(Debug, Default, Serialize)]
struct Outcome {
    command: &'static str,
    /// The certificate issued, signed, renewed into, or revoked: its index record as
    /// `pki list --json` prints it.
    certificate: Option<serde_json::Value>,
    /// `renew`: the serial of the certificate replaced.
    replaces: Option<String>,
    /// `init`, `revoke`, `crl`: the number of the CRL published.
    crl_number: Option<u64>,
    written: Vec<PathBuf>,
    archived: Vec<Archived>,
    /// `sign`: what the CSR asked for and the profile does not grant.
    not_granted: Vec<String>,
    warnings: Vec<String>,
    #[serde(skip)]
    lines: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Archived {
    from: PathBuf,
    to: PathBuf,
}

impl Outcome {
    fn new(command: &'static str) -> Outcome {
        Outcome {
            command,
            ..Default::default()
        }
    }

    fn print(&self, json: bool) -> Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        for l in &self.lines {
            println!("{l}");
        }
        for d in &self.not_granted {
            println!("not granted: {d}");
        }
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        for a in &self.archived {
            println!("archived {} -> {}", a.from.display(), a.to.display());
        }
        print_written(&self.written);
        Ok(())
    }
}

pub fn run(args: PkiArgs) -> Result<()> {
    let dir = args.dir.as_path();
    let wait = std::time::Duration::from_secs(args.lock_wait);
    let json = args.json;
    let outcome = match args.command {
        PkiCommand::Init {
            name,
            organization,
            key_type,
            intermediate,
            days,
            no_passphrase,
            secret,
            force,
        } => {
            let passphrase = if no_passphrase {
                None
            } else {
                let src = ca_source(&secret, "New CA key passphrase");
                Some(src.get(Mode::Create)?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}, or --no-passphrase to write the CA key unencrypted",
                        src.missing()
                    )
                })?)
            };
            let opts = InitOptions {
                name,
                organization,
                key_type,
                intermediate,
                root_days: days,
                passphrase,
                force,
                ..Default::default()
            };
            let mut o = Outcome::new("init");
            o.written = ca::init(dir, &opts)?;
            o.crl_number = Some(1);
            o.lines.push(format!(
                "Trust anchor for servers and clients: {}",
                ca::Layout::new(dir).root_cert().display()
            ));
            o
        }
        PkiCommand::Issue(cmd) => issue(dir, cmd, wait)?,
        PkiCommand::Csr {
            name,
            dns,
            ip,
            uri,
            subject,
            key_type,
            key,
            secret,
            out,
            force,
        } => {
            let subject = subject_of(name, subject)?;
            let mut sans = Vec::new();
            // The address also as an rfc822Name SAN, where certificate users look for it.
            ca::add_email_san(&subject, &mut sans);
            for d in &dns {
                sans.push(San::Dns(names::dns_name(d)?));
            }
            sans.extend(ip.iter().copied().map(San::Ip));
            for u in &uri {
                sans.push(San::Uri(names::uri(u)?));
            }
            let key = match &key {
                Some(path) => match brought_key(path, &secret)? {
                    BroughtKey::Private(k) => RequestKey::Existing(k),
                    BroughtKey::Public(_) => bail!(
                        "{} is a public key: a CSR is signed with the private key",
                        path.display()
                    ),
                },
                None => RequestKey::New(key_type, new_key_passphrase(&secret)?),
            };
            let stem = names::file_stem(&subject.common_name);
            let written = portcullis_pki::csr::write(&out, &stem, &subject, &sans, key, force)?;
            let mut o = Outcome::new("csr");
            o.lines.push(format!(
                "certificate signing request for {}{}",
                subject.one_line(),
                if sans.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        sans.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
            o.written = written;
            o
        }
        PkiCommand::Sign {
            csr,
            profile,
            dns,
            ip,
            days,
            name,
            out,
            secret,
        } => {
            let ca = unlock(dir, &secret)?;
            let days = days
                .or(ca.defaults()?.days)
                .unwrap_or(portcullis_pki::ca::LEAF_DAYS);
            let mut writer = ca.writer_waiting(wait)?;
            let kind = match profile {
                Profile::Server => Kind::Server,
                Profile::Client => Kind::Client,
            };
            let mut extra: Vec<San> = Vec::new();
            for d in &dns {
                extra.push(San::Dns(names::dns_name(d)?));
            }
            extra.extend(ip.iter().copied().map(San::Ip));
            let bytes =
                std::fs::read(&csr).with_context(|| format!("cannot read {}", csr.display()))?;
            let (issued, dropped) =
                ca.sign_csr(&bytes, &csr, kind, &extra, days, writer.index())?;
            let stem = name.unwrap_or_else(|| {
                let cn = issued.record.subject.rsplit("CN=").next().unwrap_or("cert");
                names::file_stem(cn.split(", ").next().unwrap_or(cn))
            });
            let opts = save_options(&ca, &out, stem, None, None);
            let mut o = Outcome::new("sign");
            o.lines.push(format!(
                "signed {} certificate {} for {}",
                issued.record.profile, issued.record.serial, issued.record.subject
            ));
            let serial = issued.record.serial.clone();
            o.written = writer.save(issued, &opts)?;
            o.certificate = listed(writer.index(), &serial);
            o.not_granted = dropped;
            o
        }
        PkiCommand::Revoke {
            target,
            reason,
            crl_days,
            secret,
        } => {
            let ca = unlock(dir, &secret)?;
            let mut writer = ca.writer_waiting(wait)?;
            let target_path = Path::new(&target);
            let serial = if target_path.exists() {
                let der = ca.check_issued_here(target_path)?;
                portcullis_pki::inspect::cert_info(&der, target_path)?.serial
            } else if target.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                target.clone()
            } else {
                bail!("{target:?} is neither a file nor a hex serial number");
            };
            let (rec, written, number) = writer.revoke(&serial, reason, crl_days)?;
            let mut o = Outcome::new("revoke");
            o.lines.push(format!(
                "revoked {} ({}) reason {}",
                rec.serial,
                rec.subject,
                reason.name()
            ));
            o.lines.push(format!("CRL number {number}"));
            o.certificate = listed(writer.index(), &rec.serial);
            o.crl_number = Some(number);
            o.written = written;
            o
        }
        PkiCommand::Crl { days, secret } => {
            let ca = unlock(dir, &secret)?;
            let mut writer = ca.writer_waiting(wait)?;
            let (written, number) = writer.publish_crl(days)?;
            let revoked = writer
                .index()
                .records
                .iter()
                .filter(|r| r.revoked.is_some())
                .count();
            let mut o = Outcome::new("crl");
            o.lines.push(format!(
                "CRL number {number}, {revoked} revoked, next update in {days} days"
            ));
            o.crl_number = Some(number);
            o.written = written;
            o
        }
        PkiCommand::Renew {
            all_expiring: true,
            within,
            days,
            key_type,
            leaf,
            secret,
            ..
        } => {
            let batch = Batch {
                within: within.unwrap_or_default(),
                days,
                key_type,
                leaf: &leaf,
                secret: &secret,
            };
            return renew_all(dir, wait, batch, json);
        }
        PkiCommand::Renew {
            cert: Some(cert),
            days,
            key_type,
            new_key,
            leaf,
            secret,
            ..
        } => {
            if cert.extension().is_some_and(|e| e == "key" || e == "p12") {
                bail!(
                    "{} is not a certificate: name the certificate to renew (NAME.crt or NAME.chain.pem)",
                    cert.display()
                );
            }
            // A certificate signed from a CSR has no key beside it: its key is the
            // requester's, and a renewal here would hand them one the CA made.
            let key = ca::issued_beside(&cert, "key");
            if !new_key && !key.exists() {
                anyhow::bail!(
                    "{} has no private key beside it ({}): it was signed from a CSR, so its key belongs to whoever made the CSR. Sign their new CSR instead (portcullis pki sign NEW.csr --profile server|client), or pass --new-key to make a key here",
                    cert.display(),
                    key.display()
                );
            }
            // Issued for its owner's key (a CSR or --key): the CA neither replaces nor
            // moves that key, even one that sits beside the certificate.
            let layout = ca::Layout::new(dir);
            let owners = ca::read_certs(&cert)
                .ok()
                .and_then(|certs| certs.into_iter().next())
                .and_then(|der| portcullis_pki::inspect::cert_info(&der, &cert).ok())
                .and_then(|info| {
                    let index = Index::load(&layout.index()).ok()?;
                    index
                        .find(&info.serial)
                        .map(|r| r.key_origin == KeyOrigin::Owner)
                })
                .unwrap_or(false);
            if owners && !new_key {
                bail!("{}: {}", cert.display(), renewal::OWNERS_KEY);
            }
            if owners && key.exists() {
                bail!(
                    "{}: {} is its owner's key, and --new-key would put a key made here in its place: move it away first, or issue again for it (pki issue … --key {} --force)",
                    cert.display(),
                    key.display(),
                    key.display()
                );
            }
            let ca = unlock(dir, &secret)?;
            // Passwords first: nobody waits on the lock while someone types.
            let kind = ca.renewal_request(&cert, days, key_type)?.kind;
            let (key_pass, p12) = leaf_secrets(&leaf, kind)?;
            // The new key is kept as the old one was: an encrypted key is never followed
            // by a plain one without a word.
            let old_encrypted = std::fs::read_to_string(&key)
                .is_ok_and(|text| portcullis_pki::keys::is_encrypted(&text));
            let key_pass = match key_pass {
                None if old_encrypted => Some(
                    key_source(&leaf.key, "New private key passphrase").require(Mode::Create)?,
                ),
                given => given,
            };
            let mut writer = ca.writer_waiting(wait)?;
            let renewal = ca.renew(&cert, days, key_type, writer.index())?;
            let old = renewal.old_serial().to_owned();
            let compromised = writer.index().records.iter().any(|r| {
                r.serial == old
                    && r.revoked
                        .as_ref()
                        .is_some_and(|v| v.reason == Reason::KeyCompromise.name())
            });
            let mut o = Outcome::new("renew");
            o.lines
                .push(format!("renewed {old} as {}", renewal.issued.record.serial));
            let new = renewal.issued.record.serial.clone();
            if compromised {
                o.warnings.push(format!(
                    "{old} was revoked for key-compromise; the renewal has a new key, but whoever held the old one may still hold other secrets of its owner"
                ));
            }
            o.replaces = Some(old);
            let (written, moved) = writer.save_renewal(renewal, key_pass, p12)?;
            o.certificate = listed(writer.index(), &new);
            o.written = written;
            o.archived = moved
                .into_iter()
                .map(|(from, to)| Archived { from, to })
                .collect();
            o
        }
        PkiCommand::Renew { cert: None, .. } => {
            bail!("name the certificate to renew, or pass --all-expiring")
        }
        PkiCommand::List {
            expiring: Some(within),
        } => return list_expiring(dir, json, &within),
        PkiCommand::List { .. } => return list(dir, json),
        PkiCommand::NeedsRenewal { file, within } => {
            return needs_renewal(&file, &within.unwrap_or_default(), json);
        }
        PkiCommand::Trust(cmd) => return trust(dir, cmd, json),
        PkiCommand::Enroll(cmd) => return crate::enroll::pki(dir, cmd, json, wait),
        PkiCommand::Inspect {
            file,
            p12_password_file,
        } => {
            let src = Source {
                file: p12_password_file.as_deref(),
                flag: "--p12-password-file",
                env: secrets::P12_ENV,
                prompt: "PKCS#12 password".into(),
            };
            // Only asked for when the file turns out to need it.
            let mut report = match portcullis_pki::inspect::inspect(&file, None) {
                Ok(r) => r,
                Err(first) => match src.get(Mode::Enter)? {
                    Some(pw) => portcullis_pki::inspect::inspect(&file, Some(&pw))?,
                    None => return Err(first.into()),
                },
            };
            mark_revoked(dir, &mut report);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            return Ok(());
        }
    };
    outcome.print(json)
}

/// `pki trust install|uninstall`: plan, then print (dry run) or apply step by step.
fn trust(dir: &Path, cmd: TrustCommand, json: bool) -> Result<()> {
    use portcullis_pki::trust::{self, Anchor, Change, Direction, Options, Store};
    let (direction, args): (Direction, TrustArgs) = match cmd {
        TrustCommand::Install(a) => (Direction::Install, a),
        TrustCommand::Uninstall(a) => (Direction::Uninstall, a),
    };
    let root_cert = ca::Layout::new(dir).root_cert();
    if !root_cert.exists() {
        return Err(portcullis_pki::Error::NoCa {
            dir: dir.to_owned(),
        }
        .into());
    }
    let anchor = Anchor::load(&root_cert)?;
    let storepass = Source {
        file: args.java_storepass_file.as_deref(),
        flag: "--java-storepass-file",
        env: secrets::JAVA_STOREPASS_ENV,
        prompt: "Java keystore password".into(),
    }
    .get_unattended()?;
    let opts = Options {
        stores: args
            .stores
            .iter()
            .map(|s| match s {
                TrustStore::System => Store::System,
                TrustStore::Nss => Store::Nss,
                TrustStore::Java => Store::Java,
            })
            .collect(),
        nss_dbs: args.nss_db,
        java_keystore: args.java_keystore,
        java_storepass: storepass,
        root: args.root,
        home: None,
    };
    // Planning changes nothing: when it fails, the error alone says so.
    let plan = trust::plan(&anchor, direction, &opts)?;
    // Text: a line per step as it is done, so a failure shows which stores already
    // changed. --json: one document, printed whether or not every step succeeded.
    let say = |line: String| {
        if !json {
            println!("{line}");
        }
    };
    say(format!(
        "{} (SHA-256 {}), from {}",
        anchor.name,
        anchor.fingerprint,
        anchor.path.display()
    ));
    for s in &plan.skipped {
        say(format!("skipped {}: {}", s.store, s.reason));
    }
    let mut steps = Vec::new();
    let mut failed: Option<anyhow::Error> = None;
    for step in &plan.steps {
        let status = if failed.is_some() {
            "not-run"
        } else if args.dry_run {
            "planned"
        } else {
            match plan.apply(step) {
                Ok(()) => "done",
                Err(e) => {
                    let (verb, prep) = match step.change {
                        Change::Remove => ("remove", "from"),
                        _ => ("add", "to"),
                    };
                    failed = Some(anyhow::Error::new(e).context(format!(
                        "cannot {verb} {} {prep} {}",
                        anchor.name, step.target
                    )));
                    "failed"
                }
            }
        };
        let mut record = serde_json::json!({
            "store": step.target.store().name(),
            "path": step.target.path(),
            "name": step.target.name(),
            "change": match step.change {
                Change::Add => "add",
                Change::Remove => "remove",
                Change::AlreadyTrusted => "already-trusted",
                Change::NotPresent => "not-present",
            },
            "status": status,
        });
        if let (Some(e), "failed") = (&failed, status) {
            record["error"] = format!("{e:#}").into();
        }
        if let Some(note) = &step.note {
            record["note"] = note.clone().into();
        }
        steps.push(record);
        if matches!(status, "done" | "planned") {
            say(step.describe(&anchor, args.dry_run));
        }
    }
    if args.dry_run {
        say("dry run: nothing was changed".into());
    }
    if json {
        let doc = serde_json::json!({
            "command": match direction {
                Direction::Install => "trust-install",
                Direction::Uninstall => "trust-uninstall",
            },
            "ok": failed.is_none(),
            "anchor": {
                "name": anchor.name,
                "fingerprint_sha256": anchor.fingerprint,
                "file": anchor.path,
            },
            "dry_run": args.dry_run,
            "skipped": plan
                .skipped
                .iter()
                .map(|s| serde_json::json!({"store": s.store.to_string(), "reason": s.reason}))
                .collect::<Vec<_>>(),
            "steps": steps,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        if let Some(e) = failed {
            // The document is on stdout; people still get the error on stderr.
            eprintln!("error: {e:#}");
            return Err(Exit(2).into());
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// With a CA directory at `dir`, the certificates it revoked show as revoked: a file
/// alone cannot say so. Without one (or with an unreadable one) the report stays as is.
fn mark_revoked(dir: &Path, report: &mut Report) {
    let layout = ca::Layout::new(dir);
    if !layout.exists() {
        return;
    }
    let issuing = [layout.intermediate_cert(), layout.root_cert()]
        .into_iter()
        .find(|p| p.exists());
    let issuer = issuing
        .and_then(|p| portcullis_pki::inspect::inspect(&p, None).ok())
        .and_then(|r| match r.objects.into_iter().next() {
            Some(Object::Certificate(c)) => Some(c.subject),
            _ => None,
        });
    let index = portcullis_pki::Index::load(&layout.index());
    if let (Some(issuer), Ok(index)) = (issuer, index) {
        portcullis_pki::inspect::mark_revoked(report, &index, &issuer);
    }
}

fn ca_source<'a>(secret: &'a CaSecret, prompt: &str) -> Source<'a> {
    Source {
        file: secret.ca_passphrase_file.as_deref(),
        flag: "--ca-passphrase-file",
        env: secrets::CA_ENV,
        prompt: prompt.into(),
    }
}

/// Opens the CA, asking for the passphrase only when its key is encrypted.
fn unlock(dir: &Path, secret: &CaSecret) -> Result<Ca> {
    let pass = if ca::needs_passphrase(dir)? {
        ca_source(secret, "CA key passphrase").get(Mode::Enter)?
    } else {
        None
    };
    Ok(Ca::open(dir, pass.as_ref())?)
}

/// The passphrase for a new leaf key, and the password and format of its PKCS#12 bundle.
type LeafSecretValues = (Option<Passphrase>, Option<(Passphrase, P12Format)>);

/// PKCS#12 options only where a bundle is written: a server gets none.
fn bundle_options_fit(leaf: &LeafSecrets, kind: Kind) -> Result<()> {
    if kind == Kind::Server && (leaf.legacy_p12 || leaf.p12_password_file.is_some()) {
        anyhow::bail!(
            "--legacy-p12 and --p12-password-file are for client certificates: a server gets no PKCS#12 bundle (it reads its .key and .chain.pem files)"
        );
    }
    Ok(())
}

fn key_source<'a>(secret: &'a KeySecret, prompt: &str) -> Source<'a> {
    Source {
        file: secret.key_passphrase_file.as_deref(),
        flag: "--key-passphrase-file",
        env: secrets::KEY_ENV,
        prompt: prompt.into(),
    }
}

/// The passphrase to encrypt a new private key with, when one was asked for.
fn new_key_passphrase(secret: &KeySecret) -> Result<Option<Passphrase>> {
    let src = key_source(secret, "New private key passphrase");
    if secret.encrypt_key {
        Ok(Some(src.require(Mode::Create)?))
    } else if secret.key_passphrase_file.is_some() || std::env::var_os(secrets::KEY_ENV).is_some() {
        src.get(Mode::Create)
    } else {
        Ok(None)
    }
}

/// Reads the key given with --key, asking for its passphrase only if it is encrypted.
fn brought_key(path: &Path, secret: &KeySecret) -> Result<BroughtKey> {
    if secret.encrypt_key {
        bail!("--encrypt-key encrypts a new key; with --key no key is written");
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let pass = if portcullis_pki::keys::is_encrypted(&text) {
        key_source(secret, &format!("Passphrase for {}", path.display())).get(Mode::Enter)?
    } else if let Some(file) = &secret.key_passphrase_file {
        bail!(
            "{} is not encrypted, so --key-passphrase-file {} has nothing to open (no key is written with --key)",
            path.display(),
            file.display()
        );
    } else {
        None
    };
    Ok(portcullis_pki::keys::read_brought(
        &text,
        path,
        pass.as_ref(),
        "pass --key-passphrase-file FILE or set PORTCULLIS_KEY_PASSPHRASE",
    )?)
}

fn subject_of(name: String, f: SubjectFields) -> Result<Subject> {
    Ok(Subject {
        common_name: name,
        organization: f.organization,
        organizational_units: f.organizational_units,
        locality: f.locality,
        state: f.state,
        country: f.country,
        email: f.email.map(|e| names::email(&e)).transpose()?,
    })
}

fn leaf_secrets(leaf: &LeafSecrets, kind: Kind) -> Result<LeafSecretValues> {
    Ok((new_key_passphrase(&leaf.key)?, bundle_secret(leaf, kind)?))
}

/// The password and format of the PKCS#12 bundle, where one is written.
fn bundle_secret(leaf: &LeafSecrets, kind: Kind) -> Result<Option<(Passphrase, P12Format)>> {
    bundle_options_fit(leaf, kind)?;
    let wants_p12 = kind == Kind::Client && !leaf.no_p12;
    let p12 = if wants_p12 {
        let src = Source {
            file: leaf.p12_password_file.as_deref(),
            flag: "--p12-password-file",
            env: secrets::P12_ENV,
            prompt: "PKCS#12 bundle password".into(),
        };
        let pw = src
            .get(Mode::Create)?
            .ok_or_else(|| anyhow::anyhow!("{}, or --no-p12 to skip the bundle", src.missing()))?;
        let format = if leaf.legacy_p12 {
            P12Format::Legacy
        } else {
            P12Format::Modern
        };
        Some((pw, format))
    } else {
        None
    };
    Ok(p12)
}

fn save_options(
    ca: &Ca,
    out: &Output,
    stem: String,
    key_passphrase: Option<Passphrase>,
    p12: Option<(Passphrase, P12Format)>,
) -> SaveOptions {
    SaveOptions {
        out_dir: out.out.clone().unwrap_or_else(|| ca.layout().issued()),
        stem,
        key_passphrase,
        p12,
        force: out.force,
    }
}

fn issue(dir: &Path, cmd: IssueCommand, wait: std::time::Duration) -> Result<Outcome> {
    // Read before any passphrase is asked for: a mistake in it wastes no typing.
    let defaults = Defaults::load(&ca::Layout::new(dir).defaults())?;
    let days = |common: &IssueCommon| {
        common
            .days
            .or(defaults.days)
            .unwrap_or(portcullis_pki::ca::LEAF_DAYS)
    };
    let key_type = |common: &IssueCommon| {
        common
            .key_type
            .or(defaults.key_type)
            .unwrap_or(KeyType::P256)
    };
    let (req, common, leaf, stem) = match cmd {
        IssueCommand::Server {
            name,
            dns,
            ip,
            common,
            leaf,
        } => {
            let sans = ca::server_sans(&name, &dns, &ip)?;
            let req = LeafRequest {
                kind: Kind::Server,
                subject: Subject {
                    common_name: name.clone(),
                    ..Default::default()
                },
                sans,
                days: days(&common),
                key_type: key_type(&common),
            };
            (req, common, leaf, name)
        }
        IssueCommand::Client {
            name,
            subject,
            uri,
            dns,
            common,
            leaf,
        } => {
            let subject = subject_of(name.clone(), subject)?;
            let mut sans = Vec::new();
            ca::add_email_san(&subject, &mut sans);
            for u in &uri {
                sans.push(San::Uri(names::uri(u)?));
            }
            for d in &dns {
                sans.push(San::Dns(names::dns_name(d)?));
            }
            let req = LeafRequest {
                kind: Kind::Client,
                subject,
                sans,
                days: days(&common),
                key_type: key_type(&common),
            };
            (req, common, leaf, name)
        }
    };
    // Options first, then the CA passphrase (a wrong one must not waste the typing of the
    // others), then the new secrets, and only then the lock: nobody waits on it while
    // someone types.
    bundle_options_fit(&leaf, req.kind)?;
    let ca = unlock(dir, &common.secret)?;
    let brought = common
        .key
        .as_deref()
        .map(|path| {
            let key = brought_key(path, &leaf.key)?;
            if matches!(key, BroughtKey::Public(_)) && req.kind == Kind::Client && !leaf.no_p12 {
                bail!(
                    "{} is a public key, so no PKCS#12 bundle can be made: pass --no-p12 (the owner bundles it with their private key), or give the private key",
                    path.display()
                );
            }
            Ok(key)
        })
        .transpose()?;
    let (key_pass, p12) = match brought {
        // Their key is not written, so it gets no new passphrase.
        Some(_) => (None, bundle_secret(&leaf, req.kind)?),
        None => leaf_secrets(&leaf, req.kind)?,
    };
    let mut writer = ca.writer_waiting(wait)?;
    let issued = match brought {
        Some(key) => ca.issue_for_key(&req, key, writer.index())?,
        None => ca.issue(&req, writer.index())?,
    };
    let opts = save_options(&ca, &common.out, names::file_stem(&stem), key_pass, p12);
    let mut o = Outcome::new("issue");
    o.lines.push(format!(
        "issued {} certificate {} for {}",
        issued.record.profile, issued.record.serial, issued.record.subject
    ));
    o.warnings = validity_warnings(&req, &issued.record.not_after);
    let serial = issued.record.serial.clone();
    o.written = writer.save(issued, &opts)?;
    o.certificate = listed(writer.index(), &serial);
    Ok(o)
}

/// When the validity differs from what was asked (the CA ends first), and when a server
/// certificate is valid for longer than clients accept.
fn validity_warnings(req: &LeafRequest, not_after: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    let asked = i64::from(req.days);
    let end =
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339);
    let Ok(end) = end else { return warnings };
    let days = (end - time::OffsetDateTime::now_utc()).whole_days();
    if days + 1 < asked {
        warnings.push(format!(
            "valid until {not_after}, the CA's own end, not for the {asked} days asked; renew the CA (or issue shorter) before then"
        ));
    }
    if req.kind == Kind::Server && days > 398 {
        warnings.push(format!(
            "valid for {days} days; Safari and other Apple clients refuse server certificates valid for more than 398 days from publicly trusted CAs, and many policies apply the same limit: consider --days 398 or less"
        ));
    }
    warnings
}

fn print_written(paths: &[PathBuf]) {
    println!("wrote:");
    for p in paths {
        println!("  {}", p.display());
    }
}

/// The CA directory's layout and index, for the commands that only read them.
fn read_index(dir: &Path) -> Result<(ca::Layout, Index)> {
    let layout = ca::Layout::new(dir);
    if !layout.exists() {
        return Err(portcullis_pki::Error::NoCa {
            dir: dir.to_owned(),
        }
        .into());
    }
    let index = Index::load(&layout.index())?;
    Ok((layout, index))
}

fn list(dir: &Path, json: bool) -> Result<()> {
    let (layout, index) = read_index(dir)?;
    let now = time::OffsetDateTime::now_utc();
    if json {
        let rows: Vec<_> = index.records.iter().map(|r| row(&index, r, now)).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    match Defaults::load(&layout.defaults()) {
        Ok(defaults) if !defaults.describe().is_empty() => println!(
            "defaults ({}): {}\n",
            layout.defaults().display(),
            defaults.describe().join(", ")
        ),
        Ok(_) => {}
        // Listing does not need them; issuing will refuse until they are fixed.
        Err(e) => eprintln!("warning: {e}\n"),
    }
    if index.records.is_empty() {
        println!("no certificates issued yet");
        return Ok(());
    }
    print_table(&index, index.records.iter(), now);
    Ok(())
}

/// A record as `pki list --json` prints it: the index's fields, its `status` now, and
/// `file`, where the certificate is from here.
fn row(index: &Index, r: &Record, now: time::OffsetDateTime) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["status"] = r.status(now).as_str().into();
    v["file"] = index.cert_path(r).display().to_string().into();
    v
}

/// The record of `serial` in `index`, as [`row`] shows it.
fn listed(index: &Index, serial: &str) -> Option<serde_json::Value> {
    let r = index.find(serial)?;
    Some(row(index, r, time::OffsetDateTime::now_utc()))
}

/// The `pki list` table: status, serial, profile, end, where the certificate is (from
/// here), subject, and for a renewed one its successor.
fn print_table<'a>(
    index: &Index,
    records: impl Iterator<Item = &'a portcullis_pki::Record>,
    now: time::OffsetDateTime,
) {
    let rows: Vec<_> = records
        .map(|r| (r, index.cert_path(r).display().to_string()))
        .collect();
    let width = rows.iter().map(|(_, f)| f.len()).max().unwrap_or(0).max(4);
    println!(
        "{:<9} {:<33} {:<7} {:<21} {:<width$} SUBJECT",
        "STATUS", "SERIAL", "PROFILE", "NOT AFTER", "FILE"
    );
    for (r, file) in rows {
        let successor = r
            .replaced_by
            .as_ref()
            .map(|s| format!(" (renewed as {s})"))
            .unwrap_or_default();
        println!(
            "{:<9} {:<33} {:<7} {:<21} {file:<width$} {}{successor}",
            r.status(now).as_str(),
            r.serial,
            r.profile,
            r.not_after,
            r.subject
        );
    }
}

// === renewal: needs-renewal, list --expiring, renew --all-expiring ===

/// A command's answer given by its exit status alone, not an error: `main` exits with it
/// and prints nothing more.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// `pki needs-renewal FILE`: 0 due, 1 not due (via [`Exit`]), 2 on error.
fn needs_renewal(file: &Path, within: &Threshold, json: bool) -> Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let check = renewal::check_file(file, within, now)?;
    let date = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    if json {
        let v = serde_json::json!({
            "file": file,
            "serial": check.serial,
            "due": check.due,
            "not_after": date(check.not_after),
            "due_at": date(check.due_at),
            "within": within.to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return if check.due {
            Ok(())
        } else {
            Err(Exit(1).into())
        };
    }
    if check.due {
        let state = if check.not_after <= now {
            "expired"
        } else {
            "expires"
        };
        println!(
            "due: {} (serial {}) {state} {}; renewal due since {} ({within})",
            file.display(),
            check.serial,
            date(check.not_after),
            date(check.due_at)
        );
        Ok(())
    } else {
        println!(
            "not due: {} (serial {}) expires {}; renewal due from {} ({within})",
            file.display(),
            check.serial,
            date(check.not_after),
            date(check.due_at)
        );
        Err(Exit(1).into())
    }
}

/// `pki list --expiring WITHIN`: the due certificates in force; exit 1 when there is any.
fn list_expiring(dir: &Path, json: bool, within: &Threshold) -> Result<()> {
    let (_, index) = read_index(dir)?;
    let now = time::OffsetDateTime::now_utc();
    let due = renewal::due_records(&index.records, within, now);
    if json {
        let rows: Vec<_> = due.iter().map(|r| row(&index, r, now)).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if !due.is_empty() {
        print_table(&index, due.iter().copied(), now);
    } else if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        // Quiet otherwise: cron mails whatever a job prints.
        println!("no certificate in force expires within {within}");
    }
    if due.is_empty() {
        Ok(())
    } else {
        Err(Exit(1).into())
    }
}

/// The options of `renew --all-expiring`.
struct Batch<'a> {
    within: Threshold,
    days: Option<u32>,
    key_type: Option<KeyType>,
    leaf: &'a LeafSecrets,
    secret: &'a CaSecret,
}

/// `pki renew --all-expiring`: renews every due certificate it can without a person.
fn renew_all(dir: &Path, wait: std::time::Duration, batch: Batch<'_>, json: bool) -> Result<()> {
    let Batch {
        within,
        days,
        key_type,
        leaf,
        secret,
    } = batch;
    let ca = unlock(dir, secret)?;
    // Secrets from files or the environment only: this runs from timers, and a prompt
    // per certificate would be worse than a skip that says what to give.
    let from = |file: Option<&Path>, flag, env| -> Result<Option<Passphrase>> {
        Source {
            file,
            flag,
            env,
            prompt: String::new(),
        }
        .get_unattended()
    };
    let key_passphrase = from(
        leaf.key.key_passphrase_file.as_deref(),
        "--key-passphrase-file",
        secrets::KEY_ENV,
    )?;
    let p12 = if leaf.no_p12 {
        None
    } else {
        let format = if leaf.legacy_p12 {
            P12Format::Legacy
        } else {
            P12Format::Modern
        };
        from(
            leaf.p12_password_file.as_deref(),
            "--p12-password-file",
            secrets::P12_ENV,
        )?
        .map(|pw| (pw, format))
    };
    let opts = BatchOptions {
        threshold: within,
        days,
        key_type,
        key_passphrase,
        p12,
        no_p12: leaf.no_p12,
        wait,
        now: time::OffsetDateTime::now_utc(),
    };
    // With --json, one document at the end; otherwise a line per certificate as it goes.
    let outcomes = ca.renew_due(&opts, |o| match o {
        _ if json => {}
        renewal::Outcome::Renewed {
            old,
            new,
            cert,
            archived,
            due_again,
            ..
        } => {
            println!("renewed {old} as {new} ({})", cert.display());
            for (from, to) in archived {
                println!("  archived {} -> {}", from.display(), to.display());
            }
            if *due_again {
                eprintln!(
                    "warning: {new} is due for renewal at once too: its lifetime is within {within}; give renewals a longer life (--days) or renew within less"
                );
            }
        }
        renewal::Outcome::Skipped {
            serial,
            subject,
            reason,
            ..
        } => println!("skipped {serial} ({subject}): {reason}"),
        renewal::Outcome::Failed {
            serial,
            subject,
            cert,
            error,
        } => eprintln!(
            "error: renewing {serial} ({subject}, {}) failed: {error}",
            cert.display()
        ),
    })?;
    let count = |f: fn(&renewal::Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let renewed = count(|o| matches!(o, renewal::Outcome::Renewed { .. }));
    let skipped = count(|o| matches!(o, renewal::Outcome::Skipped { .. }));
    let failed = count(|o| matches!(o, renewal::Outcome::Failed { .. }));
    if json {
        let mut doc = serde_json::json!({
            "command": "renew-all",
            "within": within.to_string(),
            "renewed": [],
            "skipped": [],
            "failed": [],
        });
        for o in &outcomes {
            let (key, v) = match o {
                renewal::Outcome::Renewed {
                    old,
                    new,
                    cert,
                    written,
                    archived,
                    due_again,
                } => (
                    "renewed",
                    serde_json::json!({
                        "replaces": old,
                        "serial": new,
                        "file": cert,
                        "written": written,
                        "archived": archived
                            .iter()
                            .map(|(from, to)| Archived { from: from.clone(), to: to.clone() })
                            .collect::<Vec<_>>(),
                        "due_again": due_again,
                    }),
                ),
                renewal::Outcome::Skipped {
                    serial,
                    subject,
                    cert,
                    reason,
                } => (
                    "skipped",
                    serde_json::json!({
                        "serial": serial, "subject": subject, "file": cert, "reason": reason,
                    }),
                ),
                renewal::Outcome::Failed {
                    serial,
                    subject,
                    cert,
                    error,
                } => (
                    "failed",
                    serde_json::json!({
                        "serial": serial, "subject": subject, "file": cert, "error": error.to_string(),
                    }),
                ),
            };
            if let Some(list) = doc[key].as_array_mut() {
                list.push(v);
            }
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if outcomes.is_empty() {
        println!("nothing to renew: no certificate in force is due ({within})");
    } else {
        println!("{renewed} renewed, {skipped} skipped, {failed} failed");
    }
    if failed > 0 {
        return Err(Exit(1).into());
    }
    Ok(())
}

fn print_cert(c: &CertInfo, indent: &str) {
    println!("{indent}subject:     {}", c.subject);
    println!("{indent}issuer:      {}", c.issuer);
    println!("{indent}serial:      {}", c.serial);
    if !c.sans.is_empty() {
        println!("{indent}SANs:        {}", c.sans.join(", "));
    }
    println!(
        "{indent}key:         {} (signed with {})",
        c.key, c.signature_algorithm
    );
    if c.is_ca {
        let pl = c
            .path_len
            .map(|p| format!(", pathlen {p}"))
            .unwrap_or_default();
        println!("{indent}CA:          yes{pl}");
    }
    if !c.key_usage.is_empty() {
        println!("{indent}key usage:   {}", c.key_usage.join(", "));
    }
    if !c.extended_key_usage.is_empty() {
        println!("{indent}ext. usage:  {}", c.extended_key_usage.join(", "));
    }
    println!(
        "{indent}valid:       {} to {} ({})",
        c.not_before, c.not_after, c.validity
    );
    println!("{indent}SHA-256:     {}", c.fingerprint_sha256);
}

fn print_report(r: &Report) {
    println!("{}", r.path);
    for (i, o) in r.objects.iter().enumerate() {
        match o {
            Object::Certificate(c) => {
                println!(
                    "[{}] certificate{}",
                    i + 1,
                    if c.self_signed { " (self-signed)" } else { "" }
                );
                print_cert(c, "    ");
            }
            Object::Csr {
                subject,
                sans,
                key,
                signature_valid,
            } => {
                println!("[{}] certificate signing request", i + 1);
                println!("    subject:     {subject}");
                if !sans.is_empty() {
                    println!("    SANs:        {}", sans.join(", "));
                }
                println!("    key:         {key}");
                println!(
                    "    signature:   {}",
                    if *signature_valid { "valid" } else { "INVALID" }
                );
            }
            Object::Crl {
                issuer,
                this_update,
                next_update,
                crl_number,
                revoked,
            } => {
                println!("[{}] certificate revocation list", i + 1);
                println!("    issuer:      {issuer}");
                println!("    number:      {}", crl_number.as_deref().unwrap_or("-"));
                println!(
                    "    updated:     {this_update}, next {}",
                    next_update.as_deref().unwrap_or("-")
                );
                println!("    revoked:     {}", revoked.len());
                for e in revoked {
                    println!(
                        "      {} at {} ({})",
                        e.serial,
                        e.revoked_at,
                        e.reason.as_deref().unwrap_or("no reason")
                    );
                }
            }
            Object::PrivateKey {
                encrypted,
                algorithm,
            } => {
                println!("[{}] private key", i + 1);
                println!("    algorithm:   {algorithm}");
                println!("    encrypted:   {}", if *encrypted { "yes" } else { "no" });
            }
            Object::Pkcs12 {
                has_private_key,
                certificates,
            } => {
                println!("[{}] PKCS#12 bundle", i + 1);
                println!(
                    "    private key: {}",
                    if *has_private_key { "yes" } else { "no" }
                );
                for (j, c) in certificates.iter().enumerate() {
                    println!("    certificate {}", j + 1);
                    print_cert(c, "      ");
                }
            }
        }
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
}

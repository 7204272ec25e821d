//! `portcullis pki …`: argument handling and printing around `portcullis_pki`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::inspect::{CertInfo, Object, Report};
use portcullis_pki::names::{self, San, Subject};
use portcullis_pki::{Index, Kind, LeafRequest, P12Format, Passphrase, Reason, SaveOptions};

use crate::cli::{
    CaSecret, IssueCommand, LeafSecrets, Output, PkiArgs, PkiCommand, Profile, TrustArgs,
    TrustCommand, TrustStore,
};
use crate::secrets::{self, Mode, Source};

pub fn run(args: PkiArgs) -> Result<()> {
    let dir = args.dir.as_path();
    let wait = std::time::Duration::from_secs(args.lock_wait);
    match args.command {
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
            let written = ca::init(dir, &opts)?;
            print_written(&written);
            println!(
                "\nTrust anchor for servers and clients: {}",
                ca::Layout::new(dir).root_cert().display()
            );
            Ok(())
        }
        PkiCommand::Issue(cmd) => issue(dir, cmd, wait),
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
            let written = writer.save(issued, &opts)?;
            for d in &dropped {
                println!("not granted: {d}");
            }
            print_written(&written);
            Ok(())
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
            println!(
                "revoked {} ({}) reason {}",
                rec.serial,
                rec.subject,
                reason.name()
            );
            println!("CRL number {number}");
            print_written(&written);
            Ok(())
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
            println!("CRL number {number}, {revoked} revoked, next update in {days} days");
            print_written(&written);
            Ok(())
        }
        PkiCommand::Renew {
            cert,
            days,
            key_type,
            new_key,
            leaf,
            secret,
        } => {
            // A certificate signed from a CSR has no key beside it: its key is the
            // requester's, and a renewal here would hand them one the CA made.
            let key = key_beside(&cert);
            if !new_key && !key.exists() {
                anyhow::bail!(
                    "{} has no private key beside it ({}): it was signed from a CSR, so its key belongs to whoever made the CSR. Sign their new CSR instead (portcullis pki sign NEW.csr --profile server|client), or pass --new-key to make a key here",
                    cert.display(),
                    key.display()
                );
            }
            let ca = unlock(dir, &secret)?;
            // Passwords first: nobody waits on the lock while someone types.
            let kind = ca.renewal_request(&cert, days, key_type)?.kind;
            let (key_pass, p12) = leaf_secrets(&leaf, kind)?;
            let mut writer = ca.writer_waiting(wait)?;
            let renewal = ca.renew(&cert, days, key_type, writer.index())?;
            let old = renewal.old_serial().to_owned();
            let compromised = writer.index().records.iter().any(|r| {
                r.serial == old
                    && r.revoked
                        .as_ref()
                        .is_some_and(|v| v.reason == Reason::KeyCompromise.name())
            });
            let new = renewal.issued.record.serial.clone();
            let (written, moved) = writer.save_renewal(renewal, key_pass, p12)?;
            println!("renewed {old} as {new}");
            if compromised {
                eprintln!(
                    "warning: {old} was revoked for key-compromise; the renewal has a new key, but whoever held the old one may still hold other secrets of its owner"
                );
            }
            for (from, to) in &moved {
                println!("archived {} -> {}", from.display(), to.display());
            }
            print_written(&written);
            Ok(())
        }
        PkiCommand::List { json } => list(dir, json),
        PkiCommand::Trust(cmd) => trust(dir, cmd),
        PkiCommand::Inspect {
            file,
            json,
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
            Ok(())
        }
    }
}

/// `pki trust install|uninstall`: plan, then print (dry run) or apply step by step.
fn trust(dir: &Path, cmd: TrustCommand) -> Result<()> {
    use portcullis_pki::trust::{self, Anchor, Direction, Options, Store};
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
    let storepass = match (
        &args.java_storepass_file,
        std::env::var(secrets::JAVA_STOREPASS_ENV),
    ) {
        (Some(f), _) => Some(Passphrase::from_file(f, "--java-storepass-file")?),
        (None, Ok(v)) => Some(Passphrase::new(v, secrets::JAVA_STOREPASS_ENV)?),
        (None, Err(_)) => None,
    };
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
    let plan = trust::plan(&anchor, direction, &opts)?;
    println!(
        "{} (SHA-256 {}), from {}",
        anchor.name,
        anchor.fingerprint,
        anchor.path.display()
    );
    for s in &plan.skipped {
        println!("skipped {}: {}", s.store, s.reason);
    }
    for step in &plan.steps {
        if !args.dry_run {
            plan.apply(step).with_context(|| {
                let (verb, prep) = match step.change {
                    trust::Change::Remove => ("remove", "from"),
                    _ => ("add", "to"),
                };
                format!("cannot {verb} {} {prep} {}", anchor.name, step.target)
            })?;
        }
        println!("{}", step.describe(&anchor, args.dry_run));
    }
    if args.dry_run {
        println!("dry run: nothing was changed");
    }
    Ok(())
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

fn leaf_secrets(leaf: &LeafSecrets, kind: Kind) -> Result<LeafSecretValues> {
    let key_src = Source {
        file: leaf.key_passphrase_file.as_deref(),
        flag: "--key-passphrase-file",
        env: secrets::KEY_ENV,
        prompt: "New private key passphrase".into(),
    };
    let key_pass = if leaf.encrypt_key {
        Some(key_src.require(Mode::Create)?)
    } else if leaf.key_passphrase_file.is_some() || std::env::var_os(secrets::KEY_ENV).is_some() {
        key_src.get(Mode::Create)?
    } else {
        None
    };
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
    Ok((key_pass, p12))
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

fn issue(dir: &Path, cmd: IssueCommand, wait: std::time::Duration) -> Result<()> {
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
                days: common.days,
                key_type: common.key_type,
            };
            (req, common, leaf, name)
        }
        IssueCommand::Client {
            name,
            email,
            organization,
            organizational_units,
            locality,
            state,
            country,
            uri,
            dns,
            common,
            leaf,
        } => {
            let email = email.map(|e| names::email(&e)).transpose()?;
            let subject = Subject {
                common_name: name.clone(),
                organization,
                organizational_units,
                locality,
                state,
                country,
                email,
            };
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
                days: common.days,
                key_type: common.key_type,
            };
            (req, common, leaf, name)
        }
    };
    // Options first, then the CA passphrase (a wrong one must not waste the typing of the
    // others), then the new secrets, and only then the lock: nobody waits on it while
    // someone types.
    bundle_options_fit(&leaf, req.kind)?;
    let ca = unlock(dir, &common.secret)?;
    let (key_pass, p12) = leaf_secrets(&leaf, req.kind)?;
    let mut writer = ca.writer_waiting(wait)?;
    let issued = ca.issue(&req, writer.index())?;
    let serial = issued.record.serial.clone();
    let not_after = issued.record.not_after.clone();
    let opts = save_options(&ca, &common.out, names::file_stem(&stem), key_pass, p12);
    let written = writer.save(issued, &opts)?;
    warn_about_validity(&req, &not_after);
    println!(
        "issued {} certificate {serial} for {}",
        if req.kind == Kind::Server {
            "server"
        } else {
            "client"
        },
        req.subject.one_line()
    );
    print_written(&written);
    Ok(())
}

/// Says when the validity differs from what was asked (the CA ends first), and when a
/// server certificate is valid for longer than clients accept.
fn warn_about_validity(req: &LeafRequest, not_after: &str) {
    let asked = i64::from(req.days);
    let end =
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339);
    let Ok(end) = end else { return };
    let days = (end - time::OffsetDateTime::now_utc()).whole_days();
    if days + 1 < asked {
        eprintln!(
            "warning: valid until {not_after}, the CA's own end, not for the {asked} days asked; renew the CA (or issue shorter) before then"
        );
    }
    if req.kind == Kind::Server && days > 398 {
        eprintln!(
            "warning: valid for {days} days; Safari and other Apple clients refuse server certificates valid for more than 398 days from publicly trusted CAs, and many policies apply the same limit: consider --days 398 or less"
        );
    }
}

/// The key file that goes with a certificate file: NAME.key beside NAME.crt or
/// NAME.chain.pem.
fn key_beside(cert: &Path) -> PathBuf {
    let stem = ca::issued_stem(cert).unwrap_or_default();
    cert.with_file_name(format!("{stem}.key"))
}

fn print_written(paths: &[PathBuf]) {
    println!("wrote:");
    for p in paths {
        println!("  {}", p.display());
    }
}

fn list(dir: &Path, json: bool) -> Result<()> {
    let layout = ca::Layout::new(dir);
    if !layout.exists() {
        return Err(portcullis_pki::Error::NoCa {
            dir: dir.to_owned(),
        }
        .into());
    }
    let index = Index::load(&layout.index())?;
    let now = time::OffsetDateTime::now_utc();
    if json {
        let rows: Vec<_> = index
            .records
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["status"] = r.status(now).as_str().into();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if index.records.is_empty() {
        println!("no certificates issued yet");
        return Ok(());
    }
    println!(
        "{:<9} {:<33} {:<7} {:<21} SUBJECT",
        "STATUS", "SERIAL", "PROFILE", "NOT AFTER"
    );
    for r in &index.records {
        println!(
            "{:<9} {:<33} {:<7} {:<21} {}",
            r.status(now).as_str(),
            r.serial,
            r.profile,
            r.not_after,
            r.subject
        );
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

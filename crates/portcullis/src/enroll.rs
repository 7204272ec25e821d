//! Enrolment: `pki enroll` (tokens, on the CA's machine), `enroll` and `renew` (on the
//! machine that needs a certificate, against a gate with `[enroll]`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use portcullis_gate::enroll::client::{self, Issued};
use portcullis_pki::enroll::{self as tokens, TokenRequest};
use portcullis_pki::fsio::Outputs;
use portcullis_pki::{KeyType, Subject, keys, names};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::secrets::{KEY_ENV, Mode, Source};

const TOKEN_ENV: &str = "PORTCULLIS_ENROLL_TOKEN";

#[derive(Debug, Subcommand)]
pub enum PkiEnrollCommand {
    /// Make a one-time token for a certificate whose subject you decide here; the person
    /// or machine makes the key. Prints the token once (only its hash is kept).
    Create {
        /// Common name (CN) of the certificate the token gives.
        name: String,
        /// Email address (subject and rfc822Name SAN).
        #[arg(long)]
        email: Option<String>,
        /// Organizational unit (repeatable): roles are often granted on it.
        #[arg(long)]
        ou: Vec<String>,
        /// Organization (O).
        #[arg(long)]
        o: Option<String>,
        /// How long the token can be used: 30m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: time::Duration,
        /// Validity of the certificate: 30d, 12h, 10m (short: renewal is automatic).
        #[arg(long, default_value = "30d", value_parser = parse_ttl)]
        validity: time::Duration,
        /// The gate's enrolment URL (its `[enroll]` path), to print the browser link
        /// (URL#TOKEN) and the machine command: https://gate.example.com/enroll.
        #[arg(long)]
        url: Option<String>,
    },
    /// List tokens: open, used (by whom, which certificate), expired, revoked.
    List,
    /// Revoke an unused token by its id (or a unique prefix).
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The gate's enrolment URL: https://gate.example.com/enroll.
    pub url: String,
    /// The one-time token, from the first line of FILE (`-`: standard input), else
    /// PORTCULLIS_ENROLL_TOKEN, else a prompt. Never on the command line.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Directory for NAME.key (0600), NAME.crt and NAME.chain.pem.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// File name stem [default: the certificate's CN].
    #[arg(long)]
    pub name: Option<String>,
    /// Key type of the new key.
    #[arg(long, default_value = "p256", value_parser = crate::cli::parse_key_type())]
    pub key_type: KeyType,
    #[command(flatten)]
    pub trust: Trust,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The gate's enrolment URL: https://gate.example.com/enroll.
    pub url: String,
    /// The current certificate (a chain file: leaf first); replaced by the new one.
    #[arg(long)]
    pub cert: PathBuf,
    /// Its key; replaced by a new one (encrypted again if it was).
    #[arg(long)]
    pub key: PathBuf,
    /// Passphrase of an encrypted key, from the first line of FILE (or
    /// PORTCULLIS_KEY_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub key_passphrase_file: Option<PathBuf>,
    /// Key type of the new key.
    #[arg(long, default_value = "p256", value_parser = crate::cli::parse_key_type())]
    pub key_type: KeyType,
    /// Keep running: renew each time the certificate is due (see --within), retrying
    /// failures with backoff; stop when it is revoked or expired.
    #[arg(long)]
    pub daemon: bool,
    /// With --daemon: due when it expires within this time (12h) or share of its
    /// lifetime (33%) [default: the last third of its lifetime].
    #[arg(long, requires = "daemon", value_name = "DURATION|PERCENT")]
    pub within: Option<portcullis_pki::Threshold>,
    /// After each renewal, run this with `sh -c` (e.g. `systemctl reload app`);
    /// PORTCULLIS_SERIAL, PORTCULLIS_CERT and PORTCULLIS_KEY are set for it.
    #[arg(long, value_name = "COMMAND")]
    pub exec: Option<String>,
    #[command(flatten)]
    pub trust: Trust,
}

#[derive(Debug, Args)]
pub struct Trust {
    /// Trust the gate's certificate only if it chains to a root in FILE (PEM), such as
    /// the CA's root.crt [default: the system's trust store].
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

fn parse_ttl(s: &str) -> Result<time::Duration, String> {
    portcullis_pki::renewal::parse_duration(s)
}

/// `portcullis pki enroll …`.
pub fn pki(dir: &Path, cmd: PkiEnrollCommand, json: bool, wait: std::time::Duration) -> Result<()> {
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        PkiEnrollCommand::Create {
            name,
            email,
            ou,
            o,
            ttl,
            validity,
            url,
        } => {
            let req = TokenRequest {
                common_name: name,
                email,
                organizational_units: ou,
                organization: o,
                ttl,
                validity,
            };
            let (token, secret) = tokens::create_token(dir, &req, wait)?;
            // The browser link carries the token in its fragment, which browsers never
            // send: it stays out of the gate's logs and every Referer.
            let link = url.as_deref().map(|u| format!("{u}#{secret}"));
            if json {
                let mut v = serde_json::to_value(&token)?;
                v["token"] = secret.into();
                v["state"] = token.state(now).as_str().into();
                if let Some(link) = link {
                    v["link"] = link.into();
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "token {} for CN={}, usable until {}",
                token.id, token.common_name, token.expires
            );
            println!("{secret}");
            println!("Give it to its owner by a channel you trust; it is shown only now.");
            let url = url.as_deref().unwrap_or("https://GATE/enroll");
            println!("In a browser, they open (the key is made in the browser):");
            println!(
                "  {}",
                link.as_deref().unwrap_or("https://GATE/enroll#TOKEN")
            );
            println!("On a machine, they put the token in a file and run:");
            println!("  portcullis enroll {url} --token-file TOKEN_FILE --ca root.crt --out DIR");
        }
        PkiEnrollCommand::List => {
            let all = tokens::list(dir)?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|t| {
                        let mut v = serde_json::to_value(t).unwrap_or_default();
                        v["state"] = t.state(now).as_str().into();
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            if all.is_empty() {
                println!("no enrolment tokens");
                return Ok(());
            }
            println!(
                "{:<12}  {:<8}  {:<20}  {:<25}  USED",
                "ID", "STATE", "CN", "EXPIRES"
            );
            for t in &all {
                let used = t
                    .used
                    .as_ref()
                    .map(|u| {
                        format!(
                            "{} by {} -> {}",
                            u.at,
                            u.by,
                            u.serial.as_deref().unwrap_or("(nothing issued)")
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "{:<12}  {:<8}  {:<20}  {:<25}  {used}",
                    t.id,
                    t.state(now).as_str(),
                    t.common_name,
                    t.expires
                );
            }
        }
        PkiEnrollCommand::Revoke { id } => {
            let t = tokens::revoke_token(dir, &id, wait)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!("token {} (CN={}) revoked", t.id, t.common_name);
            }
        }
    }
    Ok(())
}

fn roots(trust: &Trust) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match &trust.ca {
        Some(file) => {
            for der in portcullis_pki::ca::read_certs(file)? {
                store
                    .add(CertificateDer::from(der))
                    .with_context(|| format!("{}: not a usable CA certificate", file.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = store.add(cert);
            }
            if store.is_empty() {
                bail!("no system trust store found: give the CA's root with --ca FILE");
            }
        }
    }
    Ok(store)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}

/// `portcullis enroll URL`.
pub fn enroll(args: EnrollArgs) -> Result<()> {
    let token = Source {
        file: args.token_file.as_deref(),
        flag: "--token-file",
        env: TOKEN_ENV,
        prompt: "Enrolment token".into(),
    }
    .require(Mode::Enter)?;
    let key = args.key_type.generate()?;
    // The gate takes the subject from the token; the request only proves the key.
    let subject = Subject {
        common_name: args.name.clone().unwrap_or_else(|| "enrolment".into()),
        ..Subject::default()
    };
    let csr = portcullis_pki::csr::create(&subject, &[], &key)?;
    let roots = roots(&args.trust)?;
    let issued = runtime()?
        .block_on(client::redeem(&args.url, roots, token.expose(), &csr))
        .context("enrolment failed")?;
    if !tokens::issued_for(&key, &issued.certificate) {
        bail!("the gate answered with a certificate for another key; nothing was written");
    }
    let stem = args
        .name
        .unwrap_or_else(|| names::file_stem(&issued.common_name));
    let mut out = Outputs::new();
    let key_path = args.out.join(format!("{stem}.key"));
    out.add(key_path, keys::to_pem(&key, None)?.as_bytes(), 0o600);
    write_certs(&mut out, &args.out, &stem, &issued);
    let written = out
        .commit(args.force)
        .context("nothing was written; pass --force to replace existing files")?;
    report(&issued, &written);
    Ok(())
}

fn write_certs(out: &mut Outputs, dir: &Path, stem: &str, issued: &Issued) {
    out.add(
        dir.join(format!("{stem}.chain.pem")),
        issued.chain.clone().into_bytes(),
        0o644,
    );
    out.add(
        dir.join(format!("{stem}.crt")),
        issued.certificate.clone().into_bytes(),
        0o644,
    );
}

fn report(issued: &Issued, written: &[PathBuf]) {
    println!("issued {} for CN={}", issued.serial, issued.common_name);
    for n in &issued.not_granted {
        println!("not granted: {n}");
    }
    for w in written {
        println!("wrote {}", w.display());
    }
}

/// `portcullis renew URL --cert C --key K`, once or (`--daemon`) whenever due.
pub fn renew(args: RenewArgs) -> Result<()> {
    let key_text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read {}", args.key.display()))?;
    let source = Source {
        file: args.key_passphrase_file.as_deref(),
        flag: "--key-passphrase-file",
        env: KEY_ENV,
        prompt: format!("Passphrase for {}", args.key.display()),
    };
    let passphrase = match (keys::is_encrypted(&key_text), args.daemon) {
        (false, _) => None,
        // A daemon has no terminal to ask on after the first renewal.
        (true, true) => Some(
            source
                .get_unattended()?
                .ok_or_else(|| anyhow::anyhow!("{}", source.missing()))?,
        ),
        (true, false) => Some(source.require(Mode::Enter)?),
    };
    let runtime = runtime()?;
    if !args.daemon {
        let issued = renew_once(&args, passphrase.as_ref(), &runtime)?;
        return after_renewal(&args, &issued);
    }
    let threshold = args.within.unwrap_or_default();
    let mut backoff = std::time::Duration::from_secs(5);
    loop {
        let (not_before, not_after) = validity(&args.cert)?;
        let now = time::OffsetDateTime::now_utc();
        let due = threshold.due_at(not_before, not_after);
        if now < due {
            let wait = (due - now).unsigned_abs();
            println!("next renewal at {due} (in {}s)", wait.as_secs());
            std::thread::sleep(wait);
            continue;
        }
        match renew_once(&args, passphrase.as_ref(), &runtime) {
            Ok(issued) => {
                backoff = std::time::Duration::from_secs(5);
                after_renewal(&args, &issued)?;
            }
            // Revoked or expired: no retry can succeed; a person must enrol again.
            Err(e) if format!("{e:#}").contains("CertificateRevoked") || now >= not_after => {
                return Err(e.context("cannot renew any more: enrol again with a new token"));
            }
            Err(e) => {
                eprintln!("error: {e:#}; trying again in {}s", backoff.as_secs());
                let left = (not_after - now).unsigned_abs();
                std::thread::sleep(backoff.min(left));
                backoff = (backoff * 2).min(std::time::Duration::from_secs(300));
            }
        }
    }
}

/// The validity of the certificate in `file`.
fn validity(file: &Path) -> Result<(time::OffsetDateTime, time::OffsetDateTime)> {
    let der = portcullis_pki::ca::read_certs(file)?.swap_remove(0);
    let info = portcullis_pki::inspect::cert_info(&der, file)?;
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("{}: validity {t:?}", file.display()))
    };
    Ok((parse(&info.not_before)?, parse(&info.not_after)?))
}

/// Prints what was renewed and runs `--exec`.
fn after_renewal(args: &RenewArgs, issued: &Issued) -> Result<()> {
    if let Some(cmd) = &args.exec {
        // The new serial for the command, as certbot's deploy hooks get their paths.
        let status = std::process::Command::new("sh")
            .args(["-c", cmd])
            .env("PORTCULLIS_SERIAL", &issued.serial)
            .env("PORTCULLIS_CERT", &args.cert)
            .env("PORTCULLIS_KEY", &args.key)
            .status()
            .with_context(|| format!("--exec {cmd:?}"))?;
        if !status.success() {
            eprintln!("warning: --exec {cmd:?} exited with {status}");
        }
    }
    Ok(())
}

fn renew_once(
    args: &RenewArgs,
    passphrase: Option<&portcullis_pki::Passphrase>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Issued> {
    let chain = portcullis_pki::ca::read_certs(&args.cert)?;
    let key_text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read {}", args.key.display()))?;
    let old_key = keys::from_pem(
        &key_text,
        &args.key,
        passphrase,
        "--key-passphrase-file FILE or PORTCULLIS_KEY_PASSPHRASE",
    )?;
    let new_key = args.key_type.generate()?;
    // The gate renews the subject and names of the certificate presented; the request
    // only proves the new key.
    let csr = portcullis_pki::csr::create(
        &Subject {
            common_name: "renewal".into(),
            ..Subject::default()
        },
        &[],
        &new_key,
    )?;
    let presented: Vec<CertificateDer<'static>> =
        chain.into_iter().map(CertificateDer::from).collect();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(old_key.serialize_der()));
    let issued = runtime
        .block_on(client::renew(
            &args.url,
            roots(&args.trust)?,
            presented,
            private,
            &csr,
        ))
        .context("renewal failed; the current certificate and key are unchanged")?;
    if !tokens::issued_for(&new_key, &issued.certificate) {
        bail!(
            "the gate answered with a certificate for another key; the current certificate and key are unchanged"
        );
    }

    // The old pair stays beside as FILE.previous until the next renewal: if replacing
    // fails halfway, nothing is lost. Then the key first, so a certificate never sits
    // beside a key it does not match for longer than one rename.
    for (file, mode) in [(&args.key, 0o600), (&args.cert, 0o644)] {
        let previous = PathBuf::from(format!("{}.previous", file.display()));
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        portcullis_pki::fsio::write_atomic(&previous, &bytes, mode, true)?;
    }
    let mut out = Outputs::new();
    out.add(
        args.key.clone(),
        keys::to_pem(&new_key, passphrase)?.as_bytes(),
        0o600,
    );
    let text = std::fs::read_to_string(&args.cert).unwrap_or_default();
    let is_chain = text.matches("BEGIN CERTIFICATE").count() > 1
        || args.cert.to_string_lossy().ends_with(".chain.pem");
    let body = if is_chain {
        &issued.chain
    } else {
        &issued.certificate
    };
    out.add(args.cert.clone(), body.clone().into_bytes(), 0o644);
    let written = out.commit(true)?;
    report(&issued, &written);
    Ok(issued)
}

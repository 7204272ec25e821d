//! `portcullis doctor`: arguments and printing. The probing, the diagnosis and the fix
//! catalog live in `portcullis-doctor`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use portcullis_doctor::render::{self, Style};
use portcullis_doctor::{ClientIdentity, Report, Request, Target};

use crate::secrets::{self, Mode, Source};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DoctorArgs {
    #[command(subcommand)]
    pub command: Option<DoctorCommand>,

    /// HOST[:PORT] or https://HOST[:PORT]/path (port 443 by default).
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,

    /// Trust only these CA certificates (PEM or DER; repeatable), like Node's `ca` or
    /// curl's --cacert. Without it: the system store, and Mozilla's list for comparison.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,

    /// The name to send in SNI and to verify in the certificate (Node's `servername`).
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,

    /// Client certificate (PEM; may hold the chain) to present when the server asks.
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with = "p12")]
    pub cert: Option<PathBuf>,

    /// Private key of --cert (PEM, plain or encrypted PKCS#8).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Passphrase of an encrypted --key, from the first line of FILE
    /// (or PORTCULLIS_KEY_PASSPHRASE, or the prompt).
    #[arg(long, value_name = "FILE")]
    pub key_passphrase_file: Option<PathBuf>,

    /// Client certificate and key from a PKCS#12 bundle (instead of --cert/--key).
    #[arg(long, value_name = "FILE")]
    pub p12: Option<PathBuf>,

    /// Password of the --p12 bundle, from the first line of FILE
    /// (or PORTCULLIS_P12_PASSWORD, or the prompt).
    #[arg(long, value_name = "FILE")]
    pub p12_password_file: Option<PathBuf>,

    /// Offer only this TLS version.
    #[arg(long, value_parser = ["1.2", "1.3"])]
    pub tls: Option<String>,

    /// ALPN protocols to offer, comma-separated (e.g. h2,http/1.1).
    #[arg(long, value_delimiter = ',', value_name = "PROTOCOLS")]
    pub alpn: Vec<String>,

    /// Give up on each step after SECS seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub timeout: f64,

    /// Print one JSON object (stable: `cause`, `findings`, `observations`…).
    #[arg(long)]
    pub json: bool,

    /// Also try other client profiles (SNI, TLS version, ALPN, client certificate, trust
    /// store) and name the smallest difference that makes it work.
    #[arg(long)]
    pub compare: bool,

    /// Judge trust with the store this client uses on this machine (its files and
    /// environment variables: NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
    /// SSL_CERT_FILE…), and say which store that was.
    #[arg(long = "as", value_name = "CLIENT", value_parser = ["node", "python", "curl", "openssl", "java", "go", "rustls"])]
    pub as_client: Option<String>,

    /// Show the evidence, the handshake trace and fixes for every ecosystem.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum DoctorCommand {
    /// Does this server really verify client certificates? Sends URL forged twins of a
    /// certificate it accepts (none, self-signed, a fake CA with the real issuer's name,
    /// expired, without clientAuth) and reports every twin answered like the real one.
    Audit(AuditArgs),
    /// Reads a packet capture (pcap or pcapng, as tcpdump, tshark, dumpcap and Wireshark
    /// write them) and gives one verdict per TLS connection in it, on any port.
    Capture(CaptureArgs),
    /// Two captures, one where the client works and one where it fails: pairs the
    /// connections to the same server and names the first difference that explains the
    /// failure, side by side, then the cause and the fix.
    CompareCaptures(CompareCapturesArgs),
    /// Offline: what an error message or code from Node.js, OpenSSL, curl, rustls, Go,
    /// Java or Python means, and the secure fix.
    Explain {
        /// The error text (quote it) or an OpenSSL verify code.
        #[arg(required = true)]
        text: Vec<String>,
        /// Print one JSON object (`cause`, `what`, `fix`, `note`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// https://HOST[:PORT]/path that the certificate should protect.
    #[arg(value_name = "URL")]
    pub url: String,

    /// A client certificate the server accepts (PEM; may hold the chain). Its forged
    /// twins are made in memory and never written anywhere.
    #[arg(long, value_name = "FILE", required = true)]
    pub cert: PathBuf,

    /// Private key of --cert (PEM, plain or encrypted PKCS#8).
    #[arg(long, value_name = "FILE", required = true)]
    pub key: PathBuf,

    /// Passphrase of an encrypted --key, from the first line of FILE
    /// (or PORTCULLIS_KEY_PASSPHRASE, or the prompt).
    #[arg(long, value_name = "FILE")]
    pub key_passphrase_file: Option<PathBuf>,

    /// Verify the server with only these CA certificates (repeatable); without it, the
    /// system store. The server is always verified before anything is sent.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,

    /// The name to send in SNI and to verify in the server's certificate.
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,

    /// Give up on each step after SECS seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub timeout: f64,

    /// Print one JSON object (the doctor's: `cause`, `findings`, `observations.audit`).
    #[arg(long)]
    pub json: bool,

    /// Show the evidence: each twin's answer next to the real certificate's.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The capture file (`tcpdump -w FILE`, `tshark -w FILE`, `dumpcap -w FILE`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The CA certificates the client trusts (repeatable): a chain the client refused is
    /// judged against them. Without it: the system store and Mozilla's list.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,

    /// The TLS 1.3 secrets the client wrote (`SSLKEYLOGFILE`, Node's `--tls-keylog`): the
    /// encrypted handshake is opened so its certificates, CertificateRequest and alerts
    /// become evidence. Application data is never decrypted.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,

    /// Print one JSON object: `connections` (`client`, `server`, `sni`, `cause`,
    /// `findings`…) and `summary`.
    #[arg(long)]
    pub json: bool,

    /// Show each connection's handshake as captured, the evidence and every fix.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CompareCapturesArgs {
    /// The capture where the client works.
    #[arg(value_name = "GOOD")]
    pub good: PathBuf,

    /// The capture where the client fails.
    #[arg(value_name = "BAD")]
    pub bad: PathBuf,

    /// The CA certificates the failing client trusts (repeatable), as for `capture`.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,

    /// The TLS 1.3 secrets the clients wrote (`SSLKEYLOGFILE`, Node's `--tls-keylog`; both
    /// clients' in one file): the encrypted handshakes are opened so its certificates, CertificateRequest and alerts
    /// become evidence. Application data is never decrypted.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,

    /// Print one JSON object: `cause`, `difference` (`field`, `good`, `bad`), `findings`,
    /// `pairing`, `rows`.
    #[arg(long)]
    pub json: bool,

    /// Show both handshakes as captured, the evidence and every fix.
    #[arg(short, long)]
    pub verbose: bool,
}

fn style() -> Style {
    Style::new(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
}

pub fn run(mut args: DoctorArgs) -> ExitCode {
    let result = match args.command.take() {
        Some(DoctorCommand::Explain { text, json }) => return explain(&text.join(" "), json),
        Some(DoctorCommand::Audit(a)) => audit(a),
        Some(DoctorCommand::Capture(c)) => capture(c),
        Some(DoctorCommand::CompareCaptures(c)) => compare_captures(c),
        None => diagnose(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn explain(text: &str, json: bool) -> ExitCode {
    match portcullis_doctor::explain::explain(text) {
        Some(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&e).unwrap_or_else(|e| e.to_string())
                );
            } else {
                print!("{}", render::explanation(&e, style()));
            }
            ExitCode::SUCCESS
        }
        None => {
            if json {
                // The shape of a match, every field but the input null: scripts read
                // the same keys either way.
                let mut v = serde_json::to_value(portcullis_doctor::explain::Explanation {
                    input: text.to_owned(),
                    ..Default::default()
                })
                .unwrap_or_default();
                if let Some(fields) = v.as_object_mut() {
                    for (key, value) in fields.iter_mut() {
                        if key != "input" {
                            *value = serde_json::Value::Null;
                        }
                    }
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!(
                    "no known cause for {text:?}; run `portcullis doctor HOST[:PORT]` to probe the server"
                );
            }
            ExitCode::from(1)
        }
    }
}

/// `doctor audit`: the real certificate must load; its twins are the library's business.
fn audit(args: AuditArgs) -> Result<ExitCode> {
    check_timeout(args.timeout)?;
    let mut req = Request {
        target: Target::parse(&args.url)?,
        servername: args.servername.clone(),
        ca_files: args.ca.iter().map(|p| p.display().to_string()).collect(),
        ca: read_ca(&args.ca)?,
        client: None,
        tls: None,
        alpn: vec![],
        timeout: Duration::from_secs_f64(args.timeout),
        compare: false,
        as_client: None,
    };
    let report = match load_client(&args.cert, &args.key, args.key_passphrase_file.as_deref())? {
        Ok(identity) => {
            req.client = Some(identity);
            portcullis_doctor::audit::run(&req)?
        }
        Err((cause, detail)) => portcullis_doctor::local_report(&req, cause, detail),
    };
    if args.json {
        println!("{}", render::json(&report));
    } else {
        print!("{}", render::text(&report, args.verbose, style()));
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// `doctor capture`: exit 0 when every TLS connection is healthy, 1 when one is not, 2
/// when the file cannot be read as a capture.
fn capture(args: CaptureArgs) -> Result<ExitCode> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let opts = portcullis_doctor::capture::Options {
        ca: read_ca(&args.ca)?,
        ca_files: args.ca.iter().map(|p| p.display().to_string()).collect(),
        keylog: read_keylog(args.keylog.as_deref())?,
    };
    let name = args.file.display().to_string();
    let report = portcullis_doctor::capture::read(std::io::BufReader::new(file), &name, &opts)
        .with_context(|| format!("cannot read {name}"))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot print the report")?
        );
    } else {
        print!("{}", render::capture_text(&report, args.verbose, style()));
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// `doctor compare-captures`: exit 0 when BAD's connection is healthy, 1 when it fails,
/// 2 when a file cannot be read or nothing in them can be paired.
fn compare_captures(args: CompareCapturesArgs) -> Result<ExitCode> {
    let opts = portcullis_doctor::capture::Options {
        ca: read_ca(&args.ca)?,
        ca_files: args.ca.iter().map(|p| p.display().to_string()).collect(),
        keylog: read_keylog(args.keylog.as_deref())?,
    };
    let extract = |path: &Path| -> Result<portcullis_doctor::capture::Extracted> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?;
        portcullis_doctor::capture::extract_with(
            std::io::BufReader::new(file),
            opts.keylog.as_ref(),
        )
        .with_context(|| format!("cannot read {name}"))
    };
    let (good, bad) = (extract(&args.good)?, extract(&args.bad)?);
    let cmp = portcullis_doctor::capture::compare::compare(&good, &bad, &opts)
        .context("nothing to compare")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&cmp).context("cannot print the comparison")?
        );
    } else {
        print!(
            "{}",
            render::compare_captures_text(
                &cmp,
                &args.good.display().to_string(),
                &args.bad.display().to_string(),
                args.verbose,
                style()
            )
        );
    }
    Ok(ExitCode::from(cmp.exit_code()))
}

/// `--keylog FILE`: the key log, which must hold at least one TLS 1.3 handshake secret.
fn read_keylog(file: Option<&Path>) -> Result<Option<portcullis_doctor::capture::keylog::KeyLog>> {
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --keylog {}", file.display()))?;
    let log = portcullis_doctor::capture::keylog::KeyLog::parse(&text);
    if log.is_empty() {
        bail!(
            "--keylog {}: no TLS 1.3 handshake secret in it (CLIENT_HANDSHAKE_TRAFFIC_SECRET / SERVER_HANDSHAKE_TRAFFIC_SECRET lines); TLS 1.2 keys (CLIENT_RANDOM) are not used",
            file.display()
        );
    }
    Ok(Some(log))
}

fn check_timeout(secs: f64) -> Result<()> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 600.0) {
        bail!("--timeout must be between 0 and 600 seconds");
    }
    Ok(())
}

/// The certificates of the --ca files; `None` when there are none (the system store).
fn read_ca(files: &[PathBuf]) -> Result<Option<Vec<Vec<u8>>>> {
    let mut ca = Vec::new();
    for f in files {
        let bytes =
            std::fs::read(f).with_context(|| format!("cannot read --ca {}", f.display()))?;
        let certs = portcullis_doctor::certs::pem_certs(&bytes);
        if certs.is_empty() {
            return Err(portcullis_doctor::Error::NoCertificates { path: f.clone() }.into());
        }
        ca.extend(certs);
    }
    Ok((!files.is_empty()).then_some(ca))
}

fn diagnose(args: DoctorArgs) -> Result<ExitCode> {
    let Some(target) = &args.target else {
        bail!(
            "give a TARGET (HOST[:PORT] or https://HOST[:PORT]/path), `explain \"TEXT\"` or `audit URL`"
        );
    };
    check_timeout(args.timeout)?;
    let mut req = Request {
        target: Target::parse(target)?,
        servername: args.servername.clone(),
        ca_files: args.ca.iter().map(|p| p.display().to_string()).collect(),
        ca: read_ca(&args.ca)?,
        client: None,
        tls: args.tls.clone(),
        alpn: args.alpn.clone(),
        timeout: Duration::from_secs_f64(args.timeout),
        compare: args.compare,
        as_client: args.as_client.clone(),
    };
    let report = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            match load_client(cert, key, args.key_passphrase_file.as_deref())? {
                Ok(identity) => {
                    req.client = Some(identity);
                    portcullis_doctor::run(&req)?
                }
                Err((cause, detail)) => portcullis_doctor::local_report(&req, cause, detail),
            }
        }
        _ => match &args.p12 {
            Some(p12) => match load_p12(p12, args.p12_password_file.as_deref())? {
                Ok(identity) => {
                    req.client = Some(identity);
                    portcullis_doctor::run(&req)?
                }
                Err((cause, detail)) => portcullis_doctor::local_report(&req, cause, detail),
            },
            None => portcullis_doctor::run(&req)?,
        },
    };
    print(&report, &args);
    Ok(ExitCode::from(report.exit_code()))
}

fn print(report: &Report, args: &DoctorArgs) {
    if args.json {
        println!("{}", render::json(report));
    } else {
        print!("{}", render::text(report, args.verbose, style()));
    }
}

/// Opens a PKCS#12 bundle. A bundle we cannot open with the password given is a finding
/// (`client-key-passphrase`), not a doctor failure.
fn load_p12(
    path: &Path,
    pass_file: Option<&Path>,
) -> Result<std::result::Result<ClientIdentity, (&'static str, String)>> {
    let der =
        std::fs::read(path).with_context(|| format!("cannot read --p12 {}", path.display()))?;
    let source = Source {
        file: pass_file,
        flag: "--p12-password-file",
        env: secrets::P12_ENV,
        prompt: "PKCS#12 password".to_string(),
    };
    let Some(pass) = source.get(Mode::Enter)? else {
        return Ok(Err((
            "client-key-passphrase",
            format!("{} needs a password: {}", path.display(), source.missing()),
        )));
    };
    match ClientIdentity::from_p12(&der, pass.expose(), pass.origin(), path) {
        Ok(id) => Ok(Ok(id)),
        Err(e @ portcullis_doctor::Error::P12 { .. }) => {
            Ok(Err(("client-key-passphrase", e.to_string())))
        }
        Err(e) => Err(e.into()),
    }
}

/// The CA certificates of the chain file issued beside `cert` (NAME.chain.pem beside
/// NAME.crt) that `chain` lacks. Never sent: the doctor presents exactly what `--cert`
/// holds, and uses these only to recognise a leaf sent without its intermediate.
fn chain_beside(cert: &Path, chain: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let file = portcullis_pki::ca::issued_beside(cert, "chain.pem");
    if file == cert {
        return Vec::new();
    }
    std::fs::read(&file)
        .map(|bytes| portcullis_doctor::certs::pem_certs(&bytes))
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !chain.contains(c))
        .collect()
}

/// Reads the client certificate and key. A key we cannot unlock is a finding
/// (`client-key-passphrase`), not a doctor failure.
fn load_client(
    cert: &Path,
    key: &Path,
    pass_file: Option<&Path>,
) -> Result<std::result::Result<ClientIdentity, (&'static str, String)>> {
    let bytes =
        std::fs::read(cert).with_context(|| format!("cannot read --cert {}", cert.display()))?;
    let chain = portcullis_doctor::certs::pem_certs(&bytes);
    if chain.is_empty() {
        return Err(portcullis_doctor::Error::NoCertificates {
            path: cert.to_owned(),
        }
        .into());
    }
    let text = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read --key {}", key.display()))?;
    let pass = if portcullis_pki::keys::is_encrypted(&text) {
        let source = Source {
            file: pass_file,
            flag: "--key-passphrase-file",
            env: secrets::KEY_ENV,
            prompt: "Client key passphrase".to_string(),
        };
        match source.get(Mode::Enter)? {
            Some(p) => Some(p),
            None => {
                return Ok(Err((
                    "client-key-passphrase",
                    format!("{} is encrypted: {}", key.display(), source.missing()),
                )));
            }
        }
    } else {
        None
    };
    match portcullis_pki::keys::from_pem(&text, key, pass.as_ref(), "--key-passphrase-file") {
        Ok(k) => Ok(Ok(ClientIdentity {
            beside: chain_beside(cert, &chain),
            chain,
            key_pkcs8: k.serialize_der(),
            cert_file: cert.display().to_string(),
            key_file: key.display().to_string(),
        })),
        Err(e @ portcullis_pki::Error::WrongPassphrase { .. }) => {
            Ok(Err(("client-key-passphrase", e.to_string())))
        }
        Err(e) => Err(e).context("cannot use the client key"),
    }
}

//! `portcullis serve` and `portcullis check`: load, explain, run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use portcullis_gate::dev::{self, DevSetup};
use portcullis_gate::logging;
use portcullis_gate::reload;
use portcullis_gate::{ClientAuth, Config, Current, Gate, NoSni, Upstream};
use portcullis_pki::Passphrase;
use serde::Serialize;

use crate::cli::ServeArgs;
use crate::secrets::{self, Mode, Source};

/// The server key's passphrase if the key is encrypted: config file, environment, then
/// prompt. Kept for reloads, which cannot prompt.
fn key_passphrase(config: &Config) -> Result<Option<Passphrase>> {
    let site = &config.site;
    if !portcullis_gate::key_is_encrypted(&site.key)? {
        return Ok(None);
    }
    let src = Source {
        file: site.key_passphrase_file.as_deref(),
        flag: "key_passphrase_file",
        env: secrets::KEY_ENV,
        prompt: format!("Enter passphrase for {}", site.key.display()),
    };
    src.get(Mode::Enter)
}

/// Loads the gate, asking for the key passphrase if needed; the passphrase is returned
/// for reloads.
pub(crate) fn load(config: Config) -> Result<(Gate, Option<Passphrase>)> {
    let pass = key_passphrase(&config)?;
    let gate = Gate::load(config, pass.as_ref())?;
    warn_expired_crls(&gate);
    Ok((gate, pass))
}

fn warn_expired_crls(gate: &Gate) {
    for site in gate.sites() {
        for crl in site.expired_crls() {
            let policy = if site.config().allow_expired_crl {
                "clients are accepted anyway (allow_expired_crl = true)"
            } else {
                "every client certificate it covers is REJECTED until a fresh CRL is published"
            };
            logging::warning(&format!(
                "WARNING: CRL past its nextUpdate: {crl}; {policy}"
            ));
        }
    }
}

/// Logs what a reload did.
fn report_reload(current: &Current, event: &reload::Event) {
    match event {
        reload::Event::FilesChanged => logging::event("reload: files changed"),
        reload::Event::Loaded {
            path,
            version,
            was,
            closed,
        } => {
            warn_expired_crls(&current.load());
            logging::event(&format!(
                "reload: {} loaded, version {version} (was {was})",
                path.display()
            ));
            if *closed > 0 {
                logging::event(&format!(
                    "reload: closing {closed} connection(s) whose certificate is no longer accepted"
                ));
            }
        }
        reload::Event::Failed { still, error } => logging::event(&format!(
            "reload failed, still serving version {still}: {error}"
        )),
    }
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let (mut config, setup) = match &args.config {
        Some(path) => (Config::from_file(path)?, None),
        None => {
            let setup = dev::ensure(Path::new("")).context("setting up the development gate")?;
            (setup.config.clone(), Some(setup))
        }
    };
    if let Some(addr) = args.listen {
        config.listener.listen = addr;
    }
    // Every line from here on, the gate's and ours, goes through the one log.
    let _log = logging::init(config.listener.access_log);
    let config_path = config.source.clone();
    let (gate, pass) = load(config)?;
    let gate = Arc::new(gate);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Everything runs on the worker threads, the accept loop too: from the main thread
    // (block_on), each accepted connection would cost a wake-up of another thread.
    let main = runtime.spawn(async move {
        let listener = gate.bind().await?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let current: Current = Arc::new(ArcSwap::new(gate.clone()));
        // Before the gate says it is listening: from now on SIGHUP reloads.
        let hup = reload::hangups().context("installing the SIGHUP handler")?;
        let listener_config = gate.listener();
        if let Some(redirect) = listener_config.redirect_http {
            let plain = tokio::net::TcpListener::bind(redirect)
                .await
                .with_context(|| format!("cannot listen on {redirect}"))?;
            logging::event(&format!(
                "redirecting http://{} to HTTPS",
                plain.local_addr()?
            ));
            tokio::spawn(portcullis_gate::serve_redirects(
                current.clone(),
                plain,
                addr.port(),
            ));
        }
        if let Some(admin) = listener_config.admin {
            let l = tokio::net::TcpListener::bind(admin)
                .await
                .with_context(|| format!("cannot listen on {admin} (admin)"))?;
            logging::event(&format!(
                "admin on http://{} (/metrics, /healthz, /readyz, /config)",
                l.local_addr()?
            ));
            tokio::spawn(portcullis_gate::serve_admin(current.clone(), l));
        }
        // Reloads keep the address the listener really has (it may come from --listen).
        tokio::spawn(reload::reload_forever(
            current.clone(),
            config_path,
            addr,
            pass,
            hup,
            {
                let current = current.clone();
                move |event| report_reload(&current, event)
            },
        ));
        if let Some(setup) = &setup {
            print_dev_guide(setup, addr.port());
            let _ = std::io::stdout().flush();
        }
        logging::event(&format!(
            "listening on https://{addr} (client_auth = {})",
            mode_name(gate.sites()[0].config().client_auth)
        ));
        let still_open = portcullis_gate::serve(current, listener, terminated()).await?;
        if still_open > 0 {
            logging::event(&format!(
                "stopped; {still_open} connection(s) were still open after the grace period"
            ));
        } else {
            logging::event("stopped");
        }
        Ok(())
    });
    runtime
        .block_on(main)
        .context("the gate's main task ended abnormally")?
}

/// Completes on SIGTERM or SIGINT (Ctrl-C), saying so.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the gate runs until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    logging::event("shutting down: no new connections; finishing requests in flight");
}

fn mode_name(m: ClientAuth) -> &'static str {
    match m {
        ClientAuth::Require => "require",
        ClientAuth::Optional => "optional",
        ClientAuth::Off => "off",
    }
}

/// The copy-paste guide of the first run. Every command is runnable as printed from the
/// directory `portcullis serve` was started in.
fn print_dev_guide(s: &DevSetup, port: u16) {
    let ca = s.ca_cert.display();
    let url = format!("https://localhost:{port}");
    if !s.created.is_empty() {
        println!(
            "Created a development CA and certificates in {} (not for production).",
            s.dir.display()
        );
    } else {
        println!(
            "Using the development CA and certificates in {}.",
            s.dir.display()
        );
    }
    println!();
    println!("Try it:");
    println!("  # anonymous: the home page is open, /me needs a certificate (401)");
    println!("  curl --cacert {ca} {url}/");
    println!("  curl --cacert {ca} {url}/me");
    for u in &s.users {
        let (cert, key) = (u.cert.display(), u.key.display());
        let path = if u.role == "admin" { "/admin/" } else { "/me" };
        println!(
            "  # {} (role {}){}",
            u.name,
            u.role,
            if u.role == "admin" {
                ""
            } else {
                "; /admin/ answers 403"
            }
        );
        println!("  curl --cacert {ca} --cert {cert} --key {key} {url}{path}");
    }
    if let Some(alice) = s.users.first() {
        println!("  # the same with the PKCS#12 bundle");
        println!(
            "  curl --cacert {ca} --cert-type P12 --cert {}:{} {url}/me",
            alice.p12.display(),
            dev::DEV_P12_PASSWORD
        );
        println!();
        println!("Node.js (https.request options):");
        println!(
            "  node -e \"const fs=require('fs');require('https').get({{host:'localhost',port:{port},path:'/me',ca:fs.readFileSync('{ca}'),cert:fs.readFileSync('{}'),key:fs.readFileSync('{}')}},r=>r.pipe(process.stdout))\"",
            alice.cert.display(),
            alice.key.display()
        );
        println!();
        println!("Browser:");
        println!(
            "  1. Import {} (password: {}) into the browser's certificates.",
            alice.p12.display(),
            dev::DEV_P12_PASSWORD
        );
        println!("  2. Trust {ca} as a certificate authority (or accept the warning once).");
        println!("  3. Open {url}/me and pick the certificate.");
    }
    println!();
    println!(
        "Configuration: {} (edit a copy and run `portcullis serve -c FILE`)",
        s.config_path.display()
    );
    println!();
}

/// What `check` found: printed as text, or whole with `--json` (docs/gate.md describes the
/// shape: change it deliberately).
#[derive(Debug, Serialize)]
struct Checked {
    config: PathBuf,
    ok: bool,
    /// Why the configuration does not load (with `ok: false`), as the gate would say it.
    error: Option<String>,
    listen: Option<String>,
    redirect_http: Option<String>,
    /// The default host first; it also answers clients without SNI unless `no_sni` refuses
    /// them.
    hosts: Vec<CheckedHost>,
    no_sni: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct CheckedHost {
    server_names: Vec<String>,
    source: PathBuf,
    cert: PathBuf,
    cert_names: Vec<String>,
    accepts_host: Vec<String>,
    client_auth: &'static str,
    client_ca: Vec<String>,
    crl: Vec<PathBuf>,
    /// `builtin:whoami` or `http://host:port`.
    upstream: String,
    /// The upstream speaks HTTP/2 without TLS (h2c).
    http2: bool,
    roles: Vec<String>,
    /// First match wins; no match is denied.
    rules: Vec<String>,
    /// `[enroll]`: the endpoints' path and the CA that issues there.
    enroll: Option<CheckedEnroll>,
}

#[derive(Debug, Serialize)]
struct CheckedEnroll {
    path: String,
    ca: PathBuf,
}

pub fn check(path: &Path, json: bool) -> Result<()> {
    // Warnings (an expired CRL) print like the gate's own, on stderr.
    let _log = logging::init(logging::Format::Text);
    let loaded = Config::from_file(path)
        .map_err(anyhow::Error::from)
        .and_then(|config| Ok(load(config)?.0));
    let gate = match loaded {
        Ok(gate) => gate,
        Err(e) if json => {
            let failed = Checked {
                config: path.to_owned(),
                ok: false,
                error: Some(format!("{e:#}")),
                listen: None,
                redirect_http: None,
                hosts: Vec::new(),
                no_sni: None,
            };
            println!("{}", serde_json::to_string_pretty(&failed)?);
            return Err(crate::pki::Exit(2).into());
        }
        Err(e) => return Err(e),
    };
    let l = gate.listener();
    let checked = Checked {
        config: path.to_owned(),
        ok: true,
        error: None,
        listen: Some(l.listen.to_string()),
        redirect_http: l.redirect_http.map(|r| r.to_string()),
        no_sni: Some(match l.no_sni {
            NoSni::Default => "default",
            NoSni::Reject => "reject",
        }),
        hosts: gate
            .sites()
            .iter()
            .map(|site| {
                let s = site.config();
                CheckedHost {
                    server_names: s.server_names.clone(),
                    source: s.source.clone(),
                    cert: s.cert.clone(),
                    cert_names: site.cert_names().to_vec(),
                    accepts_host: site.names().to_vec(),
                    client_auth: mode_name(s.client_auth),
                    client_ca: site.client_ca_subjects().to_vec(),
                    crl: s.crl.clone(),
                    upstream: match &s.upstream {
                        Upstream::Whoami => "builtin:whoami".into(),
                        Upstream::Http { authority, .. } => format!("http://{authority}"),
                    },
                    http2: matches!(s.upstream, Upstream::Http { http2: true, .. }),
                    roles: s.policy.role_names().to_vec(),
                    rules: s.rule_names.clone(),
                    enroll: s.enroll.as_ref().map(|e| CheckedEnroll {
                        path: e.path.clone(),
                        ca: e.ca.clone(),
                    }),
                }
            })
            .collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&checked)?);
    } else {
        print_checked(&checked);
    }
    Ok(())
}

fn print_checked(c: &Checked) {
    println!("{}: OK", c.config.display());
    if let Some(l) = &c.listen {
        println!("  listen       https://{l}");
    }
    if let Some(r) = &c.redirect_http {
        println!("  redirect     http://{r} -> https");
    }
    for (i, h) in c.hosts.iter().enumerate() {
        if i == 0 {
            let fallback = if c.no_sni == Some("reject") {
                "clients without SNI or with an unknown name are refused"
            } else {
                "also for clients without SNI or with an unknown name"
            };
            println!("  default host ({fallback})");
        } else {
            println!(
                "  host {} ({})",
                h.server_names.join(", "),
                h.source.display()
            );
        }
        println!(
            "    certificate  {} for {}",
            h.cert.display(),
            h.cert_names.join(", ")
        );
        println!("    accepts Host {}", h.accepts_host.join(", "));
        println!("    client_auth  {}", h.client_auth);
        for ca in &h.client_ca {
            println!("    client CA    {ca}");
        }
        for p in &h.crl {
            println!("    CRL          {}", p.display());
        }
        if h.upstream == "builtin:whoami" {
            println!("    upstream     built-in whoami page");
        } else {
            let h2c = if h.http2 { " (h2c)" } else { "" };
            println!("    upstream     {}{h2c}", h.upstream);
        }
        println!("    roles        {}", h.roles.join(", "));
        println!("    rules (first match wins; no match is denied):");
        for r in &h.rules {
            println!("      {r}");
        }
        if let Some(e) = &h.enroll {
            println!(
                "    enrolment    GET {0} (the browser page), POST {0}/csr (one-time token), POST {0}/renew (a valid certificate), before the rules; CA {1}",
                e.path,
                e.ca.display()
            );
        }
    }
}

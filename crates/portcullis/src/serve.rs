//! `portcullis serve` and `portcullis check`: load, explain, run.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use portcullis_gate::dev::{self, DevSetup};
use portcullis_gate::logging;
use portcullis_gate::reload;
use portcullis_gate::{ClientAuth, Config, Current, Gate, NoSni, Upstream};
use portcullis_pki::Passphrase;

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
fn load(config: Config) -> Result<(Gate, Option<Passphrase>)> {
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

pub fn check(path: &Path) -> Result<()> {
    let config = Config::from_file(path)?;
    // Warnings (an expired CRL) print like the gate's own.
    let _log = logging::init(logging::Format::Text);
    let (gate, _) = load(config)?;
    let l = gate.listener();
    println!("{}: OK", path.display());
    println!("  listen       https://{}", l.listen);
    if let Some(r) = l.redirect_http {
        println!("  redirect     http://{r} -> https");
    }
    for (i, site) in gate.sites().iter().enumerate() {
        let s = site.config();
        if i == 0 {
            let fallback = match l.no_sni {
                NoSni::Default => "also for clients without SNI or with an unknown name",
                NoSni::Reject => "clients without SNI or with an unknown name are refused",
            };
            println!("  default host ({fallback})");
        } else {
            println!(
                "  host {} ({})",
                s.server_names.join(", "),
                s.source.display()
            );
        }
        println!(
            "    certificate  {} for {}",
            s.cert.display(),
            site.cert_names().join(", ")
        );
        println!("    accepts Host {}", site.names().join(", "));
        println!("    client_auth  {}", mode_name(s.client_auth));
        for ca in site.client_ca_subjects() {
            println!("    client CA    {ca}");
        }
        for p in &s.crl {
            println!("    CRL          {}", p.display());
        }
        match &s.upstream {
            Upstream::Whoami => println!("    upstream     built-in whoami page"),
            Upstream::Http { authority, http2 } => {
                println!(
                    "    upstream     http://{authority}{}",
                    if *http2 { " (h2c)" } else { "" }
                )
            }
        }
        println!("    roles        {}", s.policy.role_names().join(", "));
        println!("    rules (first match wins; no match is denied):");
        for r in &s.rule_names {
            println!("      {r}");
        }
    }
    Ok(())
}

//! Test servers for the doctor, one kind per cause: rustls servers with crafted chains from
//! the PKI crate, raw TCP servers (plaintext banner, silent, close unless SNI matches,
//! alert sender), `openssl s_server` for what rustls will not serve, and the real servers
//! people run (nginx, HAProxy, Caddy, Node `https`). All listen on 127.0.0.1, on ephemeral
//! ports, and stop when the test process ends (the real servers when their handle drops).

// Test helpers: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_pki::build::{self, Kind, Spec};
use portcullis_pki::{KeyType, San, Subject};
use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::common::Sandbox;

// === certificates ===

/// A certificate and the key it certifies.
pub struct Cert {
    pub der: Vec<u8>,
    pub key: KeyPair,
    pub subject_der: Vec<u8>,
    pub key_id: Vec<u8>,
}

impl Cert {
    pub fn pem(&self) -> String {
        portcullis_pki::ca::pem("CERTIFICATE", &self.der)
    }
    pub fn key_pem(&self) -> String {
        portcullis_pki::keys::to_pem(&self.key, None)
            .unwrap()
            .to_string()
    }
}

/// What to put in a certificate; `issuer: None` makes it self-signed.
pub struct Make<'a> {
    pub kind: Kind,
    pub cn: &'a str,
    pub sans: Vec<San>,
    pub issuer: Option<&'a Cert>,
    /// Validity relative to now, in days.
    pub from_days: i64,
    pub to_days: i64,
}

impl Make<'_> {
    pub fn new(kind: Kind, cn: &str) -> Make<'_> {
        Make {
            kind,
            cn,
            sans: vec![],
            issuer: None,
            from_days: -1,
            to_days: 30,
        }
    }
}

pub fn dns(n: &str) -> San {
    San::Dns(n.into())
}

pub fn ip(n: &str) -> San {
    San::Ip(n.parse::<IpAddr>().unwrap())
}

pub fn make(m: Make<'_>) -> Cert {
    let key = KeyType::P256.generate().unwrap();
    let subject = Subject {
        common_name: m.cn.into(),
        ..Default::default()
    };
    let subject_der = build::subject_der(&subject);
    let spki = key.subject_public_key_info();
    let key_id = build::key_identifier(&spki).unwrap();
    let now = OffsetDateTime::now_utc();
    let serial = build::random_serial().unwrap();
    let (issuer_name, issuer_key_id, issuer_key) = match m.issuer {
        Some(i) => (i.subject_der.clone(), Some(i.key_id.clone()), &i.key),
        None => (subject_der.clone(), None, &key),
    };
    let der = build::sign(
        &Spec {
            kind: m.kind,
            issuer_name: &issuer_name,
            issuer_key_id: issuer_key_id.as_deref(),
            subject: &subject,
            sans: &m.sans,
            spki: &spki,
            not_before: now + time::Duration::days(m.from_days),
            not_after: now + time::Duration::days(m.to_days),
            serial: &serial,
            crl_url: None,
            ca_issuers_url: None,
        },
        issuer_key,
    )
    .unwrap();
    Cert {
        der,
        key,
        subject_der,
        key_id,
    }
}

pub fn root(cn: &str) -> Cert {
    make(Make::new(Kind::Root, cn))
}

pub fn intermediate(cn: &str, root: &Cert) -> Cert {
    make(Make {
        issuer: Some(root),
        ..Make::new(Kind::Intermediate, cn)
    })
}

/// A server certificate for localhost and 127.0.0.1 issued by `issuer`.
pub fn server_leaf(issuer: &Cert) -> Cert {
    make(Make {
        sans: vec![dns("localhost"), ip("127.0.0.1")],
        issuer: Some(issuer),
        ..Make::new(Kind::Server, "localhost")
    })
}

/// Writes one mTLS setup into the sandbox: `ca.pem` (the server's root, which the doctor
/// pins), `server.crt`/`server.key` (for localhost) and `server.pem` (both, for HAProxy's
/// `crt`), `clients.pem` (the CA "`server` Clients CA" the server trusts for clients),
/// `alice.crt`/`.key` issued by it, and `mallory.crt`/`.key` issued by "Stranger CA".
pub fn mtls_files(sb: &Sandbox, server: &str) {
    let ca = root(&format!("{server} Server Root"));
    let leaf = server_leaf(&ca);
    let clients = root(&format!("{server} Clients CA"));
    let alice = make(Make {
        issuer: Some(&clients),
        ..Make::new(Kind::Client, "alice")
    });
    let stranger = root("Stranger CA");
    let mallory = make(Make {
        issuer: Some(&stranger),
        ..Make::new(Kind::Client, "mallory")
    });
    for (file, text) in [
        ("ca.pem", ca.pem()),
        ("server.crt", leaf.pem()),
        ("server.key", leaf.key_pem()),
        ("server.pem", leaf.pem() + &leaf.key_pem()),
        ("clients.pem", clients.pem()),
        ("alice.crt", alice.pem()),
        ("alice.key", alice.key_pem()),
        ("mallory.crt", mallory.pem()),
        ("mallory.key", mallory.key_pem()),
    ] {
        std::fs::write(sb.path(file), text).unwrap();
    }
}

// === rustls servers ===

/// How a rustls test server behaves.
pub struct Server<'a> {
    /// Certificates sent, in this order (leaf first normally).
    pub chain: Vec<&'a Cert>,
    /// Whose key signs the handshake (the leaf).
    pub key: &'a Cert,
    /// Require a client certificate from this CA.
    pub client_ca: Option<&'a Cert>,
    pub alpn: Vec<&'a str>,
    /// Close the connection, without an alert, unless the ClientHello names this host.
    pub sni_only: Option<&'a str>,
}

impl<'a> Server<'a> {
    pub fn new(leaf: &'a Cert) -> Server<'a> {
        Server {
            chain: vec![leaf],
            key: leaf,
            client_ca: None,
            alpn: vec![],
            sni_only: None,
        }
    }

    /// Starts the server on 127.0.0.1 and returns its port.
    pub fn start(self) -> u16 {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(CertificateDer::from(ca.der.clone())).unwrap();
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = self
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.der.clone()))
            .collect();
        let key = PrivateKeyDer::Pkcs8(self.key.key.serialize_der().into());
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let config = Arc::new(config);
        let sni_only = self.sni_only.map(str::to_owned);
        spawn_listener(move |sock| serve_tls(sock, config.clone(), sni_only.as_deref()))
    }
}

fn serve_tls(mut sock: TcpStream, config: Arc<rustls::ServerConfig>, sni_only: Option<&str>) {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut acceptor = rustls::server::Acceptor::default();
    let accepted = loop {
        if acceptor.read_tls(&mut sock).unwrap_or(0) == 0 {
            return;
        }
        match acceptor.accept() {
            Ok(Some(a)) => break a,
            Ok(None) => continue,
            Err((_, mut alert)) => {
                let _ = alert.write_all(&mut sock);
                return;
            }
        }
    };
    if let Some(name) = sni_only
        && accepted.client_hello().server_name() != Some(name)
    {
        return; // dropped: FIN, no alert, like many SNI-routing servers
    }
    let mut conn = match accepted.into_connection(config) {
        Ok(c) => c,
        Err((_, mut alert)) => {
            let _ = alert.write_all(&mut sock);
            return;
        }
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            let _ = conn.write_tls(&mut sock);
            return;
        }
    }
    // Keep the connection open until the client leaves. A client that sends a request
    // (curl, Python requests) gets a tiny HTTP answer; the doctor never sends one.
    let mut stream = rustls::StreamOwned::new(conn, sock);
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        if buf[..n].starts_with(b"GET ") {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
            );
            stream.conn.send_close_notify();
            let _ = stream.flush();
            break;
        }
    }
}

/// Accepts up to 64 connections, each handled on its own thread.
pub fn spawn_listener(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for sock in listener.incoming().take(64).flatten() {
            let h = handle.clone();
            std::thread::spawn(move || h(sock));
        }
    });
    port
}

// === raw TCP servers ===

/// Sends `banner` as soon as a client connects (SSH, SMTP), then reads and closes.
pub fn plaintext_server(banner: &'static [u8]) -> u16 {
    spawn_listener(move |mut s| {
        let _ = s.write_all(banner);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf);
    })
}

/// Accepts and never says anything.
pub fn silent_server() -> u16 {
    spawn_listener(|s| {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut s = s;
        let mut buf = [0u8; 2048];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    })
}

/// Reads the ClientHello, then answers with `reply` (empty: just closes).
pub fn hello_then(reply: &'static [u8]) -> u16 {
    spawn_listener(move |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(reply);
    })
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// === openssl s_server ===

/// `openssl s_server`, killed when dropped. Its stdin stays open: s_server closes the
/// connection when stdin ends.
pub struct OpenSsl {
    child: Child,
    pub port: u16,
}

impl Drop for OpenSsl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn openssl_server(dir: &Path, args: &[&str]) -> OpenSsl {
    let port = closed_port();
    let child = Command::new("openssl")
        .arg("s_server")
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "openssl s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    OpenSsl { child, port }
}

// === real servers: nginx, HAProxy, Caddy, Node ===

/// A real server program, run in the foreground with its config, logs and state in a
/// temp dir, listening on 127.0.0.1:`port`; killed when dropped.
pub struct Daemon {
    child: Child,
    pub port: u16,
    /// Where it writes: its stdout and stderr, and any log file of its own.
    logs: Vec<PathBuf>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// What the server logged (why it refused a client certificate), for failure messages.
    pub fn log(&self) -> String {
        self.logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Starts the server `command(port)` describes, on a free port: bind 127.0.0.1:0, read
/// the port, release it, start the server, and if another process took the port in
/// between (the server exits saying so), try again with another, a few times. Waits at
/// most 10 seconds for it to listen. Its stdout and stderr go to `dir/NAME.log`; `logs`
/// are log files of its own.
fn start_daemon(
    name: &str,
    dir: &Path,
    logs: &[PathBuf],
    mut command: impl FnMut(u16) -> Command,
) -> Daemon {
    let out = dir.join(format!("{name}.log"));
    let mut all_logs = vec![out.clone()];
    all_logs.extend_from_slice(logs);
    for attempt in 0..4 {
        let port = closed_port();
        let output = std::fs::File::create(&out).unwrap();
        let mut child = command(port)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name} ({e}): scripts/setup installs it"));
        let start = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Daemon {
                    child,
                    port,
                    logs: all_logs,
                };
            }
            let exited = child.try_wait().unwrap().is_some();
            if exited || start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                let log = all_logs
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n");
                let lower = log.to_lowercase();
                let port_taken =
                    lower.contains("address already in use") || lower.contains("eaddrinuse");
                assert!(
                    exited && port_taken && attempt < 3,
                    "{name} did not start on 127.0.0.1:{port}:\n{log}"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    unreachable!("the last attempt asserts")
}

/// A program from PATH, else from /usr/sbin (Debian puts nginx and haproxy there, and it
/// is not on every user's PATH).
fn program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new("/usr/sbin").join(name))
}

/// nginx requiring client certificates from `clients.pem` (with `server.crt`/`.key` from
/// [`mtls_files`]), as its documentation shows it (ngx_http_ssl_module,
/// `ssl_verify_client on`), answering with the client's DN.
pub fn nginx_verifying_clients(dir: &Path) -> Daemon {
    nginx_server(
        dir,
        "    server_name localhost;\n\
         \x20   ssl_certificate server.crt;\n\
         \x20   ssl_certificate_key server.key;\n\
         \x20   ssl_client_certificate clients.pem;\n\
         \x20   ssl_verify_client on;\n\
         \x20   location / { return 200 \"hello $ssl_client_s_dn\\n\"; }",
    )
}

/// A real nginx (one process: `master_process off`), its prefix, config, logs and temp
/// paths in `dir`, with `server` (the directives of one `server {}` block, without
/// `listen`, which this adds). Files the block names are relative to `dir`.
pub fn nginx_server(dir: &Path, server: &str) -> Daemon {
    let d = dir.display();
    let error_log = dir.join("error.log");
    start_daemon("nginx", dir, std::slice::from_ref(&error_log), |port| {
        let conf = [
            "daemon off;".to_owned(),
            "master_process off;".to_owned(),
            format!("pid {d}/nginx.pid;"),
            format!("error_log {d}/error.log info;"),
            "events { worker_connections 64; }".to_owned(),
            "http {".to_owned(),
            format!("  access_log {d}/access.log;"),
            format!("  client_body_temp_path {d}/client_body;"),
            format!("  proxy_temp_path {d}/proxy;"),
            format!("  fastcgi_temp_path {d}/fastcgi;"),
            format!("  uwsgi_temp_path {d}/uwsgi;"),
            format!("  scgi_temp_path {d}/scgi;"),
            "  server {".to_owned(),
            format!("    listen 127.0.0.1:{port} ssl;"),
            server.to_owned(),
            "  }".to_owned(),
            "}".to_owned(),
        ]
        .join("\n");
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut cmd = Command::new(program("nginx"));
        cmd.arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(&error_log);
        cmd
    })
}

/// A real HAProxy in the foreground (`haproxy -f CFG -db`), one HTTP frontend bound to
/// 127.0.0.1 with `bind_options` (`ssl crt … ca-file … verify required`) and the lines of
/// `frontend` (no backend: `http-request return`). Files are relative to `dir`.
pub fn haproxy_server(dir: &Path, bind_options: &str, frontend: &str) -> Daemon {
    let d = dir.display();
    start_daemon("haproxy", dir, &[], |port| {
        let cfg = format!(
            "global\n\
             \x20   log stderr format raw local0 info\n\
             \x20   pidfile {d}/haproxy.pid\n\
             \x20   ca-base {d}\n\
             \x20   crt-base {d}\n\
             defaults\n\
             \x20   mode http\n\
             \x20   log global\n\
             \x20   option httplog\n\
             \x20   timeout connect 5s\n\
             \x20   timeout client 10s\n\
             \x20   timeout server 10s\n\
             frontend doctor\n\
             \x20   bind 127.0.0.1:{port} {bind_options}\n\
             {frontend}\n"
        );
        std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
        let mut cmd = Command::new(program("haproxy"));
        cmd.arg("-f").arg(dir.join("haproxy.cfg")).arg("-db");
        cmd
    })
}

/// A real Caddy (`caddy run --config Caddyfile --adapter caddyfile`): admin endpoint off,
/// no automatic HTTPS (no ACME, no redirect listener on :80), storage and the autosaved
/// config kept in `dir` (HOME and XDG dirs point there; Debian's Caddy 2.6 has no
/// `persist_config off`), one site `https://localhost:PORT` bound to
/// 127.0.0.1 with the directives in `site`. Files are relative to `dir`.
pub fn caddy_server(dir: &Path, site: &str) -> Daemon {
    let d = dir.display();
    start_daemon("caddy", dir, &[], |port| {
        let caddyfile = format!(
            "{{\n\
             \tadmin off\n\
             \tauto_https off\n\
             \tstorage file_system {{\n\
             \t\troot {d}/caddy-storage\n\
             \t}}\n\
             }}\n\
             https://localhost:{port} {{\n\
             \tbind 127.0.0.1\n\
             {site}\n\
             }}\n"
        );
        std::fs::write(dir.join("Caddyfile"), caddyfile).unwrap();
        let mut cmd = Command::new(program("caddy"));
        cmd.args(["run", "--config", "Caddyfile", "--adapter", "caddyfile"])
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("caddy-config"))
            .env("XDG_DATA_HOME", dir.join("caddy-data"));
        cmd
    })
}

/// A Node.js server: `script` (CommonJS) in `dir/server.cjs`, run as
/// `node server.cjs PORT`; it must listen on 127.0.0.1:`Number(process.argv[2])`.
pub fn node_server(dir: &Path, script: &str) -> Daemon {
    std::fs::write(dir.join("server.cjs"), script).unwrap();
    start_daemon("node", dir, &[], |port| {
        let mut cmd = Command::new("node");
        cmd.arg("server.cjs").arg(port.to_string());
        cmd
    })
}

// === running the doctor ===

/// Advice that disables verification, in the spellings people copy from the internet.
pub const INSECURE: &[&str] = &[
    "rejectunauthorized: false",
    "rejectunauthorized:false",
    "node_tls_reject_unauthorized",
    "curl -k",
    " -k ",
    "--insecure",
    "verify=false",
    "danger_accept_invalid",
    "cert_none",
    "check_hostname = false",
    "insecureskipverify",
    "trustall",
];

/// Asserts that `text` (a report, a doc) never suggests turning verification off.
pub fn assert_secure(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for bad in INSECURE {
        assert!(!lower.contains(bad), "{what} suggests {bad:?}:\n{text}");
    }
}

/// The doctor's exit code and JSON report.
pub struct Run {
    pub code: i32,
    pub json: serde_json::Value,
}

impl Run {
    pub fn cause(&self) -> &str {
        self.json["cause"].as_str().unwrap_or("")
    }

    pub fn finding(&self, cause: &str) -> &serde_json::Value {
        self.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["cause"] == cause)
            .unwrap_or_else(|| panic!("no finding {cause} in {:#}", self.json))
    }

    pub fn finding_opt(&self, cause: &str) -> Option<&serde_json::Value> {
        self.json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["cause"] == cause)
    }

    /// The Node.js snippet of a finding's fixes.
    pub fn node_fix(&self, cause: &str) -> String {
        self.finding(cause)["fixes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["ecosystem"] == "node")
            .unwrap_or_else(|| panic!("no Node fix for {cause}"))["snippet"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Runs `portcullis doctor ARGS --json`; records how long the diagnosis took.
pub fn doctor(sb: &Sandbox, args: &[&str]) -> Run {
    doctor_json(sb, &["doctor"], args)
}

/// Runs `portcullis doctor audit ARGS --json`; records how long the audit took.
pub fn audit(sb: &Sandbox, args: &[&str]) -> Run {
    doctor_json(sb, &["doctor", "audit"], args)
}

/// The environment variables that decide which CAs a client trusts. The machine running
/// the tests may set any of them; `--as` tests start the doctor (and the real clients)
/// without them and set only what the test is about.
pub const CLIENT_TRUST_VARS: &[&str] = &[
    "NODE_EXTRA_CA_CERTS",
    "NODE_OPTIONS",
    "NODE_USE_SYSTEM_CA",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
];

/// `program args` in the sandbox with the client trust variables removed and `env` set,
/// for the child only.
pub fn client_command(sb: &Sandbox, program: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(sb.dir.path())
        .stdin(Stdio::null());
    for k in CLIENT_TRUST_VARS {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `portcullis doctor ARGS --json` with only `env` of the client trust variables.
pub fn doctor_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = client_command(sb, env!("CARGO_BIN_EXE_portcullis"), &all, env)
        .env_remove("PORTCULLIS_CA_PASSPHRASE")
        .env_remove("PORTCULLIS_KEY_PASSPHRASE")
        .env_remove("PORTCULLIS_P12_PASSWORD")
        .output()
        .expect("run portcullis");
    json_run(&["doctor"], args, out)
}

fn doctor_json(sb: &Sandbox, command: &[&str], args: &[&str]) -> Run {
    let mut all = command.to_vec();
    all.extend_from_slice(args);
    all.push("--json");
    let out = sb.run(&all);
    json_run(command, args, out)
}

fn json_run(command: &[&str], args: &[&str], out: std::process::Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{command:?} {args:?} printed no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        json,
    };
    // An audit's line says so: `audit:CAUSE MS`.
    let label = match command {
        [_, sub] => format!("{sub}:{}", run.cause()),
        _ => run.cause().to_owned(),
    };
    record_timing(&label, &run);
    run
}

/// Appends `cause elapsed_ms` to target/tmp/doctor-timings.txt, for the median figures in
/// the docs (timings are recorded, never asserted).
fn record_timing(label: &str, run: &Run) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("doctor-timings.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{label} {}", run.json["elapsed_ms"]);
    }
}

/// Asserts the exit code and cause, with the whole report on failure.
pub fn expect(run: &Run, code: i32, cause: &str) {
    assert!(
        run.code == code && run.cause() == cause,
        "expected exit {code} and cause {cause}, got exit {} and cause {}:\n{:#}",
        run.code,
        run.cause(),
        run.json
    );
}

/// The snippet of a finding's fix for one ecosystem.
pub fn fix_for(run: &Run, cause: &str, ecosystem: &str) -> String {
    run.finding(cause)["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ecosystem"] == ecosystem)
        .unwrap_or_else(|| panic!("no {ecosystem} fix for {cause}"))["snippet"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs a shell command line from a fix (curl, openssl) in the sandbox, bounded in time.
pub fn shell_fix(sb: &Sandbox, line: &str) -> std::process::Output {
    sb.tool(
        "timeout",
        &["10", "sh", "-c", &format!("{line} </dev/null")],
    )
}

/// Runs the Node.js fix the doctor printed, in the sandbox, and asserts it connects with
/// verification on.
pub fn node_connects(sb: &Sandbox, snippet: &str) {
    // Bounded: a fix that hangs fails the test instead of stalling it.
    let script = format!(
        "setTimeout(() => {{ console.error('timed out'); process.exit(2); }}, 10000).unref();\n{snippet}"
    );
    let out = sb.node(&script, &[]);
    let text = crate::common::text(&out);
    assert!(
        out.status.success() && text.contains("connected, verified: true"),
        "the Node.js fix did not connect:\n--- snippet\n{snippet}\n--- output\n{text}"
    );
}

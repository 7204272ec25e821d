//! Fixtures for the gate's end-to-end tests: a PKI with good and bad client
//! certificates, the real `portcullis serve` as a child process on an ephemeral loopback
//! port, a Node.js upstream that echoes what it receives, and curl.

// Helpers: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::{
    KeyType, Kind, LeafRequest, P12Format, Passphrase, San, SaveOptions, Subject,
};
use time::OffsetDateTime;

pub mod raw;

pub const P12_PASS: &str = "p12 password";
pub const KEY_PASS: &str = "carol key passphrase";

/// A CA with: server `localhost`; clients alice (OU Admins), bob (OU Users), carol
/// (encrypted key), dave (revoked), eve (expired), mallory (NUL in CN, signed by the CA);
/// and zed from a different CA.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pki");
        ca::init(
            &root,
            &InitOptions {
                intermediate: true,
                ..Default::default()
            },
        )
        .unwrap();
        let ca = Ca::open(&root, None).unwrap();
        let mut writer = ca.writer().unwrap();
        let issued = ca.layout().issued();
        let p12 = Passphrase::new(P12_PASS.into(), "test").unwrap();
        let mut issue =
            |name: &str, kind: Kind, ou: Option<&str>, sans: Vec<San>, key_pass: Option<&str>| {
                let req = LeafRequest {
                    kind,
                    subject: Subject {
                        common_name: name.into(),
                        organizational_units: ou.map(|o| vec![o.to_owned()]).unwrap_or_default(),
                        email: (kind == Kind::Client).then(|| format!("{name}@example.com")),
                        ..Default::default()
                    },
                    sans,
                    days: 30,
                    key_type: KeyType::P256,
                };
                let cert = ca.issue(&req, writer.index()).unwrap();
                let opts = SaveOptions {
                    out_dir: issued.clone(),
                    stem: name.into(),
                    key_passphrase: key_pass.map(|k| Passphrase::new(k.into(), "test").unwrap()),
                    p12: (kind == Kind::Client).then(|| (p12.clone(), P12Format::Modern)),
                    force: false,
                };
                writer.save(cert, &opts).unwrap();
            };
        issue(
            "localhost",
            Kind::Server,
            None,
            vec![San::Dns("localhost".into()), San::Ip([127, 0, 0, 1].into())],
            None,
        );
        issue(
            "alice",
            Kind::Client,
            Some("Admins"),
            vec![San::Email("alice@example.com".into())],
            None,
        );
        issue(
            "bob",
            Kind::Client,
            Some("Users"),
            vec![San::Email("bob@example.com".into())],
            None,
        );
        issue("carol", Kind::Client, Some("Users"), vec![], Some(KEY_PASS));
        issue("dave", Kind::Client, Some("Admins"), vec![], None);
        let dave = writer.index().records.last().unwrap().serial.clone();
        writer
            .revoke(&dave, portcullis_pki::Reason::KeyCompromise, 30)
            .unwrap();

        // Certificates the CA would never issue, signed by it all the same.
        let now = OffsetDateTime::now_utc();
        let raw = |name: &str, subject: Subject, start: OffsetDateTime, end: OffsetDateTime| {
            let key = KeyType::P256.generate().unwrap();
            let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
            let der = ca
                .sign_raw(Kind::Client, &subject, &[], &spki, start, end)
                .unwrap();
            let chain: String = ca
                .chain_for(&der)
                .iter()
                .map(|c| ca::pem("CERTIFICATE", c))
                .collect();
            std::fs::write(issued.join(format!("{name}.crt")), chain).unwrap();
            std::fs::write(
                issued.join(format!("{name}.key")),
                portcullis_pki::keys::to_pem(&key, None).unwrap().as_bytes(),
            )
            .unwrap();
        };
        let subject = |cn: &str, ous: &[&str]| Subject {
            common_name: cn.into(),
            organizational_units: ous.iter().map(|o| (*o).to_owned()).collect(),
            ..Default::default()
        };
        let (hour_ago, tomorrow) = (
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        );
        raw(
            "eve",
            subject("eve", &["Admins"]),
            now - time::Duration::days(60),
            now - time::Duration::days(1),
        );
        raw(
            "mallory",
            subject("admin\0.attacker", &["Admins"]),
            hour_ago,
            tomorrow,
        );
        // Values that read as more than they are if the gate joins or prints them naively.
        raw(
            "trudy",
            subject("mallory, OU=Admins", &["Users,Admins"]),
            hour_ago,
            tomorrow,
        );
        raw(
            "rtl",
            subject("bob\u{202e} nimda", &["Users"]),
            hour_ago,
            tomorrow,
        );

        let other = dir.path().join("other");
        ca::init(
            &other,
            &InitOptions {
                name: "Foreign".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let foreign = Ca::open(&other, None).unwrap();
        let mut fwriter = foreign.writer().unwrap();
        let req = LeafRequest {
            kind: Kind::Client,
            subject: Subject {
                common_name: "zed".into(),
                organizational_units: vec!["Admins".into()],
                ..Default::default()
            },
            sans: vec![],
            days: 30,
            key_type: KeyType::P256,
        };
        let cert = foreign.issue(&req, fwriter.index()).unwrap();
        fwriter
            .save(
                cert,
                &SaveOptions {
                    out_dir: issued.clone(),
                    stem: "zed".into(),
                    key_passphrase: None,
                    p12: None,
                    force: false,
                },
            )
            .unwrap();
        let pki = Pki { dir };
        pki.two_cns();
        pki
    }

    /// `twocn`: a client certificate with two CNs (`CN=alice` first, then `CN=mallory`) and
    /// OU Users, signed by the intermediate with openssl (the CA issues one CN only).
    fn two_cns(&self) {
        let ext = self.path("twocn.ext");
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        let issued = self.path("pki/issued");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let key = issued.join("twocn.key");
        let csr = self.path("twocn.csr");
        let crt = self.path("twocn.leaf.pem");
        run(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
            "-subj",
            "/CN=alice/CN=mallory/OU=Users",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-days",
            "1",
            "-CA",
            "pki/intermediate.crt",
            "-CAkey",
            "pki/intermediate.key",
            "-CAcreateserial",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ]);
        // Leaf then intermediate, like the chain files the CA writes.
        let chain = std::fs::read_to_string(&crt).unwrap()
            + &std::fs::read_to_string(self.path("pki/intermediate.crt")).unwrap();
        std::fs::write(issued.join("twocn.crt"), chain).unwrap();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Revokes the certificate with this CN (key compromise) and publishes a new CRL.
    pub fn revoke(&self, cn: &str) {
        let ca = Ca::open(&self.path("pki"), None).unwrap();
        let mut writer = ca.writer().unwrap();
        let who = format!("CN={cn}");
        let serial = writer
            .index()
            .records
            .iter()
            .find(|r| r.subject.contains(&who))
            .unwrap()
            .serial
            .clone();
        writer
            .revoke(&serial, portcullis_pki::Reason::KeyCompromise, 30)
            .unwrap();
    }

    /// `--cert` (chain) and `--key` paths of a client.
    pub fn client(&self, name: &str) -> (String, String) {
        let chain = if ["eve", "mallory", "trudy", "rtl", "twocn"].contains(&name) {
            self.path(&format!("pki/issued/{name}.crt"))
        } else {
            self.path(&format!("pki/issued/{name}.chain.pem"))
        };
        (
            chain.display().to_string(),
            self.path(&format!("pki/issued/{name}.key"))
                .display()
                .to_string(),
        )
    }

    pub fn root(&self) -> String {
        self.path("pki/root.crt").display().to_string()
    }

    /// Writes a gate config in the PKI's directory and returns its path.
    pub fn config(&self, client_auth: &str, upstream: &str, extra: &str) -> PathBuf {
        let text = format!(
            r#"
listen = "127.0.0.1:0"
cert = "pki/issued/localhost.chain.pem"
key = "pki/issued/localhost.key"
client_auth = "{client_auth}"
client_ca = ["pki/root.crt"]
crl = ["pki/crl.pem"]
upstream = "{upstream}"
{extra}

[[roles]]
role = "admin"
ou = "Admins"

[[roles]]
role = "user"
ou = "Users"

[[rules]]
path = "/"
require = "anonymous"

[[rules]]
path = "/public/**"
require = "anonymous"

[[rules]]
path = "/me"
require = "authenticated"

[[rules]]
path = "/admin/**"
require = "role:admin"
"#
        );
        let p = self.path(&format!("gate-{client_auth}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A running `portcullis serve`, killed on drop.
pub struct Gate {
    child: Child,
    pub port: u16,
    /// Standard output up to the "listening on" line.
    pub stdout: String,
    /// Everything printed so far, kept up to date by the reader thread.
    all: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Gate {
    pub fn start(config: &Path) -> Gate {
        Gate::start_in(
            config.parent().unwrap(),
            &["serve", "-c", config.to_str().unwrap()],
            &[],
        )
    }

    /// Starts `portcullis ARGS` in `dir` and waits for its "listening on" line.
    pub fn start_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Gate {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("PORTCULLIS_KEY_PASSPHRASE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let all = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let all_w = all.clone();
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                seen.push_str(&line);
                seen.push('\n');
                all_w.lock().unwrap().push_str(&format!("{line}\n"));
                // A log line, text or JSON: "… listening on https://127.0.0.1:PORT …".
                if let Some(rest) = line.split("listening on https://").nth(1) {
                    let port = rest
                        .split([' ', '"'])
                        .next()
                        .unwrap()
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .parse::<u16>()
                        .unwrap();
                    let _ = tx.send((port, seen.clone()));
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok((port, stdout)) => Gate {
                child,
                port,
                stdout,
                all,
            },
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("gate did not start: {err}");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// Everything the gate printed to standard output so far.
    pub fn output(&self) -> String {
        self.all.lock().unwrap().clone()
    }

    /// How many lines of the output so far contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> usize {
        self.output()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits (up to 5 s) until more than `seen` lines contain every one of `needles`.
    pub fn logged_more(&self, needles: &[&str], seen: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.lines_with(needles) > seen {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Runs `attempt` and asserts the gate logged a failed handshake with `reason` for it:
    /// the refusal is the one the test means, not some other failure. Text or JSON log.
    pub fn refuses_handshake(&self, reason: &str, attempt: impl FnOnce()) {
        let text = format!("reason={reason}");
        let json = format!("\"reason\":\"{reason}\"");
        let count = || {
            self.output()
                .lines()
                .filter(|l| {
                    l.contains("handshake failed") && (l.contains(&text) || l.contains(&json))
                })
                .count()
        };
        let seen = count();
        attempt();
        let deadline = Instant::now() + Duration::from_secs(5);
        while count() <= seen {
            assert!(
                Instant::now() < deadline,
                "no handshake failure with reason {reason}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The admin listener's address, as the gate printed it (`admin = "127.0.0.1:0"`).
    pub fn admin_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.output();
            if let Some(rest) = out.split("admin on http://").nth(1) {
                return rest.split([' ', '"']).next().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "no admin address printed: {out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (with kill(1): the crate forbids unsafe code, so no libc call).
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGHUP: reload the configuration.
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, which: &str) {
        let ok = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What curl saw: the HTTP status ("000" when there was no HTTP response) and the body.
#[derive(Debug)]
pub struct Curl {
    pub status: String,
    pub body: String,
    pub stderr: String,
}

/// `portcullis ARGS` run in `dir` (at most 60 s, no stdin, no enrolment token from the
/// environment), as an operator would type it.
pub fn portcullis_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(dir)
        .env_remove("PORTCULLIS_ENROLL_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// curl with `--cacert root`, the given extra args and URL; never follows redirects.
pub fn curl(pki: &Pki, args: &[&str], url: &str) -> Curl {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--path-as-is",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(pki.root())
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Curl {
        status: status.trim().to_owned(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// curl as a client with a certificate.
pub fn curl_as(pki: &Pki, who: &str, extra: &[&str], url: &str) -> Curl {
    let (cert, key) = pki.client(who);
    let mut args = vec!["--cert", cert.as_str(), "--key", key.as_str()];
    args.extend_from_slice(extra);
    curl(pki, &args, url)
}

/// A Node.js HTTP server on 127.0.0.1 that answers every request with a JSON echo of
/// its method, URL and headers.
pub struct Upstream {
    child: Child,
    pub port: u16,
}

impl Upstream {
    /// The JSON echo server.
    pub fn start() -> Upstream {
        Upstream::node(
            r#"http.createServer((req, res) => {
                res.setHeader('content-type', 'application/json');
                res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
            })"#,
        )
    }

    /// A Node.js server made by the `server` expression (with `http` and `http2` in
    /// scope), listening on an ephemeral loopback port, exiting by itself after 2 minutes.
    pub fn node(server: &str) -> Upstream {
        let script = format!(
            "const http = require('http'), http2 = require('http2'); const s = {server};
             s.listen(0, '127.0.0.1', () => console.log('port ' + s.address().port));
             setTimeout(() => process.exit(0), 120000).unref();"
        );
        let mut child = Command::new("node")
            .args(["-e", &script])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("port ").unwrap().parse().unwrap();
        Upstream { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes over TLS with `openssl s_client` (SNI localhost, server certificate
/// verified); what the server answered comes first in the result.
pub fn s_client(pki: &Pki, port: u16, who: Option<&str>, request: &str) -> String {
    s_client_exchange(
        pki,
        port,
        "localhost",
        who,
        &["-quiet", "-verify_return_error"],
        request,
    )
}

/// One connection with `openssl s_client -ign_eof` (it keeps reading after the request is
/// sent, so TLS 1.3 alerts and the whole response are seen): SNI `servername`, an optional
/// client certificate, extra arguments (e.g. `-sess_in FILE`), one request. Returns
/// everything s_client printed.
pub fn s_client_exchange(
    pki: &Pki,
    port: u16,
    servername: &str,
    who: Option<&str>,
    extra: &[&str],
    request: &str,
) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-ign_eof",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-servername",
        servername,
        "-CAfile",
    ])
    .arg(pki.root())
    .args(extra);
    let creds;
    if let Some(w) = who {
        creds = pki.client(w);
        cmd.args(["-cert", &creds.0, "-cert_chain", &creds.0, "-key", &creds.1]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of one series (`name` or `name{labels}`, as the admin listener at `admin`
/// writes it) in the gate's metrics.
pub fn metric(admin: &str, series: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{admin}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

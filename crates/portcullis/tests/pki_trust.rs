//! `portcullis pki trust install|uninstall`, judged by the programs that read the stores:
//! a headless Chromium reading an NSS database, a Java HTTPS client reading a keystore,
//! and `update-ca-certificates` + OpenSSL in a scratch system root. Every store is a
//! temporary one; the machine's own stores are never touched.
//!
//! Needs certutil (libnss3-tools), chromium, a JDK and update-ca-certificates:
//! `scripts/setup` installs them. A missing tool fails the test; nothing is skipped.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::browser::Browser;
use common::{Sandbox, bounded, text};

/// What the test server's page says; a browser showing it loaded the page.
const MARKER: &str = "portcullis-trust-marker";

/// A CA (encrypted key) and a server certificate for localhost and 127.0.0.1.
fn sandbox_with_server_cert() -> Sandbox {
    let sb = Sandbox::new();
    sb.init_ca(false);
    sb.ok(&[
        "pki",
        "issue",
        "server",
        "localhost",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    sb
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// === a local HTTPS server (Node.js) ===

/// Node's https server on 127.0.0.1 with an OS-assigned port, serving the CA-issued
/// certificate; killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(sb: &Sandbox) -> Server {
        let script = sb.path("server.cjs");
        std::fs::write(
            &script,
            format!(
                r#"const https = require('https'), fs = require('fs');
const [key, cert] = process.argv.slice(2);
const s = https.createServer({{ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }}, (req, res) => {{
  res.writeHead(200, {{ 'content-type': 'text/html' }});
  res.end('<html><body><h1>{MARKER}</h1></body></html>');
}});
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
"#
            ),
        )
        .unwrap();
        let mut child = Command::new("node")
            .arg(&script)
            .arg(sb.path("pki/issued/localhost.key"))
            .arg(sb.path("pki/issued/localhost.chain.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20));
        let port = line
            .ok()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the node https server did not print its port within 20 s")
            });
        Server { child, port }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === NSS and Chromium ===

/// `chromium --dump-dom URL` in a fresh profile; returns (DOM, stderr).
fn chromium_dom(browser: &Browser, url: &str, run: &str) -> (String, String) {
    let visit = browser.visit(url, run, false);
    (visit.dom, visit.stderr)
}

fn nickname_line<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    list.lines().find(|l| l.starts_with(name))
}

#[test]
fn nss_install_makes_chromium_trust_the_ca_and_uninstall_undoes_it() {
    let sb = sandbox_with_server_cert();
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db();
    let server = Server::start(&sb);

    // Control: the same page, the same browser, the CA not yet trusted.
    let (dom, err) = chromium_dom(&browser, &server.url(), "before");
    assert!(
        !dom.contains(MARKER),
        "loaded without trusting the CA:\n{dom}"
    );
    assert!(err.contains("ERR_CERT_AUTHORITY_INVALID"), "{err}");

    let out = sb.ok(&[
        "pki",
        "trust",
        "install",
        "--store",
        "nss",
        "--nss-db",
        s(db),
    ]);
    assert!(
        out.contains("added Portcullis Root CA to NSS database"),
        "{out}"
    );
    let list = browser.list();
    let line = nickname_line(&list, "Portcullis Root CA ").expect("root listed");
    assert!(
        line.trim_end().ends_with("C,,"),
        "trusted for TLS servers: {line}"
    );

    let (dom, err) = chromium_dom(&browser, &server.url(), "after");
    assert!(dom.contains(MARKER), "page not loaded:\n{dom}\n{err}");

    let out = sb.ok(&["pki", "trust", "uninstall", "--nss-db", s(db)]);
    assert!(
        out.contains("removed Portcullis Root CA from NSS database"),
        "{out}"
    );
    assert!(nickname_line(&browser.list(), "Portcullis Root CA").is_none());
    let (dom, err) = chromium_dom(&browser, &server.url(), "removed");
    assert!(
        !dom.contains(MARKER),
        "still trusted after uninstall:\n{dom}"
    );
    assert!(err.contains("ERR_CERT_AUTHORITY_INVALID"), "{err}");
}

#[test]
fn nss_uninstall_removes_only_this_ca_not_another_with_the_same_name() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    sb.ok(&["pki", "--dir", "other", "init", "--no-passphrase"]);
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db();
    sb.ok(&["pki", "trust", "install", "--nss-db", s(db)]);
    sb.ok(&[
        "pki",
        "--dir",
        "other",
        "trust",
        "install",
        "--nss-db",
        s(db),
    ]);
    let both = browser.list();
    assert_eq!(both.matches("Portcullis Root CA ").count(), 2, "{both}");

    sb.ok(&[
        "pki",
        "--dir",
        "other",
        "trust",
        "uninstall",
        "--nss-db",
        s(db),
    ]);
    let left = browser.list();
    assert_eq!(left.matches("Portcullis Root CA ").count(), 1, "{left}");
    // The one left is ours: installing again has nothing to do.
    let again = sb.ok(&["pki", "trust", "install", "--nss-db", s(db)]);
    assert!(again.contains("already trusted"), "{again}");
}

// === Java ===

/// The JDK's own cacerts, found the way Java itself reports its home.
fn jdk_cacerts(sb: &Sandbox) -> PathBuf {
    let out = sb.tool("java", &["-XshowSettings:properties", "-version"]);
    let all = text(&out);
    let home = all
        .lines()
        .find_map(|l| l.trim().strip_prefix("java.home = "))
        .unwrap_or_else(|| panic!("no java.home in:\n{all}"));
    PathBuf::from(home).join("lib/security/cacerts")
}

const CLIENT: &str = r#"import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

public class Client {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        HttpRequest req = HttpRequest.newBuilder(URI.create(args[0])).timeout(Duration.ofSeconds(20)).build();
        try {
            HttpResponse<String> res = client.send(req, HttpResponse.BodyHandlers.ofString());
            System.out.println("status " + res.statusCode() + " " + res.body());
        } catch (javax.net.ssl.SSLHandshakeException e) {
            System.out.println("handshake failed: " + e.getMessage());
            System.exit(1);
        }
    }
}
"#;

/// `java Client.java URL` with the keystore as its trust store; returns (success, stdout).
fn java_client(sb: &Sandbox, keystore: &Path, url: &str, run: &str) -> (bool, String) {
    let src = sb.path("Client.java");
    std::fs::write(&src, CLIENT).unwrap();
    let mut cmd = Command::new("java");
    cmd.arg(format!("-Djavax.net.ssl.trustStore={}", s(keystore)))
        .arg("-Djavax.net.ssl.trustStorePassword=changeit")
        .arg(&src)
        .arg(url)
        .env_remove("JAVA_TOOL_OPTIONS")
        .current_dir(sb.dir.path());
    let (ok, out, err) = bounded(
        cmd,
        Duration::from_secs(120),
        &sb.path(&format!("logs-{run}")),
    );
    (ok, format!("{out}{err}"))
}

fn keytool_list(sb: &Sandbox, keystore: &Path, pass: &str) -> String {
    text(&sb.tool(
        "keytool",
        &["-list", "-keystore", s(keystore), "-storepass", pass],
    ))
}

#[test]
fn java_install_makes_a_java_client_trust_the_ca_and_uninstall_undoes_it() {
    let sb = sandbox_with_server_cert();
    let keystore = sb.path("cacerts");
    std::fs::copy(jdk_cacerts(&sb), &keystore).unwrap();
    std::fs::set_permissions(&keystore, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(&sb);

    let (ok, out) = java_client(&sb, &keystore, &server.url(), "before");
    assert!(!ok, "connected without trusting the CA: {out}");
    assert!(out.contains("PKIX path building failed"), "{out}");

    let printed = sb.ok(&[
        "pki",
        "trust",
        "install",
        "--store",
        "java",
        "--java-keystore",
        s(&keystore),
    ]);
    assert!(
        printed.contains("added Portcullis Root CA to Java keystore"),
        "{printed}"
    );
    let list = keytool_list(&sb, &keystore, "changeit");
    assert!(list.contains("portcullis-root-ca-"), "{list}");

    let (ok, out) = java_client(&sb, &keystore, &server.url(), "after");
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("status 200 <html><body><h1>{MARKER}")),
        "{out}"
    );

    sb.ok(&["pki", "trust", "uninstall", "--java-keystore", s(&keystore)]);
    let list = keytool_list(&sb, &keystore, "changeit");
    assert!(!list.contains("portcullis-root-ca-"), "{list}");
    let (ok, out) = java_client(&sb, &keystore, &server.url(), "removed");
    assert!(!ok && out.contains("PKIX path building failed"), "{out}");
}

/// The keystore password reaches keytool through its environment; argv (readable by
/// anyone in `ps`) never holds it. A wrapper `keytool` records its arguments.
#[test]
fn java_store_password_never_appears_in_argv_or_output() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let real = String::from_utf8(sb.tool("sh", &["-c", "command -v keytool"]).stdout).unwrap();
    let bin = sb.path("jdk/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = sb.path("keytool.argv");
    let wrapper = bin.join("keytool");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            s(&log),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    const PASS: &str = "not-changeit-7731";
    std::fs::write(sb.path("store.pass"), format!("{PASS}\n")).unwrap();

    // A new keystore, created with the given password.
    let keystore = sb.path("new.p12");
    let args = [
        "pki",
        "trust",
        "install",
        "--java-keystore",
        s(&keystore),
        "--java-storepass-file",
        "store.pass",
    ];
    let out = sb.run_env(&args, &[("JAVA_HOME", s(&sb.path("jdk")))]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(PASS));
    let list = keytool_list(&sb, &keystore, PASS);
    assert!(list.contains("portcullis-root-ca-"), "{list}");

    let argv = std::fs::read_to_string(&log).unwrap();
    assert!(argv.contains("-storepass:env"), "{argv}");
    assert!(!argv.contains(PASS), "password in argv: {argv}");

    // The wrong password: an error that says where the password came from, not what it is.
    std::fs::write(sb.path("wrong.pass"), "wrong-password-99\n").unwrap();
    let args = [
        "pki",
        "trust",
        "uninstall",
        "--java-keystore",
        s(&keystore),
        "--java-storepass-file",
        "wrong.pass",
    ];
    let err = sb.fails(&args);
    assert!(err.contains("password was incorrect"), "{err}");
    assert!(err.contains("--java-storepass-file wrong.pass"), "{err}");
    assert!(
        !err.contains("wrong-password-99") && !err.contains(PASS),
        "{err}"
    );
}

// === system store (scratch root) ===

/// A scratch Debian-style root: etc/ssl/certs, one "distribution" CA listed in
/// etc/ca-certificates.conf.
fn scratch_root(sb: &Sandbox) -> PathBuf {
    let root = sb.path("root");
    std::fs::create_dir_all(root.join("etc/ssl/certs")).unwrap();
    let dist = root.join("usr/share/ca-certificates/distro");
    std::fs::create_dir_all(&dist).unwrap();
    let out = sb.tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            s(&sb.path("distro.key")),
            "-out",
            s(&dist.join("Distro_Root.crt")),
            "-subj",
            "/CN=Distro Root",
            "-days",
            "30",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(
        root.join("etc/ca-certificates.conf"),
        "distro/Distro_Root.crt\n",
    )
    .unwrap();
    root
}

fn bundle_certs(root: &Path) -> usize {
    std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt"))
        .map(|b| b.matches("BEGIN CERTIFICATE").count())
        .unwrap_or(0)
}

#[test]
fn system_install_in_a_scratch_root_places_the_file_and_regenerates_the_bundle() {
    let sb = sandbox_with_server_cert();
    let root = scratch_root(&sb);
    let root_pem = std::fs::read_to_string(sb.path("pki/root.crt")).unwrap();

    let out = sb.ok(&[
        "pki", "trust", "install", "--store", "system", "--root", "root",
    ]);
    assert!(
        out.contains("added Portcullis Root CA to system store"),
        "{out}"
    );
    let local = root.join("usr/local/share/ca-certificates");
    let files: Vec<PathBuf> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let placed = &files[0];
    let name = placed.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("portcullis-root-ca-") && name.ends_with(".crt"),
        "{name}"
    );
    assert_eq!(std::fs::metadata(placed).unwrap().mode() & 0o777, 0o644);
    assert_eq!(
        std::fs::read_to_string(placed).unwrap().trim(),
        root_pem.trim()
    );

    // update-ca-certificates ran in the scratch root: the bundle has the distribution CA
    // and ours, there is a link to ours, and OpenSSL verifies our server with the bundle.
    let bundle = root.join("etc/ssl/certs/ca-certificates.crt");
    assert_eq!(bundle_certs(&root), 2);
    let link = root
        .join("etc/ssl/certs")
        .join(name.replace(".crt", ".pem"));
    assert_eq!(std::fs::read_link(&link).unwrap(), *placed);
    let out = sb.tool(
        "openssl",
        &["verify", "-CAfile", s(&bundle), "pki/issued/localhost.crt"],
    );
    assert!(out.status.success(), "{}", text(&out));
    // The machine's own store was not touched.
    assert!(
        !Path::new("/usr/local/share/ca-certificates")
            .join(&name)
            .exists()
    );

    let out = sb.ok(&[
        "pki",
        "trust",
        "uninstall",
        "--store",
        "system",
        "--root",
        "root",
    ]);
    assert!(
        out.contains("removed Portcullis Root CA from system store"),
        "{out}"
    );
    assert!(!placed.exists());
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link left behind"
    );
    assert_eq!(bundle_certs(&root), 1, "only the distribution CA is left");
    let out = sb.tool(
        "openssl",
        &["verify", "-CAfile", s(&bundle), "pki/issued/localhost.crt"],
    );
    assert!(!out.status.success(), "still verifies: {}", text(&out));
}

// === dry run, idempotence, errors ===

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db();
    let root = scratch_root(&sb);
    let keystore = sb.path("cacerts");
    std::fs::copy(jdk_cacerts(&sb), &keystore).unwrap();
    let before = std::fs::read(&keystore).unwrap();
    let all = [
        "--nss-db",
        s(db),
        "--java-keystore",
        s(&keystore),
        "--root",
        s(&root),
        "--dry-run",
    ];

    let mut args = vec!["pki", "trust", "install"];
    args.extend(all);
    let out = sb.ok(&args);
    for want in [
        "would add Portcullis Root CA to system store",
        "would add Portcullis Root CA to NSS database",
        "would add Portcullis Root CA to Java keystore",
        "then regenerate",
        "dry run: nothing was changed",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    assert!(nickname_line(&browser.list(), "Portcullis Root CA").is_none());
    assert_eq!(std::fs::read(&keystore).unwrap(), before);
    assert!(!root.join("usr/local/share/ca-certificates").exists());
    assert_eq!(bundle_certs(&root), 0);

    // After a real install, a dry-run uninstall plans removals, and still changes nothing.
    let real: Vec<&str> = args.iter().copied().filter(|a| *a != "--dry-run").collect();
    sb.ok(&real);
    let mut un = vec!["pki", "trust", "uninstall"];
    un.extend(all);
    let out = sb.ok(&un);
    assert_eq!(
        out.matches("would remove Portcullis Root CA").count(),
        3,
        "{out}"
    );
    assert!(nickname_line(&browser.list(), "Portcullis Root CA").is_some());
    assert_eq!(bundle_certs(&root), 2);
}

#[test]
fn install_twice_says_already_trusted_and_uninstall_twice_succeeds() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db();
    let root = scratch_root(&sb);
    let keystore = sb.path("cacerts");
    std::fs::copy(jdk_cacerts(&sb), &keystore).unwrap();
    let stores = [
        "--nss-db",
        s(db),
        "--java-keystore",
        s(&keystore),
        "--root",
        s(&root),
    ];
    let run = |verb: &str| {
        let mut args = vec!["pki", "trust", verb];
        args.extend(stores);
        sb.ok(&args)
    };

    let first = run("install");
    assert_eq!(first.matches("added ").count(), 3, "{first}");
    let java_after_first = std::fs::read(&keystore).unwrap();
    let second = run("install");
    assert_eq!(
        second
            .matches("already trusted: Portcullis Root CA")
            .count(),
        3,
        "{second}"
    );
    assert!(!second.contains("added "), "{second}");
    // --json: the same answer, one document.
    let mut args = vec!["pki", "--json", "trust", "install"];
    args.extend(stores);
    let doc: serde_json::Value = serde_json::from_str(&sb.ok(&args)).unwrap();
    let changes: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["already-trusted"; 3], "{doc:#}");
    assert_eq!(doc["command"], "trust-install");
    assert_eq!(
        doc["anchor"]["fingerprint_sha256"].as_str().unwrap().len(),
        64
    );
    let list = browser.list();
    assert_eq!(list.matches("Portcullis Root CA").count(), 1, "{list}");
    assert_eq!(std::fs::read(&keystore).unwrap(), java_after_first);
    assert_eq!(bundle_certs(&root), 2);

    let first = run("uninstall");
    assert_eq!(first.matches("removed ").count(), 3, "{first}");
    let second = run("uninstall");
    assert_eq!(
        second
            .matches("not there, nothing to remove: Portcullis Root CA")
            .count(),
        3,
        "{second}"
    );
}

#[test]
fn a_missing_tool_or_store_is_an_error_that_says_what_to_do() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db();

    // certutil not on PATH.
    let out = sb.run_env(
        &["pki", "trust", "install", "--nss-db", s(db)],
        &[("PATH", s(&sb.path("empty-path")))],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certutil is not installed"), "{err}");
    assert!(err.contains("apt-get install libnss3-tools"), "{err}");

    // A directory that is not an NSS database.
    let err = sb.fails(&["pki", "trust", "install", "--nss-db", "nowhere"]);
    assert!(err.contains("nowhere has no cert9.db"), "{err}");
    assert!(
        err.contains("certutil -N --empty-password -d sql:nowhere"),
        "{err}"
    );

    // A root that is not a Debian-style system.
    std::fs::create_dir_all(sb.path("bare")).unwrap();
    let err = sb.fails(&["pki", "trust", "install", "--root", "bare"]);
    assert!(err.contains("etc/ssl/certs does not exist"), "{err}");

    // No CA.
    let err = sb.fails(&[
        "pki",
        "--dir",
        "nope",
        "trust",
        "install",
        "--nss-db",
        s(db),
    ]);
    assert!(err.contains("portcullis pki init --dir nope"), "{err}");
}

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
    sb.openssl_self_signed(
        "distro.key",
        "root/usr/share/ca-certificates/distro/Distro_Root.crt",
        "/CN=Distro Root",
        &[],
    );
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

/// A CA (`pki init`) and one store of each kind to put its root in: an NSS database, a
/// copy of the JDK's cacerts, and a scratch system root.
struct AllStores {
    browser: Browser,
    keystore: PathBuf,
    root: PathBuf,
}

impl AllStores {
    fn new(sb: &Sandbox) -> AllStores {
        sb.ok(&["pki", "init", "--no-passphrase"]);
        let keystore = sb.path("cacerts");
        std::fs::copy(jdk_cacerts(sb), &keystore).unwrap();
        AllStores {
            browser: Browser::new(&sb.path("browser")),
            keystore,
            root: scratch_root(sb),
        }
    }

    /// The `pki trust` arguments naming all three.
    fn args(&self) -> [&str; 6] {
        [
            "--nss-db",
            s(self.browser.db()),
            "--java-keystore",
            s(&self.keystore),
            "--root",
            s(&self.root),
        ]
    }
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let sb = Sandbox::new();
    let stores = AllStores::new(&sb);
    let (browser, keystore, root) = (&stores.browser, &stores.keystore, &stores.root);
    let before = std::fs::read(keystore).unwrap();
    let mut all = stores.args().to_vec();
    all.push("--dry-run");

    let mut args = vec!["pki", "trust", "install"];
    args.extend(&all);
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
    assert_eq!(std::fs::read(keystore).unwrap(), before);
    assert!(!root.join("usr/local/share/ca-certificates").exists());
    assert_eq!(bundle_certs(root), 0);

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
    assert_eq!(bundle_certs(root), 2);
}

#[test]
fn install_twice_says_already_trusted_and_uninstall_twice_succeeds() {
    let sb = Sandbox::new();
    let all = AllStores::new(&sb);
    let (browser, keystore, root) = (&all.browser, &all.keystore, &all.root);
    let stores = all.args();
    let run = |verb: &str| {
        let mut args = vec!["pki", "trust", verb];
        args.extend(stores);
        sb.ok(&args)
    };

    let first = run("install");
    assert_eq!(first.matches("added ").count(), 3, "{first}");
    let java_after_first = std::fs::read(keystore).unwrap();
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
    assert_eq!(std::fs::read(keystore).unwrap(), java_after_first);
    assert_eq!(bundle_certs(root), 2);

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

// === regressions (attacker review) ===

/// The certificates in a PEM bundle, as DER, read with OpenSSL's parser via the library.
fn bundle_holds(root: &Path, cert: &Path) -> bool {
    let bundle =
        std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap_or_default();
    let pem = std::fs::read_to_string(cert).unwrap();
    let body = |s: &str| -> Vec<String> {
        s.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .filter_map(|b| b.split("-----END CERTIFICATE-----").next())
            .map(|b| b.split_whitespace().collect::<String>())
            .collect()
    };
    let ours = body(&pem).into_iter().next().unwrap();
    body(&bundle).contains(&ours)
}

/// A directory of executable scripts, put first on PATH by the tests that need one.
fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn real(sb: &Sandbox, program: &str) -> String {
    let out = sb.tool(
        "sh",
        &[
            "-c",
            &format!("PATH=$PATH:/usr/sbin:/sbin command -v {program}"),
        ],
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        s(dir),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    )
}

/// H1: certutil reads `X:` in a nickname as a token name. A CA called
/// "NSS Certificate DB:evil" was added on every install and never found on uninstall.
#[test]
fn nss_a_colon_in_the_ca_name_neither_duplicates_nor_survives_uninstall() {
    let sb = Sandbox::new();
    sb.ok(&[
        "pki",
        "--dir",
        "ca3",
        "init",
        "--no-passphrase",
        "--name",
        "NSS Certificate DB:evil",
    ]);
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db().to_owned();
    let install = [
        "pki",
        "--dir",
        "ca3",
        "trust",
        "install",
        "--nss-db",
        s(&db),
    ];
    let first = sb.ok(&install);
    assert!(first.contains("added "), "{first}");
    let second = sb.ok(&install);
    assert!(second.contains("already trusted"), "{second}");
    let list = browser.list();
    assert_eq!(list.matches(",,").count(), 1, "one entry:\n{list}");

    let out = sb.ok(&[
        "pki",
        "--dir",
        "ca3",
        "trust",
        "uninstall",
        "--nss-db",
        s(&db),
    ]);
    assert!(out.contains("removed "), "{out}");
    let list = browser.list();
    assert!(!list.contains("evil"), "still in the database:\n{list}");
}

/// H1: the root imported by hand under a nickname of the user's choosing is found by its
/// certificate, not its name, and uninstall takes it out.
#[test]
fn nss_the_root_under_another_nickname_is_found_and_removed() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db().to_owned();
    let root = sb.path("pki/root.crt");
    browser.certutil(&["-A", "-t", "C,,", "-n", "imported by hand", "-i", s(&root)]);
    let out = sb.ok(&["pki", "trust", "install", "--nss-db", s(&db)]);
    assert!(out.contains("already trusted"), "{out}");
    assert!(out.contains("imported by hand"), "{out}");

    let out = sb.ok(&["pki", "trust", "uninstall", "--nss-db", s(&db)]);
    assert!(out.contains("removed "), "{out}");
    let list = browser.list();
    assert!(!list.contains("imported by hand"), "still trusted:\n{list}");
    let again = sb.ok(&["pki", "trust", "uninstall", "--nss-db", s(&db)]);
    assert!(again.contains("not there"), "{again}");
}

/// H2: with our root the only certificate, update-ca-certificates does not rewrite the
/// bundle; uninstall used to fail, and a rerun said "not there" with the bundle trusting it.
#[test]
fn system_uninstall_of_the_only_certificate_takes_it_out_of_the_bundle() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let root = sb.path("bare-root");
    std::fs::create_dir_all(root.join("etc/ssl/certs")).unwrap();
    let args = |verb| ["pki", "trust", verb, "--root", "bare-root"];
    sb.ok(&args("install"));
    assert!(bundle_holds(&root, &sb.path("pki/root.crt")));

    let out = sb.run(&args("uninstall"));
    let again = sb.run(&args("uninstall"));
    assert!(
        !bundle_holds(&root, &sb.path("pki/root.crt")),
        "the bundle still trusts the root:\n{}\n{}",
        text(&out),
        text(&again)
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("removed "), "{}", text(&out));
    assert!(text(&again).contains("not there"), "{}", text(&again));
}

/// H2: a step that fails after the local file changed puts the file back, and "present"
/// looks at the bundle too, so a rerun finishes the job instead of declaring it done.
#[test]
fn system_a_failed_step_is_rolled_back_and_a_rerun_finishes_it() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let root = scratch_root(&sb);
    let ours = sb.path("pki/root.crt");
    let local = root.join("usr/local/share/ca-certificates");
    let broken = sb.path("broken-bin");
    script(
        &broken.join("update-ca-certificates"),
        "echo 'update-ca-certificates: disk full' >&2\nexit 1\n",
    );
    let path = path_with(&broken);
    let args = |verb| ["pki", "trust", verb, "--root", "root"];

    // Install fails: no file is left behind for the next apt run to pick up.
    let out = sb.run_env(&args("install"), &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("disk full"), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(&local)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // A file in place but the bundle without the root (a crash after writing it) is not
    // "already trusted".
    let out = sb.ok(&args("install"));
    let file = std::fs::read_dir(&local)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(
        root.join("etc/ssl/certs/ca-certificates.crt"),
        std::fs::read(root.join("usr/share/ca-certificates/distro/Distro_Root.crt")).unwrap(),
    )
    .unwrap();
    let rerun = sb.ok(&args("install"));
    assert!(rerun.contains("added "), "{out}\n{rerun}");
    assert!(bundle_holds(&root, &ours));

    // Uninstall fails: the file is put back, so the rerun knows there is work to do.
    let out = sb.run_env(&args("uninstall"), &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(file.exists(), "the local file was not restored");
    let out = sb.ok(&args("uninstall"));
    assert!(out.contains("removed "), "{out}");
    assert!(!file.exists());
    assert!(!bundle_holds(&root, &ours));
}

/// Low: uninstall deleted LABEL.crt even when it held someone else's certificate.
#[test]
fn system_uninstall_leaves_a_file_that_holds_another_certificate() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let root = scratch_root(&sb);
    sb.ok(&["pki", "trust", "install", "--root", "root"]);
    let local = root.join("usr/local/share/ca-certificates");
    let file = std::fs::read_dir(&local)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let other =
        std::fs::read(root.join("usr/share/ca-certificates/distro/Distro_Root.crt")).unwrap();
    std::fs::write(&file, &other).unwrap();

    let out = sb.ok(&["pki", "trust", "uninstall", "--root", "root"]);
    assert_eq!(std::fs::read(&file).ok(), Some(other), "{out}");
    assert!(out.contains("left alone"), "{out}");
    assert!(!bundle_holds(&root, &sb.path("pki/root.crt")), "{out}");
}

/// Low: a scratch --root's own hooks must not run (under sudo they would run as root).
#[test]
fn system_a_scratch_root_s_hooks_do_not_run() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let root = scratch_root(&sb);
    let marker = sb.path("hook-ran");
    script(
        &root.join("etc/ca-certificates/update.d/evil"),
        &format!("touch '{}'\n", s(&marker)),
    );
    sb.ok(&["pki", "trust", "install", "--root", "root"]);
    sb.ok(&["pki", "trust", "uninstall", "--root", "root"]);
    assert!(!marker.exists(), "the scratch root's hook ran");
}

/// Low: certutil, keytool and update-ca-certificates (and its hooks) used to inherit the
/// CA passphrase and every other PORTCULLIS_* secret.
#[test]
fn child_processes_never_see_portcullis_secrets() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db().to_owned();
    let root = scratch_root(&sb);
    let bin = sb.path("spy-bin");
    let log = sb.path("spy.env");
    for program in ["certutil", "update-ca-certificates"] {
        script(
            &bin.join(program),
            &format!(
                "echo '== {program}' >> '{}'\nenv >> '{}'\nexec '{}' \"$@\"\n",
                s(&log),
                s(&log),
                real(&sb, program)
            ),
        );
    }
    script(
        &sb.path("jdk/bin/keytool"),
        &format!(
            "echo '== keytool' >> '{}'\nenv >> '{}'\nexec '{}' \"$@\"\n",
            s(&log),
            s(&log),
            real(&sb, "keytool")
        ),
    );
    let secrets = [
        ("PORTCULLIS_CA_PASSPHRASE", "ca-secret-4411"),
        ("PORTCULLIS_KEY_PASSPHRASE", "key-secret-4412"),
        ("PORTCULLIS_P12_PASSWORD", "p12-secret-4413"),
        ("PORTCULLIS_JAVA_STOREPASS", "store-secret-4414"),
    ];
    let path = path_with(&bin);
    let jdk = sb.path("jdk");
    let mut env = vec![("PATH", path.as_str()), ("JAVA_HOME", s(&jdk))];
    env.extend(secrets);
    let keystore = sb.path("new.p12");
    let out = sb.run_env(
        &[
            "pki",
            "trust",
            "install",
            "--nss-db",
            s(&db),
            "--root",
            s(&root),
            "--java-keystore",
            s(&keystore),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    let seen = std::fs::read_to_string(&log).unwrap();
    for program in ["certutil", "update-ca-certificates", "keytool"] {
        assert!(seen.contains(&format!("== {program}")), "{program} not run");
    }
    for (name, value) in secrets {
        assert!(!seen.contains(name), "{name} reached a child:\n{seen}");
        if name != "PORTCULLIS_JAVA_STOREPASS" {
            assert!(!seen.contains(value), "{name}'s value reached a child");
        }
    }
    // keytool gets the store password, in its own variable only.
    assert!(seen.contains("PORTCULLIS_KEYTOOL_STOREPASS=store-secret-4414"));
}

/// Low: control and bidi characters of the CA's name reached the terminal raw. `pki
/// init` refuses such a name; a root.crt made elsewhere need not.
#[test]
fn control_and_bidi_characters_in_the_name_are_escaped() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("evil")).unwrap();
    sb.openssl_self_signed(
        "evil/root.key",
        "evil/root.crt",
        "/CN=Evil\u{202e}Root\u{1b}[31m",
        &["-utf8", "-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db().to_owned();
    let out = sb.ok(&[
        "pki",
        "--dir",
        "evil",
        "trust",
        "install",
        "--nss-db",
        s(&db),
    ]);
    assert!(
        !out.contains('\u{202e}') && !out.contains('\u{1b}'),
        "{out:?}"
    );
    assert!(out.contains("Evil\\u{202e}Root\\u{1b}[31m"), "{out}");
    let list = browser.list();
    assert!(
        !list.contains('\u{202e}') && !list.contains('\u{1b}'),
        "{list:?}"
    );
}

/// M4: --json printed nothing when a step failed, though earlier stores had changed.
#[test]
fn json_reports_every_step_even_when_one_fails() {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    let browser = Browser::new(&sb.path("browser"));
    let db = browser.db().to_owned();
    let root = scratch_root(&sb);
    let keystore = sb.path("new.p12");
    // A keytool that lists but cannot import.
    script(
        &sb.path("jdk/bin/keytool"),
        &format!(
            "case \"$*\" in *-importcert*) echo 'keytool error: java.io.IOException: boom' ; exit 1;; esac\nexec '{}' \"$@\"\n",
            real(&sb, "keytool")
        ),
    );
    let jdk = sb.path("jdk");
    let args = [
        "pki",
        "--json",
        "trust",
        "install",
        "--root",
        s(&root),
        "--nss-db",
        s(&db),
        "--java-keystore",
        s(&keystore),
    ];
    let out = sb.run_env(&args, &[("JAVA_HOME", s(&jdk))]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let steps = doc["steps"].as_array().unwrap();
    let field = |i: usize, k: &str| steps[i][k].as_str().unwrap_or_default().to_owned();
    assert_eq!(steps.len(), 3, "{doc:#}");
    assert_eq!(field(0, "store"), "system");
    assert!(field(0, "path").ends_with(".crt"), "{doc:#}");
    assert!(
        field(0, "name").starts_with("portcullis-root-ca-"),
        "{doc:#}"
    );
    assert_eq!(field(0, "status"), "done");
    assert_eq!(field(1, "store"), "nss");
    assert_eq!(field(1, "path"), s(&db));
    assert!(
        field(1, "name").starts_with("Portcullis Root CA "),
        "{doc:#}"
    );
    assert_eq!(field(1, "change"), "add");
    assert_eq!(field(1, "status"), "done");
    assert_eq!(field(2, "store"), "java");
    assert_eq!(field(2, "path"), s(&keystore));
    assert_eq!(field(2, "status"), "failed");
    assert!(field(2, "error").contains("boom"), "{doc:#}");
    assert_eq!(doc["ok"], false);

    // A dry run plans; statuses say so.
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = sb.run_env(&dry, &[("JAVA_HOME", s(&jdk))]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["planned"; 3], "{doc:#}");

    // The first store fails: the others are not touched, and say so.
    let broken = sb.path("broken-bin");
    script(&broken.join("update-ca-certificates"), "exit 1\n");
    let path = path_with(&broken);
    let mut un = args.to_vec();
    un[3] = "uninstall";
    let out = sb.run_env(&un, &[("JAVA_HOME", s(&jdk)), ("PATH", &path)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "not-run", "not-run"], "{doc:#}");
    assert!(nickname_line(&browser.list(), "Portcullis Root CA").is_some());
}

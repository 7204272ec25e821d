//! Real clients through the gate in `client_auth = "require"` mode: Node.js `https` (PEM
//! and PKCS#12), Python `requests` and `httpx`, Java 17's `HttpClient` with a PKCS#12
//! keystore, and curl (PEM and PKCS#12). Each one asks for an admin-only path as alice;
//! the test then checks what the upstream (a Node.js echo server) *received*: the
//! canonical path and the identity headers, down to the exact certificate. Without a
//! certificate every one of them is refused during the handshake.
//!
//! Needs node, python3 with requests and httpx, a JDK and curl: `scripts/setup` installs
//! them. A missing one fails the test with the reason; nothing is skipped.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod gate_support;

use std::process::Command;
use std::time::Duration;

use gate_support::{Gate, P12_PASS, Pki, Upstream, json};

/// The longest one client run may take (the JDK compiles the client first).
const LIMIT: Duration = Duration::from_secs(60);

/// An admin-only path (`/admin/**` needs role:admin), so a 200 also proves the roles.
const PATH: &str = "/admin/reports?from=client";

/// A PKI, the echo upstream and the gate in front of it, requiring client certificates.
struct Setup {
    pki: Pki,
    gate: Gate,
    _upstream: Upstream,
}

impl Setup {
    fn new() -> Setup {
        let pki = Pki::new();
        let upstream = Upstream::start();
        let gate = Gate::start(&pki.config("require", &upstream.url(), ""));
        // Secrets reach the clients through files, never through argv.
        std::fs::write(pki.path("p12.pass"), format!("{P12_PASS}\n")).unwrap();
        Setup {
            pki,
            gate,
            _upstream: upstream,
        }
    }

    fn path(&self, rel: &str) -> String {
        self.pki.path(rel).display().to_string()
    }

    /// Writes a client program into the PKI's directory; returns its path.
    fn program(&self, name: &str, source: &str) -> String {
        std::fs::write(self.pki.path(name), source).unwrap();
        self.path(name)
    }

    /// Runs a client, bounded; returns (success, stdout, stderr).
    fn run(&self, program: &str, args: &[String], run: &str) -> (bool, String, String) {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(self.pki.dir.path());
        // Nothing from the outside may change how the JVM or Python set up TLS.
        for var in [
            "JAVA_TOOL_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "NODE_OPTIONS",
        ] {
            cmd.env_remove(var);
        }
        common::bounded(cmd, LIMIT, &self.pki.path(&format!("logs-{run}")))
    }

    /// Runs a client that prints `status N` and then the body, and checks what the
    /// upstream received: alice, her role, her exact certificate, the path asked for.
    fn alice_reaches_upstream(&self, program: &str, args: &[String], run: &str) {
        let (ok, out, err) = self.run(program, args, run);
        let (status, body) = out
            .split_once('\n')
            .unwrap_or_else(|| panic!("{run}: no answer:\n{out}{err}"));
        assert!(ok && status == "status 200", "{run}: {out}\n{err}");
        let seen = json(body);
        assert_eq!(seen["url"], PATH, "{run}: the upstream got another path");
        let h = &seen["headers"];
        assert_eq!(h["x-client-verify"], "SUCCESS", "{run}: {seen:#}");
        assert_eq!(h["x-client-cn"], "alice", "{run}: {seen:#}");
        assert_eq!(h["x-client-email"], "alice@example.com", "{run}: {seen:#}");
        assert_eq!(h["x-client-ou"], "\"Admins\"", "{run}: {seen:#}");
        assert_eq!(h["x-client-roles"], "admin", "{run}: {seen:#}");
        // RFC 9440 Client-Cert: alice's certificate itself, and the intermediate the
        // client sent with it (each client must send the chain, not the leaf alone).
        let pem = std::fs::read_to_string(self.pki.path("pki/issued/alice.crt")).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(h["client-cert"], format!(":{b64}:"), "{run}");
        let chain = h["client-cert-chain"].as_str().unwrap_or_default();
        assert_eq!(chain.matches(':').count(), 2, "{run}: chain {chain:?}");
    }

    /// Runs a client without a certificate: it must get no HTTP answer, and the gate must
    /// log the refused handshake as `no-cert` (not some other failure).
    fn refused_without_certificate(&self, program: &str, args: &[String], run: &str) {
        self.gate.refuses_handshake("no-cert", || {
            let (ok, out, err) = self.run(program, args, run);
            // curl prints `status 000` when there was no HTTP response at all.
            let answered = out
                .lines()
                .any(|l| l.starts_with("status ") && l != "status 000");
            assert!(
                !ok && !answered,
                "{run}: answered without a certificate:\n{out}{err}"
            );
        });
    }

    fn url(&self) -> String {
        self.gate.url(PATH)
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

// === Node.js ===

/// `node client.cjs URL ROOT MODE [FILES…]`, MODE one of `pem CHAIN KEY`,
/// `pfx P12 PASSWORD_FILE` or `none`.
const NODE: &str = r#"const https = require('https'), fs = require('fs');
const [url, root, mode, a, b] = process.argv.slice(2);
const opts = { ca: fs.readFileSync(root), timeout: 10000 };
if (mode === 'pem') { opts.cert = fs.readFileSync(a); opts.key = fs.readFileSync(b); }
if (mode === 'pfx') { opts.pfx = fs.readFileSync(a); opts.passphrase = fs.readFileSync(b, 'utf8').trim(); }
const req = https.get(url, opts, res => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', d => body += d);
  res.on('end', () => console.log('status ' + res.statusCode + '\n' + body));
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', e => { console.error('error: ' + e.message); process.exit(1); });
"#;

fn node(s: &Setup, mode: &[&str]) -> Vec<String> {
    let mut args = vec![s.program("client.cjs", NODE), s.url(), s.pki.root()];
    args.extend(strings(mode));
    args
}

#[test]
fn node_https_with_pem_chain_and_key() {
    let s = Setup::new();
    let (chain, key) = s.pki.client("alice");
    s.alice_reaches_upstream("node", &node(&s, &["pem", &chain, &key]), "node-pem");
}

#[test]
fn node_https_with_pfx_and_passphrase() {
    let s = Setup::new();
    let p12 = s.path("pki/issued/alice.p12");
    let pass = s.path("p12.pass");
    s.alice_reaches_upstream("node", &node(&s, &["pfx", &p12, &pass]), "node-pfx");
}

// === Python ===

/// `python3 client.py requests|httpx URL ROOT [CHAIN KEY]`.
const PYTHON: &str = r#"import ssl, sys
lib, url, root, *cert = sys.argv[1:]
try:
    if lib == "requests":
        import requests
        r = requests.get(url, verify=root, cert=tuple(cert) or None, timeout=10)
    else:
        import httpx
        # httpx 0.28 takes an SSLContext as `verify` (its `cert=` is deprecated).
        ctx = ssl.create_default_context(cafile=root)
        if cert:
            ctx.load_cert_chain(*cert)
        r = httpx.get(url, verify=ctx, timeout=10)
except Exception as e:
    print("error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
    sys.exit(1)
print("status %d" % r.status_code)
print(r.text)
"#;

fn python(s: &Setup, lib: &str, cert: Option<&str>) -> Vec<String> {
    let mut args = vec![
        s.program("client.py", PYTHON),
        lib.to_owned(),
        s.url(),
        s.pki.root(),
    ];
    if let Some(who) = cert {
        let (chain, key) = s.pki.client(who);
        args.extend([chain, key]);
    }
    args
}

#[test]
fn python_requests_with_pem_chain_and_key() {
    let s = Setup::new();
    s.alice_reaches_upstream(
        "python3",
        &python(&s, "requests", Some("alice")),
        "requests",
    );
}

#[test]
fn python_httpx_with_an_ssl_context() {
    let s = Setup::new();
    s.alice_reaches_upstream("python3", &python(&s, "httpx", Some("alice")), "httpx");
}

// === Java ===

/// `java Client.java URL TRUSTSTORE TRUSTPASS_FILE [KEYSTORE KEYPASS_FILE]`: Java 17's
/// HttpClient with an SSLContext made from a PKCS#12 keystore (alice's bundle as written
/// by `pki issue client`) and a PKCS#12 trust store made by keytool from the root.
/// Passwords are read from files, so they are never in the JVM's argv.
const JAVA: &str = r#"import java.io.FileInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class Client {
    static char[] password(String file) throws Exception {
        return Files.readString(Path.of(file)).strip().toCharArray();
    }

    static KeyStore pkcs12(String file, char[] password) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (FileInputStream in = new FileInputStream(file)) {
            ks.load(in, password);
        }
        return ks;
    }

    public static void main(String[] args) throws Exception {
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(pkcs12(args[1], password(args[2])));
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        if (args.length > 3) {
            char[] pass = password(args[4]);
            kmf.init(pkcs12(args[3], pass), pass);
        } else {
            kmf.init(null, null);
        }
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        HttpClient client = HttpClient.newBuilder()
            .sslContext(tls)
            .connectTimeout(Duration.ofSeconds(10))
            .build();
        HttpRequest req = HttpRequest.newBuilder(URI.create(args[0])).timeout(Duration.ofSeconds(20)).build();
        try {
            HttpResponse<String> res = client.send(req, HttpResponse.BodyHandlers.ofString());
            System.out.println("status " + res.statusCode());
            System.out.println(res.body());
        } catch (java.io.IOException e) {
            System.err.println("error: " + e);
            System.exit(1);
        }
    }
}
"#;

/// A PKCS#12 trust store holding the root, made by keytool (password from the
/// environment, not argv).
fn java_truststore(s: &Setup) -> (String, String) {
    const PASS: &str = "trust store password";
    let store = s.path("trust.p12");
    if !s.pki.path("trust.p12").exists() {
        let out = Command::new("keytool")
            .args([
                "-importcert",
                "-noprompt",
                "-alias",
                "portcullis-root",
                "-storetype",
                "PKCS12",
                "-storepass:env",
                "STOREPASS",
                "-keystore",
                &store,
                "-file",
                &s.pki.root(),
            ])
            .env("STOREPASS", PASS)
            .output()
            .unwrap_or_else(|e| panic!("cannot run keytool (scripts/setup installs a JDK): {e}"));
        assert!(out.status.success(), "keytool: {}", common::text(&out));
        std::fs::write(s.pki.path("trust.pass"), PASS).unwrap();
    }
    (store, s.path("trust.pass"))
}

fn java(s: &Setup, keystore: Option<&str>) -> Vec<String> {
    let (store, pass) = java_truststore(s);
    let mut args = vec![s.program("Client.java", JAVA), s.url(), store, pass];
    if let Some(p12) = keystore {
        args.extend([p12.to_owned(), s.path("p12.pass")]);
    }
    args
}

#[test]
fn java_httpclient_with_a_pkcs12_keystore() {
    let s = Setup::new();
    // The bundle exactly as `pki issue client` writes it by default (AES-256-CBC, PBES2,
    // HMAC-SHA256 MAC): Java 17 opens it; no --legacy-p12 needed.
    let p12 = s.path("pki/issued/alice.p12");
    s.alice_reaches_upstream("java", &java(&s, Some(&p12)), "java");
}

// === curl ===

/// `bash -c 'curl -K CONFIG && cat BODY'`: curl with everything (the password included)
/// in a config file, so no secret is in argv; it prints `status N`, then the body.
fn curl(s: &Setup, name: &str, options: &[(&str, &str)]) -> Vec<String> {
    let body = s.path(&format!("{name}.body"));
    let mut config = format!(
        "silent\nshow-error\nmax-time = 10\noutput = \"{body}\"\n\
         write-out = \"status %{{http_code}}\\n\"\ncacert = \"{}\"\nurl = \"{}\"\n",
        s.pki.root(),
        s.url()
    );
    for (k, v) in options {
        config += &format!("{k} = \"{v}\"\n");
    }
    let file = s.path(&format!("{name}.curlrc"));
    std::fs::write(&file, config).unwrap();
    strings(&["-c", &format!("curl -K '{file}' && cat '{body}'")])
}

#[test]
fn curl_with_pem_chain_and_key() {
    let s = Setup::new();
    let (chain, key) = s.pki.client("alice");
    let args = curl(&s, "pem", &[("cert", &chain), ("key", &key)]);
    s.alice_reaches_upstream("bash", &args, "curl-pem");
}

/// `--cert-type P12` needs a TLS backend that reads PKCS#12: curl on OpenSSL does (this
/// one is checked: the test fails on a curl that cannot).
#[test]
fn curl_with_pkcs12() {
    let s = Setup::new();
    let cert = format!("{}:{P12_PASS}", s.path("pki/issued/alice.p12"));
    let args = curl(&s, "p12", &[("cert-type", "P12"), ("cert", &cert)]);
    s.alice_reaches_upstream("bash", &args, "curl-p12");
}

// === without a certificate ===

#[test]
fn every_client_without_a_certificate_is_refused_in_the_handshake() {
    let s = Setup::new();
    s.refused_without_certificate("node", &node(&s, &["none"]), "node-none");
    s.refused_without_certificate("python3", &python(&s, "requests", None), "requests-none");
    s.refused_without_certificate("python3", &python(&s, "httpx", None), "httpx-none");
    s.refused_without_certificate("java", &java(&s, None), "java-none");
    s.refused_without_certificate("bash", &curl(&s, "none", &[]), "curl-none");
}

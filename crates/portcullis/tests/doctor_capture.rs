//! `portcullis doctor capture` on real captures made during the test: `tcpdump` (classic
//! pcap) or `dumpcap` (pcapng) on the loopback interface, real clients (curl, Node.js,
//! Python, openssl s_client) against real servers (rustls, openssl s_server, a plaintext
//! port) in good and bad configurations; then the binary reads the file and must name the
//! cause. A machine that cannot capture fails these tests and says why.

// Integration tests: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod doctor_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;
use doctor_support::*;

// === capturing ===

/// A running capture on `lo`, limited to the test's ports.
struct Capture {
    child: Option<Child>,
    file: PathBuf,
    log: PathBuf,
}

/// Starts `tool` (`tcpdump` writes pcap, `dumpcap` pcapng) on lo for `ports`, and waits
/// until it says it is listening.
fn capture(sb: &Sandbox, tool: &str, ports: &[u16]) -> Capture {
    capture_as(sb, tool, ports, tool)
}

/// As [`capture`], into `NAME.cap` (several captures in one test).
fn capture_as(sb: &Sandbox, tool: &str, ports: &[u16], name: &str) -> Capture {
    let filter = ports
        .iter()
        .map(|p| format!("tcp port {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let file = sb.path(&format!("{name}.cap"));
    let log = sb.path(&format!("{name}.log"));
    let mut cmd = Command::new(tool);
    match tool {
        // --immediate-mode: hand each packet over as it comes (otherwise packets wait in
        // the kernel's ring for up to a second, and SIGINT loses them); -U: write each
        // packet as it comes; -n: no name lookups.
        "tcpdump" => cmd
            .args(["-i", "lo", "-n", "--immediate-mode", "-U", "-s", "0", "-w"])
            .arg(&file)
            .arg(&filter),
        "dumpcap" => cmd.args(["-i", "lo", "-q", "-f", &filter, "-w"]).arg(&file),
        other => panic!("no capture tool {other}"),
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("capturing is not possible on this machine: cannot run {tool} ({e}); scripts/setup installs it")
        });
    let mut c = Capture {
        child: Some(child),
        file,
        log,
    };
    let ready = if tool == "tcpdump" {
        "listening on"
    } else {
        "Capturing on"
    };
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&c.log).unwrap_or_default();
        if text.contains(ready) {
            break;
        }
        if let Some(status) = c.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("capturing is not possible on this machine: {tool} exited ({status}): {text}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "capturing is not possible on this machine: {tool} did not start listening on lo within 10 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The interface is open; give the kernel filter a moment before traffic flows.
    std::thread::sleep(Duration::from_millis(200));
    c
}

impl Capture {
    /// Lets the last packets land, stops the capture with SIGINT (it flushes and closes
    /// the file) and returns the file.
    fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(500));
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("the capture did not stop within 10 s after SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let size = std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 24,
            "the capture wrote nothing ({size} bytes): {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `portcullis doctor capture FILE ARGS --json`: exit code and report.
fn diagnose(sb: &Sandbox, file: &std::path::Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["doctor", "capture", file.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = sb.run(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "doctor capture printed no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

fn connections(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["connections"].as_array().unwrap()
}

/// The one connection whose SNI is `sni` (`None`: without SNI).
fn by_sni<'a>(report: &'a serde_json::Value, sni: Option<&str>) -> &'a serde_json::Value {
    let found: Vec<_> = connections(report)
        .iter()
        .filter(|c| c["sni"].as_str() == sni)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one connection with SNI {sni:?} in {report:#}"
    );
    found[0]
}

/// The only TLS connection of the capture.
fn only(report: &serde_json::Value) -> &serde_json::Value {
    let c = connections(report);
    assert_eq!(c.len(), 1, "one TLS connection expected in {report:#}");
    &c[0]
}

fn assert_cause(conn: &serde_json::Value, cause: &str, report: &serde_json::Value) {
    assert_eq!(conn["cause"], cause, "wrong cause in {report:#}");
}

/// Diagnoses `file`: it must exit with `code` and hold one TLS connection whose cause is
/// `cause`. Returns the report.
fn one_verdict(
    sb: &Sandbox,
    file: &std::path::Path,
    args: &[&str],
    code: i32,
    cause: &str,
) -> serde_json::Value {
    let (got, report) = diagnose(sb, file, args);
    assert_eq!(got, code, "{report:#}");
    assert_cause(only(&report), cause, &report);
    report
}

/// Runs a client, bounded; its own success or failure is asserted by the caller.
fn client(sb: &Sandbox, program: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["15", program];
    all.extend_from_slice(args);
    sb.tool("timeout", &all)
}

fn curl(sb: &Sandbox, port: u16, name: &str, extra: &[&str]) -> std::process::Output {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}/");
    let mut args = vec!["-sS", "-o", "/dev/null", "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    client(sb, "curl", &args)
}

/// A private root, `ca.pem` in the sandbox, and a leaf for localhost and 127.0.0.1.
fn pki(sb: &Sandbox) -> (Cert, Cert) {
    let ca = root("Capture Test Root");
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let leaf = server_leaf(&ca);
    (ca, leaf)
}

// === the seed's case ===

/// A server that drops connections without SNI (`localhost`), trusted through `ca.pem`.
fn sni_only_server(sb: &Sandbox) -> u16 {
    let (_ca, leaf) = pki(sb);
    Server {
        sni_only: Some("localhost"),
        ..Server::new(&leaf)
    }
    .start()
}

/// The seed's working client: curl with the name.
fn curl_by_name_works(sb: &Sandbox, port: u16) {
    let ok = curl(sb, port, "localhost", &["--cacert", "ca.pem"]);
    assert!(
        ok.status.success(),
        "curl by name failed: {}",
        common::text(&ok)
    );
}

/// The seed's failing client: Node's `https.get` to the server's IP address, which sends
/// no SNI (Node never sends an IP address as SNI), trusting the test CA. It must fail.
fn node_by_ip_fails(sb: &Sandbox, port: u16) {
    let node = sb.node(
        &format!(
            "const https = require('https'); const fs = require('fs');
             setTimeout(() => process.exit(3), 10000).unref();
             https.get({{host: '127.0.0.1', port: {port}, ca: fs.readFileSync('ca.pem')}}, r => {{ console.log('status', r.statusCode); process.exit(0); }})
               .on('error', e => {{ console.log('error', e.code || e.message); process.exit(1); }});"
        ),
        &[],
    );
    assert!(
        !node.status.success(),
        "Node connected without SNI: {}",
        common::text(&node)
    );
}

/// Node to an IP address without `servername` sends no SNI; a server that needs SNI drops
/// it. curl with the name works. Both in one capture: the doctor names `sni-required` for
/// Node's connection, with the name curl's working connection used.
#[test]
fn seed_node_by_ip_fails_curl_by_name_works() {
    let sb = Sandbox::new();
    let port = sni_only_server(&sb);
    let cap = capture(&sb, "tcpdump", &[port]);
    node_by_ip_fails(&sb, port);
    curl_by_name_works(&sb, port);
    let file = cap.stop();

    let (code, report) = diagnose(&sb, &file, &[]);
    assert_eq!(code, 1, "{report:#}");
    let bad = by_sni(&report, None);
    assert_cause(bad, "sni-required", &report);
    let f = &bad["findings"][0];
    assert!(
        f["summary"].as_str().unwrap().contains("localhost"),
        "the finding names the SNI that works: {report:#}"
    );
    let good = by_sni(&report, Some("localhost"));
    assert_cause(good, "ok", &report);
    assert_eq!(report["summary"]["tls_connections"], 2);
}

// === certificates (TLS 1.2: the certificate is in the clear) ===

#[test]
fn client_certificate_required() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let clients = root("Capture Clients CA");
    let port = Server {
        client_ca: Some(&clients),
        ..Server::new(&leaf)
    }
    .start();
    let cap = capture(&sb, "tcpdump", &[port]);
    let out = curl(
        &sb,
        port,
        "localhost",
        &["--cacert", "ca.pem", "--tls-max", "1.2"],
    );
    assert!(!out.status.success(), "curl got in without a certificate");
    let file = cap.stop();

    let report = one_verdict(&sb, &file, &[], 1, "client-cert-required");
    let c = only(&report);
    // The CertificateRequest's CA names are evidence.
    assert!(
        c["findings"][0]["evidence"]
            .to_string()
            .contains("Capture Clients CA"),
        "{report:#}"
    );
}

#[test]
fn hostname_mismatch_judged_with_the_clients_ca() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let port = Server::new(&leaf).start();
    let cap = capture(&sb, "tcpdump", &[port]);
    let out = curl(
        &sb,
        port,
        "wrong.example",
        &["--cacert", "ca.pem", "--tls-max", "1.2"],
    );
    assert!(
        !out.status.success(),
        "curl accepted a certificate for another name"
    );
    let file = cap.stop();

    let (code, report) = diagnose(&sb, &file, &["--ca", "ca.pem"]);
    assert_eq!(code, 1);
    let c = only(&report);
    assert_eq!(c["sni"], "wrong.example");
    assert_cause(c, "hostname-mismatch", &report);
}

/// Python with the system store refuses a private root.
#[test]
fn untrusted_root_from_python() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let port = Server::new(&leaf).start();
    let cap = capture(&sb, "tcpdump", &[port]);
    let script = format!(
        "import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
s = socket.create_connection(('127.0.0.1', {port}), timeout=10)
try:
    ctx.wrap_socket(s, server_hostname='localhost')
except ssl.SSLError as e:
    print(e); sys.exit(1)
sys.exit(0)"
    );
    let out = client(&sb, "python3", &["-c", &script]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "Python should refuse the private root: {}",
        common::text(&out)
    );
    let file = cap.stop();

    one_verdict(&sb, &file, &[], 1, "untrusted-root");
}

// === before the certificate ===

#[test]
fn tls10_only_server() {
    let sb = Sandbox::new();
    let (_, leaf) = pki(&sb);
    std::fs::write(sb.path("leaf.crt"), leaf.pem()).unwrap();
    std::fs::write(sb.path("leaf.key"), leaf.key_pem()).unwrap();
    let server = openssl_server(
        &sb.path(""),
        &[
            "-cert",
            "leaf.crt",
            "-key",
            "leaf.key",
            "-tls1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-quiet",
        ],
    );
    let cap = capture(&sb, "tcpdump", &[server.port]);
    let out = curl(&sb, server.port, "localhost", &["--cacert", "ca.pem"]);
    assert!(!out.status.success(), "curl spoke TLS 1.0");
    let file = cap.stop();

    one_verdict(&sb, &file, &[], 1, "protocol-version-mismatch");
}

#[test]
fn plaintext_port() {
    let sb = Sandbox::new();
    let port = hello_then(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let cap = capture(&sb, "tcpdump", &[port]);
    let out = curl(&sb, port, "localhost", &[]);
    assert!(!out.status.success());
    let file = cap.stop();

    let report = one_verdict(&sb, &file, &[], 1, "not-tls");
    let c = only(&report);
    assert!(
        c["findings"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("HTTP/1.1 400"),
        "the first bytes are shown: {report:#}"
    );
}

/// Captured with dumpcap: pcapng.
#[test]
fn alpn_mismatch_in_pcapng_from_dumpcap() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let port = Server {
        alpn: vec!["h2"],
        ..Server::new(&leaf)
    }
    .start();
    let cap = capture(&sb, "dumpcap", &[port]);
    // TLS 1.2: a TLS 1.3 server sends this alert encrypted.
    let out = curl(
        &sb,
        port,
        "localhost",
        &["--cacert", "ca.pem", "--http1.1", "--tls-max", "1.2"],
    );
    assert!(!out.status.success(), "curl agreed on a protocol");
    let file = cap.stop();
    let magic = std::fs::read(&file).unwrap();
    assert_eq!(
        &magic[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "dumpcap writes pcapng"
    );

    let report = one_verdict(&sb, &file, &[], 1, "alpn-mismatch");
    assert_eq!(report["summary"]["read"]["format"], "pcapng");
}

// === TLS 1.3 without keys ===

/// A healthy TLS 1.3 connection is `ok`, and the doctor says what it could not see.
#[test]
fn tls13_healthy_says_what_it_cannot_see() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let port = Server::new(&leaf).start();
    let cap = capture(&sb, "tcpdump", &[port]);
    let out = curl(&sb, port, "localhost", &["--cacert", "ca.pem", "--tlsv1.3"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let file = cap.stop();

    let report = one_verdict(&sb, &file, &[], 0, "ok");
    let c = only(&report);
    assert_eq!(c["version"], "TLS 1.3");
    assert!(
        c["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["cause"] == "encrypted-handshake" && f["severity"] == "warning"),
        "{report:#}"
    );
}

// === TLS 1.3 with --keylog ===

/// curl with `SSLKEYLOGFILE` set, TLS 1.3, bounded.
fn curl_keylog(sb: &Sandbox, port: u16, extra: &[&str]) -> std::process::Output {
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/");
    let keys = sb.path("keys.log");
    let mut args = vec![
        "15",
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "--tlsv1.3",
        "--resolve",
        &resolve,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    client_command(
        sb,
        "timeout",
        &args,
        &[("SSLKEYLOGFILE", keys.to_str().unwrap())],
    )
    .output()
    .unwrap()
}

/// curl refuses a private root in TLS 1.3: without the keys the capture only shows that
/// the client ended the handshake; with them, the certificate is judged: `untrusted-root`.
#[test]
fn tls13_untrusted_root_needs_the_keylog() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let port = Server::new(&leaf).start();
    let cap = capture(&sb, "tcpdump", &[port]);
    let out = curl_keylog(&sb, port, &[]);
    assert!(!out.status.success(), "curl trusted the private root");
    let file = cap.stop();
    let keys = sb.path("keys.log");
    assert!(
        std::fs::read_to_string(&keys)
            .unwrap_or_default()
            .contains("SERVER_HANDSHAKE_TRAFFIC_SECRET"),
        "curl wrote no TLS 1.3 secrets to SSLKEYLOGFILE"
    );

    let (code, report) = diagnose(&sb, &file, &[]);
    assert_eq!(code, 1);
    assert_cause(only(&report), "client-aborted-handshake", &report);

    let report = one_verdict(
        &sb,
        &file,
        &["--keylog", keys.to_str().unwrap()],
        1,
        "untrusted-root",
    );
    let c = only(&report);
    assert!(
        !c["findings"].to_string().contains("encrypted-handshake"),
        "the handshake was opened: {report:#}"
    );
    assert!(
        c["trace"].to_string().contains("opened with --keylog"),
        "{report:#}"
    );
    assert!(
        c["facts"]["alert"].as_str().unwrap().contains("48"),
        "{report:#}"
    );
}

/// A TLS 1.3 server that requires a client certificate: with the keys, its
/// CertificateRequest (and the CA names in it) and its alert become evidence.
#[test]
fn tls13_client_certificate_required_with_the_keylog() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let clients = root("Keylog Clients CA");
    let port = Server {
        client_ca: Some(&clients),
        ..Server::new(&leaf)
    }
    .start();
    let cap = capture(&sb, "tcpdump", &[port]);
    let out = curl_keylog(&sb, port, &["--cacert", "ca.pem"]);
    assert!(!out.status.success(), "curl got in without a certificate");
    let file = cap.stop();

    // Without the keys the CertificateRequest is not visible.
    let (_, plain) = diagnose(&sb, &file, &[]);
    assert!(
        only(&plain)["facts"]["certificate_request"].is_null(),
        "{plain:#}"
    );
    eprintln!("without --keylog: {}", only(&plain)["cause"]);

    let keys = sb.path("keys.log");
    let (code, report) = diagnose(&sb, &file, &["--keylog", keys.to_str().unwrap()]);
    assert_eq!(code, 1);
    let c = only(&report);
    eprintln!("{:#}", c["trace"]);
    assert_cause(c, "client-cert-required", &report);
    assert!(
        c["findings"][0]["evidence"]
            .to_string()
            .contains("Keylog Clients CA"),
        "{report:#}"
    );
    assert_eq!(
        c["facts"]["certificate_request"][0], "CN=Keylog Clients CA",
        "{report:#}"
    );
}

// === input that is not a capture ===

#[test]
fn unreadable_input_exits_2() {
    let sb = Sandbox::new();
    for (name, bytes) in [
        ("empty.pcap", &b""[..]),
        (
            "text.pcap",
            &b"GET / HTTP/1.1\r\n\r\nthis is not a capture"[..],
        ),
    ] {
        std::fs::write(sb.path(name), bytes).unwrap();
        let out = sb.run(&["doctor", "capture", sb.path(name).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", common::text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not a packet capture"),
            "{}",
            common::text(&out)
        );
    }
    let out = sb.run(&[
        "doctor",
        "capture",
        sb.path("missing.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

// === compare-captures ===

/// `portcullis doctor compare-captures GOOD BAD ARGS --json`: exit code and comparison.
fn compare(
    sb: &Sandbox,
    good: &std::path::Path,
    bad: &std::path::Path,
    args: &[&str],
) -> (i32, serde_json::Value) {
    let mut all = vec![
        "doctor",
        "compare-captures",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--json",
    ];
    all.extend_from_slice(args);
    let out = sb.run(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "compare-captures printed no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// Exit 1, the named field and the cause; the difference's values are what each side sent.
fn assert_difference(
    (code, report): &(i32, serde_json::Value),
    field: &str,
    cause: &str,
) -> serde_json::Value {
    assert_eq!(*code, 1, "{report:#}");
    assert_eq!(report["difference"]["field"], field, "{report:#}");
    assert_eq!(report["cause"], cause, "{report:#}");
    assert_ne!(
        report["difference"]["good"], report["difference"]["bad"],
        "{report:#}"
    );
    report["difference"].clone()
}

/// Python's ssl module, one handshake: `settings` adjusts `ctx` (a default context
/// trusting ca.pem); exit 0 when the handshake completed.
fn python_handshake(sb: &Sandbox, port: u16, settings: &str) -> std::process::Output {
    let script = format!(
        "import socket, ssl, sys
ctx = ssl.create_default_context(cafile='ca.pem')
{settings}
s = socket.create_connection(('127.0.0.1', {port}), timeout=10)
try:
    t = ctx.wrap_socket(s, server_hostname='localhost')
except (ssl.SSLError, OSError) as e:
    print(e); sys.exit(1)
print('alpn', t.selected_alpn_protocol(), t.version())
t.close()
sys.exit(0)"
    );
    client(sb, "python3", &["-c", &script])
}

/// The seed's case in two files: Node to an IP without `servername` (BAD) and curl with
/// the name (GOOD). The difference is the SNI, the cause `sni-required`.
#[test]
fn compare_seed_node_without_sni_vs_curl_with_the_name() {
    let sb = Sandbox::new();
    let port = sni_only_server(&sb);
    let cap = capture_as(&sb, "tcpdump", &[port], "bad");
    node_by_ip_fails(&sb, port);
    let bad = cap.stop();
    let cap = capture_as(&sb, "tcpdump", &[port], "good");
    curl_by_name_works(&sb, port);
    let good = cap.stop();

    let run = compare(&sb, &good, &bad, &[]);
    let d = assert_difference(&run, "sni", "sni-required");
    assert_eq!(d["good"], "localhost");
    assert_eq!(d["bad"], "none");
    // The fix is to send the name, and the finding says which one works.
    assert!(
        run.1["findings"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("localhost"),
        "{:#}",
        run.1
    );
    // Swapped: the "bad" capture works, nothing to explain.
    let (code, swapped) = compare(&sb, &bad, &good, &[]);
    assert_eq!(code, 0, "{swapped:#}");
    assert_eq!(swapped["cause"], "ok");
}

/// The server requires a client certificate: curl with one (GOOD) and without (BAD),
/// TLS 1.2 so the certificates are in the clear.
#[test]
fn compare_client_certificate_sent_or_not() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let clients = root("Compare Clients CA");
    let alice = make(Make {
        issuer: Some(&clients),
        ..Make::new(portcullis_pki::build::Kind::Client, "alice")
    });
    std::fs::write(sb.path("alice.crt"), alice.pem()).unwrap();
    std::fs::write(sb.path("alice.key"), alice.key_pem()).unwrap();
    let port = Server {
        client_ca: Some(&clients),
        ..Server::new(&leaf)
    }
    .start();
    let tls12 = ["--cacert", "ca.pem", "--tls-max", "1.2"];
    let cap = capture_as(&sb, "tcpdump", &[port], "good");
    let mut args = tls12.to_vec();
    args.extend(["--cert", "alice.crt", "--key", "alice.key"]);
    let ok = curl(&sb, port, "localhost", &args);
    assert!(
        ok.status.success(),
        "curl with a certificate: {}",
        common::text(&ok)
    );
    let good = cap.stop();
    let cap = capture_as(&sb, "tcpdump", &[port], "bad");
    let out = curl(&sb, port, "localhost", &tls12);
    assert!(!out.status.success(), "curl got in without a certificate");
    let bad = cap.stop();

    let run = compare(&sb, &good, &bad, &[]);
    let d = assert_difference(&run, "client-certificate", "client-cert-required");
    assert!(d["good"].as_str().unwrap().contains("alice"), "{d:#}");
    assert!(d["bad"].as_str().unwrap().starts_with("not sent"), "{d:#}");
}

/// ALPN, TLS 1.2 (a TLS 1.3 server's alert 120 is encrypted): the server speaks only h2;
/// Python offering h2 works, Python offering http/1.1 gets alert 120.
#[test]
fn compare_alpn() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let port = Server {
        alpn: vec!["h2"],
        ..Server::new(&leaf)
    }
    .start();
    let tls12 = "ctx.maximum_version = ssl.TLSVersion.TLSv1_2\n";
    let cap = capture_as(&sb, "tcpdump", &[port], "good");
    let ok = python_handshake(&sb, port, &format!("{tls12}ctx.set_alpn_protocols(['h2'])"));
    assert!(ok.status.success(), "{}", common::text(&ok));
    let good = cap.stop();
    let cap = capture_as(&sb, "tcpdump", &[port], "bad");
    let out = python_handshake(
        &sb,
        port,
        &format!("{tls12}ctx.set_alpn_protocols(['http/1.1'])"),
    );
    assert!(
        !out.status.success(),
        "agreed on a protocol: {}",
        common::text(&out)
    );
    let bad = cap.stop();

    let run = compare(&sb, &good, &bad, &[]);
    let d = assert_difference(&run, "alpn", "alpn-mismatch");
    assert_eq!(d["good"], "h2");
    assert_eq!(d["bad"], "http/1.1");
}

/// A client limited to TLS 1.0/1.1 (BAD) and a modern one (GOOD), against a server that
/// speaks TLS 1.2 and 1.3.
#[test]
fn compare_versions() {
    let sb = Sandbox::new();
    let (_ca, leaf) = pki(&sb);
    let port = Server::new(&leaf).start();
    let cap = capture_as(&sb, "tcpdump", &[port], "good");
    let ok = python_handshake(&sb, port, "");
    assert!(ok.status.success(), "{}", common::text(&ok));
    let good = cap.stop();
    let cap = capture_as(&sb, "tcpdump", &[port], "bad");
    let out = python_handshake(
        &sb,
        port,
        "ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
ctx.minimum_version = ssl.TLSVersion.TLSv1
ctx.maximum_version = ssl.TLSVersion.TLSv1_1",
    );
    assert!(
        !out.status.success(),
        "TLS 1.1 was accepted: {}",
        common::text(&out)
    );
    let bad = cap.stop();

    let run = compare(&sb, &good, &bad, &[]);
    let d = assert_difference(&run, "versions", "protocol-version-mismatch");
    assert!(d["good"].as_str().unwrap().contains("TLS 1.3"), "{d:#}");
    assert!(!d["bad"].as_str().unwrap().contains("TLS 1.2"), "{d:#}");
}

/// Two captures with nothing to pair, or no TLS at all: exit 2, saying why.
#[test]
fn compare_nothing_to_pair_exits_2() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("text.pcap"), b"not a capture").unwrap();
    let out = sb.run(&[
        "doctor",
        "compare-captures",
        sb.path("text.pcap").to_str().unwrap(),
        sb.path("text.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a packet capture"),
        "{}",
        common::text(&out)
    );
}

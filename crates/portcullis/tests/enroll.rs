//! Enrolment through the binary against a running gate with `[enroll]`: a machine gets a
//! certificate with a one-time token (its key made locally), uses it, renews it over
//! mTLS, and cannot renew once revoked; used and expired tokens are refused.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gate_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use gate_support::*;

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Makes a token with `pki enroll create` and writes it to a file; returns the file.
fn token(dir: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["pki", "--dir", "pki", "--json", "enroll", "create", name];
    args.extend_from_slice(extra);
    let o = portcullis_in(dir, &args);
    assert!(o.status.success(), "{}", said(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let file = format!("{name}-{}.token", v["id"].as_str().unwrap());
    std::fs::write(dir.join(&file), v["token"].as_str().unwrap()).unwrap();
    file
}

fn cn_of(pem_file: &Path) -> String {
    let pem = std::fs::read(pem_file).unwrap();
    let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// `portcullis enroll URL --token-file TOKEN` into `out`, trusting the test CA.
fn enroll(dir: &Path, url: &str, token: &str, out: &str) -> Output {
    portcullis_in(
        dir,
        &[
            "enroll",
            url,
            "--token-file",
            token,
            "--ca",
            "pki/root.crt",
            "--out",
            out,
        ],
    )
}

/// A POST of `body` as JSON with curl, as a script would send it.
fn post_json(pki: &Pki, url: &str, body: &str) -> Curl {
    let args = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        body,
    ];
    curl(pki, &args, url)
}

fn listed(dir: &Path, serial: &str) -> serde_json::Value {
    let o = portcullis_in(dir, &["pki", "--dir", "pki", "--json", "list"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    rows.into_iter()
        .find(|r| r["serial"] == serial)
        .unwrap_or_else(|| panic!("{serial} not listed"))
}

#[test]
fn a_machine_enrols_renews_and_cannot_renew_once_revoked() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let config = pki.config("optional", "builtin:whoami", "[enroll]\nca = \"pki\"\n");
    let gate = Gate::start(&config);
    let url = gate.url("/enroll");
    let tok = token(dir, "build-7", &["--ou", "Users", "--validity", "60d"]);

    let o = enroll(dir, &url, &tok, "machine");
    assert!(o.status.success(), "{}", said(&o));
    let key = dir.join("machine/build-7.key");
    let chain = dir.join("machine/build-7.chain.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(cn_of(&chain), "build-7");
    assert_eq!(cn_of(&dir.join("machine/build-7.crt")), "build-7");

    // The certificate works at the gate, with the role its OU grants.
    let me = |chain: &Path, key: &Path| {
        curl(
            &pki,
            &[
                "--cert",
                chain.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
            &gate.url("/me"),
        )
    };
    let r = me(&chain, &key);
    assert_eq!(r.status, "200", "{r:?}");
    let who = json(&r.body);
    assert_eq!(who["subject"]["cn"], "build-7", "{}", r.body);
    assert!(who["roles"].to_string().contains("user"), "{}", r.body);
    let first = who["serial"].as_str().unwrap().to_owned();

    // The token is spent, and the CA says by whom and for what.
    let again = enroll(dir, &url, &tok, "again");
    assert!(!again.status.success());
    assert!(said(&again).contains("already used"), "{}", said(&again));
    assert!(!dir.join("again").exists(), "nothing written on a refusal");
    let o = portcullis_in(dir, &["pki", "--dir", "pki", "--json", "enroll", "list"]);
    let tokens: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tokens[0]["state"], "used");
    assert_eq!(tokens[0]["used"]["by"], "127.0.0.1");
    assert_eq!(tokens[0]["used"]["serial"], first);

    // Renew over mTLS: same subject, new key, new serial; the old one is recorded renewed.
    let old_key = std::fs::read(&key).unwrap();
    let o = portcullis_in(
        dir,
        &[
            "renew",
            &url,
            "--cert",
            "machine/build-7.chain.pem",
            "--key",
            "machine/build-7.key",
            "--ca",
            "pki/root.crt",
        ],
    );
    assert!(o.status.success(), "{}", said(&o));
    assert_ne!(std::fs::read(&key).unwrap(), old_key, "a new key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(dir.join("machine/build-7.key.previous")).unwrap(),
        old_key
    );
    let r = me(&chain, &key);
    assert_eq!(r.status, "200", "{r:?}");
    let second = json(&r.body)["serial"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(listed(dir, &first)["status"], "renewed");
    assert_eq!(listed(dir, &second)["status"], "valid");

    // Revoked: the gate refuses the certificate, so renewing fails and changes nothing.
    let o = portcullis_in(dir, &["pki", "--dir", "pki", "revoke", &second]);
    assert!(o.status.success(), "{}", said(&o));
    let seen = gate.lines_with(&["loaded, version"]);
    gate.hangup();
    assert!(
        gate.logged_more(&["loaded, version"], seen),
        "{}",
        gate.output()
    );
    let before = std::fs::read(&key).unwrap();
    let o = portcullis_in(
        dir,
        &[
            "renew",
            &url,
            "--cert",
            "machine/build-7.chain.pem",
            "--key",
            "machine/build-7.key",
            "--ca",
            "pki/root.crt",
        ],
    );
    assert!(!o.status.success(), "{}", said(&o));
    assert!(
        said(&o).contains("renewal failed") && said(&o).contains("CertificateRevoked"),
        "{}",
        said(&o)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn expired_and_revoked_tokens_and_foreign_requests_are_refused() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let config = pki.config("optional", "builtin:whoami", "[enroll]\nca = \"pki\"\n");
    let gate = Gate::start(&config);
    let url = gate.url("/enroll");

    let short = token(dir, "short", &["--ttl", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = enroll(dir, &url, &short, "a");
    assert!(!o.status.success());
    assert!(said(&o).contains("expired"), "{}", said(&o));

    let revoked = token(dir, "gone", &[]);
    let id = revoked
        .strip_prefix("gone-")
        .and_then(|s| s.strip_suffix(".token"))
        .unwrap();
    let o = portcullis_in(dir, &["pki", "--dir", "pki", "enroll", "revoke", id]);
    assert!(o.status.success(), "{}", said(&o));
    let o = enroll(dir, &url, &revoked, "b");
    assert!(said(&o).contains("revoked"), "{}", said(&o));

    // A made-up token, and a request that does not parse.
    std::fs::write(dir.join("made-up"), "00".repeat(32)).unwrap();
    assert!(said(&enroll(dir, &url, "made-up", "c")).contains("no such enrolment token"));
    let r = post_json(&pki, &gate.url("/enroll/csr"), "{\"token\": \"x\"}");
    assert_eq!(r.status, "400", "{r:?}");

    // Renewing needs a certificate on the connection; `/enroll` itself is the browser page
    // (tests/enroll_browser.rs), answered before the rules like the endpoints.
    let r = post_json(&pki, &gate.url("/enroll/renew"), "{\"csr\": \"x\"}");
    assert_eq!(r.status, "401", "{r:?}");
    let r = curl(&pki, &[], &gate.url("/enroll"));
    assert_eq!(r.status, "200", "{r:?}");
    assert!(r.body.contains("<h1>Get your certificate</h1>"), "{r:?}");
    let r = curl(&pki, &[], &gate.url("/enroll/csr"));
    assert_eq!(r.status, "405", "{r:?}");

    // `check` lists the endpoints.
    let o = portcullis_in(dir, &["check", "-c", config.to_str().unwrap()]);
    assert!(
        said(&o).contains("GET /enroll (the browser page), POST /enroll/csr"),
        "{}",
        said(&o)
    );
}

#[test]
fn attempts_are_limited_per_address() {
    let pki = Pki::new();
    let config = pki.config(
        "optional",
        "builtin:whoami",
        "[enroll]\nca = \"pki\"\nattempts_per_minute = 3\n",
    );
    let gate = Gate::start(&config);
    let statuses: Vec<String> = (0..5)
        .map(|_| {
            let r = post_json(&pki, &gate.url("/enroll/csr"), "{}");
            assert!(r.stderr.is_empty(), "{r:?}");
            r.status
        })
        .collect();
    assert_eq!(statuses, ["400", "400", "400", "429", "429"]);
}

#[test]
fn the_renewal_daemon_renews_when_due_runs_the_hook_and_stops_once_revoked() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let config = pki.config("optional", "builtin:whoami", "[enroll]\nca = \"pki\"\n");
    let gate = Gate::start(&config);
    let url = gate.url("/enroll");
    // A one-minute certificate, due when 85% of its lifetime is left: every ~4 seconds.
    let tok = token(dir, "svc", &["--ou", "Users", "--validity", "1m"]);
    let o = enroll(dir, &url, &tok, "svc");
    assert!(o.status.success(), "{}", said(&o));
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "renew",
            &url,
            "--cert",
            "svc/svc.chain.pem",
            "--key",
            "svc/svc.key",
            "--ca",
            "pki/root.crt",
            "--daemon",
            "--within",
            "85%",
            "--exec",
            "echo \"$PORTCULLIS_SERIAL\" >> renewed.log",
        ])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let renewals = || {
        std::fs::read_to_string(dir.join("renewed.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let start = std::time::Instant::now();
    while renewals().len() < 2 && start.elapsed() < std::time::Duration::from_secs(40) {
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "the daemon stopped early"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let serials = renewals();
    assert!(
        serials.len() >= 2,
        "{serials:?} after {:?}",
        start.elapsed()
    );
    // Each hook saw a new certificate; the CA's index has exactly one of them in force.
    assert_ne!(serials[0], serials[1]);
    let o = portcullis_in(dir, &["pki", "--dir", "pki", "--json", "list"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let in_force: Vec<String> = rows
        .iter()
        .filter(|r| r["subject"].as_str().unwrap_or("").contains("CN=svc"))
        .filter(|r| r["status"] == "valid" || r["status"] == "expiring")
        .map(|r| r["serial"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(in_force.len(), 1, "{rows:?}");
    let current = in_force[0].clone();
    assert!(serials.contains(&current), "{current} not in {serials:?}");

    // Revoke the one in force: the gate reloads the CRL by itself, the next renewal is
    // refused in the handshake, and the daemon stops saying why.
    let o = portcullis_in(dir, &["pki", "--dir", "pki", "revoke", &current]);
    assert!(o.status.success(), "{}", said(&o));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(40) {
            let _ = daemon.kill();
            panic!("the daemon kept running with a revoked certificate");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let out = daemon.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(stderr.contains("cannot renew any more"), "{stderr}");
}

/// Findings of the attacker review of the first version.
#[test]
fn web_pages_cannot_renew_spellings_reach_the_endpoint_they_mean_and_bodies_are_timed() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let config = pki.config("optional", "builtin:whoami", "[enroll]\nca = \"pki\"\n");
    let gate = Gate::start(&config);

    // A page the user visits sends a simple POST with their certificate attached.
    let (cert, key) = pki.client("alice");
    let csr = {
        let o = portcullis_in(dir, &["pki", "csr", "attacker", "--out", "."]);
        assert!(o.status.success(), "{}", said(&o));
        std::fs::read_to_string(dir.join("attacker.csr")).unwrap()
    };
    let body = serde_json::json!({ "csr": csr }).to_string();
    for headers in [
        vec!["-H", "Content-Type: text/plain"],
        vec![
            "-H",
            "Content-Type: application/json",
            "-H",
            "Origin: https://evil.example",
        ],
        vec![
            "-H",
            "Content-Type: application/json",
            "-H",
            "Sec-Fetch-Site: same-origin",
        ],
    ] {
        let mut args = vec![
            "--cert", &cert, "--key", &key, "-X", "POST", "--data", &body,
        ];
        args.extend(headers.iter().copied());
        let r = curl(&pki, &args, &gate.url("/enroll/renew"));
        assert_eq!(r.status, "403", "{headers:?}: {r:?}");
    }
    let o = portcullis_in(dir, &["pki", "--dir", "pki", "--json", "list"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("renewed"),
        "nothing renewed"
    );

    // `%63sr` is `csr`: the token endpoint answers (403, no such token), not renew (401).
    let r = post_json(
        &pki,
        &gate.url("/enroll/%63sr"),
        "{\"token\": \"00\", \"csr\": \"x\"}",
    );
    assert_eq!(r.status, "403", "{r:?}");
    assert!(r.body.contains("no such enrolment token"), "{r:?}");

    // A body that never finishes is cut after 10 s with 408, not held.
    let port = gate
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let script = format!(
        r#"
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile="{root}")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})), server_hostname="localhost")
s.sendall(b"POST /enroll/csr HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{{\"t")
s.settimeout(30)
start = time.time()
data = s.recv(4096)
print(int(time.time() - start), data.split(b"\r\n")[0].decode())
"#,
        root = pki.root(),
        port = port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("408"),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: u64 = said.split_whitespace().next().unwrap().parse().unwrap();
    assert!((9..=15).contains(&secs), "{said}");
}

#[test]
fn an_admin_makes_links_on_the_gate_and_no_one_else_can() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let config = pki.config(
        "optional",
        "builtin:whoami",
        "[enroll]\nca = \"pki\"\nadmin_role = \"admin\"\n",
    );
    let gate = Gate::start(&config);
    let (alice_cert, alice_key) = pki.client("alice");
    let (bob_cert, bob_key) = pki.client("bob");
    let ask = serde_json::json!({
        "name": "kiosk-3", "ou": ["Users"], "ttl": "1h", "validity": "7d"
    })
    .to_string();
    // Every refusal must be an answer (curl reports a stream error as status 000).
    let post = |who: Option<(&str, &str)>, extra: &[&str]| {
        let mut args = vec!["-X", "POST", "--data", &ask];
        if let Some((c, k)) = who {
            args.extend(["--cert", c, "--key", k]);
        }
        args.extend_from_slice(extra);
        curl(&pki, &args, &gate.url("/enroll/tokens"))
    };
    let json_type = ["-H", "Content-Type: application/json"];

    // alice holds the admin role (OU Admins): she gets a link, and the link works.
    let r = post(Some((&alice_cert, &alice_key)), &json_type);
    assert_eq!(r.status, "200", "{r:?}");
    let made = json(&r.body);
    let link = made["link"].as_str().unwrap();
    assert!(link.starts_with(&gate.url("/enroll#")), "{link}");
    let token = link.split('#').nth(1).unwrap();
    assert_eq!(token, made["token"]);
    std::fs::write(dir.join("kiosk.token"), token).unwrap();
    let o = enroll(dir, &gate.url("/enroll"), "kiosk.token", "kiosk");
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(cn_of(&dir.join("kiosk/kiosk-3.crt")), "kiosk-3");
    assert!(
        gate.logged_more(&["token made on the gate", "CN=alice"], 0),
        "{}",
        gate.output()
    );

    // Not an admin, no certificate, or a request another site's page could send: refused.
    assert_eq!(post(Some((&bob_cert, &bob_key)), &json_type).status, "403");
    assert_eq!(post(None, &json_type).status, "401");
    assert_eq!(
        post(
            Some((&alice_cert, &alice_key)),
            &["-H", "Content-Type: text/plain"]
        )
        .status,
        "403"
    );
    let cross = [
        "-H",
        "Content-Type: application/json",
        "-H",
        "Sec-Fetch-Site: cross-site",
    ];
    assert_eq!(post(Some((&alice_cert, &alice_key)), &cross).status, "403");

    // The page: for admins only, same strict policy as the enrolment page.
    let page = curl(
        &pki,
        &["--cert", &alice_cert, "--key", &alice_key, "-D", "-"],
        &gate.url("/enroll/admin"),
    );
    assert_eq!(page.status, "200", "{page:?}");
    let lower = page.body.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<script src=\"/enroll/admin.js\" defer></script>"),
        "{}",
        page.body
    );
    // No inline script or handler: one external script, nothing for the policy to allow.
    assert_eq!(lower.matches("<script").count(), 1, "{}", page.body);
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onerror=",
        " style=",
    ] {
        assert!(!lower.contains(handler), "{handler} in {}", page.body);
    }
    let page = curl(
        &pki,
        &["--cert", &bob_cert, "--key", &bob_key],
        &gate.url("/enroll/admin"),
    );
    assert_eq!(page.status, "403", "{page:?}");

    // A role that does not exist is a load error, at its key.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("admin_role = \"admin\"", "admin_role = \"root\""),
    )
    .unwrap();
    let o = portcullis_in(dir, &["check", "-c", config.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        said(&o).contains("enroll.admin_role") && said(&o).contains("no role \"root\""),
        "{}",
        said(&o)
    );
}

#[test]
fn the_fallback_for_browsers_without_webcrypto_is_opt_in_and_keeps_no_key() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let bundle = |gate: &Gate, token: &str| {
        curl(
            &pki,
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data",
                &serde_json::json!({ "token": token, "password": "correct horse" }).to_string(),
            ],
            &gate.url("/enroll/bundle"),
        )
    };
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();

    // Off by default: the page does not offer it and the endpoint does not exist.
    let config = pki.config("optional", "builtin:whoami", "[enroll]\nca = \"pki\"\n");
    let gate = Gate::start(&config);
    let tok = token(dir, "old-browser", &["--ou", "Users"]);
    assert!(
        curl(&pki, &[], &gate.url("/enroll"))
            .body
            .contains("data-server-keys=\"no\"")
    );
    assert_ne!(bundle(&gate, &read(&tok)).status, "200");
    drop(gate);

    let config = pki.config(
        "optional",
        "builtin:whoami",
        "[enroll]\nca = \"pki\"\nserver_keys = true\n",
    );
    let gate = Gate::start(&config);
    assert!(
        curl(&pki, &[], &gate.url("/enroll"))
            .body
            .contains("data-server-keys=\"yes\"")
    );
    let r = bundle(&gate, &read(&tok));
    assert_eq!(r.status, "200", "{r:?}");
    let answer = json(&r.body);
    std::fs::write(dir.join("bundle.b64"), answer["p12"].as_str().unwrap()).unwrap();
    let decoded = Command::new("openssl")
        .args([
            "base64",
            "-d",
            "-A",
            "-in",
            "bundle.b64",
            "-out",
            "bundle.p12",
        ])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(decoded.success());
    let shown = Command::new("openssl")
        .args([
            "pkcs12",
            "-in",
            "bundle.p12",
            "-passin",
            "pass:correct horse",
            "-nodes",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.contains("CN = old-browser") || text.contains("CN=old-browser"),
        "{text}"
    );
    assert!(text.contains("PRIVATE KEY"), "the bundle holds the key");
    // The gate kept no key and no bundle; the token is spent.
    let issued: Vec<String> = std::fs::read_dir(dir.join("pki/issued"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("old-browser"))
        .collect();
    assert!(
        issued
            .iter()
            .all(|n| !n.ends_with(".key") && !n.ends_with(".p12")),
        "{issued:?}"
    );
    assert!(!issued.is_empty());
    let again = bundle(&gate, &read(&tok));
    assert_eq!(again.status, "403", "{again:?}");
    assert!(again.body.contains("already used"), "{again:?}");
}

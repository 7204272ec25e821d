//! `portcullis doctor audit`: does the server really verify client certificates? The real
//! binary against real servers (Node `https`, nginx), configured the way people get it
//! wrong and the way that is right. With a certificate the server accepts, the audit sends
//! forged twins (none, self-signed, a same-name fake issuer, expired, no clientAuth EKU)
//! and must call every twin that gets the real certificate's answer a forgery accepted.

// Integration tests: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod doctor_support;

use common::Sandbox;
use doctor_support::*;

/// The twins every audit of an accepting server sends, as named in the JSON.
const TWINS: &[&str] = &[
    "none",
    "self-signed",
    "same-name-issuer",
    "expired",
    "no-client-auth-eku",
];

/// `doctor audit https://localhost:PORT/app --ca ca.pem --cert alice.crt --key alice.key`.
fn audit_alice(sb: &Sandbox, server: &Daemon) -> Run {
    let url = format!("https://localhost:{}/app", server.port);
    let run = audit(
        sb,
        &[
            &url,
            "--ca",
            "ca.pem",
            "--cert",
            "alice.crt",
            "--key",
            "alice.key",
        ],
    );
    assert_secure("the audit", &run.json.to_string());
    run
}

/// The `accepts-*` findings of a report.
fn accepts(run: &Run) -> Vec<String> {
    run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["cause"].as_str())
        .filter(|c| c.starts_with("accepts-"))
        .map(str::to_owned)
        .collect()
}

/// The twins the audit tried, in order, from its observations.
fn tried(run: &Run) -> Vec<String> {
    run.json["observations"]["audit"]["tries"]
        .as_array()
        .unwrap_or_else(|| panic!("no audit tries in {:#}", run.json))
        .iter()
        .map(|t| t["twin"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a vulnerable server: `accepts-forged-certificate`, exit 1, with a detail
/// finding (and the twin's answer as evidence) for each of `must`.
fn assert_forgeries(name: &str, run: &Run, server: &Daemon, must: &[&str]) {
    assert!(
        run.code == 1 && run.cause() == "accepts-forged-certificate",
        "{name}: expected accepts-forged-certificate and exit 1, got exit {} and {}:\n{:#}\n--- log\n{}",
        run.code,
        run.cause(),
        run.json,
        server.log()
    );
    let umbrella = run.finding("accepts-forged-certificate");
    assert_eq!(umbrella["severity"], "error");
    let fixes = umbrella["fixes"].to_string();
    assert!(
        fixes.contains("rejectUnauthorized: true") && fixes.contains("req.socket.authorized"),
        "{name}: the fix requires verification: {fixes}"
    );
    assert!(
        fixes.contains("ssl_verify_client on") && fixes.contains("$ssl_client_verify"),
        "{name}: the nginx fix: {fixes}"
    );
    let found = accepts(run);
    for twin in must {
        let slug = format!("accepts-{twin}");
        assert!(found.contains(&slug), "{name}: no {slug} in {found:?}");
        let evidence = run.finding(&slug)["evidence"].to_string();
        assert!(
            evidence.contains("HTTP/1.1 200") && evidence.contains("the real certificate"),
            "{name}: {slug}'s evidence shows both answers: {evidence}"
        );
    }
    assert_eq!(tried(run), [&["real"], TWINS].concat(), "{name}");
}

/// Asserts a server that refused every twin: exit 0, no `accepts-*` finding, all tried.
fn assert_clean(name: &str, run: &Run, server: &Daemon) {
    assert!(
        run.code == 0 && run.cause() == "ok" && accepts(run).is_empty(),
        "{name}: expected a clean audit, got exit {} and {}:\n{:#}\n--- log\n{}",
        run.code,
        run.cause(),
        run.json,
        server.log()
    );
    assert!(
        run.finding_opt("audit-url-open").is_none(),
        "{name}: {:#}",
        run.json
    );
    assert_eq!(tried(run), [&["real"], TWINS].concat(), "{name}");
}

/// A Node `https` server that asks for a certificate, lets unverified ones through the
/// handshake (`rejectUnauthorized` off, as the Express seed does to show its own page),
/// and then decides with `check`, a JavaScript expression over `req`.
fn node_app(sb: &Sandbox, check: &str) -> Daemon {
    let script = format!(
        r#"const https = require('node:https');
const fs = require('node:fs');
const options = {{
  key: fs.readFileSync('server.key'),
  cert: fs.readFileSync('server.crt'),
  ca: fs.readFileSync('clients.pem'),
  requestCert: true,
  rejectUnauthorized: false,
}};
https
  .createServer(options, (req, res) => {{
    const subject = req.socket.getPeerCertificate().subject;
    if ({check}) {{
      res.end(`hello ${{subject.CN}}\n`);
    }} else {{
      res.statusCode = 401;
      res.end('Unauthorized\n');
    }}
  }})
  .listen(Number(process.argv[2]), '127.0.0.1', () => console.log('listening'));
"#
    );
    node_server(sb.dir.path(), &script)
}

/// The Express seed's bug: it reads `getPeerCertificate().subject` and never looks at
/// `req.socket.authorized`, so any certificate with a subject gets in.
#[test]
fn node_app_trusting_the_subject_accepts_forgeries() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Node");
    let node = node_app(&sb, "subject && subject.CN");
    let run = audit_alice(&sb, &node);
    assert_forgeries(
        "Node reading the subject",
        &run,
        &node,
        &[
            "self-signed",
            "same-name-issuer",
            "expired",
            "no-client-auth-eku",
        ],
    );
    // The human text says the same, with the verdict first.
    let out = sb.run(&[
        "doctor",
        "audit",
        &format!("https://localhost:{}/app", node.port),
        "--ca",
        "ca.pem",
        "--cert",
        "alice.crt",
        "--key",
        "alice.key",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("accepts-forged-certificate") && text.contains("accepts-self-signed"),
        "{text}"
    );
}

/// The same server, checking `req.socket.authorized` first: every twin is refused.
#[test]
fn node_app_checking_authorized_is_clean() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Node");
    let node = node_app(&sb, "req.socket.authorized && subject && subject.CN");
    let run = audit_alice(&sb, &node);
    assert_clean("Node checking authorized", &run, &node);
}

/// nginx `ssl_verify_client optional_no_ca` hands any certificate to the application,
/// which here (as an upstream reading a DN header would) trusts `$ssl_client_s_dn`.
#[test]
fn nginx_optional_no_ca_trusting_the_dn_accepts_forgeries() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Nginx");
    let nginx = nginx_server(
        sb.dir.path(),
        "    server_name localhost;\n\
         \x20   ssl_certificate server.crt;\n\
         \x20   ssl_certificate_key server.key;\n\
         \x20   ssl_verify_client optional_no_ca;\n\
         \x20   location / {\n\
         \x20     if ($ssl_client_s_dn = \"\") { return 401 \"Unauthorized\\n\"; }\n\
         \x20     return 200 \"hello $ssl_client_s_dn\\n\";\n\
         \x20   }",
    );
    let run = audit_alice(&sb, &nginx);
    assert_forgeries(
        "nginx optional_no_ca",
        &run,
        &nginx,
        &["self-signed", "same-name-issuer"],
    );
}

/// nginx `ssl_verify_client on`: every twin is refused (in HTTP, with nginx's 400 pages).
#[test]
fn nginx_ssl_verify_client_on_is_clean() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Nginx");
    let nginx = nginx_verifying_clients(sb.dir.path());
    let run = audit_alice(&sb, &nginx);
    assert_clean("nginx ssl_verify_client on", &run, &nginx);
    // The evidence is in the observations: nginx's own words for the forged ones.
    let tries = run.json["observations"]["audit"]["tries"].to_string();
    assert!(
        tries.contains("No required SSL certificate was sent")
            && tries.contains("The SSL certificate error"),
        "{tries}"
    );

    // A certificate the server does not accept cannot be audited: the doctor's cause,
    // and a pointer to the doctor.
    let url = format!("https://localhost:{}/app", nginx.port);
    let run = audit(
        &sb,
        &[
            &url,
            "--ca",
            "ca.pem",
            "--cert",
            "mallory.crt",
            "--key",
            "mallory.key",
        ],
    );
    expect(&run, 1, "client-cert-rejected");
    assert!(accepts(&run).is_empty(), "{:#}", run.json);
    let verdict = run.json["verdict"].as_str().unwrap();
    assert!(verdict.contains("portcullis doctor"), "{verdict}");
}

/// A server that answers without any certificate is not protected by one: `audit-url-open`,
/// not a list of forgeries.
#[test]
fn open_url_is_reported_as_open() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Nginx");
    let nginx = nginx_server(
        sb.dir.path(),
        "    server_name localhost;\n\
         \x20   ssl_certificate server.crt;\n\
         \x20   ssl_certificate_key server.key;\n\
         \x20   location / { return 200 \"hello\\n\"; }",
    );
    let run = audit_alice(&sb, &nginx);
    expect(&run, 1, "audit-url-open");
    assert!(accepts(&run).is_empty(), "{:#}", run.json);
    let finding = run.finding("audit-url-open");
    assert_eq!(finding["severity"], "warning");
    let evidence = finding["evidence"].to_string();
    assert!(
        evidence.contains("without a client certificate"),
        "{evidence}"
    );
    // Nothing more to learn from forgeries.
    assert_eq!(tried(&run), ["real", "none"]);
}

//! The doctor against real servers people run, configured as their docs show for mTLS.
//! nginx with `ssl_verify_client on` completes the handshake without a client certificate
//! and refuses in HTTP (`400 No required SSL certificate was sent`); the doctor must say
//! so, with nginx's own words, instead of calling the connection healthy.

// Integration tests: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod doctor_support;

use common::Sandbox;
use doctor_support::*;
use portcullis_pki::Kind;

/// Issue 10: nginx `ssl_verify_client on`, reached without a certificate, with a
/// certificate from a CA it does not trust, and with a good one.
#[test]
fn nginx_ssl_verify_client_on_refuses_in_http() {
    let sb = Sandbox::new();
    let ca = root("Nginx Server Root");
    let leaf = server_leaf(&ca);
    let clients = root("Nginx Clients CA");
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
        ("clients.pem", clients.pem()),
        ("alice.crt", alice.pem()),
        ("alice.key", alice.key_pem()),
        ("mallory.crt", mallory.pem()),
        ("mallory.key", mallory.key_pem()),
    ] {
        std::fs::write(sb.path(file), text).unwrap();
    }
    // As nginx's documentation shows it (ngx_http_ssl_module, ssl_verify_client).
    let nginx = nginx_server(
        sb.dir.path(),
        "    server_name localhost;\n\
         \x20   ssl_certificate server.crt;\n\
         \x20   ssl_certificate_key server.key;\n\
         \x20   ssl_client_certificate clients.pem;\n\
         \x20   ssl_verify_client on;\n\
         \x20   location / { return 200 \"hello $ssl_client_s_dn\\n\"; }",
    );
    let target = format!("https://localhost:{}/app", nginx.port);

    // No client certificate: the handshake completes, nginx answers 400.
    let run = doctor(&sb, &[&target, "--ca", "ca.pem"]);
    expect(&run, 1, "client-cert-required");
    let evidence = run.finding("client-cert-required")["evidence"].to_string();
    assert!(
        evidence.contains("400") && evidence.contains("No required SSL certificate was sent"),
        "nginx's own words are the evidence: {evidence}\n{}",
        nginx.error_log()
    );
    assert!(
        evidence.contains("GET /app HTTP/1.1"),
        "the request made: {evidence}"
    );
    assert!(evidence.contains("Nginx Clients CA"), "{evidence}");

    // A certificate from a CA nginx does not trust: 400 "The SSL certificate error".
    let run = doctor(
        &sb,
        &[
            &target,
            "--ca",
            "ca.pem",
            "--cert",
            "mallory.crt",
            "--key",
            "mallory.key",
        ],
    );
    expect(&run, 1, "client-cert-rejected");
    let finding = run.finding("client-cert-rejected");
    let evidence = finding["evidence"].to_string();
    assert!(
        evidence.contains("The SSL certificate error"),
        "{evidence}\n{}",
        nginx.error_log()
    );
    let summary = finding["summary"].as_str().unwrap();
    assert!(
        summary.contains("Stranger CA") && summary.contains("Nginx Clients CA"),
        "{summary}"
    );

    // The right certificate: healthy.
    let run = doctor(
        &sb,
        &[
            &target,
            "--ca",
            "ca.pem",
            "--cert",
            "alice.crt",
            "--key",
            "alice.key",
        ],
    );
    expect(&run, 0, "ok");
}

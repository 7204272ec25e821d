//! The doctor against real servers people run, configured as their docs show for mTLS:
//! nginx, HAProxy, Caddy and Node's `https`. Each requires a client certificate from its
//! own clients CA and is reached three ways: without a certificate, with a certificate
//! from a CA it does not trust, and with a good one. However the server refuses (a TLS
//! alert during or after the handshake, or an HTTP page like nginx's `400 No required SSL
//! certificate was sent`), the doctor must name the cause with the server's evidence.

// Integration tests: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod doctor_support;

use common::Sandbox;
use doctor_support::*;

/// What the server itself says when it refuses, as it must appear in the evidence.
struct Refusals<'a> {
    /// No client certificate sent.
    required: &'a [&'a str],
    /// A certificate from "Stranger CA".
    rejected: &'a [&'a str],
}

/// The name a server's cases are reported under, and the doctor against it as
/// `https://localhost:PORT/app` with the server's root pinned, offering the doctor's default
/// versions or only `tls`, with the client certificate `STEM.crt`/`STEM.key` or none. Every
/// run's JSON is checked never to advise turning verification off.
fn prober<'a>(
    sb: &'a Sandbox,
    server_name: &str,
    server: &Daemon,
    tls: Option<&'a str>,
) -> (String, impl Fn(Option<&str>) -> Run + 'a) {
    let target = format!("https://localhost:{}/app", server.port);
    let name = match tls {
        Some(v) => format!("{server_name} (TLS {v})"),
        None => server_name.to_owned(),
    };
    let label = name.clone();
    let run_with = move |stem: Option<&str>| {
        let files = stem.map(|s| (format!("{s}.crt"), format!("{s}.key")));
        let mut args = vec![target.as_str(), "--ca", "ca.pem"];
        if let Some(v) = tls {
            args.extend(["--tls", v]);
        }
        if let Some((crt, key)) = &files {
            args.extend(["--cert", crt, "--key", key]);
        }
        let run = doctor(sb, &args);
        let case = stem.unwrap_or("no certificate");
        assert_secure(&format!("{label}, {case}"), &run.json.to_string());
        run
    };
    (name, run_with)
}

/// The three cases against `server` (set up by [`mtls_files`] with `server_name`),
/// reached as `https://localhost:PORT/app` with the server's root pinned, offering the
/// doctor's default versions or only `tls`.
fn three_cases(
    sb: &Sandbox,
    server_name: &str,
    server: &Daemon,
    tls: Option<&str>,
    says: Refusals<'_>,
) {
    let clients_ca = format!("{server_name} Clients CA");
    let (name, run_with) = prober(sb, server_name, server, tls);

    // No client certificate.
    let run = run_with(None);
    assert!(
        run.code == 1 && run.cause() == "client-cert-required",
        "{name} without a client certificate: expected client-cert-required, got exit {} and {}:\n{:#}\n--- {name}'s log\n{}",
        run.code,
        run.cause(),
        run.json,
        server.log()
    );
    let evidence = run.finding("client-cert-required")["evidence"].to_string();
    for words in says.required.iter().chain([&clients_ca.as_str()]) {
        assert!(
            evidence.contains(words),
            "{name} without a client certificate: the evidence lacks {words:?}: {evidence}"
        );
    }

    // A certificate from a CA the server does not trust.
    let run = run_with(Some("mallory"));
    assert!(
        run.code == 1 && run.cause() == "client-cert-rejected",
        "{name} with a foreign client certificate: expected client-cert-rejected, got exit {} and {}:\n{:#}\n--- {name}'s log\n{}",
        run.code,
        run.cause(),
        run.json,
        server.log()
    );
    let finding = run.finding("client-cert-rejected");
    let evidence = finding["evidence"].to_string();
    for words in says.rejected {
        assert!(
            evidence.contains(words),
            "{name} with a foreign client certificate: the evidence lacks {words:?}: {evidence}"
        );
    }
    let summary = finding["summary"].as_str().unwrap();
    assert!(
        summary.contains("Stranger CA") && summary.contains(&clients_ca),
        "{name}: the summary names our issuer and the one the server accepts: {summary}"
    );

    // The right certificate: healthy.
    let run = run_with(Some("alice"));
    assert!(
        run.code == 0 && run.cause() == "ok",
        "{name} with a good client certificate: expected ok, got exit {} and {}:\n{:#}\n--- {name}'s log\n{}",
        run.code,
        run.cause(),
        run.json,
        server.log()
    );
}

/// Issue 10: nginx `ssl_verify_client on` completes the handshake without a client
/// certificate (or with a foreign one) and refuses in HTTP; the doctor quotes its words.
#[test]
fn nginx_ssl_verify_client_on_refuses_in_http() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Nginx");
    let nginx = nginx_verifying_clients(sb.dir.path());
    // Debian's nginx 1.22 speaks TLS 1.2 unless ssl_protocols says otherwise.
    three_cases(
        &sb,
        "Nginx",
        &nginx,
        None,
        Refusals {
            required: &[
                "400",
                "No required SSL certificate was sent",
                "GET /app HTTP/1.1",
            ],
            rejected: &["The SSL certificate error"],
        },
    );
}

/// Issue 10: HAProxy `bind … ssl crt … ca-file … verify required` refuses in the
/// handshake, with a TLS alert.
#[test]
fn haproxy_verify_required() {
    let sb = Sandbox::new();
    mtls_files(&sb, "HAProxy");
    // As HAProxy's configuration manual shows it (bind options crt, ca-file, verify).
    let haproxy = haproxy_server(
        sb.dir.path(),
        "ssl crt server.pem ca-file clients.pem verify required",
        "    http-request return status 200 content-type text/plain string \"ok\\n\"",
    );
    // OpenSSL's verdict: in TLS 1.3 after our Finished, in TLS 1.2 within the handshake.
    three_cases(
        &sb,
        "HAProxy",
        &haproxy,
        Some("1.3"),
        Refusals {
            required: &["alert 116 (certificate_required)"],
            rejected: &[
                "sent Certificate (our client certificate)",
                "alert 48 (unknown_ca)",
            ],
        },
    );
    three_cases(
        &sb,
        "HAProxy",
        &haproxy,
        Some("1.2"),
        Refusals {
            required: &["alert 40 (handshake_failure)"],
            rejected: &[
                "sent Certificate (our client certificate)",
                "alert 48 (unknown_ca)",
            ],
        },
    );
}

/// A Caddy site that requires client certificates, as Caddy's documentation for the tls
/// directive shows it; Debian's Caddy 2.6 names the clients CA file
/// `trusted_ca_cert_file` (2.8 and later: `trust_pool file`).
const CADDY_MTLS_SITE: &str = "\ttls server.crt server.key {\n\
     \t\tclient_auth {\n\
     \t\t\tmode require_and_verify\n\
     \t\t\ttrusted_ca_cert_file clients.pem\n\
     \t\t}\n\
     \t}\n\
     \trespond \"ok\"";

/// Issue 10: Caddy `client_auth { mode require_and_verify }` (Go's crypto/tls) refuses
/// with a TLS alert (after the client's Finished in TLS 1.3).
#[test]
fn caddy_client_auth_require_and_verify() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Caddy");
    let caddy = caddy_server(sb.dir.path(), CADDY_MTLS_SITE);
    // Go's crypto/tls says bad_certificate both when none is sent and for a foreign one.
    for tls in ["1.3", "1.2"] {
        three_cases(
            &sb,
            "Caddy",
            &caddy,
            Some(tls),
            Refusals {
                required: &["sent Certificate (empty", "alert 42 (bad_certificate)"],
                rejected: &[
                    "sent Certificate (our client certificate)",
                    "alert 42 (bad_certificate)",
                ],
            },
        );
    }
}

/// Issue 10: Node `https.createServer({ requestCert: true, rejectUnauthorized: true })`
/// refuses with a TLS alert (OpenSSL's).
#[test]
fn node_https_request_cert_reject_unauthorized() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Node");
    // As Node's documentation shows it (tls.createServer options).
    let node = node_server(
        sb.dir.path(),
        r#"const https = require('node:https');
const fs = require('node:fs');
const options = {
  key: fs.readFileSync('server.key'),
  cert: fs.readFileSync('server.crt'),
  ca: fs.readFileSync('clients.pem'),
  requestCert: true,
  rejectUnauthorized: true,
};
https
  .createServer(options, (req, res) => {
    res.end(`hello ${req.socket.getPeerCertificate().subject.CN}\n`);
  })
  .listen(Number(process.argv[2]), '127.0.0.1', () => console.log('listening'));
"#,
    );
    // OpenSSL refuses a missing certificate with an alert; Node closes the socket on a
    // foreign one (`rejectUnauthorized`) without one.
    three_cases(
        &sb,
        "Node",
        &node,
        Some("1.3"),
        Refusals {
            required: &["alert 116 (certificate_required)"],
            rejected: &[
                "sent Certificate (our client certificate)",
                "the server closed the connection (FIN), without an alert",
            ],
        },
    );
    three_cases(
        &sb,
        "Node",
        &node,
        Some("1.2"),
        Refusals {
            required: &["alert 40 (handshake_failure)"],
            rejected: &[
                "sent Certificate (our client certificate)",
                "the server closed the connection (FIN), without an alert",
            ],
        },
    );
}

/// Caddy's client-certificate settings belong to its site's name: reached by IP address
/// (no SNI), it completes the handshake without asking for a certificate and refuses the
/// request (421 Misdirected Request), with or without a good one. The doctor must not call
/// that healthy: the server wants the name (`servername`), and then a certificate.
#[test]
fn caddy_by_ip_address_wants_the_name() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Caddy");
    let caddy = caddy_server(sb.dir.path(), CADDY_MTLS_SITE);
    let target = format!("127.0.0.1:{}", caddy.port);
    for (cert, then) in [
        (None, "client-cert-required"),
        (Some("mallory"), "client-cert-rejected"),
        (Some("alice"), ""),
    ] {
        let files = cert.map(|s| (format!("{s}.crt"), format!("{s}.key")));
        let mut args = vec![target.as_str(), "--ca", "ca.pem"];
        if let Some((crt, key)) = &files {
            args.extend(["--cert", crt, "--key", key]);
        }
        let run = doctor(&sb, &args);
        assert_secure("Caddy by IP", &run.json.to_string());
        expect(&run, 1, "sni-required");
        let finding = run.finding("sni-required");
        let summary = finding["summary"].as_str().unwrap();
        assert!(summary.contains("\"localhost\""), "{summary}");
        let evidence = finding["evidence"].to_string();
        assert!(
            evidence.contains("acceptable CAs: CN=Caddy Clients CA"),
            "with the name, the server asks for a certificate: {evidence}"
        );
        // With the name, what comes next is found too.
        if !then.is_empty() {
            run.finding(then);
        }
    }
}

/// What a server with optional client certificates does with a foreign one.
enum Foreign<'a> {
    /// Refused (`client-cert-rejected`), with these words in the evidence.
    Rejected(&'a [&'a str]),
    /// Let through unverified (`client-cert-unverified`, a warning, exit 0).
    LetThrough,
}

/// A server that asks for a client certificate without requiring one (set up by
/// [`mtls_files`] with `server_name`), reached as `https://localhost:PORT/app` with its
/// root pinned: without a certificate it answers, and the doctor says the certificate is
/// optional there (a warning, exit 0) with the server's answer as evidence (`answer`); a
/// foreign certificate is refused or let through; a good one is simply healthy.
fn optional_cases(
    sb: &Sandbox,
    server_name: &str,
    server: &Daemon,
    tls: Option<&str>,
    answer: &str,
    foreign: Foreign<'_>,
) {
    let clients_ca = format!("CN={server_name} Clients CA");
    let (name, run_with) = prober(sb, server_name, server, tls);
    let fail = |case: &str, run: &Run| -> String {
        format!(
            "{name}, {case}: exit {} and {}:\n{:#}\n--- {name}'s log\n{}",
            run.code,
            run.cause(),
            run.json,
            server.log()
        )
    };

    // No certificate: healthy, and the doctor says the certificate was optional.
    let run = run_with(None);
    assert!(
        run.code == 0 && run.cause() == "ok",
        "{}",
        fail("no certificate", &run)
    );
    let finding = run
        .finding_opt("client-cert-optional")
        .unwrap_or_else(|| panic!("{}", fail("no certificate", &run)));
    assert_eq!(finding["severity"], "warning");
    let evidence = finding["evidence"].to_string();
    for words in [answer, clients_ca.as_str(), "without a client certificate"] {
        assert!(
            evidence.contains(words),
            "{name} without a certificate: the evidence lacks {words:?}: {evidence}"
        );
    }
    assert!(
        finding["fixes"].to_string().contains("doctor audit"),
        "{name}: {finding:#}"
    );

    // A certificate from "Stranger CA".
    let run = run_with(Some("mallory"));
    match foreign {
        Foreign::Rejected(words) => {
            assert!(
                run.code == 1 && run.cause() == "client-cert-rejected",
                "{}",
                fail("foreign certificate", &run)
            );
            let evidence = run.finding("client-cert-rejected")["evidence"].to_string();
            for w in words {
                assert!(
                    evidence.contains(w),
                    "{name}: the evidence lacks {w:?}: {evidence}"
                );
            }
        }
        Foreign::LetThrough => {
            assert!(
                run.code == 0 && run.cause() == "ok",
                "{}",
                fail("foreign certificate", &run)
            );
            let finding = run.finding("client-cert-unverified");
            let summary = finding["summary"].as_str().unwrap();
            assert!(
                summary.contains("CN=Stranger CA") && summary.contains(&clients_ca),
                "{name}: {summary}"
            );
            assert!(run.finding_opt("client-cert-optional").is_none());
        }
    }

    // A good certificate: healthy, nothing to warn about.
    let run = run_with(Some("alice"));
    assert!(
        run.code == 0
            && run.cause() == "ok"
            && run.finding_opt("client-cert-optional").is_none()
            && run.finding_opt("client-cert-unverified").is_none(),
        "{}",
        fail("good certificate", &run)
    );
}

/// An nginx `server {}` with client certificates in `mode` (`optional`,
/// `optional_no_ca`), the clients CA sent in the CertificateRequest, and a page that says
/// what nginx made of the certificate.
fn nginx_with(sb: &Sandbox, mode: &str) -> Daemon {
    nginx_server(
        sb.dir.path(),
        &format!(
            "    server_name localhost;\n\
             \x20   ssl_certificate server.crt;\n\
             \x20   ssl_certificate_key server.key;\n\
             \x20   ssl_client_certificate clients.pem;\n\
             \x20   ssl_verify_client {mode};\n\
             \x20   location / {{ return 200 \"verify $ssl_client_verify\\n\"; }}"
        ),
    )
}

/// Issue 10: nginx `ssl_verify_client optional` answers without a certificate
/// (`$ssl_client_verify` is NONE) and refuses a foreign one in HTTP, as `on` does.
#[test]
fn nginx_ssl_verify_client_optional() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Nginx");
    let nginx = nginx_with(&sb, "optional");
    optional_cases(
        &sb,
        "Nginx",
        &nginx,
        None,
        "verify NONE",
        Foreign::Rejected(&["400", "The SSL certificate error"]),
    );
}

/// Issue 10: nginx `ssl_verify_client optional_no_ca` asks for a certificate and verifies
/// none: a foreign one gets the page (`$ssl_client_verify` is FAILED:…).
#[test]
fn nginx_ssl_verify_client_optional_no_ca() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Nginx");
    let nginx = nginx_with(&sb, "optional_no_ca");
    optional_cases(
        &sb,
        "Nginx",
        &nginx,
        None,
        "verify NONE",
        Foreign::LetThrough,
    );
}

/// Issue 10: HAProxy `verify optional` answers without a certificate and refuses a
/// foreign one in the handshake (OpenSSL's alert 48).
#[test]
fn haproxy_verify_optional() {
    let sb = Sandbox::new();
    mtls_files(&sb, "HAProxy");
    let haproxy = haproxy_server(
        sb.dir.path(),
        "ssl crt server.pem ca-file clients.pem verify optional",
        "    http-request return status 200 content-type text/plain string \"ok\\n\"",
    );
    for tls in ["1.3", "1.2"] {
        optional_cases(
            &sb,
            "HAProxy",
            &haproxy,
            Some(tls),
            "HTTP/1.1 200",
            Foreign::Rejected(&[
                "sent Certificate (our client certificate)",
                "alert 48 (unknown_ca)",
            ]),
        );
    }
}

/// Issue 10: Caddy `client_auth { mode verify_if_given }` (Caddy 2.6's name for "verify
/// a certificate when one is sent") answers without one and refuses a foreign one with
/// Go's alert 42.
#[test]
fn caddy_client_auth_verify_if_given() {
    let sb = Sandbox::new();
    mtls_files(&sb, "Caddy");
    let caddy = caddy_server(
        sb.dir.path(),
        &CADDY_MTLS_SITE.replace("require_and_verify", "verify_if_given"),
    );
    for tls in ["1.3", "1.2"] {
        optional_cases(
            &sb,
            "Caddy",
            &caddy,
            Some(tls),
            "HTTP/1.1 200",
            Foreign::Rejected(&[
                "sent Certificate (our client certificate)",
                "alert 42 (bad_certificate)",
            ]),
        );
    }
}

//! One test server per cause in DOCTOR.md's table, the real `portcullis doctor --json`
//! against it, and the cause slug asserted. For causes with a client-side fix, the Node.js
//! snippet the doctor printed runs with the real `node` against the same server and must
//! connect with verification on: the fix is proven, not just printed.

// Integration tests: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod doctor_support;

use common::Sandbox;
use doctor_support::*;
use portcullis_pki::Kind;

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn healthy_server_is_ok() {
    let sb = Sandbox::new();
    let ca = root("Healthy Root");
    let leaf = server_leaf(&ca);
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server::new(&leaf).start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 0, "ok");
    assert_eq!(
        run.json["findings"].as_array().unwrap().len(),
        0,
        "{:#}",
        run.json
    );
    // Short text output: verdict first, exit 0.
    let out = sb.run(&["doctor", &addr(port), "--ca", "ca.pem"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("healthy"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colors without a terminal: {text}"
    );
}

#[test]
fn tcp_refused() {
    let sb = Sandbox::new();
    let run = doctor(&sb, &[&addr(closed_port())]);
    expect(&run, 1, "tcp-refused");
}

/// A listener whose accept queue is full drops new SYNs, as a firewall would: no SYN-ACK.
#[test]
fn tcp_timeout_when_no_syn_ack_comes_back() {
    let sb = Sandbox::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Backlog 0: the kernel queues one connection; nobody accepts it.
    let listener = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        socket.listen(0).unwrap()
    });
    let port = listener.local_addr().unwrap().port();
    let _queued = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let run = doctor(&sb, &[&addr(port), "--timeout", "1"]);
    expect(&run, 1, "tcp-timeout");
    drop(listener);
}

#[test]
fn plaintext_service_is_not_tls() {
    let sb = Sandbox::new();
    let port = plaintext_server(b"SSH-2.0-OpenSSH_9.2p1\r\n");
    let run = doctor(&sb, &[&addr(port)]);
    expect(&run, 1, "not-tls");
    let summary = run.finding("not-tls")["summary"].as_str().unwrap();
    assert!(summary.contains("SSH-2.0-OpenSSH_9.2p1"), "{summary}");
    assert!(summary.contains("looks like SSH"), "{summary}");

    // An HTTP server answers the ClientHello with an HTTP error.
    let port = hello_then(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let run = doctor(&sb, &[&addr(port)]);
    expect(&run, 1, "not-tls");
    let summary = run.finding("not-tls")["summary"].as_str().unwrap();
    assert!(summary.contains("looks like HTTP"), "{summary}");
}

#[test]
fn self_signed_and_the_pinning_fix_works_in_node() {
    let sb = Sandbox::new();
    let leaf = make(Make {
        sans: vec![dns("localhost"), ip("127.0.0.1")],
        ..Make::new(Kind::Server, "localhost")
    });
    let port = Server::new(&leaf).start();
    let run = doctor(&sb, &[&addr(port)]);
    expect(&run, 1, "self-signed");
    // The fix pins the certificate, obtained out-of-band: here, the file we made.
    std::fs::write(sb.path("server-cert.pem"), leaf.pem()).unwrap();
    node_connects(&sb, &run.node_fix("self-signed"));
}

#[test]
fn untrusted_root_and_the_ca_fix_works_in_node() {
    let sb = Sandbox::new();
    let ca = root("Private Root");
    let inter = intermediate("Private Issuing", &ca);
    let leaf = server_leaf(&inter);
    let port = Server {
        chain: vec![&leaf, &inter],
        ..Server::new(&leaf)
    }
    .start();
    let run = doctor(&sb, &[&addr(port)]);
    expect(&run, 1, "untrusted-root");
    let summary = run.finding("untrusted-root")["summary"].as_str().unwrap();
    assert!(summary.contains("Private Root"), "{summary}");
    std::fs::write(sb.path("root-ca.pem"), ca.pem()).unwrap();
    node_connects(&sb, &run.node_fix("untrusted-root"));
}

/// What `portcullis serve` presents with its development CA: a leaf signed directly by a
/// private root, and no root in the chain (correctly). Looks like a missing intermediate
/// on the wire; the issuer's name says it is a root, and trusting it is the fix.
#[test]
fn leaf_from_a_private_root_is_an_untrusted_root_not_a_server_mistake() {
    let sb = Sandbox::new();
    let ca = root("Portcullis Dev Root CA");
    let leaf = server_leaf(&ca);
    let port = Server::new(&leaf).start(); // leaf only, as it should be
    let run = doctor(&sb, &[&addr(port)]);
    expect(&run, 1, "untrusted-root");
    let summary = run.finding("untrusted-root")["summary"].as_str().unwrap();
    assert!(summary.contains("Portcullis Dev Root CA"), "{summary}");
    std::fs::write(sb.path("root-ca.pem"), ca.pem()).unwrap();
    node_connects(&sb, &run.node_fix("untrusted-root"));
}

#[test]
fn missing_intermediate() {
    let sb = Sandbox::new();
    let ca = root("Root With Intermediate");
    let inter = intermediate("Forgotten Intermediate", &ca);
    let leaf = server_leaf(&inter);
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server::new(&leaf).start(); // leaf only
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 1, "missing-intermediate");
    let summary = run.finding("missing-intermediate")["summary"]
        .as_str()
        .unwrap();
    assert!(summary.contains("Forgotten Intermediate"), "{summary}");
}

#[test]
fn pinned_ca_mismatch_and_pinning_the_real_ca_works_in_node() {
    let sb = Sandbox::new();
    let real = root("Real Root");
    let inter = intermediate("Real Issuing", &real);
    let leaf = server_leaf(&inter);
    let other = root("Some Other Root");
    std::fs::write(sb.path("mine.pem"), other.pem()).unwrap();
    let port = Server {
        chain: vec![&leaf, &inter],
        ..Server::new(&leaf)
    }
    .start();
    let run = doctor(&sb, &[&addr(port), "--ca", "mine.pem"]);
    expect(&run, 1, "pinned-ca-mismatch");
    let summary = run.finding("pinned-ca-mismatch")["summary"]
        .as_str()
        .unwrap();
    assert!(summary.contains("Real Root"), "{summary}");
    std::fs::write(sb.path("server-ca.pem"), real.pem()).unwrap();
    node_connects(&sb, &run.node_fix("pinned-ca-mismatch"));
}

/// Seed 1: a certificate for `mysecretdomain.local`, reached at 127.0.0.1.
#[test]
fn hostname_mismatch_and_the_servername_fix_works_in_node() {
    let sb = Sandbox::new();
    let ca = root("Seed Root");
    let leaf = make(Make {
        sans: vec![dns("mysecretdomain.local")],
        issuer: Some(&ca),
        ..Make::new(Kind::Server, "mysecretdomain.local")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server::new(&leaf).start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 1, "hostname-mismatch");
    let fix = run.node_fix("hostname-mismatch");
    assert!(fix.contains("servername: 'mysecretdomain.local'"), "{fix}");
    node_connects(&sb, &fix);

    // The diagnosis is a pure function of the observations: replayed from the JSON, with
    // no server, it reaches the same verdict.
    let saved: portcullis_doctor::Observations =
        serde_json::from_value(run.json["observations"].clone()).unwrap();
    let replayed = portcullis_doctor::Report::from_observations(saved, 0);
    assert_eq!(replayed.cause, "hostname-mismatch");
    assert_eq!(
        serde_json::to_value(&replayed.findings).unwrap(),
        run.json["findings"]
    );
}

#[test]
fn name_only_in_common_name() {
    let sb = Sandbox::new();
    let ca = root("CN Root");
    let leaf = make(Make {
        issuer: Some(&ca),
        ..Make::new(Kind::Server, "localhost")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server::new(&leaf).start();
    let run = doctor(&sb, &[&format!("localhost:{port}"), "--ca", "ca.pem"]);
    expect(&run, 1, "cn-only-no-san");
}

#[test]
fn expired_certificate() {
    let sb = Sandbox::new();
    let ca = root("Dates Root");
    let leaf = make(Make {
        sans: vec![dns("localhost"), ip("127.0.0.1")],
        issuer: Some(&ca),
        from_days: -30,
        to_days: -2,
        ..Make::new(Kind::Server, "localhost")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server::new(&leaf).start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 1, "expired");
}

#[test]
fn not_yet_valid_certificate() {
    let sb = Sandbox::new();
    let ca = root("Dates Root");
    let leaf = make(Make {
        sans: vec![dns("localhost"), ip("127.0.0.1")],
        issuer: Some(&ca),
        from_days: 3,
        to_days: 30,
        ..Make::new(Kind::Server, "localhost")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server::new(&leaf).start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 1, "not-yet-valid");
}

#[test]
fn client_certificate_required_and_the_cert_fix_works_in_node() {
    let sb = Sandbox::new();
    let ca = root("Server Root");
    let leaf = server_leaf(&ca);
    let clients = root("Clients CA");
    let alice = make(Make {
        issuer: Some(&clients),
        ..Make::new(Kind::Client, "alice")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server {
        client_ca: Some(&clients),
        ..Server::new(&leaf)
    }
    .start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 1, "client-cert-required");
    let evidence = run.finding("client-cert-required")["evidence"].to_string();
    assert!(
        evidence.contains("Clients CA"),
        "accepted CA names: {evidence}"
    );
    std::fs::write(sb.path("client.crt"), alice.pem()).unwrap();
    // The fixes name the chain file (here the certificate alone: a root issued it).
    std::fs::write(sb.path("client.chain.pem"), alice.pem()).unwrap();
    std::fs::write(sb.path("client.key"), alice.key_pem()).unwrap();
    node_connects(&sb, &run.node_fix("client-cert-required"));

    // With the right certificate the doctor says the connection is healthy.
    let run = doctor(
        &sb,
        &[
            &addr(port),
            "--ca",
            "ca.pem",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
        ],
    );
    expect(&run, 0, "ok");

    // The same identity from a PKCS#12 bundle; a wrong password is a local finding.
    let pass = portcullis_pki::Passphrase::new("bundle pw".into(), "test").unwrap();
    let p12 = portcullis_pki::p12::bundle(
        &alice.key,
        std::slice::from_ref(&alice.der),
        "alice",
        &pass,
        portcullis_pki::P12Format::Modern,
    )
    .unwrap();
    std::fs::write(sb.path("alice.p12"), p12).unwrap();
    std::fs::write(sb.path("p12.pw"), "bundle pw\n").unwrap();
    std::fs::write(sb.path("bad.pw"), "not it\n").unwrap();
    let target = addr(port);
    for (pw, code, cause) in [("p12.pw", 0, "ok"), ("bad.pw", 1, "client-key-passphrase")] {
        let run = doctor(
            &sb,
            &[
                &target,
                "--ca",
                "ca.pem",
                "--p12",
                "alice.p12",
                "--p12-password-file",
                pw,
            ],
        );
        expect(&run, code, cause);
    }
}

#[test]
fn client_certificate_rejected() {
    let sb = Sandbox::new();
    let ca = root("Server Root");
    let leaf = server_leaf(&ca);
    let clients = root("Clients CA");
    let stranger_ca = root("Stranger CA");
    let mallory = make(Make {
        issuer: Some(&stranger_ca),
        ..Make::new(Kind::Client, "mallory")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(sb.path("m.crt"), mallory.pem()).unwrap();
    std::fs::write(sb.path("m.key"), mallory.key_pem()).unwrap();
    let port = Server {
        client_ca: Some(&clients),
        ..Server::new(&leaf)
    }
    .start();
    let run = doctor(
        &sb,
        &[
            &addr(port),
            "--ca",
            "ca.pem",
            "--cert",
            "m.crt",
            "--key",
            "m.key",
        ],
    );
    expect(&run, 1, "client-cert-rejected");
    let summary = run.finding("client-cert-rejected")["summary"]
        .as_str()
        .unwrap();
    assert!(
        summary.contains("Stranger CA") && summary.contains("Clients CA"),
        "{summary}"
    );
}

/// Issue 10: against a server that requires a client certificate, every profile fails
/// without one; the summary named "trust store: works pinned trust store" because the
/// pinned store trusts the chain. Only a difference that flips the outcome may be named.
#[test]
fn compare_names_no_difference_when_every_profile_fails() {
    let sb = Sandbox::new();
    let ca = root("Compare Server Root");
    let leaf = server_leaf(&ca);
    let clients = root("Compare Clients CA");
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server {
        client_ca: Some(&clients),
        ..Server::new(&leaf)
    }
    .start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem", "--compare"]);
    expect(&run, 1, "client-cert-required");
    let compare = &run.json["compare"];
    assert!(
        compare["difference"].is_null(),
        "no profile works, yet a difference is named: {compare:#}"
    );
    let handshakes_ok = compare["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["difference"] != "trust store")
        .any(|r| r["ok"] == true);
    assert!(!handshakes_ok, "{compare:#}");
}

#[test]
fn sni_required_and_the_servername_fix_works_in_node() {
    let sb = Sandbox::new();
    let ca = root("SNI Root");
    let leaf = make(Make {
        sans: vec![dns("localhost")],
        issuer: Some(&ca),
        ..Make::new(Kind::Server, "localhost")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server {
        sni_only: Some("localhost"),
        ..Server::new(&leaf)
    }
    .start();
    // By IP address: no SNI is sent, and the server hangs up.
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 1, "sni-required");
    let fix = run.node_fix("sni-required");
    assert!(fix.contains("servername: 'localhost'"), "{fix}");
    node_connects(&sb, &fix);

    // With the name it works, and --compare names SNI as the difference.
    let run = doctor(
        &sb,
        &[
            &addr(port),
            "--ca",
            "ca.pem",
            "--servername",
            "localhost",
            "--compare",
        ],
    );
    expect(&run, 0, "ok");
    let difference = run.json["compare"]["difference"].as_str().unwrap_or("");
    assert!(difference.starts_with("SNI"), "{:#}", run.json["compare"]);
    assert_eq!(run.finding("sni-required")["severity"], "warning");
}

#[test]
fn compare_finds_sni_for_a_failing_connection() {
    let sb = Sandbox::new();
    let ca = root("SNI Root");
    let leaf = server_leaf(&ca);
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server {
        sni_only: Some("localhost"),
        ..Server::new(&leaf)
    }
    .start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem", "--compare"]);
    expect(&run, 1, "sni-required");
    let difference = run.json["compare"]["difference"].as_str().unwrap_or("");
    assert!(difference.starts_with("SNI"), "{:#}", run.json["compare"]);
}

#[test]
fn silent_server_is_a_handshake_timeout() {
    let sb = Sandbox::new();
    let port = silent_server();
    let run = doctor(&sb, &[&addr(port), "--timeout", "1"]);
    expect(&run, 1, "handshake-timeout");
}

#[test]
fn close_after_client_hello() {
    let sb = Sandbox::new();
    let port = hello_then(b"");
    let run = doctor(&sb, &[&format!("localhost:{port}")]);
    expect(&run, 1, "reset-after-client-hello");
}

#[test]
fn unrecognized_name_alert() {
    let sb = Sandbox::new();
    // A fatal unrecognized_name (112) alert in a TLS 1.2 record.
    let port = hello_then(&[21, 3, 3, 0, 2, 2, 112]);
    let run = doctor(&sb, &[&format!("localhost:{port}")]);
    expect(&run, 1, "sni-unrecognized");
}

#[test]
fn no_common_application_protocol() {
    let sb = Sandbox::new();
    let ca = root("ALPN Root");
    let leaf = server_leaf(&ca);
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server {
        alpn: vec!["h2"],
        ..Server::new(&leaf)
    }
    .start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem", "--alpn", "http/1.1"]);
    expect(&run, 1, "alpn-mismatch");
}

#[test]
fn client_certificate_as_server_certificate_is_wrong_purpose() {
    let sb = Sandbox::new();
    let ca = root("Purpose Root");
    let leaf = make(Make {
        sans: vec![dns("localhost"), ip("127.0.0.1")],
        issuer: Some(&ca),
        ..Make::new(Kind::Client, "localhost")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server::new(&leaf).start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 1, "wrong-purpose");
}

#[test]
fn misordered_chain_is_a_warning() {
    let sb = Sandbox::new();
    let ca = root("Order Root");
    let inter = intermediate("Order Issuing", &ca);
    let leaf = server_leaf(&inter);
    let stray = root("Stray Root");
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server {
        chain: vec![&leaf, &stray, &inter],
        ..Server::new(&leaf)
    }
    .start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 0, "ok");
    assert_eq!(run.finding("chain-misordered")["severity"], "warning");
}

/// The curl, openssl s_client and Python fixes run too, for the seed case (an IP address
/// and a certificate for `mysecretdomain.local`) and for a required client certificate.
#[test]
fn fixes_work_in_curl_openssl_and_python() {
    let sb = Sandbox::new();
    let ca = root("Interop Root");
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();

    let named = make(Make {
        sans: vec![dns("mysecretdomain.local")],
        issuer: Some(&ca),
        ..Make::new(Kind::Server, "mysecretdomain.local")
    });
    let port = Server::new(&named).start();
    let run = doctor(&sb, &[&addr(port), "--ca", "ca.pem"]);
    expect(&run, 1, "hostname-mismatch");

    let leaf = server_leaf(&ca);
    let clients = root("Interop Clients");
    let alice = make(Make {
        issuer: Some(&clients),
        ..Make::new(Kind::Client, "alice")
    });
    std::fs::write(sb.path("client.crt"), alice.pem()).unwrap();
    // The fixes name the chain file (here the certificate alone: a root issued it).
    std::fs::write(sb.path("client.chain.pem"), alice.pem()).unwrap();
    std::fs::write(sb.path("client.key"), alice.key_pem()).unwrap();
    let mtls = Server {
        client_ca: Some(&clients),
        ..Server::new(&leaf)
    }
    .start();
    let run2 = doctor(&sb, &[&format!("localhost:{mtls}"), "--ca", "ca.pem"]);
    expect(&run2, 1, "client-cert-required");

    for (run, cause) in [(&run, "hostname-mismatch"), (&run2, "client-cert-required")] {
        let curl = fix_for(run, cause, "curl");
        let out = shell_fix(&sb, &format!("{curl} --silent --show-error"));
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout) == "ok\n",
            "curl fix for {cause} failed: {curl}\n{}",
            common::text(&out)
        );

        let openssl = fix_for(run, cause, "openssl");
        let out = shell_fix(&sb, &openssl);
        let text = common::text(&out);
        assert!(
            out.status.success() && text.contains("Verify return code: 0 (ok)"),
            "openssl fix for {cause} failed: {openssl}\n{text}"
        );

        let python = fix_for(run, cause, "python");
        std::fs::write(sb.path("fix.py"), &python).unwrap();
        let out = sb.tool("timeout", &["10", "python3", "fix.py"]);
        assert!(
            out.status.success(),
            "Python fix for {cause} failed:\n{python}\n{}",
            common::text(&out)
        );
    }
}

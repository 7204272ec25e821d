//! The doctor's command line: `explain`, local causes found before connecting, DNS
//! failures, usage errors (exit 2), and the rule that no output or doc ever suggests
//! turning certificate verification off.

// Integration tests: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod doctor_support;

use common::Sandbox;
use doctor_support::*;
use portcullis_pki::Kind;

#[test]
fn explain_maps_errors_from_each_ecosystem() {
    let sb = Sandbox::new();
    for (text, cause) in [
        (
            "Error: unable to verify the first certificate",
            "missing-intermediate",
        ),
        (
            "javax.net.ssl.SSLHandshakeException: PKIX path building failed: sun.security.provider.certpath.SunCertPathBuilderException: unable to find valid certification path to requested target",
            "untrusted-root",
        ),
        (
            "curl: (35) error:0A00010B:SSL routines::wrong version number",
            "not-tls",
        ),
        ("ERR_TLS_CERT_ALTNAME_INVALID", "hostname-mismatch"),
        ("invalid peer certificate: UnknownIssuer", "untrusted-root"),
        (
            "x509: certificate relies on legacy Common Name field",
            "cn-only-no-san",
        ),
        (
            "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)",
            "self-signed",
        ),
        (
            "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
            "client-cert-required",
        ),
        // The Express seed's comments: a Node server with requestCert and
        // rejectUnauthorized aborting the handshake of a client without a certificate.
        (
            "curl: (35) Unknown SSL protocol error in connection to localhost:8443",
            "client-cert-required",
        ),
    ] {
        let out = sb.run(&["doctor", "explain", text, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{text}: {}", common::text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["cause"], cause, "{text}");
        assert_secure("explain", &common::text(&out));
    }
    // Text output for people, and an unknown message.
    let out = sb.run(&["doctor", "explain", "DEPTH_ZERO_SELF_SIGNED_CERT"]);
    assert!(
        common::text(&out).starts_with("self-signed"),
        "{}",
        common::text(&out)
    );
    let out = sb.run(&["doctor", "explain", "the printer is on fire"]);
    assert_eq!(out.status.code(), Some(1));
    // With --json, no match has the keys of a match (null), so scripts read one shape.
    let keys = |args: &[&str]| {
        let out = sb.run(args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (keys, v)
    };
    let (found, _) = keys(&["doctor", "explain", "--json", "DEPTH_ZERO_SELF_SIGNED_CERT"]);
    let (unknown, v) = keys(&["doctor", "explain", "--json", "the printer is on fire"]);
    assert_eq!(found, unknown);
    assert!(v["cause"].is_null() && v["fix"].is_null(), "{v:#}");
    assert_eq!(v["input"], "the printer is on fire");

    // Asked about switching verification off, it explains pinning instead.
    let out = sb.run(&[
        "doctor",
        "explain",
        "NODE_TLS_REJECT_UNAUTHORIZED=0",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["cause"], "verification-disabled");
    assert!(
        json["fix"].as_str().unwrap().contains("--cacert ca.pem"),
        "{json:#}"
    );
}

#[test]
fn dns_failure() {
    let sb = Sandbox::new();
    let run = doctor(&sb, &["no-such-host.invalid:443", "--timeout", "3"]);
    expect(&run, 1, "dns-failure");
}

#[test]
fn client_key_that_does_not_match_the_certificate() {
    let sb = Sandbox::new();
    let ca = root("Clients");
    let alice = make(Make {
        issuer: Some(&ca),
        ..Make::new(Kind::Client, "alice")
    });
    let bob = make(Make {
        issuer: Some(&ca),
        ..Make::new(Kind::Client, "bob")
    });
    std::fs::write(sb.path("alice.crt"), alice.pem()).unwrap();
    std::fs::write(sb.path("bob.key"), bob.key_pem()).unwrap();
    let run = doctor(
        &sb,
        &[
            &format!("127.0.0.1:{}", closed_port()),
            "--cert",
            "alice.crt",
            "--key",
            "bob.key",
        ],
    );
    expect(&run, 1, "client-key-mismatch");
}

#[test]
fn encrypted_client_key_without_passphrase() {
    let sb = Sandbox::new();
    let ca = root("Clients");
    let alice = make(Make {
        issuer: Some(&ca),
        ..Make::new(Kind::Client, "alice")
    });
    let pass = portcullis_pki::Passphrase::new("right one".into(), "test").unwrap();
    let pem = portcullis_pki::keys::to_pem(&alice.key, Some(&pass)).unwrap();
    std::fs::write(sb.path("alice.crt"), alice.pem()).unwrap();
    std::fs::write(sb.path("alice.key"), pem.as_bytes()).unwrap();
    std::fs::write(sb.path("wrong.pass"), "wrong one\n").unwrap();
    let target = format!("127.0.0.1:{}", closed_port());
    let base = ["--cert", "alice.crt", "--key", "alice.key"];
    let mut args = vec![target.as_str()];
    args.extend(base);
    let run = doctor(&sb, &args);
    expect(&run, 1, "client-key-passphrase");
    args.extend(["--key-passphrase-file", "wrong.pass"]);
    let run = doctor(&sb, &args);
    expect(&run, 1, "client-key-passphrase");
    // The right passphrase gets past the key: the next problem is the closed port.
    std::fs::write(sb.path("right.pass"), "right one\n").unwrap();
    let n = args.len();
    args[n - 1] = "right.pass";
    let run = doctor(&sb, &args);
    expect(&run, 1, "tcp-refused");
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    for args in [
        vec!["doctor"],
        vec!["doctor", "http://example.test/"],
        vec!["doctor", "localhost:99999"],
        vec!["doctor", "localhost:1", "--tls", "1.1"],
        vec!["doctor", "localhost:1", "--ca", "missing.pem"],
        vec!["doctor", "localhost:1", "--cert", "c.pem"],
        vec!["doctor", "explain"],
    ] {
        sb.fails(&args);
    }
}

#[test]
fn no_output_or_doc_suggests_disabling_verification() {
    // The user guide.
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/doctor.md"),
    )
    .unwrap();
    assert_secure("docs/doctor.md", &guide);
    assert!(guide.contains("self-signed"), "the guide lists the causes");

    // A failing run, verbose (fixes for every ecosystem) and JSON.
    let sb = Sandbox::new();
    let leaf = make(Make {
        sans: vec![dns("localhost")],
        ..Make::new(Kind::Server, "localhost")
    });
    let port = Server::new(&leaf).start();
    let target = format!("localhost:{port}");
    let out = sb.run(&["doctor", &target, "-v"]);
    assert_eq!(out.status.code(), Some(1));
    let text = common::text(&out);
    assert!(
        text.contains("[curl]") && text.contains("[python]"),
        "{text}"
    );
    assert_secure("doctor -v", &text);
    let run = doctor(&sb, &[&target]);
    assert_secure("doctor --json", &run.json.to_string());

    // Explaining the insecure advice itself leads to the secure fix.
    let out = sb.run(&["doctor", "explain", "self signed certificate"]);
    assert_secure("explain", &common::text(&out));
}

/// The recording verifier accepts any certificate: it must stay private to the doctor, and
/// the gate must not depend on the doctor at all.
#[test]
fn the_recording_verifier_is_out_of_the_gates_reach() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lib = std::fs::read_to_string(root.join("crates/portcullis-doctor/src/lib.rs")).unwrap();
    assert!(
        lib.contains("\nmod danger;"),
        "danger must be a private module"
    );
    assert!(!lib.contains("pub mod danger") && !lib.contains("pub use danger"));
    let gate = root.join("crates/portcullis-gate/Cargo.toml");
    if let Ok(manifest) = std::fs::read_to_string(gate) {
        assert!(
            !manifest.contains("portcullis-doctor"),
            "the gate must not depend on the doctor"
        );
    }
}

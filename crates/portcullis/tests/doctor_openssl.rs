//! Causes rustls will not serve, produced with the real `openssl s_server`: a TLS 1.0-only
//! server, legacy cipher suites only, a 1024-bit RSA key and a SHA-1 signature (with the
//! security level lowered on the *server*, never on the doctor).

// Integration tests: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod doctor_support;

use common::Sandbox;
use doctor_support::*;

/// Runs openssl in the sandbox and asserts it worked.
fn openssl(sb: &Sandbox, args: &[&str]) {
    let out = sb.tool("openssl", args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        common::text(&out)
    );
}

/// A CA (ca.pem, ca.key) from the PKI crate, and a leaf for localhost signed by OpenSSL
/// with the given key and digest: leaf.crt, leaf.key.
fn openssl_leaf(sb: &Sandbox, newkey: &str, digest: &str) {
    let ca = root("OpenSSL Test Root");
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(sb.path("ca.key"), ca.key_pem()).unwrap();
    std::fs::write(
        sb.path("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        sb,
        &[
            "req",
            "-new",
            "-newkey",
            newkey,
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        sb,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            digest,
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.crt",
        ],
    );
}

#[test]
fn tls_1_0_only_server_is_a_protocol_version_mismatch() {
    let sb = Sandbox::new();
    openssl_leaf(&sb, "rsa:2048", "-sha256");
    let server = openssl_server(
        sb.dir.path(),
        &[
            "-cert",
            "leaf.crt",
            "-key",
            "leaf.key",
            "-tls1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
    );
    let run = doctor(
        &sb,
        &[&format!("localhost:{}", server.port), "--ca", "ca.pem"],
    );
    expect(&run, 1, "protocol-version-mismatch");
    let summary = run.finding("protocol-version-mismatch")["summary"]
        .as_str()
        .unwrap();
    assert!(summary.contains("TLS 1.0"), "{summary}");
}

#[test]
fn tls_1_3_only_server_and_a_tls_1_2_client() {
    let sb = Sandbox::new();
    openssl_leaf(&sb, "rsa:2048", "-sha256");
    let server = openssl_server(
        sb.dir.path(),
        &["-cert", "leaf.crt", "-key", "leaf.key", "-tls1_3"],
    );
    let target = format!("localhost:{}", server.port);
    let run = doctor(&sb, &[&target, "--ca", "ca.pem", "--tls", "1.2"]);
    expect(&run, 1, "protocol-version-mismatch");
    let summary = run.finding("protocol-version-mismatch")["summary"]
        .as_str()
        .unwrap();
    assert!(summary.contains("TLS 1.3"), "{summary}");
    // Without the restriction the same server is healthy.
    let run = doctor(&sb, &[&target, "--ca", "ca.pem"]);
    expect(&run, 0, "ok");
}

#[test]
fn legacy_suites_only_is_no_shared_cipher() {
    let sb = Sandbox::new();
    openssl_leaf(&sb, "rsa:2048", "-sha256");
    let server = openssl_server(
        sb.dir.path(),
        &[
            "-cert",
            "leaf.crt",
            "-key",
            "leaf.key",
            "-no_tls1_3",
            "-cipher",
            "AES128-SHA",
        ],
    );
    let run = doctor(
        &sb,
        &[&format!("localhost:{}", server.port), "--ca", "ca.pem"],
    );
    expect(&run, 1, "no-shared-cipher");
    let summary = run.finding("no-shared-cipher")["summary"].as_str().unwrap();
    assert!(summary.contains("AES128-SHA"), "{summary}");
}

#[test]
fn rsa_1024_key_is_weak() {
    let sb = Sandbox::new();
    openssl_leaf(&sb, "rsa:1024", "-sha256");
    let server = openssl_server(
        sb.dir.path(),
        &[
            "-cert",
            "leaf.crt",
            "-key",
            "leaf.key",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
    );
    let run = doctor(
        &sb,
        &[&format!("127.0.0.1:{}", server.port), "--ca", "ca.pem"],
    );
    expect(&run, 1, "weak-key");
}

#[test]
fn sha1_signature_is_weak() {
    let sb = Sandbox::new();
    openssl_leaf(&sb, "rsa:2048", "-sha1");
    let server = openssl_server(
        sb.dir.path(),
        &[
            "-cert",
            "leaf.crt",
            "-key",
            "leaf.key",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
    );
    let run = doctor(
        &sb,
        &[&format!("127.0.0.1:{}", server.port), "--ca", "ca.pem"],
    );
    expect(&run, 1, "weak-signature");
}

/// The everyday self-signed certificate (`openssl req -x509`, which marks it CA:TRUE),
/// pinned with --ca: healthy for OpenSSL/Node/curl, with a warning for rustls users.
#[test]
fn pinned_openssl_self_signed_certificate_is_healthy_with_a_warning() {
    let sb = Sandbox::new();
    openssl(
        &sb,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-subj",
            "/CN=localhost",
            "-days",
            "30",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
    );
    let server = openssl_server(sb.dir.path(), &["-cert", "self.pem", "-key", "self.key"]);
    let target = format!("localhost:{}", server.port);
    let run = doctor(&sb, &[&target, "--ca", "self.pem"]);
    expect(&run, 0, "ok");
    assert_eq!(run.finding("wrong-purpose")["severity"], "warning");
    // Not pinned, it is simply self-signed.
    let run = doctor(&sb, &[&target]);
    expect(&run, 1, "self-signed");
}

/// Serves `leaf` (with `leaf.key`) and `inter` as its chain, with `openssl s_server`.
fn serve_leaf_and_intermediate(sb: &Sandbox, leaf: &Cert, inter: &Cert) -> OpenSsl {
    std::fs::write(sb.path("leaf.crt"), leaf.pem()).unwrap();
    std::fs::write(sb.path("leaf.key"), leaf.key_pem()).unwrap();
    std::fs::write(sb.path("inter.pem"), inter.pem()).unwrap();
    openssl_server(
        sb.dir.path(),
        &[
            "-cert",
            "leaf.crt",
            "-key",
            "leaf.key",
            "-cert_chain",
            "inter.pem",
        ],
    )
}

/// Issue 10: an old leaf served with a freshly issued intermediate (or a leaf dated in
/// the future under an intermediate that ends before it starts). No instant lies within
/// every certificate's validity; with the right --ca the dates are the finding, never a
/// trust problem ("the chain leads to the root CN=X, not to your --ca (your --ca: CN=X)").
#[test]
fn dates_that_never_overlap_are_expired_or_not_yet_valid_not_a_pinned_ca_mismatch() {
    use portcullis_pki::Kind;
    let sb = Sandbox::new();
    let ca = root("Overlap Root");
    let other = root("Overlap Other Root");
    // Same name as the real root, another key: names alone must not make a path.
    let twin = root("Overlap Root");
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(sb.path("other.pem"), other.pem()).unwrap();
    std::fs::write(sb.path("twin.pem"), twin.pem()).unwrap();
    let inter = make(Make {
        issuer: Some(&ca),
        from_days: -1,
        to_days: 30,
        ..Make::new(Kind::Intermediate, "Overlap Fresh Issuing")
    });
    for (from_days, to_days, cause) in [(-400, -10, "expired"), (40, 400, "not-yet-valid")] {
        let leaf = make(Make {
            sans: vec![dns("localhost"), ip("127.0.0.1")],
            issuer: Some(&inter),
            from_days,
            to_days,
            ..Make::new(Kind::Server, "localhost")
        });
        let server = serve_leaf_and_intermediate(&sb, &leaf, &inter);
        let target = format!("localhost:{}", server.port);
        let run = doctor(&sb, &[&target, "--ca", "ca.pem"]);
        expect(&run, 1, cause);
        let findings = run.json["findings"].to_string();
        assert!(
            !findings.contains("pinned-ca-mismatch"),
            "dates reported as a trust problem: {:#}",
            run.json
        );
        // A real trust problem still outranks the dates: the wrong --ca is named.
        let run = doctor(&sb, &[&target, "--ca", "other.pem"]);
        expect(&run, 1, "pinned-ca-mismatch");
        let summary = run.finding("pinned-ca-mismatch")["summary"]
            .as_str()
            .unwrap();
        assert!(summary.contains("Overlap Root"), "{summary}");
        run.finding(cause);
        let run = doctor(&sb, &[&target, "--ca", "twin.pem"]);
        expect(&run, 1, "pinned-ca-mismatch");
    }
}

/// Issue 10: a client presents only its leaf (`--cert alice.crt`) to a server whose
/// client CA file holds only the root, while alice was issued by an intermediate. The
/// server cannot link alice to its root and refuses (`unknown ca`); the fix is to send the
/// chain (alice.chain.pem), not to get a certificate from another CA.
#[test]
fn a_client_leaf_without_its_intermediate_is_told_to_send_the_chain() {
    use portcullis_pki::Kind;
    let sb = Sandbox::new();
    let ca = root("Leaf Only Server Root");
    let leaf = server_leaf(&ca);
    let clients = root("Leaf Only Client Root");
    let issuing = intermediate("Leaf Only Client Issuing", &clients);
    let alice = make(Make {
        issuer: Some(&issuing),
        ..Make::new(Kind::Client, "alice")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(sb.path("server.crt"), leaf.pem()).unwrap();
    std::fs::write(sb.path("server.key"), leaf.key_pem()).unwrap();
    std::fs::write(sb.path("client-root.pem"), clients.pem()).unwrap();
    // What `portcullis pki issue client alice` writes: the leaf, the chain, the key.
    std::fs::write(sb.path("alice.crt"), alice.pem()).unwrap();
    std::fs::write(
        sb.path("alice.chain.pem"),
        format!("{}{}", alice.pem(), issuing.pem()),
    )
    .unwrap();
    std::fs::write(sb.path("alice.key"), alice.key_pem()).unwrap();
    for tls in ["-tls1_3", "-tls1_2"] {
        let server = openssl_server(
            sb.dir.path(),
            &[
                "-cert",
                "server.crt",
                "-key",
                "server.key",
                "-Verify",
                "3",
                "-CAfile",
                "client-root.pem",
                "-verify_return_error",
                tls,
            ],
        );
        let target = format!("localhost:{}", server.port);
        let with = |cert: &str| {
            doctor(
                &sb,
                &[
                    &target,
                    "--ca",
                    "ca.pem",
                    "--cert",
                    cert,
                    "--key",
                    "alice.key",
                ],
            )
        };
        let run = with("alice.crt");
        expect(&run, 1, "client-chain-incomplete");
        let f = run.finding("client-chain-incomplete");
        let summary = f["summary"].as_str().unwrap();
        assert!(
            summary.contains("Leaf Only Client Issuing")
                && summary.contains("Leaf Only Client Root")
                && summary.contains("alice.chain.pem"),
            "{tls}: {summary}"
        );
        assert!(
            fix_for(&run, "client-chain-incomplete", "curl").contains("--cert alice.chain.pem"),
            "{tls}: {:#}",
            f["fixes"]
        );
        // The chain file the doctor names works.
        let run = with("alice.chain.pem");
        expect(&run, 0, "ok");
    }
}

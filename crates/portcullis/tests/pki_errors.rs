//! Bad input: each case gets an error a person can act on, exit status 2, no panic, and
//! no file written or changed.

// Test helpers: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Sandbox;

/// Asserts that running `args` fails, says each of `needles`, and leaves the files as
/// they were.
fn fails_cleanly(sb: &Sandbox, args: &[&str], needles: &[&str]) -> String {
    let before = snapshot(sb);
    let err = sb.fails(args);
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}:\n{err}");
    }
    assert_eq!(snapshot(sb), before, "files changed by a failed {args:?}");
    err
}

fn snapshot(sb: &Sandbox) -> Vec<(String, Vec<u8>)> {
    sb.files()
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(sb.path(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

#[test]
fn wrong_ca_passphrase_names_the_key_and_where_the_passphrase_came_from() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    std::fs::write(sb.path("wrong.pass"), "not the passphrase\n").unwrap();
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "client",
            "x",
            "--no-p12",
            "--ca-passphrase-file",
            "wrong.pass",
        ],
        &[
            "wrong passphrase",
            "pki/root.key",
            "--ca-passphrase-file wrong.pass",
        ],
    );
    // The CA passphrase is asked (and checked) before the bundle's password: a wrong one
    // must not waste the typing of the other.
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "client",
            "y",
            "--ca-passphrase-file",
            "wrong.pass",
        ],
        &["wrong passphrase", "pki/root.key"],
    );
    // Same through the environment variable; the passphrase itself is never echoed.
    let out = sb.run_env(
        &["pki", "crl"],
        &[("PORTCULLIS_CA_PASSPHRASE", "hunter2-secret")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("PORTCULLIS_CA_PASSPHRASE"), "{err}");
    assert!(!err.contains("hunter2-secret"), "passphrase leaked: {err}");
}

#[test]
fn encrypted_ca_without_any_passphrase_source_says_how_to_give_one() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    fails_cleanly(
        &sb,
        &["pki", "issue", "server", "localhost"],
        &[
            "pki/root.key",
            "encrypted",
            "--ca-passphrase-file",
            "PORTCULLIS_CA_PASSPHRASE",
        ],
    );
}

#[test]
fn init_without_passphrase_source_refuses_rather_than_writing_a_plain_key() {
    let sb = Sandbox::new();
    let err = fails_cleanly(
        &sb,
        &["pki", "init"],
        &["--ca-passphrase-file", "--no-passphrase"],
    );
    assert!(!sb.path("pki/root.key").exists(), "{err}");
}

#[test]
fn corrupt_or_truncated_pem_is_named() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    let cert = sb.path("pki/root.crt");
    let pem = std::fs::read_to_string(&cert).unwrap();
    std::fs::write(&cert, &pem[..pem.len() / 2]).unwrap();
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "server",
            "localhost",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["pki/root.crt"],
    );
    std::fs::write(&cert, &pem).unwrap();

    let key = sb.path("pki/root.key");
    let kp = std::fs::read_to_string(&key).unwrap();
    std::fs::write(&key, kp.replace('A', "B").replacen("MI", "!!", 1)).unwrap();
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "server",
            "localhost",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["pki/root.key"],
    );
    std::fs::write(&key, &kp).unwrap();

    std::fs::write(
        sb.path("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    fails_cleanly(&sb, &["pki", "inspect", "junk.pem"], &["junk.pem"]);
    std::fs::write(sb.path("empty.csr"), "").unwrap();
    fails_cleanly(
        &sb,
        &[
            "pki",
            "sign",
            "empty.csr",
            "--profile",
            "client",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["empty.csr"],
    );
}

#[test]
fn csr_with_a_broken_self_signature_is_refused() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    let req = sb.tool(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-outform",
            "DER",
            "-out",
            "good.der",
            "-subj",
            "/CN=victim.test",
            "-addext",
            "subjectAltName=DNS:victim.test",
        ],
    );
    assert!(req.status.success(), "{}", common::text(&req));
    let mut der = std::fs::read(sb.path("good.der")).unwrap();
    // The signature is the last field: flip its final byte.
    let last = der.len() - 1;
    der[last] ^= 0x55;
    std::fs::write(sb.path("forged.der"), der).unwrap();
    fails_cleanly(
        &sb,
        &[
            "pki",
            "sign",
            "forged.der",
            "--profile",
            "server",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["forged.der", "self-signature does not verify"],
    );
}

#[test]
fn revoking_a_certificate_from_another_ca_is_refused() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    sb.ok(&[
        "pki",
        "--dir",
        "other",
        "init",
        "--no-passphrase",
        "--name",
        "Other",
    ]);
    sb.ok(&[
        "pki", "--dir", "other", "issue", "client", "mallory", "--no-p12",
    ]);
    fails_cleanly(
        &sb,
        &[
            "pki",
            "revoke",
            "other/issued/mallory.crt",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &[
            "not issued by this CA",
            "Other Root CA",
            "Portcullis Root CA",
        ],
    );
    fails_cleanly(
        &sb,
        &[
            "pki",
            "revoke",
            "ABCDEF0123",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["no certificate with serial ABCDEF0123"],
    );
}

#[test]
fn issuing_from_a_missing_ca_says_how_to_create_one() {
    let sb = Sandbox::new();
    fails_cleanly(
        &sb,
        &["pki", "--dir", "nowhere", "issue", "server", "localhost"],
        &[
            "no certificate authority in nowhere",
            "portcullis pki init --dir nowhere",
        ],
    );
    assert!(!sb.path("nowhere").exists());
}

#[test]
fn an_existing_output_file_is_never_overwritten_without_force() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "alice",
        "--ca-passphrase-file",
        "ca.pass",
        "--p12-password-file",
        "p12.pass",
    ]);
    let err = fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "client",
            "alice",
            "--ca-passphrase-file",
            "ca.pass",
            "--p12-password-file",
            "p12.pass",
        ],
        &["already exists", "--force"],
    );
    assert!(err.contains("pki/issued/alice."), "{err}");
    let list = sb.ok(&["pki", "list"]);
    assert_eq!(
        list.matches("CN=alice").count(),
        1,
        "a refused issue must not be recorded"
    );
    // With --force it goes through and both certificates are on record.
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "alice",
        "--force",
        "--ca-passphrase-file",
        "ca.pass",
        "--p12-password-file",
        "p12.pass",
    ]);
    assert_eq!(sb.ok(&["pki", "list"]).matches("CN=alice").count(), 2);
    // An existing CA is not replaced either.
    fails_cleanly(
        &sb,
        &["pki", "init", "--no-passphrase"],
        &["already holds a certificate authority", "--force"],
    );
}

#[test]
fn server_certificate_without_a_host_name_is_refused() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "server",
            "web frontend",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["subjectAltName", "--dns"],
    );
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "server",
            "x",
            "--dns",
            "10.0.0.1",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["IP address", "--ip"],
    );
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "client",
            "evil\u{1}name",
            "--no-p12",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["control character"],
    );
}

#[test]
fn pkcs12_needs_a_real_password() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "client",
            "dave",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["--p12-password-file", "PORTCULLIS_P12_PASSWORD", "--no-p12"],
    );
    std::fs::write(sb.path("empty.pass"), "\n").unwrap();
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "client",
            "dave",
            "--ca-passphrase-file",
            "ca.pass",
            "--p12-password-file",
            "empty.pass",
        ],
        &["empty"],
    );
}

#[test]
fn passphrases_are_not_accepted_as_arguments() {
    let sb = Sandbox::new();
    let out = sb.run(&["pki", "init", "--ca-passphrase", "secret"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error expected");
    assert!(!sb.path("pki").exists());
}

#[test]
fn names_clients_would_refuse_or_that_cover_too_much_are_explained() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    // A wildcard over a whole top-level domain.
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "server",
            "everything",
            "--dns",
            "*.com",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["*.com", "*.example.com"],
    );
    // A CSR with a host name in its CN and no subjectAltName: the fix names that host.
    sb.openssl_csr("nosan", "/CN=nosan.internal", &[]);
    let said = fails_cleanly(
        &sb,
        &[
            "pki",
            "sign",
            "nosan.csr",
            "--profile",
            "server",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["--dns nosan.internal"],
    );
    assert!(!said.contains("is not a host name"), "{said}");
}

#[test]
fn options_that_would_be_ignored_or_capped_are_said() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    // Succeeds; returns what it printed, warnings (stderr) included.
    let issued = |args: &[&str]| {
        let out = sb.run(args);
        assert!(out.status.success(), "{}", common::text(&out));
        common::text(&out)
    };
    // A server gets no PKCS#12 bundle, so a bundle option is a mistake, not a no-op.
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "server",
            "web.test",
            "--legacy-p12",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["--legacy-p12", "client"],
    );
    // A bundle password with no bundle, a passphrase for a key that has none, a key
    // file where a certificate is meant: each a mistake said, not a no-op.
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "client",
            "x",
            "--no-p12",
            "--p12-password-file",
            "p12.pass",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["--no-p12", "--p12-password-file"],
    );
    let key = sb.tool(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "plain.key",
        ],
    );
    assert!(key.status.success());
    fails_cleanly(
        &sb,
        &[
            "pki",
            "issue",
            "client",
            "y",
            "--key",
            "plain.key",
            "--key-passphrase-file",
            "key.pass",
            "--no-p12",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["plain.key", "not encrypted"],
    );
    sb.issue_client("z");
    fails_cleanly(
        &sb,
        &[
            "pki",
            "renew",
            "pki/issued/z.key",
            "--no-p12",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["not a certificate", "z.key"],
    );
    // More days than the CA has left: issued, and the shorter end is said.
    let out = issued(&[
        "pki",
        "issue",
        "client",
        "long",
        "--no-p12",
        "--days",
        "5000",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(
        out.contains("5000 days") && out.contains("the CA's"),
        "{out}"
    );
    // A server certificate beyond 398 days: issued, with the warning clients make needed.
    let out = issued(&[
        "pki",
        "issue",
        "server",
        "api.test",
        "--days",
        "500",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(out.contains("398 days"), "{out}");
    let out = issued(&[
        "pki",
        "issue",
        "server",
        "short.test",
        "--days",
        "90",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(
        !out.contains("398 days") && !out.contains("the CA's"),
        "{out}"
    );
}

#[test]
fn every_pki_option_is_described_and_lists_its_values() {
    let sb = Sandbox::new();
    let commands: [&[&str]; 10] = [
        &["pki", "init"],
        &["pki", "issue", "server"],
        &["pki", "issue", "client"],
        &["pki", "sign"],
        &["pki", "revoke"],
        &["pki", "crl"],
        &["pki", "renew"],
        &["pki", "list"],
        &["pki", "inspect"],
        &["pki"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let help = sb.ok(&args);
        // The lines under "Options:" and "Arguments:" that start an entry (indented
        // by at most six spaces; descriptions continue further in).
        let mut listing = false;
        for line in help.lines() {
            match line {
                "Options:" | "Arguments:" => listing = true,
                "" => listing = false,
                _ if listing && line.len() - line.trim_start().len() <= 6 => {
                    let parts = line.split("  ").filter(|p| !p.trim().is_empty()).count();
                    assert!(
                        parts > 1,
                        "{command:?}: {line:?} has no description:\n{help}"
                    );
                }
                _ => {}
            }
        }
    }
    let issue = sb.ok(&["pki", "issue", "client", "--help"]);
    assert!(
        issue.contains("[possible values: p256,") && issue.contains("ed25519]"),
        "{issue}"
    );
    let revoke = sb.ok(&["pki", "revoke", "--help"]);
    assert!(
        revoke.contains("key-compromise") && revoke.contains("privilege-withdrawn"),
        "{revoke}"
    );
}

#[test]
fn inspect_says_revoked_and_names_reasons_as_the_cli_spells_them() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    for who in ["alice", "bob"] {
        sb.issue_client(who);
    }
    sb.revoke("pki/issued/alice.crt", "key-compromise");
    let crl = sb.ok(&["pki", "inspect", "pki/crl.pem"]);
    assert!(
        crl.contains("(key-compromise)") && !crl.contains("KeyCompromise"),
        "{crl}"
    );
    let alice = sb.ok(&["pki", "inspect", "pki/issued/alice.crt"]);
    assert!(
        alice.contains("(revoked)") && !alice.contains("(valid)"),
        "{alice}"
    );
    assert!(alice.contains("key-compromise"), "{alice}");
    let json: serde_json::Value =
        serde_json::from_str(&sb.ok(&["pki", "inspect", "pki/issued/alice.crt", "--json"]))
            .unwrap();
    assert_eq!(json["objects"][0]["validity"], "revoked", "{json}");
    let bob = sb.ok(&["pki", "inspect", "pki/issued/bob.chain.pem"]);
    assert!(bob.contains("(valid)") && !bob.contains("revoked"), "{bob}");
}

#[test]
fn renew_does_not_make_a_key_for_a_csr_and_says_what_it_renewed() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    sb.openssl_csr(
        "svc",
        "/CN=svc.internal",
        &["-addext", "subjectAltName=DNS:svc.internal"],
    );
    sb.ok(&[
        "pki",
        "sign",
        "svc.csr",
        "--profile",
        "server",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    // Its key is the requester's: the CA has none to replace.
    fails_cleanly(
        &sb,
        &[
            "pki",
            "renew",
            "pki/issued/svc.internal.crt",
            "--ca-passphrase-file",
            "ca.pass",
        ],
        &["CSR", "pki sign", "--new-key"],
    );

    // A certificate the CA made the key for renews, naming both serials; one revoked for
    // key compromise renews with a warning.
    sb.issue_client("alice");
    sb.revoke("pki/issued/alice.crt", "key-compromise");
    let out = sb.run(&[
        "pki",
        "renew",
        "pki/issued/alice.crt",
        "--no-p12",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let said = common::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("renewed") && said.contains(" as "), "{said}");
    assert!(said.contains("key-compromise"), "{said}");
}

/// Output into a pipe nobody reads any more (`pki list --json | head -1`) ends the command
/// quietly, as SIGPIPE would: no panic message.
#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["pki", "list", "--json"])
        .current_dir(sb.path(""))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

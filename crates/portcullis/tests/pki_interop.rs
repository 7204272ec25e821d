//! What `portcullis pki` writes, judged by the tools people will use it with: OpenSSL
//! and Node.js, run for real.

// Test helpers: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;

use common::{KEY_PASS, P12_PASS, Sandbox, text};

fn openssl_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.tool("openssl", args);
    assert!(out.status.success(), "openssl {args:?}:\n{}", text(&out));
    text(&out)
}

#[test]
fn server_and_client_chains_verify_for_their_purpose_with_openssl() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    sb.ok(&[
        "pki",
        "issue",
        "server",
        "web",
        "--dns",
        "web.test",
        "--dns",
        "*.api.test",
        "--ip",
        "127.0.0.1",
        "--ip",
        "::1",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "alice",
        "--email",
        "alice@example.com",
        "--o",
        "Acme",
        "--ou",
        "Eng",
        "--ou",
        "Admins",
        "--l",
        "Berlin",
        "--st",
        "Berlin",
        "--c",
        "DE",
        "--uri",
        "spiffe://corp/ops/alice",
        "--ca-passphrase-file",
        "ca.pass",
        "--p12-password-file",
        "p12.pass",
    ]);

    // The chain file is leaf + intermediate, never the root; verifying it against the root
    // alone therefore proves the chain is complete and in order.
    let chain = std::fs::read_to_string(sb.path("pki/issued/web.chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    let root = std::fs::read_to_string(sb.path("pki/root.crt")).unwrap();
    assert!(
        !chain.contains(root.trim()),
        "root must not be in the chain file"
    );

    for (name, purpose) in [("web", "sslserver"), ("alice", "sslclient")] {
        let leaf = format!("pki/issued/{name}.crt");
        let chain = format!("pki/issued/{name}.chain.pem");
        let out = openssl_ok(
            &sb,
            &[
                "verify",
                "-CAfile",
                "pki/root.crt",
                "-untrusted",
                &chain,
                "-purpose",
                purpose,
                &leaf,
            ],
        );
        assert!(out.contains(": OK"), "{out}");
    }
    // …and not for the other purpose: the EKUs are really there.
    let wrong = sb.tool(
        "openssl",
        &[
            "verify",
            "-CAfile",
            "pki/root.crt",
            "-untrusted",
            "pki/intermediate.crt",
            "-purpose",
            "sslclient",
            "pki/issued/web.crt",
        ],
    );
    assert!(
        !wrong.status.success(),
        "a server cert must not verify as a client cert"
    );

    // Names are in the right SAN types; the subject has both OUs, in order.
    let ext = openssl_ok(
        &sb,
        &[
            "x509",
            "-in",
            "pki/issued/web.crt",
            "-noout",
            "-ext",
            "subjectAltName",
            "-serial",
        ],
    );
    assert!(ext.contains("DNS:web.test"), "{ext}");
    assert!(ext.contains("DNS:*.api.test"), "{ext}");
    assert!(ext.contains("IP Address:127.0.0.1"), "{ext}");
    assert!(ext.contains("IP Address:0:0:0:0:0:0:0:1"), "{ext}");
    let serial = ext.lines().find_map(|l| l.strip_prefix("serial=")).unwrap();
    assert!(serial.len() >= 30, "128-bit serial expected, got {serial}");

    let subj = openssl_ok(
        &sb,
        &[
            "x509",
            "-in",
            "pki/issued/alice.crt",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-nameopt",
            "RFC2253",
        ],
    );
    assert!(
        subj.contains("emailAddress=alice@example.com,CN=alice,OU=Admins,OU=Eng,O=Acme,L=Berlin,ST=Berlin,C=DE"),
        "{subj}"
    );
    assert!(subj.contains("email:alice@example.com"), "{subj}");
    assert!(subj.contains("URI:spiffe://corp/ops/alice"), "{subj}");

    // Private keys 0600, the CA directory 0700.
    for key in [
        "pki/root.key",
        "pki/intermediate.key",
        "pki/issued/web.key",
        "pki/issued/alice.key",
        "pki/issued/alice.p12",
    ] {
        let mode = std::fs::metadata(sb.path(key)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    assert_eq!(
        std::fs::metadata(sb.path("pki")).unwrap().mode() & 0o777,
        0o700
    );
}

#[test]
fn every_key_type_issues_a_certificate_openssl_accepts() {
    for kt in ["p384", "rsa2048", "ed25519"] {
        let sb = Sandbox::new();
        sb.ok(&["pki", "init", "--no-passphrase", "--key-type", kt]);
        sb.ok(&["pki", "issue", "server", "localhost", "--key-type", kt]);
        let out = openssl_ok(
            &sb,
            &[
                "verify",
                "-CAfile",
                "pki/root.crt",
                "-purpose",
                "sslserver",
                "pki/issued/localhost.crt",
            ],
        );
        assert!(out.contains("OK"), "{kt}: {out}");
    }
}

#[test]
fn revoked_certificate_is_reported_revoked_by_openssl_crl_check() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    for who in ["alice", "bob"] {
        sb.ok(&[
            "pki",
            "issue",
            "client",
            who,
            "--no-p12",
            "--ca-passphrase-file",
            "ca.pass",
        ]);
    }
    sb.revoke("pki/issued/alice.crt", "key-compromise");

    let check = |who: &str| {
        sb.tool(
            "openssl",
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "pki/root.crt",
                "-untrusted",
                "pki/intermediate.crt",
                "-CRLfile",
                "pki/crl.pem",
                &format!("pki/issued/{who}.crt"),
            ],
        )
    };
    let alice = check("alice");
    assert!(!alice.status.success());
    assert!(
        text(&alice).contains("certificate revoked"),
        "{}",
        text(&alice)
    );
    assert!(check("bob").status.success(), "{}", text(&check("bob")));

    // The CRL number goes up with every publication (init published the first) and
    // nextUpdate is set.
    let crl1 = openssl_ok(
        &sb,
        &[
            "crl",
            "-in",
            "pki/crl.pem",
            "-noout",
            "-crlnumber",
            "-nextupdate",
        ],
    );
    sb.ok(&["pki", "crl", "--ca-passphrase-file", "ca.pass"]);
    let crl2 = openssl_ok(&sb, &["crl", "-in", "pki/crl.pem", "-noout", "-crlnumber"]);
    assert!(crl1.contains("crlNumber=0x02"), "{crl1}");
    assert!(crl1.contains("nextUpdate="), "{crl1}");
    assert!(crl2.contains("crlNumber=0x03"), "{crl2}");
    // The DER copy is the same CRL.
    openssl_ok(
        &sb,
        &["crl", "-inform", "DER", "-in", "pki/crl.der", "-noout"],
    );

    let list = sb.ok(&["pki", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list).unwrap();
    let status = |cn: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["subject"].as_str().unwrap().contains(&format!("CN={cn}")))
            .map(|r| r["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status("alice"), "revoked");
    assert_eq!(status("bob"), "valid");
}

#[test]
fn both_pkcs12_variants_open_in_openssl_and_node() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "modern",
        "--ca-passphrase-file",
        "ca.pass",
        "--p12-password-file",
        "p12.pass",
    ]);
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "legacy",
        "--legacy-p12",
        "--ca-passphrase-file",
        "ca.pass",
        "--p12-password-file",
        "p12.pass",
    ]);

    let info = |name: &str| {
        openssl_ok(
            &sb,
            &[
                "pkcs12",
                "-info",
                "-in",
                &format!("pki/issued/{name}.p12"),
                "-passin",
                "file:p12.pass",
                "-noout",
            ],
        )
    };
    let modern = info("modern");
    assert!(modern.contains("MAC: sha256"), "{modern}");
    assert!(modern.contains("AES-256-CBC"), "{modern}");
    assert!(!modern.contains("RC2"), "{modern}");
    let legacy = info("legacy");
    assert!(legacy.contains("MAC: sha1"), "{legacy}");
    assert!(
        legacy.contains("pbeWithSHA1And3-KeyTripleDES-CBC"),
        "{legacy}"
    );
    assert!(!legacy.contains("RC2"), "{legacy}");

    // Node loads each bundle into a TLS context and finds the key and certificate in it.
    let script = r#"
        const tls = require('tls'), fs = require('fs');
        const [file, passphrase] = process.argv.slice(2);
        const ctx = tls.createSecureContext({ pfx: fs.readFileSync(file), passphrase });
        const cert = ctx.context.getCertificate();
        if (!cert) { console.error('no certificate in context'); process.exit(1); }
        console.log('loaded');
    "#;
    for name in ["modern", "legacy"] {
        let out = sb.node(script, &[&format!("pki/issued/{name}.p12"), P12_PASS]);
        assert!(
            out.status.success() && text(&out).contains("loaded"),
            "{name}: {}",
            text(&out)
        );
        let bad = sb.node(
            script,
            &[&format!("pki/issued/{name}.p12"), "wrong password"],
        );
        assert!(
            !bad.status.success(),
            "{name}: a wrong password must not load"
        );
    }
}

#[test]
fn encrypted_keys_are_read_by_openssl_pkey_and_node() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    sb.ok(&[
        "pki",
        "issue",
        "server",
        "localhost",
        "--ca-passphrase-file",
        "ca.pass",
        "--key-passphrase-file",
        "key.pass",
    ]);
    let key = "pki/issued/localhost.key";
    let pem = std::fs::read_to_string(sb.path(key)).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{pem}"
    );

    // OpenSSL: reads it with the passphrase, and says PBES2/PBKDF2/AES-256-CBC.
    openssl_ok(
        &sb,
        &["pkey", "-in", key, "-passin", "file:key.pass", "-noout"],
    );
    let asn = openssl_ok(&sb, &["asn1parse", "-in", key]);
    assert!(
        asn.contains("PBES2") && asn.contains("PBKDF2") && asn.contains("aes-256-cbc"),
        "{asn}"
    );
    assert!(asn.contains("hmacWithSHA256"), "{asn}");
    let wrong = sb.tool(
        "openssl",
        &["pkey", "-in", key, "-passin", "pass:nope", "-noout"],
    );
    assert!(!wrong.status.success());
    // The CA key too.
    openssl_ok(
        &sb,
        &[
            "pkey",
            "-in",
            "pki/root.key",
            "-passin",
            "file:ca.pass",
            "-noout",
        ],
    );

    // Node: the key pairs with the certificate it was issued for.
    let script = r#"
        const crypto = require('crypto'), fs = require('fs');
        const [keyFile, certFile, passphrase] = process.argv.slice(2);
        const key = crypto.createPrivateKey({ key: fs.readFileSync(keyFile), passphrase });
        const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
        console.log(cert.checkPrivateKey(key) ? 'match' : 'mismatch');
    "#;
    let out = sb.node(script, &[key, "pki/issued/localhost.crt", KEY_PASS]);
    assert!(
        text(&out).contains("match") && !text(&out).contains("mismatch"),
        "{}",
        text(&out)
    );
    let out = sb.node(
        script,
        &[key, "pki/issued/localhost.crt", "wrong passphrase"],
    );
    assert!(!out.status.success(), "node must refuse a wrong passphrase");
}

#[test]
fn csr_from_openssl_req_is_signed_and_verifies() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    let req = sb.tool(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "svc.key",
            "-out",
            "svc.csr",
            "-subj",
            "/C=DE/O=Acme/CN=svc.internal",
            "-addext",
            "subjectAltName=DNS:svc.internal,IP:10.9.8.7",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=keyCertSign",
        ],
    );
    assert!(req.status.success(), "{}", text(&req));
    let out = sb.ok(&[
        "pki",
        "sign",
        "svc.csr",
        "--profile",
        "server",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    // What the CSR asked for and did not get is said out loud.
    assert!(out.contains("basicConstraints CA:TRUE"), "{out}");
    assert!(out.contains("keyUsage"), "{out}");
    assert!(out.contains("pki/issued/svc.internal.crt"), "{out}");
    assert!(!out.contains(".key"), "signing a CSR writes no key: {out}");

    let v = openssl_ok(
        &sb,
        &[
            "verify",
            "-CAfile",
            "pki/root.crt",
            "-untrusted",
            "pki/issued/svc.internal.chain.pem",
            "-purpose",
            "sslserver",
            "pki/issued/svc.internal.crt",
        ],
    );
    assert!(v.contains("OK"));
    let x = openssl_ok(
        &sb,
        &[
            "x509",
            "-in",
            "pki/issued/svc.internal.crt",
            "-noout",
            "-ext",
            "basicConstraints,subjectAltName",
            "-subject",
        ],
    );
    assert!(x.contains("CA:FALSE"), "{x}");
    assert!(
        x.contains("DNS:svc.internal") && x.contains("IP Address:10.9.8.7"),
        "{x}"
    );
    // The certificate holds the requester's key.
    let m1 = openssl_ok(
        &sb,
        &[
            "x509",
            "-in",
            "pki/issued/svc.internal.crt",
            "-noout",
            "-pubkey",
        ],
    );
    let m2 = openssl_ok(&sb, &["pkey", "-in", "svc.key", "-pubout"]);
    assert_eq!(m1, m2);
}

#[test]
fn renew_keeps_names_changes_key_and_serial_and_archives_the_old_files() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    sb.ok(&[
        "pki",
        "issue",
        "server",
        "app",
        "--dns",
        "app.test",
        "--ip",
        "10.0.0.1",
        "--days",
        "30",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let old_cert = std::fs::read_to_string(sb.path("pki/issued/app.crt")).unwrap();
    let old_key = std::fs::read_to_string(sb.path("pki/issued/app.key")).unwrap();
    let out = sb.ok(&[
        "pki",
        "renew",
        "pki/issued/app.crt",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(out.contains("archived"), "{out}");
    let new_cert = std::fs::read_to_string(sb.path("pki/issued/app.crt")).unwrap();
    let new_key = std::fs::read_to_string(sb.path("pki/issued/app.key")).unwrap();
    assert_ne!(old_cert, new_cert);
    assert_ne!(old_key, new_key);

    let show = |f: &str| {
        let o = sb.tool(
            "openssl",
            &[
                "x509",
                "-in",
                f,
                "-noout",
                "-serial",
                "-subject",
                "-ext",
                "subjectAltName,extendedKeyUsage",
            ],
        );
        text(&o)
    };
    let archived: Vec<String> = sb
        .files()
        .into_iter()
        .filter(|f| f.starts_with("pki/archive/") && f.ends_with("app.crt"))
        .collect();
    assert_eq!(archived.len(), 1, "{:?}", sb.files());
    let (a, b) = (show(&archived[0]), show("pki/issued/app.crt"));
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("serial="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&a), strip(&b), "same subject, SANs and EKU");
    assert_ne!(a.lines().next(), b.lines().next(), "new serial");
    let v = openssl_ok(
        &sb,
        &[
            "verify",
            "-CAfile",
            "pki/root.crt",
            "-purpose",
            "sslserver",
            "pki/issued/app.crt",
        ],
    );
    assert!(v.contains("OK"));
    let list = sb.ok(&["pki", "list"]);
    assert_eq!(list.matches("CN=app").count(), 2, "{list}");
}

#[test]
fn inspect_reports_chains_crls_keys_and_bundles_without_key_material() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "carol",
        "--ca-passphrase-file",
        "ca.pass",
        "--p12-password-file",
        "p12.pass",
    ]);

    let json = sb.ok(&["pki", "inspect", "--json", "pki/issued/carol.chain.pem"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let objs = v["objects"].as_array().unwrap();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["subject"], "CN=carol");
    assert_eq!(objs[0]["extended_key_usage"][0], "clientAuth");
    assert_eq!(objs[1]["is_ca"], true);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0, "{json}");

    // A misordered chain (intermediate first, then the root, then the leaf) is called out.
    let bad: String = [
        "pki/intermediate.crt",
        "pki/root.crt",
        "pki/issued/carol.crt",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(sb.path(f)).unwrap())
    .collect();
    std::fs::write(sb.path("bad.pem"), bad).unwrap();
    let out = sb.ok(&["pki", "inspect", "bad.pem"]);
    assert!(out.contains("leaf is not first"), "{out}");
    assert!(
        out.contains("includes its root") || out.contains("not the issuer"),
        "{out}"
    );

    let key_out = sb.ok(&["pki", "inspect", "pki/issued/carol.key"]);
    let key_pem = std::fs::read_to_string(sb.path("pki/issued/carol.key")).unwrap();
    let body = key_pem.lines().nth(1).unwrap();
    assert!(
        !key_out.contains(body),
        "inspect must never print key material"
    );
    assert!(key_out.contains("encrypted:   no"), "{key_out}");
    let enc = sb.ok(&["pki", "inspect", "pki/root.key"]);
    assert!(enc.contains("encrypted:   yes"), "{enc}");

    let p12 = sb.run_env(
        &["pki", "inspect", "pki/issued/carol.p12"],
        &[("PORTCULLIS_P12_PASSWORD", P12_PASS)],
    );
    assert!(p12.status.success(), "{}", text(&p12));
    assert!(
        text(&p12).contains("PKCS#12 bundle") && text(&p12).contains("CN=carol"),
        "{}",
        text(&p12)
    );

    sb.ok(&[
        "pki",
        "revoke",
        "pki/issued/carol.crt",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let crl = sb.ok(&["pki", "inspect", "--json", "pki/crl.pem"]);
    let v: serde_json::Value = serde_json::from_str(&crl).unwrap();
    assert_eq!(v["objects"][0]["type"], "crl");
    assert_eq!(v["objects"][0]["revoked"].as_array().unwrap().len(), 1);
}

#[test]
fn a_new_ca_publishes_an_empty_crl_so_the_readme_config_loads() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    let crl = openssl_ok(
        &sb,
        &["crl", "-in", "pki/crl.pem", "-noout", "-text", "-crlnumber"],
    );
    assert!(crl.contains("No Revoked Certificates"), "{crl}");
    assert!(crl.contains("Issuer: CN = Portcullis Issuing CA"), "{crl}");
    assert!(crl.contains("crlNumber=0x01"), "{crl}");
    assert_eq!(
        std::fs::read_to_string(sb.path("pki/crlnumber")).unwrap(),
        "1\n"
    );
    openssl_ok(
        &sb,
        &["crl", "-inform", "DER", "-in", "pki/crl.der", "-noout"],
    );

    // The configuration README.md shows, as printed, with the certificate it names.
    sb.ok(&[
        "pki",
        "issue",
        "server",
        "gate",
        "--dns",
        "localhost",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let config = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    assert!(config.contains("crl = [\"pki/crl.pem\"]"), "{config}");
    std::fs::write(sb.path("portcullis.toml"), config).unwrap();
    let checked = sb.ok(&["check", "-c", "portcullis.toml"]);
    assert!(checked.contains("OK"), "{checked}");
}

/// `--json` on every command that changes the CA: one object of the same keys, stdout
/// nothing else, and the values are those of the files written (serials as OpenSSL reads
/// them, CRL numbers as the CRL carries them).
#[test]
fn every_command_that_writes_prints_one_json_shape_that_matches_the_files() {
    let sb = Sandbox::new();
    let run = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["pki", "--json"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--ca-passphrase-file", "ca.pass"]);
        let out = sb.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let serial_of = |file: &str| {
        let out = openssl_ok(&sb, &["x509", "-in", file, "-noout", "-serial"]);
        out.trim().trim_start_matches("serial=").to_owned()
    };
    let crl_number = || {
        let out = openssl_ok(&sb, &["crl", "-in", "pki/crl.pem", "-noout", "-crlnumber"]);
        u64::from_str_radix(out.trim().trim_start_matches("crlNumber=0x"), 16).unwrap()
    };

    let init = run(&["init", "--intermediate"]);
    assert_eq!(init["crl_number"], crl_number());
    let server = run(&["issue", "server", "web.test", "--days", "500"]);
    assert_eq!(
        server["certificate"]["serial"],
        serial_of("pki/issued/web.test.crt")
    );
    assert_eq!(server["certificate"]["profile"], "server");
    assert_eq!(server["certificate"]["file"], "pki/issued/web.test.crt");
    assert_eq!(server["certificate"]["status"], "valid");
    assert!(
        server["warnings"][0].as_str().unwrap().contains("398 days"),
        "{server:#}"
    );
    let client = run(&["issue", "client", "alice", "--no-p12"]);
    assert_eq!(client["certificate"]["subject"], "CN=alice");
    sb.openssl_csr(
        "svc",
        "/CN=svc.internal",
        &["-addext", "subjectAltName=DNS:svc.internal,email:x@y.test"],
    );
    let signed = run(&["sign", "svc.csr", "--profile", "server"]);
    assert_eq!(
        signed["certificate"]["serial"],
        serial_of("pki/issued/svc.internal.crt")
    );
    assert_eq!(
        signed["not_granted"].as_array().unwrap().len(),
        1,
        "{signed:#}"
    );
    let renewed = run(&["renew", "pki/issued/alice.crt", "--no-p12"]);
    assert_eq!(renewed["replaces"], client["certificate"]["serial"]);
    assert_eq!(
        renewed["certificate"]["serial"],
        serial_of("pki/issued/alice.crt")
    );
    assert!(
        !renewed["archived"].as_array().unwrap().is_empty(),
        "{renewed:#}"
    );
    let revoked = run(&["revoke", "pki/issued/alice.crt", "--reason", "superseded"]);
    assert_eq!(
        revoked["certificate"]["serial"],
        renewed["certificate"]["serial"]
    );
    assert_eq!(revoked["certificate"]["revoked"]["reason"], "superseded");
    assert_eq!(revoked["certificate"]["status"], "revoked");
    assert_eq!(revoked["crl_number"], crl_number());
    let crl = run(&["crl"]);
    assert_eq!(crl["crl_number"], crl_number());
    assert_eq!(crl["crl_number"], 3);

    let shapes = [&init, &server, &client, &signed, &renewed, &revoked, &crl];
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    for v in shapes {
        assert_eq!(keys(v), keys(&init), "{v:#}");
        for f in v["written"].as_array().unwrap() {
            assert!(
                std::path::Path::new(f.as_str().unwrap()).exists()
                    || sb.path(f.as_str().unwrap()).exists(),
                "{f}"
            );
        }
    }
}

/// Bring your own key: `pki csr` makes a key and a CSR OpenSSL verifies and this CA (or
/// another) signs for exactly that key; `issue --key` certifies an existing key, private
/// (bundled, never copied) or public.
#[test]
fn csr_and_issue_key_certify_the_key_they_were_given() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    let public_of = |args: &[&str]| openssl_ok(&sb, args);
    let key_pub =
        |key: &str| public_of(&["pkey", "-in", key, "-pubout", "-passin", "file:key.pass"]);
    let cert_pub = |cert: &str| public_of(&["x509", "-in", cert, "-noout", "-pubkey"]);

    // A new key and CSR, for a server.
    sb.ok(&[
        "pki", "csr", "web.test", "--dns", "web.test", "--o", "Acme", "--out", "req",
    ]);
    assert_eq!(
        std::fs::metadata(sb.path("req/web.test.key"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    let text = openssl_ok(
        &sb,
        &[
            "req",
            "-in",
            "req/web.test.csr",
            "-verify",
            "-noout",
            "-text",
        ],
    );
    assert!(
        text.contains("DNS:web.test") && text.contains("O = Acme"),
        "{text}"
    );
    sb.ok(&[
        "pki",
        "sign",
        "req/web.test.csr",
        "--profile",
        "server",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert_eq!(
        cert_pub("pki/issued/web.test.crt"),
        key_pub("req/web.test.key")
    );

    // A CSR for a key that exists writes only the CSR; other key types verify too.
    sb.ok(&[
        "pki",
        "csr",
        "again",
        "--key",
        "req/web.test.key",
        "--out",
        "req",
    ]);
    assert!(!sb.path("req/again.key").exists());
    let again = openssl_ok(&sb, &["req", "-in", "req/again.csr", "-noout", "-pubkey"]);
    assert_eq!(again, key_pub("req/web.test.key"));
    for kt in ["ed25519", "rsa2048", "p384"] {
        sb.ok(&[
            "pki",
            "csr",
            kt,
            "--key-type",
            kt,
            "--email",
            "ops@example.com",
        ]);
        let text = openssl_ok(
            &sb,
            &[
                "req",
                "-in",
                &format!("{kt}.csr"),
                "-verify",
                "-noout",
                "-text",
            ],
        );
        // The address in the subject and as an rfc822Name SAN, for any CA that signs it.
        assert!(text.contains("email:ops@example.com"), "{kt}: {text}");
    }

    // issue --key with the owner's encrypted key: the bundle holds it, no copy is written.
    openssl_ok(
        &sb,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            "file:key.pass",
            "-out",
            "mine.key",
        ],
    );
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "bob",
        "--key",
        "mine.key",
        "--key-passphrase-file",
        "key.pass",
        "--p12-password-file",
        "p12.pass",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(!sb.path("pki/issued/bob.key").exists());
    assert_eq!(cert_pub("pki/issued/bob.crt"), key_pub("mine.key"));
    let bundled = openssl_ok(
        &sb,
        &[
            "pkcs12",
            "-in",
            "pki/issued/bob.p12",
            "-nocerts",
            "-nodes",
            "-passin",
            "file:p12.pass",
            "-out",
            "bundled.key",
        ],
    );
    drop(bundled);
    assert_eq!(key_pub("bundled.key"), key_pub("mine.key"));
    openssl_ok(
        &sb,
        &[
            "verify",
            "-CAfile",
            "pki/root.crt",
            "-untrusted",
            "pki/intermediate.crt",
            "-purpose",
            "sslclient",
            "pki/issued/bob.crt",
        ],
    );

    // A public key: a server needs nothing more; a client bundle is impossible, so said.
    openssl_ok(
        &sb,
        &[
            "pkey",
            "-in",
            "mine.key",
            "-passin",
            "file:key.pass",
            "-pubout",
            "-out",
            "mine.pub",
        ],
    );
    sb.ok(&[
        "pki",
        "issue",
        "server",
        "api.test",
        "--key",
        "mine.pub",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert_eq!(cert_pub("pki/issued/api.test.crt"), key_pub("mine.key"));
    let said = sb.fails(&[
        "pki",
        "issue",
        "client",
        "carol",
        "--key",
        "mine.pub",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(
        said.contains("--no-p12") && said.contains("public key"),
        "{said}"
    );
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "carol",
        "--key",
        "mine.pub",
        "--no-p12",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    // A key issued with --key stays its owner's: renewals neither move nor replace it,
    // even when it sits beside the certificate as a key the CA made would.
    std::fs::create_dir(sb.path("app")).unwrap();
    openssl_ok(
        &sb,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "app/app.key",
        ],
    );
    let before = std::fs::read(sb.path("app/app.key")).unwrap();
    sb.ok(&[
        "pki",
        "issue",
        "server",
        "app",
        "--dns",
        "app.test",
        "--days",
        "3",
        "--key",
        "app/app.key",
        "--out",
        "app",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let said = sb.fails(&[
        "pki",
        "renew",
        "app/app.crt",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(said.contains("--key") && said.contains("owner"), "{said}");
    let said = sb.fails(&[
        "pki",
        "renew",
        "app/app.crt",
        "--new-key",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(said.contains("app.key"), "{said}");
    let batch = sb.ok(&[
        "pki",
        "renew",
        "--all-expiring",
        "--within",
        "100%",
        "--no-p12",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let line = batch
        .lines()
        .find(|l| l.contains("app"))
        .unwrap_or_default();
    assert!(
        line.starts_with("skipped") && line.contains("--key"),
        "{batch}"
    );
    assert_eq!(std::fs::read(sb.path("app/app.key")).unwrap(), before);

    // The CA's own keys are never certified as a leaf's (nor bundled for a user), in
    // either form.
    openssl_ok(
        &sb,
        &[
            "x509",
            "-in",
            "pki/root.crt",
            "-noout",
            "-pubkey",
            "-out",
            "root.pub",
        ],
    );
    for (key, pass) in [
        ("pki/root.key", Some("ca.pass")),
        ("pki/intermediate.key", Some("ca.pass")),
        ("root.pub", None),
    ] {
        let mut args = vec!["pki", "issue", "client", "frank", "--key", key, "--no-p12"];
        args.extend(["--ca-passphrase-file", "ca.pass"]);
        if let Some(pass) = pass {
            args.extend(["--key-passphrase-file", pass]);
        }
        let said = sb.fails(&args);
        assert!(said.contains("CA's own key"), "{key}: {said}");
    }
    assert!(!sb.path("pki/issued/frank.crt").exists());
    // A wrong key passphrase names the key file.
    std::fs::write(sb.path("wrong.pass"), "nope\n").unwrap();
    let said = sb.fails(&[
        "pki",
        "issue",
        "client",
        "dave",
        "--key",
        "mine.key",
        "--key-passphrase-file",
        "wrong.pass",
        "--no-p12",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(said.contains("mine.key"), "{said}");
}

/// `DIR/ca.toml [defaults]`: issue and sign use it where no flag is given (flags win, a
/// CSR's own fields win), every leaf carries the CRL and issuer URLs OpenSSL reads, `list`
/// shows them, and a mistake in the file is named by line before any passphrase.
#[test]
fn ca_defaults_fill_what_flags_leave_out_and_publish_their_urls() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    std::fs::write(
        sb.path("pki/ca.toml"),
        r#"[defaults]
o = "Acme"
ou = ["Engineering"]
c = "DE"
days = 30
key_type = "p384"
crl_url = "http://pki.acme.test/crl.der"
ca_issuers_url = "http://pki.acme.test/issuing.crt"
"#,
    )
    .unwrap();
    let x509 = |file: &str| {
        openssl_ok(
            &sb,
            &[
                "x509", "-in", file, "-noout", "-text", "-nameopt", "RFC2253",
            ],
        )
    };
    sb.issue_client("alice");
    let alice = x509("pki/issued/alice.crt");
    assert!(
        alice.contains("Subject: CN=alice,OU=Engineering,O=Acme,C=DE"),
        "{alice}"
    );
    assert!(alice.contains("NIST CURVE: P-384"), "{alice}");
    assert!(
        alice.contains("URI:http://pki.acme.test/crl.der"),
        "{alice}"
    );
    assert!(
        alice.contains("CA Issuers - URI:http://pki.acme.test/issuing.crt"),
        "{alice}"
    );
    // 30 days, not 397: valid in 29 days, gone in 31 (`-checkend` exits 1 then).
    let ends_within = |days: u32| {
        let secs = (days * 86400).to_string();
        let args = [
            "x509",
            "-in",
            "pki/issued/alice.crt",
            "-noout",
            "-checkend",
            &secs,
        ];
        !sb.tool("openssl", &args).status.success()
    };
    assert!(!ends_within(29) && ends_within(31));

    // Flags win.
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "bob",
        "--o",
        "Other",
        "--key-type",
        "p256",
        "--days",
        "90",
        "--no-p12",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let bob = x509("pki/issued/bob.crt");
    assert!(
        bob.contains("Subject: CN=bob,OU=Engineering,O=Other,C=DE"),
        "{bob}"
    );
    assert!(bob.contains("NIST CURVE: P-256"), "{bob}");
    // A CSR's own fields win; the defaults fill the rest.
    sb.openssl_csr(
        "svc",
        "/CN=svc.test/O=Requester",
        &["-addext", "subjectAltName=DNS:svc.test"],
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
    let svc = x509("pki/issued/svc.test.crt");
    assert!(
        svc.contains("Subject: CN=svc.test,OU=Engineering,O=Requester,C=DE"),
        "{svc}"
    );
    assert!(svc.contains("URI:http://pki.acme.test/crl.der"), "{svc}");

    let listed = sb.ok(&["pki", "list"]);
    assert!(
        listed.contains("o = Acme") && listed.contains("crl_url = http://pki.acme.test/crl.der"),
        "{listed}"
    );

    // A mistake names the file, line and key, before any passphrase is asked for.
    std::fs::write(
        sb.path("pki/ca.toml"),
        "[defaults]\no = \"Acme\"\ncrl_url = \"https://pki.acme.test/crl\"\n",
    )
    .unwrap();
    let said = sb.fails(&["pki", "issue", "client", "carol", "--no-p12"]);
    assert!(
        said.contains("ca.toml:3: defaults.crl_url") && said.contains("http://"),
        "{said}"
    );
    let said = sb.fails(&[
        "pki",
        "sign",
        "svc.csr",
        "--profile",
        "server",
        "--force",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(said.contains("ca.toml:3: defaults.crl_url"), "{said}");
    // Only issuing needs the defaults: a revocation and a CRL are never held up by them.
    sb.revoke("pki/issued/bob.crt", "key-compromise");
    sb.ok(&["pki", "crl", "--ca-passphrase-file", "ca.pass"]);
    let listed = sb.run(&["pki", "list"]);
    assert!(
        listed.status.success() && text(&listed).contains("ca.toml:3"),
        "{}",
        text(&listed)
    );
}

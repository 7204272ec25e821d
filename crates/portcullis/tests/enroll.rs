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

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(dir)
        .env_remove("PORTCULLIS_ENROLL_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

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
    let o = run(dir, &args);
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

fn listed(dir: &Path, serial: &str) -> serde_json::Value {
    let o = run(dir, &["pki", "--dir", "pki", "--json", "list"]);
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
    let tok = token(dir, "build-7", &["--ou", "Users", "--days", "60"]);

    let o = run(
        dir,
        &[
            "enroll",
            &url,
            "--token-file",
            &tok,
            "--ca",
            "pki/root.crt",
            "--out",
            "machine",
        ],
    );
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
    let again = run(
        dir,
        &[
            "enroll",
            &url,
            "--token-file",
            &tok,
            "--ca",
            "pki/root.crt",
            "--out",
            "again",
        ],
    );
    assert!(!again.status.success());
    assert!(said(&again).contains("already used"), "{}", said(&again));
    assert!(!dir.join("again").exists(), "nothing written on a refusal");
    let o = run(dir, &["pki", "--dir", "pki", "--json", "enroll", "list"]);
    let tokens: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tokens[0]["state"], "used");
    assert_eq!(tokens[0]["used"]["by"], "127.0.0.1");
    assert_eq!(tokens[0]["used"]["serial"], first);

    // Renew over mTLS: same subject, new key, new serial; the old one is recorded renewed.
    let old_key = std::fs::read(&key).unwrap();
    let o = run(
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
    let o = run(dir, &["pki", "--dir", "pki", "revoke", &second]);
    assert!(o.status.success(), "{}", said(&o));
    let seen = gate.lines_with(&["loaded, version"]);
    gate.hangup();
    assert!(
        gate.logged_more(&["loaded, version"], seen),
        "{}",
        gate.output()
    );
    let before = std::fs::read(&key).unwrap();
    let o = run(
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
    let enroll = |tok: &str, out: &str| {
        run(
            dir,
            &[
                "enroll",
                &url,
                "--token-file",
                tok,
                "--ca",
                "pki/root.crt",
                "--out",
                out,
            ],
        )
    };

    let short = token(dir, "short", &["--ttl", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = enroll(&short, "a");
    assert!(!o.status.success());
    assert!(said(&o).contains("expired"), "{}", said(&o));

    let revoked = token(dir, "gone", &[]);
    let id = revoked
        .strip_prefix("gone-")
        .and_then(|s| s.strip_suffix(".token"))
        .unwrap();
    let o = run(dir, &["pki", "--dir", "pki", "enroll", "revoke", id]);
    assert!(o.status.success(), "{}", said(&o));
    let o = enroll(&revoked, "b");
    assert!(said(&o).contains("revoked"), "{}", said(&o));

    // A made-up token, and a request that does not parse.
    std::fs::write(dir.join("made-up"), "00".repeat(32)).unwrap();
    assert!(said(&enroll("made-up", "c")).contains("no such enrolment token"));
    let r = curl(
        &pki,
        &["-X", "POST", "--data", "{\"token\": \"x\"}"],
        &gate.url("/enroll/csr"),
    );
    assert_eq!(r.status, "400", "{r:?}");

    // The endpoints answer for the canonical path the gate judged: `%63sr` is `csr` (a
    // token is asked for), not a renewal (which would want a certificate: 401).
    let r = curl(
        &pki,
        &["-X", "POST", "--data", "{\"token\": \"x\"}"],
        &gate.url("/enroll/%63sr"),
    );
    assert_eq!(r.status, "400", "{r:?}");
    assert!(r.body.contains("missing field `csr`"), "{r:?}");

    // Renewing needs a certificate on the connection; `/enroll` itself is the browser page
    // (tests/enroll_browser.rs), answered before the rules like the endpoints.
    let r = curl(
        &pki,
        &["-X", "POST", "--data", "{\"csr\": \"x\"}"],
        &gate.url("/enroll/renew"),
    );
    assert_eq!(r.status, "401", "{r:?}");
    let r = curl(&pki, &[], &gate.url("/enroll"));
    assert_eq!(r.status, "200", "{r:?}");
    assert!(r.body.contains("<h1>Get your certificate</h1>"), "{r:?}");
    let r = curl(&pki, &[], &gate.url("/enroll/csr"));
    assert_eq!(r.status, "405", "{r:?}");

    // `check` lists the endpoints.
    let o = run(dir, &["check", "-c", config.to_str().unwrap()]);
    assert!(
        said(&o).contains("GET /enroll (the browser page), POST /enroll/csr"),
        "{}",
        said(&o)
    );
}

#[test]
fn attempts_are_limited_per_address() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let config = pki.config(
        "optional",
        "builtin:whoami",
        "[enroll]\nca = \"pki\"\nattempts_per_minute = 3\n",
    );
    let gate = Gate::start(&config);
    let statuses: Vec<String> = (0..5)
        .map(|_| {
            let r = curl(
                &pki,
                &["-X", "POST", "--data", "{}"],
                &gate.url("/enroll/csr"),
            );
            assert!(r.stderr.is_empty(), "{r:?}");
            r.status
        })
        .collect();
    assert_eq!(statuses, ["400", "400", "400", "429", "429"]);
    let _ = dir;
}

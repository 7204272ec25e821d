//! Renewal as an operator automates it: what `pki list` says after a renewal, paths that
//! are right from any directory, `needs-renewal` and `list --expiring` for cron and
//! monitoring, and `renew --all-expiring` for a daily timer. Everything through the real
//! binary; the new certificates are checked with the real `openssl`.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Sandbox, text};

/// The rows of `pki list --json`.
fn rows(sb: &Sandbox, args: &[&str]) -> Vec<serde_json::Value> {
    let out = sb.ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The serial of a certificate file, as `openssl x509 -serial` prints it.
fn serial(sb: &Sandbox, file: &str) -> String {
    let o = sb.tool("openssl", &["x509", "-noout", "-serial", "-in", file]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

/// Regression: after `pki renew`, `pki list` showed two `valid` rows (the old and the
/// new certificate) and did not say where either one's files were.
#[test]
fn list_after_renew_shows_the_old_certificate_renewed_with_its_successor_and_files() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    sb.issue_client("alice");
    let old = serial(&sb, "pki/issued/alice.crt");
    let out = sb.ok(&[
        "pki",
        "renew",
        "pki/issued/alice.crt",
        "--no-p12",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let new = serial(&sb, "pki/issued/alice.crt");
    assert!(out.contains(&format!("renewed {old} as {new}")), "{out}");

    let table = sb.ok(&["pki", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("FILE"), "{table}");
    let row = |serial: &str| {
        *lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(serial))
            .unwrap_or_else(|| panic!("no row for {serial}: {table}"))
    };
    let (old_row, new_row) = (row(&old), row(&new));
    assert!(old_row.starts_with("renewed"), "{table}");
    assert!(old_row.contains(&format!("renewed as {new}")), "{table}");
    assert!(
        old_row.contains(&format!("pki/archive/{old}/alice.crt")),
        "{table}"
    );
    assert!(new_row.starts_with("valid"), "{table}");
    assert!(new_row.contains("pki/issued/alice.crt"), "{table}");
    assert_eq!(table.matches("valid ").count(), 1, "{table}");

    let json = rows(&sb, &["pki", "list", "--json"]);
    let old_json = json.iter().find(|r| r["serial"] == old.as_str()).unwrap();
    assert_eq!(old_json["status"], "renewed");
    assert_eq!(old_json["replaced_by"], new.as_str());
    // Every file listed is where the list says.
    for r in &json {
        let file = r["file"].as_str().unwrap();
        assert_eq!(serial(&sb, file), r["serial"].as_str().unwrap(), "{r}");
    }
}

/// Regression: the index kept file paths as given, relative to the directory the command
/// ran in, so `pki list` from anywhere else named files that are not there.
#[test]
fn list_names_the_files_correctly_from_any_working_directory() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    // Issued from a subdirectory, with the CA given relative to it.
    let out = sb.run_in(
        "ops",
        &[
            "pki",
            "--dir",
            "../pki",
            "issue",
            "client",
            "bob",
            "--no-p12",
            "--ca-passphrase-file",
            "../ca.pass",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    sb.issue_client("carol");
    let bob = serial(&sb, "pki/issued/bob.crt");

    // From the sandbox and from another subdirectory, every listed file holds its
    // certificate.
    for (cwd, dir, prefix) in [
        (".", "pki", ""),
        ("elsewhere/deeper", "../../pki", "elsewhere/deeper/"),
    ] {
        let out = sb.run_in(cwd, &["pki", "--dir", dir, "list", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let json: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json.len(), 2);
        for r in &json {
            let file = r["file"].as_str().unwrap();
            assert_eq!(
                serial(&sb, &format!("{prefix}{file}")),
                r["serial"].as_str().unwrap(),
                "from {cwd}: {r}"
            );
        }
        let table = sb.run_in(cwd, &["pki", "--dir", dir, "list"]);
        let table = String::from_utf8_lossy(&table.stdout).into_owned();
        let row = table.lines().find(|l| l.contains(&bob)).unwrap();
        assert!(row.contains(&format!("{dir}/issued/bob.crt")), "{table}");
    }
}

/// `pki issue client NAME --days DAYS` without a bundle.
fn client(sb: &Sandbox, name: &str, days: &str) {
    sb.ok(&[
        "pki",
        "issue",
        "client",
        name,
        "--days",
        days,
        "--no-p12",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn needs_renewal_exits_0_when_due_1_when_not_and_2_on_error() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    client(&sb, "short", "1");
    client(&sb, "long", "90");
    let code = |args: &[&str]| {
        let o = sb.run(args);
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
        (o.status.code(), text(&o))
    };

    let (c, out) = code(&[
        "pki",
        "needs-renewal",
        "pki/issued/short.crt",
        "--within",
        "2d",
    ]);
    assert_eq!(c, Some(0), "{out}");
    assert!(out.starts_with("due: pki/issued/short.crt"), "{out}");
    let (c, out) = code(&[
        "pki",
        "needs-renewal",
        "pki/issued/long.crt",
        "--within",
        "2d",
    ]);
    assert_eq!(c, Some(1), "{out}");
    assert!(
        out.starts_with("not due:") && !out.contains("error"),
        "{out}"
    );
    // --json: the same answer for scripts, in the exit status and the document.
    for (file, due, status) in [("short", true, 0), ("long", false, 1)] {
        let path = format!("pki/issued/{file}.crt");
        let o = sb.run(&["pki", "--json", "needs-renewal", &path, "--within", "2d"]);
        assert_eq!(o.status.code(), Some(status), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["due"], due, "{v:#}");
        assert_eq!(v["file"], path.as_str());
    }
    // step's spelling, a chain file, and a share of the lifetime.
    let (c, out) = code(&[
        "pki",
        "needs-renewal",
        "pki/issued/long.chain.pem",
        "--expires-in",
        "100%",
    ]);
    assert_eq!(c, Some(0), "{out}");
    // The default, two thirds of the lifetime: neither has lived that long yet.
    for f in ["pki/issued/short.crt", "pki/issued/long.crt"] {
        let (c, out) = code(&["pki", "needs-renewal", f]);
        assert_eq!(c, Some(1), "{out}");
        assert!(out.contains("the last third of its lifetime"), "{out}");
    }
    // Errors: a missing file, a duration without a unit.
    let (c, out) = code(&["pki", "needs-renewal", "pki/issued/nobody.crt"]);
    assert_eq!(c, Some(2), "{out}");
    assert!(out.contains("pki/issued/nobody.crt"), "{out}");
    let (c, out) = code(&[
        "pki",
        "needs-renewal",
        "pki/issued/short.crt",
        "--within",
        "30",
    ]);
    assert_eq!(c, Some(2), "{out}");
    assert!(out.contains("30d"), "the error shows the form: {out}");
}

#[test]
fn list_expiring_lists_what_is_due_and_exits_1_then_0_once_nothing_is() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    client(&sb, "short", "1");
    client(&sb, "long", "90");
    let short = serial(&sb, "pki/issued/short.crt");
    let long = serial(&sb, "pki/issued/long.crt");

    let o = sb.run(&["pki", "list", "--expiring", "2d"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains(&short) && !out.contains(&long), "{out}");
    assert!(out.contains("pki/issued/short.crt"), "{out}");
    let o = sb.run(&["pki", "list", "--expiring", "2d", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let json: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["serial"], short.as_str());
    assert_eq!(json[0]["status"], "expiring");
    // Nothing within an hour: exit 0, and quiet (cron mails what a job prints).
    let o = sb.run(&["pki", "list", "--expiring", "1h"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stdout(&o), "");
    // A revoked certificate is not due.
    sb.revoke("pki/issued/short.crt", "cessation-of-operation");
    let o = sb.run(&["pki", "list", "--expiring", "2d"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Everything is due within 100 days.
    let o = sb.run(&["pki", "list", "--expiring", "100d"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains(&long), "{}", text(&o));
}

#[test]
fn renew_all_expiring_renews_exactly_the_due_ones_and_skips_what_needs_a_person() {
    let sb = Sandbox::new();
    sb.init_ca(true);
    client(&sb, "soon", "1");
    client(&sb, "later", "90");
    sb.ok(&[
        "pki",
        "issue",
        "server",
        "api.test",
        "--days",
        "1",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    // A client with a PKCS#12 bundle, and a server signed from a CSR (no key beside).
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "bundled",
        "--days",
        "1",
        "--p12-password-file",
        "p12.pass",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    sb.openssl_csr(
        "csr",
        "/CN=csr.test",
        &["-addext", "subjectAltName=DNS:csr.test"],
    );
    sb.ok(&[
        "pki",
        "sign",
        "csr.csr",
        "--profile",
        "server",
        "--days",
        "1",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let old: Vec<(String, String)> = ["soon", "later", "api.test", "bundled", "csr.test"]
        .iter()
        .map(|n| (n.to_string(), serial(&sb, &format!("pki/issued/{n}.crt"))))
        .collect();
    let serial_of = |n: &str| old.iter().find(|(m, _)| m == n).unwrap().1.clone();

    // From another directory, as a timer's working directory would be.
    let o = sb.run_in(
        "elsewhere",
        &[
            "pki",
            "--dir",
            "../pki",
            "renew",
            "--all-expiring",
            "--within",
            "2d",
            "--days",
            "30",
            "--ca-passphrase-file",
            "../ca.pass",
        ],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");
    for n in ["soon", "api.test"] {
        let now = serial(&sb, &format!("pki/issued/{n}.crt"));
        assert_ne!(now, serial_of(n), "{n} not renewed: {out}");
        assert!(
            out.contains(&format!("renewed {} as {now}", serial_of(n))),
            "{out}"
        );
    }
    for n in ["later", "bundled", "csr.test"] {
        assert_eq!(
            serial(&sb, &format!("pki/issued/{n}.crt")),
            serial_of(n),
            "{out}"
        );
    }
    let skipped = |n: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("skipped {}", serial_of(n))))
            .unwrap_or_else(|| panic!("{n} not skipped: {out}"))
            .to_owned()
    };
    assert!(skipped("bundled").contains("--p12-password-file"), "{out}");
    assert!(skipped("csr.test").contains("signed from a CSR"), "{out}");
    assert!(out.contains("2 renewed, 2 skipped, 0 failed"), "{out}");

    // The old rows show as renewed; what is left due is what was skipped.
    let json = rows(&sb, &["pki", "list", "--json"]);
    for n in ["soon", "api.test"] {
        let r = json
            .iter()
            .find(|r| r["serial"] == serial_of(n).as_str())
            .unwrap();
        assert_eq!(r["status"], "renewed", "{r}");
    }
    let o = sb.run(&["pki", "list", "--expiring", "2d", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let due: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let mut due: Vec<&str> = due.iter().map(|r| r["serial"].as_str().unwrap()).collect();
    due.sort();
    let mut want = vec![serial_of("bundled"), serial_of("csr.test")];
    want.sort();
    assert_eq!(due, want);

    // With the bundle's password, the bundled one renews too; the new bundle opens.
    // (With --json: one document, the same facts.)
    let out = sb.ok(&[
        "pki",
        "--json",
        "renew",
        "--all-expiring",
        "--within",
        "2d",
        "--p12-password-file",
        "p12.pass",
        "--days",
        "30",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["renewed"][0]["replaces"],
        serial_of("bundled").as_str(),
        "{doc:#}"
    );
    assert_eq!(
        doc["renewed"][0]["serial"],
        serial(&sb, "pki/issued/bundled.crt").as_str()
    );
    assert_eq!(doc["skipped"][0]["serial"], serial_of("csr.test").as_str());
    assert_eq!(doc["failed"].as_array().unwrap().len(), 0);
    let p12 = sb.tool(
        "openssl",
        &[
            "pkcs12",
            "-in",
            "pki/issued/bundled.p12",
            "-passin",
            "file:p12.pass",
            "-nokeys",
            "-clcerts",
        ],
    );
    assert!(p12.status.success(), "{}", text(&p12));

    // Every renewed certificate verifies against the CA for its purpose.
    for (n, purpose) in [
        ("soon", "sslclient"),
        ("bundled", "sslclient"),
        ("api.test", "sslserver"),
    ] {
        let v = sb.tool(
            "openssl",
            &[
                "verify",
                "-CAfile",
                "pki/root.crt",
                "-untrusted",
                "pki/intermediate.crt",
                "-purpose",
                purpose,
                &format!("pki/issued/{n}.crt"),
            ],
        );
        assert!(v.status.success(), "{n}: {}", text(&v));
    }
    // Nothing due any more but the CSR's: a run renews nothing.
    let out = sb.ok(&[
        "pki",
        "renew",
        "--all-expiring",
        "--within",
        "2d",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(out.contains("0 renewed, 1 skipped, 0 failed"), "{out}");
}

#[test]
fn renewing_with_a_lifetime_inside_the_window_warns_that_it_is_due_again() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    client(&sb, "tiny", "1");
    let o = sb.run(&[
        "pki",
        "renew",
        "--all-expiring",
        "--within",
        "2d",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("due for renewal at once") && err.contains("--days"),
        "{err}"
    );
}

/// A renewal keeps each key as it was: an encrypted key's successor is encrypted (asked
/// for, never silently dropped), a plain one stays plain (what reads it has no passphrase),
/// one by one and in a batch.
#[test]
fn renewed_keys_are_encrypted_exactly_when_the_old_ones_were() {
    let sb = Sandbox::new();
    sb.init_ca(false);
    let encrypted = |file: &str| {
        std::fs::read_to_string(sb.path(file))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    };
    sb.ok(&[
        "pki",
        "issue",
        "client",
        "dave",
        "--days",
        "1",
        "--no-p12",
        "--key-passphrase-file",
        "key.pass",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    client(&sb, "erin", "1");
    assert!(encrypted("pki/issued/dave.key") && !encrypted("pki/issued/erin.key"));

    // One by one: without a passphrase (and no terminal to ask on), dave's is refused.
    let said = sb.fails(&[
        "pki",
        "renew",
        "pki/issued/dave.crt",
        "--no-p12",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    assert!(said.contains("--key-passphrase-file"), "{said}");
    assert!(encrypted("pki/issued/dave.key"));

    // In a batch with a passphrase: dave's new key is encrypted, erin's stays plain.
    sb.ok(&[
        "pki",
        "renew",
        "--all-expiring",
        "--within",
        "2d",
        "--no-p12",
        "--key-passphrase-file",
        "key.pass",
        "--ca-passphrase-file",
        "ca.pass",
    ]);
    let renewed = rows(&sb, &["pki", "list", "--json"])
        .iter()
        .filter(|r| r["status"] == "renewed")
        .count();
    assert_eq!(renewed, 2);
    assert!(
        encrypted("pki/issued/dave.key"),
        "dave's new key must stay encrypted"
    );
    assert!(
        !encrypted("pki/issued/erin.key"),
        "erin's new key must stay plain"
    );
}

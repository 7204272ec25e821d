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

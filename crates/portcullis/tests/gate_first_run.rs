//! `portcullis serve` with no configuration, in an empty directory: it sets up a
//! development CA and prints commands; every printed command must work exactly as printed.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod gate_support;

use std::process::Command;

use common::browser::Browser;
use gate_support::Gate;

/// Runs one printed command line with `sh -c` in `dir`; returns (success, stdout).
fn run_printed(dir: &std::path::Path, line: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", line])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn first_run_sets_up_and_every_printed_command_works() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::start_in(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]);
    assert!(
        gate.stdout.contains("Created a development CA"),
        "{}",
        gate.stdout
    );
    for f in [
        ".portcullis/dev/root.crt",
        ".portcullis/dev/issued/alice.p12",
        ".portcullis/dev/portcullis.toml",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }

    let commands: Vec<&str> = gate
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl ") || l.starts_with("node "))
        .collect();
    assert_eq!(commands.len(), 6, "{}", gate.stdout);
    let mut saw = Vec::new();
    for line in &commands {
        let (ok, body) = run_printed(dir.path(), line);
        assert!(ok, "printed command failed: {line}\n{body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{line}: {body}"));
        saw.push((line.to_string(), v));
    }
    // What each command shows, in order: home (anonymous), /me without a cert (401),
    // alice on /admin/, bob on /me, alice via PKCS#12, alice via Node.
    assert_eq!(saw[0].1["authenticated"], false);
    assert_eq!(saw[1].1["error"], "client_certificate_required");
    assert_eq!(saw[2].1["subject"]["cn"], "alice");
    assert_eq!(saw[2].1["roles"][0], "admin");
    assert_eq!(saw[3].1["subject"]["cn"], "bob");
    assert_eq!(saw[3].1["roles"][0], "user");
    assert_eq!(saw[4].1["subject"]["cn"], "alice");
    assert_eq!(saw[5].1["subject"]["cn"], "alice");

    // bob really is kept out of /admin/ by the sample policy.
    let bob = commands[3].replace("/me", "/admin/");
    let (_, body) = run_printed(dir.path(), &bob);
    assert!(
        body.contains("\"status\":403") && body.contains("role admin"),
        "{body}"
    );
    drop(gate);

    // A second run reuses everything.
    let before = std::fs::read(dir.path().join(".portcullis/dev/root.crt")).unwrap();
    let again = Gate::start_in(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]);
    assert!(
        again.stdout.contains("Using the development CA"),
        "{}",
        again.stdout
    );
    assert_eq!(
        std::fs::read(dir.path().join(".portcullis/dev/root.crt")).unwrap(),
        before
    );
    let line = again
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("curl ") && l.contains("alice.key"))
        .unwrap();
    let (ok, body) = run_printed(dir.path(), line);
    assert!(ok && body.contains("\"cn\":\"alice\""), "{body}");
}

#[test]
fn check_explains_a_config_and_locates_errors() {
    let dir = tempfile::tempdir().unwrap();
    // The first run writes the sample config; `check` must accept it and explain it.
    drop(Gate::start_in(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[],
    ));
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let out = Command::new(bin)
        .args(["check", "-c", ".portcullis/dev/portcullis.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("client_auth  optional"), "{text}");
    assert!(text.contains("/admin/** role:admin"), "{text}");
    assert!(text.contains("Portcullis Dev Root CA"), "{text}");

    let bad = dir.path().join("bad.toml");
    let sample =
        std::fs::read_to_string(dir.path().join(".portcullis/dev/portcullis.toml")).unwrap();
    std::fs::write(
        &bad,
        sample.replace("require = \"role:admin\"", "require = \"role:root\""),
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    let line = sample
        .lines()
        .position(|l| l.contains("role:admin"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("bad.toml:{line}: rules[2]")), "{err}");
    assert!(
        err.contains("\"root\"") && err.contains("roles defined: admin, user"),
        "{err}"
    );

    // With --json, scripts get the same facts, and a bad config is JSON too (exit 2).
    let json = |config: &std::path::Path| {
        let out = Command::new(bin)
            .args(["check", "--json", "-c"])
            .arg(config)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (out.status.code(), v)
    };
    let (code, good) = json(&dir.path().join(".portcullis/dev/portcullis.toml"));
    assert_eq!((code, &good["ok"]), (Some(0), &true.into()), "{good:#}");
    let host = &good["hosts"][0];
    assert_eq!(host["client_auth"], "optional");
    assert!(
        host["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().ends_with(" /admin/** role:admin")),
        "{good:#}"
    );
    assert!(
        host["client_ca"][0]
            .as_str()
            .unwrap()
            .contains("Portcullis Dev Root CA"),
        "{good:#}"
    );
    let (code, failed) = json(&bad);
    assert_eq!(
        (code, &failed["ok"]),
        (Some(2), &false.into()),
        "{failed:#}"
    );
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains(&format!("bad.toml:{line}: rules[2]")),
        "{failed:#}"
    );
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&good), keys(&failed));
}

/// The printed browser steps, followed in a real browser: headless Chromium whose NSS
/// database trusts the development root (put there by `pki trust install`) and holds
/// alice's or bob's PKCS#12 bundle, imported with the printed password, or no bundle at
/// all. Each page is judged by its text (Chromium exits 0 whatever happened); each is
/// also screenshotted into the test's directory.
#[test]
fn first_run_in_a_real_browser_alice_bob_and_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::start_in(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]);
    // "1. Import .portcullis/dev/issued/alice.p12 (password: …) into the browser's …"
    let password = gate
        .stdout
        .lines()
        .find_map(|l| l.split("(password: ").nth(1))
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no p12 password printed:\n{}", gate.stdout));
    let origin = format!("https://localhost:{}", gate.port);
    assert!(
        gate.stdout.contains(&format!("Open {origin}/me")),
        "{}",
        gate.stdout
    );

    let browser = |who: &str| {
        let mut b = Browser::new(&dir.path().join(format!("browser-{who}")));
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "pki",
                "--dir",
                ".portcullis/dev",
                "trust",
                "install",
                "--store",
                "nss",
            ])
            .arg("--nss-db")
            .arg(b.db())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::text(&out));
        if who != "nobody" {
            let p12 = dir.path().join(format!(".portcullis/dev/issued/{who}.p12"));
            b.import_p12(&p12, password);
            b.auto_select(&origin, who);
        }
        b
    };

    // alice: the who-am-I page, her certificate's fields and her role.
    let visit = browser("alice").visit(&format!("{origin}/me"), "alice", true);
    visit.assert_screenshot();
    let dom = &visit.dom;
    assert!(
        dom.contains("<h1>Authorized</h1>"),
        "{dom}\n{}",
        visit.stderr
    );
    assert!(
        dom.contains("Hello alice, your certificate was issued by CN=Portcullis Dev"),
        "{dom}"
    );
    for row in [
        "<th>Common name (CN)</th><td>alice</td>",
        "<th>Organizational unit (OU)</th><td>Admins</td>",
        "<th>Roles</th><td>admin</td>",
    ] {
        assert!(dom.contains(row), "{row} missing from:\n{dom}");
    }

    // No certificate: the 401 page, which says how to get and install one.
    let visit = browser("nobody").visit(&format!("{origin}/me"), "nobody", true);
    visit.assert_screenshot();
    let dom = &visit.dom;
    assert!(
        dom.contains("<h1>A client certificate is required</h1>"),
        "{dom}\n{}",
        visit.stderr
    );
    assert!(dom.contains("Manage certificates"), "{dom}");

    // bob: known, but without the role /admin/ requires; the 403 page names it.
    let visit = browser("bob").visit(&format!("{origin}/admin/"), "bob", true);
    visit.assert_screenshot();
    let dom = &visit.dom;
    assert!(
        dom.contains("<h1>Access denied</h1>"),
        "{dom}\n{}",
        visit.stderr
    );
    assert!(dom.contains("it needs <b>role admin</b>"), "{dom}");
    assert!(dom.contains("CN=bob"), "{dom}");
}

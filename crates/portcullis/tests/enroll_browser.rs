//! Browser enrolment (issue 16) through the real binary and a real browser: a person
//! opens the link `pki enroll create --url` prints, in headless Chromium driven by
//! playwright-core over CDP; the page makes the key, the request and the PKCS#12; the
//! file imports into a fresh NSS database with `pk12util`, and a second Chromium reaches
//! `/me` with it. The page itself: a strict Content-Security-Policy, no inline script,
//! no request to anything but the gate. Spent and expired links are refused in the page.
//! Needs node, npm (playwright-core from the committed lockfile), chromium, certutil,
//! pk12util and openssl: `scripts/setup` installs them; a missing one is a failure.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod gate_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::browser::Browser;
use gate_support::*;
use serde_json::Value;

/// The password the person types for the PKCS#12 file.
const PASSWORD: &str = "correct horse battery";

/// `pki enroll create NAME --url URL EXTRA…`, as an operator runs it: returns the
/// browser link it prints, and the token (the line before the instructions).
fn link(dir: &Path, name: &str, url: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "pki", "--dir", "pki", "enroll", "create", name, "--url", url,
    ];
    args.extend_from_slice(extra);
    let o = portcullis_in(dir, &args);
    let said = common::text(&o);
    assert!(o.status.success(), "{said}");
    let link = said
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{url}#")))
        .unwrap_or_else(|| panic!("no browser link printed:\n{said}"));
    let token = link.rsplit('#').next().unwrap();
    assert!(said.lines().any(|l| l == token), "{said}");
    assert!(
        said.contains(&format!("portcullis enroll {url} --token-file")),
        "{said}"
    );
    (link.to_owned(), token.to_owned())
}

/// playwright-core from the committed lockfile, in a directory of this test's own: npm's
/// cache makes the install quick after the first, and tests running at once share
/// nothing. Uses the system Chromium; no browser is downloaded.
fn driver(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/playwright");
    let to = dir.join("playwright");
    std::fs::create_dir_all(&to).unwrap();
    for f in ["package.json", "package-lock.json", "enroll.mjs"] {
        std::fs::copy(src.join(f), to.join(f)).unwrap();
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--prefer-offline", "--no-audit", "--no-fund"])
        .current_dir(&to)
        .env("npm_config_update_notifier", "false");
    let (ok, out, err) = common::bounded(npm, Duration::from_secs(150), &dir.join("logs-npm"));
    assert!(ok, "npm ci in {}:\n{out}{err}", to.display());
    to
}

/// A browser whose NSS database trusts the test CA's root: the gate's certificate
/// verifies, as it would for a person (no certificate error is ignored).
fn browser(pki: &Pki, dir: &Path) -> Browser {
    let b = Browser::new(dir);
    b.certutil(&[
        "-A",
        "-n",
        "Portcullis test root",
        "-t",
        "C,,",
        "-i",
        &pki.root(),
    ]);
    b
}

/// One visit to `url` in `browser`, typing the password; the PKCS#12, if any, is saved
/// as `out`. Returns what the driver saw (see tests/playwright/enroll.mjs).
fn enrol(driver: &Path, browser: &Browser, url: &str, out: &Path, run: &str) -> Value {
    let cfg = serde_json::json!({
        "url": url,
        "home": browser.home(),
        "password": PASSWORD,
        "out": out,
    });
    let mut node = Command::new("node");
    node.arg(driver.join("enroll.mjs"))
        .arg(cfg.to_string())
        .current_dir(driver);
    let logs = driver.join(format!("logs-{run}"));
    let (ok, stdout, stderr) = common::bounded(node, Duration::from_secs(90), &logs);
    assert!(ok, "the browser run {run} failed:\n{stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// The page kept to the gate and to its policy during a run.
fn assert_kept_to_itself(v: &Value, origin: &str) {
    assert_eq!(v["csp_violations"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["blocked"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["page_errors"], serde_json::json!([]), "{v:#}");
    let console = v["console"].as_array().unwrap();
    assert!(
        !console
            .iter()
            .any(|m| m.as_str().unwrap().contains("Content Security Policy")),
        "{v:#}"
    );
    let requests = v["requests"].as_array().unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.as_str().unwrap().starts_with(&format!("{origin}/"))),
        "{v:#}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.as_str().unwrap() == format!("{origin}/enroll/enroll.js")),
        "{v:#}"
    );
}

#[test]
fn a_browser_enrols_and_the_bundle_reaches_me_in_another_browser() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let config = pki.config("optional", "builtin:whoami", "[enroll]\nca = \"pki\"\n");
    let gate = Gate::start(&config);
    let origin = format!("https://localhost:{}", gate.port);
    let (link, token) = link(dir, "erin", &gate.url("/enroll"), &["--ou", "Users"]);
    let node = driver(dir);

    // The person: open the link, type a password, download the file.
    let a = browser(&pki, &dir.join("browser-a"));
    let p12 = dir.join("erin.p12");
    let v = enrol(&node, &a, &link, &p12, "erin");
    assert_eq!(v["outcome"], "download", "{v:#}");
    assert_eq!(v["cn"], "erin", "{v:#}");
    assert_eq!(v["file_name"], "erin.p12", "{v:#}");
    eprintln!("key, request, certificate and PKCS#12: {} s", v["seconds"]);
    // The token left the address bar (and the history) as soon as the page read it.
    assert_eq!(v["url_after_load"], format!("{origin}/enroll"), "{v:#}");
    assert_kept_to_itself(&v, &origin);
    // It travelled in the fragment and the request body, never in a logged path: the
    // gate's log has the requests and the issue, not the token.
    // The log is written in batches: wait for the lines rather than race them.
    assert!(
        gate.logged_more(&["/enroll/csr"], 0) && gate.logged_more(&["enroll: token used"], 0),
        "{}",
        gate.output()
    );
    let log = gate.output();
    assert!(!log.contains(&token), "{log}");

    // OpenSSL 3 reads the file with the password, and says how it is protected.
    let pass = dir.join("p12.pass");
    std::fs::write(&pass, format!("{PASSWORD}\n")).unwrap();
    let passin = format!("file:{}", pass.display());
    let info = Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-passin", &passin, "-in"])
        .arg(&p12)
        .output()
        .unwrap();
    let said = common::text(&info);
    assert!(info.status.success(), "{said}");
    for algorithm in [
        "MAC: sha256",
        "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC",
        "PRF hmacWithSHA256",
        "Certificate bag",
    ] {
        assert!(said.contains(algorithm), "{algorithm} missing:\n{said}");
    }
    let pems = Command::new("openssl")
        .args(["pkcs12", "-nodes", "-passin", &passin, "-in"])
        .arg(&p12)
        .output()
        .unwrap();
    let pems = common::text(&pems);
    assert!(pems.contains("-----BEGIN PRIVATE KEY-----"), "{pems}");
    assert!(pems.contains("subject=OU = Users, CN = erin"), "{pems}");
    let wrong = dir.join("wrong.pass");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let refused = Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-passin"])
        .arg(format!("file:{}", wrong.display()))
        .arg("-in")
        .arg(&p12)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", common::text(&refused));

    // Another browser: a fresh NSS database, the file imported with pk12util, and the
    // gate's who-am-I page at /me for erin, with the role her OU grants.
    let mut b = browser(&pki, &dir.join("browser-b"));
    b.import_p12(&p12, PASSWORD);
    assert!(b.list().contains("erin"), "{}", b.list());
    b.auto_select(&origin, "erin");
    let visit = b.visit(&format!("{origin}/me"), "me", false);
    for row in [
        "<th>Common name (CN)</th><td>erin</td>",
        "<th>Organizational unit (OU)</th><td>Users</td>",
        "<th>Roles</th><td>user</td>",
    ] {
        assert!(
            visit.dom.contains(row),
            "{row} missing from:\n{}\n{}",
            visit.dom,
            visit.stderr
        );
    }

    // The CA recorded the use; the same link again is refused, in the page.
    let o = portcullis_in(dir, &["pki", "--dir", "pki", "--json", "enroll", "list"]);
    let tokens: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tokens[0]["state"], "used", "{tokens:#}");
    let again = enrol(&node, &a, &link, &dir.join("again.p12"), "again");
    assert_eq!(again["outcome"], "error", "{again:#}");
    assert_eq!(
        again["error"], "The gate refused: this enrolment token was already used",
        "{again:#}"
    );
    assert!(!dir.join("again.p12").exists());
    assert_kept_to_itself(&again, &origin);
}

#[test]
fn the_page_has_a_strict_policy_and_shows_refusals() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let config = pki.config("optional", "builtin:whoami", "[enroll]\nca = \"pki\"\n");
    let gate = Gate::start(&config);
    let origin = format!("https://localhost:{}", gate.port);

    // The page, its script and its style: each with the policy and the other headers.
    for (path, kind) in [
        ("/enroll", "text/html"),
        ("/enroll/enroll.js", "text/javascript"),
        ("/enroll/enroll.css", "text/css"),
    ] {
        let headers = dir.join("headers.txt");
        let r = curl(&pki, &["-D", headers.to_str().unwrap()], &gate.url(path));
        assert_eq!(r.status, "200", "{path}: {r:?}");
        let headers = std::fs::read_to_string(&headers).unwrap().to_lowercase();
        for h in [
            format!("content-type: {kind}"),
            "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'".into(),
            "x-content-type-options: nosniff".into(),
            "referrer-policy: no-referrer".into(),
            "cache-control: no-store".into(),
        ] {
            assert!(headers.contains(&h), "{path}: no {h:?} in\n{headers}");
        }
    }
    // No inline script and no event-handler attributes: every <script> has a src and no
    // body; no `on…=` attribute anywhere; no style attribute or element either.
    let html = curl(&pki, &[], &gate.url("/enroll")).body;
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "{html}");
    for s in &scripts {
        let (tag, rest) = s.split_once('>').unwrap();
        assert!(tag.contains("src=\"/enroll/enroll.js\""), "{tag}");
        assert!(rest.starts_with("</script>"), "an inline script body: {s}");
    }
    let lower = html.to_lowercase();
    let handlers: Vec<&str> = lower
        .split_whitespace()
        .filter(|w| {
            w.split_once('=').is_some_and(|(name, _)| {
                name.len() > 2
                    && name.starts_with("on")
                    && name.chars().all(|c| c.is_ascii_lowercase())
            })
        })
        .collect();
    assert!(
        handlers.is_empty(),
        "event-handler attributes {handlers:?} in:\n{html}"
    );
    assert!(
        !lower.contains("style=") && !lower.contains("<style"),
        "{html}"
    );
    // Other methods are not the page's.
    let r = curl(&pki, &["-X", "POST"], &gate.url("/enroll"));
    assert_eq!(r.status, "405", "{r:?}");

    let node = driver(dir);
    let a = browser(&pki, &dir.join("browser"));

    // An expired link: the page shows the gate's refusal.
    let (expired, _) = link(dir, "late", &gate.url("/enroll"), &["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let v = enrol(&node, &a, &expired, &dir.join("late.p12"), "expired");
    assert_eq!(v["outcome"], "error", "{v:#}");
    assert_eq!(
        v["error"], "The gate refused: this enrolment token has expired",
        "{v:#}"
    );
    assert!(!dir.join("late.p12").exists());
    assert_kept_to_itself(&v, &origin);

    // No token in the link: the page says what it needs, and asks the gate nothing.
    let v = enrol(
        &node,
        &a,
        &gate.url("/enroll"),
        &dir.join("none.p12"),
        "none",
    );
    assert_eq!(v["outcome"], "error", "{v:#}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("needs your enrolment link"),
        "{v:#}"
    );
    assert!(!v["requests"].to_string().contains("/enroll/csr"), "{v:#}");
}

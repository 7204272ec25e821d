//! `doctor --as CLIENT`: trust judged with the store that client uses on this machine,
//! against a real server whose private CA the test makes, with the environment variables
//! set for the doctor's process only. Each verdict is checked against the real client
//! (node, Python requests and urllib, curl) run with the same environment: the doctor
//! must say what the client does, and name the store and the knob that changes it.

// Integration tests: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod doctor_support;

use common::Sandbox;
use doctor_support::*;

/// A server for localhost whose certificate a private root issued; `ca.pem` holds that
/// root. Returns the URL.
fn private_server(sb: &Sandbox) -> String {
    let ca = root("Private Test Root CA");
    let leaf = server_leaf(&ca);
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server::new(&leaf).start();
    format!("https://localhost:{port}/")
}

/// Whether the real client, run with `env`, fetched `url` with verification on; with
/// its output for failure messages.
fn client_fetches(
    sb: &Sandbox,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut all = vec!["15", program];
    all.extend_from_slice(args);
    let out = client_command(sb, "timeout", &all, env)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (out.status.success(), common::text(&out))
}

fn node_fetches(sb: &Sandbox, url: &str, env: &[(&str, &str)]) -> (bool, String) {
    let script = format!(
        "require('node:https').get({url:?}, (r) => {{ console.log('status', r.statusCode); r.resume(); }})\
         .on('error', (e) => {{ console.error(e.code, e.message); process.exit(1); }});"
    );
    client_fetches(sb, "node", &["-e", &script], env)
}

fn trust_of<'a>(run: &'a Run, store: &str) -> &'a serde_json::Value {
    run.json["observations"]["trust"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["store"] == store)
        .unwrap_or_else(|| panic!("no verdict for the {store} store: {:#}", run.json))
}

fn assert_contains(what: &str, text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "{what} lacks {w:?}: {text}");
    }
}

#[test]
fn as_node_trusts_a_private_ca_only_with_node_extra_ca_certs() {
    let sb = Sandbox::new();
    let url = private_server(&sb);
    let ca = sb.path("ca.pem").display().to_string();

    // Unset: Node's bundled Mozilla list does not hold the private root.
    let run = doctor_env(&sb, &[&url, "--as", "node"], &[]);
    assert_secure("--as node", &run.json.to_string());
    expect(&run, 1, "untrusted-root");
    let summary = run.finding("untrusted-root")["summary"].to_string();
    assert_contains(
        "the summary",
        &summary,
        &[
            "node store",
            "Node v",
            "Node's bundled Mozilla CA list (tls.rootCertificates",
            "NODE_EXTRA_CA_CERTS not set",
        ],
    );
    // The first Node fix is the knob of Node's store.
    assert_contains(
        "the Node fix",
        &fix_for(&run, "untrusted-root", "node"),
        &["NODE_EXTRA_CA_CERTS=", "root-ca.pem"],
    );
    let (ok, out) = node_fetches(&sb, &url, &[]);
    assert!(!ok, "node without NODE_EXTRA_CA_CERTS should refuse: {out}");

    // Set, for the doctor's process only: trusted, and the store says where from.
    let env = [("NODE_EXTRA_CA_CERTS", ca.as_str())];
    let run = doctor_env(&sb, &[&url, "--as", "node"], &env);
    expect(&run, 0, "ok");
    let v = trust_of(&run, "node");
    assert_eq!(v["trusted"], true, "{v:#}");
    assert_contains(
        "the node store's sources",
        &v["sources"].to_string(),
        &[&format!("NODE_EXTRA_CA_CERTS= {ca} (1 certificate)")],
    );
    let (ok, out) = node_fetches(&sb, &url, &env);
    assert!(ok, "node with NODE_EXTRA_CA_CERTS should connect: {out}");
}

#[test]
fn as_python_judges_requests_by_certifi_and_the_ssl_module_without_it() {
    let sb = Sandbox::new();
    let url = private_server(&sb);
    let ca = sb.path("ca.pem").display().to_string();
    let (has_certifi, out) =
        client_fetches(&sb, "python3", &["-c", "import certifi, requests"], &[]);
    assert!(
        has_certifi,
        "python3 needs certifi and requests (scripts/setup installs them): {out}"
    );
    let requests = format!("import requests; print(requests.get({url:?}).status_code)");

    // requests with certifi's bundle.
    let run = doctor_env(&sb, &[&url, "--as", "python"], &[]);
    assert_secure("--as python", &run.json.to_string());
    expect(&run, 1, "untrusted-root");
    assert_contains(
        "the summary",
        &run.finding("untrusted-root")["summary"].to_string(),
        &[
            "python requests store",
            "certifi",
            "cacert.pem",
            "REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE not set",
        ],
    );
    assert_contains(
        "the Python fix",
        &fix_for(&run, "untrusted-root", "python"),
        &["REQUESTS_CA_BUNDLE=", "verify="],
    );
    let (ok, out) = client_fetches(&sb, "python3", &["-c", &requests], &[]);
    assert!(
        !ok,
        "requests without REQUESTS_CA_BUNDLE should refuse: {out}"
    );

    let env = [("REQUESTS_CA_BUNDLE", ca.as_str())];
    let run = doctor_env(&sb, &[&url, "--as", "python"], &env);
    expect(&run, 0, "ok");
    assert_eq!(trust_of(&run, "python requests")["trusted"], true);
    // urllib (the ssl module) does not read REQUESTS_CA_BUNDLE: a warning says so.
    assert_contains(
        "the warning",
        &run.finding("trust-store-differs")["summary"].to_string(),
        &["python ssl store"],
    );
    let (ok, out) = client_fetches(&sb, "python3", &["-c", &requests], &env);
    assert!(ok, "requests with REQUESTS_CA_BUNDLE should connect: {out}");

    // A Python without certifi (a bare virtualenv first on PATH): the ssl module's
    // default paths, and its knobs.
    let venv = sb.path("venv");
    let made = sb.tool(
        "python3",
        &["-m", "venv", "--without-pip", venv.to_str().unwrap()],
    );
    assert!(made.status.success(), "{}", common::text(&made));
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let urllib = format!("import urllib.request; print(urllib.request.urlopen({url:?}).status)");
    let env = [("PATH", path.as_str())];
    let run = doctor_env(&sb, &[&url, "--as", "python"], &env);
    expect(&run, 1, "untrusted-root");
    assert_contains(
        "the summary",
        &run.finding("untrusted-root")["summary"].to_string(),
        &[
            "python ssl store",
            "certifi is not installed",
            &venv.display().to_string(),
            "SSL_CERT_FILE not set",
        ],
    );
    assert!(
        run.json["observations"]["trust"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["store"] != "python requests"),
        "no requests store without certifi: {:#}",
        run.json
    );
    assert_contains(
        "the Python fix",
        &fix_for(&run, "untrusted-root", "python"),
        &["cafile=", "SSL_CERT_FILE="],
    );
    let (ok, out) = client_fetches(&sb, "python3", &["-c", &urllib], &env);
    assert!(!ok, "urllib without SSL_CERT_FILE should refuse: {out}");

    let env = [("PATH", path.as_str()), ("SSL_CERT_FILE", ca.as_str())];
    let run = doctor_env(&sb, &[&url, "--as", "python"], &env);
    expect(&run, 0, "ok");
    assert_contains(
        "the python ssl store's sources",
        &trust_of(&run, "python ssl")["sources"].to_string(),
        &[&format!("SSL_CERT_FILE= {ca}")],
    );
    let (ok, out) = client_fetches(&sb, "python3", &["-c", &urllib], &env);
    assert!(ok, "urllib with SSL_CERT_FILE should connect: {out}");
}

#[test]
fn as_curl_trusts_a_private_ca_with_curl_ca_bundle() {
    let sb = Sandbox::new();
    let url = private_server(&sb);
    let ca = sb.path("ca.pem").display().to_string();

    let run = doctor_env(&sb, &[&url, "--as", "curl"], &[]);
    assert_secure("--as curl", &run.json.to_string());
    expect(&run, 1, "untrusted-root");
    assert_contains(
        "the summary",
        &run.finding("untrusted-root")["summary"].to_string(),
        &[
            "curl store",
            "CURL_CA_BUNDLE, SSL_CERT_FILE and SSL_CERT_DIR not set",
            "/etc/ssl/certs",
        ],
    );
    assert_contains(
        "the curl fix",
        &fix_for(&run, "untrusted-root", "curl"),
        &["--cacert root-ca.pem", "CURL_CA_BUNDLE="],
    );
    let (ok, out) = client_fetches(&sb, "curl", &["-sS", &url], &[]);
    assert!(!ok, "curl without a CA should refuse: {out}");

    let env = [("CURL_CA_BUNDLE", ca.as_str())];
    let run = doctor_env(&sb, &[&url, "--as", "curl"], &env);
    expect(&run, 0, "ok");
    assert_contains(
        "the curl store's sources",
        &trust_of(&run, "curl")["sources"].to_string(),
        &[&format!("CURL_CA_BUNDLE= {ca}")],
    );
    let (ok, out) = client_fetches(&sb, "curl", &["-sS", &url], &env);
    assert!(ok, "curl with CURL_CA_BUNDLE should connect: {out}");
    // --cacert, the other knob the fix names, works too.
    let (ok, out) = client_fetches(&sb, "curl", &["-sS", "--cacert", &ca, &url], &[]);
    assert!(ok, "curl --cacert should connect: {out}");
}

/// "It works from curl but not from Node": curl's store holds the private root, Node's
/// does not. `--as node --compare` names the store that differs and Node's fix; every
/// client gets a row.
#[test]
fn compare_answers_works_from_curl_but_not_from_node() {
    let sb = Sandbox::new();
    let url = private_server(&sb);
    let ca = sb.path("ca.pem").display().to_string();
    let env = [("CURL_CA_BUNDLE", ca.as_str())];
    assert!(client_fetches(&sb, "curl", &["-sS", &url], &env).0);
    assert!(!node_fetches(&sb, &url, &env).0);

    let run = doctor_env(&sb, &[&url, "--as", "node", "--compare"], &env);
    assert_secure("--as node --compare", &run.json.to_string());
    expect(&run, 1, "trust-store-differs");
    let finding = run.finding("trust-store-differs");
    assert_contains(
        "the summary",
        &finding["summary"].to_string(),
        &[
            "node does not trust",
            "NODE_EXTRA_CA_CERTS not set",
            "the python requests and curl stores trust it",
        ],
    );
    let fixes = finding["fixes"].to_string();
    assert_contains("the fixes", &fixes, &["NODE_EXTRA_CA_CERTS="]);
    assert!(
        !fixes.contains("--cacert"),
        "the fix is for the failing client only: {fixes}"
    );
    let rows = run.json["compare"]["rows"].as_array().unwrap();
    for client in [
        "node",
        "python requests",
        "python ssl",
        "curl",
        "openssl",
        "java",
        "go",
        "rustls native-certs",
        "rustls webpki-roots",
    ] {
        let row = rows
            .iter()
            .find(|r| r["profile"] == format!("as {client}"))
            .unwrap_or_else(|| panic!("no row as {client}: {rows:#?}"));
        // requests reads CURL_CA_BUNDLE too (after REQUESTS_CA_BUNDLE).
        assert_eq!(
            row["ok"],
            client == "curl" || client == "python requests",
            "{row:#}"
        );
    }
    let requests = format!("import requests; print(requests.get({url:?}).status_code)");
    let (ok, out) = client_fetches(&sb, "python3", &["-c", &requests], &env);
    assert!(ok, "requests reads CURL_CA_BUNDLE: {out}");
    // The first client row that works is the difference.
    assert_eq!(
        run.json["compare"]["difference"], "trust store: works as python requests",
        "{:#}",
        run.json["compare"]
    );
    // The JDK's cacerts was read, whatever its format.
    let java = rows.iter().find(|r| r["profile"] == "as java").unwrap();
    assert_contains(
        "the java row",
        &java["outcome"].to_string(),
        &["cacerts", "certificates)"],
    );
}

//! The gate, end to end: the real binary, real TLS, real clients (curl, openssl s_client,
//! Node.js), a real upstream. Each test asserts what a user relies on: who gets in, what
//! the upstream sees.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gate_support;

use gate_support::*;

#[test]
fn clients_reach_whoami_with_curl_pem_and_p12_openssl_and_node() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));

    let r = curl_as(&pki, "alice", &[], &gate.url("/me"));
    assert_eq!(r.status, "200", "{r:?}");
    let v = json(&r.body);
    assert_eq!(v["subject"]["cn"], "alice");
    assert_eq!(v["subject"]["email"], "alice@example.com");
    assert_eq!(v["subject"]["ou"][0], "Admins");
    assert_eq!(v["roles"][0], "admin");
    assert!(
        v["issuer"]
            .as_str()
            .unwrap()
            .contains("Portcullis Issuing CA")
    );

    let p12 = format!("{}:{P12_PASS}", pki.path("pki/issued/bob.p12").display());
    let r = curl(
        &pki,
        &["--cert-type", "P12", "--cert", &p12],
        &gate.url("/me"),
    );
    assert_eq!(r.status, "200", "{r:?}");
    assert_eq!(json(&r.body)["subject"]["cn"], "bob");

    // Browsers get the HTML page with the same facts.
    let r = curl_as(
        &pki,
        "alice",
        &["-H", "Accept: text/html"],
        &gate.url("/me"),
    );
    assert!(
        r.body.contains("<h1>Authorized</h1>") && r.body.contains("alice@example.com"),
        "{}",
        r.body
    );
    // Validity as `pki inspect` prints it (alice's certificate is good for 30 days), and
    // no rows for what her certificate does not have (O, DNS names).
    let inspected = portcullis_pki::inspect::inspect(&pki.path("pki/issued/alice.crt"), None);
    let Some(portcullis_pki::inspect::Object::Certificate(alice)) =
        inspected.unwrap().objects.into_iter().next()
    else {
        panic!("alice.crt holds no certificate")
    };
    let valid = format!(
        "<th>Valid</th><td>{} to {} (expires in ",
        alice.not_before, alice.not_after
    );
    assert!(r.body.contains(&valid), "no {valid:?} in {}", r.body);
    // Exactly 30 days when the page is rendered in the second the certificate was issued.
    assert!(
        r.body.contains("(expires in 29 days)</td>")
            || r.body.contains("(expires in 30 days)</td>"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<th>Organizational unit (OU)</th><td>Admins</td>")
    );
    for absent in ["Organization (O)", "DNS names", "Unix time"] {
        assert!(!r.body.contains(absent), "{absent:?} in {}", r.body);
    }

    let out = s_client(
        &pki,
        gate.port,
        Some("bob"),
        "GET /me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"cn\":\"bob\""), "{out}");

    // Node with an encrypted key and its passphrase.
    let script = r#"
        const fs = require('fs'), https = require('https');
        const [port, ca, cert, key, passphrase] = process.argv.slice(1);
        https.get({ host: 'localhost', port, path: '/me', ca: fs.readFileSync(ca),
                    cert: fs.readFileSync(cert), key: fs.readFileSync(key), passphrase }, res => {
            let body = ''; res.on('data', d => body += d);
            res.on('end', () => console.log(res.statusCode + ' ' + body));
        }).on('error', e => { console.log('error ' + e.code); process.exit(1); });
    "#;
    let (cert, key) = pki.client("carol");
    let out = std::process::Command::new("node")
        .args([
            "-e",
            script,
            &gate.port.to_string(),
            &pki.root(),
            &cert,
            &key,
            KEY_PASS,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("200 "),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"cn\":\"carol\""), "{text}");
}

#[test]
fn optional_mode_401_403_200() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));

    let r = curl(&pki, &[], &gate.url("/"));
    assert_eq!(r.status, "200");
    assert_eq!(json(&r.body)["authenticated"], false);

    let r = curl(&pki, &[], &gate.url("/me"));
    assert_eq!(r.status, "401");
    assert_eq!(json(&r.body)["error"], "client_certificate_required");
    let r = curl(&pki, &["-H", "Accept: text/html"], &gate.url("/me"));
    assert_eq!(r.status, "401");
    assert!(
        r.body.contains("Import") && r.body.contains(".p12"),
        "the 401 page explains how: {}",
        r.body
    );

    let r = curl_as(&pki, "bob", &[], &gate.url("/admin/"));
    assert_eq!(r.status, "403");
    let msg = json(&r.body)["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("role admin") && msg.contains("CN=bob"),
        "403 names the missing role: {msg}"
    );
    assert!(!msg.contains("/admin/**"), "no policy internals: {msg}");

    assert_eq!(
        curl_as(&pki, "alice", &[], &gate.url("/admin/")).status,
        "200"
    );
    // Not covered by any rule: denied by default, even for an admin.
    assert_eq!(
        curl_as(&pki, "alice", &[], &gate.url("/elsewhere")).status,
        "403"
    );
}

#[test]
fn require_mode_refuses_the_handshake_without_a_certificate() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("require", "builtin:whoami", ""));
    gate.refuses_handshake("no-cert", || {
        let r = curl(&pki, &[], &gate.url("/"));
        assert_eq!(
            r.status, "000",
            "no HTTP at all without a certificate: {r:?}"
        );
    });
    // The refusal is the TLS 1.3 "certificate required" alert (116), not some other
    // failure. In TLS 1.3 the client finishes first and the alert comes after, so
    // s_client must keep reading (-ign_eof) to see it.
    let text = s_client_exchange(
        &pki,
        gate.port,
        "localhost",
        None,
        &[],
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert!(text.contains("alert certificate required"), "{text}");
    assert_eq!(curl_as(&pki, "bob", &[], &gate.url("/me")).status, "200");
}

#[test]
fn expired_revoked_and_foreign_certificates_are_refused_in_both_modes() {
    let pki = Pki::new();
    for mode in ["optional", "require"] {
        let gate = Gate::start(&pki.config(mode, "builtin:whoami", ""));
        for (who, reason) in [
            ("eve", "expired"),
            ("dave", "revoked"),
            ("zed", "unknown-ca"),
        ] {
            gate.refuses_handshake(reason, || {
                let r = curl_as(&pki, who, &[], &gate.url("/"));
                assert_eq!(
                    r.status, "000",
                    "{mode}: {who} must not get an HTTP answer: {r:?}"
                );
            });
        }
        // The same connection details with a good certificate work, so the refusals
        // above are about the certificates.
        assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/")).status, "200");
    }
}

#[test]
fn nul_in_the_cn_gets_nothing_even_though_the_ca_signed_it() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    for path in ["/", "/admin/", "/me"] {
        gate.refuses_handshake("invalid-subject", || {
            let r = curl_as(&pki, "mallory", &[], &gate.url(path));
            assert_eq!(r.status, "000", "{path}: {r:?}");
        });
    }
    // Positive control: the same CA's well-formed certificate is served.
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "200");
}

#[test]
fn host_must_match_sni() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    // SNI localhost, Host something else: 421.
    let r = curl_as(
        &pki,
        "alice",
        &["-H", "Host: admin.internal"],
        &gate.url("/me"),
    );
    assert_eq!(r.status, "421", "{r:?}");
    assert!(
        json(&r.body)["message"]
            .as_str()
            .unwrap()
            .contains("localhost")
    );
    // No SNI (connecting by IP): Host must be one of the certificate's names.
    let ip_url = format!("https://127.0.0.1:{}/me", gate.port);
    assert_eq!(curl_as(&pki, "alice", &[], &ip_url).status, "200");
    assert_eq!(
        curl_as(&pki, "alice", &["-H", "Host: evil.test"], &ip_url).status,
        "421"
    );
    // Absolute-form target naming another host than Host: 400.
    let out = s_client(
        &pki,
        gate.port,
        Some("alice"),
        "GET https://evil.test/me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[test]
fn upstream_receives_identity_headers_and_the_canonical_path() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let gate = Gate::start(&pki.config("optional", &upstream.url(), ""));

    let r = curl_as(&pki, "alice", &[], &gate.url("/admin/../admin/reports?x=1"));
    assert_eq!(r.status, "200", "{r:?}");
    let v = json(&r.body);
    assert_eq!(
        v["url"], "/admin/reports?x=1",
        "the upstream gets the canonical path"
    );
    let h = &v["headers"];
    assert_eq!(h["x-client-verify"], "SUCCESS");
    assert_eq!(h["x-client-cn"], "alice");
    assert_eq!(h["x-client-email"], "alice@example.com");
    // Several-valued fields are RFC 8941 lists of strings: a comma in a value stays in it.
    assert_eq!(h["x-client-ou"], "\"Admins\"");
    assert_eq!(h["x-client-roles"], "admin");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    // Exactly the Host that was checked, port included.
    assert_eq!(h["x-forwarded-host"], format!("localhost:{}", gate.port));
    assert!(
        h["forwarded"]
            .as_str()
            .unwrap()
            .starts_with("for=127.0.0.1;proto=https")
    );
    // RFC 9440: the leaf as an sf-binary, byte-identical to the certificate file.
    let cc = h["client-cert"].as_str().unwrap();
    let b64 = cc
        .strip_prefix(':')
        .and_then(|s| s.strip_suffix(':'))
        .unwrap();
    let pem = std::fs::read_to_string(pki.path("pki/issued/alice.crt")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(b64, body);
    // The chain header carries the intermediate the client sent.
    assert_eq!(
        h["client-cert-chain"]
            .as_str()
            .unwrap()
            .matches(':')
            .count(),
        2
    );
    // One fingerprint format everywhere: what the upstream receives is what `pki inspect`
    // and `pki list` print for the same file, so an operator can grep one for the other.
    let seen = h["x-client-fingerprint"].as_str().unwrap();
    assert_eq!(seen.len(), 64);
    let pki_json = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["pki", "--dir", pki.path("pki").to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        json(&String::from_utf8_lossy(&out.stdout))
    };
    let alice = pki.path("pki/issued/alice.crt");
    let inspected = pki_json(&["inspect", "--json", alice.to_str().unwrap()]);
    assert_eq!(inspected["objects"][0]["fingerprint_sha256"], seen);
    let listed = pki_json(&["list", "--json"]);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"].as_str().unwrap().contains("CN=alice"))
        .unwrap();
    assert_eq!(row["fingerprint_sha256"], seen);
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let gate = Gate::start(&pki.config(
        "optional",
        &upstream.url(),
        "[headers]\nstrip = [\"X-Remote-User\"]",
    ));
    let spoof = [
        "-H",
        "Client-Cert: :AAAA:",
        "-H",
        "client-cert-chain: :BBBB:",
        "-H",
        "X-CLIENT-VERIFY: SUCCESS",
        "-H",
        "x-client-cn: alice",
        "-H",
        "X-Client-Roles: admin",
        "-H",
        "X-Client-Anything: x",
        "-H",
        "X-Remote-User: alice",
        "-H",
        "X-Forwarded-For: 10.0.0.1",
        "-H",
        "Forwarded: for=10.0.0.1",
    ];
    let received = |r: Curl| {
        assert_eq!(r.status, "200", "{r:?}");
        gate_support::raw::Received::parse(&r.body)
    };
    // Anonymous: exactly one verify line, the gate's, and none of the rest.
    let r = received(curl(&pki, &spoof, &gate.url("/public/x")));
    assert_eq!(r.one("x-client-verify"), "NONE");
    for gone in [
        "client-cert",
        "client-cert-chain",
        "x-client-cn",
        "x-client-roles",
        "x-client-anything",
        "x-remote-user",
    ] {
        assert!(!r.has(gone), "{gone} leaked: {r:#?}");
    }
    assert_eq!(r.one("x-forwarded-for"), "127.0.0.1");
    assert!(!r.one("forwarded").contains("10.0.0.1"));

    // Authenticated as bob: exactly bob's identity, one line each — the spoofed value is
    // replaced, not appended — and the spoof does not open the admin area.
    let r = received(curl_as(&pki, "bob", &spoof, &gate.url("/public/x")));
    assert_eq!(r.one("x-client-cn"), "bob");
    assert_eq!(r.one("x-client-roles"), "user");
    assert_eq!(r.one("x-client-verify"), "SUCCESS");
    let pem = std::fs::read_to_string(pki.path("pki/issued/bob.crt")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(r.one("client-cert"), format!(":{b64}:"));
    assert!(
        r.one("client-cert-chain").starts_with(':') && !r.one("client-cert-chain").contains("BBBB")
    );
    assert!(
        !r.has("x-client-anything") && !r.has("x-remote-user"),
        "{r:#?}"
    );
    assert_eq!(
        curl_as(&pki, "bob", &spoof, &gate.url("/admin/")).status,
        "403"
    );
}

#[test]
fn path_tricks_are_judged_canonically_or_refused() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let gate = Gate::start(&pki.config("optional", &upstream.url(), ""));
    // bob is a user: every spelling of /admin must be judged as /admin (403)…
    for path in [
        "/admin/../admin",
        "/%61dmin",
        "//admin",
        "/admin/",
        "/./admin",
        "/public/../admin",
        "/%2e/admin",
    ] {
        let r = curl_as(&pki, "bob", &[], &gate.url(path));
        assert_eq!(r.status, "403", "{path}: {r:?}");
    }
    // …or refused outright when it is ambiguous (400), for everyone, before the policy.
    for path in [
        "/admin%2f",
        "/admin%2Fx",
        "/admin;x",
        "/admin%00",
        "/admin%5cx",
        "/admin.",
        "/admin..",
        "/public/..%2fadmin",
        "/../admin",
    ] {
        let r = curl_as(&pki, "alice", &[], &gate.url(path));
        assert_eq!(r.status, "400", "{path}: {r:?}");
        assert_eq!(json(&r.body)["error"], "bad_request");
    }
    // Rules are case-sensitive: /ADMIN is not /admin, and no rule allows it.
    assert_eq!(curl_as(&pki, "bob", &[], &gate.url("/ADMIN")).status, "403");
    // What an admin does reach arrives canonical.
    let r = curl_as(&pki, "alice", &[], &gate.url("//admin/./x/../%7Ereports"));
    assert_eq!(json(&r.body)["url"], "/admin/~reports");
}

#[test]
fn upstream_down_is_a_502_page() {
    let pki = Pki::new();
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gate = Gate::start(&pki.config("optional", &format!("http://127.0.0.1:{port}"), ""));
    let r = curl(&pki, &[], &gate.url("/"));
    assert_eq!(r.status, "502", "{r:?}");
    assert_eq!(json(&r.body)["error"], "bad_gateway");
}

#[test]
fn invalid_cert_as_anonymous_shows_the_reason_and_grants_nothing() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let gate =
        Gate::start(&pki.config("optional", &upstream.url(), "invalid_cert = \"anonymous\""));
    for (who, reason) in [
        ("eve", "expired"),
        ("dave", "revoked"),
        ("zed", "unknown-ca"),
    ] {
        // Through to anonymous routes, with the reason for the upstream…
        let r = curl_as(&pki, who, &[], &gate.url("/public/x"));
        assert_eq!(r.status, "200", "{who}: {r:?}");
        let h = json(&r.body)["headers"].clone();
        assert_eq!(h["x-client-verify"], format!("FAILED:{reason}"), "{who}");
        assert!(
            h.get("x-client-cn").is_none() && h.get("client-cert").is_none(),
            "{who}: {h}"
        );
        // …but never an identity: eve and dave are OU=Admins, and still get 401, with why.
        let r = curl_as(&pki, who, &[], &gate.url("/admin/"));
        assert_eq!(r.status, "401", "{who}: {r:?}");
        let v = json(&r.body);
        assert_eq!(v["error"], "client_certificate_refused");
        assert!(v["message"].as_str().unwrap().contains(reason), "{v}");
    }
    // A NUL in the CN is a refused certificate here too, not an identity.
    let r = curl_as(&pki, "mallory", &[], &gate.url("/public/x"));
    assert_eq!(
        json(&r.body)["headers"]["x-client-verify"],
        "FAILED:invalid-subject"
    );
    // Valid certificates are unaffected.
    let r = curl_as(&pki, "alice", &[], &gate.url("/admin/x"));
    assert_eq!(r.status, "200");
    assert_eq!(json(&r.body)["headers"]["x-client-verify"], "SUCCESS");
}

#[test]
fn wrong_purpose_and_ca_certificates_are_refused_as_client_certificates() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    // A server certificate (serverAuth EKU only) presented as a client certificate.
    gate.refuses_handshake("wrong-purpose", || {
        let r = curl_as(&pki, "localhost", &[], &gate.url("/"));
        assert_eq!(
            r.status, "000",
            "serverAuth-only certificate accepted: {r:?}"
        );
    });
    // The issuing CA's own certificate and key presented as a client certificate.
    let (ca_cert, ca_key) = (
        pki.path("pki/intermediate.crt").display().to_string(),
        pki.path("pki/intermediate.key").display().to_string(),
    );
    gate.refuses_handshake("bad-certificate", || {
        let r = curl(
            &pki,
            &["--cert", &ca_cert, "--key", &ca_key],
            &gate.url("/"),
        );
        assert_eq!(r.status, "000", "CA certificate accepted as a leaf: {r:?}");
    });
    assert_eq!(curl_as(&pki, "bob", &[], &gate.url("/")).status, "200");
}

#[test]
fn client_auth_off_never_asks_for_a_certificate() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let gate = Gate::start(&pki.config("off", &upstream.url(), ""));
    let r = curl_as(&pki, "alice", &[], &gate.url("/public/x"));
    assert_eq!(r.status, "200", "{r:?}");
    let h = json(&r.body)["headers"].clone();
    assert_eq!(
        h["x-client-verify"], "NONE",
        "a certificate was used although auth is off: {h}"
    );
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "401");
}

#[test]
fn encrypted_server_key_is_unlocked_from_the_environment_or_refused_clearly() {
    let pki = Pki::new();
    // Re-encrypt the server key with a passphrase.
    let key_path = pki.path("pki/issued/localhost.key");
    let text = std::fs::read_to_string(&key_path).unwrap();
    let key = portcullis_pki::keys::from_pem(&text, &key_path, None, "").unwrap();
    let pass = portcullis_pki::Passphrase::new("server key pass".into(), "test").unwrap();
    std::fs::write(
        &key_path,
        portcullis_pki::keys::to_pem(&key, Some(&pass))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let config = pki.config("optional", "builtin:whoami", "");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "-c"])
        .arg(&config)
        .env_remove("PORTCULLIS_KEY_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("localhost.key") && err.contains("PORTCULLIS_KEY_PASSPHRASE"),
        "{err}"
    );

    let gate = Gate::start_in(
        config.parent().unwrap(),
        &["serve", "-c", config.to_str().unwrap()],
        &[("PORTCULLIS_KEY_PASSPHRASE", "server key pass")],
    );
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "200");
}

#[test]
fn slow_upstream_is_a_504_and_custom_pages_replace_the_html() {
    let pki = Pki::new();
    // An upstream that accepts requests and never answers.
    let silent = Upstream::node("http.createServer(() => {})");
    std::fs::create_dir_all(pki.path("pages")).unwrap();
    std::fs::write(pki.path("pages/504.html"), "<h1>Our app is napping</h1>").unwrap();
    let gate = Gate::start(&pki.config(
        "optional",
        &silent.url(),
        "pages_dir = \"pages\"\n[limits]\nupstream_timeout_secs = 1",
    ));
    let r = curl(&pki, &[], &gate.url("/"));
    assert_eq!(r.status, "504", "{r:?}");
    assert_eq!(json(&r.body)["error"], "gateway_timeout");
    let r = curl(&pki, &["-H", "Accept: text/html"], &gate.url("/"));
    assert_eq!(r.status, "504");
    assert_eq!(r.body, "<h1>Our app is napping</h1>");
}

#[test]
fn http2_to_the_client_and_h2c_to_the_upstream() {
    let pki = Pki::new();
    let upstream = Upstream::node(
        r#"http2.createServer((req, res) => {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ version: req.httpVersion, url: req.url, headers: req.headers }));
        })"#,
    );
    let gate = Gate::start(&pki.config("optional", &upstream.url(), "upstream_http2 = true"));
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--max-time",
            "10",
            "-w",
            "\n%{http_version}",
            "--cacert",
            &pki.root(),
        ])
        .args([
            "--cert",
            &pki.client("alice").0,
            "--key",
            &pki.client("alice").1,
        ])
        .arg(gate.url("/admin/h2"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, client_version) = text.rsplit_once('\n').unwrap();
    assert_eq!(client_version, "2", "the client spoke HTTP/2 to the gate");
    let v = json(body);
    assert_eq!(v["version"], "2.0", "the gate spoke h2c to the upstream");
    assert_eq!(v["url"], "/admin/h2");
    assert_eq!(v["headers"]["x-client-cn"], "alice");
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    let pki = Pki::new();
    let slow = Upstream::node(
        "http.createServer((req, res) => setTimeout(() => res.end('slow answer'), 1500))",
    );
    let mut gate = Gate::start(&pki.config("optional", &slow.url(), ""));
    let url = gate.url("/public/slow");
    let root = pki.root();
    let in_flight = std::thread::spawn(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                "--cacert",
                &root,
                &url,
            ])
            .output()
            .unwrap()
    });
    // Let the request reach the upstream, then ask the gate to stop.
    std::thread::sleep(std::time::Duration::from_millis(500));
    gate.terminate();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let late = curl(&pki, &[], &gate.url("/"));
    assert_eq!(
        late.status, "000",
        "no new connections after SIGTERM: {late:?}"
    );

    let out = in_flight.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text, "slow answer\n200", "the request in flight completes");
    let status = gate
        .wait_exit(std::time::Duration::from_secs(10))
        .expect("the gate exits");
    assert_eq!(status.code(), Some(0));
}

/// Opens `n` TCP connections that never start TLS.
fn stalled(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect()
}

#[test]
fn five_hundred_stalled_handshakes_do_not_stop_a_real_client() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    let idle = stalled(gate.port, 500);
    let (cert, key) = pki.client("alice");
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            "--cacert",
            &pki.root(),
        ])
        .args(["--cert", &cert, "--key", &key])
        .arg(gate.url("/me"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (code, secs) = text.split_once(' ').unwrap();
    assert_eq!(code, "200", "{text}");
    let secs: f64 = secs.parse().unwrap();
    eprintln!("served in {secs} s with 500 stalled connections open");
    assert!(
        secs < 1.0,
        "served in {secs} s with 500 stalled connections open"
    );
    drop(idle);
}

#[test]
fn the_connection_cap_refuses_the_excess_and_the_gate_stays_up() {
    use std::io::Read;
    let pki = Pki::new();
    // Stalled handshakes would be cut after 30 s: long after this test is done, so only
    // the cap can explain what it sees.
    let gate = Gate::start(&pki.config(
        "optional",
        "builtin:whoami",
        "admin = \"127.0.0.1:0\"\n[limits]\nmax_connections = 20\nhandshake_timeout_secs = 30",
    ));
    let admin = gate.admin_addr();
    let refused = || {
        metric(
            &admin,
            "portcullis_connections_refused_total{reason=\"max-connections\"}",
        )
    };
    let mut idle = stalled(gate.port, 20);
    // The 20 slots are taken once the gate has accepted them; then every further
    // connection is closed at once: reading gives end-of-file, not a wait.
    let mut excess = stalled(gate.port, 30);
    let mut closed = 0;
    for s in &mut excess {
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        if matches!(s.read(&mut [0u8; 1]), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 30,
        "only {closed} of the 30 excess connections were refused"
    );
    assert_eq!(refused(), 30);
    // A real client is refused too while the cap is full…
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "000");
    assert_eq!(refused(), 31);
    // …and served as soon as a slot frees: the gate did not fall over.
    idle.truncate(19);
    let served = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        curl_as(&pki, "alice", &[], &gate.url("/me")).status == "200"
    });
    assert!(served, "not served after a slot was freed");
    drop(idle);
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_with_traffic_and_requests_are_logged() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config(
        "optional",
        "builtin:whoami",
        "admin = \"127.0.0.1:0\"\naccess_log = \"json\"",
    ));
    let admin = gate.admin_addr();
    let scrape = || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", &format!("http://{admin}/metrics")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines)
            .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"))
    };
    let value = |s: &prometheus_parse::Scrape, name: &str, label: (&str, &str)| -> f64 {
        s.samples
            .iter()
            .find(|m| m.metric == name && m.labels.get(label.0) == Some(label.1))
            .map(|m| match m.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name}{label:?}"))
    };

    let before = scrape();
    assert_eq!(curl(&pki, &[], &gate.url("/")).status, "200");
    assert_eq!(curl(&pki, &[], &gate.url("/me")).status, "401");
    assert_eq!(
        curl_as(&pki, "bob", &[], &gate.url("/admin/")).status,
        "403"
    );
    assert_eq!(
        curl_as(&pki, "alice", &[], &gate.url("/admin/x")).status,
        "200"
    );
    gate.refuses_handshake("unknown-ca", || {
        assert_eq!(curl_as(&pki, "zed", &[], &gate.url("/")).status, "000");
    });
    let after = scrape();

    let delta =
        |name: &str, label: (&str, &str)| value(&after, name, label) - value(&before, name, label);
    assert_eq!(
        delta("portcullis_requests_total", ("decision", "allow")),
        2.0
    );
    assert_eq!(
        delta("portcullis_requests_total", ("decision", "unauthenticated")),
        1.0
    );
    assert_eq!(
        delta("portcullis_requests_total", ("decision", "forbidden")),
        1.0
    );
    assert_eq!(delta("portcullis_handshakes_total", ("outcome", "ok")), 4.0);
    assert_eq!(
        delta("portcullis_handshakes_total", ("outcome", "unknown-ca")),
        1.0
    );
    assert_eq!(delta("portcullis_responses_total", ("class", "4xx")), 2.0);
    let days = value(
        &after,
        "portcullis_certificate_expiry_days",
        ("kind", "server"),
    );
    assert!(
        (29.0..=30.0).contains(&days),
        "server certificate expires in {days} days"
    );
    assert!(
        after
            .samples
            .iter()
            .any(|m| m.metric == "portcullis_request_duration_seconds")
    );

    for (path, want) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let out = std::process::Command::new("curl")
            .args(["-sS", &format!("http://{admin}{path}")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    }

    // The access log: one JSON line per request, with identity, rule and decision; the
    // refused handshake is logged with its reason.
    assert!(
        gate.logged_more(&["\"handshake failed\""], 0),
        "{}",
        gate.output()
    );
    let log = gate.output();
    // Lifecycle, handshake and access events alike: every line is one JSON object.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on"))
    }));
    let alice = lines
        .iter()
        .find(|l| l["identity"] == "CN=alice")
        .expect(&log);
    assert_eq!(alice["path"], "/admin/x");
    assert_eq!(alice["decision"], "allow");
    assert_eq!(alice["rule"], 3);
    assert_eq!(alice["status"], 200);
    assert_eq!(alice["fingerprint"].as_str().unwrap().len(), 64);
    let bob = lines
        .iter()
        .find(|l| l["identity"] == "CN=bob")
        .expect(&log);
    assert_eq!(bob["decision"], "forbidden");
    let refused = lines
        .iter()
        .find(|l| l["message"] == "handshake failed" && l["reason"] == "unknown-ca");
    assert!(refused.is_some(), "{log}");
}

#[test]
fn reload_storm_drops_no_request_rejects_broken_configs_and_applies_good_ones() {
    let pki = Pki::new();
    let path = pki.config("optional", "builtin:whoami", "");
    let base = std::fs::read_to_string(&path).unwrap();
    let with_flag =
        |require: &str| format!("{base}\n[[rules]]\npath = \"/flag\"\nrequire = \"{require}\"\n");
    let write = |text: &str| {
        // Atomically, as a deploy tool would: a reload never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    write(&with_flag("deny"));
    let gate = Gate::start(&path);
    assert_eq!(curl(&pki, &[], &gate.url("/flag")).status, "403");

    // A client on fresh connections (Connection: close) all through the storm.
    let root = pki.root();
    let urls = gate.url("/?n=[1-300]");
    let client = std::thread::spawn(move || {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "60",
                "-H",
                "Connection: close",
                "-w",
                "\nCODE:%{http_code}\n",
            ])
            .args(["--cacert", &root, &urls])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    let broken = [
        base.replace("client_auth = \"optional\"", "client_auth = \"maybe\""),
        format!("{base}\nunknown_setting = 1\n"),
        base.replace("require = \"role:admin\"", "require = \"role:nobody\""),
    ];
    for i in 0..100 {
        match i % 3 {
            2 => write(&broken[i / 3 % broken.len()]),
            _ => write(&with_flag(if i % 2 == 0 { "anonymous" } else { "deny" })),
        }
        gate.hangup();
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
    // The last one: a good configuration that opens /flag.
    write(&with_flag("anonymous"));
    gate.hangup();

    let codes = client.join().unwrap();
    let ok = codes.matches("CODE:200").count();
    assert_eq!(
        ok,
        300,
        "failed requests during the reload storm:\n{}",
        codes
            .lines()
            .filter(|l| l.starts_with("CODE:") && *l != "CODE:200")
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The last good configuration is in force.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while curl(&pki, &[], &gate.url("/flag")).status != "200" {
        assert!(
            std::time::Instant::now() < deadline,
            "the final configuration never took effect"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The final configuration answers before its "loaded" line reaches the batched log.
    assert!(
        gate.logged_more(&["loaded, version"], 0),
        "{}",
        gate.output()
    );
    let log = gate.output();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload failed"))
        .collect();
    assert!(
        !failures.is_empty(),
        "broken configurations must be reported"
    );
    for f in &failures {
        assert!(
            f.contains("still serving version") && f.contains("gate-optional.toml:"),
            "{f}"
        );
    }
}

/// One TLS connection with `openssl s_client`, saving or reusing a session, sending one
/// request; returns everything s_client printed.
fn s_client_session(
    pki: &Pki,
    port: u16,
    who: Option<&str>,
    session: (&str, &std::path::Path),
) -> String {
    let file = session.1.to_str().unwrap();
    s_client_exchange(
        pki,
        port,
        "localhost",
        who,
        &[session.0, file],
        "GET /me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
}

#[test]
fn replicas_sharing_ticket_keys_resume_each_others_sessions_and_recheck_revocation() {
    let pki = Pki::new();
    let key = |name: &str| {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31) ^ name.len() as u8;
        }
        let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(pki.path(name), format!("# test key\n{hex}\n")).unwrap();
    };
    key("shared.key");
    key("other-key.key");
    let config = pki.config("optional", "builtin:whoami", "ticket_keys = \"shared.key\"");
    let a = Gate::start(&config);
    let b = Gate::start(&config);
    let sess = pki.path("alice.sess");

    let first = s_client_session(&pki, a.port, Some("alice"), ("-sess_out", &sess));
    assert!(first.contains("\"cn\":\"alice\""), "{first}");
    // Replica B resumes A's session: no certificate sent, alice's identity all the same.
    let resumed = s_client_session(&pki, b.port, None, ("-sess_in", &sess));
    assert!(resumed.contains("Reused, TLSv1.3"), "{resumed}");
    assert!(resumed.contains("\"cn\":\"alice\""), "{resumed}");

    // A gate with another key cannot open the ticket: full handshake, anonymous.
    let shared = std::fs::read_to_string(&config).unwrap();
    let other_path = pki.path("other.toml");
    std::fs::write(&other_path, shared.replace("shared.key", "other-key.key")).unwrap();
    let c = Gate::start(&other_path);
    let fresh = s_client_session(&pki, c.port, None, ("-sess_in", &sess));
    assert!(fresh.contains("New, TLSv1.3"), "{fresh}");
    assert!(fresh.contains("HTTP/1.1 401"), "{fresh}");

    // alice is revoked; a replica with the new CRL must not let her ticket back in.
    pki.revoke("alice");
    let d = Gate::start(&config);
    let after = s_client_session(&pki, d.port, None, ("-sess_in", &sess));
    assert!(
        after.contains("Reused, TLSv1.3"),
        "the ticket must resume, so the re-check is what stops alice: {after}"
    );
    assert!(
        !after.contains("\"cn\":\"alice\""),
        "a revoked certificate came back through a ticket: {after}"
    );
    assert!(!after.contains("HTTP/1.1 200"), "{after}");
}

#[test]
fn a_ticket_without_a_certificate_does_not_resume_where_one_is_now_required() {
    let pki = Pki::new();
    let config = pki.config("optional", "builtin:whoami", "");
    let gate = Gate::start(&config);
    let session = pki.path("anonymous.sess");
    let first = s_client_session(&pki, gate.port, None, ("-sess_out", &session));
    assert!(
        first.contains("HTTP/1.1 401"),
        "served as anonymous: {first}"
    );

    // The site now requires a certificate. The gate keeps its ticket keys across the
    // reload, so the ticket still opens; the session it carries has no certificate.
    edit(
        &config,
        "client_auth = \"optional\"",
        "client_auth = \"require\"",
    );
    reload(&gate);
    let refused = ["handshake failed", "reason=no-cert"];
    let seen = gate.lines_with(&refused);
    let after = s_client_session(&pki, gate.port, None, ("-sess_in", &session));
    resumed_then_refused(&gate, &after, &refused, seen);
}

#[test]
fn session_tickets_zero_turns_resumption_off_and_too_many_is_refused() {
    let pki = Pki::new();
    let config = pki.config(
        "optional",
        "builtin:whoami",
        "[limits]\nsession_tickets = 0\n",
    );
    let gate = Gate::start(&config);
    let default = Gate::start(&pki.config("require", "builtin:whoami", ""));
    // Whether a connection as alice gives s_client a session to save (a TLS 1.3 ticket,
    // or a TLS 1.2 ticket or session id): none when resumption is off.
    let resumable = |gate: &Gate, version: &str| {
        let file = pki.path("alice.sess");
        let _ = std::fs::remove_file(&file);
        let out = s_client_exchange(
            &pki,
            gate.port,
            "localhost",
            Some("alice"),
            &[version, "-sess_out", file.to_str().unwrap()],
            "GET /me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        assert!(out.contains("\"cn\":\"alice\""), "{version}: {out}");
        file.exists()
    };
    for version in ["-tls1_3", "-tls1_2"] {
        assert!(!resumable(&gate, version), "{version}: session_tickets = 0");
        assert!(resumable(&default, version), "{version}: the default");
    }

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("session_tickets = 0", "session_tickets = 9"),
    )
    .unwrap();
    let said = fails("check", &config);
    assert!(
        said.contains("gate-optional.toml:")
            && said.contains("limits.session_tickets")
            && said.contains("at most 8"),
        "{said}"
    );
}

#[test]
fn the_gate_prefers_aes_128_gcm_unless_the_client_puts_chacha20_first() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    let cipher = |suites: Option<&str>| {
        let args: Vec<&str> = suites.map_or(vec![], |s| vec!["-ciphersuites", s]);
        let out = s_client_exchange(
            &pki,
            gate.port,
            "localhost",
            Some("alice"),
            &args,
            "GET /me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        assert!(out.contains("\"cn\":\"alice\""), "{out}");
        let line = out
            .lines()
            .find(|l| l.contains("Cipher is"))
            .unwrap_or_default();
        line.rsplit(' ').next().unwrap_or_default().to_owned()
    };
    // OpenSSL lists AES-256-GCM first by default.
    assert_eq!(cipher(None), "TLS_AES_128_GCM_SHA256");
    assert_eq!(
        cipher(Some("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")),
        "TLS_CHACHA20_POLY1305_SHA256"
    );
    // A client that offers only AES-256-GCM gets it.
    assert_eq!(
        cipher(Some("TLS_AES_256_GCM_SHA384")),
        "TLS_AES_256_GCM_SHA384"
    );
}

/// Sends SIGHUP and waits for the log to say the new configuration is in force.
fn reload(gate: &Gate) {
    let loaded = ["reload: ", "loaded, version"];
    let seen = gate.lines_with(&loaded);
    gate.hangup();
    assert!(gate.logged_more(&loaded, seen), "{}", gate.output());
}

/// Replaces `from` with `to` in a configuration file (which must contain it).
fn edit(config: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(
        text.contains(from),
        "{from:?} is not in {}",
        config.display()
    );
    std::fs::write(config, text.replace(from, to)).unwrap();
}

/// What s_client printed for a session that resumed (its ticket opened) and was then
/// refused: no HTTP answer, and one more log line with every one of `needles`.
fn resumed_then_refused(gate: &Gate, out: &str, needles: &[&str], seen: usize) {
    assert!(out.contains("Reused, TLSv1.3"), "{out}");
    assert!(
        !out.contains("HTTP/1.1"),
        "a refused session got an answer: {out}"
    );
    assert!(gate.logged_more(needles, seen), "{}", gate.output());
}

#[test]
fn a_resumed_session_is_checked_against_the_configuration_in_force() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let config = pki.config("optional", &upstream.url(), "");
    let gate = Gate::start(&config);
    let session = |who: &str| pki.path(&format!("{who}.sess"));
    let resume = |who: &str| s_client_session(&pki, gate.port, None, ("-sess_in", &session(who)));
    // The headers the upstream received: the JSON document that starts the body (s_client
    // prints more after it).
    let received = |out: &str| {
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
        let first = serde_json::Deserializer::from_str(body)
            .into_iter::<serde_json::Value>()
            .next();
        match first {
            Some(Ok(v)) => v["headers"].clone(),
            _ => panic!("no JSON body: {out}"),
        }
    };

    for who in ["alice", "bob"] {
        let full = s_client_session(&pki, gate.port, Some(who), ("-sess_out", &session(who)));
        assert!(full.contains("New, TLSv1.3"), "{full}");
        let headers = received(&full);
        assert_eq!(headers["x-client-cn"], who, "{full}");
        // Twice: the first resumption runs the verifier, the second finds the chain it
        // accepted. Both must reach the upstream exactly as the full handshake did.
        for _ in 0..2 {
            let resumed = resume(who);
            assert!(resumed.contains("Reused, TLSv1.3"), "{resumed}");
            assert_eq!(received(&resumed), headers, "{resumed}");
        }
    }

    // A new CRL revokes alice: her ticket still resumes (the gate keeps its ticket keys
    // across reloads), and the configuration in force refuses it.
    pki.revoke("alice");
    reload(&gate);
    let refused = ["resumed session", "reason=revoked"];
    let seen = gate.lines_with(&refused);
    resumed_then_refused(&gate, &resume("alice"), &refused, seen);
    let bob = resume("bob");
    assert!(bob.contains("Reused, TLSv1.3"), "{bob}");
    assert_eq!(received(&bob)["x-client-cn"], "bob", "{bob}");

    // The CA that issued bob is removed: his ticket is refused too.
    edit(
        &config,
        "client_ca = [\"pki/root.crt\"]",
        "client_ca = [\"other/root.crt\"]",
    );
    reload(&gate);
    let refused = ["resumed session", "reason=unknown-ca"];
    let seen = gate.lines_with(&refused);
    resumed_then_refused(&gate, &resume("bob"), &refused, seen);
}

#[test]
fn an_expired_crl_rejects_clients_unless_explicitly_allowed() {
    let pki = Pki::new();
    let ca = portcullis_pki::Ca::open(&pki.path("pki"), None).unwrap();
    let index = portcullis_pki::Index::load(&ca.layout().index()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let der = ca
        .sign_crl_raw(
            &index,
            99,
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        )
        .unwrap();
    std::fs::write(
        pki.path("pki/crl.pem"),
        portcullis_pki::ca::pem("X509 CRL", &der),
    )
    .unwrap();

    // Fail closed by default: bob is not revoked, but the CRL is stale.
    let config = pki.config("optional", "builtin:whoami", "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let warning = String::from_utf8_lossy(&out.stdout);
    assert!(
        warning.contains("CRL past its nextUpdate") && warning.contains("REJECTED"),
        "{warning}"
    );
    let gate = Gate::start(&config);
    gate.refuses_handshake("crl-expired", || {
        assert_eq!(curl_as(&pki, "bob", &[], &gate.url("/me")).status, "000");
    });
    assert_eq!(
        curl(&pki, &[], &gate.url("/")).status,
        "200",
        "anonymous access is unaffected"
    );
    drop(gate);

    let relaxed =
        Gate::start(&pki.config("optional", "builtin:whoami", "allow_expired_crl = true"));
    assert_eq!(curl_as(&pki, "bob", &[], &relaxed.url("/me")).status, "200");
}

#[test]
fn a_reload_with_a_new_crl_refuses_the_revoked_client_next_time() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    assert_eq!(curl_as(&pki, "bob", &[], &gate.url("/me")).status, "200");
    pki.revoke("bob");
    gate.hangup();
    // A bound, not a speed target: on a loaded 2-core machine the reload and each curl can
    // take seconds (5 s failed once under the whole suite).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let revoked = ["handshake failed", "reason=revoked"];
    let seen = gate.lines_with(&revoked);
    while curl_as(&pki, "bob", &[], &gate.url("/me")).status != "000" {
        assert!(
            std::time::Instant::now() < deadline,
            "the new CRL never took effect:\n{}",
            gate.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(gate.logged_more(&revoked, seen), "{}", gate.output());
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "200");
    assert!(gate.output().contains("reload: "), "{}", gate.output());
}

/// A Python client that makes one keep-alive request as `who`, prints READY, then waits up
/// to `wait` seconds and prints CLOSED if the server closes the connection, OPEN if not.
fn idle_client(pki: &Pki, port: u16, who: &str, wait: &str) -> std::process::Child {
    let script = r#"
import socket, ssl, sys, time
port, ca, cert, key, wait = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname="localhost")
s.sendall(b"GET /me HTTP/1.1\r\nHost: localhost\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, body = buf.split(b"\r\n\r\n", 1)
n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
while len(body) < n:
    body += s.recv(4096)
print("READY", head.split(b"\r\n")[0].decode(), flush=True)
s.settimeout(float(wait))
try:
    print("CLOSED" if s.recv(4096) == b"" else "DATA", flush=True)
except socket.timeout:
    print("OPEN", flush=True)
except (ssl.SSLError, OSError):
    print("CLOSED", flush=True)
"#;
    let (cert, key) = pki.client(who);
    std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &port.to_string(),
            &pki.root(),
            &cert,
            &key,
            wait,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn next_line(
    child: &mut std::process::Child,
    reader: &mut Option<std::io::BufReader<std::process::ChildStdout>>,
) -> String {
    let r = reader.get_or_insert_with(|| std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut line = String::new();
    std::io::BufRead::read_line(r, &mut line).unwrap();
    line.trim().to_owned()
}

#[test]
fn revoking_a_certificate_closes_its_open_connections_on_reload() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    let (mut alice, mut bob) = (
        idle_client(&pki, gate.port, "alice", "8"),
        idle_client(&pki, gate.port, "bob", "3"),
    );
    let (mut ra, mut rb) = (None, None);
    assert_eq!(next_line(&mut alice, &mut ra), "READY HTTP/1.1 200 OK");
    assert_eq!(next_line(&mut bob, &mut rb), "READY HTTP/1.1 200 OK");

    pki.revoke("alice");
    gate.hangup();

    assert_eq!(
        next_line(&mut alice, &mut ra),
        "CLOSED",
        "alice's open connection must be closed:\n{}",
        gate.output()
    );
    assert_eq!(
        next_line(&mut bob, &mut rb),
        "OPEN",
        "bob was not revoked; his connection stays"
    );
    // The log is written in batches, after the connection was closed: wait for the line.
    assert!(
        gate.logged_more(&["closing 1 connection"], 0),
        "{}",
        gate.output()
    );
    let _ = (alice.wait(), bob.wait());
}

#[test]
fn a_changed_crl_file_is_picked_up_without_a_signal() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    assert_eq!(curl_as(&pki, "bob", &[], &gate.url("/me")).status, "200");
    pki.revoke("bob");
    // No SIGHUP: the file watcher notices (checks every second, waits a second to settle).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while curl_as(&pki, "bob", &[], &gate.url("/me")).status != "000" {
        assert!(
            std::time::Instant::now() < deadline,
            "the new CRL was never picked up:\n{}",
            gate.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The new CRL answers before the reload's lines reach the batched log: wait for them.
    assert!(
        gate.logged_more(&["reload: files changed"], 0)
            && gate.logged_more(&["loaded, version"], 0),
        "{}",
        gate.output()
    );
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "200");
}

/// A second virtual host, `api.localhost`, with its own server certificate, its own client
/// CA (the "Foreign" CA that issued zed), require mode and its own rules.
fn add_api_host(pki: &Pki) {
    let ca = portcullis_pki::Ca::open(&pki.path("pki"), None).unwrap();
    let mut writer = ca.writer().unwrap();
    let req = portcullis_pki::LeafRequest {
        kind: portcullis_pki::Kind::Server,
        subject: portcullis_pki::Subject {
            common_name: "api.localhost".into(),
            ..Default::default()
        },
        sans: vec![portcullis_pki::San::Dns("api.localhost".into())],
        days: 30,
        key_type: portcullis_pki::KeyType::P256,
    };
    let cert = ca.issue(&req, writer.index()).unwrap();
    let opts = portcullis_pki::SaveOptions {
        out_dir: ca.layout().issued(),
        stem: "api".into(),
        key_passphrase: None,
        p12: None,
        force: false,
    };
    writer.save(cert, &opts).unwrap();
    std::fs::write(
        pki.path("api.toml"),
        r#"
server_names = ["api.localhost"]
cert = "pki/issued/api.chain.pem"
key = "pki/issued/api.key"
client_auth = "optional"
client_ca = ["other/root.crt"]
upstream = "builtin:whoami"

[[rules]]
path = "/api/**"
require = "authenticated"
"#,
    )
    .unwrap();
}

#[test]
fn two_virtual_hosts_keep_their_own_clients_policies_and_sessions() {
    let pki = Pki::new();
    add_api_host(&pki);
    let key: String = (0..32).map(|i| format!("{:02x}", i * 7)).collect();
    std::fs::write(pki.path("shared.key"), format!("{key}\n")).unwrap();
    let gate = Gate::start(&pki.config(
        "optional",
        "builtin:whoami",
        "hosts = [\"api.toml\"]\nticket_keys = \"shared.key\"",
    ));
    let api = |path: &str| format!("https://api.localhost:{}{path}", gate.port);
    let resolve = format!("api.localhost:{}:127.0.0.1", gate.port);

    // The default host admits the main CA's clients, not the foreign CA's.
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "200");
    gate.refuses_handshake("unknown-ca", || {
        assert_eq!(curl_as(&pki, "zed", &[], &gate.url("/me")).status, "000");
    });
    // api.localhost admits the foreign CA's clients only, under its own rules.
    let r = curl_as(&pki, "zed", &["--resolve", &resolve], &api("/api/orders"));
    assert_eq!(r.status, "200", "{r:?}");
    assert_eq!(json(&r.body)["subject"]["cn"], "zed");
    gate.refuses_handshake("unknown-ca", || {
        assert_eq!(
            curl_as(&pki, "alice", &["--resolve", &resolve], &api("/api/orders")).status,
            "000"
        );
    });
    assert_eq!(
        curl_as(&pki, "zed", &["--resolve", &resolve], &api("/me")).status,
        "403",
        "not in api's rules"
    );
    // A connection made for api.localhost cannot be used for the default host: 421.
    let r = curl_as(
        &pki,
        "zed",
        &["--resolve", &resolve, "-H", "Host: localhost"],
        &api("/me"),
    );
    assert_eq!(r.status, "421", "{r:?}");

    // A session made with the default host does not resume on api.localhost, even though
    // both seal tickets with the same keys (nginx CVE-2025-23419).
    let sess = pki.path("alice.sess");
    let first = s_client_session(&pki, gate.port, Some("alice"), ("-sess_out", &sess));
    assert!(first.contains("\"cn\":\"alice\""), "{first}");
    let same = s_client_session(&pki, gate.port, None, ("-sess_in", &sess));
    assert!(
        same.contains("Reused, TLSv1.3"),
        "the session does resume on its own host: {same}"
    );
    let text = s_client_exchange(
        &pki,
        gate.port,
        "api.localhost",
        None,
        &["-sess_in", sess.to_str().unwrap()],
        "GET /api/x HTTP/1.1\r\nHost: api.localhost\r\nConnection: close\r\n\r\n",
    );
    // api.localhost serves anonymous clients (optional mode), so this connection does
    // succeed: it is a new session, not alice's, and the request is unauthenticated.
    assert!(
        text.contains("New, TLSv1.3"),
        "a session crossed hosts: {text}"
    );
    assert!(text.contains("HTTP/1.1 401"), "{text}");
    assert!(!text.contains("\"cn\":\"alice\""), "{text}");
}

#[test]
fn clients_without_sni_get_the_default_host_or_a_clean_refusal() {
    let pki = Pki::new();
    add_api_host(&pki);
    let by_ip = |port: u16| format!("https://127.0.0.1:{port}/me");
    let open = Gate::start(&pki.config("optional", "builtin:whoami", "hosts = [\"api.toml\"]"));
    assert_eq!(
        curl_as(&pki, "alice", &[], &by_ip(open.port)).status,
        "200",
        "no SNI: the default host"
    );
    drop(open);
    let strict = Gate::start(&pki.config(
        "optional",
        "builtin:whoami",
        "hosts = [\"api.toml\"]\nno_sni = \"reject\"",
    ));
    strict.refuses_handshake("no-host", || {
        assert_eq!(
            curl_as(&pki, "alice", &[], &by_ip(strict.port)).status,
            "000",
            "no SNI: refused"
        );
    });
    // Refused with a TLS alert, not a silent close (s_client sends no SNI for an IP).
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", strict.port),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // rustls answers access_denied (49) when it has no certificate for the name.
    assert!(text.contains("alert access denied"), "{text}");
    assert_eq!(
        curl_as(&pki, "alice", &[], &strict.url("/me")).status,
        "200",
        "named hosts still work"
    );
}

#[test]
fn idle_http2_connections_are_closed_after_the_idle_limit() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config(
        "optional",
        "builtin:whoami",
        "[limits]\nidle_timeout_secs = 2",
    ));
    let (cert, key) = pki.client("alice");
    let script = r#"
        const http2 = require('http2'), fs = require('fs');
        const [port, ca, cert, key] = process.argv.slice(1);
        const session = http2.connect(`https://localhost:${port}`, {
            ca: fs.readFileSync(ca), cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
        const req = session.request({ ':path': '/me' });
        req.on('response', h => console.log('status ' + h[':status']));
        req.resume();
        req.on('end', () => {
            const t = Date.now();
            session.on('close', () => { console.log('closed after ' + ((Date.now() - t) / 1000).toFixed(1)); process.exit(0); });
        });
        setTimeout(() => { console.log('still open'); process.exit(0); }, 8000);
    "#;
    let out = std::process::Command::new("node")
        .args([
            "-e",
            script,
            &gate.port.to_string(),
            &pki.root(),
            &cert,
            &key,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("status 200"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("closed after "))
        .unwrap_or_else(|| panic!("the idle h2 connection was not closed: {text}"))
        .parse()
        .unwrap();
    assert!(
        (1.5..6.0).contains(&secs),
        "closed after {secs} s with a 2 s idle limit"
    );
}

#[test]
fn admin_config_reports_the_version_in_force() {
    let pki = Pki::new();
    let path = pki.config("optional", "builtin:whoami", "admin = \"127.0.0.1:0\"");
    let gate = Gate::start(&path);
    let admin = gate.admin_addr();
    let fetch = || {
        let out = std::process::Command::new("curl")
            .args(["-sS", &format!("http://{admin}/config")])
            .output()
            .unwrap();
        json(&String::from_utf8_lossy(&out.stdout))
    };
    let before = fetch();
    assert_eq!(before["version"].as_str().unwrap().len(), 12);
    assert!(before["loaded_at"].as_str().unwrap().ends_with('Z'));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n# changed\n")).unwrap();
    gate.hangup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fetch()["version"] == before["version"] {
        assert!(std::time::Instant::now() < deadline, "{}", gate.output());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_certificate_clients_would_refuse_is_refused_as_the_servers() {
    let pki = Pki::new();
    // A server certificate that names no host, signed by the CA all the same.
    let ca = portcullis_pki::Ca::open(&pki.path("pki"), None).unwrap();
    let key = portcullis_pki::KeyType::P256.generate().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let der = ca
        .sign_raw(
            portcullis_pki::Kind::Server,
            &portcullis_pki::Subject {
                common_name: "localhost".into(),
                ..Default::default()
            },
            &[],
            &rcgen::PublicKeyData::subject_public_key_info(&key),
            now - time::Duration::hours(1),
            now + time::Duration::days(30),
        )
        .unwrap();
    std::fs::write(
        pki.path("pki/issued/nameless.crt"),
        portcullis_pki::ca::pem("CERTIFICATE", &der),
    )
    .unwrap();
    std::fs::write(
        pki.path("pki/issued/nameless.key"),
        portcullis_pki::keys::to_pem(&key, None).unwrap(),
    )
    .unwrap();

    let config = pki.config("optional", "builtin:whoami", "");
    let text = std::fs::read_to_string(&config).unwrap();
    for (cert, reason) in [
        ("alice.chain.pem", "serverAuth"),
        ("nameless.crt", "names no host"),
    ] {
        let key = cert.split('.').next().unwrap();
        let wrong = text
            .replace(
                "pki/issued/localhost.chain.pem",
                &format!("pki/issued/{cert}"),
            )
            .replace("pki/issued/localhost.key", &format!("pki/issued/{key}.key"));
        assert_ne!(wrong, text);
        std::fs::write(&config, wrong).unwrap();
        refused(&config, cert, reason);
    }
}

/// `portcullis check` and `portcullis serve` both refuse the configuration, naming the
/// file, the reason and the fix.
fn refused(config: &std::path::Path, file: &str, reason: &str) {
    for command in ["check", "serve"] {
        let said = fails(command, config);
        assert!(
            said.contains(file)
                && said.contains(reason)
                && said.contains("portcullis pki issue server"),
            "{command}: {said}"
        );
    }
}

/// Runs `portcullis COMMAND -c CONFIG`, which must fail, and returns what it printed.
/// Bounded: a gate that starts would serve until killed.
fn fails(command: &str, config: &std::path::Path) -> String {
    let out = std::process::Command::new("timeout")
        .args(["10", env!("CARGO_BIN_EXE_portcullis"), command, "-c"])
        .arg(config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{command}: {said}");
    said
}

#[test]
fn check_refuses_a_rule_no_request_can_reach() {
    let pki = Pki::new();
    let config = pki.config("optional", "builtin:whoami", "");
    let text = std::fs::read_to_string(&config).unwrap();
    // `/**` for any client first: the rules below it would never be asked.
    let broad = "[[rules]]\npath = \"/**\"\nrequire = \"authenticated\"\n\n";
    std::fs::write(
        &config,
        text.replacen("[[rules]]", &format!("{broad}[[rules]]"), 1),
    )
    .unwrap();
    let said = fails("check", &config);
    assert!(
        said.contains("gate-optional.toml:")
            && said.contains("rules[1]")
            && said.contains("can never match")
            && said.contains("rules[0] (path \"/**\")"),
        "{said}"
    );
}

#[test]
fn intermediates_in_client_ca_complete_leaf_only_chains_and_are_anchors_only_when_asked() {
    let pki = Pki::new();
    let config = pki.config("optional", "builtin:whoami", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let with_ca = |list: &str| {
        let changed = text.replace(
            "client_ca = [\"pki/root.crt\"]",
            &format!("client_ca = [{list}]"),
        );
        assert_ne!(changed, text);
        std::fs::write(&config, changed).unwrap();
    };
    // curl with only alice's own certificate, not the chain file.
    let (leaf, key) = (
        pki.path("pki/issued/alice.crt").display().to_string(),
        pki.path("pki/issued/alice.key").display().to_string(),
    );
    let leaf_only = |gate: &Gate| curl(&pki, &["--cert", &leaf, "--key", &key], &gate.url("/me"));

    // The root alone: alice's certificate cannot reach it, and the log says why.
    let gate = Gate::start(&config);
    let hint = [
        "without its intermediate",
        "subject=\"emailAddress=alice@example.com,CN=alice,OU=Admins\"",
        "issuer=\"CN=Portcullis Issuing CA\"",
        "client_ca",
    ];
    let seen = gate.lines_with(&hint);
    gate.refuses_handshake("unknown-ca", || {
        assert_eq!(leaf_only(&gate).status, "000");
    });
    assert!(gate.logged_more(&hint, seen), "{}", gate.output());
    drop(gate);

    with_ca("\"pki/root.crt\", \"pki/intermediate.crt\"");
    let gate = Gate::start(&config);
    let r = leaf_only(&gate);
    assert_eq!(r.status, "200", "{r:?}\n{}", gate.output());
    assert_eq!(json(&r.body)["subject"]["cn"], "alice", "{r:?}");
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "200");
    drop(gate);

    // Listed beside another CA's root, the intermediate is no trust anchor: alice's chain
    // ends at a root the gate does not trust.
    with_ca("\"other/root.crt\", \"pki/intermediate.crt\"");
    let gate = Gate::start(&config);
    gate.refuses_handshake("unknown-ca", || {
        assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "000");
    });
    drop(gate);

    // Intermediates alone: nothing to anchor a path, refused at load, saying both ways out.
    with_ca("\"pki/intermediate.crt\"");
    let said = fails("check", &config);
    assert!(
        said.contains("intermediate.crt")
            && said.contains("root")
            && said.contains("trust_intermediates = true"),
        "{said}"
    );

    // Asked for explicitly: only what the intermediate issued, without its root.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("client_ca =", "trust_intermediates = true\nclient_ca =", 1),
    )
    .unwrap();
    let gate = Gate::start(&config);
    assert_eq!(leaf_only(&gate).status, "200");
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "200");
    gate.refuses_handshake("unknown-ca", || {
        assert_eq!(curl_as(&pki, "zed", &[], &gate.url("/me")).status, "000");
    });
}

#[test]
fn a_self_signed_leaf_is_refused_as_a_client_ca() {
    let pki = Pki::new();
    let made = std::process::Command::new("openssl")
        .current_dir(pki.path(""))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "pinned.key",
            "-out",
            "pinned.crt",
            "-days",
            "30",
            "-subj",
            "/CN=pinned",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let config = pki.config("optional", "builtin:whoami", "");
    edit(
        &config,
        "client_ca = [\"pki/root.crt\"]",
        "client_ca = [\"pki/root.crt\", \"pinned.crt\"]",
    );
    let said = fails("check", &config);
    assert!(
        said.contains("pinned.crt") && said.contains("CN=pinned") && said.contains("not a CA"),
        "{said}"
    );
}

#[test]
fn errors_about_named_files_say_where_they_were_named_and_what_to_do() {
    let pki = Pki::new();
    let config = pki.config("optional", "builtin:whoami", "");
    let good = std::fs::read_to_string(&config).unwrap();
    for (from, to, needles) in [
        (
            "pki/issued/localhost.chain.pem",
            "pki/issued/nope.pem",
            &[
                "gate-optional.toml:3: cert: cannot read",
                "nope.pem",
                "portcullis pki issue server",
            ][..],
        ),
        (
            "pki/issued/localhost.key",
            "pki/issued/alice.key",
            &[
                "gate-optional.toml:4: key: ",
                "alice.key",
                "is not the private key of the certificate",
            ],
        ),
        (
            "client_ca = [\"pki/root.crt\"]",
            "client_ca = [\"pki/issued/alice.key\"]",
            &[
                "gate-optional.toml:6: client_ca: ",
                "no CERTIFICATE block",
                "e.g. pki/root.crt",
            ],
        ),
        (
            "crl = [\"pki/crl.pem\"]",
            "crl = [\"pki/nocrl.pem\"]",
            &[
                "gate-optional.toml:7: crl: cannot read",
                "nocrl.pem",
                "portcullis pki crl",
            ],
        ),
    ] {
        std::fs::write(&config, &good).unwrap();
        edit(&config, from, to);
        let said = fails("check", &config);
        for n in needles {
            assert!(said.contains(n), "{n:?} missing from: {said}");
        }
        // The OS error once, not once per level of the error chain.
        assert!(said.matches("(os error").count() <= 1, "{said}");
    }
}

/// A leaf issued under `ca.toml` defaults names a CRL distribution point and an issuer
/// URL. webpki only uses a CRL it judges authoritative for such a certificate, and refuses
/// when none is: the gate must still serve it, and still refuse it once revoked.
#[test]
fn a_certificate_naming_a_crl_url_is_served_and_refused_once_revoked() {
    let pki = Pki::new();
    std::fs::write(
        pki.path("pki/ca.toml"),
        "[defaults]\ncrl_url = \"http://pki.test/crl.der\"\nca_issuers_url = \"http://pki.test/issuing.crt\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["pki", "--dir"])
        .arg(pki.path("pki"))
        .args(["issue", "client", "dora", "--ou", "Users", "--no-p12"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "crlDistributionPoints", "-in"])
        .arg(pki.path("pki/issued/dora.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("URI:http://pki.test/crl.der"), "{text}");
    let gate = Gate::start(&pki.config("require", "builtin:whoami", ""));
    let r = curl_as(&pki, "dora", &[], &gate.url("/me"));
    assert_eq!(r.status, "200", "{r:?}{}", gate.output());
    pki.revoke("dora");
    reload(&gate);
    let seen = gate.lines_with(&["reason=revoked"]);
    let r = curl_as(&pki, "dora", &[], &gate.url("/me"));
    assert_ne!(r.status, "200", "{r:?}");
    // The log is written in batches: wait for the line rather than race it.
    assert!(
        gate.logged_more(&["reason=revoked"], seen),
        "{}",
        gate.output()
    );
}

/// Roles from a data file: adding a person to a role is an edit of that file, picked up
/// on reload by the running gate (and its open connections' next requests); a broken file
/// keeps the roles in force and says where it is wrong.
#[test]
fn a_role_from_a_roles_file_changes_on_reload_without_a_restart() {
    let pki = Pki::new();
    let people = pki.path("people.toml");
    std::fs::write(&people, "auditor = [\"cn:bob\"]\n").unwrap();
    let config = pki.config("optional", "builtin:whoami", "");
    edit(
        &config,
        "[[rules]]\npath = \"/\"\n",
        "[[roles]]\nfile = \"people.toml\"\n\n[[rules]]\npath = \"/audit/**\"\nrequire = \"role:auditor\"\n\n[[rules]]\npath = \"/\"\n",
    );
    let gate = Gate::start(&config);
    assert_eq!(
        curl_as(&pki, "bob", &[], &gate.url("/audit/x")).status,
        "200"
    );
    assert_eq!(
        curl_as(&pki, "alice", &[], &gate.url("/audit/x")).status,
        "403"
    );

    std::fs::write(
        &people,
        "auditor = [\"cn:bob\", \"email:ALICE@example.com\"]\n",
    )
    .unwrap();
    reload(&gate);
    let r = curl_as(&pki, "alice", &[], &gate.url("/audit/x"));
    assert_eq!(r.status, "200", "{r:?}");
    assert!(
        json(&r.body)["roles"].to_string().contains("auditor"),
        "{}",
        r.body
    );

    // A duplicate: the reload is refused at the file's line, and alice keeps the role.
    std::fs::write(&people, "auditor = [\n\"cn:bob\",\n\"cn:bob\"]\n").unwrap();
    let seen = gate.lines_with(&["people.toml:3"]);
    gate.hangup();
    assert!(
        gate.logged_more(&["people.toml:3"], seen),
        "{}",
        gate.output()
    );
    assert_eq!(
        curl_as(&pki, "alice", &[], &gate.url("/audit/x")).status,
        "200"
    );
}

#[test]
fn a_cel_condition_lets_each_user_reach_only_their_own_paths() {
    let pki = Pki::new();
    let upstream = Upstream::start();
    let config = pki.config("optional", &upstream.url(), "");
    // Per-user paths (the ACL case), a condition on a header the client sends, and one on
    // a header only the gate may set: the client's copy is removed before rules look.
    edit(
        &config,
        "[[rules]]\npath = \"/\"\n",
        r#"[[rules]]
path = "/users/**"
require = "authenticated"
when = "request.path.startsWith('/users/' + cert.cn + '/') || 'admin' in roles"

[[rules]]
path = "/reports/**"
require = "anonymous"
when = "request.headers['x-team'] == 'blue' && request.query.year == '2026'"

[[rules]]
path = "/spoof/**"
require = "anonymous"
when = "'x-client-verify' in request.headers"

[[rules]]
path = "/"
"#,
    );
    let gate = Gate::start(&config);
    let bob = curl_as(&pki, "bob", &[], &gate.url("/users/bob/notes?x=1"));
    assert_eq!(bob.status, "200", "{bob:?}");
    assert_eq!(
        json(&bob.body)["url"],
        "/users/bob/notes?x=1",
        "{}",
        bob.body
    );
    assert_eq!(json(&bob.body)["headers"]["x-client-cn"], "bob");
    // bob is not carol, and `..` does not make him so: the path is canonical first.
    for path in [
        "/users/carol/notes",
        "/users/bob/../carol/notes",
        "/users/bobby/x",
    ] {
        let r = curl_as(&pki, "bob", &[], &gate.url(path));
        assert_eq!(r.status, "403", "{path}: {r:?}");
        assert!(r.body.contains("condition"), "{path}: {}", r.body);
    }
    // An admin (alice, OU Admins) may read anyone's.
    assert_eq!(
        curl_as(&pki, "alice", &[], &gate.url("/users/bob/notes")).status,
        "200"
    );
    // The condition reads `cert`: without a certificate the answer is 401, not 403.
    assert_eq!(curl(&pki, &[], &gate.url("/users/bob/notes")).status, "401");

    let blue = ["-H", "X-Team: blue"];
    assert_eq!(
        curl(&pki, &blue, &gate.url("/reports/q?year=2026")).status,
        "200"
    );
    assert_eq!(
        curl(&pki, &blue, &gate.url("/reports/q?year=2025")).status,
        "403"
    );
    // A parameter given twice (in two spellings) or a header sent twice is ambiguous:
    // refused, not guessed.
    assert_eq!(
        curl(&pki, &blue, &gate.url("/reports/q?year=2026&y%65ar=2025")).status,
        "403"
    );
    let twice = ["-H", "X-Team: blue", "-H", "X-Team: red"];
    assert_eq!(
        curl(&pki, &twice, &gate.url("/reports/q?year=2026")).status,
        "403"
    );
    // `X_Team` is `X-Team` to CGI, PHP and Rack. By default the gate drops names with an
    // underscore (as nginx does), so the condition and the upstream both see one line;
    // with `allow_underscores` the condition counts both (a unit test in authorize.rs).
    let r = curl(
        &pki,
        &["-H", "X-Team: blue", "-H", "X_Team: red"],
        &gate.url("/reports/q?year=2026"),
    );
    assert_eq!(r.status, "200", "{r:?}");
    assert!(
        !r.body.contains("x_team") && !r.body.contains("red"),
        "{}",
        r.body
    );
    for spelling in ["X-Client-Verify: SUCCESS", "x_client_verify: SUCCESS"] {
        let r = curl(&pki, &["-H", spelling], &gate.url("/spoof/x"));
        assert_eq!(r.status, "403", "{spelling}: {r:?}");
    }
    // The access log names the deciding rule, and `check` lists it with its condition.
    assert!(
        gate.logged_more(&["/users/carol/notes", "rule=0", "decision=forbidden"], 0),
        "{}",
        gate.output()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("#0 /users/** authenticated when request.path.startsWith('/users/' + cert.cn + '/') || 'admin' in roles"),
        "{listed}"
    );
}

#[test]
fn a_bad_condition_is_refused_at_load_and_on_reload_with_its_position() {
    let pki = Pki::new();
    let config = pki.config("optional", "builtin:whoami", "");
    let good = "[[rules]]\npath = \"/x/**\"\nrequire = \"authenticated\"\nwhen = \"cert.cn == 'bob'\"\n\n[[rules]]\npath = \"/\"\n";
    edit(&config, "[[rules]]\npath = \"/\"\n", good);
    let gate = Gate::start(&config);
    assert_eq!(curl_as(&pki, "bob", &[], &gate.url("/x/1")).status, "200");
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/x/1")).status, "403");

    // A typo in a field: the reload is refused with file:line, the key and the column,
    // and the old policy keeps deciding.
    edit(
        &config,
        "cert.cn == 'bob'",
        "cert.cn == 'alice' && cert.nmae == 'x'",
    );
    let seen = gate.lines_with(&["no field `nmae`"]);
    gate.hangup();
    assert!(
        gate.logged_more(&["no field `nmae`", "rules[0]", "column 23"], seen),
        "{}",
        gate.output()
    );
    assert_eq!(curl_as(&pki, "bob", &[], &gate.url("/x/1")).status, "200");
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/x/1")).status, "403");

    // `portcullis check` says the same and where: file:line, key, column, a caret.
    let said = fails("check", &config);
    assert!(said.contains("gate-optional.toml:"), "{said}");
    assert!(
        said.contains("rules[0]") && said.contains("when:"),
        "{said}"
    );
    assert!(said.contains("column 23") && said.contains('^'), "{said}");
}

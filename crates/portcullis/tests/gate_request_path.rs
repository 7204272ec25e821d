//! The gate's request path, tried as an attacker would: raw bytes in, and an upstream that
//! records exactly what it received. Spoofing is judged the way a WSGI/CGI application
//! reads headers (case folded, `_` the same as `-`), so a header that any framework would
//! read as the gate's is caught in any spelling.
//!
//! Each test here failed on the gate before the request path was rebuilt (issue 8).

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gate_support;

use std::time::{Duration, Instant};

use gate_support::raw::*;
use gate_support::*;

/// A GET with `Host: localhost` and extra header lines (each ending in `\r\n`).
fn get(path: &str, lines: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{lines}\r\n")
}

/// Waits until `cond` holds, for at most `limit`.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    cond()
}

/// Every spelling a framework folds into a protected name.
const SPOOF: &str = "X_Client_CN: alice\r\n\
    X_CLIENT_ROLES: admin\r\n\
    x_client_verify: SUCCESS\r\n\
    X-Client_Fingerprint: 00\r\n\
    Client_Cert: :AAAA:\r\n\
    client_cert_chain: :BBBB:\r\n\
    X_Forwarded_For: 10.0.0.1\r\n\
    X_Forwarded_Host: evil.example\r\n\
    X_Remote_User: alice\r\n\
    x-remote-user: alice\r\n\
    X.Client.CN: alice\r\n\
    X.Client.Verify: SUCCESS\r\n\
    Client-IP: 10.0.0.1\r\n\
    True-Client-IP: 10.0.0.1\r\n\
    X-Forwarded: for=10.0.0.1\r\n";

/// Asserts the upstream saw exactly the gate's identity for `who` (`None`: anonymous) and
/// nothing a client wrote under a protected name.
fn assert_only_the_gate_speaks(r: &Received, who: Option<(&str, &str)>) {
    match who {
        None => {
            assert_eq!(r.one("x-client-verify"), "NONE", "{r:#?}");
            for name in [
                "x-client-cn",
                "x-client-roles",
                "x-client-fingerprint",
                "client-cert",
                "client-cert-chain",
            ] {
                assert!(!r.has(name), "{name} reached the upstream: {r:#?}");
            }
        }
        Some((cn, roles)) => {
            assert_eq!(r.one("x-client-verify"), "SUCCESS", "{r:#?}");
            assert_eq!(r.one("x-client-cn"), cn, "{r:#?}");
            assert_eq!(r.one("x-client-roles"), roles, "{r:#?}");
            assert_eq!(r.one("x-client-fingerprint").len(), 64, "{r:#?}");
            assert_ne!(r.one("client-cert"), ":AAAA:", "{r:#?}");
            assert!(r.one("client-cert-chain").starts_with(':'), "{r:#?}");
        }
    }
    assert_eq!(r.one("x-forwarded-for"), "127.0.0.1", "{r:#?}");
    for name in [
        "x-remote-user",
        "client-ip",
        "true-client-ip",
        "x-forwarded",
    ] {
        assert!(!r.has(name), "{name}: {r:#?}");
    }
    assert!(r.one("x-forwarded-host").starts_with("localhost"), "{r:#?}");
    assert!(
        !r.one("forwarded").contains("10.0.0.1") && !r.one("forwarded").contains("evil"),
        "{r:#?}"
    );
}

#[test]
fn underscore_spellings_of_identity_headers_never_reach_the_upstream() {
    let pki = Pki::new();
    for h2c in [false, true] {
        let upstream = Upstream::recording_over(h2c);
        let gate = Gate::start(&pki.config(
            "optional",
            &upstream.url(),
            &format!("upstream_http2 = {h2c}\n[headers]\nstrip = [\"X-Remote-User\"]"),
        ));
        for (who, expect) in [
            (As::Anonymous, None),
            (As::Client("bob"), Some(("bob", "user"))),
        ] {
            // HTTP/1.1, spelled as a client likes.
            let r = h1(&pki, gate.port, who, &get("/public/x", SPOOF));
            assert_only_the_gate_speaks(&r.received(), expect);
            // HTTP/2: names are lower case on the wire, underscores allowed.
            let lines: Vec<(String, String)> = SPOOF
                .split("\r\n")
                .filter_map(|l| l.split_once(": "))
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
                .collect();
            let headers: Vec<(&str, &str)> = lines
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let r = h2(
                &pki,
                gate.port,
                who,
                &H2Request {
                    path: "/public/x",
                    headers: &headers,
                    ..H2Request::default()
                },
            )
            .unwrap();
            assert_only_the_gate_speaks(&r.received(), expect);
        }
    }
}

#[test]
fn connection_tokens_cannot_remove_what_the_gate_adds() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let gate = Gate::start(&pki.config("optional", &upstream.url(), ""));
    let bob = Some(("bob", "user"));
    for lines in [
        "Connection: close, x-client-verify, client-cert, x-client-roles, x-client-cn, client-cert-chain\r\n",
        // Every Connection line counts, not only the first.
        "Connection: keep-alive\r\nConnection: x-client-cn, x-client-roles\r\n",
        "Connection: X_Client_CN, X_Client_Roles, x_client_verify\r\n",
        "Connection: forwarded, x-forwarded-for, x-forwarded-host, x-client-fingerprint\r\n",
        "Connection: keep-alive\r\nConnection: Client-Cert, Client-Cert-Chain\r\n",
    ] {
        let r = h1(&pki, gate.port, As::Client("bob"), &get("/public/x", lines)).received();
        assert_only_the_gate_speaks(&r, bob);
        let r = h1(&pki, gate.port, As::Anonymous, &get("/public/x", lines)).received();
        assert_only_the_gate_speaks(&r, None);
    }
    // Extension fields named in Connection go (RFC 9110 §7.6.1), as do the standard
    // hop-by-hop ones; standard end-to-end fields, and the Host the gate checked, stay.
    let r = h1(
        &pki,
        gate.port,
        As::Client("bob"),
        &get(
            "/public/x",
            "Connection: x-hop, host, cookie\r\nX-Hop: 1\r\nCookie: a=1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n",
        ),
    )
    .received();
    assert!(
        !r.has("x-hop") && !r.has("keep-alive") && !r.has("te"),
        "{r:#?}"
    );
    assert_eq!(r.one("host"), "localhost");
    assert_eq!(
        r.one("cookie"),
        "a=1",
        "an end-to-end field named in Connection stays"
    );
}

#[test]
fn non_canonical_method_spellings_are_refused_not_matched_as_another_method() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let gate = Gate::start(&pki.config(
        "optional",
        &upstream.url(),
        "[[rules]]\npath = \"/api/**\"\nmethods = [\"DELETE\", \"POST\", \"PUT\"]\nrequire = \"role:admin\"\n\
         [[rules]]\npath = \"/reports/**\"\nmethods = [\"GET\"]\nrequire = \"role:admin\"\n\
         [[rules]]\npath = \"/v1/items:purge\"\nrequire = \"role:admin\"\n\
         [[rules]]\npath = \"/api/**\"\nrequire = \"authenticated\"",
    ));
    let req = |method: &str| {
        format!("{method} /api/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
    };
    for method in ["delete", "Delete", "PoSt", "pUT", "post", "get", "Get"] {
        let r = h1(&pki, gate.port, As::Client("bob"), &req(method));
        assert_eq!(r.status, 400, "{method}: {r:?}");
        assert_eq!(json(&r.body)["error"], "bad_request", "{method}");
        let r = h2(
            &pki,
            gate.port,
            As::Client("bob"),
            &H2Request {
                method,
                path: "/api/x",
                ..H2Request::default()
            },
        )
        .unwrap();
        assert_eq!(r.status, 400, "h2 {method}: {r:?}");
    }
    // The canonical spellings are judged by the rules and reach the upstream as judged.
    assert_eq!(
        h1(&pki, gate.port, As::Client("bob"), &req("DELETE")).status,
        403
    );
    assert_eq!(
        h1(&pki, gate.port, As::Client("bob"), &req("GET"))
            .received()
            .method,
        "GET"
    );
    assert_eq!(
        h1(&pki, gate.port, As::Client("alice"), &req("DELETE"))
            .received()
            .method,
        "DELETE"
    );
    // Applications answer HEAD with their GET handler: a GET rule covers HEAD.
    let mut c = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Client("bob"));
    c.send(b"HEAD /reports/q3 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_status(), Some(403), "HEAD slipped past a GET rule");
    // Encoded characters a path may carry raw are judged decoded, as applications read
    // them.
    let r = h1(
        &pki,
        gate.port,
        As::Client("bob"),
        &get("/v1/items%3Apurge", ""),
    );
    assert_eq!(r.status, 403, "{r:?}");
    let r = h1(
        &pki,
        gate.port,
        As::Client("alice"),
        &get("/v1/items%3Apurge", ""),
    );
    assert_eq!(r.received().url, "/v1/items:purge");
}

#[test]
fn a_reload_reaches_the_next_request_on_every_open_connection() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let config = pki.config(
        "optional",
        &upstream.url(),
        "[[rules]]\npath = \"/api/**\"\nrequire = \"authenticated\"",
    );
    let gate = Gate::start(&config);
    let mut conn = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Client("bob"));
    let mut h2conn = H2Conn::open(&pki, gate.port, As::Client("bob"));
    assert_eq!(conn.request(&get("/api/x", "")).unwrap().status, 200);
    assert_eq!(conn.request(&get("/admin/x", "")).unwrap().status, 403);
    assert_eq!(h2conn.get("/api/x"), 200);

    // Tighten /api/**, and make OU Users admins: both must reach the open connections.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("require = \"authenticated\"", "require = \"deny\"")
        .replace("ou = \"Users\"", "ou = \"Nobody\"")
        .replace("ou = \"Admins\"", "ou = \"Users\"");
    std::fs::write(&config, text).unwrap();
    let loaded = gate.output().matches(" loaded").count();
    gate.hangup();
    assert!(
        wait_until(Duration::from_secs(10), || gate
            .output()
            .matches(" loaded")
            .count()
            > loaded),
        "{}",
        gate.output()
    );
    let r = conn.request(&get("/api/x", "")).unwrap();
    assert_eq!(r.status, 403, "the old policy still answers: {r:?}");
    assert_eq!(h2conn.get("/api/x"), 403);
    let r = conn.request(&get("/admin/x", "")).unwrap();
    assert_eq!(r.status, 200, "the new role mapping is not applied: {r:?}");
    assert_eq!(r.received().one("x-client-roles"), "admin");
}

#[test]
fn zero_window_http2_clients_cannot_hold_every_connection_slot() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config(
        "optional",
        "builtin:whoami",
        "[limits]\nmax_connections = 6\nidle_timeout_secs = 2\nwrite_timeout_secs = 2",
    ));
    let start = Instant::now();
    let stuck = ZeroWindow::open(&pki, gate.port, 6);
    // Positive control: the slots really are full now.
    assert_eq!(curl_as(&pki, "alice", &[], &gate.url("/me")).status, "000");
    let served = wait_until(Duration::from_secs(4), || {
        curl_as(&pki, "alice", &["--max-time", "1"], &gate.url("/me")).status == "200"
    });
    assert!(
        served,
        "not served within 2x the idle limit ({:?} since the stuck clients connected)",
        start.elapsed()
    );
    drop(stuck);
}

#[test]
fn clients_that_stop_reading_are_closed_and_free_their_slots() {
    let pki = Pki::new();
    // 16 MiB: far more than the socket buffers hold.
    let big = Upstream::node(
        "http.createServer((req, res) => res.end(Buffer.alloc(16 * 1024 * 1024, 120)))",
    );
    let gate = Gate::start(&pki.config(
        "optional",
        &big.url(),
        "[limits]\nmax_connections = 3\nwrite_timeout_secs = 2",
    ));
    let mut readers: Vec<H1> = (0..3)
        .map(|_| {
            let mut c = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Anonymous);
            c.send(get("/public/big", "").as_bytes());
            c
        })
        .collect();
    let start = Instant::now();
    let served = wait_until(Duration::from_secs(6), || {
        curl(
            &pki,
            &["--max-time", "1", "-o", "/dev/null"],
            &gate.url("/"),
        )
        .status
            == "200"
    });
    assert!(served, "not served after {:?}", start.elapsed());
    // The slow readers were closed, not served forever.
    for r in &mut readers {
        assert!(r.closed_within(Duration::from_secs(5)));
    }
}

/// An upstream that answers `/public/big` with 16 MiB and anything else with a little JSON.
fn big_upstream() -> Upstream {
    Upstream::node(
        "http.createServer((req, res) => req.url.startsWith('/public/big') \
            ? res.end(Buffer.alloc(16 * 1024 * 1024, 120)) : res.end('{}'))",
    )
}

#[test]
fn a_stuck_http2_stream_is_cut_even_while_other_streams_move() {
    let pki = Pki::new();
    let upstream = big_upstream();
    let gate = Gate::start(&pki.config(
        "optional",
        &upstream.url(),
        "[limits]\nwrite_timeout_secs = 2\nidle_timeout_secs = 60",
    ));
    let mut conn = H2Conn::open(&pki, gate.port, As::Anonymous);
    assert_eq!(conn.hold("/public/big"), 200);
    let start = Instant::now();
    // Other requests on the same connection keep succeeding, until the gate cuts it.
    let mut served = 0;
    let cut = loop {
        if start.elapsed() > Duration::from_secs(10) {
            break false;
        }
        match conn.try_get("/public/small") {
            Ok(200) => served += 1,
            _ => break true,
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(cut, "the stuck stream kept its connection for 10 s");
    let after = start.elapsed();
    assert!(
        served > 3 && after >= Duration::from_millis(1500),
        "cut too early ({after:?}, {served} served): the moving streams were not progress?"
    );
}

#[test]
fn a_busy_connection_ends_at_its_maximum_age_plus_the_drain_limit() {
    let pki = Pki::new();
    let upstream = big_upstream();
    let gate = Gate::start(&pki.config(
        "optional",
        &upstream.url(),
        "[limits]\nmax_connection_age_secs = 2\nshutdown_grace_secs = 2\nwrite_timeout_secs = 5",
    ));
    // A reader that keeps taking a little (never stalled) past both limits…
    let mut c = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Anonymous);
    c.send(get("/public/big", "").as_bytes());
    let start = Instant::now();
    let mut total = 0;
    while start.elapsed() < Duration::from_millis(5500) {
        total += c.read_some(16 * 1024);
        std::thread::sleep(Duration::from_millis(100));
    }
    // …then takes everything at once: what the sockets still hold, then the end — well
    // short of the 16 MiB the response would have had.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = c.read_some(1 << 20);
        assert!(Instant::now() < deadline, "the connection was not cut");
        if n == 0 {
            break;
        }
        total += n;
    }
    assert!(
        total < 16 * 1024 * 1024,
        "the whole response was delivered: {total}"
    );
}

#[test]
fn a_certificate_revoked_during_its_handshake_gets_no_connection() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    let reload = || {
        let seen = gate.lines_with(&[" loaded"]);
        gate.hangup();
        assert!(gate.logged_more(&[" loaded"], seen), "{}", gate.output());
    };
    // Positive control: a reload between the two flights of bob's handshake changes
    // nothing for bob.
    let mut bob = H1::connect_paused(&pki, gate.port, As::Client("bob"), reload).unwrap();
    assert_eq!(bob.request(&get("/me", "")).map(|r| r.status), Some(200));
    // alice is revoked and the gate reloaded after it chose the (old) configuration for
    // her handshake, but before she sent her certificate.
    let needles = ["handshake failed", "during the handshake"];
    let seen = gate.lines_with(&needles);
    let alice = H1::connect_paused(&pki, gate.port, As::Client("alice"), || {
        pki.revoke("alice");
        reload();
    })
    .map(|mut c| c.request(&get("/me", "")).map(|r| r.status));
    assert!(matches!(alice, Err(_) | Ok(None)), "{alice:?}");
    assert!(gate.logged_more(&needles, seen), "{}", gate.output());
}

#[test]
fn per_client_connection_cap_and_maximum_connection_age() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let gate = Gate::start(&pki.config(
        "optional",
        &upstream.url(),
        "[limits]\nmax_connections_per_client = 2\nmax_connection_age_secs = 2",
    ));
    let mut a = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Anonymous);
    let _b = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Anonymous);
    let third = H1::try_connect(&pki, gate.port, Sni::Name("localhost"), As::Anonymous)
        .map(|mut c| c.request(&get("/public/x", "")).map(|r| r.status));
    assert!(
        matches!(third, Err(_) | Ok(None)),
        "a third connection from one address was served: {third:?}"
    );
    // A busy connection still ends at its maximum age.
    let opened = Instant::now();
    let mut ended = false;
    while opened.elapsed() < Duration::from_secs(6) {
        match a.request(&get("/public/x", "")) {
            Some(r) if r.header("connection") != Some("close") => {}
            _ => {
                ended = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ended, "a busy connection outlived max_connection_age_secs");
    assert!(opened.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn host_must_be_one_valid_configured_name_equal_to_sni_and_is_forwarded_as_checked() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let gate = Gate::start(&pki.config("optional", &upstream.url(), ""));
    let raw = |sni: Sni<'_>, head: &str| {
        H1::connect(&pki, gate.port, sni, As::Client("alice"))
            .request(&format!("GET /public/x HTTP/1.1\r\n{head}\r\n"))
            .unwrap()
    };
    let localhost = Sni::Name("localhost");
    for head in [
        "Host: localhost\r\nHost: localhost\r\n",
        "Host: localhost\r\nHost: evil.example\r\n",
        "Host: localhost\r\nhost: localhost\r\n",
        "Host: [localhost]:443@evil.example\r\n",
        "Host: localhost@evil.example\r\n",
        "Host: alice@localhost\r\n",
        "Host: localhost:443:443\r\n",
        "Host: localhost:x\r\n",
        "Host: [::1\r\n",
        "Host: local host\r\n",
        "Host: localhost/x\r\n",
        "",
    ] {
        let r = raw(localhost, head);
        assert_eq!(r.status, 400, "{head:?}: {r:?}");
    }
    // A name the site does not serve is misdirected, whatever the SNI says.
    for (sni, host) in [
        (Sni::Name("evil.example"), "evil.example"),
        (Sni::None, "evil.example"),
        (localhost, "evil.example"),
        (Sni::Name("evil.example"), "localhost"),
        // A port the gate does not listen on would poison URLs built from Host.
        (localhost, "localhost:1"),
    ] {
        let r = raw(sni, &format!("Host: {host}\r\n"));
        assert_eq!(r.status, 421, "SNI {sni:?}, Host {host}: {r:?}");
    }
    // The upstream receives the very value that was checked, everywhere it appears.
    let port = gate.port;
    let r = raw(localhost, &format!("Host: LocalHost:{port}\r\n")).received();
    let checked = format!("localhost:{port}");
    assert_eq!(r.one("host"), checked);
    assert_eq!(r.one("x-forwarded-host"), checked);
    assert!(
        r.one("forwarded").contains(&format!("host=\"{checked}\"")),
        "{r:#?}"
    );
    // Without SNI, a configured name is accepted.
    assert_eq!(raw(Sni::None, "Host: 127.0.0.1\r\n").status, 200);

    // HTTP/2: :authority and a host header must agree; an unknown name is misdirected.
    let ask = |authority: &str, headers: &[(&str, &str)]| {
        h2(
            &pki,
            port,
            As::Client("alice"),
            &H2Request {
                authority,
                path: "/public/x",
                headers,
                ..H2Request::default()
            },
        )
        .unwrap()
        .status
    };
    assert_eq!(ask("localhost", &[("host", "evil.example")]), 400);
    assert_eq!(ask("evil.example", &[]), 421);
    assert_eq!(ask("localhost", &[]), 200);
}

#[test]
fn the_redirect_listener_only_sends_clients_to_configured_names() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config(
        "optional",
        "builtin:whoami",
        "redirect_http = \"127.0.0.1:0\"",
    ));
    assert!(wait_until(Duration::from_secs(5), || gate
        .output()
        .contains("redirecting http://")));
    let out = gate.output();
    let plain = out
        .lines()
        .find_map(|l| l.split("redirecting http://").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no redirect address printed: {out}"))
        .to_owned();
    let redirect = |host: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "-o", "/dev/null", "-w"])
            .arg("%{http_code} %{redirect_url}")
            .args(["-H", &format!("Host: {host}")])
            .arg(format!("http://{plain}/me?x=1"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        redirect("localhost"),
        format!("308 https://localhost:{}/me?x=1", gate.port)
    );
    for evil in ["evil.example", "localhost@evil.example", "evil.example:80"] {
        let r = redirect(evil);
        assert!(r.starts_with("400"), "{evil}: {r}");
    }
}

#[test]
fn identity_values_are_unambiguous_and_logs_cannot_be_forged() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let gate = Gate::start(&pki.config("optional", &upstream.url(), "access_log = \"text\""));
    // CN "mallory, OU=Admins" and one OU "Users,Admins".
    let r = h1(&pki, gate.port, As::Client("trudy"), &get("/public/x", "")).received();
    assert_eq!(
        r.one("x-client-ou"),
        "\"Users,Admins\"",
        "one OU, as a list of one"
    );
    assert_eq!(r.one("x-client-cn"), "mallory, OU=Admins");
    let subject = r.one("x-client-subject");
    assert!(
        subject.contains("CN=mallory\\, OU=Admins") && subject.contains("OU=Users\\,Admins"),
        "not RFC 4514-escaped: {subject}"
    );
    // A CN with a right-to-left override cannot reorder the log line.
    let r = h1(&pki, gate.port, As::Client("rtl"), &get("/public/x", ""));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        wait_until(Duration::from_secs(5), || gate.output().contains("nimda")),
        "{}",
        gate.output()
    );
    let log = gate.output();
    assert!(
        !log.contains('\u{202e}'),
        "raw bidi override in the log: {log}"
    );
    assert!(log.contains("\\u{202e}"), "{log}");
}

#[test]
fn trailers_and_override_headers_never_reach_the_upstream() {
    let pki = Pki::new();
    for h2c in [false, true] {
        let upstream = Upstream::recording_over(h2c);
        let gate = Gate::start(&pki.config(
            "optional",
            &upstream.url(),
            &format!("upstream_http2 = {h2c}"),
        ));
        let r = h2(
            &pki,
            gate.port,
            As::Client("bob"),
            &H2Request {
                method: "POST",
                path: "/public/x",
                trailers: &[
                    ("x-client-cn", "alice"),
                    ("x_client_roles", "admin"),
                    ("client-cert", ":AAAA:"),
                    ("x-forwarded-for", "10.0.0.1"),
                    ("x-checksum", "ok"),
                ],
                ..H2Request::default()
            },
        )
        .unwrap()
        .received();
        assert_only_the_gate_speaks(&r, Some(("bob", "user")));

        let chunked = "POST /public/x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
            Trailer: X-Client-CN, X_Client_Roles\r\n\r\n3\r\nabc\r\n0\r\n\
            X-Client-CN: alice\r\nX_Client_Roles: admin\r\n\r\n";
        let r = h1(&pki, gate.port, As::Client("bob"), chunked).received();
        assert_only_the_gate_speaks(&r, Some(("bob", "user")));

        let overrides = "X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\n\
            X-Method-Override: PUT\r\nX-Original-URL: /admin/x\r\nX-Rewrite-URL: /admin/x\r\n\
            X_HTTP_Method_Override: DELETE\r\nx_original_url: /admin/x\r\n";
        let r = h1(
            &pki,
            gate.port,
            As::Client("bob"),
            &get("/public/x", overrides),
        )
        .received();
        for name in [
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
            "x-original-url",
            "x-rewrite-url",
        ] {
            assert!(!r.has(name), "{name} reached the upstream: {r:#?}");
        }
    }
}

#[test]
fn segments_other_servers_trim_or_fold_are_refused() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    // The standard rules: /public/** open to anyone, /admin/** for admins.
    let gate = Gate::start(&pki.config("optional", &upstream.url(), ""));
    for path in [
        "/admin%20/x",
        "/admin%20",
        "/public/x%20",
        "/public/x%09",
        "/admin%C2%A0/x",
        "/admin%E3%80%80/x",
        "/admin%E2%80%8A",
        "/admin%2E%20/x",
        "/public/a%EF%BC%8Fb",
        "/public/a%E2%88%95b",
        "/public/a%E2%81%84b",
        "/public/a%EF%BC%BCb",
        "/public/x%EF%BC%8E",
        "/public/%EF%BC%8E%EF%BC%8E/admin",
        "/public/x%E2%80%A4",
    ] {
        let r = h1(&pki, gate.port, As::Client("bob"), &get(path, ""));
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
    // Positive control: ordinary encoded data still passes, as judged.
    let r = h1(
        &pki,
        gate.port,
        As::Client("bob"),
        &get("/public/a%20b/caf%C3%A9", ""),
    );
    assert_eq!(r.received().url, "/public/a%20b/caf%C3%A9");
}

#[test]
fn an_early_hangup_does_not_kill_the_gate() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    gate.hangup();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(curl(&pki, &[], &gate.url("/")).status, "200");
}

#[test]
fn a_certificate_with_someone_else_s_key_is_refused_in_every_mode() {
    let pki = Pki::new();
    let impostor = As::Impostor {
        cert_of: "alice",
        key_of: "bob",
    };
    for extra in ["", "invalid_cert = \"anonymous\""] {
        let gate = Gate::start(&pki.config("optional", "builtin:whoami", extra));
        // Positive control: the same client with its own key is served.
        let ok = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Client("alice"))
            .request(&get("/me", ""));
        assert_eq!(ok.map(|r| r.status), Some(200));
        let r = H1::try_connect(&pki, gate.port, Sni::Name("localhost"), impostor)
            .map(|mut c| c.request(&get("/me", "")).map(|r| r.status));
        assert!(matches!(r, Err(_) | Ok(None)), "{extra}: {r:?}");
        assert!(
            wait_until(Duration::from_secs(5), || gate
                .output()
                .contains("handshake failed")),
            "{}",
            gate.output()
        );
    }
}

#[test]
fn refused_certificates_as_anonymous_cannot_spoof_either() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let gate =
        Gate::start(&pki.config("optional", &upstream.url(), "invalid_cert = \"anonymous\""));
    let r = h1(&pki, gate.port, As::Client("eve"), &get("/public/x", SPOOF)).received();
    assert_eq!(r.one("x-client-verify"), "FAILED:expired");
    for name in ["x-client-cn", "x-client-roles", "client-cert"] {
        assert!(!r.has(name), "{name}: {r:#?}");
    }
}

#[test]
fn the_left_most_cn_is_the_identity() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    let gate = Gate::start(&pki.config(
        "optional",
        &upstream.url(),
        "[[roles]]\nrole = \"a\"\ncn = [\"alice\"]\n[[rules]]\npath = \"/a\"\nrequire = \"role:a\"",
    ));
    // twocn is CN=alice then CN=mallory in its encoding: RFC 4514 lists mallory first,
    // and so do X-Client-Subject, Java's X500Principal and nginx's $ssl_client_s_dn.
    let r = h1(&pki, gate.port, As::Client("twocn"), &get("/public/x", "")).received();
    assert_eq!(r.one("x-client-cn"), "mallory");
    assert!(
        r.one("x-client-subject")
            .starts_with("OU=Users,CN=mallory,"),
        "{r:#?}"
    );
    // The rules read the same CN: a role for alice is not granted.
    assert_eq!(
        h1(&pki, gate.port, As::Client("twocn"), &get("/a", "")).status,
        403
    );
}

/// A TLS 1.3 session ticket travels with the first response, not in a write and a TCP
/// segment of its own: after the handshake the gate sends nothing until it answers, and the
/// client resumes with what the response brought. A handshake that fails still gets its
/// alert (the refusals above and in gate_e2e).
#[test]
fn session_tickets_come_with_the_first_response() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config("optional", "builtin:whoami", ""));
    let config = client_config(&pki, As::Client("alice"), &[b"http/1.1"]);
    let mut first = H1::connect_with(config.clone(), gate.port);
    assert!(
        !first.sends_within(Duration::from_millis(300)),
        "the gate sent something after the handshake, before any request"
    );
    let r = first.request(&get("/me", "")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(json(&r.body)["subject"]["cn"], "alice");
    let mut again = H1::connect_with(config, gate.port);
    assert!(
        again.resumed(),
        "the tickets of the first response did not resume"
    );
    let r = again.request(&get("/me", "")).unwrap();
    assert_eq!(json(&r.body)["subject"]["cn"], "alice");
    // HTTP/2: the server's SETTINGS take the ticket along.
    let me = H2Request {
        path: "/me",
        ..H2Request::default()
    };
    let r = h2(&pki, gate.port, As::Client("alice"), &me).unwrap();
    assert_eq!(json(&r.body)["subject"]["cn"], "alice", "{r:?}");
}

#[test]
fn slow_headers_and_oversized_headers_are_cut_off() {
    let pki = Pki::new();
    let gate = Gate::start(&pki.config(
        "optional",
        "builtin:whoami",
        "[limits]\nheader_timeout_secs = 1\nmax_header_bytes = 8192",
    ));
    let mut slow = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Anonymous);
    slow.send(b"GET / HTTP/1.1\r\nHost: local");
    let start = Instant::now();
    assert!(slow.closed_within(Duration::from_secs(5)));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );

    // A head dribbled a byte at a time: the bytes do not restart the header timeout.
    let mut drip = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Anonymous);
    let head = "GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let start = Instant::now();
    let mut bytes = head.bytes().chain(std::iter::repeat(b'a')).take(50);
    let outlived =
        bytes.all(|b| drip.try_send(&[b]) && !drip.closed_within(Duration::from_millis(200)));
    assert!(!outlived, "a head dribbled over 10 s was not cut off");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );

    let big = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let r = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Anonymous)
        .request(&get("/", &big));
    assert!(
        r.as_ref().is_none_or(|r| r.status == 431),
        "an oversized header was served: {r:?}"
    );
    // Positive control: a normal request on the same gate is served.
    assert_eq!(
        h1(&pki, gate.port, As::Anonymous, &get("/", "")).status,
        200
    );
}

/// Idle HTTP/1.1 connections give hyper's buffers back (`park.rs`) and carry on as if
/// nothing happened: the next request on the same TLS connection is served and reaches the
/// upstream as sent, part of a head read before parking is not lost, and a head left
/// unfinished is still cut off by the header timeout however long the connection idles.
#[test]
fn idle_connections_give_their_buffers_back_and_carry_on() {
    let pki = Pki::new();
    let upstream = Upstream::recording();
    // The watchdog looks every second and parks after a second idle; an idle HTTP/1.1
    // connection ends at the header timeout (6 s), parked or not, as hyper ends it.
    let gate = Gate::start(&pki.config(
        "optional",
        &upstream.url(),
        "admin = \"127.0.0.1:0\"\n[limits]\nidle_timeout_secs = 12\nheader_timeout_secs = 6",
    ));
    let admin = gate.admin_addr();
    let parked = || metric(&admin, "portcullis_parked_connections");
    let mut c = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Client("bob"));
    let r = c.request(&get("/public/one", "")).unwrap();
    assert_eq!(r.received().url, "/public/one");
    assert!(
        wait_until(Duration::from_secs(5), || parked() == 1),
        "the idle connection was not parked"
    );
    // The same TLS connection, parked: served as before, identity and all.
    let r = c.request(&get("/public/two", "")).unwrap();
    let c_last = Instant::now();
    assert_eq!(r.status, 200);
    let got = r.received();
    assert_eq!(got.url, "/public/two");
    assert_eq!(got.one("x-client-cn"), "bob");
    // And parked again once idle, then closed at the header timeout (with close_notify:
    // a clean end), not at the idle timeout.
    assert!(wait_until(Duration::from_secs(5), || parked() == 1));
    assert!(c.closed_within(Duration::from_secs(10)));
    let idle = c_last.elapsed();
    assert!(
        (Duration::from_millis(5500)..Duration::from_millis(8500)).contains(&idle),
        "closed after {idle:?} idle"
    );
    assert!(wait_until(Duration::from_secs(5), || parked() == 0));

    // A request followed by the start of the next in one write: the start is what hyper
    // holds when the connection idles; the rest, sent after the park was tried, completes
    // it.
    let mut d = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Client("bob"));
    d.send(
        format!(
            "{}GET /public/three HTTP/1.1\r\nHost: loc",
            get("/public/x", "")
        )
        .as_bytes(),
    );
    assert_eq!(d.read_response().unwrap().received().url, "/public/x");
    std::thread::sleep(Duration::from_millis(3500));
    let r = d.request("alhost\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.received().url, "/public/three");
    // Still kept alive: a connection that is not idle is never asked to close.
    assert_eq!(r.header("connection"), None);
    assert_eq!(d.request(&get("/public/x", "")).unwrap().status, 200);

    // The start of a head, then nothing: cut off by the header timeout even though the
    // watchdog tries to park the idle connection every second.
    let mut e = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Client("bob"));
    e.send(
        format!(
            "{}GET /public/y HTTP/1.1\r\nHost: loc",
            get("/public/x", "")
        )
        .as_bytes(),
    );
    assert_eq!(e.read_response().unwrap().status, 200);
    let start = Instant::now();
    assert!(
        e.closed_within(Duration::from_secs(10)),
        "a dribbled head outlived the header timeout"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );

    // HTTP/2 with prior knowledge (no ALPN, as some proxies send it) is still served.
    let h2 = H2Request {
        path: "/public/h2",
        ..H2Request::default()
    };
    let r = h2_without_alpn(&pki, gate.port, &h2).unwrap();
    assert_eq!(r.received().url, "/public/h2");
}

/// The gate's HTTP/1.1 upstream pool: requests one after another share one upstream
/// connection; one the upstream closed while idle (its keep-alive timeout), or after a
/// response that said `Connection: close`, is replaced without the client seeing an error.
#[test]
fn upstream_connections_are_reused_and_closed_ones_replaced() {
    let pki = Pki::new();
    // Answers with the number of connections it has accepted; closes idle ones after
    // 300 ms (Node waits about a second more), and the connection of any request for
    // /close after answering it.
    let upstream = Upstream::node(
        r#"(() => {
            let accepted = 0;
            const s = http.createServer((req, res) => {
                if (req.url.endsWith('/close')) res.setHeader('connection', 'close');
                if (req.url.endsWith('/chunked')) res.write('chunk ');
                res.end(String(accepted));
            });
            s.on('connection', () => accepted++);
            s.keepAliveTimeout = 300;
            return s;
        })()"#,
    );
    let gate = Gate::start(&pki.config("optional", &upstream.url(), ""));
    let mut c = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Client("bob"));
    let mut ask = |path: &str| {
        c.send(get(path, "").as_bytes());
        let r = c.read_response().expect("a response");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.body
    };
    for _ in 0..5 {
        assert_eq!(
            ask("/public/x"),
            "1",
            "one upstream connection for all five"
        );
    }
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        ask("/public/x"),
        "2",
        "after the upstream's keep-alive timeout"
    );
    assert_eq!(ask("/public/close"), "2");
    assert_eq!(ask("/public/x"), "3", "after Connection: close");
}

/// A request sent on an idle upstream connection that the upstream resets (it closed the
/// connection as the request arrived) is sent again on a new connection only when that is
/// safe: an idempotent method and no body. A POST with a body is never sent twice.
#[test]
fn only_idempotent_bodiless_requests_are_replayed_after_a_reset() {
    let pki = Pki::new();
    // Every connection answers its first request with its number, and resets at the next.
    let upstream = Upstream::node(
        r#"(() => {
            let accepted = 0, received = [];
            const s = require('net').createServer(sock => {
                const n = ++accepted;
                let answered = false;
                sock.on('data', d => {
                    received.push(d.toString().split(' ')[0]);
                    if (answered) return sock.resetAndDestroy();
                    answered = true;
                    const body = n + ' ' + received.join(',');
                    sock.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
                });
            });
            return s;
        })()"#,
    );
    let gate = Gate::start(&pki.config("optional", &upstream.url(), ""));
    let mut c = H1::connect(&pki, gate.port, Sni::Name("localhost"), As::Client("bob"));
    let mut send = |request: &str| {
        c.send(request.as_bytes());
        let r = c.read_response().expect("a response");
        (r.status, r.body)
    };
    assert_eq!(send(&get("/public/x", "")), (200, "1 GET".into()));
    std::thread::sleep(Duration::from_millis(300));
    // Reset on connection 1, sent again on connection 2.
    assert_eq!(send(&get("/public/x", "")), (200, "2 GET,GET,GET".into()));
    std::thread::sleep(Duration::from_millis(300));
    // Reset on connection 2: a POST with a body gets a 502 and reached the upstream once.
    let post = "POST /public/x HTTP/1.1\r\nHost: localhost\r\ncontent-length: 2\r\n\r\nhi";
    assert_eq!(send(post).0, 502);
    assert_eq!(
        send(&get("/public/x", "")),
        (200, "3 GET,GET,GET,POST,GET".into())
    );
}

/// A log nobody reads (standard output a pipe left full) never holds up a request: lines
/// that find the writer's queue full are dropped and counted.
#[test]
fn a_stalled_log_drops_lines_and_never_holds_up_requests() {
    let pki = Pki::new();
    let config = pki.config("optional", "builtin:whoami", "admin = \"127.0.0.1:0\"");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "-c", config.to_str().unwrap()])
        .current_dir(config.parent().unwrap())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Read until both addresses are printed, then never again (the pipe stays open).
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut port, mut admin) = (None, None);
    let mut line = String::new();
    while port.is_none() || admin.is_none() {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "the gate ended"
        );
        let after = |marker: &str| {
            let rest = line.split(marker).nth(1)?;
            Some(rest.split([' ', '"', '\n']).next()?.to_owned())
        };
        port = port.or_else(|| after("listening on https://127.0.0.1:"));
        admin = admin.or_else(|| after("admin on http://"));
    }
    let port: u16 = port.unwrap().parse().unwrap();
    let mut c = H1::connect(&pki, port, Sni::Name("localhost"), As::Client("bob"));
    // More lines than the queue (16,384), the writer's buffer and the pipe hold.
    for i in 0..20_000 {
        let r = c.request(&get("/public", "")).unwrap();
        assert_eq!(r.status, 200, "request {i}");
    }
    let dropped = metric(&admin.unwrap(), "portcullis_log_dropped_lines_total");
    assert!(dropped > 0, "no line was dropped");
    let _ = child.kill();
    let _ = child.wait();
}

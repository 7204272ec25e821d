//! `portcullis policy test`: the decision, the deciding rule, the roles and the trace, for
//! one request or a table; and the same decision the running gate makes.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gate_support;

use std::path::Path;
use std::process::{Command, Output};

use gate_support::*;

fn policy_test(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["policy", "test", "-c"])
        .arg(config)
        .args(args)
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

fn judged(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = policy_test(config, &all);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The rules of `Pki::config` (#0 `/` and #1 `/public/**` anonymous, #2 `/me`
/// authenticated), then #3 DELETE `/admin/**` denied and #4 `/admin/**` for role admin.
fn config(pki: &Pki) -> std::path::PathBuf {
    let path = pki.config("optional", "builtin:whoami", "");
    let text = std::fs::read_to_string(&path).unwrap();
    let extra = "[[rules]]\npath = \"/admin/**\"\nmethods = [\"DELETE\"]\nrequire = \"deny\"\n\n[[rules]]\npath = \"/admin/**\"\nrequire = \"role:admin\"";
    let text = text.replace(
        "[[rules]]\npath = \"/admin/**\"\nrequire = \"role:admin\"",
        extra,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn one_request_names_the_decision_the_rule_the_roles_and_the_rules_tried() {
    let pki = Pki::new();
    let config = config(&pki);
    let (alice, _) = pki.client("alice");

    let o = policy_test(&config, &["--cert", &alice, "GET", "/admin/../admin/users"]);
    let text = said(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    for want in [
        "decision: allow by rule #4 /admin/** role:admin",
        "path judged: /admin/users",
        "role admin: ou = \"Admins\"",
        "tried #2 /me authenticated: path does not match",
        "tried #3 DELETE /admin/** deny: method does not match",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }

    // JSON, and an identity given without a certificate: bob is a user, not an admin.
    let bob = judged(
        &config,
        &["--identity", "cn=bob,ou=Users", "GET", "/admin/users"],
    );
    assert_eq!(bob["decision"], "forbidden");
    assert_eq!(bob["rule"], 4);
    assert_eq!(bob["reason"], "needs role admin");
    assert_eq!(bob["roles"][0]["role"], "user");
    let tried: Vec<_> = bob["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["rule"].as_u64().unwrap(),
                t["mismatch"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tried,
        [
            (0, "path".into()),
            (1, "path".into()),
            (2, "path".into()),
            (3, "method".into())
        ]
    );
    // A certificate and the same fields written out decide alike.
    let by_cert = judged(&config, &["--cert", &alice, "DELETE", "/admin/x"]);
    let by_fields = judged(
        &config,
        &["--identity", "cn=alice,ou=Admins", "DELETE", "/admin/x"],
    );
    assert_eq!(by_cert["decision"], "forbidden");
    assert_eq!(by_cert["rule"], by_fields["rule"]);
    assert_eq!(by_cert["roles"], by_fields["roles"]);

    let anonymous = judged(&config, &["GET", "/admin/x"]);
    assert_eq!(
        (anonymous["decision"].as_str(), anonymous["rule"].as_u64()),
        (Some("unauthenticated"), Some(4))
    );
    let none = judged(&config, &["GET", "/elsewhere"]);
    assert_eq!(
        (none["decision"].as_str(), none["rule"].is_null()),
        (Some("no-rule"), true)
    );
    assert_eq!(
        judged(&config, &["GET", "/a/%2F/b"])["decision"],
        "bad-request"
    );
    assert_eq!(
        judged(&config, &["GET", "/me", "--host", "evil.test"])["decision"],
        "misdirected"
    );

    // Usage and configuration errors: exit 2, saying what is wrong.
    let o = policy_test(&config, &["--identity", "cn=x,shoe=9", "GET", "/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(said(&o).contains("shoe"), "{}", said(&o));
    let o = policy_test(Path::new("/nonexistent.toml"), &["GET", "/"]);
    assert_eq!(o.status.code(), Some(2));
}

/// What `policy test` says is what the running gate does, request by request.
#[test]
fn the_running_gate_decides_as_policy_test_says() {
    let pki = Pki::new();
    let config = config(&pki);
    let gate = Gate::start(&config);
    let status_of = |decision: &str| match decision {
        "allow" => "200",
        "unauthenticated" => "401",
        "forbidden" | "no-rule" => "403",
        "bad-request" => "400",
        "misdirected" => "421",
        other => panic!("unknown decision {other}"),
    };
    for who in [None, Some("alice"), Some("bob")] {
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/me"),
            ("GET", "/admin/x"),
            ("DELETE", "/admin/x"),
            ("POST", "/admin/./x"),
            ("GET", "/public/a/../../admin/x"),
            ("GET", "/nowhere"),
            ("GET", "/a/%2F/b"),
        ] {
            let mut args: Vec<String> = Vec::new();
            if let Some(w) = who {
                args.extend(["--cert".into(), pki.client(w).0]);
            }
            args.extend([method.into(), path.into()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let j = judged(&config, &args);
            let expected = status_of(j["decision"].as_str().unwrap());
            let r = match who {
                Some(w) => curl_as(&pki, w, &["-X", method], &gate.url(path)),
                None => curl(&pki, &["-X", method], &gate.url(path)),
            };
            assert_eq!(r.status, expected, "{who:?} {method} {path}: {j:#}\n{r:?}");
        }
    }
}

#[test]
fn a_table_of_cases_passes_or_names_each_failure_by_line() {
    let pki = Pki::new();
    let config = config(&pki);
    let (alice, _) = pki.client("alice");
    let cases = pki.path("cases.toml");
    let good = format!(
        r#"
[[case]]
name = "alice administers"
cert = "{alice}"
path = "/admin/users"
expect = "allow"
rule = 4

[[case]]
identity = "cn=bob,ou=Users"
path = "/admin/users"
expect = "forbidden"

[[case]]
method = "DELETE"
identity = "cn=alice,ou=Admins"
path = "/admin/users"
expect = "forbidden"
rule = 3

[[case]]
path = "/me"
expect = "unauthenticated"
"#
    );
    std::fs::write(&cases, &good).unwrap();
    let o = policy_test(&config, &[cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(
        said(&o).contains("4 cases, 4 passed, 0 failed"),
        "{}",
        said(&o)
    );

    // A wrong expectation fails with its line; the others still run.
    let bad = good.replace("expect = \"unauthenticated\"", "expect = \"allow\"");
    std::fs::write(&cases, &bad).unwrap();
    let o = policy_test(&config, &[cases.to_str().unwrap()]);
    let text = said(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let line = bad
        .lines()
        .position(|l| l.contains("path = \"/me\""))
        .unwrap();
    assert!(
        text.contains(&format!(
            "cases.toml:{line}: GET /me: expected allow, got unauthenticated"
        )),
        "{text}"
    );
    assert!(text.contains("4 cases, 3 passed, 1 failed"), "{text}");
    let o = policy_test(&config, &["--json", cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["failed"], 1);
    assert_eq!(
        doc["results"][3]["judgement"]["decision"],
        "unauthenticated"
    );

    // A decision that does not exist is a mistake in the table: exit 2, at its line.
    std::fs::write(
        &cases,
        good.replace(
            "expect = \"forbidden\"\n\n[[case]]\nmethod",
            "expect = \"denied\"\n\n[[case]]\nmethod",
        ),
    )
    .unwrap();
    let o = policy_test(&config, &[cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(
        said(&o).contains("\"denied\"") && said(&o).contains("cases.toml:"),
        "{}",
        said(&o)
    );
}

/// `config(pki)` plus conditions: office hours in Berlin on `/payroll/**` (#0), a role
/// granted by a condition (certificates younger than 90 days are `fresh`), and per-user
/// paths on `/users/**` (#1).
fn config_with_conditions(pki: &Pki) -> std::path::PathBuf {
    let path = config(pki);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "[[roles]]",
        r#"[[roles]]
role = "fresh"
when = "now - cert.not_before < duration('2160h')"

[[rules]]
path = "/payroll/**"
require = "authenticated"
when = """
now.getDayOfWeek('Europe/Berlin') in [1, 2, 3, 4, 5]
  && now.getHours('Europe/Berlin') >= 9 && now.getHours('Europe/Berlin') < 17
"""

[[rules]]
path = "/users/**"
require = "authenticated"
when = "request.segments[1] == cert.cn || 'admin' in roles"

[[roles]]"#,
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn conditions_show_in_the_decision_with_what_they_came_to() {
    let pki = Pki::new();
    let config = config_with_conditions(&pki);
    let (bob, _) = pki.client("bob");
    // Tuesday 10:30 in Berlin, then 18:30.
    let at = |t: &str, path: &str| judged(&config, &["--cert", &bob, "--now", t, "GET", path]);
    let open = at("2026-12-01T10:30:00+01:00", "/payroll/march");
    assert_eq!(open["decision"], "allow", "{open}");
    assert_eq!(open["rule"], 0);
    assert_eq!(open["condition"]["result"], "true");
    let closed = at("2026-12-01T18:30:00+01:00", "/payroll/march");
    assert_eq!(closed["decision"], "forbidden", "{closed}");
    assert_eq!(closed["condition"]["result"], "false");
    assert!(
        closed["condition"]["when"]
            .as_str()
            .unwrap()
            .contains("getHours('Europe/Berlin') >= 9"),
        "{closed}"
    );
    // Saturday morning.
    let weekend = at("2026-12-05T10:30:00+01:00", "/payroll/march");
    assert_eq!(weekend["decision"], "forbidden", "{weekend}");

    // The fresh role: bob's certificate was issued by the test's CA just now.
    let roles = open["roles"].as_array().unwrap();
    assert!(
        roles.iter().any(|r| r["role"] == "fresh"
            && r["because"].as_str().unwrap().contains("duration('2160h')")),
        "{open}"
    );
    let later = at("2027-06-01T10:30:00+01:00", "/payroll/march");
    let roles = later["roles"].as_array().unwrap();
    assert!(!roles.iter().any(|r| r["role"] == "fresh"), "{later}");

    // Per-user paths, in text: the condition and its result are printed.
    let o = policy_test(&config, &["--cert", &bob, "GET", "/users/alice/inbox"]);
    let text = said(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("decision: forbidden by rule #1 /users/** authenticated when request.segments[1] == cert.cn"), "{text}");
    assert!(
        text.contains("condition: request.segments[1] == cert.cn || 'admin' in roles is false"),
        "{text}"
    );
    let mine = judged(&config, &["--cert", &bob, "GET", "/users/bob/inbox"]);
    assert_eq!(mine["decision"], "allow", "{mine}");
    // `/users` has no second segment: an index out of range is an error, and an error
    // refuses, saying why.
    let short = judged(&config, &["--identity", "cn=bob", "GET", "/users"]);
    assert_eq!(short["decision"], "forbidden", "{short}");
    assert_eq!(short["condition"]["result"], "error", "{short}");
    assert!(
        short["reason"].as_str().unwrap().contains("out of range"),
        "{short}"
    );
    let anon = judged(&config, &["GET", "/users/bob/inbox"]);
    assert_eq!(anon["decision"], "unauthenticated", "{anon}");
}

#[test]
fn a_table_can_fix_the_time_per_case() {
    let pki = Pki::new();
    let config = config_with_conditions(&pki);
    let cases = pki.path("cases.toml");
    std::fs::write(
        &cases,
        r#"
[[case]]
name = "payroll in office hours"
identity = "cn=bob"
path = "/payroll/x"
now = "2026-12-01T10:00:00+01:00"
expect = "allow"
rule = 0

[[case]]
name = "payroll at night"
identity = "cn=bob"
path = "/payroll/x"
now = "2026-12-01T23:00:00+01:00"
expect = "forbidden"

[[case]]
name = "wrong on purpose"
identity = "cn=bob"
path = "/users/carol/x"
expect = "allow"
"#,
    )
    .unwrap();
    let o = policy_test(&config, &[cases.to_str().unwrap()]);
    let text = said(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cases.toml:17: wrong on purpose: expected allow, got forbidden by rule #1"),
        "{text}"
    );
    assert!(text.contains("3 cases, 2 passed, 1 failed"), "{text}");

    std::fs::write(
        &cases,
        "[[case]]\npath = \"/x\"\nnow = \"noon\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let o = policy_test(&config, &[cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("RFC 3339"), "{}", said(&o));
}

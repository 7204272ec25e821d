use super::*;
use crate::path::canonicalize;
use crate::when::NoHeaders;
use jiff::Timestamp;

fn alice() -> Identity {
    Identity {
        common_name: Some("alice".into()),
        emails: vec!["alice@corp.example".into()],
        email_sans: vec!["a@example.org".into()],
        organizations: vec!["Corp".into()],
        organizational_units: vec!["Admins".into(), "Ops".into()],
        dns_sans: vec!["alice.corp.example".into()],
        uri_sans: vec!["spiffe://prod.example.com/ns/web/sa/alice".into()],
        ip_sans: vec!["10.0.0.7".parse().unwrap(), "::1".parse().unwrap()],
        subject: "CN=alice,OU=Ops,OU=Admins,O=Corp".into(),
        issuer: "CN=Corp CA".into(),
        serial: "0A1B".into(),
        fingerprint_sha256: "ab".repeat(32),
        // 2026-11-01T00:00:00Z and 2027-01-30T00:00:00Z
        not_before: 1_793_491_200,
        not_after: 1_801_267_200,
        ..Default::default()
    }
}

const ROLES: &[&str] = &["admin", "ops"];

fn role_names() -> Vec<String> {
    ROLES.iter().map(|s| s.to_string()).collect()
}

/// Tuesday 2026-12-01 09:30 UTC (10:30 in Berlin).
fn now() -> Timestamp {
    "2026-12-01T09:30:00Z".parse().unwrap()
}

struct Req {
    path: &'static str,
    query: &'static str,
    headers: Vec<(String, String)>,
    who: Option<Identity>,
}

fn req() -> Req {
    Req {
        path: "/users/alice/notes",
        query: "page=2&q=a+b%21&dup=1&d%75p=2",
        headers: vec![
            ("X-Request-Id".into(), "r-1".into()),
            ("Accept".into(), "a".into()),
            ("accept".into(), "b".into()),
        ],
        who: Some(alice()),
    }
}

fn run_with(src: &str, r: &Req) -> Result<bool, EvalError> {
    let names = role_names();
    let when = When::compile(src, Scope::Rule, &names).unwrap_or_else(|e| panic!("{src}: {e}"));
    let path = canonicalize(r.path).unwrap();
    let mut roles = RoleSet::default();
    roles.insert_index(0);
    let facts = Facts {
        identity: r.who.as_ref(),
        roles,
        role_names: &names,
        method: "GET",
        host: "app.example.com",
        path: Some(&path),
        query: r.query,
        headers: &r.headers,
        now: now(),
    };
    when.eval(&facts)
}

fn run(src: &str) -> Result<bool, EvalError> {
    run_with(src, &req())
}

fn holds(src: &str) {
    assert_eq!(run(src), Ok(true), "{src}");
}

fn fails(src: &str) {
    assert_eq!(run(src), Ok(false), "{src}");
}

fn compile_error(src: &str) -> WhenError {
    match When::compile(src, Scope::Rule, &role_names()) {
        Ok(_) => panic!("{src} compiled"),
        Err(e) => e,
    }
}

#[test]
fn every_cert_field_has_its_type_and_value() {
    holds("cert.cn == 'alice'");
    holds("cert.serial == '0A1B'");
    holds(&format!("cert.fingerprint == '{}'", "ab".repeat(32)));
    holds("cert.issuer == 'CN=Corp CA'");
    holds("cert.subject.startsWith('CN=alice,')");
    holds("cert.o == ['Corp']");
    holds("'Admins' in cert.ou && 'Ops' in cert.ou && size(cert.ou) == 2");
    holds("cert.emails == ['alice@corp.example', 'a@example.org']");
    holds("cert.dns[0] == 'alice.corp.example'");
    holds("cert.uris.exists(u, u.startsWith('spiffe://prod.example.com/'))");
    holds("cert.ips == ['10.0.0.7', '::1']");
    holds("cert.not_before == timestamp('2026-11-01T00:00:00Z')");
    holds("cert.not_after - cert.not_before == duration('2160h')");
}

#[test]
fn every_request_field_has_its_type_and_value() {
    holds("request.method == 'GET'");
    holds("request.path == '/users/alice/notes'");
    holds("request.host == 'app.example.com'");
    holds("request.segments == ['users', 'alice', 'notes']");
    holds("request.segments[1] == cert.cn");
    holds("size(request.segments) == 3");
    holds("request.query['page'] == '2'");
    holds("request.query.q == 'a b!'");
    holds("'page' in request.query && !('nope' in request.query)");
    holds("has(request.query.page) && !has(request.query.nope)");
    holds("request.headers['x-request-id'] == 'r-1'");
    holds("request.headers['X-Request-ID'] == 'r-1'");
    holds("'accept' in request.headers");
}

#[test]
fn roles_and_now() {
    holds("'admin' in roles");
    fails("'ops' in roles");
    holds("roles == ['admin']");
    holds("roles.exists(r, r == 'admin')");
    holds("now == timestamp('2026-12-01T09:30:00Z')");
    holds("now.getHours() == 9 && now.getHours('Europe/Berlin') == 10");
    holds("now.getHours('+05:30') == 15 && now.getMinutes('+05:30') == 0");
    // CEL numbers months and days of the month from 0, weekdays from Sunday.
    holds("now.getFullYear() == 2026 && now.getMonth() == 11 && now.getDayOfMonth() == 0");
    holds("now.getDate() == 1 && now.getDayOfWeek() == 2 && now.getDayOfYear() == 334");
    holds("now.getSeconds() == 0 && now.getMilliseconds() == 0");
    holds("int(now) == 1796117400");
}

#[test]
fn the_documented_examples() {
    // Office hours, Monday to Friday, in Berlin.
    holds(
        "now.getDayOfWeek('Europe/Berlin') in [1, 2, 3, 4, 5] && now.getHours('Europe/Berlin') >= 8 && now.getHours('Europe/Berlin') < 18",
    );
    // A user reaches only their own resources.
    holds("request.path.startsWith('/users/' + cert.cn + '/')");
    let bob = Req {
        path: "/users/bob/notes",
        ..req()
    };
    assert_eq!(
        run_with("request.path.startsWith('/users/' + cert.cn + '/')", &bob),
        Ok(false)
    );
    // A certificate younger than 90 days.
    holds("now - cert.not_before < duration('2160h')");
    // A SPIFFE ID in one trust domain.
    holds("cert.uris.exists(u, u.startsWith('spiffe://prod.example.com/'))");
    fails("cert.uris.exists(u, u.startsWith('spiffe://staging.example.com/'))");
}

#[test]
fn operators_and_functions() {
    holds("1 + 2 * 3 - 4 / 2 == 5 && 7 % 3 == 1 && -(2) == -2");
    holds("'ab' + 'c' == 'abc' && 'abc' < 'abd' && 'b' > 'a'");
    holds("size('héllo') == 5");
    holds("'Hello'.lowerAscii() == 'hello' && 'Hello'.upperAscii() == 'HELLO'");
    holds("cert.cn.matches('^a[a-z]+$') && matches(cert.cn, 'lic')");
    holds("cert.cn.endsWith('ice') && cert.cn.contains('lic')");
    holds("true ? cert.cn == 'alice' : false");
    holds("int('42') == 42 && string(42) == '42'");
    holds("string(duration('1h30m')) == '5400s' && string(duration('1.5s')) == '1.5s'");
    holds("string(timestamp('2027-01-31T09:00:00Z')) == '2027-01-31T09:00:00Z'");
    holds("timestamp('2027-01-31T09:00:00+01:00') < timestamp('2027-01-31T09:00:00Z')");
    holds("now + duration('1h') > now && now - duration('1h') < now");
    holds(
        "duration('1h') + duration('30m') == duration('90m') && -duration('1s') < duration('0s')",
    );
    holds("cert.ou.all(o, o != '') && cert.ou.exists_one(o, o == 'Ops')");
    holds("cert.ou.exists(o, cert.dns.exists(d, d.startsWith(cert.cn)))");
    holds("[cert.cn, 'bob'] == ['alice', 'bob']");
    holds("'ops' != cert.cn");
}

#[test]
fn errors_follow_cel_and_reach_the_caller() {
    // A header sent twice, a parameter given twice (in two spellings), a missing key.
    assert!(matches!(
        run("request.headers['accept'] == 'a'"),
        Err(EvalError::Repeated("header", _))
    ));
    assert!(matches!(
        run("request.query['dup'] == '1'"),
        Err(EvalError::Repeated("query parameter", _))
    ));
    assert!(matches!(
        run("request.query['nope'] == '1'"),
        Err(EvalError::NoSuchKey(..))
    ));
    assert!(matches!(
        run("request.segments[7] == 'x'"),
        Err(EvalError::OutOfRange(7, 3))
    ));
    assert_eq!(
        run("1 / (size(cert.cn) - 5) == 0"),
        Err(EvalError::DivisionByZero)
    );
    assert_eq!(run("9223372036854775807 + 1 > 0"), Err(EvalError::Overflow));
    assert!(matches!(run("int('x') == 1"), Err(EvalError::NotAnInt(_))));
    // `false && error` is false and `true || error` is true, whichever side errs.
    fails("request.query['nope'] == '1' && false");
    fails("false && request.query['nope'] == '1'");
    holds("request.query['nope'] == '1' || true");
    holds("true || request.query['nope'] == '1'");
    assert!(run("request.query['nope'] == '1' && true").is_err());
    // exists absorbs an error when another item decides.
    holds("[0, 1].exists(i, 1 / i == 1)");
    // A query that does not decode as UTF-8 cannot be read at all.
    let bad = Req {
        query: "x=%FF",
        ..req()
    };
    assert!(matches!(
        run_with("request.query['x'] == ''", &bad),
        Err(EvalError::NotText(..))
    ));
    // No certificate.
    let anon = Req { who: None, ..req() };
    assert_eq!(
        run_with("cert.cn == ''", &anon),
        Err(EvalError::NoCertificate)
    );
}

#[test]
fn compile_errors_name_the_position() {
    let e = compile_error("cert.cn == 'alice' &&\n  cert.nope == 'x'");
    assert_eq!((e.line, e.column), (2, 3), "{e}");
    assert!(e.message.contains("no field `nope`"), "{e}");
    assert!(e.message.contains("cn, serial"), "{e}");
    assert_eq!(e.snippet, "  cert.nope == 'x'");

    let e = compile_error("cert.cn == 1");
    assert_eq!((e.line, e.column), (1, 9), "{e}");
    assert!(
        e.message.contains("cannot compare a string with a int"),
        "{e}"
    );

    let e = compile_error("cert.cn == 'a' &&");
    assert_eq!(e.line, 1, "{e}");
    assert!(e.column >= 17, "{e}");

    let e = compile_error("'héllo' == cert.cn && bogus(1)");
    assert_eq!((e.line, e.column), (1, 28), "{e}");
    assert!(e.message.contains("unknown function `bogus`"), "{e}");

    let e = compile_error("cert.cn");
    assert!(
        e.message.contains("must be a bool, this is a string"),
        "{e}"
    );
    let e = compile_error("'root' in roles");
    assert!(e.message.contains("no role \"root\""), "{e}");
    assert!(e.message.contains("admin, ops"), "{e}");
    let e = compile_error("cert.cn.matches('(')");
    assert_eq!(e.column, 17, "{e}");
    assert!(e.message.contains("invalid regular expression"), "{e}");
    let e = compile_error("cert.cn.matches(request.path)");
    assert!(e.message.contains("string literal"), "{e}");
    let e = compile_error("now.getHours('Mars/Olympus') > 1");
    assert!(e.message.contains("unknown time zone"), "{e}");
    let e = compile_error("now - cert.not_before < duration('90d')");
    assert!(e.message.contains("2160h"), "{e}");
    let e = compile_error("timestamp('yesterday') < now");
    assert!(e.message.contains("RFC 3339"), "{e}");
    let e = compile_error("cert.ou.map(o, o == 'x') == [true]");
    assert!(
        e.message.contains("map and filter are not supported"),
        "{e}"
    );
    let e = compile_error("cert.ou.exists(a, cert.ou.exists(b, cert.ou.exists(c, a == c)))");
    assert!(e.message.contains("nest at most 2"), "{e}");
    let e = compile_error("has(cert.ou)");
    assert!(e.message.contains("always present"), "{e}");
    let e = compile_error("1.5 > 1");
    assert!(e.message.contains("doubles"), "{e}");
    let e = compile_error("user == 'x'");
    assert!(e.message.contains("unknown variable `user`"), "{e}");
    let e = compile_error(&"true && ".repeat(600));
    assert!(e.message.contains("longer than 4096"), "{e}");
    let e = compile_error("   ");
    assert!(e.message.contains("empty"), "{e}");
}

#[test]
fn role_conditions_read_only_cert_and_now() {
    let names = role_names();
    let ok = When::compile(
        "now - cert.not_before < duration('2160h')",
        Scope::Role,
        &names,
    );
    assert!(ok.is_ok());
    for (src, column) in [
        ("request.path == '/'", 1),
        ("'admin' in roles", 12),
        ("true && request.headers.x == 'y'", 9),
    ] {
        let e = When::compile(src, Scope::Role, &names).unwrap_err();
        assert!(e.message.contains("once per connection"), "{src}: {e}");
        assert_eq!(e.column, column, "{src}: {e}");
    }
}

#[test]
fn reading_cert_is_known_at_load() {
    let names = role_names();
    let reads = |s: &str| When::compile(s, Scope::Rule, &names).unwrap().reads_cert();
    assert!(reads("request.path.startsWith('/users/' + cert.cn)"));
    assert!(!reads("request.method == 'GET' && now.getHours() > 8"));
}

/// The gate reads the clock for a request only when a rule's condition reads `now`, so
/// every way to read it must be known at load.
#[test]
fn reading_the_clock_is_known_at_load() {
    let names = role_names();
    let reads = |s: &str| When::compile(s, Scope::Rule, &names).unwrap().reads_now();
    assert!(reads("now.getHours() > 8"));
    assert!(reads(
        "request.method == 'GET' || now < timestamp('2030-01-01T00:00:00Z')"
    ));
    assert!(reads(
        "['a', 'b'].exists(r, r in roles && now.getDayOfWeek() == 1)"
    ));
    assert!(reads("cert.not_after - now > duration('24h')"));
    assert!(!reads("request.path.startsWith('/users/' + cert.cn)"));
    assert!(!reads("cert.not_after > timestamp('2030-01-01T00:00:00Z')"));

    let mut policy = crate::Policy::new();
    let rule = |p: &mut crate::Policy, src: &str| {
        let when = When::compile(src, Scope::Rule, &[]).unwrap();
        p.add_rule_when("/**", &[], None, crate::Requirement::Anyone, Some(when))
            .unwrap();
    };
    rule(&mut policy, "request.method == 'GET'");
    assert!(!policy.reads_clock());
    rule(&mut policy, "now.getHours() < 18");
    assert!(policy.reads_clock());
}

/// Findings of the attacker review of the first version, each a bypass or a crash there.
mod review {
    use super::*;

    #[test]
    fn a_certificate_without_a_cn_is_no_one_not_everyone() {
        let no_cn = Req {
            path: "/users/",
            who: Some(Identity {
                common_name: None,
                ..alice()
            }),
            ..req()
        };
        // `/users/` has segments ['users', ''], and '' is not an absent CN.
        assert_eq!(
            run_with("request.segments[1] == cert.cn", &no_cn),
            Err(EvalError::NoCommonName)
        );
        assert_eq!(
            run_with("request.path.startsWith('/users/' + cert.cn + '/')", &no_cn),
            Err(EvalError::NoCommonName)
        );
        assert_eq!(run_with("has(cert.cn)", &no_cn), Ok(false));
        holds("has(cert.cn) && cert.cn == 'alice'");
    }

    #[test]
    fn a_header_sent_with_an_underscore_is_the_same_header() {
        let mut r = req();
        r.headers = vec![
            ("X-Tenant".into(), "Corp".into()),
            ("X_Tenant".into(), "Victim".into()),
        ];
        assert!(matches!(
            run_with("request.headers['x-tenant'] in cert.o", &r),
            Err(EvalError::Repeated("header", _))
        ));
        assert!(matches!(
            run_with("request.headers.x_tenant in cert.o", &r),
            Err(EvalError::Repeated("header", _))
        ));
        r.headers.truncate(1);
        assert_eq!(
            run_with("request.headers['x-tenant'] in cert.o", &r),
            Ok(true)
        );
        assert_eq!(run_with("has(request.headers.x_tenant)", &r), Ok(true));
    }

    #[test]
    fn query_keys_in_any_spelling_a_framework_reads_as_one_are_one() {
        let q = |query: &'static str, src: &str| run_with(src, &Req { query, ..req() });
        let user_is_alice = "request.query.user == cert.cn";
        assert_eq!(q("user=alice", user_is_alice), Ok(true));
        // `;` separates pairs for Rack < 3, Go < 1.17, Python < 3.9.2.
        assert!(matches!(
            q("x=1;user=bob&user=alice", user_is_alice),
            Err(EvalError::Repeated(..))
        ));
        // PHP reads `user.id` and `user id` as `user_id`; ASP.NET ignores case.
        let id_is_alice = "request.query.user_id == cert.cn";
        assert!(matches!(
            q("user_id=alice&user.id=bob", id_is_alice),
            Err(EvalError::Repeated(..))
        ));
        assert!(matches!(
            q("User=bob&user=alice", user_is_alice),
            Err(EvalError::Repeated(..))
        ));
        assert!(matches!(
            q("us%65r=bob&user=alice", user_is_alice),
            Err(EvalError::Repeated(..))
        ));
        assert_eq!(q("user_id=alice&other=1", id_is_alice), Ok(true));
    }

    #[test]
    fn the_path_is_read_decoded_as_the_application_reads_it() {
        let at = |path: &'static str, cn: &str| {
            run_with(
                "request.segments[1] == cert.cn && request.path.startsWith('/users/' + cert.cn + '/')",
                &Req {
                    path,
                    who: Some(Identity {
                        common_name: Some(cn.into()),
                        ..alice()
                    }),
                    ..req()
                },
            )
        };
        // The upstream reads `/users/bob%20smith/x` as bob smith's.
        assert_eq!(at("/users/bob%20smith/x", "bob%20smith"), Ok(false));
        assert_eq!(at("/users/bob%20smith/x", "bob smith"), Ok(true));
        assert_eq!(at("/users/J%C3%BCrgen/x", "Jürgen"), Ok(true));
    }

    #[test]
    fn deep_expressions_are_refused_at_load_without_crashing() {
        // 2,040 levels of `+` fit in 4 KiB; the parser runs on a stack of its own, so even
        // a caller with a small stack gets an error, not an abort.
        let chain = format!("{}1 == 1", "1 + ".repeat(1000));
        let e = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || When::compile(&chain, Scope::Rule, &[]).map(|_| ()))
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert!(e.message.contains("nests more than 64"), "{e}");
        // What is accepted evaluates on a worker-sized stack.
        let ok = format!("{}true", "true && ".repeat(60));
        let when = When::compile(&ok, Scope::Rule, &[]).unwrap();
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let path = canonicalize("/").unwrap();
                let facts = Facts {
                    identity: None,
                    roles: RoleSet::default(),
                    role_names: &[],
                    method: "GET",
                    host: "h",
                    path: Some(&path),
                    query: "",
                    headers: &NoHeaders,
                    now: Timestamp::UNIX_EPOCH,
                };
                when.eval(&facts)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(result, Ok(true));
    }

    #[test]
    fn a_request_cannot_make_a_condition_run_long() {
        let long: &'static str = Box::leak(format!("/{}", "a/".repeat(7000)).into_boxed_str());
        let query: &'static str = Box::leak("k=v&".repeat(2000).into_boxed_str());
        let r = Req {
            path: long,
            query,
            ..req()
        };
        let start = std::time::Instant::now();
        for src in [
            "request.segments.exists_one(a, request.segments.exists_one(b, a == b))",
            "request.segments.all(s, !(s in request.query))",
        ] {
            assert_eq!(run_with(src, &r), Err(EvalError::TooCostly), "{src}");
        }
        // Segments are split once per evaluation, so this one is now linear and cheap.
        assert_eq!(
            run_with(
                "request.segments.exists_one(a, size(request.segments) == 0)",
                &r
            ),
            Ok(false)
        );
        // Each stops within its budget (seconds before); generous for a debug build.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        // An ordinary condition on the same request is fine.
        assert_eq!(run_with("size(request.segments) > 100", &r), Ok(true));
    }
}

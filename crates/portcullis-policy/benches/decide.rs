//! `Policy::decide` at 10, 100 and 1,000 rules (issue 12: ≤ 1 µs median at 1,000).
//!
//! The rule sets look like a real API gate's: a health check first,
//! host-specific and general `/admin/**` rules, then per-resource rules under
//! `/api/v1/<resource>/…` with different requirements per method (a narrower `*` rule
//! before each resource's `**` rules), two rules with CEL conditions (per-user paths, and
//! office hours in Berlin), and a `GET /**` catch-all for static files at the end. The
//! requests hit a rule early, late, only the catch-all, a host-specific rule, no rule at
//! all (a POST nothing allows), and each condition (`cel-*`: the time includes
//! evaluating it).
//!
//! ```text
//! cargo bench -p portcullis-policy --bench decide -- --warm-up-time 1 --measurement-time 3
//! ```

// A benchmark is a test: a rule set that does not build should stop it loudly.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_policy::{
    Condition, Decision, Identity, Policy, Request, Scope, Timestamp, When, path,
};

/// A policy of exactly `n` rules (n ≥ 10) and the number of API resources it has.
fn policy(n: usize) -> (Policy, usize) {
    let mut p = Policy::new();
    p.add_role("admin", vec![Condition::Ou("Admins".into())])
        .unwrap();
    p.add_role("writer", vec![Condition::Ou("Writers".into())])
        .unwrap();
    let any = p.requirement("anonymous").unwrap();
    let auth = p.requirement("authenticated").unwrap();
    let admin = p.requirement("role:admin").unwrap();
    let writer = p.requirement("role:writer").unwrap();
    let m = |ms: &[&str]| ms.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>();

    p.add_rule("/healthz", &m(&["GET"]), None, any.clone())
        .unwrap();
    p.add_rule("/admin/**", &[], Some("admin.example.com"), admin.clone())
        .unwrap();
    p.add_rule("/admin/**", &[], None, admin.clone()).unwrap();
    let when =
        |src: &str, p: &Policy| Some(When::compile(src, Scope::Rule, p.role_names()).unwrap());
    let own = when("request.path.startsWith('/users/' + cert.cn + '/')", &p);
    p.add_rule_when("/users/**", &m(&["GET"]), None, auth.clone(), own)
        .unwrap();
    let hours = when(
        "now.getDayOfWeek('Europe/Berlin') in [1, 2, 3, 4, 5] && now.getHours('Europe/Berlin') >= 9 && now.getHours('Europe/Berlin') < 17",
        &p,
    );
    p.add_rule_when("/reports/**", &m(&["GET"]), None, auth.clone(), hours)
        .unwrap();
    // Everything but the catch-all goes here; four rules per resource.
    let fixed = 6;
    let mut left = n - fixed;
    let mut resources = 0;
    while left > 0 {
        let r = resources;
        let base = format!("/api/v1/res{r}");
        let rules = [
            (format!("{base}/*/owner"), m(&["PUT"]), admin.clone()),
            (format!("{base}/**"), m(&["DELETE"]), admin.clone()),
            (format!("{base}/**"), m(&["GET"]), auth.clone()),
            (
                format!("{base}/**"),
                m(&["POST", "PUT", "PATCH"]),
                writer.clone(),
            ),
        ];
        for (path, methods, req) in rules.into_iter().take(left) {
            // Every tenth resource is served on its own host too.
            let host = (r % 10 == 9).then_some("api.example.com");
            p.add_rule(&path, &methods, host, req).unwrap();
            left -= 1;
        }
        resources += 1;
    }
    p.add_rule("/**", &m(&["GET"]), None, any).unwrap();
    assert_eq!(p.rules().len(), n);
    assert_eq!(
        p.shadowed(),
        None,
        "the benchmark's rule set is a valid one"
    );
    (p, resources)
}

fn decide(c: &mut Criterion) {
    let alice = Identity {
        common_name: Some("alice".into()),
        organizational_units: vec!["Writers".into()],
        ..Default::default()
    };
    let mut group = c.benchmark_group("decide");
    for n in [10, 100, 1000] {
        let (policy, resources) = policy(n);
        // Tuesday 2026-12-01, 10:30 in Berlin: inside office hours.
        let now: Timestamp = "2026-12-01T09:30:00Z".parse().unwrap();
        let roles = Some(policy.roles_of(&alice, now));
        let last = resources - 1;
        let late = format!("/api/v1/res{last}/items/42");
        let middle = format!("/api/v1/res{}/items/42", resources / 2);
        let cases: [(&str, &str, &str, &str); 8] = [
            ("early", "GET", "localhost", "/healthz"),
            ("middle", "PATCH", "localhost", &middle),
            ("late", "DELETE", "localhost", &late),
            ("host", "GET", "admin.example.com", "/admin/users"),
            ("catch-all", "GET", "localhost", "/static/app.js"),
            ("no-rule", "POST", "localhost", "/unknown/thing"),
            ("cel-path", "GET", "localhost", "/users/alice/notes/7"),
            ("cel-hours", "GET", "localhost", "/reports/2026/q4"),
        ];
        for (name, method, host, raw) in cases {
            let path = path::canonicalize(raw).unwrap();
            let req = Request {
                identity: Some(&alice),
                ..Request::new(method, host, &path, now)
            };
            // What the case is about holds before it is measured.
            let d = policy.decide(&req, roles);
            match name {
                "no-rule" => assert_eq!(d.rule(), None),
                "catch-all" => assert_eq!(d.rule(), Some(n - 1)),
                "cel-path" | "cel-hours" => {
                    assert!(matches!(d, Decision::Allow { .. }), "{name}: {d:?}")
                }
                _ => assert!(d.rule().is_some_and(|r| r < n - 1), "{name}: {d:?}"),
            }
            group.bench_with_input(BenchmarkId::new(name, n), &req, |b, req| {
                b.iter(|| policy.decide(black_box(req), black_box(roles)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);

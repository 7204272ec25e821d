//! Route rules indexed by the literal path segments they start with, so that
//! [`crate::Policy::decide`] looks only at rules that can match (issue 12).
//!
//! # Why a trie over leading literal segments
//!
//! Real rule sets share prefixes: a thousand rules may all start `/api/v1/`, so indexing by
//! the first segment alone would leave one bucket holding nearly every rule. Instead each
//! rule is filed under its *literal prefix*, the segments before its first `*` or `**`
//! (`/api/v1/users/*/keys` under `api`→`v1`→`users`, `/admin/**` under `admin`, `/**` and
//! `/*/x` at the root). A path can only match a pattern if its first segments equal that
//! pattern's literal prefix, so the rules that can match a request are exactly those filed
//! at the nodes on the walk from the root along the request's segments. The walk is at most
//! as deep as the longest literal prefix, whatever the length of the request path.
//!
//! # Why this is still first match
//!
//! Each node keeps its rules in ascending rule order (rules are only ever appended, so a
//! push keeps every list sorted). Within a list the first rule that fully matches is that
//! list's lowest match; across the lists on the walk, the lowest of those is the lowest
//! index of any matching rule in the whole policy — the rule the naive in-order loop would
//! have stopped at. A list is abandoned as soon as its next index is not below the best
//! found so far. Method, host and the full pattern are checked by the same
//! [`Rule::miss`](crate::policy::Rule) the naive loop uses, so the two cannot disagree about
//! what "matches" means; an equivalence test over generated rule sets checks it.
//!
//! # Cost per request
//!
//! No allocation and no lock: a binary search per segment among a node's children
//! (sorted once, when the rule is added), then the candidates. Rules whose pattern starts
//! with a wildcard sit at the root and are tried for every request — a policy made only of
//! those degrades to the naive loop, never to something slower.
//!
//! Method and host are not indexed: after the path, a node holds a handful of rules (the
//! per-method variants of one resource), and checking those is cheaper than a second index.

use crate::policy::{Request, Rule};

#[derive(Debug, Clone)]
pub(crate) struct RuleIndex {
    /// `nodes[0]` is the root (the empty prefix).
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// The node one segment up; the root's is itself.
    parent: usize,
    /// Child nodes by literal segment, sorted by segment for binary search.
    children: Vec<(Box<str>, usize)>,
    /// The rules whose literal prefix ends at this node, in ascending rule order.
    rules: Vec<usize>,
}

impl Default for RuleIndex {
    fn default() -> Self {
        RuleIndex {
            nodes: vec![Node::default()],
        }
    }
}

impl RuleIndex {
    /// Files rule `index` (which must be greater than every index filed before) under
    /// its pattern's literal prefix.
    pub(crate) fn push(&mut self, index: usize, rule: &Rule) {
        let mut at = 0;
        for seg in rule.pattern.literal_prefix() {
            at = match self.nodes[at]
                .children
                .binary_search_by(|(s, _)| (**s).cmp(seg))
            {
                Ok(found) => self.nodes[at].children[found].1,
                Err(insert) => {
                    let new = self.nodes.len();
                    self.nodes.push(Node {
                        parent: at,
                        ..Node::default()
                    });
                    self.nodes[at].children.insert(insert, (seg.into(), new));
                    new
                }
            };
        }
        debug_assert!(self.nodes[at].rules.last().is_none_or(|&last| last < index));
        self.nodes[at].rules.push(index);
    }

    /// The lowest index of a rule in `rules` that matches `req`: what trying every rule
    /// in order would find, trying only those filed along the request's path.
    ///
    /// Walks down as far as the request's segments lead, then tries the lists on the way
    /// back up, deepest first. Any order gives the same answer; this one is faster in
    /// practice, because a policy without dead rules puts narrower rules first, and the
    /// narrower rules are the deeper ones: once `/admin/users/**` (rule 3) has matched,
    /// the `/**` catch-all at the root (rule 900) is not even tried.
    pub(crate) fn first_match(&self, rules: &[Rule], req: &Request<'_>) -> Option<usize> {
        let mut at = 0;
        for seg in req.path.segments() {
            let node = &self.nodes[at];
            match node.children.binary_search_by(|(s, _)| (**s).cmp(seg)) {
                Ok(found) => at = node.children[found].1,
                Err(_) => break,
            }
        }
        let mut best: Option<usize> = None;
        loop {
            let node = &self.nodes[at];
            for &i in &node.rules {
                if best.is_some_and(|b| i >= b) {
                    break;
                }
                if rules[i].miss(req).is_none() {
                    best = Some(i);
                    break;
                }
            }
            if at == 0 {
                return best;
            }
            at = node.parent;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::path::canonicalize;
    use crate::policy::{Condition, Decision, Policy, Request, Requirement, RoleSet};
    use crate::{Identity, Timestamp};

    /// xorshift64: deterministic, so a failure prints a seed that reproduces it.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
        fn chance(&mut self, one_in: usize) -> bool {
            self.below(one_in) == 0
        }
    }

    /// Few segments, so that rules overlap, share prefixes and shadow each other often.
    const SEGMENTS: [&str; 4] = ["a", "b", "api", "v1"];
    const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "DELETE", "PUT"];
    const HOSTS: [&str; 3] = ["one.example", "TWO.example", "three.example"];
    const ROLES: [&str; 3] = ["r0", "r1", "r2"];

    /// A pattern: `/`, `/**`, or up to four segments of literals and `*`, ending plain,
    /// with a trailing slash or with `/**`.
    fn pattern(rng: &mut Rng) -> String {
        match rng.below(12) {
            0 => return "/".into(),
            1 => return "/**".into(),
            _ => {}
        }
        let mut p = String::new();
        for _ in 0..=rng.below(4) {
            p.push('/');
            p.push_str(if rng.chance(4) {
                "*"
            } else {
                rng.pick(&SEGMENTS)
            });
        }
        match rng.below(4) {
            0 => p.push('/'),
            1 => p.push_str("/**"),
            _ => {}
        }
        p
    }

    /// A request path: often one a rule was written for (wildcards filled in, a tail
    /// after `**`), otherwise random over the rules' segments and one no rule names.
    fn path(rng: &mut Rng, patterns: &[String]) -> String {
        let mut out = String::new();
        if !patterns.is_empty() && !rng.chance(3) {
            let p = &patterns[rng.below(patterns.len())];
            for seg in p[1..].split('/') {
                match seg {
                    "*" => out.push_str(&format!("/{}", rng.pick(&["a", "x", "zz"]))),
                    "**" => {
                        for _ in 0..rng.below(3) {
                            out.push_str(&format!("/{}", rng.pick(&["a", "b", "x"])));
                        }
                        if rng.chance(3) {
                            out.push('/');
                        }
                    }
                    s => out.push_str(&format!("/{s}")),
                }
            }
        } else {
            for _ in 0..rng.below(5) {
                out.push('/');
                out.push_str(rng.pick(&["a", "b", "api", "v1", "x"]));
            }
            if rng.chance(3) {
                out.push('/');
            }
        }
        if out.is_empty() { "/".into() } else { out }
    }

    fn requirement(rng: &mut Rng, p: &Policy) -> Requirement {
        let one = |rng: &mut Rng| match rng.below(5) {
            0 => Requirement::Anyone,
            1 => Requirement::Authenticated,
            2 => Requirement::Deny,
            _ => p
                .requirement(&format!("role:{}", rng.pick(&ROLES)))
                .unwrap(),
        };
        match rng.below(8) {
            0 => Requirement::AnyOf(vec![one(rng), one(rng)]),
            1 => Requirement::AllOf(vec![one(rng), one(rng)]),
            _ => one(rng),
        }
    }

    fn policy(rng: &mut Rng) -> (Policy, Vec<String>) {
        let mut p = Policy::new();
        for r in ROLES {
            p.add_role(r, vec![Condition::Ou(r.into())]).unwrap();
        }
        let mut patterns = Vec::new();
        for _ in 0..=rng.below(40) {
            let path = pattern(rng);
            let methods: Vec<String> = if rng.chance(2) {
                Vec::new()
            } else {
                (0..=rng.below(2))
                    .map(|_| rng.pick(&METHODS).to_owned())
                    .collect()
            };
            let host = rng.chance(4).then(|| rng.pick(&HOSTS));
            let require = requirement(rng, &p);
            p.add_rule(&path, &methods, host, require)
                .unwrap_or_else(|e| panic!("generated {path}: {e}"));
            patterns.push(path);
        }
        (p, patterns)
    }

    /// First match, written out from the rules' public fields alone: shares no code with
    /// `decide` or `explain`.
    fn reference(p: &Policy, method: &str, host: &str, path: &str) -> Option<usize> {
        let path = canonicalize(path).unwrap();
        p.rules().iter().position(|r| {
            (r.methods.is_empty() || r.methods.iter().any(|m| m == method))
                && r.host.as_ref().is_none_or(|h| h.eq_ignore_ascii_case(host))
                && r.pattern.matches(&path)
        })
    }

    /// The equivalence test: on thousands of generated rule sets, the index
    /// decides every request exactly as trying every rule in order does, and `explain`
    /// (the in-order loop, with its trace) agrees with both.
    #[test]
    fn index_decides_exactly_like_the_in_order_loop() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let callers: Vec<Option<RoleSet>> = {
            let (p, _) = policy(&mut Rng(1));
            let mut v = vec![None, Some(RoleSet::default())];
            for ous in [&["r0"][..], &["r1", "r2"], &ROLES] {
                let id = Identity {
                    organizational_units: ous.iter().map(|s| (*s).to_owned()).collect(),
                    ..Default::default()
                };
                v.push(Some(p.roles_of(&id, Timestamp::UNIX_EPOCH)));
            }
            v
        };
        let (mut requests, mut matched, mut not_first) = (0, 0, 0);
        for set in 0..3000 {
            let seed = rng.0;
            let (p, patterns) = policy(&mut rng);
            for _ in 0..40 {
                let method = rng.pick(&METHODS);
                let host = rng.pick(&["one.example", "ONE.EXAMPLE", "two.example", "other"]);
                let raw = path(&mut rng, &patterns);
                let who = callers[rng.below(callers.len())];
                let canonical = canonicalize(&raw).unwrap();
                let req = Request::new(method, host, &canonical, Timestamp::UNIX_EPOCH);
                let want = reference(&p, method, host, &raw);
                let decided = p.decide(&req, who);
                let (explained, misses) = p.explain(&req, who);
                let case = || {
                    let rules: Vec<String> = p
                        .rules()
                        .iter()
                        .map(|r| format!("{:?} {:?} {}", r.methods, r.host, r.pattern.as_str()))
                        .collect();
                    format!("set {set} (seed {seed:#x}): {method} {host} {raw}\nrules: {rules:#?}")
                };
                assert_eq!(decided.rule(), want, "{}", case());
                assert_eq!(decided, explained, "{}", case());
                let tried: Vec<usize> = misses.iter().map(|m| m.rule).collect();
                let until = want.unwrap_or(p.rules().len());
                assert_eq!(tried, (0..until).collect::<Vec<_>>(), "{}", case());
                requests += 1;
                matched += usize::from(want.is_some());
                not_first += usize::from(want.is_some_and(|r| r > 0));
            }
        }
        // The generator must exercise both outcomes, and matches deep in the list.
        assert_eq!(requests, 120_000);
        assert!(matched > requests / 3, "{matched} of {requests} matched");
        assert!(not_first > requests / 4, "{not_first} matched a later rule");
        assert!(
            matched < requests * 9 / 10,
            "{matched} of {requests} matched"
        );
    }

    /// Patterns the index files in unusual places: the root (`/`, `/**`, a leading `*`),
    /// an empty last segment, and a literal prefix that stops at a `*` in the middle.
    #[test]
    fn rules_filed_at_the_root_and_under_wildcards() {
        let mut p = Policy::new();
        for pat in ["/a/*/c", "/*/b", "/a/", "/", "/a/b/**", "/**"] {
            p.add_rule(pat, &[], None, Requirement::Anyone).unwrap();
        }
        let rule = |path: &str| {
            let path = canonicalize(path).unwrap();
            let req = Request::new("GET", "h", &path, Timestamp::UNIX_EPOCH);
            p.decide(&req, None).rule()
        };
        assert_eq!(rule("/a/x/c"), Some(0));
        assert_eq!(rule("/a/b"), Some(1));
        assert_eq!(rule("/x/b"), Some(1));
        assert_eq!(rule("/a/"), Some(2));
        assert_eq!(rule("/"), Some(3));
        assert_eq!(rule("/a/b/c/d"), Some(4));
        assert_eq!(rule("/a/b/"), Some(4));
        assert_eq!(rule("/a"), Some(5));
        assert_eq!(rule("/zzz/"), Some(5));
    }

    #[test]
    fn a_cloned_policy_decides_like_the_original() {
        let mut p = Policy::new();
        p.add_rule("/x/**", &["POST".into()], None, Requirement::Deny)
            .unwrap();
        p.add_rule("/x/**", &[], None, Requirement::Anyone).unwrap();
        let q = p.clone();
        let path = canonicalize("/x/y").unwrap();
        let req = Request::new("POST", "h", &path, Timestamp::UNIX_EPOCH);
        assert!(matches!(
            q.decide(&req, None),
            Decision::Forbidden { rule: 0, .. }
        ));
        assert_eq!(p.decide(&req, None), q.decide(&req, None));
    }
}

//! Route path patterns, compiled once at load.
//!
//! | pattern | matches | does not match |
//! | --- | --- | --- |
//! | `/me` | `/me` | `/me/`, `/me/x`, `/ME` |
//! | `/admin/**` | `/admin`, `/admin/`, `/admin/a/b` | `/administrator` |
//! | `/users/*/keys` | `/users/bob/keys` | `/users//keys`, `/users/a/b/keys` |
//! | `/` | `/` | `/x` |
//! | `/**` | everything | |
//!
//! Patterns are matched against canonical paths (see [`crate::path`]), segment by segment,
//! case-sensitively; `**` is allowed only as the last segment, so there is no
//! backtracking and no regular expression to get wrong (Spring's CVE-2023-20860).

use crate::path::CanonicalPath;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    /// Exactly one non-empty segment.
    Star,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    segs: Vec<Seg>,
    /// Ends in `/**`: anything (or nothing) may follow.
    rest: bool,
}

/// Why a pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

/// A literal segment in the form canonical paths take: characters a path may not carry raw
/// (spaces, non-ASCII) percent-encoded with upper-case hex, so `/café` matches the
/// request path `/caf%C3%A9` as the upstream will read it.
fn canonical_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if crate::path::is_pchar(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Pattern, PatternError> {
        let err = |reason| PatternError {
            pattern: source.to_owned(),
            reason,
        };
        if !source.starts_with('/') {
            return Err(err("must start with '/'"));
        }
        let body = &source[1..];
        let (body, rest) = match body.strip_suffix("**") {
            Some(b) if b.is_empty() || b.ends_with('/') => (b.strip_suffix('/').unwrap_or(b), true),
            Some(_) => return Err(err("'**' must be a whole segment")),
            None => (body, false),
        };
        let mut segs = Vec::new();
        if !(rest && body.is_empty()) {
            let parts: Vec<&str> = body.split('/').collect();
            for (i, s) in parts.iter().enumerate() {
                segs.push(match *s {
                    "*" => Seg::Star,
                    "**" => return Err(err("'**' is only allowed as the last segment")),
                    "." | ".." => {
                        return Err(err("'.' and '..' segments never match a canonical path"));
                    }
                    s if s.contains('*') => return Err(err("'*' must be a whole segment")),
                    s if s.contains('%') || s.contains(';') || s.contains('\\') => {
                        return Err(err("write the path decoded, without '%', ';' or '\\'"));
                    }
                    // Only the last segment may be empty: `/` and `/dir/`.
                    "" if i + 1 != parts.len() || rest => {
                        return Err(err("empty segment ('//') never matches a canonical path"));
                    }
                    s => Seg::Lit(canonical_literal(s)),
                });
            }
        }
        Ok(Pattern {
            source: source.to_owned(),
            segs,
            rest,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether this pattern matches every path `other` matches (so a rule with `other`
    /// after a rule with this one could never decide). Exact for these patterns: segment
    /// by segment, a literal covers only itself, `*` covers any non-empty segment, and a
    /// trailing `/**` covers whatever follows.
    pub fn covers(&self, other: &Pattern) -> bool {
        if self.segs.len() > other.segs.len() {
            return false;
        }
        let each = self
            .segs
            .iter()
            .zip(&other.segs)
            .all(|(a, b)| match (a, b) {
                (Seg::Lit(x), Seg::Lit(y)) => x == y,
                (Seg::Star, Seg::Lit(y)) => !y.is_empty(),
                (Seg::Star, Seg::Star) => true,
                (Seg::Lit(_), Seg::Star) => false,
            });
        each && (self.rest || (self.segs.len() == other.segs.len() && !other.rest))
    }

    /// The literal segments the pattern starts with, up to its first `*` or `**`: every
    /// path it matches starts with exactly these segments (what the policy indexes
    /// rules by). `/` yields one empty segment, like the path `/`.
    pub(crate) fn literal_prefix(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().map_while(|s| match s {
            Seg::Lit(l) => Some(l.as_str()),
            Seg::Star => None,
        })
    }

    pub fn matches(&self, path: &CanonicalPath<'_>) -> bool {
        let mut it = path.segments();
        for seg in &self.segs {
            match (seg, it.next()) {
                (Seg::Lit(l), Some(s)) if l == s => {}
                (Seg::Star, Some(s)) if !s.is_empty() => {}
                _ => return false,
            }
        }
        self.rest || it.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::canonicalize;

    fn m(pat: &str, path: &str) -> bool {
        Pattern::parse(pat)
            .unwrap()
            .matches(&canonicalize(path).unwrap())
    }

    #[test]
    fn exact() {
        assert!(m("/me", "/me"));
        assert!(!m("/me", "/me/"));
        assert!(!m("/me", "/me/x"));
        assert!(!m("/me", "/ME"));
        assert!(!m("/me", "/"));
        assert!(m("/", "/"));
        assert!(!m("/", "/x"));
    }

    #[test]
    fn prefix() {
        for p in [
            "/admin",
            "/admin/",
            "/admin/x",
            "/admin/x/y/",
            "//admin",
            "/%61dmin",
            "/admin/../admin",
        ] {
            assert!(m("/admin/**", p), "{p}");
        }
        for p in ["/administrator", "/ADMIN", "/", "/x/admin"] {
            assert!(!m("/admin/**", p), "{p}");
        }
        assert!(m("/**", "/"));
        assert!(m("/**", "/anything/at/all"));
        assert!(m("/a/b/**", "/a/b"));
        assert!(!m("/a/b/**", "/a"));
    }

    #[test]
    fn star() {
        assert!(m("/users/*/keys", "/users/bob/keys"));
        assert!(!m("/users/*/keys", "/users//keys"));
        assert!(!m("/users/*/keys", "/users/a/b/keys"));
        assert!(!m("/users/*", "/users/"));
        assert!(m("/users/*/**", "/users/bob/x/y"));
    }

    #[test]
    fn non_ascii_patterns_match_the_canonical_form() {
        assert!(m("/café/**", "/caf%C3%A9/x"));
        assert!(m("/café/**", "/caf%c3%a9"));
        assert!(!m("/café/**", "/cafe/x"));
        assert!(m("/a b", "/a%20b"));
    }

    #[test]
    fn covering_is_exactly_matching_everything_the_other_matches() {
        // Every pattern over these segments, and every path over these, compared with
        // the matcher itself: `covers` must never claim more (a valid configuration would
        // be refused as shadowed) and never less (a dead rule would pass unnoticed).
        let mut patterns = vec!["/".to_owned(), "/**".to_owned()];
        let segs = ["a", "b", "*"];
        let mut bodies: Vec<Vec<&str>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<Vec<&str>> = bodies
                .iter()
                .flat_map(|b| {
                    segs.iter().map(move |s| {
                        let mut b = b.clone();
                        b.push(*s);
                        b
                    })
                })
                .collect();
            for b in &longer {
                let body = b.join("/");
                patterns.push(format!("/{body}"));
                patterns.push(format!("/{body}/"));
                patterns.push(format!("/{body}/**"));
            }
            bodies = longer;
        }
        let mut paths = vec!["/".to_owned()];
        let mut prefixes: Vec<String> = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = prefixes
                .iter()
                .flat_map(|p| ["a", "b", "c"].map(|s| format!("{p}/{s}")))
                .collect();
            for p in &longer {
                paths.push(p.clone());
                paths.push(format!("{p}/"));
            }
            prefixes = longer;
        }
        let paths: Vec<_> = paths.iter().map(|p| canonicalize(p).unwrap()).collect();
        let patterns: Vec<Pattern> = patterns
            .iter()
            .map(|p| Pattern::parse(p).unwrap())
            .collect();
        for a in &patterns {
            for b in &patterns {
                let really = paths.iter().all(|p| !b.matches(p) || a.matches(p));
                assert_eq!(a.covers(b), really, "{} covers {}", a.as_str(), b.as_str());
            }
        }
    }

    #[test]
    fn bad_patterns() {
        for p in [
            "admin", "/a/**/b", "/a**", "/a/b*", "/a/../b", "/a//b", "/%61", "/a;b",
        ] {
            assert!(Pattern::parse(p).is_err(), "{p}");
        }
    }
}

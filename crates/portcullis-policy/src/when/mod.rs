//! Conditions in CEL (the Common Expression Language of Envoy, Kubernetes and Google IAM):
//! `when = "…"` on a route rule or a role grant.
//!
//! The expression is parsed by the `cel` crate (cel-rust's build of CEL.g4, the grammar
//! cel-go uses, so the syntax and macro expansion are the specification's), then
//! type-checked here against the variables below and compiled into a small typed tree that
//! evaluates over borrowed request data. cel-rust has no type checker and its interpreter
//! copies every variable into its own values per evaluation; ours reads the identity and
//! the request in place, so a condition such as
//! `request.path.startsWith('/users/' + cert.cn + '/')` costs tens of nanoseconds and
//! allocates only for the concatenation.
//!
//! | variable | type |
//! | --- | --- |
//! | `cert.cn`, `cert.serial`, `cert.fingerprint`, `cert.issuer`, `cert.subject` | string |
//! | `cert.o`, `cert.ou`, `cert.emails`, `cert.dns`, `cert.uris`, `cert.ips` | list(string) |
//! | `cert.not_before`, `cert.not_after` | timestamp |
//! | `roles` | list(string) (rules only) |
//! | `request.method`, `request.path`, `request.host` | string (rules only) |
//! | `request.segments` | list(string) (rules only) |
//! | `request.query`, `request.headers` | map(string, string) (rules only) |
//! | `now` | timestamp |
//!
//! Evaluation is bounded: CEL has no loops or recursion, only the macros `all`, `exists`
//! and `exists_one` over lists the request already holds (nested at most twice); the
//! expression is at most [`MAX_SOURCE`] bytes; regular expressions are compiled at load
//! (linear-time `regex`, size-limited); `map` and `filter`, which would build lists, are
//! refused at load. Allocation is bounded by the expression times the request's size.
//!
//! Errors while evaluating (a header sent twice, a missing query parameter, an index out
//! of range) follow CEL: `false && error` is `false`, `true || error` is `true`; an error
//! that reaches the top is the caller's to treat as a refusal.

mod check;
mod eval;

use std::fmt;
use std::sync::Arc;

pub use eval::EvalError;

use crate::identity::Identity;
use crate::path::CanonicalPath;
use crate::policy::RoleSet;

/// Longest accepted expression, in bytes.
pub const MAX_SOURCE: usize = 4096;

/// Where a condition is written, which decides what it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On a route rule: everything.
    Rule,
    /// On a role grant, evaluated once per connection: `cert` and `now` only.
    Role,
}

/// A compiled, type-checked condition.
#[derive(Clone)]
pub struct When(Arc<check::Program>);

impl fmt::Debug for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "When({:?})", self.0.source)
    }
}

impl PartialEq for When {
    fn eq(&self, other: &Self) -> bool {
        self.0.source == other.0.source
    }
}
impl Eq for When {}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.source)
    }
}

/// Why an expression does not compile, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{message} (line {line}, column {column} of the expression)\n  | {snippet}\n  | {caret:>column$}",
    caret = "^"
)]
pub struct WhenError {
    /// 1-based, within the expression.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    /// The expression's line the error is on.
    pub snippet: String,
}

impl When {
    /// Parses and type-checks `source`. `roles` are the role names a rule condition may
    /// test with `'NAME' in roles` (a name not among them is an error, as for `require`).
    pub fn compile(source: &str, scope: Scope, roles: &[String]) -> Result<When, WhenError> {
        check::compile(source, scope, roles).map(|p| When(Arc::new(p)))
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.0.source
    }

    /// Whether the expression reads `cert`: a caller without a certificate cannot satisfy
    /// it, so the rule asks for one (401) instead of refusing (403).
    pub fn reads_cert(&self) -> bool {
        self.0.reads_cert
    }

    /// Whether the expression reads `now`.
    pub fn reads_now(&self) -> bool {
        self.0.reads_now
    }

    pub(crate) fn eval(&self, facts: &Facts<'_>) -> Result<bool, EvalError> {
        eval::run(&self.0, facts)
    }
}

/// The request headers a condition may read, as `request.headers`.
/// `Sync` so that compiled conditions, which share value types with evaluation, can be
/// shared between threads.
pub trait Headers: Sync {
    /// The value of the header `name` (lower case), counting every line whose name is
    /// the same by [`same_header_name`]: `X_Tenant` is `x-tenant` to CGI, PHP and Rack.
    fn get(&self, name: &str) -> HeaderValue<'_>;
}

/// Whether two header names are one to some application: ASCII case ignored, `_` read as
/// `-` (CGI turns both into `HTTP_X_TENANT`).
pub fn same_header_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// One header, as [`Headers::get`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    Absent,
    One(&'a str),
    /// Sent more than once: applications disagree on which one counts, so reading it is an
    /// error (and a refusal), never a guess.
    Repeated,
    /// Not visible ASCII text.
    NotText,
}

/// No headers at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHeaders;

impl Headers for NoHeaders {
    fn get(&self, _: &str) -> HeaderValue<'_> {
        HeaderValue::Absent
    }
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> HeaderValue<'_> {
        let mut found = self.iter().filter(|(k, _)| same_header_name(k, name));
        match (found.next(), found.next()) {
            (None, _) => HeaderValue::Absent,
            (Some(_), Some(_)) => HeaderValue::Repeated,
            (Some((_, v)), None) => HeaderValue::One(v),
        }
    }
}

/// Everything a condition can read, borrowed for one evaluation.
#[derive(Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub identity: Option<&'a Identity>,
    pub roles: RoleSet,
    pub role_names: &'a [String],
    pub method: &'a str,
    pub host: &'a str,
    pub path: Option<&'a CanonicalPath<'a>>,
    pub query: &'a str,
    pub headers: &'a dyn Headers,
    pub now: jiff::Timestamp,
}

#[cfg(test)]
mod tests;

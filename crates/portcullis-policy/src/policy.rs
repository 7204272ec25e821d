//! Role mapping and route rules, compiled at load; `decide` at request time.
//!
//! `decide` is a pure function of the compiled policy, the request facts and the roles of
//! the caller. It allocates nothing: roles are a bitset computed once per connection,
//! patterns are pre-split, and the refusal it returns borrows the requirement from the
//! policy so a page can name what was missing.
//!
//! Rules are tried in order and the first match decides, but `decide` does not walk the
//! list: [`Policy::add_rule`] also files each rule in an index by the literal segments its
//! path pattern starts with (see `index.rs` for the design and why it is exactly first
//! match), so a request is checked only against the rules that could match it. There is
//! no separate build step to forget: the index is always in step with the rules.
//! [`Policy::explain`] keeps the plain in-order loop, because its trace reports every
//! rule before the deciding one.

use std::fmt;

use jiff::Timestamp;

use crate::identity::Identity;
use crate::index::RuleIndex;
use crate::path::CanonicalPath;
use crate::pattern::{Pattern, PatternError};
use crate::when::{EvalError, Facts, Headers, NoHeaders, When};

/// Up to 64 roles: enough for any sane policy, and one machine word per connection.
pub const MAX_ROLES: usize = 64;

/// A set of roles, by index into [`Policy::role_names`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleSet(u64);

impl RoleSet {
    pub fn contains(self, role: RoleId) -> bool {
        self.0 & (1 << role.0) != 0
    }
    fn insert(&mut self, role: RoleId) {
        self.0 |= 1 << role.0;
    }
    #[cfg(test)]
    pub(crate) fn insert_index(&mut self, i: usize) {
        self.insert(RoleId::new(i));
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub(crate) fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub(crate) fn has_index(self, i: usize) -> bool {
        i < MAX_ROLES && self.0 & (1 << i) != 0
    }
}

/// Index of a role name in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleId(u8);

impl RoleId {
    pub(crate) fn new(i: usize) -> RoleId {
        debug_assert!(i < MAX_ROLES);
        RoleId(i as u8)
    }
}

/// One condition on a typed certificate field. All conditions of a role rule must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// The CN is one of these (exact, case-sensitive).
    Cn(Vec<String>),
    /// Some OU equals this.
    Ou(String),
    /// Some O equals this.
    O(String),
    /// Some email address (subject emailAddress or rfc822Name SAN) equals this
    /// (case-insensitively: mail domains are).
    Email(String),
    /// Some URI SAN starts with this (e.g. `spiffe://corp/ops/`).
    UriPrefix(String),
    /// Some DNS SAN equals this (case-insensitive).
    Dns(String),
    /// The certificate's SHA-256 fingerprint (hex, colons and case ignored).
    Fingerprint(String),
    /// A CEL expression over `cert` and `now` ([`Scope::Role`](crate::when::Scope::Role)).
    /// One that cannot be evaluated does not hold.
    When(When),
}

impl Condition {
    fn holds(&self, id: &Identity, now: Timestamp) -> bool {
        match self {
            Condition::Cn(list) => id.common_name.as_ref().is_some_and(|cn| list.contains(cn)),
            Condition::Ou(v) => id.organizational_units.iter().any(|x| x == v),
            Condition::O(v) => id.organizations.iter().any(|x| x == v),
            Condition::Email(v) => id.all_emails().any(|e| e.eq_ignore_ascii_case(v)),
            Condition::UriPrefix(p) => id.uri_sans.iter().any(|u| u.starts_with(p.as_str())),
            Condition::Dns(v) => id.dns_sans.iter().any(|d| d.eq_ignore_ascii_case(v)),
            Condition::Fingerprint(f) => id.fingerprint_sha256.eq_ignore_ascii_case(f),
            Condition::When(w) => {
                let facts = Facts {
                    identity: Some(id),
                    roles: RoleSet::default(),
                    role_names: &[],
                    method: "",
                    host: "",
                    path: None,
                    query: "",
                    headers: &NoHeaders,
                    now,
                };
                w.eval(&facts) == Ok(true)
            }
        }
    }
}

/// What a route needs from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// Anyone, with or without a certificate (`anonymous` in config).
    Anyone,
    /// Any verified client certificate.
    Authenticated,
    Role(RoleId),
    AnyOf(Vec<Requirement>),
    AllOf(Vec<Requirement>),
    /// Nobody.
    Deny,
}

/// Compiled route rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub pattern: Pattern,
    /// Upper-case method names; empty means any method. A rule listing GET also lists
    /// HEAD, which applications answer with their GET handler.
    pub methods: Vec<String>,
    /// Lower-case host; `None` means any host.
    pub host: Option<String>,
    pub require: Requirement,
    /// A CEL condition the request must also meet, once `require` is met.
    pub when: Option<When>,
}

impl Rule {
    /// Whether this rule matches every request `other` matches.
    fn covers(&self, other: &Rule) -> bool {
        let methods = self.methods.is_empty()
            || (!other.methods.is_empty()
                && other.methods.iter().all(|m| self.methods.contains(m)));
        let host = self.host.is_none() || self.host == other.host;
        methods && host && self.pattern.covers(&other.pattern)
    }

    /// The first part of `req` this rule does not match (method, then host, then path),
    /// or `None` when it matches. The one definition of "matches", for the index and the
    /// in-order loop alike.
    pub(crate) fn miss(&self, req: &Request<'_>) -> Option<MissReason> {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method) {
            return Some(MissReason::Method);
        }
        if self
            .host
            .as_ref()
            .is_some_and(|h| !h.eq_ignore_ascii_case(req.host))
        {
            return Some(MissReason::Host);
        }
        if !self.pattern.matches(req.path) {
            return Some(MissReason::Path);
        }
        None
    }
}

/// The facts about a request that rules look at.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Host without port, any case.
    pub host: &'a str,
    pub path: &'a CanonicalPath<'a>,
    /// The rest, for rule conditions (`when`): the raw query string (without `?`)…
    pub query: &'a str,
    /// …the headers as the upstream will receive them, before the gate adds its own…
    pub headers: &'a dyn Headers,
    /// …the verified client certificate, if any…
    pub identity: Option<&'a Identity>,
    /// …and the time the request is judged at (the crate reads no clock).
    pub now: Timestamp,
}

impl<'a> Request<'a> {
    /// A request with no query, no headers and no certificate, judged at `now`.
    pub fn new(
        method: &'a str,
        host: &'a str,
        path: &'a CanonicalPath<'a>,
        now: Timestamp,
    ) -> Self {
        Request {
            method,
            host,
            path,
            query: "",
            headers: &NoHeaders,
            identity: None,
            now,
        }
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("identity", &self.identity.map(|i| &i.subject))
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`Policy::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'p> {
    Allow {
        rule: usize,
    },
    /// A certificate is needed (401).
    Unauthenticated {
        rule: usize,
    },
    /// The certificate is fine but not enough (403); `require` says what was needed.
    Forbidden {
        rule: usize,
        require: &'p Requirement,
    },
    /// The rule's `when` condition is false, or could not be evaluated (`error`): 403.
    Unmet {
        rule: usize,
        when: &'p When,
        error: Option<EvalError>,
    },
    /// No rule matched: denied by default (403).
    NoRule,
}

impl Decision<'_> {
    /// The index of the rule that decided, if one did.
    pub fn rule(&self) -> Option<usize> {
        match *self {
            Decision::Allow { rule }
            | Decision::Unauthenticated { rule }
            | Decision::Forbidden { rule, .. }
            | Decision::Unmet { rule, .. } => Some(rule),
            Decision::NoRule => None,
        }
    }
}

/// Errors building a policy; the config layer adds file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(
        "unknown requirement {0:?}: expected \"anonymous\", \"authenticated\", \"role:NAME\" or \"deny\""
    )]
    Requirement(String),
    #[error("role {0:?} is required by a rule but no role mapping grants it")]
    UnknownRole(String),
    #[error("invalid role name {0:?}: use letters, digits, '-', '_' or '.'")]
    RoleName(String),
    #[error("more than {MAX_ROLES} roles")]
    TooManyRoles,
    #[error("invalid method {0:?}")]
    Method(String),
    #[error("a role mapping needs at least one condition")]
    EmptyCondition,
}

/// One client, named exactly: what a roles file lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Principal {
    Cn(String),
    /// Compared case-insensitively (stored in lower case).
    Email(String),
    /// A URI SAN, exactly.
    Uri(String),
    /// SHA-256 of the certificate, lowercase hex (colons dropped).
    Fingerprint(String),
    /// Uppercase hex without leading zeros or colons.
    Serial(String),
}

impl Principal {
    /// Parses `cn:alice`, `email:…`, `uri:…`, `fingerprint:…` or `serial:…`.
    pub fn parse(s: &str) -> Result<Principal, String> {
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: write KIND:VALUE, KIND one of {PRINCIPAL_KINDS}"))?;
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(format!(
                "{s:?}: the value is empty or holds a control character"
            ));
        }
        let hex = |v: &str| v.replace(':', "");
        Ok(match kind {
            "cn" => Principal::Cn(value.to_owned()),
            "email" => Principal::Email(value.to_ascii_lowercase()),
            "uri" => Principal::Uri(value.to_owned()),
            "fingerprint" => {
                let v = hex(value).to_ascii_lowercase();
                if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{s:?}: a SHA-256 fingerprint is 64 hex digits"));
                }
                Principal::Fingerprint(v)
            }
            "serial" => {
                let v = hex(value).to_ascii_uppercase();
                if !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{s:?}: a serial is hex digits"));
                }
                Principal::Serial(serial_key(&v).to_owned())
            }
            other => {
                return Err(format!(
                    "{s:?}: unknown kind {other:?}, expected one of {PRINCIPAL_KINDS}"
                ));
            }
        })
    }
}

const PRINCIPAL_KINDS: &str = "cn, email, uri, fingerprint, serial";

/// A serial as principals are keyed: without leading zeros (`00AB` and `AB` are one).
fn serial_key(v: &str) -> &str {
    let t = v.trim_start_matches('0');
    if t.is_empty() { "0" } else { t }
}

/// A compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    role_names: Vec<String>,
    role_rules: Vec<(RoleId, Vec<Condition>)>,
    /// Roles granted to named clients (roles files): looked up, not scanned, so a file of
    /// thousands of people costs a few hash lookups per connection.
    principals: std::collections::HashMap<Principal, RoleSet>,
    rules: Vec<Rule>,
    /// `rules`, indexed for `decide`; updated by every `add_rule`.
    index: RuleIndex,
    /// Whether a rule's condition reads `now`.
    reads_clock: bool,
}

impl Policy {
    pub fn new() -> Self {
        Self::default()
    }

    fn role_id(&mut self, name: &str) -> Result<RoleId, PolicyError> {
        if let Some(i) = self.role_names.iter().position(|n| n == name) {
            return Ok(RoleId(i as u8));
        }
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(PolicyError::RoleName(name.to_owned()));
        }
        if self.role_names.len() >= MAX_ROLES {
            return Err(PolicyError::TooManyRoles);
        }
        self.role_names.push(name.to_owned());
        Ok(RoleId((self.role_names.len() - 1) as u8))
    }

    /// Adds a role mapping: `role` is granted when every condition holds.
    pub fn add_role(&mut self, role: &str, when: Vec<Condition>) -> Result<(), PolicyError> {
        if when.is_empty() {
            return Err(PolicyError::EmptyCondition);
        }
        let id = self.role_id(role)?;
        self.role_rules.push((id, when));
        Ok(())
    }

    /// Grants `role` to one named client. `Ok(false)` when it already had it (a duplicate
    /// line in a roles file, which the caller reports).
    pub fn add_principal(&mut self, role: &str, who: Principal) -> Result<bool, PolicyError> {
        let id = self.role_id(role)?;
        let set = self.principals.entry(who).or_default();
        let new = !set.contains(id);
        set.insert(id);
        Ok(new)
    }

    /// Parses `anonymous`, `authenticated`, `role:NAME` or `deny`. Roles must have been
    /// declared by [`Policy::add_role`] first, so a typo cannot silently deny everyone.
    pub fn requirement(&self, s: &str) -> Result<Requirement, PolicyError> {
        match s {
            "anonymous" | "anyone" => Ok(Requirement::Anyone),
            "authenticated" => Ok(Requirement::Authenticated),
            "deny" => Ok(Requirement::Deny),
            _ => match s.strip_prefix("role:") {
                Some(r) => self
                    .role_names
                    .iter()
                    .position(|n| n == r)
                    .map(|i| Requirement::Role(RoleId(i as u8)))
                    .ok_or_else(|| PolicyError::UnknownRole(r.to_owned())),
                None => Err(PolicyError::Requirement(s.to_owned())),
            },
        }
    }

    /// Appends a route rule (rules are tried in order; the first match decides).
    pub fn add_rule(
        &mut self,
        path: &str,
        methods: &[String],
        host: Option<&str>,
        require: Requirement,
    ) -> Result<(), PolicyError> {
        self.add_rule_when(path, methods, host, require, None)
    }

    /// [`Policy::add_rule`], with a condition the request must also meet. Compile it with
    /// [`When::compile`] in [`Scope::Rule`](crate::when::Scope::Rule), after the roles.
    pub fn add_rule_when(
        &mut self,
        path: &str,
        methods: &[String],
        host: Option<&str>,
        require: Requirement,
        when: Option<When>,
    ) -> Result<(), PolicyError> {
        let mut methods: Vec<String> = methods
            .iter()
            .map(|m| {
                if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    Ok(m.to_ascii_uppercase())
                } else {
                    Err(PolicyError::Method(m.clone()))
                }
            })
            .collect::<Result<_, _>>()?;
        // Express, Flask, Django, Rails, Spring and Go answer HEAD with the GET handler: a
        // rule about GET is a rule about HEAD too.
        if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
            methods.push("HEAD".into());
        }
        let rule = Rule {
            pattern: Pattern::parse(path)?,
            methods,
            host: host.map(str::to_ascii_lowercase),
            require,
            when,
        };
        self.reads_clock |= rule.when.as_ref().is_some_and(When::reads_now);
        self.index.push(self.rules.len(), &rule);
        self.rules.push(rule);
        Ok(())
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule that can never decide, because an earlier rule matches every
    /// request it would (first match wins): `(its index, the earlier rule's index)`.
    /// `/**` for any client, then `/admin/**` for admins, leaves `/admin` open to all.
    pub fn shadowed(&self) -> Option<(usize, usize)> {
        self.rules.iter().enumerate().find_map(|(j, later)| {
            self.rules[..j]
                .iter()
                .position(|earlier| earlier.covers(later))
                .map(|i| (j, i))
        })
    }

    pub fn role_names(&self) -> &[String] {
        &self.role_names
    }

    /// The roles an identity holds, at `now` (for conditions that read it). Call once per
    /// connection.
    pub fn roles_of(&self, id: &Identity, now: Timestamp) -> RoleSet {
        let mut set = RoleSet::default();
        for (role, when) in &self.role_rules {
            if when.iter().all(|c| c.holds(id, now)) {
                set.insert(*role);
            }
        }
        if !self.principals.is_empty() {
            for who in principals_of(id) {
                if let Some(roles) = self.principals.get(&who) {
                    set.0 |= roles.0;
                }
            }
        }
        set
    }

    /// Names of the roles in `set`, in declaration order.
    pub fn role_list(&self, set: RoleSet) -> impl Iterator<Item = &str> {
        self.role_names
            .iter()
            .enumerate()
            .filter(move |(i, _)| set.contains(RoleId(*i as u8)))
            .map(|(_, n)| n.as_str())
    }

    /// Names the roles a requirement asks for, for a 403 page.
    pub fn describe(&self, req: &Requirement) -> String {
        match req {
            Requirement::Anyone => "nothing".into(),
            Requirement::Authenticated => "a client certificate".into(),
            Requirement::Role(r) => format!("role {}", self.role_names[usize::from(r.0)]),
            Requirement::AnyOf(v) => {
                let parts: Vec<_> = v.iter().map(|r| self.describe(r)).collect();
                format!("one of: {}", parts.join(", "))
            }
            Requirement::AllOf(v) => {
                let parts: Vec<_> = v.iter().map(|r| self.describe(r)).collect();
                format!("all of: {}", parts.join(", "))
            }
            Requirement::Deny => "access that no one has".into(),
        }
    }

    /// Whether some rule's condition reads `now`: if none does, [`Request::now`] decides
    /// nothing, and a caller may spare itself reading the clock.
    pub fn reads_clock(&self) -> bool {
        self.reads_clock
    }

    /// The first rule matching `req` decides; `who` is `None` for a caller without a
    /// (valid) certificate. No match: denied.
    ///
    /// Looks only at the rules the index files along the request's path; allocates
    /// nothing. Decides exactly as [`Policy::explain`], which tries every rule in order.
    pub fn decide(&self, req: &Request<'_>, who: Option<RoleSet>) -> Decision<'_> {
        match self.index.first_match(&self.rules, req) {
            Some(i) => self.judge(i, req, who),
            None => Decision::NoRule,
        }
    }

    /// [`Policy::decide`], and why each rule before the deciding one did not match: for
    /// `portcullis policy test`, never on the request path. Tries every rule in order,
    /// the plain definition of first match that `decide`'s index is tested against.
    pub fn explain(&self, req: &Request<'_>, who: Option<RoleSet>) -> (Decision<'_>, Vec<Miss>) {
        let mut misses = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            match rule.miss(req) {
                Some(why) => misses.push(Miss { rule: i, why }),
                None => return (self.judge(i, req, who), misses),
            }
        }
        (Decision::NoRule, misses)
    }

    /// The decision of rule `i`, which matched, for a caller holding `who`: its
    /// requirement first, then its condition. A condition that reads `cert` asks a caller
    /// without one for a certificate; one that cannot be evaluated refuses.
    fn judge(&self, i: usize, req: &Request<'_>, who: Option<RoleSet>) -> Decision<'_> {
        let rule = &self.rules[i];
        match eval(&rule.require, who) {
            Outcome::Allow => match &rule.when {
                None => Decision::Allow { rule: i },
                Some(when) if when.reads_cert() && req.identity.is_none() => {
                    Decision::Unauthenticated { rule: i }
                }
                Some(when) => {
                    let facts = Facts {
                        identity: req.identity,
                        roles: who.unwrap_or_default(),
                        role_names: &self.role_names,
                        method: req.method,
                        host: req.host,
                        path: Some(req.path),
                        query: req.query,
                        headers: req.headers,
                        now: req.now,
                    };
                    match when.eval(&facts) {
                        Ok(true) => Decision::Allow { rule: i },
                        Ok(false) => Decision::Unmet {
                            rule: i,
                            when,
                            error: None,
                        },
                        Err(e) => Decision::Unmet {
                            rule: i,
                            when,
                            error: Some(e),
                        },
                    }
                }
            },
            Outcome::NeedsCert => Decision::Unauthenticated { rule: i },
            Outcome::Forbidden => Decision::Forbidden {
                rule: i,
                require: &rule.require,
            },
        }
    }

    /// Why `id` holds each of its roles: the role, and the mapping or the roles-file
    /// entry that grants it.
    pub fn grants(&self, id: &Identity, now: Timestamp) -> Vec<(&str, String)> {
        let name = |r: &RoleId| self.role_names[usize::from(r.0)].as_str();
        let mut out: Vec<(&str, String)> = self
            .role_rules
            .iter()
            .filter(|(_, when)| when.iter().all(|c| c.holds(id, now)))
            .map(|(role, when)| {
                let why: Vec<String> = when.iter().map(ToString::to_string).collect();
                (name(role), why.join(" and "))
            })
            .collect();
        for who in principals_of(id) {
            let Some(roles) = self.principals.get(&who) else {
                continue;
            };
            for (i, role) in self.role_names.iter().enumerate() {
                if roles.contains(RoleId(i as u8)) {
                    out.push((role.as_str(), format!("listed as {who}")));
                }
            }
        }
        out
    }
}

/// A rule tried before the deciding one, and what about the request it did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss {
    pub rule: usize,
    pub why: MissReason,
}

/// The first part of a rule a request did not match, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    Method,
    Host,
    Path,
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MissReason::Method => "method",
            MissReason::Host => "host",
            MissReason::Path => "path",
        })
    }
}

/// Every principal an identity can be named by.
fn principals_of(id: &Identity) -> impl Iterator<Item = Principal> + '_ {
    let cn = id.common_name.iter().map(|c| Principal::Cn(c.clone()));
    let emails = id
        .all_emails()
        .map(|e| Principal::Email(e.to_ascii_lowercase()));
    let uris = id.uri_sans.iter().map(|u| Principal::Uri(u.clone()));
    let fingerprint = (!id.fingerprint_sha256.is_empty())
        .then(|| Principal::Fingerprint(id.fingerprint_sha256.to_ascii_lowercase()));
    let serial = (!id.serial.is_empty()).then(|| {
        let v = id.serial.replace(':', "").to_ascii_uppercase();
        Principal::Serial(serial_key(&v).to_owned())
    });
    cn.chain(emails)
        .chain(uris)
        .chain(fingerprint)
        .chain(serial)
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Cn(v) => write!(f, "cn:{v}"),
            Principal::Email(v) => write!(f, "email:{v}"),
            Principal::Uri(v) => write!(f, "uri:{v}"),
            Principal::Fingerprint(v) => write!(f, "fingerprint:{v}"),
            Principal::Serial(v) => write!(f, "serial:{v}"),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Cn(list) => write!(f, "cn in {list:?}"),
            Condition::Ou(v) => write!(f, "ou = {v:?}"),
            Condition::O(v) => write!(f, "o = {v:?}"),
            Condition::Email(v) => write!(f, "email = {v:?}"),
            Condition::UriPrefix(v) => write!(f, "uri_prefix = {v:?}"),
            Condition::Dns(v) => write!(f, "dns = {v:?}"),
            Condition::Fingerprint(v) => write!(f, "fingerprint = {v:?}"),
            Condition::When(w) => write!(f, "when {:?}", w.source()),
        }
    }
}

enum Outcome {
    Allow,
    NeedsCert,
    Forbidden,
}

fn eval(req: &Requirement, who: Option<RoleSet>) -> Outcome {
    match (req, who) {
        (Requirement::Anyone, _) => Outcome::Allow,
        (Requirement::Deny, _) => Outcome::Forbidden,
        (Requirement::Authenticated | Requirement::Role(_), None) => Outcome::NeedsCert,
        (Requirement::Authenticated, Some(_)) => Outcome::Allow,
        (Requirement::Role(r), Some(set)) if set.contains(*r) => Outcome::Allow,
        (Requirement::Role(_), Some(_)) => Outcome::Forbidden,
        (Requirement::AnyOf(list), _) => {
            let mut needs_cert = false;
            for r in list {
                match eval(r, who) {
                    Outcome::Allow => return Outcome::Allow,
                    Outcome::NeedsCert => needs_cert = true,
                    Outcome::Forbidden => {}
                }
            }
            if needs_cert {
                Outcome::NeedsCert
            } else {
                Outcome::Forbidden
            }
        }
        (Requirement::AllOf(list), _) => {
            for r in list {
                match eval(r, who) {
                    Outcome::Allow => {}
                    other => return other,
                }
            }
            Outcome::Allow
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Anyone => f.write_str("anonymous"),
            Requirement::Authenticated => f.write_str("authenticated"),
            Requirement::Role(r) => write!(f, "role #{}", r.0),
            Requirement::AnyOf(v) => write!(f, "any_of({} requirements)", v.len()),
            Requirement::AllOf(v) => write!(f, "all_of({} requirements)", v.len()),
            Requirement::Deny => f.write_str("deny"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::canonicalize;

    fn sample() -> Policy {
        let mut p = Policy::new();
        p.add_role("admin", vec![Condition::Ou("Admins".into())])
            .unwrap();
        p.add_role(
            "user",
            vec![Condition::Cn(vec!["alice".into(), "bob".into()])],
        )
        .unwrap();
        p.add_role(
            "ops",
            vec![Condition::UriPrefix("spiffe://corp/ops/".into())],
        )
        .unwrap();
        let any = p.requirement("anonymous").unwrap();
        let auth = p.requirement("authenticated").unwrap();
        let admin = p.requirement("role:admin").unwrap();
        let admin_or_ops =
            Requirement::AnyOf(vec![admin.clone(), p.requirement("role:ops").unwrap()]);
        p.add_rule("/", &[], None, any).unwrap();
        p.add_rule("/me", &[], None, auth).unwrap();
        p.add_rule("/admin/**", &[], None, admin).unwrap();
        p.add_rule("/ops/**", &["GET".into()], None, admin_or_ops)
            .unwrap();
        p
    }

    fn id(cn: &str, ous: &[&str], uris: &[&str]) -> Identity {
        Identity {
            common_name: Some(cn.into()),
            organizational_units: ous.iter().map(|s| (*s).to_owned()).collect(),
            uri_sans: uris.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn decide<'p>(p: &'p Policy, method: &str, path: &str, who: Option<&Identity>) -> Decision<'p> {
        let path = canonicalize(path).unwrap();
        let roles = who.map(|i| p.roles_of(i, Timestamp::UNIX_EPOCH));
        // The decision borrows only the policy, not the path.
        p.decide(
            &Request::new(method, "localhost", &path, Timestamp::UNIX_EPOCH),
            roles,
        )
    }

    #[test]
    fn sample_policy() {
        let p = sample();
        let alice = id("alice", &["Admins"], &[]);
        let bob = id("bob", &["Users"], &[]);
        let opsbot = id("deployer", &[], &["spiffe://corp/ops/deployer"]);
        assert!(matches!(
            decide(&p, "GET", "/", None),
            Decision::Allow { rule: 0 }
        ));
        assert!(matches!(
            decide(&p, "GET", "/me", None),
            Decision::Unauthenticated { rule: 1 }
        ));
        assert!(matches!(
            decide(&p, "GET", "/me", Some(&bob)),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            decide(&p, "GET", "/admin/", None),
            Decision::Unauthenticated { .. }
        ));
        assert!(matches!(
            decide(&p, "GET", "/admin/x", Some(&bob)),
            Decision::Forbidden { rule: 2, .. }
        ));
        assert!(matches!(
            decide(&p, "GET", "/admin", Some(&alice)),
            Decision::Allow { rule: 2 }
        ));
        assert!(matches!(
            decide(&p, "GET", "/ops/deploy", Some(&opsbot)),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            decide(&p, "POST", "/ops/deploy", Some(&opsbot)),
            Decision::NoRule
        ));
        assert!(matches!(
            decide(&p, "GET", "/other", Some(&alice)),
            Decision::NoRule
        ));
        assert_eq!(
            p.role_list(p.roles_of(&alice, Timestamp::UNIX_EPOCH))
                .collect::<Vec<_>>(),
            ["admin", "user"]
        );
    }

    #[test]
    fn bypass_spellings_reach_the_admin_rule() {
        let p = sample();
        let bob = id("bob", &["Users"], &[]);
        for path in [
            "/admin/../admin",
            "/%61dmin",
            "//admin",
            "/admin/",
            "/./admin",
            "/x/../admin/y",
        ] {
            assert!(
                matches!(
                    decide(&p, "GET", path, Some(&bob)),
                    Decision::Forbidden { .. }
                ),
                "{path} must be judged as /admin"
            );
        }
        // Case-sensitive: /ADMIN is another path, and no rule allows it.
        assert!(matches!(
            decide(&p, "GET", "/ADMIN", Some(&bob)),
            Decision::NoRule
        ));
    }

    #[test]
    fn forbidden_names_the_missing_role() {
        let p = sample();
        let bob = id("bob", &[], &[]);
        let Decision::Forbidden { require, .. } = decide(&p, "GET", "/admin", Some(&bob)) else {
            panic!("expected 403");
        };
        assert_eq!(p.describe(require), "role admin");
        let Decision::Forbidden { require, .. } = decide(&p, "GET", "/ops/x", Some(&bob)) else {
            panic!("expected 403");
        };
        assert_eq!(p.describe(require), "one of: role admin, role ops");
    }

    #[test]
    fn a_get_rule_covers_head() {
        let p = sample();
        let opsbot = id("deployer", &[], &["spiffe://corp/ops/deployer"]);
        let bob = id("bob", &["Users"], &[]);
        assert!(matches!(
            decide(&p, "HEAD", "/ops/deploy", Some(&opsbot)),
            Decision::Allow { rule: 3 }
        ));
        assert!(matches!(
            decide(&p, "HEAD", "/ops/deploy", Some(&bob)),
            Decision::Forbidden { rule: 3, .. }
        ));
    }

    #[test]
    fn typos_and_bad_input_are_load_errors() {
        let p = sample();
        assert_eq!(
            p.requirement("role:admn"),
            Err(PolicyError::UnknownRole("admn".into()))
        );
        assert!(matches!(
            p.requirement("admin"),
            Err(PolicyError::Requirement(_))
        ));
        let mut p = sample();
        assert!(
            p.add_role("bad name", vec![Condition::Ou("x".into())])
                .is_err()
        );
        assert!(p.add_role("x", vec![]).is_err());
        assert!(
            p.add_rule("/a", &["G E T".into()], None, Requirement::Anyone)
                .is_err()
        );
    }

    #[test]
    fn roles_need_every_condition_and_exact_values() {
        let mut p = Policy::new();
        p.add_role(
            "eng-admin",
            vec![Condition::O("Acme".into()), Condition::Ou("Admins".into())],
        )
        .unwrap();
        let mut i = id("x", &["Admins"], &[]);
        assert!(
            p.roles_of(&i, Timestamp::UNIX_EPOCH).is_empty(),
            "O missing"
        );
        i.organizations = vec!["Acme".into()];
        assert!(!p.roles_of(&i, Timestamp::UNIX_EPOCH).is_empty());
        i.organizational_units = vec!["admins".into()];
        assert!(
            p.roles_of(&i, Timestamp::UNIX_EPOCH).is_empty(),
            "case-sensitive"
        );
        i.organizational_units = vec!["Admins ".into()];
        assert!(
            p.roles_of(&i, Timestamp::UNIX_EPOCH).is_empty(),
            "no trimming"
        );
    }
}

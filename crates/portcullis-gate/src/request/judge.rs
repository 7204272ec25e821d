//! A request judged without a connection, for `portcullis policy test`: stages 1, 2 and 4
//! exactly as [`super::admit`] runs them (the same functions, on the same inputs), with
//! the identity given instead of verified from a handshake, and a trace of the rules.

use http::{HeaderMap, Method, Uri, Version};
use portcullis_policy::{Decision as PolicyDecision, Identity, Request, Timestamp};
use serde::Serialize;

use super::{authority, authorize, canonical, headers};
use crate::gate::Gate;
use crate::outcome::Decision;

/// What to judge: the request as a client would send it.
#[derive(Debug, Clone)]
pub struct Question<'a> {
    /// The SNI name the connection was made for; `None` for none (the default site).
    pub sni: Option<&'a str>,
    /// The caller's identity, or `None` for a client without a certificate.
    pub identity: Option<&'a Identity>,
    pub method: &'a str,
    /// The request target (`/path?query`), as sent.
    pub target: &'a str,
    /// Request headers; `Host` among them (a missing one is a 400, as on the wire).
    pub headers: &'a HeaderMap,
    /// When the request is judged (conditions may read `now`).
    pub now: Timestamp,
}

/// The gate's decision on a [`Question`], and why.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    /// `allow`, `unauthenticated`, `forbidden`, `no-rule`, `bad-request` or `misdirected`:
    /// the words of the `portcullis_requests_total` metric.
    pub decision: &'static str,
    /// The index of the rule that decided, if one did.
    pub rule: Option<usize>,
    /// The deciding rule as `portcullis check` lists it.
    pub rule_text: Option<String>,
    /// For a refusal: what was wrong or missing, as the refusal page says it.
    pub reason: Option<String>,
    /// The deciding rule's `when` condition, if it has one and it was evaluated.
    pub condition: Option<ConditionResult>,
    /// The path the rules judged (and the upstream would receive).
    pub path: Option<String>,
    /// The roles the identity holds, each with the mapping that granted it.
    pub roles: Vec<Granted>,
    /// The rules tried before the deciding one, and what did not match.
    pub trace: Vec<Tried>,
}

/// A rule condition and what it came to.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionResult {
    pub when: String,
    /// `true`, `false`, or `error`.
    pub result: &'static str,
    /// Why it could not be evaluated.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Granted {
    pub role: String,
    pub because: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tried {
    pub rule: usize,
    pub rule_text: String,
    /// `method`, `host` or `path`: the first part of the rule the request did not match.
    pub mismatch: String,
}

impl Gate {
    /// Judges `q` as the gate in force would, without a connection.
    pub fn judge(&self, q: &Question<'_>) -> Judgement {
        let mut j = Judgement {
            decision: Decision::Misdirected.as_str(),
            rule: None,
            rule_text: None,
            reason: None,
            condition: None,
            path: None,
            roles: Vec::new(),
            trace: Vec::new(),
        };
        let refuse = |mut j: Judgement, d: Decision, why: String| {
            j.decision = d.as_str();
            j.reason = Some(why);
            j
        };
        // 0. The site the SNI name selects.
        let Some(site) = self.site_for(q.sni) else {
            return refuse(
                j,
                Decision::Misdirected,
                "no host serves that SNI name".into(),
            );
        };
        let config = site.config();
        let policy = &config.policy;
        if let Some(id) = q.identity {
            j.roles = policy
                .grants(id, q.now)
                .into_iter()
                .map(|(role, because)| Granted {
                    role: role.to_owned(),
                    because,
                })
                .collect();
        }
        // 1. Canonical method and path.
        let (Ok(method), Ok(uri)) = (
            Method::from_bytes(q.method.as_bytes()),
            q.target.parse::<Uri>(),
        ) else {
            return refuse(
                j,
                Decision::BadRequest,
                "not a valid method and request target".into(),
            );
        };
        let path = match canonical::check(&method, uri.path()) {
            Ok(p) => p,
            Err(e) => return refuse(j, Decision::BadRequest, e.to_string()),
        };
        j.path = Some(path.as_str().to_owned());
        // 2. Authority, on the listener's own port (or 443) as a live request would be.
        let port = self.listener().listen.port();
        let authority = match authority::check(
            Version::HTTP_11,
            &uri,
            q.headers,
            q.sni,
            |h| site.serves(h),
            |p| p == port || p == 443,
        ) {
            Ok(a) => a,
            Err(p) if p.misdirected() => return refuse(j, Decision::Misdirected, p.to_string()),
            Err(p) => return refuse(j, Decision::BadRequest, p.to_string()),
        };
        // 3. Headers, as conditions see them.
        let mut sanitized = q.headers.clone();
        headers::sanitize(&mut sanitized, &site.headers);
        // 4. Policy: every rule in order, with the ones passed over; `decide` reaches the
        //    same rule through its index (an equivalence test in portcullis-policy).
        let roles = q.identity.map(|id| policy.roles_of(id, q.now));
        let facts = Request {
            method: method.as_str(),
            host: authority.host(),
            path: &path,
            query: uri.query().unwrap_or(""),
            headers: &authorize::HeaderView(&sanitized),
            identity: q.identity,
            now: q.now,
        };
        let (decision, misses) = policy.explain(&facts, roles);
        let text = |i: usize| config.rule_names.get(i).cloned().unwrap_or_default();
        j.trace = misses
            .iter()
            .map(|m| Tried {
                rule: m.rule,
                rule_text: text(m.rule),
                mismatch: m.why.to_string(),
            })
            .collect();
        j.rule = decision.rule();
        j.rule_text = j.rule.map(text);
        let (d, reason) = match decision {
            PolicyDecision::Allow { rule } => {
                j.condition = policy.rules()[rule].when.as_ref().map(|w| ConditionResult {
                    when: w.to_string(),
                    result: "true",
                    error: None,
                });
                (Decision::Allow, None)
            }
            PolicyDecision::Unmet { when, error, .. } => {
                j.condition = Some(ConditionResult {
                    when: when.to_string(),
                    result: if error.is_some() { "error" } else { "false" },
                    error: error.as_ref().map(ToString::to_string),
                });
                let why = match &error {
                    Some(e) => format!("the rule's condition could not be evaluated: {e}"),
                    None => format!("the rule's condition is false: {when}"),
                };
                (Decision::Forbidden, Some(why))
            }
            PolicyDecision::Unauthenticated { .. } => (
                Decision::Unauthenticated,
                Some("a client certificate is needed".into()),
            ),
            PolicyDecision::Forbidden { require, .. } => (
                Decision::Forbidden,
                Some(format!("needs {}", policy.describe(require))),
            ),
            PolicyDecision::NoRule => (
                Decision::NoRule,
                Some("no rule matches: denied by default".into()),
            ),
        };
        j.decision = d.as_str();
        j.reason = reason;
        j
    }
}

//! Stage 4: the policy decision, on exactly what the upstream will see — the canonical
//! path, the checked host, the canonically spelled method — and on the roles the
//! connection holds under the configuration in force (SECURITY.md rules 1 and 9).

use http::HeaderMap;
use portcullis_policy::{
    Decision, HeaderValue, Headers, Policy, Request, RoleSet, same_header_name,
};

/// Why the policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401: the rule needs a certificate.
    Unauthenticated { rule: usize },
    /// 403: the rule needs more than the caller has; `needs` names it for the page.
    Forbidden { rule: usize, needs: String },
    /// 403: no rule matches, so the default is to deny.
    NoRule,
}

/// What the page says a refused condition needed. The expression itself stays in the
/// policy (`portcullis policy test` shows it): it can name people and hours.
pub const CONDITION_NEEDED: &str = "its rule's condition (when) to be met";

/// The index of the rule that allows the request.
pub fn decide(policy: &Policy, roles: Option<RoleSet>, req: &Request<'_>) -> Result<usize, Denied> {
    match policy.decide(req, roles) {
        Decision::Allow { rule } => Ok(rule),
        Decision::Unauthenticated { rule } => Err(Denied::Unauthenticated { rule }),
        Decision::Forbidden { rule, require } => Err(Denied::Forbidden {
            rule,
            needs: policy.describe(require),
        }),
        Decision::Unmet { rule, .. } => Err(Denied::Forbidden {
            rule,
            needs: CONDITION_NEEDED.into(),
        }),
        Decision::NoRule => Err(Denied::NoRule),
    }
}

/// `request.headers` for conditions: the request's headers after stage 3, so a condition
/// reads exactly what the upstream will (and never a header the gate speaks for).
#[derive(Debug, Clone, Copy)]
pub struct HeaderView<'a>(pub &'a HeaderMap);

impl Headers for HeaderView<'_> {
    fn get(&self, name: &str) -> HeaderValue<'_> {
        // Every line in every spelling an application could fold into this name: one
        // scan of the request's headers, only when a condition asks.
        let mut all = self
            .0
            .iter()
            .filter(|(k, _)| same_header_name(k.as_str(), name))
            .map(|(_, v)| v);
        match (all.next(), all.next()) {
            (None, _) => HeaderValue::Absent,
            (Some(_), Some(_)) => HeaderValue::Repeated,
            (Some(v), None) => v.to_str().map_or(HeaderValue::NotText, HeaderValue::One),
        }
    }
}

impl Denied {
    pub fn rule(&self) -> Option<usize> {
        match self {
            Denied::Unauthenticated { rule } | Denied::Forbidden { rule, .. } => Some(*rule),
            Denied::NoRule => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policy::{Condition, Identity, Timestamp, path};

    #[test]
    fn decisions_name_the_rule_and_what_is_missing() {
        let mut p = Policy::new();
        p.add_role("admin", vec![Condition::Ou("Admins".into())])
            .unwrap();
        let admin = p.requirement("role:admin").unwrap();
        p.add_rule("/api/**", &["DELETE".into()], None, admin)
            .unwrap();
        let auth = p.requirement("authenticated").unwrap();
        p.add_rule("/api/**", &[], None, auth).unwrap();
        let now = Timestamp::UNIX_EPOCH;
        let bob = p.roles_of(&Identity::default(), now);
        let path = path::canonicalize("/api/x").unwrap();
        let req = |method| Request::new(method, "localhost", &path, now);
        assert_eq!(decide(&p, Some(bob), &req("GET")), Ok(1));
        assert_eq!(
            decide(&p, Some(bob), &req("DELETE")),
            Err(Denied::Forbidden {
                rule: 0,
                needs: "role admin".into()
            })
        );
        assert_eq!(
            decide(&p, None, &req("GET")),
            Err(Denied::Unauthenticated { rule: 1 })
        );
        let other = path::canonicalize("/other").unwrap();
        assert_eq!(
            decide(
                &p,
                Some(bob),
                &Request::new("GET", "localhost", &other, now)
            ),
            Err(Denied::NoRule)
        );
    }
}

//! Stage 4: the policy decision, on exactly what the upstream will see — the canonical
//! path, the checked host, the canonically spelled method — and on the roles the
//! connection holds under the configuration in force (SECURITY.md rules 1 and 9).

use portcullis_policy::{CanonicalPath, Decision, Policy, Request, RoleSet};

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

/// The index of the rule that allows the request.
pub fn decide(
    policy: &Policy,
    roles: Option<RoleSet>,
    method: &str,
    host: &str,
    path: &CanonicalPath<'_>,
) -> Result<usize, Denied> {
    let facts = Request { method, host, path };
    match policy.decide(&facts, roles) {
        Decision::Allow { rule } => Ok(rule),
        Decision::Unauthenticated { rule } => Err(Denied::Unauthenticated { rule }),
        Decision::Forbidden { rule, require } => Err(Denied::Forbidden {
            rule,
            needs: policy.describe(require),
        }),
        Decision::NoRule => Err(Denied::NoRule),
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
    use portcullis_policy::{Condition, Identity, path};

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
        let bob = p.roles_of(&Identity::default());
        let path = path::canonicalize("/api/x").unwrap();
        assert_eq!(decide(&p, Some(bob), "GET", "localhost", &path), Ok(1));
        assert_eq!(
            decide(&p, Some(bob), "DELETE", "localhost", &path),
            Err(Denied::Forbidden {
                rule: 0,
                needs: "role admin".into()
            })
        );
        assert_eq!(
            decide(&p, None, "GET", "localhost", &path),
            Err(Denied::Unauthenticated { rule: 1 })
        );
        let other = path::canonicalize("/other").unwrap();
        assert_eq!(
            decide(&p, Some(bob), "GET", "localhost", &other),
            Err(Denied::NoRule)
        );
    }
}

//! The gate's decisions, as pure functions: no I/O, no async, no clock.
//!
//! * [`path::canonicalize`] turns a request path into the one form the policy judges and the
//!   upstream receives, refusing what is ambiguous (SECURITY.md rule 2);
//!   [`method::check`] refuses method spellings an application would read as another.
//! * [`Identity::from_der`] reads a verified client certificate into typed fields once per
//!   connection (rule 5).
//! * [`Policy`] maps identities to roles on typed fields and matches ordered route rules;
//!   [`Policy::decide`] is the whole access decision.
//! * [`When`] is a condition in CEL on a rule or a role grant, type-checked at load.
//!
//! ```
//! use portcullis_policy::{path, Condition, Decision, Identity, Policy, Request};
//!
//! let mut policy = Policy::new();
//! policy.add_role("admin", vec![Condition::Ou("Admins".into())]).unwrap();
//! let admin = policy.requirement("role:admin").unwrap();
//! policy.add_rule("/admin/**", &[], None, admin).unwrap();
//!
//! let alice = Identity { organizational_units: vec!["Admins".into()], ..Default::default() };
//! let path = path::canonicalize("/admin/../admin/users").unwrap();
//! let now = portcullis_policy::Timestamp::now();
//! let req = Request::new("GET", "localhost", &path, now);
//! assert_eq!(policy.decide(&req, Some(policy.roles_of(&alice, now))), Decision::Allow { rule: 0 });
//! assert_eq!(policy.decide(&req, None), Decision::Unauthenticated { rule: 0 });
//! ```

pub mod identity;
mod index;
pub mod method;
pub mod path;
pub mod pattern;
pub mod policy;
pub mod when;

pub use identity::{Identity, IdentityError};
pub use path::{CanonicalPath, PathError};
pub use pattern::Pattern;
pub use policy::{
    Condition, Decision, Miss, MissReason, Policy, PolicyError, Principal, Request, Requirement,
    RoleSet,
};
pub use when::{HeaderValue, Headers, Scope, When, WhenError, same_header_name};

/// The time type of requests and conditions.
pub use jiff::Timestamp;

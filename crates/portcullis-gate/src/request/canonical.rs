//! Stage 1: the method and path in the one form everything after judges and the upstream
//! receives (SECURITY.md rule 2). What cannot be read one way only is refused with 400.
//! The rules themselves are pure functions in `portcullis-policy`.

use http::Method;
use portcullis_policy::{CanonicalPath, method, path};

/// Why the request target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error(transparent)]
    Method(#[from] method::MethodError),
    #[error(transparent)]
    Path(#[from] path::PathError),
}

/// The canonical path of a request whose method is spelled canonically.
pub fn check<'a>(method: &Method, path: &'a str) -> Result<CanonicalPath<'a>, Invalid> {
    method::check(method.as_str())?;
    Ok(path::canonicalize(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_and_path_are_both_judged() {
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(check(&m("GET"), "/a/../b").unwrap().as_str(), "/b");
        assert!(matches!(check(&m("delete"), "/b"), Err(Invalid::Method(_))));
        assert!(matches!(check(&m("GET"), "/b%20/c"), Err(Invalid::Path(_))));
        assert!(matches!(check(&m("GET"), "*"), Err(Invalid::Path(_))));
    }
}

//! Request-method spelling (SECURITY.md rule 2).
//!
//! Methods are case-sensitive (RFC 9110 §9.1): `delete` is not `DELETE`. But Django,
//! Werkzeug, Express and many others upper-case the method before routing, so a rule
//! written for `DELETE` would not match `delete` at the gate while the application runs its
//! DELETE handler. The gate therefore refuses any method with a lower-case letter: every
//! method it accepts reads the same to an application that upper-cases it, and the rules
//! (whose methods are written in upper case) see exactly what the application will.

/// Why a method was refused (the gate answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MethodError {
    #[error(
        "the method has lower-case letters; methods are matched as applications read them, so send it in upper case"
    )]
    NotUpperCase,
    #[error("the method is empty")]
    Empty,
}

/// Accepts a method only when upper-casing it changes nothing.
pub fn check(method: &str) -> Result<(), MethodError> {
    if method.is_empty() {
        return Err(MethodError::Empty);
    }
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(MethodError::NotUpperCase);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string up to 5 characters over letters of GET/DELETE in both cases, and a
    /// few non-letters: a method is accepted exactly when upper-casing it is a no-op, so
    /// no accepted spelling can turn into another method inside the application.
    #[test]
    fn accepted_methods_are_fixed_points_of_upper_casing() {
        let alphabet = ['G', 'g', 'E', 'e', 'T', 't', 'D', 'd', 'L', 'l', '-', '_'];
        let mut frontier = vec![String::new()];
        let mut accepted = 0;
        let mut refused = 0;
        for _ in 0..5 {
            let mut next = Vec::new();
            for s in &frontier {
                for c in alphabet {
                    let m = format!("{s}{c}");
                    let upper = m.to_ascii_uppercase();
                    match check(&m) {
                        Ok(()) => {
                            assert_eq!(
                                upper, m,
                                "{m:?} accepted but an application reads {upper:?}"
                            );
                            accepted += 1;
                        }
                        Err(e) => {
                            assert_ne!(upper, m, "{m:?} refused although canonical: {e}");
                            refused += 1;
                        }
                    }
                    next.push(m);
                }
            }
            frontier = next;
        }
        assert!(accepted > 1000 && refused > 100_000, "{accepted} {refused}");
    }

    #[test]
    fn spellings_from_the_field() {
        for m in ["delete", "Delete", "PoSt", "pUT", "get", "patch"] {
            assert_eq!(check(m), Err(MethodError::NotUpperCase), "{m}");
        }
        for m in ["GET", "DELETE", "PROPFIND", "M-SEARCH", "QUERY"] {
            assert_eq!(check(m), Ok(()), "{m}");
        }
        assert_eq!(check(""), Err(MethodError::Empty));
    }
}

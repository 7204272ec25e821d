//! The header names the gate speaks for, compiled once per site: the identity headers it
//! sets, and every name a client must not be able to send in their place (SECURITY.md
//! rule 3). Also how the gate writes values so that an upstream reads them one way only.
//!
//! Names are compared the way the upstream may read them: ASCII case-insensitively, and
//! with every character other than a letter or digit equal to `-`: CGI, WSGI, PHP and Rack
//! fold `X_Client_CN` and `X-Client-CN` into the same variable, and PHP also turns `.`
//! into `_` (`X.Client.CN`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::HeaderNames;

/// Forwarding headers the gate sets, and the ones frameworks read as the client's address:
/// always protected, whatever the configuration says.
const FORWARDING: [&str; 9] = [
    "forwarded",
    "x-forwarded",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
];
/// Every `X-Forwarded-*` header: the gate sets some, and the others (`-Port`, `-Prefix`,
/// `-Server`, `-Ssl`…) re-route or re-scheme requests in common frameworks.
const FORWARDING_PREFIX: &str = "x-forwarded-";

/// Header names resolved at load.
#[derive(Debug, Clone)]
pub struct Names {
    pub cert: HeaderName,
    pub chain: HeaderName,
    pub verify: HeaderName,
    pub subject: HeaderName,
    pub cn: HeaderName,
    pub email: HeaderName,
    pub o: HeaderName,
    pub ou: HeaderName,
    pub serial: HeaderName,
    pub fingerprint: HeaderName,
    pub issuer: HeaderName,
    pub roles: HeaderName,
    pub not_after: HeaderName,
    /// Protected names, folded (lower case, `_` as `-`).
    exact: Vec<Box<[u8]>>,
    /// Protected prefixes, folded: the convenience family and `x-forwarded-`.
    prefixes: Vec<Box<[u8]>>,
    /// Keep inbound names with `_` (the protected ones are removed in any case).
    allow_underscores: bool,
}

fn name(s: &str) -> HeaderName {
    // Validated in config; a fallback keeps this infallible.
    HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
        .unwrap_or(HeaderName::from_static("x-portcullis-invalid"))
}

/// `b` as a folding application reads it: letters in lower case, digits as they are, and
/// any other character as `-`.
fn fold(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_lowercase()
    } else {
        b'-'
    }
}

fn folded(s: &str) -> Box<[u8]> {
    s.bytes().map(fold).collect()
}

impl Names {
    pub fn new(cfg: &HeaderNames) -> Names {
        let prefix = cfg.prefix.to_ascii_lowercase();
        let n = |suffix: &str| name(&format!("{prefix}{suffix}"));
        let mut exact: Vec<Box<[u8]>> = [cfg.cert.as_str(), cfg.chain.as_str()]
            .into_iter()
            .chain(FORWARDING)
            .chain(cfg.strip.iter().map(String::as_str))
            .chain(cfg.overrides.iter().map(String::as_str))
            .map(folded)
            .collect();
        exact.sort();
        exact.dedup();
        Names {
            cert: name(&cfg.cert),
            chain: name(&cfg.chain),
            verify: n("verify"),
            subject: n("subject"),
            cn: n("cn"),
            email: n("email"),
            o: n("o"),
            ou: n("ou"),
            serial: n("serial"),
            fingerprint: n("fingerprint"),
            issuer: n("issuer"),
            roles: n("roles"),
            not_after: n("not-after"),
            exact,
            prefixes: vec![folded(&prefix), folded(FORWARDING_PREFIX)],
            allow_underscores: cfg.allow_underscores,
        }
    }

    /// Whether a client must never send `name`: a name the gate sets or strips, in any
    /// spelling an application folds into it.
    pub fn is_protected(&self, name: &str) -> bool {
        let name = name.as_bytes();
        let same = |pattern: &[u8], candidate: &[u8]| {
            pattern.len() == candidate.len()
                && pattern.iter().zip(candidate).all(|(p, c)| *p == fold(*c))
        };
        self.exact.iter().any(|p| same(p, name))
            || self
                .prefixes
                .iter()
                .any(|p| name.len() >= p.len() && same(p, &name[..p.len()]))
    }

    /// Whether an inbound header called `name` must go: protected, or a name with a
    /// character other than a letter, digit or `-` (`_` too, unless `allow_underscores`),
    /// which some application would fold into another name — nginx drops those as well
    /// (`ignore_invalid_headers`, `underscores_in_headers`).
    pub fn is_refused(&self, name: &str) -> bool {
        let odd = name.bytes().any(|b| {
            !(b.is_ascii_alphanumeric() || b == b'-' || (b == b'_' && self.allow_underscores))
        });
        odd || self.is_protected(name)
    }

    /// Removes every refused name from `headers` (all copies). Costs one pass over the
    /// names and no allocation when there is nothing to remove, which is the usual case.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if !headers.keys().any(|k| self.is_refused(k.as_str())) {
            return;
        }
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.is_refused(k.as_str()))
            .cloned()
            .collect();
        for k in doomed {
            headers.remove(k);
        }
    }
}

// === values ===

/// A header value from text: bytes outside printable ASCII, and `%`, are percent-encoded,
/// so UTF-8 names survive and nothing can break the header syntax.
pub fn text(s: &str) -> HeaderValue {
    let mut o = Vec::with_capacity(s.len());
    push_text(s, &mut o);
    value(o)
}

fn push_text(s: &str, o: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            o.push(b);
        } else {
            o.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Only printable ASCII is ever passed in, so the empty fallback is unreachable.
fn value(bytes: Vec<u8>) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(bytes)).unwrap_or(HeaderValue::from_static(""))
}

/// An RFC 8941 list of strings, `"Users,Admins", "Ops"`: one item per value, so a comma
/// inside a value cannot read as two. Inside each string `"` and `\` are escaped, and `%`
/// and bytes outside printable ASCII are percent-encoded as in [`text`].
pub fn string_list<'a>(values: impl IntoIterator<Item = &'a str>) -> HeaderValue {
    let mut o = Vec::new();
    let mut escaped = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            o.extend_from_slice(b", ");
        }
        o.push(b'"');
        escaped.clear();
        push_text(v, &mut escaped);
        for &b in &escaped {
            if matches!(b, b'"' | b'\\') {
                o.push(b'\\');
            }
            o.push(b);
        }
        o.push(b'"');
    }
    value(o)
}

/// RFC 8941 byte sequences, `:base64:, :base64:` (RFC 9440's `Client-Cert` and
/// `Client-Cert-Chain`).
pub fn binary<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> HeaderValue {
    let mut o = String::new();
    for (i, der) in ders.into_iter().enumerate() {
        if i > 0 {
            o.push_str(", ");
        }
        o.push(':');
        data_encoding::BASE64.encode_append(der, &mut o);
        o.push(':');
    }
    value(o.into_bytes())
}

// === trailers ===

/// A request body whose trailers lose every refused name, as the request's headers did:
/// over HTTP/2 (and to an h2c upstream) trailers are forwarded, and an application may
/// merge them into the request's fields.
#[derive(Debug)]
pub struct StrippedTrailers<B> {
    inner: B,
    names: std::sync::Arc<Names>,
}

impl<B> StrippedTrailers<B> {
    pub fn new(inner: B, names: std::sync::Arc<Names>) -> Self {
        StrippedTrailers { inner, names }
    }
}

impl<B> hyper::body::Body for StrippedTrailers<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, B::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            other => return other,
        };
        Poll::Ready(Some(Ok(match frame.into_trailers() {
            Ok(mut trailers) => {
                self.names.strip(&mut trailers);
                hyper::body::Frame::trailers(trailers)
            }
            Err(frame) => frame,
        })))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(cfg: HeaderNames) -> Names {
        Names::new(&cfg)
    }

    /// Every name up to 5 characters over a small alphabet, against a naive reading of what
    /// a folding application sees: a name is protected exactly when its folded form is a
    /// protected name or starts with a protected prefix.
    #[test]
    fn folding_is_exact_over_a_small_alphabet() {
        let n = names(HeaderNames {
            cert: "Ab".into(),
            chain: "Ab-C".into(),
            prefix: "C-".into(),
            strip: vec!["B_a".into()],
            overrides: vec![],
            allow_underscores: true,
        });
        let naive = |s: &str| {
            let f: String = s.to_ascii_lowercase().replace(['_', '.'], "-");
            ["ab", "ab-c", "b-a"].contains(&f.as_str())
                || FORWARDING.contains(&f.as_str())
                || f.starts_with("c-")
                || f.starts_with("x-forwarded-")
        };
        let alphabet = ['a', 'A', 'b', 'B', 'c', 'C', '-', '_', '.'];
        let mut frontier = vec![String::new()];
        let mut protected = 0;
        for _ in 0..5 {
            let mut next = Vec::new();
            for s in &frontier {
                for c in alphabet {
                    let t = format!("{s}{c}");
                    assert_eq!(n.is_protected(&t), naive(&t), "{t:?}");
                    protected += usize::from(naive(&t));
                    next.push(t);
                }
            }
            frontier = next;
        }
        assert!(protected > 1000, "{protected}");
    }

    #[test]
    fn strips_every_spelling_and_every_copy() {
        let n = names(HeaderNames {
            strip: vec!["X-Remote-User".into()],
            ..HeaderNames::default()
        });
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("Client-Cert", ":AAAA:"),
            ("client_cert", ":BBBB:"),
            ("CLIENT_CERT_CHAIN", "x"),
            ("X-Client-Verify", "SUCCESS"),
            ("x_client_roles", "admin"),
            ("X-CLIENT-Made-Up", "x"),
            ("X_Remote_User", "admin"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Prefix", "/admin"),
            ("Forwarded", "for=1.2.3.4"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("x_original_url", "/admin"),
            ("X.Client.CN", "admin"),
            ("True-Client-IP", "10.0.0.1"),
            ("X-Forwarded", "for=10.0.0.1"),
            ("Accept", "*/*"),
            ("X-Unrelated_Name", "dropped: underscores are off"),
            ("X-Unrelated.Name", "dropped: a dot is never kept"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        n.strip(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn underscores_can_be_kept_but_never_for_protected_names() {
        let n = names(HeaderNames {
            allow_underscores: true,
            ..HeaderNames::default()
        });
        assert!(!n.is_refused("x_request_id"));
        assert!(n.is_refused("x.request.id"));
        assert!(n.is_refused("x_client_cn"));
        assert!(n.is_refused("x_forwarded_host"));
    }

    #[test]
    fn values_are_unambiguous() {
        assert_eq!(text("Zoë 100%"), "Zo%C3%AB 100%25");
        assert_eq!(text("plain"), "plain");
        assert_eq!(string_list(["Users,Admins"]), "\"Users,Admins\"");
        assert_eq!(
            string_list(["a \"q\" \\", "Zoë"]),
            "\"a \\\"q\\\" \\\\\", \"Zo%C3%AB\""
        );
    }
}

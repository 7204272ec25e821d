//! Stage 2: the authority (SECURITY.md rule 4). A request names exactly one host, in valid
//! syntax, that the site serves and that the TLS connection was made for. The value checked
//! here is the value the upstream receives as `Host`, `X-Forwarded-Host` and
//! `Forwarded: host=`, so the gate and the application cannot disagree about it.

use std::ops::Range;

use http::header::{HOST, HeaderMap, HeaderValue};
use http::{Uri, Version};

/// A checked authority: `host[:port]`, host in lower case.
#[derive(Debug, Clone)]
pub struct Authority {
    value: HeaderValue,
    /// Where the host is in `value` (inside the brackets of an IPv6 literal).
    host: Range<usize>,
}

impl Authority {
    /// The whole checked value, as the upstream receives it.
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }

    pub fn as_str(&self) -> &str {
        // Checked to be ASCII when built.
        self.value.to_str().unwrap_or("")
    }

    /// The host, without port or brackets.
    pub fn host(&self) -> &str {
        self.as_str().get(self.host.clone()).unwrap_or("")
    }
}

/// Why the authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the request names no host (send a Host header)")]
    Missing,
    #[error("the request has more than one Host header")]
    Several,
    #[error("the request target and the Host header name different hosts")]
    Disagree,
    #[error("the Host header is not a valid host[:port]")]
    Invalid,
    /// 421: not a name (or port) of this site.
    #[error("this server does not serve that host and port")]
    Unknown,
    /// 421: a name of this site, but not the one the connection was made for.
    #[error("the connection was made for another host")]
    NotTheConnection,
}

impl Problem {
    /// 421 Misdirected Request rather than 400: the client should open another connection.
    pub fn misdirected(self) -> bool {
        matches!(self, Problem::Unknown | Problem::NotTheConnection)
    }
}

/// Where the host is in `host[:port]`, and the port, if the syntax is valid: a DNS name or
/// IPv4 address (letters, digits, `-` and `.`), or an IPv6 address in brackets; an optional
/// port of at most 5 digits up to 65535. No userinfo, spaces, underscores or stray brackets.
fn syntax(s: &[u8]) -> Option<(Range<usize>, Option<u16>)> {
    let (host, rest) = if s.first() == Some(&b'[') {
        let close = s.iter().position(|&b| b == b']')?;
        let inner = std::str::from_utf8(&s[1..close]).ok()?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        (1..close, &s[close + 1..])
    } else {
        let end = s.iter().position(|&b| b == b':').unwrap_or(s.len());
        let name = &s[..end];
        // Every byte looked at, without an early exit: the compiler checks 16 at a time.
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.iter().fold(true, |ok, &b| {
                ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'.'))
            });
        if !ok {
            return None;
        }
        (0..end, &s[end..])
    };
    match rest {
        [] => Some((host, None)),
        [b':', port @ ..] if (1..=5).contains(&port.len()) => {
            let mut n = 0u32;
            for &d in port {
                if !d.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + u32::from(d - b'0');
            }
            Some((host, Some(u16::try_from(n).ok()?)))
        }
        _ => None,
    }
}

/// Checks the request's authority against the connection's SNI name, the names the site
/// serves (`serves`) and the ports it answers on (`port`; no port is always fine).
/// HTTP/1.x: exactly one `Host` line, equal to the target's authority when the target is
/// in absolute form. HTTP/2: `:authority`, and a `host` field only if it is the same.
/// A port the gate does not answer on would let the client choose the port of the URLs an
/// application builds from `Host` (password-reset links, OAuth redirects).
pub fn check(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
    sni: Option<&str>,
    serves: impl Fn(&str) -> bool,
    port: impl Fn(u16) -> bool,
) -> Result<Authority, Problem> {
    let mut hosts = headers.get_all(HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return Err(Problem::Several);
    }
    let target = uri.authority().map(|a| a.as_str());
    let raw: &[u8] = match (version == Version::HTTP_2, target, first) {
        (_, Some(t), Some(h)) if !t.as_bytes().eq_ignore_ascii_case(h.as_bytes()) => {
            return Err(Problem::Disagree);
        }
        // HTTP/1.1 requires Host (RFC 9112 §3.2) even with an absolute-form target.
        (false, _, None) => return Err(Problem::Missing),
        (false, _, Some(h)) => h.as_bytes(),
        (true, Some(t), _) => t.as_bytes(),
        (true, None, Some(h)) => h.as_bytes(),
        (true, None, None) => return Err(Problem::Missing),
    };
    let (host, given_port) = syntax(raw).ok_or(Problem::Invalid)?;
    let value = if raw
        .iter()
        .fold(false, |any, b| any | b.is_ascii_uppercase())
    {
        HeaderValue::from_bytes(&raw.to_ascii_lowercase()).map_err(|_| Problem::Invalid)?
    } else {
        match first {
            // The client's own value: sharing it costs no copy.
            Some(h) if h.as_bytes() == raw => h.clone(),
            _ => HeaderValue::from_bytes(raw).map_err(|_| Problem::Invalid)?,
        }
    };
    let authority = Authority { value, host };
    let name = authority.host();
    if !serves(name) || given_port.is_some_and(|p| !port(p)) {
        return Err(Problem::Unknown);
    }
    if sni.is_some_and(|sni| !sni.eq_ignore_ascii_case(name)) {
        return Err(Problem::NotTheConnection);
    }
    Ok(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h1(lines: &[&str], target: &str, sni: Option<&str>) -> Result<String, Problem> {
        let mut headers = HeaderMap::new();
        for l in lines {
            headers.append(HOST, HeaderValue::from_str(l).unwrap());
        }
        let uri: Uri = target.parse().unwrap();
        check(
            Version::HTTP_11,
            &uri,
            &headers,
            sni,
            |h| ["localhost", "127.0.0.1", "::1", "api.example"].contains(&h),
            |p| p == 8443 || p == 443,
        )
        .map(|a| format!("{} {}", a.as_str(), a.host()))
    }

    #[test]
    fn one_valid_configured_host_equal_to_sni() {
        let sni = Some("localhost");
        assert_eq!(h1(&["localhost"], "/", sni).unwrap(), "localhost localhost");
        assert_eq!(
            h1(&["LocalHost:8443"], "/", sni).unwrap(),
            "localhost:8443 localhost"
        );
        assert_eq!(h1(&["[::1]:8443"], "/", None).unwrap(), "[::1]:8443 ::1");
        assert_eq!(
            h1(&["127.0.0.1"], "/", None).unwrap(),
            "127.0.0.1 127.0.0.1"
        );
        // Leading zeros name the same port, as the number they spell.
        assert_eq!(
            h1(&["localhost:08443"], "/", sni).unwrap(),
            "localhost:08443 localhost"
        );
        assert_eq!(
            h1(&["localhost"], "http://localhost/x", sni).unwrap(),
            "localhost localhost"
        );
        let refused = [
            (&["localhost", "localhost"][..], "/", Problem::Several),
            (&[], "/", Problem::Missing),
            (&[], "http://localhost/x", Problem::Missing),
            (&["localhost"], "http://evil.example/x", Problem::Disagree),
            (&["[localhost]:443@evil.example"], "/", Problem::Invalid),
            (&["localhost@evil.example"], "/", Problem::Invalid),
            (&["alice@localhost"], "/", Problem::Invalid),
            (&["localhost:443:443"], "/", Problem::Invalid),
            (&["localhost:x"], "/", Problem::Invalid),
            (&["localhost:99999"], "/", Problem::Invalid),
            (&["localhost:65536"], "/", Problem::Invalid),
            (&["localhost:008443"], "/", Problem::Invalid),
            (&["localhost:+8443"], "/", Problem::Invalid),
            (&["localhost:8443 "], "/", Problem::Invalid),
            (&["localhost:1"], "/", Problem::Unknown),
            (&["localhost:"], "/", Problem::Invalid),
            (&["[::1"], "/", Problem::Invalid),
            (&["[::1]x"], "/", Problem::Invalid),
            (&["local_host"], "/", Problem::Invalid),
            (&["localhost/x"], "/", Problem::Invalid),
            (&[""], "/", Problem::Invalid),
            (&["evil.example"], "/", Problem::Unknown),
            (&["api.example"], "/", Problem::NotTheConnection),
        ];
        for (lines, target, want) in refused {
            assert_eq!(h1(lines, target, sni), Err(want), "{lines:?} {target}");
        }
        // An unknown SNI does not make its own name acceptable.
        assert_eq!(
            h1(&["evil.example"], "/", Some("evil.example")),
            Err(Problem::Unknown)
        );
        assert_eq!(
            h1(&["localhost"], "/", Some("evil.example")),
            Err(Problem::NotTheConnection)
        );
    }

    #[test]
    fn http2_authority_and_host_must_agree() {
        let serves = |h: &str| h == "localhost";
        let check =
            |v, u: &Uri, h: &HeaderMap, sni, s: fn(&str) -> bool| check(v, u, h, sni, s, |_| true);
        let uri: Uri = "https://localhost/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        let a = check(Version::HTTP_2, &uri, &headers, Some("localhost"), serves).unwrap();
        assert_eq!(a.as_str(), "localhost");
        headers.insert(HOST, HeaderValue::from_static("evil.example"));
        assert_eq!(
            check(Version::HTTP_2, &uri, &headers, Some("localhost"), serves).unwrap_err(),
            Problem::Disagree
        );
        let no_authority: Uri = "/x".parse().unwrap();
        headers.insert(HOST, HeaderValue::from_static("localhost"));
        assert!(check(Version::HTTP_2, &no_authority, &headers, None, serves).is_ok());
        assert_eq!(
            check(
                Version::HTTP_2,
                &no_authority,
                &HeaderMap::new(),
                None,
                serves
            )
            .unwrap_err(),
            Problem::Missing
        );
    }
}

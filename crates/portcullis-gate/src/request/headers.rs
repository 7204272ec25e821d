//! Stage 3: header integrity (SECURITY.md rule 3). Before the gate adds anything, the
//! request loses its hop-by-hop fields — including every field the client's `Connection`
//! lines name — and every inbound spelling of a name the gate speaks for (see
//! [`crate::names`]). Because this runs first, nothing the client sends can remove or
//! outvote what the gate adds in stage 5.

use http::header::{self, HeaderMap, HeaderName};

use crate::names::Names;

/// Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy ones): for one connection only.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

fn hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Standard end-to-end request fields (RFC 9110): a `Connection` token naming one is
/// ignored, not obeyed. Only extension fields a client marks as hop-by-hop go.
const END_TO_END: [HeaderName; 22] = [
    header::ACCEPT,
    header::ACCEPT_CHARSET,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::AUTHORIZATION,
    header::CACHE_CONTROL,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::COOKIE,
    header::EXPECT,
    header::HOST,
    header::IF_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_NONE_MATCH,
    header::IF_RANGE,
    header::IF_UNMODIFIED_SINCE,
    header::ORIGIN,
    header::RANGE,
    header::REFERER,
    header::USER_AGENT,
];

/// Whether a `Connection` token is ignored: it names a field the gate protects, or a
/// standard end-to-end field, whose removal would change how the upstream reads the
/// request.
fn kept(token: &HeaderName, names: &Names) -> bool {
    names.is_protected(token.as_str()) || END_TO_END.contains(token)
}

/// The names every `Connection` line lists — every line counts, not only the first.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes `names`, then the hop-by-hop fields, from `headers`.
fn remove(headers: &mut HeaderMap, names: Vec<HeaderName>) {
    for name in names.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// Removes hop-by-hop and refused fields from a request. One pass over the names, and no
/// hashing or allocation when there is nothing to remove.
pub fn sanitize(headers: &mut HeaderMap, names: &Names) {
    if !headers
        .keys()
        .any(|k| hop_by_hop(k) || names.is_refused(k.as_str()))
    {
        return;
    }
    let listed = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|t| !kept(t, names))
        .collect();
    remove(headers, listed);
    names.strip(headers);
}

/// Removes hop-by-hop fields from an upstream's response, with those its `Connection`
/// names.
pub fn sanitize_response(headers: &mut HeaderMap) {
    if !headers.keys().any(hop_by_hop) {
        return;
    }
    let listed = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    remove(headers, listed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeaderNames;
    use http::HeaderValue;

    fn map(lines: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in lines {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn connection_tokens_remove_hop_fields_but_never_what_the_gate_owns() {
        let names = Names::new(&HeaderNames::default());
        let mut h = map(&[
            ("connection", "close, x-hop, X-Client-CN, host"),
            (
                "connection",
                "X_Client_Roles, content-length, forwarded, Authorization",
            ),
            ("authorization", "Bearer t"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("host", "localhost"),
            ("content-length", "3"),
            ("accept", "*/*"),
            ("x-client-cn", "alice"),
        ]);
        sanitize(&mut h, &names);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort();
        assert_eq!(
            left,
            ["accept", "authorization", "content-length", "host"],
            "{h:?}"
        );
    }

    #[test]
    fn an_ordinary_request_is_left_alone() {
        let names = Names::new(&HeaderNames::default());
        let before = map(&[
            ("host", "localhost"),
            ("accept", "*/*"),
            ("user-agent", "curl"),
        ]);
        let mut h = before.clone();
        sanitize(&mut h, &names);
        assert_eq!(h, before);
    }

    #[test]
    fn responses_lose_hop_by_hop_fields() {
        let mut h = map(&[
            ("connection", "x-internal"),
            ("x-internal", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
        ]);
        sanitize_response(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
    }
}

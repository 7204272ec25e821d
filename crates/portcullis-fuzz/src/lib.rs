//! The oracles of Portcullis's fuzz targets, as plain functions. Each takes arbitrary bytes,
//! runs one parser or request stage on them, and panics when the result breaks what that
//! code promises — not only when it crashes. The libFuzzer targets in `fuzz/` are one-line
//! calls into these; `tests/replay.rs` runs them over the seed corpora ([`seeds`]) and
//! every input a fuzzer kept, on the stable toolchain, in the ordinary test run; and
//! `tests/regressions.rs` keeps each input that ever failed as a named test.
//!
//! See `docs/fuzzing.md` for how to run a target and what each oracle asserts.

// A fuzz oracle reports a broken promise by panicking; that is its whole job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod captures;
pub mod seeds;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue, Uri, Version};
use portcullis_gate::HeaderNames;
use portcullis_policy::{CanonicalPath, Condition, Decision, Identity, Policy, Request, path};

/// One fuzz target: its name (the file in `fuzz/fuzz_targets/`) and its oracle.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `docs/fuzzing.md` describes them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "path",
        run: path,
    },
    Target {
        name: "method",
        run: method,
    },
    Target {
        name: "headers",
        run: headers,
    },
    Target {
        name: "authority",
        run: authority,
    },
    Target {
        name: "policy",
        run: policy,
    },
    Target {
        name: "identity",
        run: identity,
    },
    Target {
        name: "crl",
        run: crl,
    },
    Target {
        name: "trust_files",
        run: trust_files,
    },
    Target {
        name: "config",
        run: config,
    },
    Target {
        name: "csr",
        run: csr,
    },
    Target {
        name: "inspect",
        run: inspect,
    },
    Target {
        name: "tls_reply",
        run: tls_reply,
    },
    Target {
        name: "capture",
        run: capture,
    },
    Target {
        name: "tls_records",
        run: tls_records,
    },
    Target {
        name: "explain",
        run: explain,
    },
    Target {
        name: "ticket_keys",
        run: ticket_keys,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

// === request path ===

/// Path canonicalization (SECURITY.md rule 2): the fast path and the full algorithm agree;
/// the output is a fixed point; and no accepted output holds what the rule forbids.
pub fn path(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let fast = path::canonicalize(input).map(|p| p.as_str().to_owned());
    let full = path::canonicalize_full(input);
    assert_eq!(
        fast, full,
        "fast path and full algorithm disagree on {input:?}"
    );
    let Ok(out) = full else {
        return;
    };
    let again = path::canonicalize(&out).unwrap_or_else(|e| panic!("{out:?} refused: {e}"));
    assert_eq!(again.as_str(), out, "not a fixed point: {input:?}");
    assert!(out.starts_with('/'), "{out:?}");
    let segments: Vec<&str> = out[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        assert!(
            !seg.is_empty() || last,
            "empty segment in {out:?} from {input:?}"
        );
        assert!(!matches!(*seg, "." | ".."), "dot segment in {out:?}");
        assert!(
            !seg.ends_with('.'),
            "trailing dot in {out:?} from {input:?}"
        );
        assert!(!seg.contains([';', '\\']), "{out:?}");
        let decoded = percent_decode(seg);
        let text = String::from_utf8(decoded).expect("escapes hold UTF-8");
        assert!(!text.contains(['/', '\\', '\0']), "{out:?} from {input:?}");
        assert!(
            !text.chars().any(char::is_control),
            "{out:?} from {input:?}"
        );
        if let Some(c) = text.chars().next_back() {
            assert!(
                !c.is_whitespace(),
                "trailing space in {out:?} from {input:?}"
            );
        }
        for c in ['\u{FF0F}', '\u{2215}', '\u{FF3C}', '\u{FF0E}', '\u{2024}'] {
            assert!(!text.contains(c), "look-alike {c:?} in {out:?}");
        }
    }
    // Escapes are upper-case and only for what may not stand raw.
    let b = out.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = &out[i + 1..i + 3];
            assert_eq!(
                hex,
                hex.to_ascii_uppercase(),
                "lower-case escape in {out:?}"
            );
            let v = u8::from_str_radix(hex, 16).unwrap();
            let may_stand_raw = v.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&v);
            assert!(!may_stand_raw, "{out:?} keeps %{hex} encoded");
            i += 3;
        } else {
            i += 1;
        }
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escape = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(v) = escape {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The method rule: a method is accepted exactly when upper-casing it changes nothing.
pub fn method(data: &[u8]) {
    let Ok(m) = std::str::from_utf8(data) else {
        return;
    };
    let canonical = !m.is_empty() && m.to_ascii_uppercase() == m;
    assert_eq!(
        portcullis_policy::method::check(m).is_ok(),
        canonical,
        "{m:?}"
    );
}

/// Builds a header map from `name: value` lines; lines that are not valid HTTP are
/// skipped, as hyper would refuse them before the gate sees them.
fn header_lines(text: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.split('\n') {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) {
            map.append(n, v);
        }
    }
    map
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "keep-alive",
    "proxy-connection",
];

/// Header integrity (rule 3): after the stage, no name the gate speaks for remains in any
/// spelling (judged by folding every non-alphanumeric character to `-`, as PHP and WSGI
/// do), no hop-by-hop field and no odd name remains; and without `Connection` lines every
/// other field is still there, all its values.
pub fn headers(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let cfg = HeaderNames {
        allow_underscores: flags & 1 == 1,
        strip: vec!["X-Remote-User".into()],
        ..HeaderNames::default()
    };
    let before = header_lines(text);
    let mut after = before.clone();
    portcullis_gate::fuzzing::sanitize(&mut after, &cfg);
    let fold = |n: &str| -> String {
        n.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b.to_ascii_lowercase())
                } else {
                    '-'
                }
            })
            .collect()
    };
    // Written out again from docs/gate.md, not taken from the gate: an oracle that shared
    // the implementation's list could not notice a name missing from it.
    let protected = |n: &str| {
        let f = fold(n);
        [
            "client-cert",
            "client-cert-chain",
            "forwarded",
            "x-forwarded",
            "x-real-ip",
            "x-client-ip",
            "client-ip",
            "true-client-ip",
            "x-cluster-client-ip",
            "cf-connecting-ip",
            "fastly-client-ip",
            "x-remote-user",
        ]
        .contains(&f.as_str())
            || f.starts_with("x-client-")
            || f.starts_with("x-forwarded-")
            || cfg.overrides.iter().any(|o| fold(o) == f)
    };
    let odd = |n: &str| {
        n.bytes().any(|b| {
            !(b.is_ascii_alphanumeric() || b == b'-' || (b == b'_' && cfg.allow_underscores))
        })
    };
    for name in after.keys() {
        let n = name.as_str();
        assert!(!protected(n), "{n} survived: {before:?}");
        assert!(!odd(n), "{n} survived: {before:?}");
        assert!(!HOP_BY_HOP.contains(&n), "{n} survived");
        assert!(
            portcullis_gate::fuzzing::is_protected(&cfg, n) == protected(n),
            "the stage and a folding application disagree about {n}"
        );
    }
    if !before.contains_key("connection") {
        for name in before.keys() {
            let n = name.as_str();
            if protected(n) || odd(n) || HOP_BY_HOP.contains(&n) {
                continue;
            }
            assert_eq!(
                before.get_all(name).iter().count(),
                after.get_all(name).iter().count(),
                "{n} lost: {before:?}"
            );
        }
    }
}

/// The names the authority target's site serves.
const SITE: [&str; 4] = ["localhost", "127.0.0.1", "::1", "api.example"];
const PORT: u16 = 8443;

/// Authority (rule 4): an accepted authority is one lower-case `host[:port]` with a host
/// the site serves, the SNI name when there is one, and the gate's port or 443.
pub fn authority(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "version|sni|target|host lines…", each part optional.
    let mut parts = text.split('|');
    let version = match parts.next() {
        Some("2") => Version::HTTP_2,
        Some("10") => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let sni = parts.next().filter(|s| !s.is_empty());
    let uri: Uri = parts
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    let mut headers = HeaderMap::new();
    for h in parts {
        if let Ok(v) = HeaderValue::from_str(h) {
            headers.append(http::header::HOST, v);
        }
    }
    let Ok((value, host)) =
        portcullis_gate::fuzzing::authority(version, &uri, &headers, sni, &SITE, PORT)
    else {
        return;
    };
    assert_eq!(value, value.to_ascii_lowercase(), "{text:?}");
    assert!(
        SITE.contains(&host.as_str()),
        "{host} accepted from {text:?}"
    );
    if let Some(sni) = sni {
        assert!(
            sni.eq_ignore_ascii_case(&host),
            "{host} on a connection for {sni}"
        );
    }
    let rest = if host.contains(':') {
        value.strip_prefix(&format!("[{host}]"))
    } else {
        value.strip_prefix(host.as_str())
    };
    let rest = rest.unwrap_or_else(|| panic!("{value:?} does not start with {host:?}"));
    match rest {
        "" => {}
        port => {
            let p: u16 = port
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("{value:?}: bad port part {port:?}"));
            assert!(p == PORT || p == 443, "{value:?}");
        }
    }
}

// === policy ===

/// A small language of rules read from bytes, so the fuzzer explores rule sets rather than
/// TOML syntax.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
}

const SEGMENTS: [&str; 4] = ["a", "b", "admin", "*"];
const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "HEAD"];

/// A pattern as text, and whether `path` (segments after the first `/`) matches it, by a
/// naive reading of docs/gate.md: literal segments equal, `*` one non-empty segment, a
/// final `**` anything below (including nothing and a trailing slash), `/` only the root.
fn naive_match(pattern: &[&str], rest: bool, path: &[&str]) -> bool {
    if pattern.is_empty() {
        // `/a` is not `/a/`; `/a/**` is both.
        return rest || path.is_empty();
    }
    match path.split_first() {
        None => false,
        Some((seg, more)) => {
            let ok = match pattern[0] {
                "*" => !seg.is_empty(),
                lit => lit == *seg,
            };
            ok && naive_match(&pattern[1..], rest, more)
        }
    }
}

/// The policy decision: the compiled matcher agrees with a naive first-match loop on
/// arbitrary rule sets, requests and callers.
pub fn policy(data: &[u8]) {
    let mut b = Bytes(data);
    let mut policy = Policy::new();
    policy
        .add_role("r0", vec![Condition::Ou("Zero".into())])
        .unwrap();
    policy
        .add_role("r1", vec![Condition::Ou("One".into())])
        .unwrap();
    struct Naive {
        segs: Vec<&'static str>,
        rest: bool,
        exact_root: bool,
        methods: Vec<&'static str>,
        require: u8,
    }
    let mut naive = Vec::new();
    let count = b.next().unwrap_or(0) % 6;
    for _ in 0..count {
        let shape = b.next().unwrap_or(0);
        let n = usize::from(shape % 3);
        let segs: Vec<&'static str> = (0..n)
            .map(|_| SEGMENTS[usize::from(b.next().unwrap_or(0) % 4)])
            .collect();
        let rest = shape & 0x10 != 0;
        let exact_root = n == 0 && !rest;
        let pattern = if exact_root {
            "/".to_owned()
        } else if n == 0 {
            "/**".to_owned()
        } else {
            format!("/{}{}", segs.join("/"), if rest { "/**" } else { "" })
        };
        let mbits = b.next().unwrap_or(0);
        let mut methods: Vec<&'static str> = METHODS
            .iter()
            .enumerate()
            .filter(|(i, _)| mbits & (1 << i) != 0)
            .map(|(_, m)| *m)
            .collect();
        let listed: Vec<String> = methods.iter().map(|m| (*m).to_owned()).collect();
        let require = b.next().unwrap_or(0) % 5;
        let req = match require {
            0 => policy.requirement("anonymous"),
            1 => policy.requirement("authenticated"),
            2 => policy.requirement("role:r0"),
            3 => policy.requirement("role:r1"),
            _ => policy.requirement("deny"),
        }
        .unwrap();
        policy.add_rule(&pattern, &listed, None, req).unwrap();
        // A rule about GET is about HEAD too (docs/gate.md).
        if methods.contains(&"GET") && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
        naive.push(Naive {
            segs,
            rest,
            exact_root,
            methods,
            require,
        });
    }
    let method = METHODS[usize::from(b.next().unwrap_or(0) % 4)];
    let shape = b.next().unwrap_or(0);
    let mut segs: Vec<&str> = (0..shape % 4)
        .map(|_| ["a", "b", "admin", "x"][usize::from(b.next().unwrap_or(0) % 4)])
        .collect();
    if shape & 0x10 != 0 {
        segs.push(""); // trailing slash
    }
    let path_text = if segs.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}", segs.join("/"))
    };
    let Ok(path) = path::canonicalize(&path_text) else {
        return;
    };
    let caller = b.next().unwrap_or(0);
    let who = (caller & 1 == 1).then(|| {
        let ous: Vec<String> = [(2, "Zero"), (4, "One")]
            .iter()
            .filter(|(bit, _)| caller & bit != 0)
            .map(|(_, ou)| (*ou).to_owned())
            .collect();
        policy.roles_of(
            &Identity {
                organizational_units: ous,
                ..Identity::default()
            },
            portcullis_policy::Timestamp::UNIX_EPOCH,
        )
    });
    let got = policy.decide(
        &Request::new(
            method,
            "localhost",
            &path,
            portcullis_policy::Timestamp::UNIX_EPOCH,
        ),
        who,
    );
    let segments: Vec<&str> = if path.as_str() == "/" {
        Vec::new()
    } else {
        path.segments().collect()
    };
    let want = naive.iter().enumerate().find_map(|(i, r)| {
        let method_ok = r.methods.is_empty() || r.methods.contains(&method);
        let path_ok = if r.exact_root {
            segments.is_empty()
        } else {
            naive_match(&r.segs, r.rest, &segments)
        };
        (method_ok && path_ok).then_some((i, r.require))
    });
    let roles = |bit: u8| caller & 1 == 1 && caller & bit != 0;
    let expected = match want {
        None => Decision::NoRule,
        Some((rule, require)) => match (require, caller & 1 == 1) {
            (0, _) => Decision::Allow { rule },
            (1, true) => Decision::Allow { rule },
            (2, true) if roles(2) => Decision::Allow { rule },
            (3, true) if roles(4) => Decision::Allow { rule },
            (1..=3, false) => Decision::Unauthenticated { rule },
            _ => Decision::Forbidden {
                rule,
                require: match got {
                    Decision::Forbidden { require, .. } => require,
                    _ => panic!("{path_text} {method}: got {got:?}, want forbidden by rule {rule}"),
                },
            },
        },
    };
    assert_eq!(got, expected, "{path_text} {method} caller {caller:#x}");
    let _: &CanonicalPath<'_> = &path;
}

// === certificates and TLS ===

/// Identity from a client certificate: never a panic, and an identity never carries a
/// control character in any field the gate reads or forwards.
pub fn identity(data: &[u8]) {
    let Ok(id) = Identity::from_der(data) else {
        return;
    };
    let fields = id
        .common_name
        .iter()
        .chain(&id.emails)
        .chain(&id.organizations)
        .chain(&id.organizational_units)
        .chain(&id.dns_sans)
        .chain(&id.email_sans)
        .chain(&id.uri_sans)
        .chain([&id.subject, &id.issuer]);
    for f in fields {
        assert!(
            !f.chars().any(char::is_control),
            "control character in {f:?}"
        );
    }
}

/// A root certificate for the CRL target's verifier, made once.
fn root_der() -> &'static rustls::pki_types::CertificateDer<'static> {
    static ROOT: OnceLock<rustls::pki_types::CertificateDer<'static>> = OnceLock::new();
    ROOT.get_or_init(|| seeds::fixtures().root.clone().into())
}

/// CRL loading as the gate does it: x509-parser reads the dates, rustls/webpki builds the
/// client verifier with the CRL. Neither may panic on any bytes.
pub fn crl(data: &[u8]) {
    let _ = x509_parser::parse_x509_crl(data);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root_der().clone()).unwrap();
    let _ = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls([rustls::pki_types::CertificateRevocationListDer::from(
            data.to_vec(),
        )])
        .build();
}

/// The client-CA and CRL files as the gate loads them (PEM or DER), and the verifier built
/// from them: never a panic. Input: a 2-byte big-endian length, the CA file, the CRL file.
pub fn trust_files(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (ca, crl) = rest.split_at(split);
    let _ = portcullis_gate::fuzzing::trust_files(ca, crl);
}

/// The TLS reply the doctor reads from a server: classified without a panic, and a
/// preview of non-TLS bytes stays short.
pub fn tls_reply(data: &[u8]) {
    use portcullis_doctor::observe::RawResponse;
    use portcullis_doctor::raw::{Ended, classify};
    if let RawResponse::NotTls { preview } = classify(data, Ended::Eof) {
        assert!(preview.len() <= 64 * 4, "{preview}");
    }
}

/// Small bounds, so that fuzz inputs of a few kilobytes reach every one of them.
const SMALL: portcullis_doctor::capture::tcp::Limits = portcullis_doctor::capture::tcp::Limits {
    keep: 600,
    pending: 300,
    global: 2000,
    max_flows: 6,
};

/// `doctor capture` of any file: never a panic; the reassembler's accounting is right and
/// within its bounds after every segment (under small bounds, so the input reaches them);
/// no connection has more bytes than the input; and the whole reading and judging with
/// the real bounds does not panic either.
pub fn capture(data: &[u8]) {
    use portcullis_doctor::capture::{self, reader, tcp, tls};
    let mut r = tcp::Reassembler::with_limits(SMALL);
    let mut conns = Vec::new();
    let _ = reader::read(data, |seg| {
        assert!(seg.payload.len() <= data.len());
        r.segment(seg, &mut |c| conns.push(c));
        assert_eq!(r.held(), r.accounted(), "the global budget lost count");
        assert!(r.held() <= SMALL.global, "{} bytes held", r.held());
        let (keep, pending) = r.largest();
        assert!(
            keep <= SMALL.keep && pending <= SMALL.pending,
            "{keep} kept, {pending} pending"
        );
        assert!(r.open() <= SMALL.max_flows);
    });
    r.finish(&mut |c| conns.push(c));
    let mut total = 0u64;
    for c in conns {
        for s in [&c.up, &c.down] {
            assert!(s.data.len() <= SMALL.keep);
            assert!(s.data.len() as u64 <= s.total);
            total += s.total;
        }
        if let Some(t) = tls::analyze(c) {
            tls_bounds(&t);
        }
    }
    assert!(
        total <= data.len() as u64,
        "{total} stream bytes from a {}-byte file",
        data.len()
    );
    if let Ok(x) = capture::extract(data) {
        let n = x.conns.len();
        for c in &x.conns {
            assert!(c.tcp.up.total + c.tcp.down.total <= data.len() as u64);
        }
        let report = capture::judge(x, "fuzz", &pinned_nothing());
        assert_eq!(report.connections.len(), n);
        assert_eq!(report.summary.healthy + report.summary.problems, n);
    }
}

/// `--ca` with no certificate: a chain is judged without loading this machine's store
/// for every input.
fn pinned_nothing() -> portcullis_doctor::capture::Options {
    portcullis_doctor::capture::Options {
        ca: Some(Vec::new()),
        ca_files: Vec::new(),
        keylog: None,
    }
}

/// What one side's TLS may hold, whatever the bytes.
fn tls_bounds(t: &portcullis_doctor::capture::tls::TlsConn) {
    use portcullis_doctor::capture::tls::{MAX_LIST, MAX_RECORDS};
    for (side, stream) in [(&t.client, &t.tcp.up), (&t.server, &t.tcp.down)] {
        assert!(side.hellos.len() <= 4 && side.server_hellos.len() <= 4);
        for h in &side.hellos {
            for len in [
                h.suites.len(),
                h.groups.len(),
                h.signature_algorithms.len(),
                h.alpn.len(),
            ] {
                assert!(len <= MAX_LIST, "a list of {len}");
            }
        }
        if let Some((_, chain)) = &side.chain {
            assert!(chain.len() <= 16);
        }
        let records = side.alerts.len() + side.encrypted.len() + side.encrypted_handshake.len();
        assert!(records <= MAX_RECORDS);
        let sealed: usize = side
            .encrypted
            .iter()
            .chain(&side.encrypted_handshake)
            .map(|r| r.0)
            .sum();
        assert!(
            sealed <= stream.data.len(),
            "{sealed} encrypted bytes in a {}-byte stream",
            stream.data.len()
        );
    }
}

/// The TLS record and handshake reader on two streams (a 2-byte big-endian length, the
/// client's bytes, the server's): never a panic, every list and count within its bound,
/// and the connection judged (facts, causes, findings) without a panic.
pub fn tls_records(data: &[u8]) {
    use portcullis_doctor::capture::{self, tcp, tls};
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (up, down) = rest.split_at(split);
    let stream = |bytes: &[u8], t: u64| tcp::Stream {
        data: bytes.to_vec(),
        total: bytes.len() as u64,
        // A mark every 7 bytes: records end at different times.
        marks: (1..=bytes.len().div_ceil(7) as u64)
            .map(|i| ((i * 7).min(bytes.len() as u64), t + i))
            .collect(),
        fin: Some((t + 10_000, bytes.len() as u64)),
        ..Default::default()
    };
    let conn = tcp::Conn {
        client: "192.0.2.1:40000".parse().unwrap(),
        server: "192.0.2.2:443".parse().unwrap(),
        syn_seen: true,
        synack_seen: true,
        start_us: 0,
        end_us: 20_000,
        up: stream(up, 1),
        down: stream(down, 2),
    };
    let Some(t) = tls::analyze(conn) else {
        return;
    };
    tls_bounds(&t);
    let _ = capture::facts(&t);
    let x = capture::Extracted {
        conns: vec![t],
        other_tcp_connections: 0,
        untracked_connections: 0,
        unjudged_connections: 0,
        clipped_connections: 0,
        read: Default::default(),
    };
    let report = capture::judge(x, "fuzz", &pinned_nothing());
    let c = &report.connections[0];
    assert!(c.cause == "ok" || c.findings.iter().any(|f| f.cause == c.cause));
}

// === configuration and files ===

/// Config parsing: TOML in, never a panic, and every error says where (a line or a key).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/portcullis.toml");
    let no_hosts = |p: &Path| {
        Err(portcullis_gate::ConfigError {
            file: p.to_owned(),
            line: 0,
            key: None,
            message: "host files are not read while fuzzing".into(),
        })
    };
    if let Err(e) = portcullis_gate::Config::parse(text, path, no_hosts) {
        assert!(
            e.line > 0 || e.key.is_some(),
            "an error that says neither line nor key: {e}"
        );
    }
}

/// CSR reading, under both profiles: never a panic.
pub fn csr(data: &[u8]) {
    let path = Path::new("fuzz.csr");
    for kind in [portcullis_pki::Kind::Client, portcullis_pki::Kind::Server] {
        let _ = portcullis_pki::csr::read(data, path, kind);
    }
}

/// `pki inspect` of any file — PEM, DER, PKCS#12 (with a password) — never a panic, and a
/// report never holds key material.
pub fn inspect(data: &[u8]) {
    let pass = portcullis_pki::Passphrase::new(seeds::P12_PASSWORD.into(), "fuzz").unwrap();
    if let Ok(report) =
        portcullis_pki::inspect::inspect_bytes(data, Path::new("fuzz.pem"), Some(&pass))
    {
        let text = format!("{report:?}");
        assert!(
            !text.contains("PRIVATE KEY-----"),
            "key material in a report"
        );
    }
}

/// Advice that turns certificate verification off, in the spellings people copy.
const INSECURE: [&str; 8] = [
    "rejectunauthorized: false",
    "node_tls_reject_unauthorized=0",
    "curl -k",
    "--insecure",
    "verify=false",
    "danger_accept_invalid",
    "insecureskipverify: true",
    "cert_none",
];

/// `doctor explain`: never a panic, and its fix never turns verification off, whatever it
/// is asked.
pub fn explain(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(e) = portcullis_doctor::explain::explain(text) {
        let mut fix = e.fix.to_lowercase();
        for f in &e.fixes {
            fix.push_str(&format!(" {} {}", f.summary, f.snippet).to_lowercase());
        }
        for bad in INSECURE {
            assert!(!fix.contains(bad), "explain({text:?}) advises {bad:?}");
        }
    }
}

/// The shared ticket-key file: any text, never a panic.
pub fn ticket_keys(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = portcullis_gate::fuzzing::ticket_keys(text);
    }
}

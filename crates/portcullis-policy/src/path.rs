//! Request-path canonicalization (SECURITY.md rule 2).
//!
//! The policy is matched on the canonical path and the upstream receives exactly that
//! path, so the gate and the application cannot disagree about what was requested. Input
//! that has more than one plausible reading is refused instead of guessed at:
//!
//! | input | result |
//! | --- | --- |
//! | `%61dmin`, `%7E`, `%3A`, `%40` (percent-encoded characters allowed raw in a path) | decoded: `admin`, `~`, `:`, `@` |
//! | `/a/./b`, `/a/x/../b`, `//a//b` | `/a/b` |
//! | `%2F`, `%5C`, `\`, `%00`, control bytes, raw spaces | rejected |
//! | `..` above `/` | rejected |
//! | `;` (path parameters: `/admin;x` is `/admin` to Tomcat and Spring) | rejected |
//! | a segment ending in `.` (`/admin.` is `/admin` to IIS) | rejected |
//! | a segment ending in a space, encoded (`%20`, `%C2%A0`, `%E3%80%80`…) | rejected |
//! | look-alikes of `/`, `\` and `.` (`%EF%BC%8F` U+FF0F, `%E2%88%95` U+2215, `%EF%BC%8E` U+FF0E…) | rejected |
//! | invalid or overlong UTF-8 in `%XX` sequences | rejected |
//! | other `%XX` (`%20`, `%C3%A9`, `%25`) | kept encoded, hex in capitals |
//!
//! Matching is case-sensitive: `/ADMIN` is not `/admin`.

use std::borrow::Cow;
use std::fmt;

/// Why a request target was refused (the gate answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotOriginForm,
    #[error("the path contains an encoded slash (%2F)")]
    EncodedSlash,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains a NUL or control character")]
    ControlCharacter,
    #[error("the path contains a raw space or non-ASCII byte")]
    RawByte,
    #[error("the path contains an invalid percent-escape")]
    BadEscape,
    #[error("the path contains invalid or overlong UTF-8")]
    BadUtf8,
    #[error("the path climbs above '/'")]
    AboveRoot,
    #[error("the path contains ';' (path parameters are read differently by different servers)")]
    Semicolon,
    #[error("a path segment ends with '.', which some servers strip")]
    TrailingDot,
    #[error("a path segment ends with a space, which some servers strip")]
    TrailingSpace,
    #[error(
        "the path contains a look-alike of '/', '\\' or '.' (such as U+FF0F), which some servers fold into the real one"
    )]
    LookAlike,
}

/// A canonical path: starts with `/`, no `.`/`..`/empty segments, a trailing slash only
/// where the request had one. Borrows the request's path when it already was canonical,
/// which is almost always: the common case allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath<'a>(Cow<'a, str>);

impl<'a> CanonicalPath<'a> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as text: borrowed from the request when it already was canonical.
    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }

    /// The segments after the leading `/`; a trailing slash yields a final empty segment.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0[1..].split('/')
    }
}

impl fmt::Display for CanonicalPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters allowed raw in a path segment (RFC 3986 `pchar` minus `%` and `;`, which
/// are handled separately).
pub(crate) fn is_pchar(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        )
}

/// Whether `path` is already canonical: only plain `pchar`s, and no empty, `.` or `..`
/// segment nor one ending in `.` (an empty last segment is a trailing slash, kept).
fn already_canonical(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if seg.is_empty() {
            if !last {
                return false;
            }
            continue;
        }
        if seg.ends_with('.') || !seg.bytes().all(is_pchar) {
            return false;
        }
    }
    true
}

/// Canonicalizes the path part of a request target (no query string).
pub fn canonicalize(path: &str) -> Result<CanonicalPath<'_>, PathError> {
    if already_canonical(path) {
        return Ok(CanonicalPath(Cow::Borrowed(path)));
    }
    canonicalize_slow(path).map(|p| CanonicalPath(Cow::Owned(p)))
}

/// The full algorithm, without the fast path that borrows already-canonical input: for
/// differential tests (the fuzz targets check the two agree). Use [`canonicalize`].
pub fn canonicalize_full(path: &str) -> Result<String, PathError> {
    canonicalize_slow(path)
}

fn canonicalize_slow(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    // Decode segment by segment into `out`, then resolve dot segments.
    let mut segments: Vec<String> = Vec::new();
    let trailing_slash = bytes.len() > 1 && bytes.ends_with(b"/");
    for raw in path[1..].split('/') {
        let seg = decode_segment(raw.as_bytes())?;
        check_characters(&seg)?;
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s if s.ends_with('.') => return Err(PathError::TrailingDot),
            _ => segments.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || (trailing_slash && !segments.is_empty()) {
        out.push('/');
    }
    // A final `..` or `.` also means "the directory": `/a/b/..` is `/a/`.
    if !segments.is_empty()
        && !out.ends_with('/')
        && matches!(path.rsplit('/').next(), Some(last) if matches!(decode_segment(last.as_bytes()).as_deref(), Ok(".") | Ok("..")))
    {
        out.push('/');
    }
    Ok(out)
}

/// Characters that Unicode compatibility normalization (NFKC), Windows "best fit" mapping
/// or IIS fold into `/`, `\` or `.`: a server behind the gate may read them as path syntax.
const LOOK_ALIKES: [char; 16] = [
    '\u{FF0F}', // FULLWIDTH SOLIDUS
    '\u{2215}', // DIVISION SLASH
    '\u{2044}', // FRACTION SLASH
    '\u{29F8}', // BIG SOLIDUS
    '\u{FE68}', // SMALL REVERSE SOLIDUS
    '\u{FF3C}', // FULLWIDTH REVERSE SOLIDUS
    '\u{2216}', // SET MINUS
    '\u{29F5}', // REVERSE SOLIDUS OPERATOR
    '\u{29F9}', // BIG REVERSE SOLIDUS
    '\u{FF0E}', // FULLWIDTH FULL STOP
    '\u{2024}', // ONE DOT LEADER
    '\u{2025}', // TWO DOT LEADER
    '\u{2026}', // HORIZONTAL ELLIPSIS
    '\u{FE52}', // SMALL FULL STOP
    '\u{3002}', // IDEOGRAPHIC FULL STOP
    '\u{FF61}', // HALFWIDTH IDEOGRAPHIC FULL STOP
];

/// Zero-width characters some servers trim like spaces.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}'
    )
}

/// Refuses a decoded segment (escapes left as `%XX`) that another server may read
/// differently: a look-alike of `/`, `\` or `.` anywhere, or a space (any Unicode
/// whitespace or zero-width character) at the end. Only the slow path gets here: the fast
/// path admits no `%` and no space at all.
fn check_characters(seg: &str) -> Result<(), PathError> {
    if !seg.contains('%') {
        return Ok(());
    }
    // Decode every escape; `decode_segment` has already checked the UTF-8.
    let mut bytes = Vec::with_capacity(seg.len());
    let raw = seg.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        match (
            raw[i],
            raw.get(i + 1).copied().and_then(hex_val),
            raw.get(i + 2).copied().and_then(hex_val),
        ) {
            (b'%', Some(h), Some(l)) => {
                bytes.push(h << 4 | l);
                i += 3;
            }
            (b, _, _) => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| PathError::BadUtf8)?;
    // C1 controls (U+0080–U+009F, such as NEL) are controls too, however they are encoded.
    if text.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    if text.chars().any(|c| LOOK_ALIKES.contains(&c)) {
        return Err(PathError::LookAlike);
    }
    match text.chars().next_back() {
        Some(c) if c.is_whitespace() || is_invisible(c) => Err(PathError::TrailingSpace),
        _ => Ok(()),
    }
}

/// Decodes one segment: unreserved escapes become characters, other escapes stay escaped
/// (upper-case hex) after checking they form valid UTF-8.
fn decode_segment(raw: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    // Bytes of a pending multi-byte UTF-8 sequence given as escapes, validated as a whole.
    let mut pending: Vec<u8> = Vec::new();
    let flush = |pending: &mut Vec<u8>, out: &mut String| -> Result<(), PathError> {
        if pending.is_empty() {
            return Ok(());
        }
        // `from_utf8` refuses overlong forms, surrogates and truncated sequences.
        std::str::from_utf8(pending).map_err(|_| PathError::BadUtf8)?;
        for b in pending.iter() {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
        pending.clear();
        Ok(())
    };
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex_val),
                raw.get(i + 2).copied().and_then(hex_val),
            ) else {
                return Err(PathError::BadEscape);
            };
            let v = h << 4 | l;
            i += 3;
            match v {
                b'/' => return Err(PathError::EncodedSlash),
                b'\\' => return Err(PathError::Backslash),
                0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                0x80..=0xff => {
                    pending.push(v);
                    continue;
                }
                _ => {}
            }
            flush(&mut pending, &mut out)?;
            // Every character that may stand raw in a path is decoded: WSGI, Go, Spring and
            // others decode `%3A` before routing, so `/items%3Apurge` is `/items:purge`.
            if is_pchar(v) {
                out.push(char::from(v));
            } else if v == b';' {
                // Encoded, `;` is data, not a parameter delimiter: keep it encoded.
                out.push_str("%3B");
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(v >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(v & 15)]));
            }
            continue;
        }
        flush(&mut pending, &mut out)?;
        match b {
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            b';' => return Err(PathError::Semicolon),
            _ if is_pchar(b) => out.push(char::from(b)),
            _ => return Err(PathError::RawByte),
        }
        i += 1;
    }
    flush(&mut pending, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        canonicalize(input)
            .unwrap_or_else(|e| panic!("{input:?} rejected: {e}"))
            .as_str()
            .to_owned()
    }

    /// Every string up to 6 characters over an alphabet of the characters that matter:
    /// wherever the fast path says "already canonical", the full algorithm agrees.
    #[test]
    fn fast_path_agrees_with_the_full_algorithm() {
        let alphabet = ['/', 'a', '.', '%', '2', 'f', ';', 'A', '~', ' '];
        let mut frontier = vec![String::new()];
        let mut checked = 0;
        for _ in 0..6 {
            let mut next = Vec::new();
            for s in &frontier {
                for c in alphabet {
                    let t = format!("{s}{c}");
                    if already_canonical(&t) {
                        assert_eq!(canonicalize_slow(&t).as_deref(), Ok(t.as_str()), "{t:?}");
                        checked += 1;
                    }
                    next.push(t);
                }
            }
            frontier = next;
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn canonical_input_is_borrowed() {
        for p in ["/", "/admin", "/admin/", "/a/b/c", "/x:y@z"] {
            assert!(
                matches!(canonicalize(p).unwrap().0, Cow::Borrowed(_)),
                "{p}"
            );
        }
        for p in ["//a", "/a/./b", "/%61", "/a/"] {
            let c = canonicalize(p).unwrap();
            assert_eq!(matches!(c.0, Cow::Borrowed(_)), p == "/a/", "{p}");
        }
    }

    #[test]
    fn normal_paths_are_unchanged() {
        for p in [
            "/",
            "/admin",
            "/admin/",
            "/a/b/c",
            "/a-b_c~d.e/f",
            "/x:y@z!$&'()*+,=",
        ] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn dots_and_double_slashes_resolve() {
        assert_eq!(ok("/admin/../admin"), "/admin");
        assert_eq!(ok("/a/./b"), "/a/b");
        assert_eq!(ok("//admin"), "/admin");
        assert_eq!(ok("/admin//x///"), "/admin/x/");
        assert_eq!(ok("/a/b/.."), "/a/");
        assert_eq!(ok("/a/."), "/a/");
    }

    #[test]
    fn climbing_above_root_is_refused() {
        assert_eq!(canonicalize("/../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(canonicalize("/a/../../b"), Err(PathError::AboveRoot));
        assert_eq!(canonicalize("/%2e%2e/x"), Err(PathError::AboveRoot));
    }

    #[test]
    fn unreserved_escapes_decode_and_others_stay() {
        assert_eq!(ok("/%61dmin"), "/admin");
        assert_eq!(ok("/%7euser"), "/~user");
        assert_eq!(ok("/hello%20world"), "/hello%20world");
        assert_eq!(ok("/%20x"), "/%20x");
        assert_eq!(ok("/caf%C3%A9/%E6%97%A5"), "/caf%C3%A9/%E6%97%A5");
        assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(ok("/100%25"), "/100%25");
        assert_eq!(ok("/a%3bb"), "/a%3Bb");
        // Sub-delimiters, ':' and '@' read the same raw or encoded to most applications.
        assert_eq!(ok("/v1/items%3Apurge"), "/v1/items:purge");
        assert_eq!(ok("/users/%40me/keys"), "/users/@me/keys");
        assert_eq!(ok("/%21%24%26%27%28%29%2A%2B%2C%3D"), "/!$&'()*+,=");
        assert_eq!(ok("/a%3F%23"), "/a%3F%23");
    }

    #[test]
    fn ambiguous_input_is_refused() {
        let cases = [
            ("/admin%2f", PathError::EncodedSlash),
            ("/admin%2Fx", PathError::EncodedSlash),
            ("/admin%5cx", PathError::Backslash),
            ("/admin\\x", PathError::Backslash),
            ("/admin%00", PathError::ControlCharacter),
            ("/admin%0a", PathError::ControlCharacter),
            ("/admin\u{1}", PathError::ControlCharacter),
            ("/admin;x", PathError::Semicolon),
            ("/admin;jsessionid=1/x", PathError::Semicolon),
            ("/admin.", PathError::TrailingDot),
            ("/admin../x", PathError::TrailingDot),
            ("/admin%2e", PathError::TrailingDot),
            ("/a b", PathError::RawByte),
            ("/caf\u{e9}", PathError::RawByte),
            ("/%zz", PathError::BadEscape),
            ("/%4", PathError::BadEscape),
            ("/%c0%af", PathError::BadUtf8),
            ("/%e0%80%af", PathError::BadUtf8),
            ("/%c3", PathError::BadUtf8),
            ("/%ed%a0%80", PathError::BadUtf8),
            ("/admin%20/x", PathError::TrailingSpace),
            ("/cP%C2%89", PathError::ControlCharacter),
            ("/a%C2%85b", PathError::ControlCharacter),
            ("/admin%20", PathError::TrailingSpace),
            ("/a%09", PathError::ControlCharacter),
            ("/admin%C2%A0/x", PathError::TrailingSpace),
            ("/admin%E3%80%80", PathError::TrailingSpace),
            ("/admin%E2%80%8A", PathError::TrailingSpace),
            ("/admin%E2%80%8B", PathError::TrailingSpace),
            ("/admin%EF%BB%BF", PathError::TrailingSpace),
            ("/admin%2E%20/x", PathError::TrailingSpace),
            ("/a%EF%BC%8Fb", PathError::LookAlike),
            ("/a%E2%88%95b", PathError::LookAlike),
            ("/a%E2%81%84b", PathError::LookAlike),
            ("/a%EF%BC%BCb", PathError::LookAlike),
            ("/x%EF%BC%8E", PathError::LookAlike),
            ("/%EF%BC%8E%EF%BC%8E/admin", PathError::LookAlike),
            ("/x%E2%80%A4y", PathError::LookAlike),
            ("admin", PathError::NotOriginForm),
            ("*", PathError::NotOriginForm),
        ];
        for (input, want) in cases {
            assert_eq!(canonicalize(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn case_is_preserved() {
        assert_eq!(ok("/ADMIN"), "/ADMIN");
    }
}

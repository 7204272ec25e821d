//! `portcullis doctor explain "TEXT"`: offline, maps an error string or code from Node.js,
//! OpenSSL, curl, rustls, Go, Java or Python to the cause.

use serde::Serialize;

use crate::causes;

/// What an error message means.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Explanation {
    pub input: String,
    pub cause: String,
    /// The pattern that matched, normalized.
    pub matched: String,
    pub what: String,
    pub fix: String,
    /// When the same text has several possible causes, what tells them apart.
    pub note: Option<String>,
}

const AMBIGUOUS_UNKNOWN_ISSUER: &str = "rustls, Go and Java report a self-signed leaf, a missing \
    intermediate and an untrusted root alike; run `portcullis doctor HOST` to tell which.";
const AMBIGUOUS_RESET: &str = "a reset right after the ClientHello is often a server that needs \
    SNI (try --servername NAME) or an old server; run `portcullis doctor HOST`.";
const AMBIGUOUS_HANDSHAKE_FAILURE: &str = "alert 40 also means a missing client certificate on \
    TLS 1.2 servers; run `portcullis doctor HOST` to see whether a certificate was requested.";

const AMBIGUOUS_ABORTED_HANDSHAKE: &str = "curl prints this when the server ends the \
    handshake without saying why. Most often the server requires a client certificate and none \
    was sent (a Node.js server with `requestCert: true` and `rejectUnauthorized: true`): pass \
    --cert and --key. Otherwise client and server have no TLS version in common. Run \
    `portcullis doctor HOST` to tell which: it shows whether the server asked for a \
    certificate and which TLS versions it speaks.";

/// (pattern, cause, note). Patterns are matched against the normalized input (lowercase,
/// `_` and `-` as spaces); more specific patterns come first.
const PATTERNS: &[(&str, &str, Option<&str>)] = &[
    // local key problems
    ("key values mismatch", "client-key-mismatch", None),
    ("inconsistentkeys", "client-key-mismatch", None),
    ("private key does not match", "client-key-mismatch", None),
    ("bad decrypt", "client-key-passphrase", None),
    ("bad password read", "client-key-passphrase", None),
    // certificates, most specific first
    (
        "self signed certificate in certificate chain",
        "untrusted-root",
        None,
    ),
    ("self signed cert in chain", "untrusted-root", None),
    ("depth zero self signed cert", "self-signed", None),
    ("self signed certificate", "self-signed", None),
    (
        "unable to verify the first certificate",
        "missing-intermediate",
        None,
    ),
    (
        "unable to verify leaf signature",
        "missing-intermediate",
        None,
    ),
    (
        "unable to get issuer cert locally",
        "untrusted-root",
        Some(AMBIGUOUS_UNKNOWN_ISSUER),
    ),
    (
        "unable to get local issuer certificate",
        "untrusted-root",
        Some(AMBIGUOUS_UNKNOWN_ISSUER),
    ),
    (
        "pkix path building failed",
        "untrusted-root",
        Some(AMBIGUOUS_UNKNOWN_ISSUER),
    ),
    (
        "unable to find valid certification path",
        "untrusted-root",
        Some(AMBIGUOUS_UNKNOWN_ISSUER),
    ),
    (
        "certificate signed by unknown authority",
        "untrusted-root",
        Some(AMBIGUOUS_UNKNOWN_ISSUER),
    ),
    (
        "unknownissuer",
        "untrusted-root",
        Some(AMBIGUOUS_UNKNOWN_ISSUER),
    ),
    ("relies on legacy common name", "cn-only-no-san", None),
    ("err tls cert altname invalid", "hostname-mismatch", None),
    (
        "does not match certificate's altnames",
        "hostname-mismatch",
        None,
    ),
    (
        "no alternative certificate subject name matches",
        "hostname-mismatch",
        None,
    ),
    ("hostname mismatch", "hostname-mismatch", None),
    ("notvalidforname", "hostname-mismatch", None),
    ("certnotvalidforname", "hostname-mismatch", None),
    (
        "no subject alternative names matching",
        "hostname-mismatch",
        None,
    ),
    (
        "no subject alternative dns name matching",
        "hostname-mismatch",
        None,
    ),
    ("no name matching", "hostname-mismatch", None),
    ("certificate is valid for", "hostname-mismatch", None),
    ("doesn't match", "hostname-mismatch", None),
    ("cert has expired", "expired", None),
    ("certificate has expired", "expired", None),
    ("certificateexpiredexception", "expired", None),
    ("certexpired", "expired", None),
    ("invalid peer certificate: expired", "expired", None),
    ("cert not yet valid", "not-yet-valid", None),
    ("certificate is not yet valid", "not-yet-valid", None),
    ("certificatenotyetvalidexception", "not-yet-valid", None),
    ("notvalidyet", "not-yet-valid", None),
    ("ca md too weak", "weak-signature", None),
    ("insecure algorithm", "weak-signature", None),
    ("unsupportedsignaturealgorithm", "weak-signature", None),
    ("ee key too small", "weak-key", None),
    ("key too small", "weak-key", None),
    ("invalid purpose", "wrong-purpose", None),
    ("unsupported certificate purpose", "wrong-purpose", None),
    ("requiredekunotfound", "wrong-purpose", None),
    ("caused as end entity", "wrong-purpose", None),
    ("causedasendentity", "wrong-purpose", None),
    ("incompatible key usage", "wrong-purpose", None),
    // client certificates
    ("certificate required", "client-cert-required", None),
    ("certificaterequired", "client-cert-required", None),
    (
        "peer did not return a certificate",
        "client-cert-required",
        None,
    ),
    (
        "unknown ssl protocol error",
        "client-cert-required",
        Some(AMBIGUOUS_ABORTED_HANDSHAKE),
    ),
    ("alert unknown ca", "client-cert-rejected", None),
    ("unknownca", "client-cert-rejected", None),
    ("alert bad certificate", "client-cert-rejected", None),
    ("tls: bad certificate", "client-cert-rejected", None),
    ("fatal alert: bad certificate", "client-cert-rejected", None),
    ("badcertificate", "client-cert-rejected", None),
    ("alert certificate unknown", "client-cert-rejected", None),
    ("alert certificate revoked", "client-cert-rejected", None),
    ("alert certificate expired", "client-cert-rejected", None),
    // protocol
    ("no application protocol", "alpn-mismatch", None),
    ("noapplicationprotocol", "alpn-mismatch", None),
    ("unrecognized name", "sni-unrecognized", None),
    ("unrecognisedname", "sni-unrecognized", None),
    ("wrong version number", "not-tls", None),
    ("invalidcontenttype", "not-tls", None),
    (
        "first record does not look like a tls handshake",
        "not-tls",
        None,
    ),
    ("unsupported or unrecognized ssl message", "not-tls", None),
    ("http response to https client", "not-tls", None),
    ("packet length too long", "not-tls", None),
    ("unsupported protocol", "protocol-version-mismatch", None),
    ("alert protocol version", "protocol-version-mismatch", None),
    ("protocolversion", "protocol-version-mismatch", None),
    ("no protocols available", "protocol-version-mismatch", None),
    ("no appropriate protocol", "protocol-version-mismatch", None),
    ("peer is incompatible", "protocol-version-mismatch", None),
    (
        "unsupported protocol version",
        "protocol-version-mismatch",
        None,
    ),
    ("no shared cipher", "no-shared-cipher", None),
    ("no cipher suites in common", "no-shared-cipher", None),
    ("insufficient security", "no-shared-cipher", None),
    (
        "alert handshake failure",
        "no-shared-cipher",
        Some(AMBIGUOUS_HANDSHAKE_FAILURE),
    ),
    (
        "fatal alert: handshake failure",
        "no-shared-cipher",
        Some(AMBIGUOUS_HANDSHAKE_FAILURE),
    ),
    (
        "handshakefailure",
        "no-shared-cipher",
        Some(AMBIGUOUS_HANDSHAKE_FAILURE),
    ),
    ("handshake timeout", "handshake-timeout", None),
    ("handshake timed out", "handshake-timeout", None),
    (
        "socket disconnected before secure tls connection",
        "reset-after-client-hello",
        Some(AMBIGUOUS_RESET),
    ),
    (
        "remote host terminated the handshake",
        "reset-after-client-hello",
        Some(AMBIGUOUS_RESET),
    ),
    (
        "eof occurred in violation of protocol",
        "reset-after-client-hello",
        Some(AMBIGUOUS_RESET),
    ),
    (
        "unexpected eof",
        "reset-after-client-hello",
        Some(AMBIGUOUS_RESET),
    ),
    (
        "econnreset",
        "reset-after-client-hello",
        Some(AMBIGUOUS_RESET),
    ),
    (
        "connection reset by peer",
        "reset-after-client-hello",
        Some(AMBIGUOUS_RESET),
    ),
    // network
    ("enotfound", "dns-failure", None),
    ("could not resolve host", "dns-failure", None),
    ("no such host", "dns-failure", None),
    ("name or service not known", "dns-failure", None),
    ("unknownhostexception", "dns-failure", None),
    ("nodename nor servname", "dns-failure", None),
    ("econnrefused", "tcp-refused", None),
    ("connection refused", "tcp-refused", None),
    ("etimedout", "tcp-timeout", None),
    ("connection timed out", "tcp-timeout", None),
    ("i/o timeout", "tcp-timeout", None),
    ("connect timed out", "tcp-timeout", None),
    // curl exit codes, as curl prints them
    ("curl: (6)", "dns-failure", None),
    ("curl: (7)", "tcp-refused", None),
    ("curl: (28)", "tcp-timeout", None),
    (
        "curl: (60)",
        "untrusted-root",
        Some(AMBIGUOUS_UNKNOWN_ISSUER),
    ),
    // generic verification failures last
    (
        "certificate verify failed",
        "untrusted-root",
        Some(AMBIGUOUS_UNKNOWN_ISSUER),
    ),
];

/// The usual advice to switch verification off. Asked about it, the doctor explains why
/// not and what to do instead (pin the CA); it never repeats it.
const TURN_OFF_VERIFICATION: &[&str] = &[
    "rejectunauthorized",
    "node tls reject unauthorized",
    "danger accept invalid",
    "insecureskipverify",
    "verify=false",
    "verify = false",
    "cert none",
    "check hostname = false",
    "curl k ",
    "curl insecure",
    "trustallcerts",
    "trust all certificates",
];

/// The slug `explain` answers with when asked about disabling verification. Not a cause
/// of a failing connection, so it is not in [`causes::CAUSES`].
pub const VERIFICATION_OFF: &str = "verification-disabled";

const PIN_INSTEAD: &str = "Switching certificate verification off lets anyone on the network     path impersonate the server, which is what TLS exists to prevent. Fix the cause instead:     run `portcullis doctor HOST` to see which one it is. For a self-signed or private-CA     server, pin that certificate or CA for this client only: Node `ca: fs.readFileSync('ca.pem')`     (or NODE_EXTRA_CA_CERTS=ca.pem), curl --cacert ca.pem, Python verify='ca.pem',     reqwest add_root_certificate. Get ca.pem out-of-band and check its fingerprint.";

/// OpenSSL verify codes (`verify error:num=N`), also accepted bare.
const OPENSSL_CODES: &[(u32, &str)] = &[
    (9, "not-yet-valid"),
    (10, "expired"),
    (18, "self-signed"),
    (19, "untrusted-root"),
    (20, "untrusted-root"),
    (21, "missing-intermediate"),
    (26, "wrong-purpose"),
    (62, "hostname-mismatch"),
];

fn normalize(s: &str) -> String {
    s.to_lowercase().replace(['_', '-'], " ")
}

/// Explains an error text or code; `None` when nothing matches.
pub fn explain(input: &str) -> Option<Explanation> {
    let text = normalize(input.trim());
    let spaced = format!(
        " {} ",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    if let Some(p) = TURN_OFF_VERIFICATION.iter().find(|p| spaced.contains(*p)) {
        return Some(Explanation {
            input: input.to_owned(),
            cause: VERIFICATION_OFF.into(),
            matched: p.trim().to_owned(),
            what: "that setting turns certificate verification off".into(),
            fix: PIN_INSTEAD.split_whitespace().collect::<Vec<_>>().join(" "),
            note: None,
        });
    }
    let code = text
        .strip_prefix("verify error:num=")
        .unwrap_or(&text)
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse::<u32>().ok());
    let hit = PATTERNS
        .iter()
        .find(|(p, _, _)| text.contains(&normalize(p)))
        .map(|(p, c, n)| (normalize(p), *c, *n))
        .or_else(|| {
            let num = text
                .split("num=")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse().ok())
                .or(code.filter(|_| text.chars().all(|c| c.is_ascii_digit())))?;
            OPENSSL_CODES
                .iter()
                .find(|(n, _)| *n == num)
                .map(|(n, c)| (format!("OpenSSL verify code {n}"), *c, None))
        })?;
    let cause = causes::get(hit.1)?;
    Some(Explanation {
        input: input.to_owned(),
        cause: cause.slug.into(),
        matched: hit.0,
        what: cause.what.into(),
        fix: cause.fix.into(),
        note: hit.2.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(s: &str) -> String {
        explain(s).map(|e| e.cause).unwrap_or_default()
    }

    #[test]
    fn errors_from_each_ecosystem() {
        let cases = [
            (
                "Error: self-signed certificate in certificate chain",
                "untrusted-root",
            ),
            ("DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed"),
            (
                "Error: unable to verify the first certificate",
                "missing-intermediate",
            ),
            ("ERR_TLS_CERT_ALTNAME_INVALID", "hostname-mismatch"),
            (
                "curl: (60) SSL: no alternative certificate subject name matches target host name '127.0.0.1'",
                "hostname-mismatch",
            ),
            (
                "error:0A00010B:SSL routines::wrong version number",
                "not-tls",
            ),
            ("invalid peer certificate: UnknownIssuer", "untrusted-root"),
            (
                "received fatal alert: CertificateRequired",
                "client-cert-required",
            ),
            (
                "sun.security.validator.ValidatorException: PKIX path building failed: unable to find valid certification path to requested target",
                "untrusted-root",
            ),
            (
                "x509: certificate signed by unknown authority",
                "untrusted-root",
            ),
            (
                "x509: certificate relies on legacy Common Name field, use SANs instead",
                "cn-only-no-san",
            ),
            (
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)",
                "expired",
            ),
            (
                "Client network socket disconnected before secure TLS connection was established",
                "reset-after-client-hello",
            ),
            ("getaddrinfo ENOTFOUND nope.invalid", "dns-failure"),
            ("connect ECONNREFUSED 127.0.0.1:1", "tcp-refused"),
            ("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", "client-cert-rejected"),
            (
                "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL",
                "alpn-mismatch",
            ),
            (
                "verify error:num=21:unable to verify the first certificate",
                "missing-intermediate",
            ),
            ("18", "self-signed"),
            ("remote error: tls: bad certificate", "client-cert-rejected"),
            (
                "tls: first record does not look like a TLS handshake",
                "not-tls",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(cause(text), want, "{text}");
        }
        assert!(explain("the weather is nice").is_none());

        // Issue 10: what curl prints when the server aborts the handshake without a word.
        let e = explain("curl: (35) Unknown SSL protocol error in connection to localhost:8443")
            .expect("curl's unknown SSL protocol error has an answer");
        assert_eq!(e.cause, "client-cert-required");
        let note = e.note.unwrap_or_default();
        assert!(
            note.contains("TLS version") && note.contains("portcullis doctor"),
            "the note tells the causes apart: {note}"
        );
        for advice in [
            "NODE_TLS_REJECT_UNAUTHORIZED=0",
            "rejectUnauthorized: false",
            "curl -k https://x",
            "curl --insecure https://x",
            "requests.get(url, verify=False)",
            "danger_accept_invalid_certs(true)",
        ] {
            let e = explain(advice).unwrap();
            assert_eq!(e.cause, VERIFICATION_OFF, "{advice}");
            assert!(e.fix.contains("ca.pem"), "{advice}");
        }
    }
}

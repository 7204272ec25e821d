//! The causes the doctor knows (DOCTOR.md's table), with their stable slugs, in the order
//! a client runs into them, and the error text each ecosystem prints for them.

/// One cause.
#[derive(Debug)]
pub struct Cause {
    pub slug: &'static str,
    /// What happened, in one line.
    pub what: &'static str,
    /// What people see: error text from Node.js, OpenSSL, curl, rustls, Go, Java, Python.
    pub errors: &'static [&'static str],
    /// The secure fix, in one line.
    pub fix: &'static str,
}

/// Every cause, in the order a client checks (the first error finding is the `cause`).
pub const CAUSES: &[Cause] = &[
    Cause {
        slug: "client-key-passphrase",
        what: "the client key is encrypted and the passphrase is missing or wrong",
        errors: &[
            "OpenSSL: bad decrypt",
            "Node: error:1C800064:Provider routines::bad decrypt",
            "curl: (58) unable to set private key file",
        ],
        fix: "supply the passphrase (prompt, --key-passphrase-file, or PORTCULLIS_KEY_PASSPHRASE)",
    },
    Cause {
        slug: "client-key-mismatch",
        what: "the client private key does not belong to the client certificate",
        errors: &[
            "OpenSSL: X509_check_private_key:key values mismatch (KEY_VALUES_MISMATCH)",
            "curl: (58) unable to set private key file",
            "rustls: InconsistentKeys(KeyMismatch)",
        ],
        fix: "pair the certificate with the key it was issued for",
    },
    Cause {
        slug: "dns-failure",
        what: "the host name does not resolve",
        errors: &[
            "Node: getaddrinfo ENOTFOUND",
            "curl: (6) Could not resolve host",
            "Go: no such host",
            "Java: UnknownHostException",
            "Python: Name or service not known",
        ],
        fix: "fix the name or the resolver (/etc/hosts, DNS)",
    },
    Cause {
        slug: "tcp-refused",
        what: "nothing listens on that address and port (the SYN was answered with RST)",
        errors: &[
            "Node: connect ECONNREFUSED",
            "curl: (7) Failed to connect … Connection refused",
            "Go: connect: connection refused",
            "Java: ConnectException: Connection refused",
        ],
        fix: "use the right port; check the server is running and listening on that address",
    },
    Cause {
        slug: "tcp-timeout",
        what: "no answer to the TCP SYN: filtered by a firewall, or the host is down",
        errors: &[
            "Node: connect ETIMEDOUT",
            "curl: (28) Connection timed out",
            "Go: i/o timeout",
        ],
        fix: "check the address and the firewalls between you and the server",
    },
    Cause {
        slug: "not-tls",
        what: "the port speaks plaintext (HTTP, SMTP, SSH…), not TLS",
        errors: &[
            "Node: EPROTO … wrong version number",
            "OpenSSL: ssl3_get_record:wrong version number",
            "curl: (35) error:0A00010B:SSL routines::wrong version number",
            "rustls: received corrupt message of type InvalidContentType",
            "Go: tls: first record does not look like a TLS handshake",
            "Java: Unsupported or unrecognized SSL message",
        ],
        fix: "use http:// or the TLS port; for SMTP/IMAP/POP3 use STARTTLS",
    },
    Cause {
        slug: "handshake-timeout",
        what: "the server accepted the TCP connection but never answered the ClientHello",
        errors: &[
            "Node: ERR_TLS_HANDSHAKE_TIMEOUT / Client network socket disconnected before secure TLS connection was established",
            "curl: (28) SSL connection timeout",
            "Go: net/http: TLS handshake timeout",
        ],
        fix: "check for a middlebox or a non-TLS service on that port",
    },
    Cause {
        slug: "sni-required",
        what: "the server only answers a ClientHello that names a host it serves (SNI)",
        errors: &[
            "Node: ECONNRESET / Client network socket disconnected before secure TLS connection was established",
            "OpenSSL: tlsv1 alert handshake failure / unrecognized name",
            "curl: (35) OpenSSL SSL_connect: Connection reset by peer",
        ],
        fix: "send the server's name: Node `servername`, openssl `-servername`, or connect by host name instead of IP",
    },
    Cause {
        slug: "sni-unrecognized",
        what: "the server rejects the name we sent in SNI",
        errors: &[
            "Node: ERR_SSL_TLSV1_UNRECOGNIZED_NAME",
            "OpenSSL: tlsv1 unrecognized name (alert 112)",
            "rustls: received fatal alert: UnrecognisedName",
        ],
        fix: "use a name the server serves",
    },
    Cause {
        slug: "protocol-version-mismatch",
        what: "client and server have no TLS version in common",
        errors: &[
            "Node: ERR_SSL_UNSUPPORTED_PROTOCOL / tlsv1 alert protocol version",
            "OpenSSL: no protocols available / unsupported protocol (alert 70)",
            "rustls: received fatal alert: ProtocolVersion",
            "Java: No appropriate protocol (protocol is disabled or cipher suites are inappropriate)",
        ],
        fix: "upgrade the server to TLS 1.2/1.3; never lower the client's minimum version silently",
    },
    Cause {
        slug: "no-shared-cipher",
        what: "no cipher suite (or key-exchange group) in common",
        errors: &[
            "OpenSSL: no shared cipher / sslv3 alert handshake failure (alert 40)",
            "Node: ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE",
            "rustls: received fatal alert: HandshakeFailure",
            "Java: Received fatal alert: handshake_failure",
        ],
        fix: "reconfigure the server's cipher suites (ECDHE with AES-GCM or ChaCha20)",
    },
    Cause {
        slug: "alpn-mismatch",
        what: "no application protocol (ALPN) in common",
        errors: &[
            "Node: ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL",
            "OpenSSL: tlsv1 alert no application protocol (alert 120)",
            "rustls: received fatal alert: NoApplicationProtocol",
        ],
        fix: "offer a protocol the server speaks (h2, http/1.1)",
    },
    Cause {
        slug: "reset-after-client-hello",
        what: "the server closed the connection after our ClientHello, and no variant we tried was accepted",
        errors: &[
            "Node: ECONNRESET / Client network socket disconnected before secure TLS connection was established",
            "OpenSSL: unexpected eof while reading",
            "curl: (35) Connection reset by peer",
            "Python: EOF occurred in violation of protocol",
            "Java: Remote host terminated the handshake",
        ],
        fix: "look at the server's logs and a packet capture; the evidence shows what we sent",
    },
    Cause {
        slug: "trust-store-differs",
        what: "one client trusts the chain and another does not: they use different trust stores (works from curl, not from Node)",
        errors: &[
            "Node: SELF_SIGNED_CERT_IN_CHAIN / UNABLE_TO_GET_ISSUER_CERT_LOCALLY (while curl works)",
            "Python requests: SSLError CERTIFICATE_VERIFY_FAILED unable to get local issuer certificate (certifi's list)",
            "Java: PKIX path building failed: unable to find valid certification path to requested target",
            "Go: x509: certificate signed by unknown authority",
        ],
        fix: "add the CA to the failing client's store (NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE / verify=, keytool -importcert, SSL_CERT_FILE…)",
    },
    Cause {
        slug: "self-signed",
        what: "the server's certificate is self-signed and not trusted",
        errors: &[
            "Node: DEPTH_ZERO_SELF_SIGNED_CERT (self-signed certificate)",
            "OpenSSL: verify error:num=18:self-signed certificate",
            "curl: (60) SSL certificate problem: self-signed certificate",
            "rustls: invalid peer certificate: UnknownIssuer",
            "Python: CERTIFICATE_VERIFY_FAILED self-signed certificate",
            "Go: x509: certificate signed by unknown authority",
        ],
        fix: "get that certificate out-of-band and pin it as the CA (`ca`); never fetch it from the same connection",
    },
    Cause {
        slug: "untrusted-root",
        what: "the chain ends at a root CA the client does not trust (private CA or an intercepting proxy)",
        errors: &[
            "Node: SELF_SIGNED_CERT_IN_CHAIN / UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
            "OpenSSL: verify error:num=19:self-signed certificate in certificate chain / num=20 unable to get local issuer certificate",
            "curl: (60) SSL certificate problem: unable to get local issuer certificate",
            "rustls: invalid peer certificate: UnknownIssuer",
            "Java: PKIX path building failed: unable to find valid certification path to requested target",
            "Go: x509: certificate signed by unknown authority",
        ],
        fix: "trust that root explicitly (`ca`, NODE_EXTRA_CA_CERTS, --cacert); if it is a proxy, ask whoever runs it",
    },
    Cause {
        slug: "missing-intermediate",
        what: "the server sends its certificate without the intermediate CA that signed it",
        errors: &[
            "Node: UNABLE_TO_VERIFY_LEAF_SIGNATURE (unable to verify the first certificate)",
            "OpenSSL: verify error:num=21:unable to verify the first certificate",
            "curl: (60) SSL certificate problem: unable to get local issuer certificate",
            "rustls: invalid peer certificate: UnknownIssuer",
        ],
        fix: "configure the server with the full chain (leaf + intermediates)",
    },
    Cause {
        slug: "pinned-ca-mismatch",
        what: "the CA you pinned with --ca is not the one the server's chain leads to",
        errors: &[
            "Node: UNABLE_TO_GET_ISSUER_CERT_LOCALLY / SELF_SIGNED_CERT_IN_CHAIN",
            "OpenSSL: verify error:num=20:unable to get local issuer certificate",
            "curl: (60) SSL certificate problem: unable to get local issuer certificate",
            "rustls: invalid peer certificate: UnknownIssuer",
        ],
        fix: "pin the CA the server really uses, or use the system store for public hosts",
    },
    Cause {
        slug: "weak-signature",
        what: "a certificate in the chain is signed with SHA-1 or MD5",
        errors: &[
            "OpenSSL: CA_MD_TOO_WEAK (ca md too weak)",
            "Node: CA_MD_TOO_WEAK",
            "rustls: invalid peer certificate: UnsupportedSignatureAlgorithm",
            "Go: x509: cannot verify signature: insecure algorithm SHA1-RSA",
        ],
        fix: "reissue the certificate with SHA-256 (or better)",
    },
    Cause {
        slug: "weak-key",
        what: "the server's RSA key is shorter than 2048 bits",
        errors: &[
            "OpenSSL: EE_KEY_TOO_SMALL (ee key too small)",
            "Node: EE_KEY_TOO_SMALL",
            "rustls: invalid peer certificate: BadSignature / UnsupportedSignatureAlgorithmForPublicKey",
        ],
        fix: "reissue with an RSA 2048+ or ECDSA P-256 key",
    },
    Cause {
        slug: "expired",
        what: "a certificate in the chain has expired (or the client clock is ahead)",
        errors: &[
            "Node: CERT_HAS_EXPIRED",
            "OpenSSL: verify error:num=10:certificate has expired",
            "curl: (60) SSL certificate problem: certificate has expired",
            "rustls: invalid peer certificate: Expired",
            "Java: CertificateExpiredException",
            "Go: x509: certificate has expired or is not yet valid",
        ],
        fix: "renew the certificate; if it looks valid, check the client's clock",
    },
    Cause {
        slug: "not-yet-valid",
        what: "a certificate in the chain is not valid yet (or the client clock is behind)",
        errors: &[
            "Node: CERT_NOT_YET_VALID",
            "OpenSSL: verify error:num=9:certificate is not yet valid",
            "curl: (60) SSL certificate problem: certificate is not yet valid",
            "rustls: invalid peer certificate: NotValidYet",
            "Go: x509: certificate has expired or is not yet valid",
        ],
        fix: "fix the clock (client or CA), or reissue with a correct start date",
    },
    Cause {
        slug: "wrong-purpose",
        what: "the server's certificate is not for TLS servers (no serverAuth EKU, or a CA certificate as leaf)",
        errors: &[
            "OpenSSL: verify error:num=26:unsupported certificate purpose (INVALID_PURPOSE)",
            "Node: INVALID_PURPOSE",
            "rustls: invalid peer certificate: Other(… RequiredEkuNotFound / CaUsedAsEndEntity)",
        ],
        fix: "reissue as a server certificate (extendedKeyUsage serverAuth, CA:FALSE)",
    },
    Cause {
        slug: "hostname-mismatch",
        what: "the name you connect with is not in the certificate's subjectAltName",
        errors: &[
            "Node: ERR_TLS_CERT_ALTNAME_INVALID (Hostname/IP does not match certificate's altnames)",
            "OpenSSL: verify error:num=62:hostname mismatch",
            "curl: (60) SSL: no alternative certificate subject name matches target host name",
            "rustls: invalid peer certificate: NotValidForName",
            "Go: x509: certificate is valid for …, not …",
            "Java: No subject alternative names matching IP address",
        ],
        fix: "connect by a name the certificate lists, set `servername`, or reissue with the right SAN",
    },
    Cause {
        slug: "cn-only-no-san",
        what: "the name is only in the certificate's CN; modern clients ignore CN",
        errors: &[
            "Node: ERR_TLS_CERT_ALTNAME_INVALID",
            "curl: (60) SSL: no alternative certificate subject name matches target host name",
            "Go: x509: certificate relies on legacy Common Name field, use SANs instead",
            "rustls: invalid peer certificate: NotValidForName",
        ],
        fix: "reissue the certificate with the name in subjectAltName",
    },
    Cause {
        slug: "client-aborted-handshake",
        what: "(from a capture) the client itself ended the handshake after the server's certificate: it did not accept what the server sent",
        errors: &[
            "Node: UNABLE_TO_VERIFY_LEAF_SIGNATURE / ERR_TLS_CERT_ALTNAME_INVALID / SELF_SIGNED_CERT_IN_CHAIN (the client's own verdict)",
            "curl: (60) SSL certificate problem",
            "OpenSSL: certificate verify failed",
            "Python: [SSL: CERTIFICATE_VERIFY_FAILED]",
        ],
        fix: "read the client's own error; run `portcullis doctor HOST --servername NAME` from the client's machine (with its --ca) to see which check fails",
    },
    Cause {
        slug: "client-cert-required",
        what: "the server requires a client certificate and we sent none",
        errors: &[
            "Node: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
            "OpenSSL: tlsv13 alert certificate required (alert 116) / sslv3 alert handshake failure",
            "curl: (56) OpenSSL SSL_read: tlsv13 alert certificate required",
            "rustls: received fatal alert: CertificateRequired",
            "Go: remote error: tls: certificate required",
            "Java: Received fatal alert: certificate_required",
            "nginx (in HTTP, after the handshake): 400 No required SSL certificate was sent / 496",
        ],
        fix: "pass a client certificate and key (`cert`/`key`) from a CA the server accepts",
    },
    Cause {
        slug: "client-cert-rejected",
        what: "the server refused our client certificate (unknown CA, expired, revoked, wrong purpose)",
        errors: &[
            "Node: ERR_SSL_TLSV1_ALERT_UNKNOWN_CA / SSLV3_ALERT_BAD_CERTIFICATE",
            "OpenSSL: tlsv1 alert unknown ca (alert 48) / sslv3 alert bad certificate (alert 42)",
            "rustls: received fatal alert: UnknownCA / BadCertificate",
            "Go: remote error: tls: bad certificate",
            "Java: Received fatal alert: bad_certificate",
            "nginx (in HTTP, after the handshake): 400 The SSL certificate error / 495",
        ],
        fix: "use a client certificate from a CA the server trusts (the CertificateRequest lists them)",
    },
    Cause {
        slug: "client-cert-optional",
        what: "the server asks for a client certificate but answers without one (warning)",
        errors: &[
            "none: the request works without a certificate (nginx: $ssl_client_verify is NONE)",
            "an application page for anonymous clients (\"hello anonymous\", a login page)",
        ],
        fix: "if the URL is for certificate holders only, require the certificate (nginx `ssl_verify_client on`, HAProxy `verify required`, Caddy `require_and_verify`); else present one where it matters",
    },
    Cause {
        slug: "client-cert-unverified",
        what: "the server let through a client certificate whose issuer it does not list: it does not verify them in the handshake (warning)",
        errors: &[
            "none: it works (nginx optional_no_ca: $ssl_client_verify is FAILED:…)",
            "Node with rejectUnauthorized off: req.socket.authorized is false, authorizationError UNABLE_TO_GET_ISSUER_CERT",
        ],
        fix: "verify in the handshake, or check the verification result before trusting any field; `portcullis doctor audit` tells whether forgeries get in",
    },
    Cause {
        slug: "client-chain-incomplete",
        what: "we sent our client certificate without its intermediate CA, so the server cannot link it to the root it trusts",
        errors: &[
            "Node: ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
            "OpenSSL: tlsv1 alert unknown ca (alert 48)",
            "curl: (56) OpenSSL SSL_read: … tlsv1 alert unknown ca",
            "Python: [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca",
            "Caddy / Go servers: remote error: tls: bad certificate",
            "nginx error log: client SSL certificate verify error: (20:unable to get local issuer certificate)",
            "HAProxy log: SSL client certificate not trusted",
        ],
        fix: "present the certificate followed by its intermediate CA(s): the chain file (NAME.chain.pem), not the leaf alone (NAME.crt)",
    },
    Cause {
        slug: "encrypted-handshake",
        what: "(from a capture) TLS 1.3 encrypts the server's certificate, its CertificateRequest and every later alert: the capture cannot show them",
        errors: &[],
        fix: "judge the certificate with a live `portcullis doctor HOST --servername NAME`, or capture with TLS 1.2",
    },
    Cause {
        slug: "chain-misordered",
        what: "the chain is out of order or carries certificates that do not belong (warning)",
        errors: &[
            "often none; some older clients fail with unable to get local issuer certificate",
        ],
        fix: "serve the leaf first, then each issuer in order",
    },
    // `doctor audit`: the connection works; the question is whether it works for forgeries.
    Cause {
        slug: "accepts-forged-certificate",
        what: "the server gives a forged twin of an accepted client certificate the same answer as the real one (doctor audit)",
        errors: &["none: the forged certificate \"works\""],
        fix: AUDIT_FIX,
    },
    Cause {
        slug: "accepts-self-signed",
        what: "a self-signed copy of the client certificate (same subject and SANs, another key) got in (doctor audit)",
        errors: &["none: the forged certificate \"works\""],
        fix: AUDIT_FIX,
    },
    Cause {
        slug: "accepts-same-name-issuer",
        what: "a copy signed by a throwaway CA named like the real issuer got in: names are compared, not signatures (doctor audit)",
        errors: &["none: the forged certificate \"works\""],
        fix: AUDIT_FIX,
    },
    Cause {
        slug: "accepts-expired",
        what: "an expired copy (signed by the throwaway same-name CA) got in (doctor audit)",
        errors: &["none: the forged certificate \"works\""],
        fix: AUDIT_FIX,
    },
    Cause {
        slug: "accepts-no-client-auth-eku",
        what: "a copy without the clientAuth extendedKeyUsage (signed by the throwaway same-name CA) got in (doctor audit)",
        errors: &["none: the forged certificate \"works\""],
        fix: AUDIT_FIX,
    },
    Cause {
        slug: "audit-url-open",
        what: "the URL answers without a client certificate as it answers with one: no certificate protects it (doctor audit, warning)",
        errors: &["none: every client gets in"],
        fix: "require a client certificate for this URL (Node `requestCert: true, rejectUnauthorized: true`, nginx `ssl_verify_client on`), or audit a URL that is meant to be protected",
    },
];

/// The fix for every forgery the audit finds.
const AUDIT_FIX: &str = "require verification (Node `rejectUnauthorized: true`, nginx `ssl_verify_client on`), or check `req.socket.authorized` / `$ssl_client_verify = SUCCESS` before trusting any field of the certificate";

/// The cause with this slug.
pub fn get(slug: &str) -> Option<&'static Cause> {
    CAUSES.iter().find(|c| c.slug == slug)
}

/// Where a cause sits in the order a client checks (unknown slugs last).
pub fn rank(slug: &str) -> usize {
    CAUSES
        .iter()
        .position(|c| c.slug == slug)
        .unwrap_or(CAUSES.len())
}

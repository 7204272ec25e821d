//! `portcullis doctor explain "TEXT"`: offline, maps an error string or code that people
//! paste — from Node.js, Python (ssl, requests, urllib3, httpx), Java, Go, .NET, curl,
//! OpenSSL, rustls, browsers, nginx, HAProxy or Caddy — to its causes, most likely first,
//! says how to tell them apart, and gives the secure fix with the knob of the ecosystem
//! that printed it.
//!
//! The knowledge is one table, [`ROWS`]: a pattern, the causes it can mean in the order
//! they are most often the real one, whose text it is when only one ecosystem prints it,
//! and a note that tells the causes apart. To teach `explain` a new string, add a row
//! above the more general rows it would otherwise fall into, and a case to the table test.

use serde::Serialize;

use crate::causes;
use crate::fixes::Fix;

/// What an error message means.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Explanation {
    pub input: String,
    /// The most likely cause (the first of `causes`).
    pub cause: String,
    /// Every cause this text can mean, the most often real one first.
    pub causes: Vec<String>,
    /// The pattern that matched, normalized.
    pub matched: String,
    /// Whose error text this is (`node`, `python`, `java`, `go`, `dotnet`, `curl`,
    /// `openssl`, `rustls`, `browser`, `nginx`, `haproxy`), when the text says so.
    pub ecosystem: Option<String>,
    pub what: String,
    /// The secure fix in one line, in the terms of `ecosystem` when there are such terms.
    pub fix: String,
    /// The secure fix with that ecosystem's knob (`verify=` / `REQUESTS_CA_BUNDLE`,
    /// `ca:` / `NODE_EXTRA_CA_CERTS`, `-Djavax.net.ssl.trustStore`…), when there is one.
    pub fixes: Vec<Fix>,
    /// When the same text has several possible causes, what tells them apart.
    pub note: Option<String>,
}

// === the table ===

/// One thing people paste.
#[derive(Debug)]
struct Row {
    /// Matched against the normalized input (lowercase, `_` and `-` as spaces).
    pattern: &'static str,
    /// The causes it can mean, the most often real one first.
    causes: &'static [&'static str],
    /// Whose text it is, when only one ecosystem prints it and the text carries no other
    /// sign of its origin (see [`ORIGINS`]).
    from: Option<&'static str>,
    /// How to tell the causes apart, or what the text hides.
    note: Option<&'static str>,
}

const fn row(pattern: &'static str, causes: &'static [&'static str]) -> Row {
    Row {
        pattern,
        causes,
        from: None,
        note: None,
    }
}

impl Row {
    const fn from(self, ecosystem: &'static str) -> Row {
        Row {
            from: Some(ecosystem),
            ..self
        }
    }
    const fn note(self, note: &'static str) -> Row {
        Row {
            note: Some(note),
            ..self
        }
    }
}

// The causes, by slug (`causes::CAUSES`; a test checks every one exists).
const PASSPHRASE: &str = "client-key-passphrase";
const KEY_MISMATCH: &str = "client-key-mismatch";
const DNS: &str = "dns-failure";
const REFUSED: &str = "tcp-refused";
const TCP_TIMEOUT: &str = "tcp-timeout";
const NOT_TLS: &str = "not-tls";
const HELLO_TIMEOUT: &str = "handshake-timeout";
const SNI: &str = "sni-required";
const SNI_UNKNOWN: &str = "sni-unrecognized";
const VERSION: &str = "protocol-version-mismatch";
const CIPHER: &str = "no-shared-cipher";
const ALPN: &str = "alpn-mismatch";
const RESET: &str = "reset-after-client-hello";
const SELF_SIGNED: &str = "self-signed";
const ROOT: &str = "untrusted-root";
const INTERMEDIATE: &str = "missing-intermediate";
const PINNED: &str = "pinned-ca-mismatch";
const WEAK_SIG: &str = "weak-signature";
const WEAK_KEY: &str = "weak-key";
const EXPIRED: &str = "expired";
const NOT_YET: &str = "not-yet-valid";
const PURPOSE: &str = "wrong-purpose";
const NAME: &str = "hostname-mismatch";
const CN_ONLY: &str = "cn-only-no-san";
const REQUIRED: &str = "client-cert-required";
const REJECTED: &str = "client-cert-rejected";
const CLIENT_CHAIN: &str = "client-chain-incomplete";

// Whose text: the values of `Explanation::ecosystem`.
const NODE: &str = "node";
const PYTHON: &str = "python";
const JAVA: &str = "java";
const GO: &str = "go";
const DOTNET: &str = "dotnet";
const CURL: &str = "curl";
const OPENSSL: &str = "openssl";
const RUSTLS: &str = "rustls";
const BROWSER: &str = "browser";
const NGINX: &str = "nginx";
const HAPROXY: &str = "haproxy";

// === notes: how to tell the causes apart ===

const LOCAL_ISSUER: &str = "OpenSSL-based clients (curl, Python, PHP, Ruby) print this for a \
    private or intercepting root CA they do not trust, and also for a server that leaves out \
    its intermediate certificate (Node.js says UNABLE_TO_VERIFY_LEAF_SIGNATURE then). \
    `openssl s_client -connect HOST:443 -servername HOST -showcerts` tells them apart: one \
    certificate whose issuer is an intermediate = missing intermediate; a chain whose top \
    is issued by a root you do not have = untrusted root. If you already gave your own CA \
    (`ca`, --cacert, verify=), it is not the CA the server's chain leads to.";
const UNKNOWN_ISSUER: &str = "this client reports a self-signed leaf, a missing intermediate \
    and an untrusted root alike; `portcullis doctor HOST` (or `openssl s_client -showcerts`) \
    shows the chain and tells which.";
const FIRST_CERT: &str = "OpenSSL says this when the server sent a single certificate whose \
    issuer it cannot find: most often the server left its intermediate out; a leaf signed \
    directly by a private root CA you do not trust looks the same on the wire. Run \
    `portcullis doctor HOST`: it names the issuer and whether it is a root.";
const IN_CHAIN: &str = "the server sent its whole chain, root included, and that root is not \
    in your trust store: a private CA or a TLS-intercepting proxy. If you already pinned a CA \
    (`ca`, --cacert, verify=), it is not this one.";
const SELF_SIGNED_NOTE: &str = "the server presents a certificate that signed itself and \
    that this client does not trust: get it out-of-band, check its fingerprint and pin it. \
    If you already pinned one (`ca`, --cacert, verify=), the server presents another.";
const HANDSHAKE_FAILURE: &str = "alert 40 (handshake failure) is most often a TLS 1.2 server \
    that requires a client certificate and got none, then a server that needs SNI (a name \
    it serves), and only then no cipher suite or version in common. `openssl s_client \
    -connect HOST:443 -servername HOST` tells them apart: it prints 'Acceptable client \
    certificate CA names' when the server asks for a certificate; working with -servername \
    where it failed without means SNI; `portcullis doctor HOST` tries each.";
const UNKNOWN_CA: &str = "the server does not trust the issuer of the client certificate you \
    sent. If your certificate comes from an intermediate CA and you sent only the leaf \
    (--cert alice.crt), the server cannot link it to the root it trusts: send the chain \
    (alice.chain.pem, leaf first). Otherwise get a certificate from a CA the server lists \
    ('Acceptable client certificate CA names' in openssl s_client). Found in a server's own \
    log, the same alert means the client refused the server's certificate.";
const BAD_CERT: &str = "servers send bad_certificate when they refuse the client certificate \
    you sent (unknown issuer, leaf without its intermediate, wrong purpose); Go servers \
    (Caddy, Traefik, Go apps) also send it when no certificate was sent at all. If you \
    configured no client certificate, it is that one.";
const HANG_UP: &str = "the server closed the connection after the TLS handshake without an \
    answer. In mTLS this is the server refusing the client certificate without an alert (a \
    Node.js server with requestCert and rejectUnauthorized does so on TLS 1.3) or, with no \
    certificate sent, a Go server (Caddy) requiring one. Otherwise the server or a proxy \
    closed it: look at its logs; `portcullis doctor HOST --cert C --key K` shows whether a \
    certificate was asked for and what the server answered.";
const CURL_ABORT: &str = "curl prints this when the server drops the connection right after \
    the handshake: a server that requires a client certificate and got none (Caddy and other \
    Go servers), or refused the one you sent. Pass --cert (the chain file) and --key; with \
    one already, `portcullis doctor HOST --cert C --key K` shows why it was refused.";
const ABORTED_HANDSHAKE: &str = "curl prints this when the server ends the handshake without \
    saying why. Most often the server requires a client certificate and none was sent (a \
    Node.js server with `requestCert: true` and `rejectUnauthorized: true`): pass --cert and \
    --key. Otherwise client and server have no TLS version in common. Run `portcullis \
    doctor HOST` to tell which: it shows whether the server asked for a certificate and \
    which TLS versions it speaks.";
const RESET_NOTE: &str = "a connection closed during the handshake is most often a server \
    that needs SNI (try --servername NAME) or an old server; a server that refuses your \
    client certificate without an alert closes the same way. Run `portcullis doctor HOST`.";
const NAME_OR_CN: &str = "the name you connect with is not in the certificate's \
    subjectAltName. If the certificate has no subjectAltName at all, clients that ignore \
    the CN (Go, requests/urllib3 2, Chrome, rustls) fail where older ones passed: reissue \
    it with a SAN.";
const NO_SAN_BY_IP: &str = "the certificate has no subjectAltName at all, and you connect by \
    IP address: connect by a name it carries, or reissue it with the right SAN (IP:… for an \
    address).";
const EXPIRED_OR_NOT_YET: &str = "Go and .NET say this for both: a certificate that has \
    expired ('current time … is after …') and one not valid yet ('… is before …', often a \
    clock that is behind). Check `date -u`, then the dates in `openssl s_client -showcerts`.";
const DOTNET_CHAIN: &str = "the inner X509ChainStatus says which: UntrustedRoot (a private \
    root or self-signed certificate), PartialChain (a missing intermediate), NotTimeValid \
    (dates). Never answer it with a callback that returns true.";
const DOTNET_BOTH: &str = "both the name and the chain fail: typical of a self-signed \
    development certificate used under another name. Trust its CA through the chain policy \
    and connect by a name it carries.";
const BROWSER_CLIENT_AUTH: &str = "the server refused the handshake over the client \
    certificate. If the browser did not ask you to choose a certificate, it had none whose \
    issuer the server accepts and sent none: import yours (PKCS#12 with its chain). If it \
    asked and you chose one, the server refused that one.";
const CIPHER_OR_VERSION: &str = "browsers say this when the server accepts none of their TLS \
    versions (a TLS 1.0/1.1-only server) or cipher suites, and also when a server or CDN \
    has no certificate for the name asked for (SNI). `portcullis doctor HOST` tells which.";
const BROWSER_PROTOCOL: &str = "most often the port answers plaintext HTTP (use http:// or \
    the TLS port); a TLS 1.2 server that requires a client certificate, or an old server, \
    can cause it too.";
const HAPROXY_HANDSHAKE: &str = "HAProxy logs this for every failed handshake: with `verify \
    required`, most often a client that sent no certificate; otherwise versions or ciphers.";
const CURL_CA_FILE: &str = "curl could not read the CA file it was given (--cacert, \
    CURL_CA_BUNDLE) or its default bundle, so it trusts nothing: check the path and that \
    the file is readable PEM.";
const CURL_58: &str = "curl could not load the client certificate or key: the key does not \
    belong to the certificate, the passphrase is missing or wrong (--pass), or a file is \
    missing or not PEM. `openssl x509 -noout -pubkey` and `openssl pkey -pubout` must print \
    the same key.";
const WEAK_OR_OLD: &str = "the server signs with an algorithm this client no longer accepts: \
    an old server (TLS 1.0/1.1, SHA-1 handshake signatures). Upgrade the server.";
const NO_CIPHERS: &str = "the client has no cipher suite left to offer for the TLS versions \
    it allows: its own settings (a cipher list or a security level) rule them out, or the \
    only version it may use has none. Check the client's cipher and version settings.";
const CURL_28: &str = "curl's timeout: 'Failed to connect … Timeout was reached' is the TCP \
    connection (a firewall, a wrong address); 'SSL connection timeout' is a server that took \
    the connection and never answered the ClientHello.";
const VERIFY_FAILED: &str = "the text after it (or `verify error:num=N` in openssl s_client, \
    `verify return code` in curl -v) names which check failed; run `portcullis doctor HOST`.";

/// The table. The first row whose pattern occurs in the input wins, so more specific
/// rows come first. One row a line: kept out of rustfmt's reach so it reads as a table.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    // --- local files: key and certificate ---
    row("key values mismatch", &[KEY_MISMATCH]),
    row("inconsistentkeys", &[KEY_MISMATCH]).from(RUSTLS),
    row("private key does not match public key", &[KEY_MISMATCH]).from(GO),
    row("bad decrypt", &[PASSPHRASE]),
    row("bad password read", &[PASSPHRASE]),
    row("unable to set private key file", &[KEY_MISMATCH, PASSPHRASE]).from(CURL).note(CURL_58),
    row("could not load pem client certificate", &[PASSPHRASE, KEY_MISMATCH]).from(CURL).note(CURL_58),
    row("error setting certificate file", &[ROOT]).from(CURL).note(CURL_CA_FILE),
    row("error setting certificate verify locations", &[ROOT]).from(CURL).note(CURL_CA_FILE),
    // --- what servers say and log about client certificates ---
    row("no required ssl certificate was sent", &[REQUIRED]).from(NGINX),
    row("client sent no required ssl certificate", &[REQUIRED]).from(NGINX),
    row("the ssl certificate error", &[REJECTED, CLIENT_CHAIN]).from(NGINX).note(UNKNOWN_CA),
    row("client ssl certificate verify error", &[REJECTED, CLIENT_CHAIN]).from(NGINX).note(UNKNOWN_CA),
    row("496 ssl certificate required", &[REQUIRED]).from(NGINX),
    row("495 ssl certificate error", &[REJECTED, CLIENT_CHAIN]).from(NGINX).note(UNKNOWN_CA),
    row("ssl client certificate not trusted", &[REJECTED, CLIENT_CHAIN]).from(HAPROXY).note(UNKNOWN_CA),
    row("ssl client ca chain cannot be verified", &[REJECTED, CLIENT_CHAIN]).from(HAPROXY).note(UNKNOWN_CA),
    row("client didn't provide a certificate", &[REQUIRED]).from(GO),
    row("peer did not return a certificate", &[REQUIRED]).from(OPENSSL),
    // --- browsers ---
    row("err bad ssl client auth cert", &[REQUIRED, REJECTED]).from(BROWSER).note(BROWSER_CLIENT_AUTH),
    row("err ssl client auth cert needed", &[REQUIRED]).from(BROWSER),
    row("ssl error rx certificate required alert", &[REQUIRED]).from(BROWSER),
    row("ssl error bad cert alert", &[REJECTED, REQUIRED, CLIENT_CHAIN]).from(BROWSER).note(BAD_CERT),
    row("ssl error unknown ca alert", &[REJECTED, CLIENT_CHAIN]).from(BROWSER).note(UNKNOWN_CA),
    row("ssl error handshake failure alert", &[REQUIRED, SNI, CIPHER]).from(BROWSER).note(HANDSHAKE_FAILURE),
    row("err ssl version or cipher mismatch", &[VERSION, CIPHER, SNI]).from(BROWSER).note(CIPHER_OR_VERSION),
    row("ssl error no cypher overlap", &[CIPHER, VERSION]).from(BROWSER).note(CIPHER_OR_VERSION),
    row("ssl error protocol version alert", &[VERSION]).from(BROWSER),
    row("ssl error rx record too long", &[NOT_TLS]).from(BROWSER),
    row("err ssl protocol error", &[NOT_TLS, REQUIRED, VERSION]).from(BROWSER).note(BROWSER_PROTOCOL),
    row("err ssl unrecognized name alert", &[SNI_UNKNOWN]).from(BROWSER),
    row("err cert authority invalid", &[ROOT, SELF_SIGNED, INTERMEDIATE]).from(BROWSER).note(UNKNOWN_ISSUER),
    row("sec error unknown issuer", &[ROOT, INTERMEDIATE, SELF_SIGNED]).from(BROWSER).note(UNKNOWN_ISSUER),
    row("mozilla pkix error self signed cert", &[SELF_SIGNED]).from(BROWSER),
    row("err cert common name invalid", &[NAME, CN_ONLY]).from(BROWSER).note(NAME_OR_CN),
    row("ssl error bad cert domain", &[NAME, CN_ONLY]).from(BROWSER).note(NAME_OR_CN),
    row("err cert date invalid", &[EXPIRED, NOT_YET]).from(BROWSER).note(EXPIRED_OR_NOT_YET),
    row("sec error expired certificate", &[EXPIRED]).from(BROWSER),
    row("sec error expired issuer certificate", &[EXPIRED]).from(BROWSER),
    // --- .NET (SslStream, HttpClient) ---
    row("remotecertificatenamemismatch, remotecertificatechainerrors", &[ROOT, SELF_SIGNED, NAME]).from(DOTNET).note(DOTNET_BOTH),
    row("remotecertificatenamemismatch", &[NAME, CN_ONLY]).from(DOTNET).note(NAME_OR_CN),
    row("untrustedroot", &[ROOT, SELF_SIGNED]).from(DOTNET).note(DOTNET_CHAIN),
    row("partialchain", &[INTERMEDIATE, ROOT]).from(DOTNET).note(DOTNET_CHAIN),
    row("nottimevalid", &[EXPIRED, NOT_YET]).from(DOTNET).note(EXPIRED_OR_NOT_YET),
    row("remotecertificatechainerrors", &[ROOT, INTERMEDIATE, EXPIRED]).from(DOTNET).note(DOTNET_CHAIN),
    row("remote certificate is invalid because of errors in the certificate chain", &[ROOT, INTERMEDIATE, EXPIRED]).from(DOTNET).note(DOTNET_CHAIN),
    row("remote certificate is invalid according to the validation procedure", &[ROOT, NAME, INTERMEDIATE]).from(DOTNET).note(DOTNET_CHAIN),
    // --- the server's certificate, most specific first ---
    row("self signed certificate in certificate chain", &[ROOT, PINNED]).note(IN_CHAIN),
    row("self signed cert in chain", &[ROOT, PINNED]).from(NODE).note(IN_CHAIN),
    row("depth zero self signed cert", &[SELF_SIGNED, PINNED]).from(NODE).note(SELF_SIGNED_NOTE),
    row("self signed certificate", &[SELF_SIGNED, PINNED]).note(SELF_SIGNED_NOTE),
    row("unable to verify the first certificate", &[INTERMEDIATE, ROOT]).note(FIRST_CERT),
    row("unable to verify leaf signature", &[INTERMEDIATE, ROOT]).from(NODE).note(FIRST_CERT),
    row("unable to get issuer cert locally", &[ROOT, PINNED, INTERMEDIATE]).from(NODE).note(LOCAL_ISSUER),
    row("unable to get local issuer certificate", &[ROOT, INTERMEDIATE, PINNED]).note(LOCAL_ISSUER),
    row("pkix path building failed", &[ROOT, INTERMEDIATE, SELF_SIGNED]).from(JAVA).note(UNKNOWN_ISSUER),
    row("unable to find valid certification path", &[ROOT, INTERMEDIATE, SELF_SIGNED]).from(JAVA).note(UNKNOWN_ISSUER),
    row("certificate signed by unknown authority", &[ROOT, INTERMEDIATE, SELF_SIGNED]).from(GO).note(UNKNOWN_ISSUER),
    row("unknownissuer", &[ROOT, INTERMEDIATE, SELF_SIGNED]).from(RUSTLS).note(UNKNOWN_ISSUER),
    row("relies on legacy common name field", &[CN_ONLY]).from(GO),
    row("doesn't contain any ip sans", &[NAME]).from(GO),
    row("certificate is not valid for any names", &[NAME, CN_ONLY]).from(GO).note(NAME_OR_CN),
    row("certificate is valid for", &[NAME]).from(GO),
    row("no subject alternative names present", &[CN_ONLY, NAME]).from(JAVA).note(NO_SAN_BY_IP),
    row("no subject alternative names matching", &[NAME]).from(JAVA),
    row("no subject alternative dns name matching", &[NAME]).from(JAVA),
    row("no name matching", &[NAME, CN_ONLY]).from(JAVA).note(NAME_OR_CN),
    row("err tls cert altname invalid", &[NAME, CN_ONLY]).from(NODE).note(NAME_OR_CN),
    row("does not match certificate's altnames", &[NAME, CN_ONLY]).from(NODE).note(NAME_OR_CN),
    row("no alternative certificate subject name matches", &[NAME]).from(CURL),
    row("does not match target host name", &[CN_ONLY, NAME]).from(CURL).note(NAME_OR_CN),
    row("ip address mismatch", &[NAME]),
    row("hostname mismatch", &[NAME, CN_ONLY]).note(NAME_OR_CN),
    row("notvalidforname", &[NAME, CN_ONLY]).from(RUSTLS).note(NAME_OR_CN),
    row("certificate has expired or is not yet valid", &[EXPIRED, NOT_YET]).from(GO).note(EXPIRED_OR_NOT_YET),
    row("cert has expired", &[EXPIRED]).from(NODE),
    row("certificate has expired", &[EXPIRED]),
    row("certificateexpiredexception", &[EXPIRED]).from(JAVA),
    row("certexpired", &[EXPIRED]).from(RUSTLS),
    row("invalid peer certificate: expired", &[EXPIRED]).from(RUSTLS),
    row("cert not yet valid", &[NOT_YET]).from(NODE),
    row("certificate is not yet valid", &[NOT_YET]),
    row("certificatenotyetvalidexception", &[NOT_YET]).from(JAVA),
    row("notvalidyet", &[NOT_YET]).from(RUSTLS),
    row("ca md too weak", &[WEAK_SIG]),
    row("insecure algorithm", &[WEAK_SIG]).from(GO),
    row("unsupportedsignaturealgorithm", &[WEAK_SIG]).from(RUSTLS),
    row("legacy sigalg disallowed or unsupported", &[VERSION, WEAK_SIG]).note(WEAK_OR_OLD),
    row("ee key too small", &[WEAK_KEY]),
    row("key too small", &[WEAK_KEY]),
    row("invalid purpose", &[PURPOSE]),
    row("unsupported certificate purpose", &[PURPOSE]),
    row("requiredekunotfound", &[PURPOSE]).from(RUSTLS),
    row("caused as end entity", &[PURPOSE]).from(RUSTLS),
    row("causedasendentity", &[PURPOSE]).from(RUSTLS),
    row("incompatible key usage", &[PURPOSE]).from(GO),
    // --- client certificates: what the server's alert says ---
    row("fatal alert: certificate required", &[REQUIRED]).from(JAVA),
    row("certificate required", &[REQUIRED]),
    row("certificaterequired", &[REQUIRED]).from(RUSTLS),
    row("alert unknown ca", &[REJECTED, CLIENT_CHAIN]).note(UNKNOWN_CA),
    row("unknown certificate authority", &[REJECTED, CLIENT_CHAIN]).from(GO).note(UNKNOWN_CA),
    row("fatal alert: unknown ca", &[REJECTED, CLIENT_CHAIN]).from(JAVA).note(UNKNOWN_CA),
    row("unknownca", &[REJECTED, CLIENT_CHAIN]).from(RUSTLS).note(UNKNOWN_CA),
    row("alert bad certificate", &[REJECTED, REQUIRED, CLIENT_CHAIN]).note(BAD_CERT),
    row("tls: bad certificate", &[REJECTED, REQUIRED, CLIENT_CHAIN]).from(GO).note(BAD_CERT),
    row("fatal alert: bad certificate", &[REJECTED, REQUIRED, CLIENT_CHAIN]).from(JAVA).note(BAD_CERT),
    row("badcertificate", &[REJECTED, REQUIRED, CLIENT_CHAIN]).from(RUSTLS).note(BAD_CERT),
    row("alert certificate unknown", &[REJECTED]),
    row("fatal alert: certificate unknown", &[REJECTED]).from(JAVA),
    row("alert certificate revoked", &[REJECTED]),
    row("alert certificate expired", &[REJECTED]),
    row("alert unsupported certificate", &[REJECTED]),
    row("alert access denied", &[REJECTED]),
    row("tls: unknown certificate", &[REJECTED]).from(GO),
    row("tls: expired certificate", &[REJECTED]).from(GO),
    row("tls: revoked certificate", &[REJECTED]).from(GO),
    // --- the server hung up after the handshake ---
    row("getpeername() failed with errno 107", &[REQUIRED, REJECTED]).from(CURL).note(CURL_ABORT),
    row("send failure: broken pipe", &[REJECTED, REQUIRED]).from(CURL).note(CURL_ABORT),
    row("send failure: connection reset by peer", &[REJECTED, REQUIRED]).from(CURL).note(CURL_ABORT),
    row("empty reply from server", &[REJECTED, RESET]).from(CURL).note(HANG_UP),
    row("socket hang up", &[REJECTED, RESET]).from(NODE).note(HANG_UP),
    row("remote end closed connection without response", &[REJECTED, RESET]).from(PYTHON).note(HANG_UP),
    row("server disconnected without sending a response", &[REJECTED, RESET]).from(PYTHON).note(HANG_UP),
    row("unknown ssl protocol error", &[REQUIRED, VERSION]).from(CURL).note(ABORTED_HANDSHAKE),
    // --- protocol ---
    row("no application protocol", &[ALPN]),
    row("noapplicationprotocol", &[ALPN]).from(RUSTLS),
    row("unrecognized name", &[SNI_UNKNOWN]),
    row("unrecognisedname", &[SNI_UNKNOWN]).from(RUSTLS),
    row("wrong version number", &[NOT_TLS]),
    row("invalidcontenttype", &[NOT_TLS]).from(RUSTLS),
    row("first record does not look like a tls handshake", &[NOT_TLS]).from(GO),
    row("unsupported or unrecognized ssl message", &[NOT_TLS]).from(JAVA),
    row("http response to https client", &[NOT_TLS]).from(GO),
    row("packet length too long", &[NOT_TLS]),
    row("unsupported protocol", &[VERSION]),
    row("alert protocol version", &[VERSION]),
    row("protocol version not supported", &[VERSION]).from(GO),
    row("client offered only unsupported versions", &[VERSION]).from(GO),
    row("fatal alert: protocol version", &[VERSION]).from(JAVA),
    row("protocolversion", &[VERSION]),
    row("no protocols available", &[VERSION]),
    row("no appropriate protocol", &[VERSION]).from(JAVA),
    row("peer is incompatible", &[VERSION]).from(RUSTLS),
    row("no shared cipher", &[CIPHER]),
    row("no cipher suites in common", &[CIPHER]).from(GO),
    row("no ciphers available", &[CIPHER, VERSION]).note(NO_CIPHERS),
    row("insufficient security", &[CIPHER]),
    row("alert handshake failure", &[REQUIRED, SNI, CIPHER]).note(HANDSHAKE_FAILURE),
    row("fatal alert: handshake failure", &[REQUIRED, SNI, CIPHER]).from(JAVA).note(HANDSHAKE_FAILURE),
    row("tls: handshake failure", &[REQUIRED, SNI, CIPHER]).from(GO).note(HANDSHAKE_FAILURE),
    row("handshakefailure", &[REQUIRED, SNI, CIPHER]).note(HANDSHAKE_FAILURE),
    row("ssl handshake failure", &[REQUIRED, VERSION, CIPHER]).from(HAPROXY).note(HAPROXY_HANDSHAKE),
    row("handshake timeout", &[HELLO_TIMEOUT]),
    row("handshake timed out", &[HELLO_TIMEOUT]),
    row("ssl connection timeout", &[HELLO_TIMEOUT]).from(CURL),
    row("socket disconnected before secure tls connection", &[RESET, SNI, REJECTED]).from(NODE).note(RESET_NOTE),
    row("remote host terminated the handshake", &[RESET, SNI]).from(JAVA).note(RESET_NOTE),
    row("eof occurred in violation of protocol", &[RESET, SNI, REJECTED]).from(PYTHON).note(RESET_NOTE),
    row("unexpected eof", &[RESET, SNI, REJECTED]).note(RESET_NOTE),
    row("ssl error syscall", &[RESET, SNI, REJECTED]).from(CURL).note(RESET_NOTE),
    row("econnreset", &[RESET, SNI]).from(NODE).note(RESET_NOTE),
    row("connection reset by peer", &[RESET, SNI]).note(RESET_NOTE),
    // --- network ---
    row("enotfound", &[DNS]).from(NODE),
    row("could not resolve host", &[DNS]).from(CURL),
    row("no such host", &[DNS]).from(GO),
    row("name or service not known", &[DNS]),
    row("unknownhostexception", &[DNS]).from(JAVA),
    row("nodename nor servname", &[DNS]),
    row("econnrefused", &[REFUSED]).from(NODE),
    row("connection refused", &[REFUSED]),
    row("etimedout", &[TCP_TIMEOUT]).from(NODE),
    row("connection timed out", &[TCP_TIMEOUT]),
    row("i/o timeout", &[TCP_TIMEOUT]).from(GO),
    row("connect timed out", &[TCP_TIMEOUT]).from(JAVA),
    // --- curl exit codes, when the text says nothing more specific ---
    row("curl: (6)", &[DNS]),
    row("curl: (7)", &[REFUSED]),
    row("curl: (28)", &[TCP_TIMEOUT, HELLO_TIMEOUT]).note(CURL_28),
    row("curl: (35)", &[REQUIRED, VERSION, SNI]).note(ABORTED_HANDSHAKE),
    row("curl: (51)", &[NAME, CN_ONLY]).note(NAME_OR_CN),
    row("curl: (55)", &[REQUIRED, REJECTED]).note(CURL_ABORT),
    row("curl: (56)", &[REQUIRED, REJECTED]).note(CURL_ABORT),
    row("curl: (58)", &[KEY_MISMATCH, PASSPHRASE]).note(CURL_58),
    row("curl: (60)", &[ROOT, INTERMEDIATE, SELF_SIGNED]).note(LOCAL_ISSUER),
    row("curl: (77)", &[ROOT]).note(CURL_CA_FILE),
    // --- generic verification failures last ---
    row("certificate verify failed", &[ROOT, INTERMEDIATE, SELF_SIGNED, EXPIRED, NAME]).note(VERIFY_FAILED),
];

/// Signs of whose text it is, checked in this order before a row's own `from`: wrappers
/// and prefixes say more than the message inside them (curl and Python quote OpenSSL).
const ORIGINS: &[(&str, &str)] = &[
    ("curl: (", CURL),
    ("ssl.c:", PYTHON),
    ("[ssl: ", PYTHON),
    ("sslcertverificationerror", PYTHON),
    ("sslerror(", PYTHON),
    ("httpsconnectionpool", PYTHON),
    ("urllib3", PYTHON),
    ("httpx", PYTHON),
    ("requests.exceptions", PYTHON),
    ("javax.net.ssl", JAVA),
    ("sun.security", JAVA),
    ("java.security", JAVA),
    ("system.security.authentication", DOTNET),
    ("system.net.http", DOTNET),
    ("the ssl connection could not be established", DOTNET),
    ("authentication failed because the remote party", DOTNET),
    ("x509: ", GO),
    ("remote error: tls: ", GO),
    ("net::err ", BROWSER),
    ("err cert ", BROWSER),
    ("err bad ssl", BROWSER),
    ("err ssl version or cipher", BROWSER),
    ("err ssl protocol error", BROWSER),
    ("err ssl client auth", BROWSER),
    ("err ssl unrecognized name alert", BROWSER),
    ("err tls ", NODE),
    ("err ssl ", NODE),
    ("eproto", NODE),
    ("econnreset", NODE),
    ("invalid peer certificate", RUSTLS),
    ("verify error:num=", OPENSSL),
    ("ssl routines", OPENSSL),
    ("error:0a", OPENSSL),
];

/// OpenSSL 3 reason codes (`error:0A000418:SSL routines::…`) and their texts, as
/// `openssl errstr` prints them: a pasted code alone is explained by its text.
const OPENSSL3_REASONS: &[(&str, &str)] = &[
    ("0a000086", "certificate verify failed"),
    ("0a000410", "sslv3 alert handshake failure"),
    ("0a000412", "sslv3 alert bad certificate"),
    ("0a000414", "sslv3 alert certificate revoked"),
    ("0a000415", "sslv3 alert certificate expired"),
    ("0a000416", "sslv3 alert certificate unknown"),
    ("0a000418", "tlsv1 alert unknown ca"),
    ("0a00042e", "tlsv1 alert protocol version"),
    ("0a000458", "tlsv1 unrecognized name"),
    ("0a00045c", "tlsv13 alert certificate required"),
    ("0a000460", "tlsv1 alert no application protocol"),
    ("0a00010b", "wrong version number"),
    ("0a000102", "unsupported protocol"),
    ("0a0000bf", "no protocols available"),
    ("0a0000c1", "no shared cipher"),
    ("0a0000c7", "peer did not return a certificate"),
    ("0a000126", "unexpected eof while reading"),
    ("0a00014d", "legacy sigalg disallowed or unsupported"),
    ("0a00018e", "ca md too weak"),
    ("0a00018f", "ee key too small"),
    ("05800074", "key values mismatch"),
];

/// OpenSSL verify codes (`verify error:num=N`), also accepted bare.
const OPENSSL_CODES: &[(u32, &[&str], Option<&str>)] = &[
    (9, &[NOT_YET], None),
    (10, &[EXPIRED], None),
    (18, &[SELF_SIGNED, PINNED], Some(SELF_SIGNED_NOTE)),
    (19, &[ROOT, PINNED], Some(IN_CHAIN)),
    (20, &[ROOT, INTERMEDIATE, PINNED], Some(LOCAL_ISSUER)),
    (21, &[INTERMEDIATE, ROOT], Some(FIRST_CERT)),
    (26, &[PURPOSE], None),
    (62, &[NAME], None),
];

// === the knob per ecosystem ===

/// Which kind of fix a cause needs from the client.
fn family(cause: &str) -> Option<&'static str> {
    match cause {
        ROOT | SELF_SIGNED | PINNED => Some("trust"),
        REQUIRED | REJECTED | CLIENT_CHAIN => Some("client-cert"),
        NAME => Some("name"),
        INTERMEDIATE => Some("chain"),
        _ => None,
    }
}

/// (family, ecosystem, what to do, snippet). Never "turn verification off": a test and
/// the fuzz oracle grep these.
const KNOBS: &[(&str, &str, &str, &str)] = &[
    (
        "trust",
        NODE,
        "Trust that CA for this client only with the `ca` option, or for the whole process \
         with NODE_EXTRA_CA_CERTS (read once, at startup).",
        "https.get(url, { ca: fs.readFileSync('ca.pem') })\nNODE_EXTRA_CA_CERTS=/path/ca.pem node app.js",
    ),
    (
        "trust",
        PYTHON,
        "requests uses certifi's list, not the system's: pass verify= or set \
         REQUESTS_CA_BUNDLE. ssl, urllib3 and httpx: a context with cafile=, or SSL_CERT_FILE.",
        "requests.get(url, verify='/path/ca.pem')        # or REQUESTS_CA_BUNDLE=/path/ca.pem\n\
         ctx = ssl.create_default_context(cafile='/path/ca.pem')\n\
         httpx.get(url, verify=ctx)                       # or SSL_CERT_FILE=/path/ca.pem",
    ),
    (
        "trust",
        JAVA,
        "Import the CA into a truststore with keytool and point the JVM at it with \
         -Djavax.net.ssl.trustStore (or import it into the JDK's cacerts).",
        "keytool -importcert -noprompt -alias my-ca -file ca.pem -keystore truststore.p12 -storetype PKCS12 -storepass changeit\n\
         java -Djavax.net.ssl.trustStore=truststore.p12 -Djavax.net.ssl.trustStorePassword=changeit -jar app.jar",
    ),
    (
        "trust",
        GO,
        "Add the CA to tls.Config.RootCAs, or point SSL_CERT_FILE at it (read by crypto/x509 \
         on Linux).",
        "pool := x509.NewCertPool()\npool.AppendCertsFromPEM(caPEM)\n\
         client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}\n\
         // or: SSL_CERT_FILE=/path/ca.pem ./app",
    ),
    (
        "trust",
        CURL,
        "Give curl the CA with --cacert (or CURL_CA_BUNDLE).",
        "curl --cacert ca.pem https://HOST/",
    ),
    (
        "trust",
        OPENSSL,
        "Give openssl the CA with -CAfile.",
        "openssl s_client -connect HOST:443 -servername HOST -CAfile ca.pem -verify_return_error",
    ),
    (
        "trust",
        DOTNET,
        "Trust the CA through the chain policy (.NET 7+), not a validation callback that \
         returns true: X509ChainPolicy.CustomTrustStore with TrustMode CustomRootTrust.",
        "var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust };\n\
         policy.CustomTrustStore.Add(X509Certificate2.CreateFromPem(File.ReadAllText(\"ca.pem\")));\n\
         var handler = new SocketsHttpHandler();\n\
         handler.SslOptions.CertificateChainPolicy = policy;",
    ),
    (
        "trust",
        RUSTLS,
        "Add the CA to the RootCertStore (reqwest: add_root_certificate).",
        "roots.add(CertificateDer::from_pem_file(\"ca.pem\")?)?;",
    ),
    (
        "trust",
        BROWSER,
        "For your own private CA only, import it into the operating system's (or Firefox's) \
         certificate authorities. On a public site this error means an intercepting proxy or \
         a misconfigured server: do not click through.",
        "",
    ),
    (
        "client-cert",
        NODE,
        "Present the certificate with its chain (`cert`) and its key (`key`).",
        "https.get(url, { cert: fs.readFileSync('client.chain.pem'), key: fs.readFileSync('client.key'), ca: fs.readFileSync('ca.pem') })",
    ),
    (
        "client-cert",
        PYTHON,
        "requests: cert=(chain, key). ssl, urllib3 and httpx: load_cert_chain on the context.",
        "requests.get(url, cert=('client.chain.pem', 'client.key'), verify='ca.pem')\n\
         ctx = ssl.create_default_context(cafile='ca.pem')\n\
         ctx.load_cert_chain('client.chain.pem', 'client.key')\n\
         httpx.get(url, verify=ctx)",
    ),
    (
        "client-cert",
        JAVA,
        "Give the JVM a keystore that holds the key and the whole chain: JSSE only presents a \
         certificate whose chain leads to a CA the server names.",
        "openssl pkcs12 -export -in client.chain.pem -inkey client.key -out client.p12\n\
         java -Djavax.net.ssl.keyStore=client.p12 -Djavax.net.ssl.keyStoreType=PKCS12 -Djavax.net.ssl.keyStorePassword=… -jar app.jar",
    ),
    (
        "client-cert",
        GO,
        "Load the chain and key into tls.Config.Certificates.",
        "cert, err := tls.LoadX509KeyPair(\"client.chain.pem\", \"client.key\")\n\
         cfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}",
    ),
    (
        "client-cert",
        CURL,
        "Pass the certificate with its chain and the key.",
        "curl --cert client.chain.pem --key client.key --cacert ca.pem https://HOST/",
    ),
    (
        "client-cert",
        OPENSSL,
        "Pass the certificate, its intermediates and the key.",
        "openssl s_client -connect HOST:443 -servername HOST -cert client.crt -cert_chain intermediates.pem -key client.key",
    ),
    (
        "client-cert",
        DOTNET,
        "Add the client certificate with its key to the handler; its intermediates must be \
         sent too.",
        "var handler = new SocketsHttpHandler();\n\
         handler.SslOptions.ClientCertificates = new X509CertificateCollection {\n\
         \x20   X509Certificate2.CreateFromPemFile(\"client.crt\", \"client.key\") };",
    ),
    (
        "client-cert",
        BROWSER,
        "Import the client certificate with its key and chain (a PKCS#12 file; `portcullis \
         pki` writes NAME.p12) into the browser's or the system's personal certificates, then \
         choose it when the browser asks.",
        "",
    ),
    (
        "client-cert",
        NGINX,
        "nginx checks client certificates against ssl_client_certificate: it must hold the \
         CA that issues them, ssl_verify_depth must cover their chain, and clients must send \
         their intermediates. Its error log says why it refused one.",
        "ssl_client_certificate /etc/nginx/client-ca.pem;\nssl_verify_client on;\nssl_verify_depth 2;",
    ),
    (
        "client-cert",
        HAPROXY,
        "HAProxy checks client certificates against the bind line's ca-file; clients must \
         send their intermediates.",
        "bind :443 ssl crt server.pem ca-file client-ca.pem verify required",
    ),
    (
        "name",
        NODE,
        "Connect by a name the certificate carries; connecting by address, set `servername`.",
        "tls.connect({ host: '192.0.2.10', port: 443, servername: 'name.in.cert', ca })",
    ),
    (
        "name",
        PYTHON,
        "Use a URL with a name the certificate carries; with the ssl module, server_hostname=.",
        "ctx.wrap_socket(sock, server_hostname='name.in.cert')",
    ),
    (
        "name",
        GO,
        "Connect by a name the certificate carries, or set tls.Config.ServerName.",
        "cfg := &tls.Config{ServerName: \"name.in.cert\", RootCAs: pool}",
    ),
    (
        "name",
        CURL,
        "Use the name in the URL and point it at the address with --resolve.",
        "curl --resolve name.in.cert:443:192.0.2.10 https://name.in.cert/",
    ),
    (
        "name",
        OPENSSL,
        "Send and check the name the certificate carries.",
        "openssl s_client -connect 192.0.2.10:443 -servername name.in.cert -verify_hostname name.in.cert",
    ),
];

/// The secure fix with the knob of the ecosystem that printed the text, for each kind of
/// fix the ranked causes need.
fn knobs(causes: &[&str], ecosystem: Option<&str>) -> Vec<Fix> {
    let mut out: Vec<Fix> = Vec::new();
    let mut seen = Vec::new();
    for family in causes.iter().filter_map(|c| family(c)) {
        if seen.contains(&family) {
            continue;
        }
        seen.push(family);
        if family == "chain" {
            out.push(Fix {
                ecosystem: "server".into(),
                summary: "If the server leaves out its intermediate, the fix is on the server: \
                          serve the leaf followed by its intermediates."
                    .into(),
                snippet: "cat server.crt intermediate.crt > fullchain.pem\n# nginx: ssl_certificate fullchain.pem;  Node.js: cert: fs.readFileSync('fullchain.pem')".into(),
            });
            continue;
        }
        let Some(eco) = ecosystem else { continue };
        if let Some((_, e, summary, snippet)) =
            KNOBS.iter().find(|(f, e, _, _)| *f == family && *e == eco)
        {
            out.push(Fix {
                ecosystem: (*e).into(),
                summary: summary.split_whitespace().collect::<Vec<_>>().join(" "),
                snippet: (*snippet).into(),
            });
        }
    }
    out
}

// === turning verification off ===

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

fn normalize(s: &str) -> String {
    s.to_lowercase().replace(['_', '-'], " ")
}

/// Explains an error text or code; `None` when nothing matches.
pub fn explain(input: &str) -> Option<Explanation> {
    let mut text = normalize(input.trim());
    let spaced = format!(
        " {} ",
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    if let Some(p) = TURN_OFF_VERIFICATION.iter().find(|p| spaced.contains(*p)) {
        return Some(Explanation {
            input: input.to_owned(),
            cause: VERIFICATION_OFF.into(),
            causes: vec![VERIFICATION_OFF.into()],
            matched: p.trim().to_owned(),
            what: "that setting turns certificate verification off".into(),
            fix: PIN_INSTEAD.split_whitespace().collect::<Vec<_>>().join(" "),
            ..Default::default()
        });
    }
    // An OpenSSL 3 code alone ("error:0A000418") is explained by its text.
    for (code, reason) in OPENSSL3_REASONS {
        if text.contains(code) && !text.contains(reason) {
            text = format!("{text} {reason}");
        }
    }
    let code = text
        .strip_prefix("verify error:num=")
        .unwrap_or(&text)
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse::<u32>().ok());
    let (matched, ranked, from, note) = ROWS
        .iter()
        .find(|r| text.contains(&normalize(r.pattern)))
        .map(|r| (normalize(r.pattern), r.causes, r.from, r.note))
        .or_else(|| {
            let num = text
                .split("num=")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse().ok())
                .or(code.filter(|_| text.chars().all(|c| c.is_ascii_digit())))?;
            OPENSSL_CODES
                .iter()
                .find(|(n, _, _)| *n == num)
                .map(|(n, c, note)| (format!("OpenSSL verify code {n}"), *c, Some(OPENSSL), *note))
        })?;
    let cause = causes::get(ranked.first()?)?;
    let ecosystem = ORIGINS
        .iter()
        .find(|(sign, _)| text.contains(&normalize(sign)))
        .map(|(_, e)| *e)
        .or(from);
    let fixes = knobs(ranked, ecosystem);
    // In the words of the ecosystem that printed the text when there are such words for
    // the likeliest cause: Python users read `verify=`, not NODE_EXTRA_CA_CERTS.
    let fix = fixes
        .first()
        .filter(|f| Some(f.ecosystem.as_str()) == ecosystem && family(cause.slug).is_some())
        .map_or_else(|| cause.fix.to_owned(), |f| f.summary.clone());
    Some(Explanation {
        input: input.to_owned(),
        cause: cause.slug.into(),
        causes: ranked.iter().map(|c| (*c).to_owned()).collect(),
        matched,
        ecosystem: ecosystem.map(str::to_owned),
        what: cause.what.into(),
        fix,
        fixes,
        note: note.map(|n| n.split_whitespace().collect::<Vec<_>>().join(" ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string people paste that `explain` must know: the text (as the tool prints
    /// it, seen from the real tool where it is installed here), the causes it ranks, and
    /// whose text it is. Add a line when you add a row.
    #[rustfmt::skip]
    const PASTED: &[(&str, &[&str], Option<&str>)] = &[
        // Node.js 20 (https.get against openssl s_server, nginx, HAProxy, Caddy, Node)
        ("UNABLE_TO_VERIFY_LEAF_SIGNATURE", &[INTERMEDIATE, ROOT], Some(NODE)),
        ("Error: unable to verify the first certificate", &[INTERMEDIATE, ROOT], None),
        ("UNABLE_TO_GET_ISSUER_CERT_LOCALLY | unable to get local issuer certificate", &[ROOT, PINNED, INTERMEDIATE], Some(NODE)),
        ("SELF_SIGNED_CERT_IN_CHAIN", &[ROOT, PINNED], Some(NODE)),
        ("Error: self-signed certificate in certificate chain", &[ROOT, PINNED], None),
        ("DEPTH_ZERO_SELF_SIGNED_CERT", &[SELF_SIGNED, PINNED], Some(NODE)),
        ("ERR_TLS_CERT_ALTNAME_INVALID", &[NAME, CN_ONLY], Some(NODE)),
        ("Hostname/IP does not match certificate's altnames: Host: localhost. is not in the cert's altnames: DNS:other.example", &[NAME, CN_ONLY], Some(NODE)),
        ("CERT_HAS_EXPIRED", &[EXPIRED], Some(NODE)),
        ("CERT_NOT_YET_VALID", &[NOT_YET], Some(NODE)),
        ("write EPROTO 800CE2EB3E7F0000:error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 40", &[REQUIRED, SNI, CIPHER], Some(NODE)),
        ("write EPROTO 80FC42FF117F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:", &[NOT_TLS], Some(NODE)),
        ("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", &[REQUIRED], Some(NODE)),
        ("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", &[REJECTED, CLIENT_CHAIN], Some(NODE)),
        ("ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE", &[REJECTED, REQUIRED, CLIENT_CHAIN], Some(NODE)),
        ("ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL", &[ALPN], Some(NODE)),
        ("ERR_SSL_TLSV1_UNRECOGNIZED_NAME", &[SNI_UNKNOWN], Some(NODE)),
        ("ECONNRESET | socket hang up", &[REJECTED, RESET], Some(NODE)),
        ("Error: socket hang up", &[REJECTED, RESET], Some(NODE)),
        ("ECONNRESET | Client network socket disconnected before secure TLS connection was established", &[RESET, SNI, REJECTED], Some(NODE)),
        ("Error: read ECONNRESET", &[RESET, SNI], Some(NODE)),
        ("getaddrinfo ENOTFOUND nope.invalid", &[DNS], Some(NODE)),
        ("connect ECONNREFUSED 127.0.0.1:1", &[REFUSED], Some(NODE)),
        ("connect ETIMEDOUT 192.0.2.1:443", &[TCP_TIMEOUT], Some(NODE)),
        // Python 3.11 ssl, requests 2.34, urllib3 2, httpx 0.28
        ("ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)", &[ROOT, INTERMEDIATE, PINNED], Some(PYTHON)),
        ("requests.exceptions.SSLError: HTTPSConnectionPool(host='localhost', port=9401): Max retries exceeded with url: / (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)')))", &[ROOT, INTERMEDIATE, PINNED], Some(PYTHON)),
        ("httpx.ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)", &[ROOT, PINNED], Some(PYTHON)),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)", &[SELF_SIGNED, PINNED], Some(PYTHON)),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate is not valid for 'localhost'. (_ssl.c:1006)", &[NAME, CN_ONLY], Some(PYTHON)),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'. (_ssl.c:1006)", &[NAME], Some(PYTHON)),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)", &[EXPIRED], Some(PYTHON)),
        ("ssl.SSLError: [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)", &[REJECTED, CLIENT_CHAIN], Some(PYTHON)),
        ("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure (_ssl.c:1006)", &[REQUIRED, SNI, CIPHER], Some(PYTHON)),
        ("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)", &[REJECTED, REQUIRED, CLIENT_CHAIN], Some(PYTHON)),
        ("httpx.ReadError: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required (_ssl.c:2580)", &[REQUIRED], Some(PYTHON)),
        ("[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version (_ssl.c:1006)", &[VERSION], Some(PYTHON)),
        ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", &[NOT_TLS], Some(PYTHON)),
        ("ssl.SSLEOFError: [SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol (_ssl.c:1006)", &[RESET, SNI, REJECTED], Some(PYTHON)),
        ("requests.exceptions.ConnectionError: ('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))", &[REJECTED, RESET], Some(PYTHON)),
        ("httpx.RemoteProtocolError: Server disconnected without sending a response.", &[REJECTED, RESET], Some(PYTHON)),
        ("socket.gaierror: [Errno -2] Name or service not known", &[DNS], None),
        // Java 17 JSSE (HttpsURLConnection)
        ("javax.net.ssl.SSLHandshakeException: PKIX path building failed: sun.security.provider.certpath.SunCertPathBuilderException: unable to find valid certification path to requested target", &[ROOT, INTERMEDIATE, SELF_SIGNED], Some(JAVA)),
        ("unable to find valid certification path to requested target", &[ROOT, INTERMEDIATE, SELF_SIGNED], Some(JAVA)),
        ("javax.net.ssl.SSLHandshakeException: Received fatal alert: bad_certificate", &[REJECTED, REQUIRED, CLIENT_CHAIN], Some(JAVA)),
        ("Received fatal alert: certificate_required", &[REQUIRED], Some(JAVA)),
        ("javax.net.ssl.SSLHandshakeException: Received fatal alert: handshake_failure", &[REQUIRED, SNI, CIPHER], Some(JAVA)),
        ("javax.net.ssl.SSLHandshakeException: Received fatal alert: unknown_ca", &[REJECTED, CLIENT_CHAIN], Some(JAVA)),
        ("javax.net.ssl.SSLHandshakeException: Received fatal alert: protocol_version", &[VERSION], Some(JAVA)),
        ("javax.net.ssl.SSLHandshakeException: No subject alternative names present", &[CN_ONLY, NAME], Some(JAVA)),
        ("java.security.cert.CertificateException: No subject alternative DNS name matching localhost found.", &[NAME], Some(JAVA)),
        ("No subject alternative names matching IP address 127.0.0.1 found", &[NAME], Some(JAVA)),
        ("java.security.cert.CertificateException: No name matching app.internal found", &[NAME, CN_ONLY], Some(JAVA)),
        ("javax.net.ssl.SSLException: Unsupported or unrecognized SSL message", &[NOT_TLS], Some(JAVA)),
        ("javax.net.ssl.SSLHandshakeException: Remote host terminated the handshake", &[RESET, SNI], Some(JAVA)),
        ("java.security.cert.CertificateExpiredException: NotAfter: Tue Jan 02 00:00:00 UTC 2024", &[EXPIRED], Some(JAVA)),
        // Go (crypto/tls, crypto/x509; Caddy's own log)
        ("Get \"https://localhost:8443/\": tls: failed to verify certificate: x509: certificate signed by unknown authority", &[ROOT, INTERMEDIATE, SELF_SIGNED], Some(GO)),
        ("x509: certificate relies on legacy Common Name field, use SANs instead", &[CN_ONLY], Some(GO)),
        ("remote error: tls: bad certificate", &[REJECTED, REQUIRED, CLIENT_CHAIN], Some(GO)),
        ("remote error: tls: certificate required", &[REQUIRED], Some(GO)),
        ("remote error: tls: unknown certificate authority", &[REJECTED, CLIENT_CHAIN], Some(GO)),
        ("remote error: tls: handshake failure", &[REQUIRED, SNI, CIPHER], Some(GO)),
        ("remote error: tls: protocol version not supported", &[VERSION], Some(GO)),
        ("x509: certificate has expired or is not yet valid: current time 2026-12-01T14:00:00Z is after 2026-11-30T00:00:00Z", &[EXPIRED, NOT_YET], Some(GO)),
        ("x509: certificate is valid for other.example, not localhost", &[NAME], Some(GO)),
        ("x509: cannot validate certificate for 10.0.0.5 because it doesn't contain any IP SANs", &[NAME], Some(GO)),
        ("tls: first record does not look like a TLS handshake", &[NOT_TLS], Some(GO)),
        ("http: server gave HTTP response to HTTPS client", &[NOT_TLS], Some(GO)),
        ("{\"logger\":\"http.stdlib\",\"msg\":\"http: TLS handshake error from 127.0.0.1:63200: tls: client didn't provide a certificate\"}", &[REQUIRED], Some(GO)),
        // .NET (HttpClient, SslStream)
        ("System.Security.Authentication.AuthenticationException: The remote certificate is invalid according to the validation procedure: RemoteCertificateNameMismatch, RemoteCertificateChainErrors", &[ROOT, SELF_SIGNED, NAME], Some(DOTNET)),
        ("The remote certificate is invalid according to the validation procedure.", &[ROOT, NAME, INTERMEDIATE], Some(DOTNET)),
        ("The remote certificate is invalid according to the validation procedure: RemoteCertificateNameMismatch", &[NAME, CN_ONLY], Some(DOTNET)),
        ("RemoteCertificateChainErrors", &[ROOT, INTERMEDIATE, EXPIRED], Some(DOTNET)),
        ("The SSL connection could not be established, see inner exception. ---> System.Security.Authentication.AuthenticationException: The remote certificate is invalid because of errors in the certificate chain: UntrustedRoot", &[ROOT, SELF_SIGNED], Some(DOTNET)),
        ("The remote certificate is invalid because of errors in the certificate chain: PartialChain", &[INTERMEDIATE, ROOT], Some(DOTNET)),
        ("The remote certificate is invalid because of errors in the certificate chain: NotTimeValid", &[EXPIRED, NOT_YET], Some(DOTNET)),
        ("Authentication failed because the remote party sent a TLS alert: 'HandshakeFailure'.", &[REQUIRED, SNI, CIPHER], Some(DOTNET)),
        // curl 7.88 (OpenSSL 3)
        ("curl: (35) OpenSSL/3.0.19: error:0A000410:SSL routines::sslv3 alert handshake failure", &[REQUIRED, SNI, CIPHER], Some(CURL)),
        ("curl: (35) error:0A00010B:SSL routines::wrong version number", &[NOT_TLS], Some(CURL)),
        ("curl: (35) OpenSSL/3.0.19: error:0A000418:SSL routines::tlsv1 alert unknown ca", &[REJECTED, CLIENT_CHAIN], Some(CURL)),
        ("curl: (35) OpenSSL/3.0.19: error:0A00042E:SSL routines::tlsv1 alert protocol version", &[VERSION], Some(CURL)),
        ("curl: (35) OpenSSL/3.0.19: error:0A00014D:SSL routines::legacy sigalg disallowed or unsupported", &[VERSION, WEAK_SIG], Some(CURL)),
        ("curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to localhost:9422", &[RESET, SNI, REJECTED], Some(CURL)),
        ("curl: (35) Unknown SSL protocol error in connection to localhost:8443", &[REQUIRED, VERSION], Some(CURL)),
        ("curl: (35) OpenSSL SSL_connect: Connection reset by peer in connection to example.com:443", &[RESET, SNI], Some(CURL)),
        ("curl: (51) SSL: certificate subject name 'localhost' does not match target host name '127.0.0.1'", &[CN_ONLY, NAME], Some(CURL)),
        ("curl: (60) SSL: certificate subject name 'localhost' does not match target host name '127.0.0.1'", &[CN_ONLY, NAME], Some(CURL)),
        ("curl: (60) SSL: no alternative certificate subject name matches target host name '127.0.0.1'", &[NAME], Some(CURL)),
        ("curl: (60) SSL certificate problem: unable to get local issuer certificate", &[ROOT, INTERMEDIATE, PINNED], Some(CURL)),
        ("curl: (60) SSL certificate problem: self-signed certificate in certificate chain", &[ROOT, PINNED], Some(CURL)),
        ("curl: (60) SSL certificate problem: self-signed certificate", &[SELF_SIGNED, PINNED], Some(CURL)),
        ("curl: (60) SSL certificate problem: certificate has expired", &[EXPIRED], Some(CURL)),
        ("curl: (56) OpenSSL SSL_read: OpenSSL/3.0.19: error:0A00045C:SSL routines::tlsv13 alert certificate required, errno 0", &[REQUIRED], Some(CURL)),
        ("curl: (56) OpenSSL SSL_read: OpenSSL/3.0.19: error:0A000418:SSL routines::tlsv1 alert unknown ca, errno 0", &[REJECTED, CLIENT_CHAIN], Some(CURL)),
        ("curl: (56) OpenSSL SSL_read: OpenSSL/3.0.19: error:0A000412:SSL routines::sslv3 alert bad certificate, errno 0", &[REJECTED, REQUIRED, CLIENT_CHAIN], Some(CURL)),
        ("curl: (56) Recv failure: Connection reset by peer", &[RESET, SNI], Some(CURL)),
        ("curl: (55) getpeername() failed with errno 107: Transport endpoint is not connected", &[REQUIRED, REJECTED], Some(CURL)),
        ("curl: (55) Send failure: Broken pipe", &[REJECTED, REQUIRED], Some(CURL)),
        ("curl: (16) Send failure: Connection reset by peer", &[REJECTED, REQUIRED], Some(CURL)),
        ("curl: (52) Empty reply from server", &[REJECTED, RESET], Some(CURL)),
        ("curl: (58) unable to set private key file: 'mal.key' type PEM", &[KEY_MISMATCH, PASSPHRASE], Some(CURL)),
        ("curl: (58) could not load PEM client certificate from client.crt, OpenSSL error error:80000002:system library::No such file or directory, (no key found, wrong pass phrase, or wrong file format?)", &[PASSPHRASE, KEY_MISMATCH], Some(CURL)),
        ("curl: (77) error setting certificate file: /nonexistent/ca.pem", &[ROOT], Some(CURL)),
        ("curl: (77) error setting certificate verify locations:  CAfile: /etc/ssl/certs/ca-certificates.crt CApath: none", &[ROOT], Some(CURL)),
        ("curl: (6) Could not resolve host: nope.invalid", &[DNS], Some(CURL)),
        ("curl: (7) Failed to connect to localhost port 1 after 0 ms: Couldn't connect to server", &[REFUSED], Some(CURL)),
        ("curl: (28) Failed to connect to 192.0.2.1 port 443 after 5001 ms: Timeout was reached", &[TCP_TIMEOUT, HELLO_TIMEOUT], Some(CURL)),
        // OpenSSL 3 codes and s_client
        ("error:0A000086:SSL routines::certificate verify failed", &[ROOT, INTERMEDIATE, SELF_SIGNED, EXPIRED, NAME], Some(OPENSSL)),
        ("error:0A000412", &[REJECTED, REQUIRED, CLIENT_CHAIN], Some(OPENSSL)),
        ("error:0A000418:SSL routines::tlsv1 alert unknown ca", &[REJECTED, CLIENT_CHAIN], Some(OPENSSL)),
        ("0A00045C", &[REQUIRED], None),
        ("error:0A000410:SSL routines::sslv3 alert handshake failure", &[REQUIRED, SNI, CIPHER], Some(OPENSSL)),
        ("error:0A00010B:SSL routines::wrong version number", &[NOT_TLS], Some(OPENSSL)),
        ("error:0A000102:SSL routines::unsupported protocol", &[VERSION], Some(OPENSSL)),
        ("error:0A0000C7:SSL routines::peer did not return a certificate", &[REQUIRED], Some(OPENSSL)),
        ("error:0A0000C1:SSL routines::no shared cipher", &[CIPHER], Some(OPENSSL)),
        ("error:0A000458:SSL routines::tlsv1 unrecognized name", &[SNI_UNKNOWN], Some(OPENSSL)),
        ("error:0A000126:SSL routines::unexpected eof while reading", &[RESET, SNI, REJECTED], Some(OPENSSL)),
        ("error:05800074:x509 certificate routines::X509_check_private_key:key values mismatch", &[KEY_MISMATCH], None),
        ("verify error:num=21:unable to verify the first certificate", &[INTERMEDIATE, ROOT], Some(OPENSSL)),
        ("verify error:num=19", &[ROOT, PINNED], Some(OPENSSL)),
        ("18", &[SELF_SIGNED, PINNED], Some(OPENSSL)),
        // browsers
        ("ERR_BAD_SSL_CLIENT_AUTH_CERT", &[REQUIRED, REJECTED], Some(BROWSER)),
        ("ERR_SSL_CLIENT_AUTH_CERT_NEEDED", &[REQUIRED], Some(BROWSER)),
        ("ERR_SSL_VERSION_OR_CIPHER_MISMATCH", &[VERSION, CIPHER, SNI], Some(BROWSER)),
        ("SSL_ERROR_HANDSHAKE_FAILURE_ALERT", &[REQUIRED, SNI, CIPHER], Some(BROWSER)),
        ("NET::ERR_CERT_AUTHORITY_INVALID", &[ROOT, SELF_SIGNED, INTERMEDIATE], Some(BROWSER)),
        ("SEC_ERROR_UNKNOWN_ISSUER", &[ROOT, INTERMEDIATE, SELF_SIGNED], Some(BROWSER)),
        ("NET::ERR_CERT_COMMON_NAME_INVALID", &[NAME, CN_ONLY], Some(BROWSER)),
        ("SSL_ERROR_BAD_CERT_ALERT", &[REJECTED, REQUIRED, CLIENT_CHAIN], Some(BROWSER)),
        ("SSL_ERROR_RX_CERTIFICATE_REQUIRED_ALERT", &[REQUIRED], Some(BROWSER)),
        ("SSL_ERROR_UNKNOWN_CA_ALERT", &[REJECTED, CLIENT_CHAIN], Some(BROWSER)),
        ("NET::ERR_CERT_DATE_INVALID", &[EXPIRED, NOT_YET], Some(BROWSER)),
        ("SSL_ERROR_RX_RECORD_TOO_LONG", &[NOT_TLS], Some(BROWSER)),
        ("ERR_SSL_PROTOCOL_ERROR", &[NOT_TLS, REQUIRED, VERSION], Some(BROWSER)),
        ("MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT", &[SELF_SIGNED], Some(BROWSER)),
        // nginx pages and log, HAProxy log
        ("400 Bad Request No required SSL certificate was sent nginx", &[REQUIRED], Some(NGINX)),
        ("400 The SSL certificate error", &[REJECTED, CLIENT_CHAIN], Some(NGINX)),
        ("client sent no required SSL certificate while reading client request headers", &[REQUIRED], Some(NGINX)),
        ("client SSL certificate verify error: (20:unable to get local issuer certificate) while reading client request headers", &[REJECTED, CLIENT_CHAIN], Some(NGINX)),
        ("127.0.0.1:53168 [01/Dec/2026:14:37:59.077] doctor/1: SSL client certificate not trusted", &[REJECTED, CLIENT_CHAIN], Some(HAPROXY)),
        ("127.0.0.1:53140 [01/Dec/2026:14:37:57.017] doctor/1: SSL handshake failure", &[REQUIRED, VERSION, CIPHER], Some(HAPROXY)),
        ("SSL client CA chain cannot be verified", &[REJECTED, CLIENT_CHAIN], Some(HAPROXY)),
        // rustls
        ("invalid peer certificate: UnknownIssuer", &[ROOT, INTERMEDIATE, SELF_SIGNED], Some(RUSTLS)),
        ("received fatal alert: CertificateRequired", &[REQUIRED], Some(RUSTLS)),
        ("invalid peer certificate: NotValidForName", &[NAME, CN_ONLY], Some(RUSTLS)),
        ("received corrupt message of type InvalidContentType", &[NOT_TLS], Some(RUSTLS)),
    ];

    #[test]
    fn pasted_strings_rank_their_causes() {
        assert!(PASTED.len() >= 80, "{} strings", PASTED.len());
        let mut wrong = Vec::new();
        for (text, want, eco) in PASTED {
            match explain(text) {
                Some(e) => {
                    let got: Vec<&str> = e.causes.iter().map(String::as_str).collect();
                    if got != *want || e.ecosystem.as_deref() != *eco || e.cause != want[0] {
                        wrong.push(format!(
                            "{text:?}\n    want {want:?} from {eco:?}\n    got  {got:?} from {:?} (matched {:?})",
                            e.ecosystem, e.matched
                        ));
                    }
                }
                None => wrong.push(format!("{text:?}: no explanation")),
            }
        }
        assert!(
            wrong.is_empty(),
            "{} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert!(explain("the weather is nice").is_none());
    }

    /// A string with several causes says how to tell them apart.
    #[test]
    fn ambiguous_strings_say_how_to_tell_the_causes_apart() {
        for (text, _, _) in PASTED.iter().filter(|(_, c, _)| c.len() > 1) {
            let e = explain(text).unwrap_or_default();
            assert!(
                e.note.is_some(),
                "{text:?} ranks {:?} without a note",
                e.causes
            );
        }
        let e = explain("sslv3 alert handshake failure").unwrap_or_default();
        let note = e.note.unwrap_or_default();
        assert!(
            note.contains("client certificate")
                && note.contains("SNI")
                && note.contains("-servername"),
            "{note}"
        );
        let e = explain("curl: (35) Unknown SSL protocol error in connection to localhost:8443")
            .unwrap_or_default();
        let note = e.note.unwrap_or_default();
        assert!(
            note.contains("TLS version") && note.contains("portcullis doctor"),
            "{note}"
        );
        let e = explain("tlsv1 alert unknown ca").unwrap_or_default();
        assert!(e.note.unwrap_or_default().contains("chain"));
    }

    /// The fix names the knob of the ecosystem that printed the text, not another's.
    #[test]
    fn the_fix_names_the_knob_of_the_ecosystem_that_printed_it() {
        let knob = |text: &str| -> (String, String) {
            let e = explain(text).unwrap_or_default();
            let f = e.fixes.first().cloned().unwrap_or_default();
            (f.ecosystem, format!("{} {}", f.summary, f.snippet))
        };
        for (text, eco, must, must_not) in [
            (
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)",
                PYTHON,
                "REQUESTS_CA_BUNDLE",
                "NODE_EXTRA_CA_CERTS",
            ),
            (
                "SELF_SIGNED_CERT_IN_CHAIN",
                NODE,
                "NODE_EXTRA_CA_CERTS",
                "REQUESTS_CA_BUNDLE",
            ),
            (
                "PKIX path building failed",
                JAVA,
                "-Djavax.net.ssl.trustStore",
                "NODE_EXTRA",
            ),
            (
                "x509: certificate signed by unknown authority",
                GO,
                "RootCAs",
                "NODE_EXTRA",
            ),
            (
                "curl: (60) SSL certificate problem: self-signed certificate in certificate chain",
                CURL,
                "--cacert",
                "NODE_EXTRA",
            ),
            (
                "The remote certificate is invalid because of errors in the certificate chain: UntrustedRoot",
                DOTNET,
                "CustomTrustStore",
                "return true;",
            ),
            (
                "ssl.SSLError: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required (_ssl.c:2580)",
                PYTHON,
                "load_cert_chain",
                "NODE",
            ),
            (
                "remote error: tls: certificate required",
                GO,
                "tls.LoadX509KeyPair",
                "NODE",
            ),
            (
                "Received fatal alert: certificate_required",
                JAVA,
                "-Djavax.net.ssl.keyStore",
                "NODE",
            ),
        ] {
            let (got, text_of_fix) = knob(text);
            assert_eq!(got, eco, "{text}");
            assert!(text_of_fix.contains(must), "{text}: {text_of_fix}");
            assert!(!text_of_fix.contains(must_not), "{text}: {text_of_fix}");
        }
        let e = explain("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)").unwrap_or_default();
        assert!(
            e.fix.contains("REQUESTS_CA_BUNDLE") && !e.fix.contains("NODE_EXTRA_CA_CERTS"),
            "{}",
            e.fix
        );
        // A missing intermediate is fixed on the server, whoever printed it.
        let e = explain("UNABLE_TO_VERIFY_LEAF_SIGNATURE").unwrap_or_default();
        assert_eq!(
            e.fixes.first().map(|f| f.ecosystem.as_str()),
            Some("server")
        );
    }

    #[test]
    fn the_table_names_only_known_causes_and_ecosystems() {
        let ecosystems = [
            NODE, PYTHON, JAVA, GO, DOTNET, CURL, OPENSSL, RUSTLS, BROWSER, NGINX, HAPROXY,
        ];
        let all = ROWS
            .iter()
            .flat_map(|r| r.causes.iter())
            .chain(OPENSSL_CODES.iter().flat_map(|(_, c, _)| c.iter()));
        for slug in all {
            assert!(causes::get(slug).is_some(), "unknown cause {slug}");
        }
        for r in ROWS {
            assert!(!r.causes.is_empty(), "{}", r.pattern);
            assert!(
                r.from.is_none_or(|e| ecosystems.contains(&e)),
                "{}",
                r.pattern
            );
            assert!(
                r.causes.len() == 1 || r.note.is_some(),
                "{} ranks several causes without a note",
                r.pattern
            );
        }
        for (_, e, _, _) in KNOBS {
            assert!(ecosystems.contains(e), "{e}");
        }
        // Each row is reachable: no earlier row swallows its own text.
        for (i, r) in ROWS.iter().enumerate() {
            let first = ROWS
                .iter()
                .position(|o| normalize(r.pattern).contains(&normalize(o.pattern)));
            assert_eq!(
                first,
                Some(i),
                "row {:?} is shadowed by an earlier one",
                r.pattern
            );
        }
    }

    #[test]
    fn no_explanation_turns_verification_off() {
        let mut all = String::new();
        for (text, _, _) in PASTED {
            let e = explain(text).unwrap_or_default();
            all.push_str(&format!("{} {}\n", e.fix, e.note.unwrap_or_default()));
            for f in e.fixes {
                all.push_str(&format!("{} {}\n", f.summary, f.snippet));
            }
        }
        for (_, _, summary, snippet) in KNOBS {
            all.push_str(&format!("{summary} {snippet}\n"));
        }
        let all = all.to_lowercase();
        for bad in crate::tests::INSECURE {
            assert!(!all.contains(bad), "explain suggests {bad:?}");
        }
    }

    #[test]
    fn asked_to_turn_verification_off_it_explains_pinning() {
        for advice in [
            "NODE_TLS_REJECT_UNAUTHORIZED=0",
            "rejectUnauthorized: false",
            "curl -k https://x",
            "curl --insecure https://x",
            "requests.get(url, verify=False)",
            "danger_accept_invalid_certs(true)",
        ] {
            let e = explain(advice).unwrap_or_default();
            assert_eq!(e.cause, VERIFICATION_OFF, "{advice}");
            assert!(e.fix.contains("ca.pem"), "{advice}");
        }
    }
}

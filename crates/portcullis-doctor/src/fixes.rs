//! The fix catalog: cause × ecosystem → the *secure* fix, as a snippet filled in with what
//! the probe saw (address, port, the name to verify, the CA file to pin, the client
//! certificate). No fix here ever turns certificate verification off; a test greps the
//! whole catalog for the usual insecure advice.

use serde::{Deserialize, Serialize};

use crate::observe::Observations;

/// One fix for one ecosystem.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fix {
    /// `node`, `curl`, `openssl`, `python`, `rust`, or `server` (`explain` adds `java`,
    /// `go`, `dotnet`, `rustls`, `browser`, `nginx`, `haproxy`).
    pub ecosystem: String,
    pub summary: String,
    pub snippet: String,
}

/// What a client needs to connect securely; the snippets are built from it.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// Address to connect to (what the user typed).
    pub host: String,
    pub port: u16,
    /// Name to send in SNI and to verify; `None` verifies `host`.
    pub servername: Option<String>,
    /// CA file to trust instead of the default store.
    pub ca: Option<String>,
    /// Client certificate and key files.
    pub cert: Option<(String, String)>,
}

impl ClientSettings {
    fn from_obs(obs: &Observations) -> ClientSettings {
        let t = &obs.target;
        ClientSettings {
            host: t.host.clone(),
            port: t.port,
            servername: obs
                .sni_found
                .clone()
                .or_else(|| t.servername.clone().filter(|s| *s != t.host)),
            ca: t.ca_files.first().cloned(),
            cert: t.client_cert.clone().zip(t.client_key.clone()),
        }
    }

    fn name(&self) -> &str {
        self.servername.as_deref().unwrap_or(&self.host)
    }
}

/// The fixes for a cause, filled in from the observations.
pub fn for_cause(cause: &str, obs: &Observations) -> Vec<Fix> {
    let mut s = ClientSettings::from_obs(obs);
    let leaf = obs.chain.first();
    match cause {
        "self-signed" => {
            s.ca = Some("server-cert.pem".into());
            let mut v = vec![note(
                "Get the server's certificate out-of-band (from its administrator or its \
                 files, never from this same connection), check its SHA-256 fingerprint \
                 against the one shown above, save it as server-cert.pem, and pin it.",
            )];
            v.extend(as_client_fixes(obs, &s, "server-cert.pem"));
            v.extend(client_fixes(&s));
            v
        }
        "untrusted-root" => {
            s.ca = Some("root-ca.pem".into());
            let mut v = vec![note(
                "Get the root CA certificate from whoever runs the CA (for a corporate proxy, \
                 your IT department), save it as root-ca.pem and trust it for this client \
                 only. Node.js also reads extra roots from NODE_EXTRA_CA_CERTS=root-ca.pem.",
            )];
            v.extend(as_client_fixes(obs, &s, "root-ca.pem"));
            v.extend(client_fixes(&s));
            v
        }
        "trust-store-differs" => {
            let mut v = vec![note(
                "The server is fine: the clients differ in which CAs they trust. Add the \
                 root CA (root-ca.pem: get it from whoever runs the CA, check its \
                 fingerprint) to the store of the client that refuses it, the way that \
                 client reads it; never switch its verification off.",
            )];
            let failing = obs.trust.iter().filter(|t| {
                t.client.is_some()
                    && !t.trusted
                    && obs
                        .target
                        .as_client
                        .as_ref()
                        .is_none_or(|c| t.client.as_ref() == Some(c) && t.primary)
            });
            for t in failing {
                v.extend(store_fix(&t.store, &s, "root-ca.pem"));
            }
            v
        }
        "pinned-ca-mismatch" => {
            s.ca = Some("server-ca.pem".into());
            let public = obs.trust.iter().any(|t| t.store != "pinned" && t.trusted);
            let mut v = vec![note(if public {
                "The server's certificate comes from a public CA: drop --ca / `ca` and use \
                 the default (system or Mozilla) store, or pin the CA it really uses."
            } else {
                "Pin the CA the server really uses (ask its administrator for it and save it \
                 as server-ca.pem), or change the server to present a certificate from the \
                 CA you pinned."
            })];
            v.extend(client_fixes(&s));
            v
        }
        "hostname-mismatch" => {
            let names = leaf
                .and_then(|l| l.sans.clone())
                .unwrap_or_default();
            let pick = names
                .iter()
                .filter_map(|n| n.strip_prefix("DNS:").or_else(|| n.strip_prefix("IP:")))
                .find(|n| !n.starts_with('*'))
                .or_else(|| names.iter().find_map(|n| n.strip_prefix("DNS:*.")));
            let mut v = Vec::new();
            if let Some(name) = pick {
                let name = if names.iter().any(|n| n.strip_prefix("DNS:") == Some(name) || n.strip_prefix("IP:") == Some(name)) {
                    name.to_owned()
                } else {
                    format!("www.{name}")
                };
                if name.parse::<std::net::IpAddr>().is_ok() {
                    // An IP address cannot go in SNI: connect to it instead.
                    v.push(note(&format!(
                        "The certificate is issued for the address {name}: connect to that \
                         address. If it is not the server you mean, reissue the certificate \
                         with the right subjectAltName instead."
                    )));
                    s.host = name;
                    s.servername = None;
                } else {
                    v.push(note(&format!(
                        "Verify the name the certificate was issued for: keep connecting to {} \
                         but send and check \"{name}\" (Node `servername`), or connect by that \
                         name. If that name is not the server you mean, reissue the certificate \
                         with the right subjectAltName instead.",
                        s.host
                    )));
                    s.servername = Some(name);
                }
                v.extend(client_fixes(&s));
            }
            v.push(reissue(obs));
            v
        }
        "sni-required" | "sni-unrecognized" => {
            let mut v = vec![note(
                "Send the server's host name in SNI: connect by host name, or keep the address \
                 and set the name explicitly.",
            )];
            v.extend(client_fixes(&s));
            v
        }
        "client-cert-required" | "client-cert-rejected" => {
            s.cert = Some(
                s.cert
                    .clone()
                    .filter(|_| cause == "client-cert-required")
                    // The chain file: a certificate sent without its intermediate CAs is
                    // refused by servers that trust only the root.
                    .unwrap_or(("client.chain.pem".into(), "client.key".into())),
            );
            let names = obs
                .handshakes
                .iter()
                .find_map(|h| h.cert_request.clone())
                .unwrap_or_default();
            let accepted = if names.is_empty() {
                "any CA it trusts (it did not list them)".to_owned()
            } else {
                names.join("; ")
            };
            let mut v = vec![note(&format!(
                "Present a client certificate issued by a CA the server accepts: {accepted}, \
                 followed by its intermediate CAs. With a Portcullis CA: portcullis pki issue \
                 client NAME, then present NAME.chain.pem."
            ))];
            v.extend(client_fixes(&s));
            if obs
                .http
                .as_ref()
                .and_then(crate::diagnose::http_refusal)
                .is_some()
            {
                v.push(server(
                    "The server refused in HTTP, after the handshake (nginx `ssl_verify_client \
                     on` does this). Its error log says why. It must trust the CA that issues \
                     the client certificates, and accept their chain's depth.",
                    "# nginx\n\
                     ssl_client_certificate /etc/nginx/client-ca.pem;  # the CA(s) that issue client certificates\n\
                     ssl_verify_client on;\n\
                     ssl_verify_depth 2;                                # client -> intermediate -> root\n\
                     # why a certificate was refused:\n\
                     grep -e 'no required SSL certificate' -e 'client SSL certificate verify error' /var/log/nginx/error.log",
                ));
            }
            v
        }
        "client-chain-incomplete" => {
            let cert = obs.target.client_cert.clone().unwrap_or("client.crt".into());
            let key = obs.target.client_key.clone().unwrap_or("client.key".into());
            s.cert = Some((chain_file(&cert), key));
            let mut v = vec![note(&format!(
                "Send the certificate followed by its intermediate CA(s): {} instead of {cert}. \
                 The server trusts the root; without the intermediate it cannot link your \
                 certificate to it. To build the file yourself: cat {cert} intermediate.crt > {}.",
                chain_file(&cert),
                chain_file(&cert)
            ))];
            v.extend(client_fixes(&s));
            v
        }
        "missing-intermediate" => vec![
            server(
                "Serve the full chain: the leaf first, then each intermediate (not the root).",
                "cat server.crt intermediate.crt > fullchain.pem\n\
                 # nginx:   ssl_certificate /path/fullchain.pem;\n\
                 # Node.js: https.createServer({ cert: fs.readFileSync('fullchain.pem'), key })\n\
                 # portcullis pki writes NAME.chain.pem for this",
            ),
            openssl_check(&s),
        ],
        "chain-misordered" => vec![server(
            "Serve the leaf first, then the certificate that issued it, and so on up (the \
             root may be left out).",
            "cat server.crt intermediate.crt > fullchain.pem",
        )],
        "expired" | "not-yet-valid" => vec![
            note(
                "Check this machine's clock first (date -u); if it is right, the certificate \
                 must be renewed.",
            ),
            server(
                "Renew the certificate and reload the server.",
                "portcullis pki renew server.crt\n# or your CA's renewal (certbot renew, cert-manager…)",
            ),
        ],
        "cn-only-no-san" | "weak-signature" | "weak-key" | "wrong-purpose" => vec![reissue(obs)],
        "not-tls" => vec![
            note(&format!(
                "Port {} speaks plaintext: use http:// for HTTP, the service's TLS port \
                 (443, 465, 993, 995…), or STARTTLS where the protocol has it.",
                s.port
            )),
            Fix {
                ecosystem: "openssl".into(),
                summary: "For SMTP/IMAP/POP3 that upgrade with STARTTLS:".into(),
                snippet: format!(
                    "openssl s_client -connect {}:{} -starttls smtp -verify_return_error",
                    host_port(&s.host),
                    s.port
                ),
            },
        ],
        "protocol-version-mismatch" => vec![server(
            "Upgrade the server to TLS 1.2 and 1.3. Do not lower your client's minimum \
             version: TLS 1.0/1.1 are broken and disabled everywhere.",
            "# nginx:   ssl_protocols TLSv1.2 TLSv1.3;\n\
             # OpenSSL: MinProtocol = TLSv1.2\n\
             # If the server cannot be upgraded now, put a TLS-terminating proxy in front of it.",
        )],
        "no-shared-cipher" => vec![server(
            "Enable modern suites on the server (ECDHE key exchange with AES-GCM or \
             ChaCha20-Poly1305).",
            "# nginx:   ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;\n\
             # OpenSSL: CipherString = ECDHE+AESGCM:ECDHE+CHACHA20",
        )],
        "alpn-mismatch" => {
            let mut v = vec![note(
                "Offer an application protocol the server speaks (most speak http/1.1; \
                 gRPC needs h2), or configure the server to accept yours.",
            )];
            v.push(Fix {
                ecosystem: "node".into(),
                summary: "Offer both HTTP versions:".into(),
                snippet: "ALPNProtocols: ['h2', 'http/1.1'],".into(),
            });
            v
        }
        "handshake-timeout" | "reset-after-client-hello" => vec![
            note(
                "Look at the server's logs around this time, and at a packet capture of this \
                 attempt; the trace above shows exactly what we sent. A middlebox, a non-TLS \
                 service or a server that needs a specific name (try --servername) are common.",
            ),
            openssl_check(&s),
            Fix {
                ecosystem: "capture".into(),
                summary: "Capture the handshake:".into(),
                snippet: format!("sudo tcpdump -i any -w tls.pcap host {} and port {}", s.host, s.port),
            },
        ],
        "client-cert-optional" => {
            let names = obs
                .handshakes
                .iter()
                .find_map(|h| h.cert_request.clone())
                .unwrap_or_default();
            let mut v = vec![note(&format!(
                "Nothing is broken: the server answers without a client certificate. If that \
                 answer is not the one you expected, present a certificate from a CA it \
                 accepts ({}). If the URL is meant for certificate holders only, make the \
                 server require one; to see whether it verifies the certificates it gets, run \
                 portcullis doctor audit URL --cert C --key K.",
                if names.is_empty() {
                    "it did not list them".to_owned()
                } else {
                    names.join("; ")
                }
            ))];
            v.push(server(
                "Require a verified client certificate where it matters:",
                "# nginx (per location: keep `optional` and refuse unverified clients)\n\
                 ssl_verify_client on;   # or: if ($ssl_client_verify != SUCCESS) { return 403; }\n\
                 # HAProxy\n\
                 bind :443 ssl crt server.pem ca-file clients.pem verify required\n\
                 # Caddy\n\
                 client_auth {\n    mode require_and_verify\n    trusted_ca_cert_file clients.pem\n}\n\
                 # Node.js\n\
                 https.createServer({ key, cert, ca: clientsCa, requestCert: true, rejectUnauthorized: true }, app)",
            ));
            v
        }
        "client-cert-unverified" => require_verification(),
        "accepts-forged-certificate"
        | "accepts-self-signed"
        | "accepts-same-name-issuer"
        | "accepts-expired"
        | "accepts-no-client-auth-eku" => require_verification(),
        "audit-url-open" => {
            let mut v = vec![note(
                "If this URL is meant for certificate holders only, require a client \
                 certificate for it, verified; if it is public on purpose, audit a URL that \
                 is protected.",
            )];
            v.extend(require_verification().into_iter().skip(1));
            v
        }
        "dns-failure" => vec![note("Check the spelling, /etc/hosts, and the resolver (getent hosts NAME, dig NAME).")],
        "tcp-refused" => vec![note(
            "Nothing listens there: check the port, that the server runs, and that it listens \
             on this address (ss -ltnp on the server).",
        )],
        "tcp-timeout" => vec![note("Check the address and the firewalls or security groups between you and the server.")],
        "client-key-mismatch" => vec![Fix {
            ecosystem: "openssl".into(),
            summary: "Compare the public keys of the certificate and the key; they must be equal:".into(),
            snippet: "openssl x509 -in client.crt -noout -pubkey | sha256sum\nopenssl pkey -in client.key -pubout | sha256sum".into(),
        }],
        "client-key-passphrase" => vec![note(
            "Give the key's passphrase with --key-passphrase-file FILE or \
             PORTCULLIS_KEY_PASSPHRASE, or answer the prompt; never on the command line.",
        )],
        _ => Vec::new(),
    }
}

/// Every client store [`store_fix`] knows.
pub const STORES: &[&str] = &[
    "node",
    "python requests",
    "python ssl",
    "curl",
    "openssl",
    "java",
    "go",
    "rustls native-certs",
    "rustls webpki-roots",
];

/// With `--as`: how to add `file` to the store that client uses by default.
fn as_client_fixes(obs: &Observations, s: &ClientSettings, file: &str) -> Vec<Fix> {
    if !obs.target.ca_files.is_empty() {
        return Vec::new();
    }
    let Some(client) = obs.target.as_client.as_ref() else {
        return Vec::new();
    };
    obs.trust
        .iter()
        .filter(|t| t.client.as_ref() == Some(client) && t.primary)
        .filter_map(|t| store_fix(&t.store, s, file))
        .collect()
}

/// How to add the CA in `file` to one client's store (named as in
/// [`crate::clients::ClientStore::store`]), with that client's own knob.
pub fn store_fix(store: &str, s: &ClientSettings, file: &str) -> Option<Fix> {
    let name = s.name();
    let port = s.port;
    let url = format!("https://{}:{port}/", host_port(name));
    let (ecosystem, summary, snippet) = match store {
        "node" => (
            "node",
            "Node.js: add the CA to the bundled list with NODE_EXTRA_CA_CERTS (read once, at \
             startup), or give it per connection with the `ca` option (which replaces the \
             bundled list)."
                .to_owned(),
            format!(
                "NODE_EXTRA_CA_CERTS=/path/to/{file} node app.js\n\
                 // or per connection: https.get('{url}', {{ ca: fs.readFileSync('{file}') }})"
            ),
        ),
        "python requests" => (
            "python",
            "Python requests reads certifi's bundle, not the system's: pass verify= or set \
             REQUESTS_CA_BUNDLE. Either replaces certifi's list, so give a bundle holding both \
             when the same process also talks to public sites."
                .to_owned(),
            format!(
                "cat \"$(python3 -m certifi)\" {file} > bundle.pem\n\
                 REQUESTS_CA_BUNDLE=/path/to/bundle.pem python3 app.py\n\
                 # or in code: requests.get('{url}', verify='/path/to/bundle.pem')"
            ),
        ),
        "python ssl" => (
            "python",
            "Python's ssl module (urllib, http.client) reads OpenSSL's default paths: give the \
             context a cafile=, or set SSL_CERT_FILE for the whole process."
                .to_owned(),
            format!(
                "ctx = ssl.create_default_context(cafile='{file}')\n\
                 urllib.request.urlopen('{url}', context=ctx)\n\
                 # or: SSL_CERT_FILE=/path/to/bundle.pem python3 app.py  (it replaces the default file)"
            ),
        ),
        "curl" => (
            "curl",
            "curl: --cacert, or CURL_CA_BUNDLE (it replaces curl's default bundle).".to_owned(),
            format!(
                "curl --cacert {file} {url}\n\
# or: CURL_CA_BUNDLE=/path/to/{file} curl {url}"
            ),
        ),
        "openssl" => (
            "openssl",
            "OpenSSL: -CAfile, or SSL_CERT_FILE / SSL_CERT_DIR (they replace the defaults)."
                .to_owned(),
            format!(
                "openssl s_client -connect {}:{port} -servername {name} -verify_hostname {name} -verify_return_error -CAfile {file}",
                host_port(&s.host)
            ),
        ),
        "java" => (
            "java",
            "Java: import the CA into a truststore with keytool and point the JVM at it \
             (-Djavax.net.ssl.trustStore, e.g. in JAVA_TOOL_OPTIONS), or import it into the \
             JDK's cacerts."
                .to_owned(),
            format!(
                "keytool -importcert -noprompt -alias my-ca -file {file} -keystore truststore.p12 -storetype PKCS12 -storepass changeit\n\
                 JAVA_TOOL_OPTIONS='-Djavax.net.ssl.trustStore=/path/to/truststore.p12 -Djavax.net.ssl.trustStorePassword=changeit' java -jar app.jar"
            ),
        ),
        "go" => (
            "go",
            "Go: add the CA to tls.Config.RootCAs, or set SSL_CERT_FILE (it replaces the \
             system bundle, so give one holding both) or SSL_CERT_DIR."
                .to_owned(),
            format!(
                "cat /etc/ssl/certs/ca-certificates.crt {file} > bundle.pem\n\
                 SSL_CERT_FILE=/path/to/bundle.pem ./app\n\
                 // or in code: pool.AppendCertsFromPEM(caPEM); &tls.Config{{RootCAs: pool}}"
            ),
        ),
        "rustls native-certs" => (
            "rust",
            "rustls with the system store (rustls-native-certs): add the CA to the system \
             store, or to the RootCertStore in code."
                .to_owned(),
            format!(
                "sudo cp {file} /usr/local/share/ca-certificates/my-ca.crt && sudo update-ca-certificates\n\
                 // or in code: roots.add(CertificateDer::from_pem_file(\"{file}\")?)?;"
            ),
        ),
        "rustls webpki-roots" => (
            "rust",
            "rustls with webpki-roots (compiled in): add the CA in code.".to_owned(),
            format!(
                "reqwest::Client::builder()\n    \
    .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(\"{file}\")?)?)\n    \
    .build()?"
            ),
        ),
        _ => return None,
    };
    Some(Fix {
        ecosystem: ecosystem.into(),
        summary: summary.split_whitespace().collect::<Vec<_>>().join(" "),
        snippet,
    })
}

/// The server-side fix for a server that lets forged client certificates in: verify, or
/// look at the verification's result before any field of the certificate.
fn require_verification() -> Vec<Fix> {
    vec![
        note(
            "Make the TLS layer verify client certificates against the CA that issues them, \
             and refuse the unverified ones; or, where unverified clients must still get a \
             page of yours, check the verification result before reading any field of the \
             certificate (subject, DN, serial, SANs). Forged certificates carry the same \
             fields as real ones: only the verification tells them apart.",
        ),
        Fix {
            ecosystem: "node".into(),
            summary: "Node.js https/tls: refuse unverified certificates in the handshake, or \
                      check `req.socket.authorized` first:"
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            snippet: "const options = {\n  key, cert,\n  ca: fs.readFileSync('clients-ca.pem'),  // the CA that issues client certificates\n  requestCert: true,\n  rejectUnauthorized: true,\n};\n// or, to answer unverified clients with a page of your own:\napp.use((req, res, next) => {\n  if (!req.socket.authorized) return res.status(401).send('client certificate required');\n  next();  // only now is req.socket.getPeerCertificate() vouched for\n});".into(),
        },
        server(
            "nginx: verify against the clients CA; with `optional`, refuse unless \
             `$ssl_client_verify` is SUCCESS before any $ssl_client_* variable is used or \
             passed on (`optional_no_ca` never verifies).",
            "ssl_client_certificate /etc/nginx/clients-ca.pem;\n\
             ssl_verify_client on;\n\
             # or: ssl_verify_client optional; and then, before using $ssl_client_s_dn:\n\
             if ($ssl_client_verify != SUCCESS) { return 403; }",
        ),
    ]
}

/// The chain file issued beside a certificate file: NAME.chain.pem for NAME.crt (or
/// NAME.pem), as `portcullis pki` writes them.
pub fn chain_file(cert: &str) -> String {
    if cert.ends_with(".chain.pem") {
        return cert.to_owned();
    }
    let stem = cert
        .strip_suffix(".crt")
        .or_else(|| cert.strip_suffix(".pem"))
        .unwrap_or(cert);
    format!("{stem}.chain.pem")
}

fn note(text: &str) -> Fix {
    Fix {
        ecosystem: "all".into(),
        summary: text.split_whitespace().collect::<Vec<_>>().join(" "),
        snippet: String::new(),
    }
}

fn server(summary: &str, snippet: &str) -> Fix {
    Fix {
        ecosystem: "server".into(),
        summary: summary.split_whitespace().collect::<Vec<_>>().join(" "),
        snippet: snippet.into(),
    }
}

fn reissue(obs: &Observations) -> Fix {
    let name = obs
        .sni_found
        .clone()
        .or_else(|| obs.target.servername.clone())
        .unwrap_or_else(|| obs.target.host.clone());
    let flag = if name.parse::<std::net::IpAddr>().is_ok() {
        "--ip"
    } else {
        "--dns"
    };
    server(
        "Reissue the server certificate: name in subjectAltName, serverAuth, ECDSA P-256 \
         or RSA 2048+, SHA-256 signature.",
        &format!(
            "portcullis pki issue server {name} {flag} {name}\n\
             # with OpenSSL: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \\\n\
             #   -addext \"subjectAltName={}:{name}\" -addext extendedKeyUsage=serverAuth …",
            if flag == "--ip" { "IP" } else { "DNS" }
        ),
    )
}

fn openssl_check(s: &ClientSettings) -> Fix {
    Fix {
        ecosystem: "openssl".into(),
        summary: "Look at the handshake with OpenSSL:".into(),
        snippet: format!(
            "openssl s_client -connect {}:{} -servername {} -showcerts -msg </dev/null",
            host_port(&s.host),
            s.port,
            s.name()
        ),
    }
}

fn host_port(h: &str) -> String {
    if h.contains(':') {
        format!("[{h}]")
    } else {
        h.to_owned()
    }
}

fn js(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn py(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The same secure connection in five ecosystems.
pub fn client_fixes(s: &ClientSettings) -> Vec<Fix> {
    let name = s.name().to_owned();
    let by_ip = s.host != name;
    let port = s.port;
    let mut out = Vec::new();

    // Node.js: a complete script that connects, verifies, and exits 0.
    let mut opts = vec![
        format!("  host: {},", js(&s.host)),
        format!("  port: {port},"),
    ];
    if by_ip {
        opts.push(format!("  servername: {},", js(&name)));
    }
    if let Some(ca) = &s.ca {
        opts.push(format!("  ca: fs.readFileSync({}),", js(ca)));
    }
    if let Some((c, k)) = &s.cert {
        opts.push(format!("  cert: fs.readFileSync({}),", js(c)));
        opts.push(format!("  key: fs.readFileSync({}),", js(k)));
    }
    out.push(Fix {
        ecosystem: "node".into(),
        summary: "Node.js (tls.connect; the same options work for https.request):".into(),
        snippet: format!(
            "const tls = require('node:tls');\nconst fs = require('node:fs');\n\
             const socket = tls.connect({{\n{}\n}}, () => {{\n  \
             console.log('connected, verified:', socket.authorized, socket.getProtocol());\n  \
             socket.end();\n}});\n\
             socket.on('error', (err) => {{ console.error(err.code, err.message); process.exit(1); }});\n",
            opts.join("\n")
        ),
    });

    // curl
    let mut curl = String::from("curl");
    if let Some(ca) = &s.ca {
        curl.push_str(&format!(" --cacert {ca}"));
    }
    if let Some((c, k)) = &s.cert {
        curl.push_str(&format!(" --cert {c} --key {k}"));
    }
    if by_ip {
        curl.push_str(&format!(" --resolve {name}:{port}:{}", s.host));
    }
    curl.push_str(&format!(" https://{}:{port}/", host_port(&name)));
    out.push(Fix {
        ecosystem: "curl".into(),
        summary: "curl:".into(),
        snippet: curl,
    });

    // openssl s_client
    let mut o = format!(
        "openssl s_client -connect {}:{port} -servername {name} -verify_hostname {name} -verify_return_error",
        host_port(&s.host)
    );
    if let Some(ca) = &s.ca {
        o.push_str(&format!(" -CAfile {ca}"));
    }
    if let Some((c, k)) = &s.cert {
        o.push_str(&format!(" -cert {c} -key {k}"));
    }
    out.push(Fix {
        ecosystem: "openssl".into(),
        summary: "openssl s_client:".into(),
        snippet: o,
    });

    // Python
    let python = if by_ip {
        let mut p = format!(
            "import socket, ssl\nctx = ssl.create_default_context({})\n",
            s.ca.as_deref()
                .map(|c| format!("cafile={}", py(c)))
                .unwrap_or_default()
        );
        if let Some((c, k)) = &s.cert {
            p.push_str(&format!("ctx.load_cert_chain({}, {})\n", py(c), py(k)));
        }
        p.push_str(&format!(
            "with socket.create_connection(({}, {port})) as raw:\n    \
             with ctx.wrap_socket(raw, server_hostname={}) as tls:\n        \
             print(tls.version())\n",
            py(&s.host),
            py(&name)
        ));
        p
    } else {
        let mut args = vec![format!("'https://{}:{port}/'", host_port(&name))];
        if let Some(ca) = &s.ca {
            args.push(format!("verify={}", py(ca)));
        }
        if let Some((c, k)) = &s.cert {
            args.push(format!("cert=({}, {})", py(c), py(k)));
        }
        format!("import requests\nrequests.get({})\n", args.join(", "))
    };
    out.push(Fix {
        ecosystem: "python".into(),
        summary: if by_ip {
            "Python (ssl module; requests cannot set the name separately from the URL):".into()
        } else {
            "Python requests:".into()
        },
        snippet: python,
    });

    // Rust: reqwest with rustls
    let mut r = String::from("let client = reqwest::Client::builder()\n");
    if let Some(ca) = &s.ca {
        r.push_str(&format!(
            "    .tls_built_in_root_certs(false)\n    .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(\"{ca}\")?)?)\n"
        ));
    }
    if let Some((c, k)) = &s.cert {
        r.push_str(&format!(
            "    .identity(reqwest::Identity::from_pem(&[std::fs::read(\"{c}\")?, std::fs::read(\"{k}\")?].concat())?)\n"
        ));
    }
    if by_ip {
        r.push_str(&format!(
            "    .resolve(\"{name}\", \"{}:{port}\".parse()?)\n",
            host_port(&s.host)
        ));
    }
    r.push_str(&format!(
        "    .build()?;\nlet resp = client.get(\"https://{}:{port}/\").send().await?;\n",
        host_port(&name)
    ));
    out.push(Fix {
        ecosystem: "rust".into(),
        summary: "Rust (reqwest with rustls):".into(),
        snippet: r,
    });
    out
}

/// Every fix the catalog can produce, for a sample target: used by the test that makes
/// sure no fix ever disables verification.
pub fn whole_catalog() -> String {
    let mut obs = Observations::default();
    obs.target.host = "192.0.2.10".into();
    obs.target.port = 443;
    obs.target.servername = Some("app.example".into());
    obs.target.ca_files = vec!["ca.pem".into()];
    obs.target.client_cert = Some("client.crt".into());
    obs.target.client_key = Some("client.key".into());
    // A refusal in HTTP, so the server-side fixes for it are in the catalog too.
    obs.http = Some(crate::observe::HttpCheck {
        status: Some(400),
        text: Some("400 No required SSL certificate was sent".into()),
        ..Default::default()
    });
    let mut out = String::new();
    for c in crate::causes::CAUSES {
        out.push_str(&format!("## {}\n{}\n{}\n", c.slug, c.what, c.fix));
        for f in for_cause(c.slug, &obs) {
            out.push_str(&format!("[{}] {}\n{}\n", f.ecosystem, f.summary, f.snippet));
        }
    }
    // Each client's store (`--as`, `trust-store-differs`).
    let s = ClientSettings::from_obs(&obs);
    for store in STORES {
        let f = store_fix(store, &s, "root-ca.pem").unwrap_or_default();
        out.push_str(&format!("[{}] {}\n{}\n", f.ecosystem, f.summary, f.snippet));
    }
    out
}

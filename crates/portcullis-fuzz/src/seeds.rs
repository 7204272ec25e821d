//! Seed corpora, made by code: realistic inputs for each target (certificates, CSRs, CRLs
//! and PKCS#12 bundles from a real CA, the request tricks of the gate's tests, a working
//! configuration), from which the fuzzer mutates. Nothing here is a hand-edited binary.

use std::sync::OnceLock;

use portcullis_pki::build::{self, Kind, Spec};
use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::{KeyType, LeafRequest, P12Format, Passphrase, Reason, SaveOptions, Subject};

/// The password of the seed PKCS#12 bundle; the inspect target opens bundles with it.
pub const P12_PASSWORD: &str = "fuzz bundle password";

/// Files from a real CA (root and intermediate), made once per process.
#[derive(Debug)]
pub struct Fixtures {
    pub root: Vec<u8>,
    pub client: Vec<u8>,
    /// A certificate no CA would issue: a comma and `OU=` inside values, several OUs.
    pub hostile: Vec<u8>,
    pub chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub p12: Vec<u8>,
    pub crl: Vec<u8>,
    pub csr: Vec<u8>,
}

/// The fixtures, generated on first use.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(make_fixtures)
}

fn make_fixtures() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    ca::init(
        &pki,
        &InitOptions {
            intermediate: true,
            ..Default::default()
        },
    )
    .unwrap();
    let authority = Ca::open(&pki, None).unwrap();
    let mut writer = authority.writer().unwrap();
    let issued = authority.layout().issued();
    let password = Passphrase::new(P12_PASSWORD.into(), "fuzz seeds").unwrap();
    for name in ["alice", "bob"] {
        let req = LeafRequest {
            kind: Kind::Client,
            subject: Subject {
                common_name: name.into(),
                organizational_units: vec!["Admins".into(), "Users,Ops".into()],
                email: Some(format!("{name}@example.com")),
                ..Default::default()
            },
            sans: vec![],
            days: 30,
            key_type: KeyType::P256,
        };
        let cert = authority.issue(&req, writer.index()).unwrap();
        writer
            .save(
                cert,
                &SaveOptions {
                    out_dir: issued.clone(),
                    stem: name.into(),
                    key_passphrase: None,
                    p12: Some((password.clone(), P12Format::Modern)),
                    force: false,
                },
            )
            .unwrap();
    }
    let bob = writer.index().records[1].serial.clone();
    writer.revoke(&bob, Reason::KeyCompromise, 30).unwrap();
    drop(writer);
    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
    let der = |p: std::path::PathBuf| ca::read_certs(&p).unwrap().swap_remove(0);

    let key = KeyType::P256.generate().unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let subject = Subject {
        common_name: "mallory, OU=Admins".into(),
        organizational_units: vec!["Users,Admins".into(), " padded ".into()],
        ..Default::default()
    };
    let now = time::OffsetDateTime::now_utc();
    let hostile = build::sign(
        &Spec {
            kind: Kind::Client,
            issuer_name: &build::subject_der(&subject),
            issuer_key_id: None,
            subject: &subject,
            sans: &[portcullis_pki::San::Uri("spiffe://corp/ops/x".into())],
            spki: &spki,
            not_before: now,
            not_after: now + time::Duration::days(1),
            serial: &build::random_serial().unwrap(),
            crl_url: None,
            ca_issuers_url: None,
        },
        &key,
    )
    .unwrap();
    let csr_key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec!["api.example".into()])
        .unwrap()
        .serialize_request(&csr_key)
        .unwrap()
        .der()
        .to_vec();

    Fixtures {
        root: der(authority.layout().root_cert()),
        client: der(issued.join("alice.crt")),
        hostile,
        chain_pem: read(issued.join("alice.chain.pem")),
        key_pem: read(issued.join("alice.key")),
        p12: read(issued.join("alice.p12")),
        crl: read(authority.layout().crl_der()),
        csr,
    }
}

/// A TLS 1.3 ServerHello record, as a server sends it.
pub fn server_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([7u8; 32]); // random
    body.push(32);
    body.extend([9u8; 32]); // session id
    body.extend([0x13, 0x01, 0x00]); // TLS_AES_128_GCM_SHA256, no compression
    let mut ext = vec![0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]; // supported_versions: 1.3
    ext.extend([0x00, 0x33, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]); // key_share x25519
    ext.extend([5u8; 32]);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![0x02, 0x00];
    hs.extend((body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut record = vec![0x16, 0x03, 0x03];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

/// A modern ClientHello record (SNI, ALPN, TLS 1.3 and 1.2), as the doctor sends it.
pub fn client_hello() -> Vec<u8> {
    portcullis_doctor::raw::RawHello::modern(
        Some("api.example".into()),
        vec!["h2".into(), "http/1.1".into()],
    )
    .encode()
}

/// A TLS 1.2 Certificate handshake record holding the fixtures' root certificate.
fn certificate_message() -> Vec<u8> {
    let der = &fixtures().root;
    let u24 = |n: usize| [(n >> 16) as u8, (n >> 8) as u8, n as u8];
    let mut list = u24(der.len()).to_vec();
    list.extend(der);
    let mut body = u24(list.len()).to_vec();
    body.extend(list);
    let mut hs = vec![0x0b];
    hs.extend(u24(body.len()));
    hs.extend(body);
    let mut record = vec![0x16, 0x03, 0x03];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

/// Small capture files, by code: a TLS connection (ClientHello, then a ServerHello or an
/// alert or plaintext) in classic pcap over Ethernet, pcapng over Ethernet with IPv6, BSD
/// loopback and raw IP; one with its segments out of order and repeated.
fn captures() -> Vec<Vec<u8>> {
    use crate::captures::{Link, conversation, pcap, pcapng};
    let c4 = "10.0.0.1:40000".parse().unwrap();
    let s4 = "10.0.0.2:443".parse().unwrap();
    let c6 = "[2001:db8::1]:40000".parse().unwrap();
    let s6 = "[2001:db8::2]:8443".parse().unwrap();
    let hello = client_hello();
    let t0 = 1_700_000_000_000_000;
    let ok = [(true, hello.clone()), (false, server_hello())];
    let alert = [
        (true, hello.clone()),
        (false, vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]),
    ];
    let plain = [
        (true, hello),
        (false, b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
    ];
    let mut shuffled = conversation(Link::Ethernet, c4, s4, &ok, t0);
    shuffled.swap(3, 4);
    let again = shuffled[3].clone();
    shuffled.insert(5, again);
    vec![
        pcap(
            Link::Ethernet,
            &conversation(Link::Ethernet, c4, s4, &ok, t0),
        ),
        pcapng(
            Link::Ethernet,
            &conversation(Link::Ethernet, c6, s6, &alert, t0),
        ),
        pcap(Link::Null, &conversation(Link::Null, c4, s4, &plain, t0)),
        pcap(Link::RawIp, &conversation(Link::RawIp, c6, s6, &ok, t0)),
        pcap(Link::Ethernet, &shuffled),
    ]
}

const GOOD_CONFIG: &str = r#"listen = "127.0.0.1:9443"
cert = "server.pem"
key = "server.key"
client_auth = "optional"
client_ca = ["ca.pem"]
crl = ["crl.pem"]
upstream = "http://127.0.0.1:3000"
access_log = "json"

[headers]
strip = ["X-Remote-User"]
allow_underscores = false

[limits]
max_connections = 100
write_timeout_secs = 5

[[roles]]
role = "admin"
ou = "Admins"

[[rules]]
path = "/admin/**"
methods = ["GET", "POST"]
require = "role:admin"

[[rules]]
path = "/**"
any_of = ["authenticated", "role:admin"]
"#;

fn texts(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// The seeds of one target.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "path" => texts(&[
            "/",
            "/admin/../admin",
            "/%61dmin",
            "//a//b/",
            "/a/./b/..",
            "/caf%C3%A9",
            "/a%20b/c",
            "/admin%2F",
            "/a;jsessionid=1",
            "/x%EF%BC%8F",
            "/v1/items%3Apurge",
            "/%2e%2e/x",
            "/admin%20/x",
            "/a%E3%80%80",
            "*",
        ]),
        "method" => texts(&["GET", "get", "PoSt", "M-SEARCH", "", "DELETE", "QUERY"]),
        "headers" => {
            let mut out = Vec::new();
            for (flags, block) in [
                (
                    0u8,
                    "Host: localhost\nX_Client_CN: alice\nx-client-roles: admin\nAccept: */*",
                ),
                (
                    1,
                    "Connection: close, x-hop, x-client-cn\nX-Hop: 1\nX.Client.Verify: SUCCESS",
                ),
                (
                    0,
                    "Client_Cert: :AAAA:\nX-Forwarded-For: 10.0.0.1\nForwarded: for=1\nTE: trailers",
                ),
                (
                    1,
                    "X-HTTP-Method-Override: DELETE\nx_request_id: 7\nUser-Agent: curl",
                ),
            ] {
                let mut v = vec![flags];
                v.extend_from_slice(block.as_bytes());
                out.push(v);
            }
            out
        }
        "authority" => texts(&[
            "1||/|localhost",
            "2|localhost|https://localhost/x|",
            "1|localhost|/|LocalHost:8443",
            "1||http://evil.example/x|localhost",
            "1||/|[::1]:443",
            "1|evil.example|/|evil.example",
            "1|localhost|/|localhost|localhost",
            "2|localhost|https://localhost:8443/|localhost:8443",
        ]),
        "policy" => vec![
            vec![
                3, 0x11, 2, 0, 1, 2, 0x01, 3, 0, 4, 0, 2, 1, 1, 0x11, 2, 0, 0,
            ],
            vec![
                5, 0x10, 0, 0, 0x12, 3, 2, 1, 4, 1, 0, 3, 0, 2, 1, 0x13, 0, 1, 2, 3, 7,
            ],
            vec![1, 0, 0, 0, 0, 0, 0],
        ],
        "identity" => {
            let f = fixtures();
            vec![f.client.clone(), f.hostile.clone(), f.root.clone()]
        }
        "crl" => vec![fixtures().crl.clone()],
        "trust_files" => {
            let f = fixtures();
            let pair = |ca: Vec<u8>, crl: Vec<u8>| {
                let mut v = u16::try_from(ca.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes()
                    .to_vec();
                v.extend(ca);
                v.extend(crl);
                v
            };
            vec![
                pair(ca::pem("CERTIFICATE", &f.root).into_bytes(), f.crl.clone()),
                pair(f.root.clone(), ca::pem("X509 CRL", &f.crl).into_bytes()),
                pair(f.chain_pem.clone(), Vec::new()),
            ]
        }
        "config" => texts(&[
            GOOD_CONFIG,
            "cert = \"a\"\nkey = \"b\"\nclient_auth = \"off\"\nupstream = \"builtin:whoami\"\n[[rules]]\npath = \"/\"\nrequire = \"anonymous\"\n",
            "hosts = [\"api.toml\"]\ncert = \"a\"\nkey = \"b\"\nclient_auth = \"maybe\"\n",
        ]),
        "csr" => {
            let f = fixtures();
            vec![
                f.csr.clone(),
                ca::pem("CERTIFICATE REQUEST", &f.csr).into_bytes(),
            ]
        }
        "inspect" => {
            let f = fixtures();
            vec![
                f.chain_pem.clone(),
                f.key_pem.clone(),
                f.p12.clone(),
                f.crl.clone(),
                ca::pem("X509 CRL", &f.crl).into_bytes(),
                f.hostile.clone(),
                ca::pem("CERTIFICATE REQUEST", &f.csr).into_bytes(),
            ]
        }
        "tls_reply" => {
            let mut v = vec![
                server_hello(),
                vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
                b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
                b"SSH-2.0-OpenSSH_9.0\r\n".to_vec(),
            ];
            v.push(server_hello()[..20].to_vec());
            v
        }
        "capture" => captures(),
        "tls_records" => {
            let hello = client_hello();
            let two = |up: &[u8], down: &[u8]| {
                let mut v = (up.len() as u16).to_be_bytes().to_vec();
                v.extend(up);
                v.extend(down);
                v
            };
            let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
            let mut tls12 = server_hello();
            tls12.extend(certificate_message());
            tls12.extend([0x16, 0x03, 0x03, 0x00, 0x04, 0x0e, 0, 0, 0]); // ServerHelloDone
            vec![
                two(&hello, &server_hello()),
                two(&hello, &alert),
                two(&hello, &tls12),
                two(&hello, b"HTTP/1.1 400 Bad Request\r\n\r\n"),
                two(&hello[..hello.len() / 2], &[]),
            ]
        }
        "explain" => texts(&[
            "unable to verify the first certificate",
            "Error: read ECONNRESET",
            "SSL routines:ssl3_get_record:wrong version number",
            "CERT_HAS_EXPIRED",
            "rejectUnauthorized: false",
            "x509: certificate signed by unknown authority",
            "18",
            "alert 116",
        ]),
        "ticket_keys" => texts(&[
            "# rotate me\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
            "00112233\n",
            "",
        ]),
        _ => Vec::new(),
    }
}

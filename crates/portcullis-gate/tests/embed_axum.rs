//! The axum example (`examples/authorized.rs`), served for real and called with curl: the
//! policy layer, not the handlers, decides who gets in.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/authorized.rs"]
mod example;

use std::process::Command;
use std::sync::Arc;

use portcullis_gate::{Config, Gate};
use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::{KeyType, Kind, LeafRequest, San, SaveOptions, Subject};

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
cert = "pki/issued/localhost.chain.pem"
key = "pki/issued/localhost.key"
client_auth = "optional"
invalid_cert = "anonymous"
client_ca = ["pki/root.crt"]
upstream = "builtin:whoami"   # not used when embedding

[[rules]]
path = "/"
require = "anonymous"

[[rules]]
path = "/authenticate"
require = "authenticated"
"#;

fn setup(dir: &std::path::Path) {
    let root = dir.join("pki");
    ca::init(&root, &InitOptions::default()).unwrap();
    let ca = Ca::open(&root, None).unwrap();
    let mut writer = ca.writer().unwrap();
    for (name, kind, sans) in [
        (
            "localhost",
            Kind::Server,
            vec![San::Dns("localhost".into())],
        ),
        ("alice", Kind::Client, vec![]),
    ] {
        let req = LeafRequest {
            kind,
            subject: Subject {
                common_name: name.into(),
                ..Default::default()
            },
            sans,
            days: 30,
            key_type: KeyType::P256,
        };
        let cert = ca.issue(&req, writer.index()).unwrap();
        let opts = SaveOptions {
            out_dir: ca.layout().issued(),
            stem: name.into(),
            key_passphrase: None,
            p12: None,
            force: false,
        };
        writer.save(cert, &opts).unwrap();
    }
    // An expired certificate from the same CA.
    let key = KeyType::P256.generate().unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let now = time::OffsetDateTime::now_utc();
    let der = ca
        .sign_raw(
            Kind::Client,
            &Subject {
                common_name: "old".into(),
                ..Default::default()
            },
            &[],
            &spki,
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap();
    std::fs::write(
        ca.layout().issued().join("old.crt"),
        ca::pem("CERTIFICATE", &der),
    )
    .unwrap();
    std::fs::write(
        ca.layout().issued().join("old.key"),
        portcullis_pki::keys::to_pem(&key, None).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(dir.join("portcullis.toml"), CONFIG).unwrap();
}

fn curl(dir: &std::path::Path, who: Option<&str>, url: &str) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir).args([
        "-sS",
        "--max-time",
        "10",
        "--path-as-is",
        "-w",
        "\n%{http_code}",
        "--cacert",
        "pki/root.crt",
    ]);
    if let Some(w) = who {
        cmd.args([
            "--cert",
            &format!("pki/issued/{w}.crt"),
            "--key",
            &format!("pki/issued/{w}.key"),
        ]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_owned(), body.to_owned())
}

#[test]
fn the_express_demo_ported_to_axum_keeps_security_out_of_the_handlers() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let gate = Arc::new(
        Gate::load(
            Config::from_file(&dir.path().join("portcullis.toml")).unwrap(),
            None,
        )
        .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(gate.bind()).unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(example::serve(gate, listener));
    let url = |p: &str| format!("https://localhost:{port}{p}");

    let (code, body) = curl(dir.path(), None, &url("/"));
    assert_eq!(code, "200");
    assert!(body.contains("Log in using client certificate"));

    let (code, body) = curl(dir.path(), Some("alice"), &url("/authenticate"));
    assert_eq!(code, "200", "{body}");
    assert_eq!(
        body,
        "Hello alice, your certificate was issued by CN=Portcullis Root CA!"
    );

    // Unauthorized: the gate answers, the handler never runs.
    let (code, body) = curl(dir.path(), None, &url("/authenticate"));
    assert_eq!(code, "401", "{body}");
    assert!(body.contains("client_certificate_required"), "{body}");
    let (code, body) = curl(dir.path(), Some("old"), &url("/authenticate"));
    assert_eq!(code, "401", "{body}");
    assert!(body.contains("expired"), "{body}");

    // The router sees the canonical path the policy judged.
    assert_eq!(curl(dir.path(), None, &url("/%61uthenticate")).0, "401");
    assert_eq!(
        curl(dir.path(), Some("alice"), &url("//authenticate")).0,
        "200"
    );
    assert_eq!(
        curl(dir.path(), Some("alice"), &url("/authenticate;x")).0,
        "400"
    );
    // Routes the policy does not cover are denied before the router.
    assert_eq!(curl(dir.path(), Some("alice"), &url("/other")).0, "403");
}

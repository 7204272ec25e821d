//! Issuing from a CA whose certificate has expired is refused before anything is written.

use portcullis_pki::build::{self, Kind, Spec};
use portcullis_pki::ca::{self, Ca, Layout};
use portcullis_pki::{Error, Index, KeyType, LeafRequest, San, Subject};
use time::{Duration, OffsetDateTime};

#[test]
fn expired_ca_refuses_to_issue() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path().join("pki"));
    std::fs::create_dir_all(&layout.dir).unwrap();

    // A root that expired yesterday, built with the same code the CA uses.
    let key = KeyType::P256.generate().unwrap();
    let subject = Subject {
        common_name: "Old Root CA".into(),
        ..Default::default()
    };
    let name = build::subject_der(&subject);
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let now = OffsetDateTime::now_utc();
    let der = build::sign(
        &Spec {
            kind: Kind::Root,
            issuer_name: &name,
            issuer_key_id: None,
            subject: &subject,
            sans: &[],
            spki: &spki,
            not_before: now - Duration::days(400),
            not_after: now - Duration::days(1),
            serial: &build::random_serial().unwrap(),
            crl_url: None,
            ca_issuers_url: None,
        },
        &key,
    )
    .unwrap();
    std::fs::write(layout.root_cert(), ca::pem("CERTIFICATE", &der)).unwrap();
    std::fs::write(
        layout.root_key(),
        portcullis_pki::keys::to_pem(&key, None).unwrap().as_bytes(),
    )
    .unwrap();

    let ca = Ca::open(&layout.dir, None).unwrap();
    let index = Index::load(&layout.index()).unwrap();
    let req = LeafRequest {
        kind: Kind::Server,
        subject: Subject {
            common_name: "localhost".into(),
            ..Default::default()
        },
        sans: vec![San::Dns("localhost".into())],
        days: 30,
        key_type: KeyType::P256,
    };
    let err = ca.issue(&req, &index).unwrap_err();
    assert!(matches!(err, Error::CaNotValid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("root.crt") && msg.contains("not valid now"),
        "{msg}"
    );
    assert!(!layout.issued().exists(), "nothing may be written");
    assert!(!layout.index().exists(), "nothing may be recorded");
}

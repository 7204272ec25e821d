//! Enrolment tokens: single use, expiry, revocation, proof of possession, and the subject
//! from the token whatever the request asks for; renewal of a valid certificate only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration as Wait;

use ::time::{Duration, OffsetDateTime};
use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::enroll::{self, Refusal, TokenRequest, TokenState};
use portcullis_pki::{Index, KeyType, Reason, San, Subject};
use rcgen::PublicKeyData;
use x509_parser::prelude::*;

const WAIT: Wait = Wait::from_secs(5);

fn new_ca() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    ca::init(&dir, &InitOptions::default()).unwrap();
    (tmp, dir)
}

fn alice_token(dir: &std::path::Path) -> String {
    let req = TokenRequest {
        common_name: "alice".into(),
        email: Some("alice@example.com".into()),
        organizational_units: vec!["Admins".into()],
        organization: None,
        ttl: Duration::hours(24),
        validity: Duration::days(30),
    };
    enroll::create_token(dir, &req, WAIT).unwrap().1
}

fn csr(cn: &str, sans: &[San], key: &rcgen::KeyPair) -> String {
    let subject = Subject {
        common_name: cn.into(),
        ..Default::default()
    };
    portcullis_pki::csr::create(&subject, sans, key).unwrap()
}

fn redeem(
    dir: &std::path::Path,
    token: &str,
    csr: &str,
) -> portcullis_pki::Result<Result<enroll::Enrolled, Refusal>> {
    let ca = Ca::open(dir, None).unwrap();
    let mut w = ca.writer().unwrap();
    w.redeem(token, csr.as_bytes(), "127.0.0.1")
}

#[test]
fn a_token_gives_one_certificate_for_its_subject_and_the_requesters_key() {
    let (_tmp, dir) = new_ca();
    let token = alice_token(&dir);
    let stored = std::fs::read_to_string(enroll::tokens_path(&dir)).unwrap();
    assert!(
        !stored.contains(&token),
        "the secret itself is never stored"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(enroll::tokens_path(&dir))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The request asks for another name, another email and to be a CA.
    let key = KeyType::P256.generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "root-admin");
    params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(
        "mallory@example.com".try_into().unwrap(),
    )];
    // basicConstraints CA:TRUE
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &[2, 5, 29, 19],
        vec![0x30, 0x03, 0x01, 0x01, 0xff],
    )];
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    let got = redeem(&dir, &token, &request).unwrap().unwrap();
    assert_eq!(got.common_name, "alice");
    let said = got.not_granted.join(
        "
",
    );
    assert!(
        said.contains("CA:TRUE") && said.contains("root-admin"),
        "{said}"
    );
    let (_, cert) = X509Certificate::from_der(&got.chain[0]).unwrap();
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "alice"
    );
    let ou: Vec<_> = cert
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(ou, ["Admins"]);
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        [GeneralName::RFC822Name("alice@example.com")]
    );
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice(),
        "the requester's key"
    );
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86400;
    assert!((30..=31).contains(&days), "{days} days");

    // In the index (so list, revoke and the CRL cover it), and the token is spent.
    let index = Index::load(&ca::Layout::new(&dir).index()).unwrap();
    assert!(index.find(&got.serial).is_some());
    let tokens = enroll::list(&dir).unwrap();
    assert_eq!(tokens[0].state(OffsetDateTime::now_utc()), TokenState::Used);
    assert_eq!(
        tokens[0].used.as_ref().unwrap().serial.as_deref(),
        Some(got.serial.as_str())
    );
    let again = redeem(
        &dir,
        &token,
        &csr("alice", &[], &KeyType::P256.generate().unwrap()),
    );
    assert_eq!(again.unwrap().unwrap_err(), Refusal::Used);
    assert_eq!(
        redeem(&dir, &"0".repeat(64), &request)
            .unwrap()
            .unwrap_err(),
        Refusal::Unknown
    );
}

#[test]
fn a_request_signed_by_another_key_is_refused_and_does_not_spend_the_token() {
    let (_tmp, dir) = new_ca();
    let token = alice_token(&dir);
    let key = KeyType::P256.generate().unwrap();
    let other = KeyType::P256.generate().unwrap();
    // The request names `other`'s public key but is signed by `key`.
    let pem = csr("alice", &[], &key);
    let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let mine = key.subject_public_key_info();
    let theirs = other.subject_public_key_info();
    let at = der
        .windows(mine.len())
        .position(|w| w == mine.as_slice())
        .unwrap();
    let mut forged = der.clone();
    forged[at..at + mine.len()].copy_from_slice(&theirs);
    let forged = ca::pem("CERTIFICATE REQUEST", &forged);
    let err = redeem(&dir, &token, &forged).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    // The honest request still works.
    assert!(redeem(&dir, &token, &pem).unwrap().is_ok());
}

#[test]
fn expired_and_revoked_tokens_are_refused() {
    let (_tmp, dir) = new_ca();
    let req = TokenRequest {
        common_name: "bob".into(),
        email: None,
        organizational_units: vec![],
        organization: None,
        ttl: Duration::seconds(1),
        validity: Duration::days(30),
    };
    let (_, short) = enroll::create_token(&dir, &req, WAIT).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let key = KeyType::P256.generate().unwrap();
    assert_eq!(
        redeem(&dir, &short, &csr("bob", &[], &key))
            .unwrap()
            .unwrap_err(),
        Refusal::Expired
    );

    let token = alice_token(&dir);
    let id = enroll::list(&dir).unwrap()[1].id.clone();
    let revoked = enroll::revoke_token(&dir, &id[..6], WAIT).unwrap();
    assert!(revoked.revoked.is_some());
    assert_eq!(
        redeem(&dir, &token, &csr("alice", &[], &key))
            .unwrap()
            .unwrap_err(),
        Refusal::Revoked
    );
    assert!(enroll::revoke_token(&dir, "zzz", WAIT).is_err());
}

#[test]
fn a_valid_certificate_renews_itself_and_a_revoked_one_cannot() {
    let (_tmp, dir) = new_ca();
    let token = alice_token(&dir);
    let first = redeem(
        &dir,
        &token,
        &csr("alice", &[], &KeyType::P256.generate().unwrap()),
    )
    .unwrap()
    .unwrap();

    let ca = Ca::open(&dir, None).unwrap();
    let key2 = KeyType::P256.generate().unwrap();
    let second = ca
        .writer()
        .unwrap()
        .renew_for_csr(&first.chain[0], csr("alice", &[], &key2).as_bytes())
        .unwrap();
    assert_ne!(second.serial, first.serial);
    let (_, cert) = X509Certificate::from_der(&second.chain[0]).unwrap();
    assert_eq!(
        cert.public_key().raw,
        key2.subject_public_key_info().as_slice()
    );
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "alice"
    );
    // The first is now renewed, so it cannot renew again (no forks).
    let err = ca
        .writer()
        .unwrap()
        .renew_for_csr(&first.chain[0], csr("alice", &[], &key2).as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("renewed"), "{err}");

    // Revoked: refused.
    let mut w = ca.writer().unwrap();
    w.revoke(&second.serial, Reason::KeyCompromise, 7).unwrap();
    drop(w);
    let err = ca
        .writer()
        .unwrap()
        .renew_for_csr(
            &second.chain[0],
            csr("alice", &[], &KeyType::P256.generate().unwrap()).as_bytes(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[test]
fn a_short_lived_certificate_renews_for_the_same_lifetime_mostly_in_the_future() {
    let (_tmp, dir) = new_ca();
    let req = TokenRequest {
        common_name: "svc".into(),
        email: None,
        organizational_units: vec![],
        organization: None,
        ttl: Duration::hours(1),
        validity: Duration::minutes(2),
    };
    let (_, token) = enroll::create_token(&dir, &req, WAIT).unwrap();
    let key = KeyType::P256.generate().unwrap();
    let first = redeem(&dir, &token, &csr("svc", &[], &key))
        .unwrap()
        .unwrap();
    let span = |der: &[u8]| {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    };
    let (nb, na) = span(&first.chain[0]);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    // Backdated by a tenth of its lifetime (12 s), not five minutes.
    assert!((now - nb - 12).abs() <= 2, "starts {}s ago", now - nb);
    assert!((na - now - 120).abs() <= 2, "ends in {}s", na - now);

    let ca = Ca::open(&dir, None).unwrap();
    let second = ca
        .writer()
        .unwrap()
        .renew_for_csr(
            &first.chain[0],
            csr("svc", &[], &KeyType::P256.generate().unwrap()).as_bytes(),
        )
        .unwrap();
    let (nb2, na2) = span(&second.chain[0]);
    assert_eq!(na2 - nb2, na - nb, "the same lifetime");
    assert!(
        enroll::create_token(
            &dir,
            &TokenRequest {
                validity: Duration::seconds(30),
                ..req
            },
            WAIT
        )
        .is_err(),
        "under a minute"
    );
}

/// Findings of the attacker review of the first version.
mod review {
    use super::*;

    fn openssl_csr(args: &[&str]) -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "req",
                "-new",
                "-nodes",
                "-keyout",
                "/dev/null",
                "-subj",
                "/CN=x",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn weak_keys_and_sha1_signatures_are_not_certified_and_keep_the_token() {
        let (_tmp, dir) = new_ca();
        let token = alice_token(&dir);
        let rsa1024 = openssl_csr(&["-newkey", "rsa:1024", "-sha256"]);
        let err = redeem(&dir, &token, &rsa1024).unwrap_err();
        assert!(
            err.to_string().contains("RSA of 2048 bits or more"),
            "{err}"
        );
        let sha1 = openssl_csr(&[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-sha1",
        ]);
        let err = redeem(&dir, &token, &sha1).unwrap_err();
        assert!(err.to_string().contains("SHA-1"), "{err}");
        let good = openssl_csr(&["-newkey", "rsa:2048", "-sha256"]);
        assert!(redeem(&dir, &token, &good).unwrap().is_ok());
    }

    #[test]
    fn a_renewal_keeps_the_presented_subject_and_never_takes_over_replaced_files() {
        let (_tmp, dir) = new_ca();
        let token = alice_token(&dir);
        let first = redeem(
            &dir,
            &token,
            &csr("x", &[], &KeyType::P256.generate().unwrap()),
        )
        .unwrap()
        .unwrap();
        // Defaults added after issuing do not change the subject on renewal.
        std::fs::write(
            dir.join("ca.toml"),
            "[defaults]\nou = [\"Contractors\"]\no = \"Other\"\n",
        )
        .unwrap();
        let ca = Ca::open(&dir, None).unwrap();
        let renewed = ca
            .writer()
            .unwrap()
            .renew_for_csr(
                &first.chain[0],
                csr("x", &[], &KeyType::P256.generate().unwrap()).as_bytes(),
            )
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&renewed.chain[0]).unwrap();
        let ou: Vec<_> = cert
            .subject()
            .iter_organizational_unit()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(ou, ["Admins"], "{}", cert.subject());
        assert!(
            cert.subject().iter_organization().next().is_none(),
            "{}",
            cert.subject()
        );

        // Another certificate written over the renewed one's files (`issue --force` for
        // the same name): presenting the renewed one cannot renew it into those files.
        let index = Index::load(&ca::Layout::new(&dir).index()).unwrap();
        let file = index.cert_path(index.find(&renewed.serial).unwrap());
        let other = ca
            .issue(
                &portcullis_pki::LeafRequest {
                    kind: portcullis_pki::Kind::Client,
                    subject: Subject {
                        common_name: "alice".into(),
                        organizational_units: vec!["Staff".into()],
                        ..Default::default()
                    },
                    sans: vec![],
                    days: 30,
                    key_type: KeyType::P256,
                },
                &index,
            )
            .unwrap();
        std::fs::write(&file, ca::pem("CERTIFICATE", &other.cert_der)).unwrap();
        let err = ca
            .writer()
            .unwrap()
            .renew_for_csr(
                &renewed.chain[0],
                csr("x", &[], &KeyType::P256.generate().unwrap()).as_bytes(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("now hold another certificate"),
            "{err}"
        );
    }
}

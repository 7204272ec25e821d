//! Identities from real certificates, including hostile ones the PKI would never issue.

// Test helpers: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_pki::build::{self, Kind, Spec};
use portcullis_pki::{KeyType, San, Subject};
use portcullis_policy::{Condition, Identity, IdentityError, Policy};
use time::{Duration, OffsetDateTime};

/// A self-signed client certificate with the given subject and SANs, bypassing the CA's
/// input validation on purpose.
fn cert(subject: &Subject, sans: &[San]) -> Vec<u8> {
    let key = KeyType::P256.generate().unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let name = build::subject_der(&Subject {
        common_name: "Test CA".into(),
        ..Default::default()
    });
    let now = OffsetDateTime::now_utc();
    build::sign(
        &Spec {
            kind: Kind::Client,
            issuer_name: &name,
            issuer_key_id: None,
            subject,
            sans,
            spki: &spki,
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(1),
            serial: &build::random_serial().unwrap(),
            crl_url: None,
            ca_issuers_url: None,
        },
        &key,
    )
    .unwrap()
}

#[test]
fn typed_fields_are_read() {
    let der = cert(
        &Subject {
            common_name: "alice".into(),
            organization: Some("Acme".into()),
            organizational_units: vec!["Eng".into(), "Admins".into()],
            locality: Some("Berlin".into()),
            state: Some("Berlin".into()),
            country: Some("DE".into()),
            email: Some("alice@example.com".into()),
        },
        &[
            San::Email("alice@example.com".into()),
            San::Uri("spiffe://corp/ops/alice".into()),
            San::Dns("alice.corp".into()),
            San::Ip("10.0.0.1".parse().unwrap()),
        ],
    );
    let id = Identity::from_der(&der).unwrap();
    assert_eq!(id.common_name.as_deref(), Some("alice"));
    assert_eq!(id.organizational_units, ["Eng", "Admins"]);
    assert_eq!(id.organizations, ["Acme"]);
    assert_eq!(id.countries, ["DE"]);
    assert_eq!(id.emails, ["alice@example.com"]);
    assert_eq!(id.uri_sans, ["spiffe://corp/ops/alice"]);
    assert_eq!(id.dns_sans, ["alice.corp"]);
    assert_eq!(
        id.ip_sans,
        ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        id.all_emails().count(),
        1,
        "subject and SAN email are one address"
    );
    assert_eq!(id.fingerprint_sha256.len(), 64);
    assert!(id.not_after > id.not_before);
}

#[test]
fn nul_or_control_characters_make_the_certificate_unusable() {
    for cn in ["admin\0.attacker", "admin\n", "ad\u{7f}min"] {
        let der = cert(
            &Subject {
                common_name: cn.into(),
                ..Default::default()
            },
            &[],
        );
        assert_eq!(
            Identity::from_der(&der),
            Err(IdentityError::ControlCharacter { field: "CN" }),
            "{cn:?}"
        );
    }
    let der = cert(
        &Subject {
            common_name: "ok".into(),
            organizational_units: vec!["Admins\0".into()],
            ..Default::default()
        },
        &[],
    );
    assert!(Identity::from_der(&der).is_err());
    let der = cert(
        &Subject {
            common_name: "ok".into(),
            ..Default::default()
        },
        &[San::Uri("spiffe://corp/ops/\u{1}x".into())],
    );
    assert!(Identity::from_der(&der).is_err());
}

#[test]
fn a_dn_string_lookalike_does_not_grant_a_role() {
    // The OU value literally contains "OU=Admins": a DN-string matcher would be fooled.
    let der = cert(
        &Subject {
            common_name: "mallory, OU=Admins".into(),
            organizational_units: vec!["Users,OU=Admins".into()],
            ..Default::default()
        },
        &[San::Dns("admins.example".into())],
    );
    let id = Identity::from_der(&der).unwrap();
    let mut p = Policy::new();
    p.add_role("admin", vec![Condition::Ou("Admins".into())])
        .unwrap();
    p.add_role("alice", vec![Condition::Cn(vec!["alice".into()])])
        .unwrap();
    p.add_role(
        "mail-admin",
        vec![Condition::Email("admins.example".into())],
    )
    .unwrap();
    assert!(
        p.roles_of(&id, portcullis_policy::Timestamp::UNIX_EPOCH)
            .is_empty(),
        "{id:?}"
    );
}

#[test]
fn subject_and_issuer_are_rfc_4514_strings_that_read_back_as_the_same_attributes() {
    let der = cert(
        &Subject {
            common_name: "mallory, OU=Admins".into(),
            organization: Some("#1 \"Acme\" <x>;y+z".into()),
            organizational_units: vec!["Users,Admins".into(), " padded ".into()],
            ..Default::default()
        },
        &[],
    );
    let id = Identity::from_der(&der).unwrap();
    // Last RDN first (RFC 4514 §2.1; the CA encodes O, OU…, CN), special characters escaped.
    assert_eq!(
        id.subject,
        "CN=mallory\\, OU=Admins,OU=\\ padded\\ ,OU=Users\\,Admins,O=\\#1 \\\"Acme\\\" \\<x\\>\\;y\\+z"
    );
    // Splitting on unescaped commas yields the five attributes, not more.
    let mut parts = 0;
    let mut escaped = false;
    for c in id.subject.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, ',') => parts += 1,
            _ => {}
        }
    }
    assert_eq!(parts + 1, 4, "{}", id.subject);
    assert_eq!(id.issuer, "CN=Test CA");
}

#[test]
fn an_identity_written_out_reads_as_typed_fields() {
    let id = Identity::from_fields(
        "cn=mallory\\, OU=Admins, ou=Users, email=m@example.com, uri=spiffe://corp/m, ip=::1",
    )
    .unwrap();
    // The escaped comma stays in the CN: one CN, one OU.
    assert_eq!(id.common_name.as_deref(), Some("mallory, OU=Admins"));
    assert_eq!(id.organizational_units, ["Users"]);
    assert_eq!(id.email_sans, ["m@example.com"]);
    assert_eq!(id.uri_sans, ["spiffe://corp/m"]);
    assert_eq!(id.ip_sans, ["::1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(id.subject, "CN=mallory\\, OU=Admins,OU=Users");
    for bad in [
        "ou=Admins",
        "cn=a,shoe=9",
        "cn=a,ip=999",
        "cn=a,ou",
        "cn=a\u{7},ou=b",
    ] {
        assert!(Identity::from_fields(bad).is_err(), "{bad}");
    }
}

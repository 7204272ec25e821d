//! Client-certificate verification beyond rustls's own: the deferred verifier of
//! `invalid_cert = "anonymous"`, intermediates from `client_ca` for clients that send
//! their certificate alone, and what a refusal means.

use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

use crate::outcome::{HandshakeOutcome, Rejection};

/// The proof-of-possession half of a wrapping verifier: the client's handshake signature
/// is always checked by `self.inner`, whatever the wrapper changes about the chain.
macro_rules! inner_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}
#[cfg(test)]
pub(super) use inner_signatures;

// === impl DeferredVerifier ===

/// For `invalid_cert = "anonymous"` only: lets the TLS handshake complete when the client
/// presents a certificate that fails chain verification, so the gate can answer with a
/// page ("your certificate is expired") instead of a bare handshake failure — like nginx's
/// `ssl_verify_client optional_no_ca` with `$ssl_client_verify`.
///
/// Verification is moved, not removed: the proof of possession (the client's handshake
/// signature) is still checked here, and the gate runs the real verifier, `inner`, on the
/// chain right after the handshake (`SiteTls::deferred`). Only a chain that passes becomes an
/// identity; any other is anonymous, with the failure reason in `X-Client-Verify`.
#[derive(Debug)]
pub(super) struct DeferredVerifier {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        // Deferred to `SiteTls::deferred`, which the gate runs after the handshake.
        Ok(ClientCertVerified::assertion())
    }

    inner_signatures!();
}

// === impl WithIntermediates ===

/// Completes the chains of clients that send their own certificate alone (curl with
/// `--cert client.crt`, many HTTP libraries) with the intermediate CAs listed in
/// `client_ca`, which the verifier then uses to build a path to a trusted root. They are
/// candidates for the path, never trust anchors, and everything else is `inner`'s. When
/// a certificate that came alone still finds no path, the log says what to change: the
/// refusal itself (an `unknown_ca` alert) cannot.
#[derive(Debug)]
pub(super) struct WithIntermediates {
    inner: Arc<dyn ClientCertVerifier>,
    intermediates: Vec<CertificateDer<'static>>,
}

impl WithIntermediates {
    pub(super) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        intermediates: Vec<CertificateDer<'static>>,
    ) -> WithIntermediates {
        WithIntermediates {
            inner,
            intermediates,
        }
    }
}

impl ClientCertVerifier for WithIntermediates {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verdict = if self.intermediates.is_empty() {
            self.inner
                .verify_client_cert(end_entity, intermediates, now)
        } else {
            // What the client sent first, then the configured ones; borrowed, not copied.
            let all: Vec<CertificateDer<'_>> = intermediates
                .iter()
                .chain(&self.intermediates)
                .map(|c| CertificateDer::from(c.as_ref()))
                .collect();
            self.inner.verify_client_cert(end_entity, &all, now)
        };
        let no_path = matches!(
            verdict,
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        );
        if no_path && intermediates.is_empty() {
            explain_lone_certificate(end_entity);
        }
        verdict
    }

    inner_signatures!();
}

/// Logs why a certificate sent without intermediates found no path, and the two fixes.
fn explain_lone_certificate(leaf: &CertificateDer<'_>) {
    // RFC 4514 strings, as X-Client-Subject and the access log write them.
    if let Ok(id) = portcullis_policy::Identity::from_der(leaf) {
        crate::log::lone_certificate(&id.subject, &id.issuer);
    }
}

/// How a failed handshake ended, for logs and metrics.
pub fn handshake_failure(e: &std::io::Error) -> HandshakeOutcome {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return HandshakeOutcome::Io;
    };
    match tls {
        rustls::Error::NoCertificatesPresented => HandshakeOutcome::NoCertificate,
        // The client refused us (often: it does not trust the server certificate).
        rustls::Error::AlertReceived(_) => HandshakeOutcome::PeerAlert,
        rustls::Error::InvalidCertificate(_) => HandshakeOutcome::Refused(rejection(tls)),
        _ => HandshakeOutcome::Protocol,
    }
}

/// Verifies a client's chain (leaf first) at `now`, outside a handshake: a resumed
/// session, a deferred verification, a reload's sweep of open connections.
pub fn verify_chain(
    verifier: &dyn ClientCertVerifier,
    chain: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), Rejection> {
    let (leaf, rest) = chain.split_first().ok_or(Rejection::BadCertificate)?;
    verifier
        .verify_client_cert(leaf, rest, now)
        .map(drop)
        .map_err(|e| rejection(&e))
}

/// Why a client certificate was refused.
pub fn rejection(e: &rustls::Error) -> Rejection {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => Rejection::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => Rejection::NotYetValid,
            C::Revoked => Rejection::Revoked,
            C::UnknownIssuer => Rejection::UnknownCa,
            C::UnknownRevocationStatus => Rejection::RevocationUnknown,
            C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
                Rejection::CrlExpired
            }
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => Rejection::WrongPurpose,
            _ => Rejection::BadCertificate,
        },
        _ => Rejection::BadCertificate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_reason_on_every_path() {
        use rustls::CertificateError as C;
        let cases = [
            (C::Expired, Rejection::Expired),
            (C::NotValidYet, Rejection::NotYetValid),
            (C::Revoked, Rejection::Revoked),
            (C::UnknownIssuer, Rejection::UnknownCa),
            (C::UnknownRevocationStatus, Rejection::RevocationUnknown),
            (C::ExpiredRevocationList, Rejection::CrlExpired),
            (C::InvalidPurpose, Rejection::WrongPurpose),
            (C::BadSignature, Rejection::BadCertificate),
            (C::BadEncoding, Rejection::BadCertificate),
        ];
        for (cert_error, want) in cases {
            let e = rustls::Error::InvalidCertificate(cert_error);
            assert_eq!(rejection(&e), want);
            let io = std::io::Error::other(e);
            assert_eq!(handshake_failure(&io), HandshakeOutcome::Refused(want));
        }
        assert_eq!(
            handshake_failure(&std::io::Error::other(
                rustls::Error::NoCertificatesPresented
            )),
            HandshakeOutcome::NoCertificate
        );
        assert_eq!(
            handshake_failure(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            HandshakeOutcome::Io
        );
    }
}

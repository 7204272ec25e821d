//! The recording verifier: a rustls [`ServerCertVerifier`] that accepts *any* certificate
//! so the doctor can look at what the server presents, judge it afterwards against each
//! trust store, and tell apart causes that rustls reports alike (a self-signed leaf, a
//! missing intermediate and an untrusted root are all `UnknownIssuer`).
//!
//! This is dangerous on purpose and kept here, in a module named for it. The module is
//! private to the doctor crate and only the probe uses it; the gate does not depend on the
//! doctor at all, so it can never end up verifying real clients. Connections made with it
//! never carry application data: the probe completes the handshake, waits briefly for the
//! server's verdict on our client certificate, and closes.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What the handshake showed us; shared between the verifier, the client-cert resolver and
/// the probe.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub chain: Vec<Vec<u8>>,
    pub chain_at: Option<Instant>,
    pub cert_request: Option<Vec<Vec<u8>>>,
    pub cert_request_at: Option<Instant>,
    pub signature_error: Option<String>,
}

pub(crate) type Shared = Arc<Mutex<Record>>;

fn with<R>(shared: &Shared, f: impl FnOnce(&mut Record) -> R) -> R {
    // A poisoned lock only means another probe thread panicked; the record is still usable.
    let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

pub(crate) fn snapshot(shared: &Shared) -> Record {
    with(shared, std::mem::take)
}

// === impl RecordingVerifier ===

/// Accepts every server certificate and keeps a copy of the chain.
#[derive(Debug)]
pub(crate) struct RecordingVerifier {
    pub record: Shared,
    pub provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        with(&self.record, |r| {
            r.chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.as_ref().to_vec())
                .collect();
            r.chain_at = Some(Instant::now());
        });
        // Judged later, against every trust store (see `trust`).
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let result = rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        );
        self.note(result)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let result = rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        );
        self.note(result)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl RecordingVerifier {
    /// A handshake signature we cannot verify (an RSA key under 2048 bits, say) is written
    /// down and the handshake goes on, so the rest of it (client-certificate request, the
    /// server's verdict) can still be observed.
    fn note(
        &self,
        result: Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if let Err(e) = result {
            with(&self.record, |r| r.signature_error = Some(e.to_string()));
        }
        Ok(HandshakeSignatureValid::assertion())
    }
}

// === impl RecordingClientAuth ===

/// Notes the CertificateRequest (and its CA names), then offers the user's client
/// certificate, if any.
#[derive(Debug)]
pub(crate) struct RecordingClientAuth {
    pub record: Shared,
    pub key: Option<Arc<CertifiedKey>>,
}

impl ResolvesClientCert for RecordingClientAuth {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        with(&self.record, |r| {
            r.cert_request = Some(root_hint_subjects.iter().map(|s| s.to_vec()).collect());
            r.cert_request_at = Some(Instant::now());
        });
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        // Always true, so rustls keeps what it needs to answer a CertificateRequest (with
        // an empty Certificate message when we have none), and we get to see the request.
        true
    }
}

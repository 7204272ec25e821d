//! What happened, as types: how a TLS handshake ended, why a client certificate was refused,
//! and what the gate decided about a request. Logs, metrics and pages take these values;
//! nothing is looked up by string, so a new reason cannot be miscounted as another.

/// Why a presented client certificate was refused. Also the `reason` of
/// `X-Client-Verify: FAILED:reason` with `invalid_cert = "anonymous"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Not issued (directly or through the chain the client sent) by a configured CA.
    UnknownCa,
    Expired,
    NotYetValid,
    Revoked,
    /// The certificate carries an EKU without clientAuth, or is a CA certificate.
    WrongPurpose,
    /// A CRL covering the certificate is past its nextUpdate (`allow_expired_crl` is off).
    CrlExpired,
    /// No CRL covers the certificate's issuer although CRLs are configured.
    RevocationUnknown,
    /// Bad signature, bad encoding, or another defect of the chain.
    BadCertificate,
    /// The chain verified, but a subject field has a NUL or control character, or is not a
    /// string: the gate refuses to interpret it (SECURITY.md rule 5).
    InvalidSubject,
}

impl Rejection {
    pub const ALL: [Rejection; 9] = [
        Rejection::UnknownCa,
        Rejection::Expired,
        Rejection::NotYetValid,
        Rejection::Revoked,
        Rejection::WrongPurpose,
        Rejection::CrlExpired,
        Rejection::RevocationUnknown,
        Rejection::BadCertificate,
        Rejection::InvalidSubject,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::UnknownCa => "unknown-ca",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not-yet-valid",
            Rejection::Revoked => "revoked",
            Rejection::WrongPurpose => "wrong-purpose",
            Rejection::CrlExpired => "crl-expired",
            Rejection::RevocationUnknown => "revocation-unknown",
            Rejection::BadCertificate => "bad-certificate",
            Rejection::InvalidSubject => "invalid-subject",
        }
    }
}

/// How a TLS handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeOutcome {
    Ok,
    /// `client_auth = "require"` and the client sent no certificate.
    NoCertificate,
    /// The client's certificate was refused, in the handshake or (for resumed sessions and
    /// `invalid_cert = "anonymous"`) right after it.
    Refused(Rejection),
    /// The client ended the handshake with an alert (often: it does not trust our
    /// certificate).
    PeerAlert,
    /// Not TLS, or a TLS protocol error.
    Protocol,
    /// No complete handshake within `handshake_timeout_secs`.
    Timeout,
    /// The connection failed (reset, closed early).
    Io,
    /// `no_sni = "reject"` and no host serves the name the client asked for.
    NoHost,
}

impl HandshakeOutcome {
    /// Every outcome, for metrics that show zeros from the start.
    pub fn all() -> impl Iterator<Item = HandshakeOutcome> {
        [
            HandshakeOutcome::Ok,
            HandshakeOutcome::NoCertificate,
            HandshakeOutcome::PeerAlert,
            HandshakeOutcome::Protocol,
            HandshakeOutcome::Timeout,
            HandshakeOutcome::Io,
            HandshakeOutcome::NoHost,
        ]
        .into_iter()
        .chain(Rejection::ALL.map(HandshakeOutcome::Refused))
    }

    /// A dense index, for counters kept in an array.
    pub fn index(self) -> usize {
        match self {
            HandshakeOutcome::Ok => 0,
            HandshakeOutcome::NoCertificate => 1,
            HandshakeOutcome::PeerAlert => 2,
            HandshakeOutcome::Protocol => 3,
            HandshakeOutcome::Timeout => 4,
            HandshakeOutcome::Io => 5,
            HandshakeOutcome::NoHost => 6,
            HandshakeOutcome::Refused(r) => 7 + r as usize,
        }
    }

    #[cfg(test)]
    const COUNT: usize = 7 + Rejection::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeOutcome::Ok => "ok",
            HandshakeOutcome::NoCertificate => "no-cert",
            HandshakeOutcome::Refused(r) => r.as_str(),
            HandshakeOutcome::PeerAlert => "peer-alert",
            HandshakeOutcome::Protocol => "protocol",
            HandshakeOutcome::Timeout => "timeout",
            HandshakeOutcome::Io => "io",
            HandshakeOutcome::NoHost => "no-host",
        }
    }
}

/// What the gate decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    /// 401: the route needs a certificate.
    Unauthenticated,
    /// 403: the certificate is not enough.
    Forbidden,
    /// 403: no rule matches (default deny).
    NoRule,
    /// 400: the method, path, Host or headers are ambiguous or invalid.
    BadRequest,
    /// 421: the Host is not the name this connection was made for.
    Misdirected,
}

impl Decision {
    pub const ALL: [Decision; 6] = [
        Decision::Allow,
        Decision::Unauthenticated,
        Decision::Forbidden,
        Decision::NoRule,
        Decision::BadRequest,
        Decision::Misdirected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Forbidden => "forbidden",
            Decision::NoRule => "no-rule",
            Decision::BadRequest => "bad-request",
            Decision::Misdirected => "misdirected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_own_index_and_name() {
        let all: Vec<HandshakeOutcome> = HandshakeOutcome::all().collect();
        assert_eq!(all.len(), HandshakeOutcome::COUNT);
        for (i, o) in all.iter().enumerate() {
            for p in &all[i + 1..] {
                assert_ne!(o.index(), p.index(), "{o:?} {p:?}");
                assert_ne!(o.as_str(), p.as_str(), "{o:?} {p:?}");
            }
            assert!(o.index() < HandshakeOutcome::COUNT);
        }
    }
}

//! Errors of the doctor itself (not of the connection it examines: those are findings).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "cannot understand target {input:?}: {reason} (expected HOST[:PORT] or https://HOST[:PORT]/path)"
    )]
    Target { input: String, reason: String },

    #[error("--tls must be 1.2 or 1.3, not {0:?}")]
    TlsVersion(String),

    #[error("{}: no certificate found (expected PEM or DER)", path.display())]
    NoCertificates { path: PathBuf },

    #[error("{}: not a usable private key: {reason}", path.display())]
    Key { path: PathBuf, reason: String },

    #[error("{}: not a PKCS#12 bundle this password ({origin}) opens: {reason}", path.display())]
    P12 {
        path: PathBuf,
        origin: String,
        reason: String,
    },

    #[error("{}: the PKCS#12 bundle holds no private key with a certificate", path.display())]
    P12Empty { path: PathBuf },

    #[error("the audit needs a client certificate the server accepts (--cert and --key)")]
    AuditNeedsCertificate,

    #[error("cannot make the forged twins of {cert}: {reason}")]
    Forge { cert: String, reason: String },

    #[error("the audit found no verified connection to the server to send requests on")]
    AuditNoRoute,

    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

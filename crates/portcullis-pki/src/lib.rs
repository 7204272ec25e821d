//! A certificate authority on disk, for mutual TLS.
//!
//! `portcullis-pki` creates a CA in a directory, issues server and client certificates
//! with the details that are easy to get wrong done right (host names in subjectAltName,
//! the right extended key usage, 128-bit random serials, chain files without the root,
//! PKCS#12 bundles that OpenSSL 3, browsers and macOS can open), signs CSRs, revokes and
//! publishes CRLs, and inspects any PEM/DER/PKCS#12 file. It is synchronous and does no
//! network I/O; the `portcullis pki` command is a thin layer over it.
//!
//! ```no_run
//! use std::path::Path;
//! use portcullis_pki::{ca, Kind, LeafRequest, Passphrase, SaveOptions, Subject};
//!
//! # fn main() -> Result<(), portcullis_pki::Error> {
//! let dir = Path::new("pki");
//! let pass = Passphrase::new("correct horse battery".into(), "example")?;
//! ca::init(dir, &ca::InitOptions { passphrase: Some(pass.clone()), ..Default::default() })?;
//!
//! let ca = ca::Ca::open(dir, Some(&pass))?;
//! // Changes take the CA directory's lock: one writer at a time, across processes.
//! let mut writer = ca.writer()?;
//! let req = LeafRequest {
//!     kind: Kind::Client,
//!     subject: Subject { common_name: "alice".into(), ..Default::default() },
//!     sans: vec![],
//!     days: ca::LEAF_DAYS,
//!     key_type: Default::default(),
//! };
//! let issued = ca.issue(&req, writer.index())?;
//! let written = writer.save(issued, &SaveOptions {
//!     out_dir: ca.layout().issued(),
//!     stem: "alice".into(),
//!     key_passphrase: None,
//!     p12: None,
//!     force: false,
//! })?;
//! println!("wrote {written:?}");
//! # Ok(()) }
//! ```
//!
//! Files are written atomically (temporary file, fsync, rename), private keys with mode
//! 0600, and nothing is overwritten unless asked to. Every change to a CA directory runs
//! under its lock ([`lock`]), and a change interrupted by a crash is finished or undone by
//! the next one.

pub mod build;
pub mod ca;
pub mod csr;
pub mod defaults;
pub mod enroll;
pub mod error;
pub mod fsio;
pub mod index;
pub mod inspect;
pub mod keys;
pub mod lock;
pub mod names;
pub mod p12;
pub mod renewal;
pub mod secret;
pub mod trust;

pub use build::Kind;
pub use ca::{Ca, IssuedKey, LeafRequest, Reason, SaveOptions, Writer};
pub use error::{Error, Result};
pub use index::{Index, KeyOrigin, Record, Status};
pub use keys::{BroughtKey, KeyType};
pub use names::{San, Subject};
pub use p12::P12Format;
pub use renewal::Threshold;
pub use secret::Passphrase;

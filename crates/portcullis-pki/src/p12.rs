//! PKCS#12 bundles for browsers, keychains and `tls.createSecureContext({ pfx })`.
//!
//! Modern (default): PBES2 with AES-256-CBC for keys and certificates and an HMAC-SHA256
//! MAC, what OpenSSL 3 writes and Firefox, Chrome, Node and Windows 10+ read. Legacy:
//! 3DES and an HMAC-SHA1 MAC, for macOS/iOS keychains and old Windows, which cannot open
//! the modern form. RC2-40 (OpenSSL 1.x's old default) is never written.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use rcgen::KeyPair;

use crate::error::{Error, Result};
use crate::secret::Passphrase;

/// Which PKCS#12 encryption to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum P12Format {
    /// AES-256-CBC + SHA-256 MAC.
    #[default]
    Modern,
    /// 3DES + SHA-1 MAC, for macOS/iOS keychains and old Windows.
    Legacy,
}

/// Iterations for both key derivation and MAC (OpenSSL 3 uses 2048; Java 10000).
const ITERATIONS: u32 = 10_000;

/// Bundles a key with its certificate and intermediates (never the root: the client
/// presents this chain, and the server already has the root).
pub fn bundle(
    key: &KeyPair,
    chain_der: &[Vec<u8>],
    friendly_name: &str,
    password: &Passphrase,
    format: P12Format,
) -> Result<Vec<u8>> {
    let err = |e: p12_keystore::error::Error| Error::crypto("writing PKCS#12", e);
    let certs = chain_der
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(err)?;
    let Some(leaf) = chain_der.first() else {
        return Err(Error::crypto("writing PKCS#12", "no certificate given"));
    };
    // localKeyId ties the key bag to the certificate bag; OpenSSL uses the SHA-1 of the
    // certificate, which importers only compare for equality.
    let key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
    let private = PrivateKey::from_der(&key.serialize_der()).map_err(err)?;
    let mut store = KeyStore::new();
    store.add_entry(
        friendly_name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id.as_ref(), private, certs)),
    );
    let (enc, mac) = match format {
        P12Format::Modern => (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        ),
        P12Format::Legacy => (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
        ),
    };
    store
        .writer(password.expose())
        .encryption_algorithm(enc)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(err)
}

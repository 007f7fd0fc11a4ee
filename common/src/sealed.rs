//! Credentials sealed to the executors' public key: an X25519 sealed box
//! (libsodium's `crypto_box_seal`, via the RustCrypto `crypto_box` crate) of a JSON
//! object, carried as base64 in `JobSpec.sealed_credentials`.
//!
//! Anyone holding the public key can seal; only a holder of the private key (the
//! executors) can open. Keys travel as base64 of their 32 raw bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey};
use zeroize::Zeroizing;

/// The most sealed bytes a job may carry (before base64).
pub const MAX_SEALED_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("key is not base64 of 32 bytes")]
    BadKey,
    #[error("sealed credentials are not valid base64")]
    BadEncoding,
    #[error("sealed credentials are larger than {MAX_SEALED_BYTES} bytes")]
    TooLarge,
    #[error("sealed credentials could not be opened with this executor's key")]
    Open,
    #[error("sealing failed")]
    Seal,
}

fn key_bytes(text: &str) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| SealError::BadKey)?);
    let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SealError::BadKey)?;
    Ok(Zeroizing::new(array))
}

/// An executor's private key (zeroized on drop by `crypto_box`).
pub struct PrivateKey(SecretKey);

impl PrivateKey {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self(SecretKey::generate(&mut OsRng))
    }

    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        Ok(Self(SecretKey::from_bytes(*key_bytes(text)?)))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.to_bytes()))
    }

    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.0.public_key().as_bytes())
    }

    /// Opens base64 `sealed` text; the plaintext is zeroized when dropped.
    pub fn open(&self, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let bytes = STANDARD.decode(sealed.trim()).map_err(|_| SealError::BadEncoding)?;
        if bytes.len() > MAX_SEALED_BYTES {
            return Err(SealError::TooLarge);
        }
        self.0.unseal(&bytes).map(Zeroizing::new).map_err(|_| SealError::Open)
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// Seals `plaintext` to the base64 public key `public`; returns base64.
pub fn seal(public: &str, plaintext: &[u8]) -> Result<String, SealError> {
    let key = PublicKey::from(*key_bytes(public)?);
    let sealed = key.seal(&mut OsRng, plaintext).map_err(|_| SealError::Seal)?;
    if sealed.len() > MAX_SEALED_BYTES {
        return Err(SealError::TooLarge);
    }
    Ok(STANDARD.encode(sealed))
}

/// Checks that `sealed` is plausible sealed-box text without opening it.
pub fn check_sealed(sealed: &str) -> Result<(), SealError> {
    let bytes = STANDARD.decode(sealed.trim()).map_err(|_| SealError::BadEncoding)?;
    match bytes.len() {
        n if n > MAX_SEALED_BYTES => Err(SealError::TooLarge),
        n if n < 48 => Err(SealError::BadEncoding), // ephemeral key + tag
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sealed_to_a_public_key_opens_only_with_its_private_key() {
        let key = PrivateKey::generate();
        let sealed = seal(&key.public_base64(), br#"{"git_token":"s3cret"}"#).unwrap();
        assert!(!sealed.contains("s3cret"));
        check_sealed(&sealed).unwrap();
        assert_eq!(key.open(&sealed).unwrap().as_slice(), br#"{"git_token":"s3cret"}"#);
        let other = PrivateKey::generate();
        assert_eq!(other.open(&sealed).unwrap_err(), SealError::Open);
        let again = PrivateKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.public_base64(), key.public_base64());
    }

    #[test]
    fn malformed_keys_and_boxes_are_refused() {
        assert_eq!(seal("short", b"x").unwrap_err(), SealError::BadKey);
        assert_eq!(PrivateKey::generate().open("%%").unwrap_err(), SealError::BadEncoding);
        assert_eq!(check_sealed("AAAA").unwrap_err(), SealError::BadEncoding);
    }
}

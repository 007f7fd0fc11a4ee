//! Opening a job's sealed credentials. The plaintext lives only here, in memory
//! that is zeroized when dropped, and in the container's stdin.

use gitfaas_common::sealed::{PrivateKey, SealError};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// The key of the credential used as the git password for private repositories.
pub const GIT_TOKEN: &str = "git_token";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("job carries sealed credentials but this executor has no private key")]
    NoKey,
    #[error("{0}")]
    Sealed(#[from] SealError),
    #[error("sealed credentials are not a json object of strings")]
    NotAnObject,
}

/// Opened credentials: a JSON object whose text is zeroized on drop.
pub struct Credentials {
    json: Zeroizing<Vec<u8>>,
}

impl Credentials {
    pub fn none() -> Self {
        Self { json: Zeroizing::new(b"{}".to_vec()) }
    }

    /// Opens `sealed` with `key`; checks it is an object of strings.
    pub fn open(sealed: Option<&str>, key: Option<&PrivateKey>) -> Result<Self, CredentialsError> {
        let Some(sealed) = sealed else { return Ok(Self::none()) };
        let key = key.ok_or(CredentialsError::NoKey)?;
        let json = key.open(sealed)?;
        let valid = serde_json::from_slice::<Map<String, Value>>(&json)
            .map(|map| map.values().all(Value::is_string))
            .unwrap_or(false);
        if !valid {
            return Err(CredentialsError::NotAnObject);
        }
        Ok(Self { json })
    }

    /// The JSON object's bytes, to splice into the function's stdin.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// One credential's value, zeroized on drop.
    pub fn get(&self, name: &str) -> Option<Zeroizing<String>> {
        let mut map: Map<String, Value> = serde_json::from_slice(&self.json).ok()?;
        let value = match map.remove(name) {
            Some(Value::String(s)) => Some(Zeroizing::new(s)),
            _ => None,
        };
        for (_, v) in map.iter_mut() {
            if let Value::String(s) = v {
                zeroize::Zeroize::zeroize(s);
            }
        }
        value
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfaas_common::sealed::seal;

    #[test]
    fn sealed_credentials_open_to_their_values_and_bad_ones_are_errors() {
        let key = PrivateKey::generate();
        let sealed = seal(&key.public_base64(), br#"{"git_token":"t0k","api":"k"}"#).unwrap();
        let creds = Credentials::open(Some(&sealed), Some(&key)).unwrap();
        assert_eq!(creds.get(GIT_TOKEN).unwrap().as_str(), "t0k");
        assert!(creds.get("missing").is_none());
        assert!(format!("{creds:?}").find("t0k").is_none());
        assert!(matches!(Credentials::open(Some(&sealed), None), Err(CredentialsError::NoKey)));
        let list = seal(&key.public_base64(), b"[1]").unwrap();
        assert!(matches!(Credentials::open(Some(&list), Some(&key)), Err(CredentialsError::NotAnObject)));
        assert_eq!(Credentials::open(None, None).unwrap().json(), b"{}");
    }
}

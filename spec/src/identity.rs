//! Node identity: an Ed25519 key pair in the Python peer's formats.
//!
//! The private key is the 32-byte RFC 8032 seed and the node id the 32-byte public key, each as
//! 64 lowercase hex characters without a newline (the contents of `identity/private_key` and
//! `identity/node_id`). Reading and writing those files belongs to the node agent; this module
//! only converts, so it stays pure.

use ed25519_dalek::{Signer, SigningKey};

use crate::record::ExperimentRecord;

/// Why a key text is not a usable identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("private key must be 64 hex characters (a 32-byte seed), got {0} characters")]
    BadLength(usize),
    #[error("private key is not hex")]
    NotHex,
}

/// A signing identity.
#[derive(Clone)]
pub struct Identity {
    signing_key: SigningKey,
}

impl std::fmt::Debug for Identity {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("node_id", &self.node_id()).finish_non_exhaustive()
    }
}

impl Identity {
    /// From 32 seed bytes.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Identity { signing_key: SigningKey::from_bytes(&seed) }
    }

    /// From the text of a Python `private_key` file (surrounding whitespace ignored).
    pub fn from_seed_hex(text: &str) -> Result<Self, IdentityError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(IdentityError::BadLength(text.len()));
        }
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text, &mut seed).map_err(|_| IdentityError::NotHex)?;
        Ok(Self::from_seed(seed))
    }

    /// A fresh identity from the operating system's randomness.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        Identity::from_seed(seed)
    }

    /// The seed as 64 lowercase hex characters (the `private_key` file's contents).
    pub fn seed_hex(&self) -> String {
        hex::encode(self.signing_key.to_bytes())
    }

    /// The public key as 64 lowercase hex characters (the `node_id`).
    pub fn node_id(&self) -> String {
        hex::encode(self.signing_key.verifying_key().as_bytes())
    }

    /// Detached signature of `message`, 128 lowercase hex characters.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.signing_key.sign(message).to_bytes())
    }

    /// Sets `node_id` to this identity, then `signature` and `id` from the canonical bytes,
    /// as Python's publish path does.
    pub fn sign_record(&self, record: &mut ExperimentRecord) {
        record.node_id = self.node_id();
        let canonical = record.canonical_bytes();
        record.signature = self.sign_hex(&canonical);
        record.id = crate::cid::cid_of(&canonical);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_1_seed_gives_its_public_key() {
        let id = Identity::from_seed_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n").unwrap();
        assert_eq!(id.node_id(), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert!(!format!("{id:?}").contains("9d61b1"));
    }

    #[test]
    fn rejects_malformed_seeds() {
        assert_eq!(Identity::from_seed_hex("abcd").unwrap_err(), IdentityError::BadLength(4));
        assert_eq!(Identity::from_seed_hex(&"zz".repeat(32)).unwrap_err(), IdentityError::NotHex);
    }
}

//! Content identifiers: lowercase hex SHA-256.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes` (the CID of a record's canonical bytes or of an artifact).
pub fn cid_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// True for exactly 64 lowercase hex characters, the only form a CID is compared in.
pub fn is_cid(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_is_lowercase_sha256_hex() {
        assert_eq!(cid_of(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(is_cid(&cid_of(b"")));
        assert!(!is_cid(&cid_of(b"").to_uppercase()));
    }
}

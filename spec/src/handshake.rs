//! The handshake between our nodes that binds a connection's `node_id` to its key: each side's
//! `hello` carries a fresh random `nonce`; each side answers the other's with an `auth` message,
//! an Ed25519 signature by its node key over [`auth_bytes`] (the other's nonce, its own node id
//! and the port it listens on). A peer that proves its key is *authenticated*; a `hello` without
//! the `auth` capability (older nodes; Python peers send no `hello` at all) stays a claim.

use crate::Identity;
use crate::verify::check_signature;

/// The capability a node announces in `hello` when it takes part.
pub const AUTH_CAPABILITY: &str = "auth";

/// What an `auth` signs: a domain tag, the nonce the other side sent, the signer's node id and
/// listen port, one per line.
pub fn auth_bytes(their_nonce: &str, node_id: &str, listen_port: u16) -> Vec<u8> {
    format!("spore-auth-v1\n{their_nonce}\n{node_id}\n{listen_port}").into_bytes()
}

/// The `auth` signature `identity` sends in answer to `their_nonce`.
pub fn sign_auth(identity: &Identity, their_nonce: &str, listen_port: u16) -> String {
    identity.sign_hex(&auth_bytes(their_nonce, &identity.node_id(), listen_port))
}

/// Whether `signature` proves that the holder of `node_id`'s key answered `our_nonce`.
pub fn verify_auth(node_id: &str, signature: &str, our_nonce: &str, listen_port: u16) -> bool {
    check_signature(node_id, signature, &auth_bytes(our_nonce, node_id, listen_port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_holds_only_for_its_nonce_key_and_port() {
        let node = Identity::from_seed([4; 32]);
        let signature = sign_auth(&node, "n1", 7470);
        assert!(verify_auth(&node.node_id(), &signature, "n1", 7470));
        assert!(!verify_auth(&node.node_id(), &signature, "n2", 7470), "another nonce");
        assert!(!verify_auth(&node.node_id(), &signature, "n1", 7471), "another port");
        let other = Identity::from_seed([5; 32]).node_id();
        assert!(!verify_auth(&other, &signature, "n1", 7470), "another key");
        assert!(!verify_auth("zz", &signature, "n1", 7470) && !verify_auth(&node.node_id(), "00", "n1", 7470));
    }
}

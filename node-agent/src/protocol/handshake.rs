//! Who a peer is: its `hello` claims a `node_id`; between our nodes the claim is proved by an
//! `auth` answer to our nonce (`spore_spec::handshake`). When two connections claim one node,
//! the better one stays: a proven identity over a connection we dialed over an inbound claim,
//! the older on a tie. A peer that announces `auth` is not judged until it has answered, so an
//! impersonator who connects first cannot lock the real node out, and a claim never evicts a
//! proven or a dialed connection. Python peers send no `hello` and are not affected.

use sha2::{Digest, Sha256};
use spore_spec::Message;
use spore_spec::handshake::{AUTH_CAPABILITY, sign_auth, verify_auth};

use super::{Direction, Hello, PeerId, Protocol};
use crate::store::StoreError;

impl Protocol {
    /// A nonce no peer can predict or see twice: keyed by the node's secret, numbered.
    pub(super) fn fresh_nonce(&mut self, peer: PeerId) -> String {
        self.nonces_made += 1;
        let digest = Sha256::new()
            .chain_update(self.nonce_key)
            .chain_update(peer.to_le_bytes())
            .chain_update(self.nonces_made.to_le_bytes())
            .finalize();
        hex::encode(digest)
    }

    /// How much a connection's claim to its `node_id` is worth.
    fn standing(&self, peer: PeerId) -> u8 {
        match self.peers.get(&peer) {
            Some(p) if p.authenticated => 2,
            Some(p) if matches!(p.direction, Direction::Outbound { .. }) => 1,
            _ => 0,
        }
    }

    /// Closes whichever of `peer` and the other connections claiming its node is worth less
    /// (the newer on a tie); false when `peer` itself was closed.
    fn settle_duplicates(&mut self, peer: PeerId) -> bool {
        let Some(node_id) = self.peers.get(&peer).and_then(|p| p.hello.as_ref()).map(|h| h.node_id.clone()) else {
            return true;
        };
        let others: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| **id != peer && !p.closing && p.hello.as_ref().is_some_and(|h| h.node_id == node_id))
            .map(|(id, _)| *id)
            .collect();
        let mine = self.standing(peer);
        for other in others {
            if self.standing(other) >= mine {
                self.disconnect(peer, "already connected to this node");
                return false;
            }
            self.disconnect(other, "another connection proved this node's identity better");
        }
        true
    }

    pub(super) fn on_hello(&mut self, peer: PeerId, hello: Hello, nonce: Option<String>) -> Result<(), StoreError> {
        if hello.node_id == self.node_id {
            self.disconnect(peer, "connected to ourselves");
            return Ok(());
        }
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        if state.hello.is_some() {
            // One identity per connection.
            return Ok(());
        }
        let proves = hello.capabilities.iter().any(|c| c == AUTH_CAPABILITY) && nonce.is_some();
        state.hello = Some(hello);
        if let Some(nonce) = nonce.filter(|_| proves) {
            let signature = sign_auth(&self.identity, &nonce, self.listen_port);
            self.send(peer, &Message::Auth { signature });
        } else if !self.settle_duplicates(peer) {
            return Ok(());
        }
        // A peer that speaks our dialect gets a cursor-based sync right away, whichever side
        // dialed (0.1.2 peers are only asked on connections we opened, as Python does).
        let Some(state) = self.peers.get(&peer) else { return Ok(()) };
        if state.sync_requested_at.is_none()
            && (state.has_capability("sync-seq") || matches!(state.direction, Direction::Outbound { .. }))
            && self.may_ask(peer)
        {
            self.request_sync(peer)?;
        }
        Ok(())
    }

    /// The peer's answer to our nonce: proven, or a forgery that ends the connection.
    pub(super) fn on_auth(&mut self, peer: PeerId, signature: &str) -> Result<(), StoreError> {
        let Some(state) = self.peers.get(&peer) else { return Ok(()) };
        let (Some(hello), false) = (&state.hello, state.authenticated) else {
            self.punish(peer, 10, "auth without a hello, or twice");
            return Ok(());
        };
        if !verify_auth(&hello.node_id, signature, &state.nonce, hello.listen_port) {
            self.stats.auth_failed += 1;
            self.punish(peer, self.config.ban_score, "auth signature does not prove the hello's node_id");
            return Ok(());
        }
        if let Some(state) = self.peers.get_mut(&peer) {
            state.authenticated = true;
        }
        self.stats.peers_authenticated += 1;
        self.settle_duplicates(peer);
        Ok(())
    }
}

//! Peer exchange: what we tell a peer that asks, and what we take from the answer to our own
//! request.

use std::net::IpAddr;

use spore_spec::Message;

use super::{PeerId, PeerState, Protocol, addresses};

impl Protocol {
    pub(super) fn ask_for_peers(&mut self, peer: PeerId) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.pex_asked = true;
        }
        self.send(peer, &Message::PexRequest);
    }

    pub(super) fn on_pex_request(&mut self, peer: PeerId) {
        // Across the bridge no addresses travel, either way.
        let public = self.is_public(peer);
        let addresses: Vec<String> = self
            .peers
            .iter()
            .filter(|(id, state)| **id != peer && !public && !state.public)
            .filter_map(|(_, state)| state.listen_address())
            .take(self.config.max_pex_addresses)
            .collect();
        self.send(peer, &Message::PexResponse { peer: addresses });
    }

    /// Addresses a peer at `teller` offered: dialed once each (never persistent), if they may
    /// be learned from it ([`addresses::may_learn`]) and the dial book has room.
    pub(super) fn on_pex_response(&mut self, teller: IpAddr, offered: &[String]) {
        let connected: Vec<String> = self.peers.values().filter_map(PeerState::listen_address).collect();
        let own = format!("127.0.0.1:{}", self.listen_port);
        for address in offered.iter().take(self.config.max_pex_addresses) {
            if !addresses::may_learn(teller, address) || connected.contains(address) || *address == own {
                continue;
            }
            let learned = self.dial_book.values().filter(|t| !t.persistent).count();
            if !self.dial_book.contains_key(address) && learned < self.config.max_dial_book {
                self.add_dial_target(address, false);
            }
        }
    }
}

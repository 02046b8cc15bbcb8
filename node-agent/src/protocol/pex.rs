//! Peer exchange: what we tell a peer that asks, and what we take from the answer to our own
//! request.

use std::collections::BTreeMap;
use std::net::IpAddr;

use spore_spec::Message;

use super::{Direction, PeerId, PeerState, Protocol, addresses};

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
    /// be learned from it ([`addresses::may_learn`]) and the dial book has room for them.
    pub(super) fn on_pex_response(&mut self, teller: IpAddr, offered: &[String]) {
        let connected: Vec<String> = self.peers.values().filter_map(PeerState::listen_address).collect();
        let own = format!("127.0.0.1:{}", self.listen_port);
        let group = addresses::group(teller);
        for address in offered.iter().take(self.config.max_pex_addresses) {
            if !addresses::may_learn(teller, address) || connected.contains(address) || *address == own {
                continue;
            }
            if self.dial_book.contains_key(address) || !self.make_room(group) {
                continue;
            }
            self.add_dial_target(address, false);
            if let Some(target) = self.dial_book.get_mut(address) {
                target.learned_from = Some(group);
            }
        }
    }

    /// With every inbound slot taken, a newcomer from `ip` gets one when its network group
    /// holds fewer inbound connections than the group holding the most: that group's least
    /// useful peer (fewest records accepted from it, not proven, the youngest) is closed. So
    /// one network cannot hold every slot, yet a crowd from the same network is not churned.
    pub(super) fn evict_inbound_for(&mut self, ip: IpAddr) -> bool {
        let group = addresses::group(ip);
        let mut held: BTreeMap<u64, usize> = BTreeMap::new();
        let inbound = || self.peers.iter().filter(|(_, p)| matches!(p.direction, Direction::Inbound) && !p.closing);
        for (_, state) in inbound() {
            *held.entry(addresses::group(state.remote.ip())).or_default() += 1;
        }
        let own = held.get(&group).copied().unwrap_or(0);
        let Some((&largest, &most)) = held.iter().max_by_key(|(_, n)| **n) else { return false };
        if largest == group || own + 1 >= most {
            return false;
        }
        let victim = inbound()
            .filter(|(_, p)| addresses::group(p.remote.ip()) == largest)
            .min_by_key(|(id, p)| (p.accepted_records, p.authenticated, std::cmp::Reverse((p.connected_at, **id))))
            .map(|(id, _)| *id);
        match victim {
            Some(victim) => {
                self.disconnect(victim, "evicted for a peer from a less represented network");
                true
            }
            None => false,
        }
    }

    /// Room in the dial book's learned part for one more address told by `group`: free, or made
    /// by dropping a waiting address of the group that holds the most, when that is not
    /// `group` itself. So a network that floods us with addresses holds at most an even share
    /// once others have told us theirs, and cannot push out what they told us.
    fn make_room(&mut self, group: u64) -> bool {
        let learned = self.dial_book.values().filter(|t| !t.persistent).count();
        if learned < self.config.max_dial_book {
            return true;
        }
        let mut held: BTreeMap<u64, usize> = BTreeMap::new();
        for target in self.dial_book.values().filter(|t| !t.persistent && !t.connected) {
            *held.entry(target.learned_from.unwrap_or(u64::MAX)).or_default() += 1;
        }
        let own = held.get(&group).copied().unwrap_or(0);
        let Some((&largest, &most)) = held.iter().max_by_key(|(_, n)| **n) else { return false };
        if largest == group || own + 1 >= most {
            return false;
        }
        let victim = self
            .dial_book
            .iter()
            .find(|(_, t)| !t.persistent && !t.connected && t.learned_from.unwrap_or(u64::MAX) == largest)
            .map(|(address, _)| address.clone());
        match victim {
            Some(address) => {
                self.dial_book.remove(&address);
                true
            }
            None => false,
        }
    }
}

//! Lazy push between our own nodes: a peer that says `announce` in its `hello` is told the ids
//! of newly stored records (`have`) instead of being sent the records, and asks for the ones
//! it lacks (`get_records`). In a mesh where every node hears a record from several peers,
//! each record then crosses each link once, not once per neighbour: the copies a node would
//! receive and drop become 64-byte ids.
//!
//! An id we asked for is remembered with its deadline and the other peers that announced it.
//! When the deadline passes (the peer went away, or it never answered) the next announcer is
//! asked; after the last one the id is given up and anti-entropy (the periodic cursor sync)
//! brings the record. At most `max_asks_per_peer` ids are asked of one peer at a time; the
//! rest of a burst waits in that peer's queue (bounded too) and is asked as records come in.
//! The limits are in [`super::ProtocolConfig`].
//! The map of wanted ids is bounded: past it, or past a peer's queue, announcements are ignored
//! (before any store lookup) and counted, and the same sync catches up. A peer announcing what
//! it never sends thus holds a bounded number of entries, for one timeout each.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroUsize;

use bytes::Bytes;
use lru::LruCache;
use spore_spec::Message;

use super::{Millis, PeerId, Protocol};
use crate::store::StoreError;

/// The capability that asks for `have` instead of records.
pub const ANNOUNCE: &str = "announce";

/// One record we asked for and have not received.
#[derive(Debug)]
struct Want {
    /// The announcer it is asked of (or queued for).
    asked: PeerId,
    /// When it was asked or queued: its deadline runs from then.
    asked_at: Millis,
    /// False while it waits in the announcer's queue.
    sent: bool,
    spares: Vec<PeerId>,
}

/// The ids asked for, with their deadlines in asking order, and the bodies of the records
/// we announced last.
#[derive(Debug)]
pub(super) struct Wanted {
    ids: BTreeMap<String, Want>,
    /// `(asked_at, id)` in the order asked; an entry is stale when the id was received or
    /// asked again since.
    deadlines: VecDeque<(Millis, String)>,
    announced: LruCache<String, Bytes>,
}

impl Wanted {
    /// Keeps the bodies of the last `announced_bodies` records announced.
    pub(super) fn new(announced_bodies: usize) -> Self {
        Wanted {
            ids: BTreeMap::new(),
            deadlines: VecDeque::new(),
            announced: LruCache::new(NonZeroUsize::new(announced_bodies).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Keeps the `experiment` body of a record we announce, for the requests to come.
    pub(super) fn remember_body(&mut self, id: &str, body: Bytes) {
        self.announced.put(id.to_string(), body);
    }

    /// The body of a record announced recently.
    pub(super) fn announced_body(&mut self, id: &str) -> Option<Bytes> {
        self.announced.get(id).cloned()
    }
}

/// Counters of the lazy push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnnounceStats {
    /// Ids sent in `have` messages.
    pub ids_announced: u64,
    /// Announced ids we asked for (the first time).
    pub ids_requested: u64,
    /// Asks that went to another announcer because the first did not answer in time.
    pub retries: u64,
    /// Ids given up after every announcer was asked (anti-entropy brings them later).
    pub abandoned: u64,
    /// Announced ids whose ask waited for the announcer's earlier asks to be answered.
    pub deferred: u64,
    /// Announced ids ignored because the wanted map or the announcer's queue was full.
    pub overflow: u64,
}

impl Protocol {
    /// Whether records go to `peer` as `have` ids rather than in full.
    pub(super) fn wants_announcements(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.has_capability(ANNOUNCE))
    }

    /// Sends `have` messages to each peer for its ids, at most `max_get_records` ids in one.
    pub(super) fn announce(&mut self, announcements: BTreeMap<PeerId, Vec<String>>) {
        for (peer, ids) in announcements {
            for chunk in ids.chunks(self.config.max_get_records) {
                self.stats.announce.ids_announced += chunk.len() as u64;
                self.send(peer, &Message::Have { ids: chunk.to_vec() });
            }
        }
    }

    /// The record arrived (or was refused on its merits): nothing more to ask.
    pub(super) fn received_wanted(&mut self, id: &str) {
        if let Some(want) = self.wanted.ids.remove(id)
            && want.sent
        {
            self.answered(want.asked);
        }
    }

    /// One ask of `peer` is settled (answered, or moved on to another announcer).
    fn answered(&mut self, peer: PeerId) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.asks_outstanding = state.asks_outstanding.saturating_sub(1);
        }
    }

    /// Whether `peer` can be asked for one more id, now or from its queue.
    fn has_room(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(|s| {
            !s.closing
                && (s.asks_outstanding < self.config.max_asks_per_peer
                    || s.deferred.len() < self.config.max_deferred_per_peer)
        })
    }

    /// Makes `peer` the one asked for the wanted `id`: asked now (added to `asks`) if it is
    /// under its bound, else queued. The deadline runs from now either way. `has_room` first.
    fn assign(&mut self, id: &str, peer: PeerId, asks: &mut BTreeMap<PeerId, Vec<String>>) {
        let (Some(state), Some(want)) = (self.peers.get_mut(&peer), self.wanted.ids.get_mut(id)) else { return };
        want.asked = peer;
        want.asked_at = self.now;
        want.sent = state.asks_outstanding < self.config.max_asks_per_peer;
        if want.sent {
            state.asks_outstanding += 1;
            asks.entry(peer).or_default().push(id.to_string());
        } else {
            state.deferred.push_back(id.to_string());
            self.stats.announce.deferred += 1;
        }
        self.wanted.deadlines.push_back((self.now, id.to_string()));
    }

    /// Sends the asks, at most `max_get_records` ids in one `get_records`.
    fn send_asks(&mut self, asks: BTreeMap<PeerId, Vec<String>>) {
        for (peer, ids) in asks {
            self.stats.announce.ids_requested += ids.len() as u64;
            for chunk in ids.chunks(self.config.max_get_records) {
                self.send(peer, &Message::GetRecords { ids: chunk.to_vec() });
            }
        }
    }

    /// Asks each peer for the queued ids its bound has room for again.
    pub(super) fn ask_deferred(&mut self) {
        let (now, bound) = (self.now, self.config.max_asks_per_peer);
        let mut asks: BTreeMap<PeerId, Vec<String>> = BTreeMap::new();
        for (peer, state) in self.peers.iter_mut() {
            while state.asks_outstanding < bound {
                let Some(id) = state.deferred.pop_front() else { break };
                let Some(want) = self.wanted.ids.get_mut(&id) else { continue };
                if want.asked != *peer || want.sent {
                    continue; // received meanwhile, or moved on to another announcer
                }
                want.sent = true;
                want.asked_at = now;
                state.asks_outstanding += 1;
                self.wanted.deadlines.push_back((now, id.clone()));
                asks.entry(*peer).or_default().push(id);
            }
        }
        self.send_asks(asks);
    }

    /// `peer` stored these records: ask it for the ones we neither hold nor asked for.
    pub(super) fn on_have(&mut self, peer: PeerId, ids: &[String]) -> Result<(), StoreError> {
        if !self.may_ask(peer) {
            return Ok(());
        }
        let now = self.now;
        let mut asks: BTreeMap<PeerId, Vec<String>> = BTreeMap::new();
        for id in ids.iter().take(self.config.max_get_records) {
            if !spore_spec::cid::is_cid(id) || self.seen.contains(id) {
                continue;
            }
            if let Some(want) = self.wanted.ids.get_mut(id) {
                if want.asked != peer
                    && !want.spares.contains(&peer)
                    && want.spares.len() < self.config.spare_announcers
                {
                    want.spares.push(peer);
                }
                continue;
            }
            if self.wanted.ids.len() >= self.config.max_wanted || !self.has_room(peer) {
                self.stats.announce.overflow += 1;
                continue;
            }
            if self.store.contains(id)? {
                continue;
            }
            self.wanted.ids.insert(id.clone(), Want { asked: peer, asked_at: now, sent: false, spares: Vec::new() });
            self.assign(id, peer, &mut asks);
        }
        self.send_asks(asks);
        Ok(())
    }

    /// Asks the next announcer for every id whose deadline passed; gives up ids with none left.
    pub(super) fn expire_wanted(&mut self) {
        let timeout = self.config.announce_timeout.as_millis() as Millis;
        let now = self.now;
        let mut asks: BTreeMap<PeerId, Vec<String>> = BTreeMap::new();
        while let Some((asked_at, _)) = self.wanted.deadlines.front() {
            if now.saturating_sub(*asked_at) < timeout {
                break;
            }
            let Some((asked_at, id)) = self.wanted.deadlines.pop_front() else { break };
            let Some(want) = self.wanted.ids.get_mut(&id) else { continue };
            if want.asked_at != asked_at {
                continue; // asked again since; a later entry holds its deadline
            }
            let (silent, sent) = (want.asked, want.sent);
            let spares = std::mem::take(&mut want.spares);
            if self.seen.contains(&id) {
                self.received_wanted(&id);
                continue;
            }
            let Some(index) = spares.iter().position(|p| self.has_room(*p)) else {
                self.received_wanted(&id);
                self.stats.announce.abandoned += 1;
                continue;
            };
            if sent {
                self.answered(silent);
            }
            if let Some(want) = self.wanted.ids.get_mut(&id) {
                want.spares = spares[index + 1..].to_vec();
            }
            self.stats.announce.retries += 1;
            self.assign(&id, spares[index], &mut asks);
        }
        self.send_asks(asks);
    }

    /// Ids asked for and not yet received.
    pub fn wanted_count(&self) -> usize {
        self.wanted.len()
    }
}

//! The gossip protocol as a state machine (sans-IO, in the style of iroh-gossip).
//!
//! The driver feeds [`Event`]s — connections, frame bodies, a clock tick, "queue drained",
//! "idle" — and carries out the [`Action`]s returned: send bytes, close a connection, dial an
//! address. Sockets, the clock and randomness live in the driver (`crate::node`), so a whole
//! network of cores can run in one thread from a seeded RNG (`tests/simulation.rs`).
//!
//! The core owns the DAG store: it checks, stores and relays records, answers syncs page by
//! page as the peer's send queue drains (back-pressure), exchanges addresses, keeps peers alive
//! and scores misbehaviour in two channels: protocol violations (garbage, oversize frames,
//! forged records) add points and end the connection at the ban score; records that are merely
//! unusable (unknown fields from newer peers, timestamps ahead of our clock) are dropped and
//! counted, never punished, so a schema change can never partition the mesh.

mod addresses;
mod announce;
mod bridge;
mod charges;
mod code;
mod config;
mod control;
mod control_seq;
mod control_sync;
mod events;
mod handshake;
pub mod id_set;
mod ingest;
mod peer;
mod pex;
pub mod refusal;
mod releases;
mod store_pause;
mod sync;
mod tasks;
mod tick;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use sha2::Digest;
use spore_spec::{Identity, KeyCache, Message, ValidationPolicy};

pub use announce::AnnounceStats;
pub use bridge::{BridgePolicy, Export, Import};
pub use config::ProtocolConfig;
pub use events::{Action, Event, Stats};
pub use peer::{Direction, Hello, Millis, PeerId, PeerState, format_address, parse_address};
pub use store_pause::{PauseCause, StorePause};

use crate::research::artifacts::ArtifactStore;
use crate::store::{DagStore, StoreError, StoredRecord};
use charges::message_tokens;
use sync::SyncServe;

/// Capabilities we announce in `hello`.
pub const CAPABILITIES: [&str; 6] = [
    "sync-seq",
    "get_records",
    announce::ANNOUNCE,
    spore_spec::handshake::AUTH_CAPABILITY,
    ingest::TASK_ID_CAPABILITY,
    control_seq::CONTROL_SEQ,
];

/// A peer we keep dialing (configured, known, or learned by PEX).
#[derive(Debug, Clone)]
struct DialTarget {
    persistent: bool,
    next_attempt: Millis,
    backoff: Millis,
    connected: bool,
    /// The network group ([`addresses::group`]) of the peer whose PEX answer named it; none
    /// for configured and remembered addresses.
    learned_from: Option<u64>,
}

/// The protocol core of one node.
pub struct Protocol {
    config: ProtocolConfig,
    identity: Identity,
    node_id: String,
    listen_port: u16,
    policy: ValidationPolicy,
    store: DagStore,
    keys: KeyCache,
    /// Ordered maps where iteration order decides the order of actions: a simulation with a
    /// seeded RNG must replay exactly.
    peers: BTreeMap<PeerId, PeerState>,
    seen: id_set::IdSet,
    pending: Vec<(PeerId, StoredRecord)>,
    serving: HashMap<PeerId, SyncServe>,
    sync_queue: VecDeque<PeerId>,
    dial_book: BTreeMap<String, DialTarget>,
    banned: HashMap<IpAddr, Millis>,
    now: Millis,
    unix_now: i64,
    last_orphan_fetch: Millis,
    stats: Stats,
    wanted: announce::Wanted,
    actions: Vec<Action>,
    stored_ids: Vec<String>,
    /// Code served to and fetched from peers; none when this node keeps no artifacts.
    artifacts: Option<ArtifactStore>,
    /// Code CIDs asked of peers, with when we asked: only these are accepted.
    code_wanted: HashMap<String, Millis>,
    /// Bytes in the artifact directory: measured at start (under a quota), plus what was
    /// fetched since.
    artifact_bytes: u64,
    /// Secret of the `hello` nonces (random from the driver; derived from the identity where
    /// none is given, as in simulations).
    nonce_key: [u8; 32],
    nonces_made: u64,
    /// Why ingest is paused, and what of ours waits for the store meanwhile.
    waiting: store_pause::Waiting,
}

impl std::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol").field("node_id", &self.node_id).field("peers", &self.peers.len()).finish()
    }
}

/// The default secret of the `hello` nonces: the identity's seed, hashed with a domain tag.
fn identity_seed(identity: &Identity) -> Vec<u8> {
    format!("spore-nonce-key\n{}", identity.seed_hex()).into_bytes()
}

impl Protocol {
    pub fn new(config: ProtocolConfig, identity: Identity, listen_port: u16, store: DagStore) -> Self {
        let nonce_key = sha2::Sha256::digest(identity_seed(&identity)).into();
        Protocol {
            node_id: identity.node_id(),
            identity,
            listen_port,
            policy: ValidationPolicy::default(),
            store,
            keys: KeyCache::default(),
            peers: BTreeMap::new(),
            seen: id_set::IdSet::new(config.seen_cache),
            pending: Vec::new(),
            serving: HashMap::new(),
            sync_queue: VecDeque::new(),
            dial_book: BTreeMap::new(),
            banned: HashMap::new(),
            now: 0,
            unix_now: 0,
            last_orphan_fetch: 0,
            stats: Stats::default(),
            wanted: announce::Wanted::new(config.announced_bodies),
            actions: Vec::new(),
            stored_ids: Vec::new(),
            artifacts: None,
            code_wanted: HashMap::new(),
            artifact_bytes: 0,
            nonce_key,
            nonces_made: 0,
            waiting: store_pause::Waiting::default(),
            config,
        }
    }

    /// Makes the `hello` nonces from `key` (random bytes from the driver).
    pub fn with_nonce_key(mut self, key: [u8; 32]) -> Self {
        self.nonce_key = key;
        self
    }

    /// Serves and fetches code from `artifacts`.
    pub fn with_artifacts(mut self, artifacts: ArtifactStore) -> Self {
        if self.config.artifact_quota_bytes.is_some() {
            self.artifact_bytes = artifacts.size_bytes();
        }
        self.artifacts = Some(artifacts);
        self
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn store(&self) -> &DagStore {
        &self.store
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Ids stored since the last call, so the driver can tell its connection tasks which
    /// records need no checking any more (duplicates cost a lookup, not a verification).
    pub fn take_stored_ids(&mut self) -> Vec<String> {
        std::mem::take(&mut self.stored_ids)
    }

    pub fn peers(&self) -> impl Iterator<Item = (&PeerId, &PeerState)> {
        self.peers.iter()
    }

    /// Adds a peer to dial now and, if `persistent`, to redial with backoff whenever it drops.
    /// Stops dialing `address` and closes the connections to it (dialed there, or announcing
    /// it as their listen address). True when it was dialed or connected.
    pub fn remove_dial_target(&mut self, address: &str) -> bool {
        let known = self.dial_book.remove(address).is_some();
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.closing && p.listen_address().as_deref() == Some(address))
            .map(|(id, _)| *id)
            .collect();
        for peer in &peers {
            self.disconnect(*peer, "disconnected on request");
        }
        known || !peers.is_empty()
    }

    /// Actions queued outside [`Protocol::handle`] (by [`Protocol::remove_dial_target`]).
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    pub fn add_dial_target(&mut self, address: &str, persistent: bool) {
        if parse_address(address).is_none() {
            return;
        }
        let target = self.dial_book.entry(address.to_string()).or_insert(DialTarget {
            persistent,
            next_attempt: 0,
            backoff: self.config.dial_backoff_initial.as_millis() as Millis,
            connected: false,
            learned_from: None,
        });
        target.persistent |= persistent;
        if persistent {
            target.learned_from = None;
        }
    }

    /// Feeds one event at monotonic time `now` (ms) and wall-clock `unix_now` (s); returns the
    /// actions to carry out, in order. A store error never ends the core: it pauses ingest
    /// until the store takes writes again ([`store_pause`]).
    pub fn handle(&mut self, event: Event, now: Millis, unix_now: i64) -> Vec<Action> {
        self.now = now;
        self.unix_now = unix_now;
        if let Err(e) = self.dispatch(event) {
            self.store_failed(&e);
        }
        std::mem::take(&mut self.actions)
    }

    fn dispatch(&mut self, event: Event) -> Result<(), StoreError> {
        match event {
            Event::Connected { peer, remote, direction } => self.on_connected(peer, remote, direction),
            Event::Disconnected { peer } => self.on_disconnected(peer),
            Event::Frame { peer, body } => self.on_frame(peer, &body)?,
            Event::Record { peer, record, payload, verdict, size } => {
                if self.admit(peer, size, 0.0) {
                    self.on_experiment(peer, *record, payload, verdict)?;
                }
            }
            Event::Duplicates { peer, count, bytes } => {
                if self.admit(peer, bytes, 0.0) {
                    self.stats.records_duplicate += count;
                }
            }
            Event::FramingError { peer, reason } => {
                self.stats.drop_message(refusal::MessageDrop::BadFrame);
                self.punish(peer, self.config.ban_score, &reason);
            }
            Event::Drained { peer, written, bytes } => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.written_bytes = state.written_bytes.max(bytes);
                }
                self.on_drained(peer, written)?
            }
            Event::DialFailed { address } => self.on_dial_failed(&address),
            Event::Publish(stored) => {
                self.pending.push((PeerId::MAX, *stored));
                self.flush()?;
            }
            Event::PublishControl(event) => self.publish_control(*event),
            Event::FetchCode(code_cid) => self.fetch_code(&code_cid),
            Event::Tick => self.on_tick()?,
            Event::Idle => {
                self.flush()?;
                self.ask_deferred();
            }
        }
        Ok(())
    }

    fn send(&mut self, peer: PeerId, message: &Message) {
        self.send_body(peer, Bytes::from(message.encode_body()));
    }

    /// Queues `body` for `peer` unless it is being closed.
    fn send_body(&mut self, peer: PeerId, body: Bytes) {
        if let Some(state) = self.peers.get_mut(&peer).filter(|p| !p.closing) {
            state.enqueued += 1;
            state.enqueued_bytes += body.len() as u64;
            self.actions.push(Action::Send { peer, body });
        }
    }

    /// Asks the driver to close the connection; from now on the peer is ignored.
    fn disconnect(&mut self, peer: PeerId, reason: &str) {
        if let Some(state) = self.peers.get_mut(&peer).filter(|p| !p.closing) {
            state.closing = true;
            self.actions.push(Action::Disconnect { peer, reason: reason.to_string() });
        }
    }

    /// Adds misbehaviour points; at the ban score the peer is dropped and, unless it is on
    /// loopback (local tools and tests share that address), its IP refused for a while.
    fn punish(&mut self, peer: PeerId, points: u32, reason: &str) {
        let Some(state) = self.peers.get_mut(&peer) else { return };
        state.misbehaviour = state.misbehaviour.saturating_add(points);
        if state.misbehaviour >= self.config.ban_score {
            let ip = state.remote.ip();
            if !ip.is_loopback() {
                self.banned.insert(ip, self.now + self.config.ban_duration.as_millis() as Millis);
            }
            self.stats.peers_banned += 1;
            tracing::warn!(peer, %ip, reason, "disconnecting misbehaving peer");
            self.disconnect(peer, reason);
        }
    }

    fn on_connected(&mut self, peer: PeerId, remote: SocketAddr, direction: Direction) {
        if self.banned.get(&remote.ip()).is_some_and(|until| *until > self.now) {
            self.actions.push(Action::Disconnect { peer, reason: "discouraged address".into() });
            return;
        }
        let inbound = matches!(direction, Direction::Inbound);
        let from_ip = self.peers.values().filter(|p| p.remote.ip() == remote.ip() && !p.closing).count();
        if inbound && !remote.ip().is_loopback() && from_ip >= self.config.max_inbound_per_ip {
            self.actions.push(Action::Disconnect { peer, reason: "connection limit of its address".into() });
            return;
        }
        let count =
            self.peers.values().filter(|p| matches!(p.direction, Direction::Inbound) == inbound && !p.closing).count();
        let limit =
            if inbound { self.config.max_inbound } else { self.config.max_outbound.max(self.persistent_count()) };
        if count >= limit && !(inbound && self.evict_inbound_for(remote.ip())) {
            self.actions.push(Action::Disconnect { peer, reason: "connection limit".into() });
            return;
        }
        if let Direction::Outbound { dialed } = &direction {
            if let Some(target) = self.dial_book.get_mut(dialed) {
                target.connected = true;
                target.backoff = self.config.dial_backoff_initial.as_millis() as Millis;
            }
            self.actions.push(Action::RememberPeer { address: dialed.clone() });
        }
        let public = match (&direction, &self.config.bridge) {
            (Direction::Outbound { dialed }, Some(bridge)) => bridge.public_peers.contains(dialed),
            _ => false,
        };
        let mut state = PeerState::new(remote, direction, self.now, &self.config);
        state.public = public;
        state.nonce = self.fresh_nonce(peer);
        let nonce = Some(state.nonce.clone());
        self.peers.insert(peer, state);
        let hello = Message::Hello {
            node_id: self.node_id.clone(),
            listen_port: self.listen_port,
            capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            agent: format!("spore-rs/{}", env!("CARGO_PKG_VERSION")),
            nonce,
        };
        self.send(peer, &hello);
        if !inbound {
            self.ask_for_peers(peer);
        }
    }

    fn persistent_count(&self) -> usize {
        self.dial_book.values().filter(|t| t.persistent).count()
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        let Some(state) = self.peers.remove(&peer) else { return };
        self.serving.remove(&peer);
        self.sync_queue.retain(|p| *p != peer);
        if let Direction::Outbound { dialed } = state.direction
            && let Some(target) = self.dial_book.get_mut(&dialed)
        {
            target.connected = false;
            if target.persistent {
                target.next_attempt = self.now + target.backoff;
            } else {
                self.dial_book.remove(&dialed);
            }
        }
        if let Err(e) = self.start_queued_syncs() {
            tracing::warn!(error = %e, "cannot start a queued sync");
        }
    }

    fn on_dial_failed(&mut self, address: &str) {
        let max = self.config.dial_backoff_max.as_millis() as Millis;
        if let Some(target) = self.dial_book.get_mut(address) {
            target.connected = false;
            if target.persistent {
                target.next_attempt = self.now + target.backoff;
                target.backoff = (target.backoff * 2).min(max);
            } else {
                self.dial_book.remove(address);
            }
        }
    }

    fn on_frame(&mut self, peer: PeerId, body: &[u8]) -> Result<(), StoreError> {
        let message_type = Message::peek_type(body);
        if !self.admit(peer, body.len(), message_tokens(message_type.as_deref(), body.len())) {
            return Ok(());
        }
        if !self.solicited(peer, message_type.as_deref()) {
            self.stats.drop_message(refusal::MessageDrop::Unsolicited);
            return Ok(());
        }
        let (message, payload_span) = match Message::decode_with_payload_span(body) {
            Ok(decoded) => decoded,
            Err(spore_spec::message::MessageError::Record(e)) => {
                tracing::debug!(peer, error = %e, "record refused");
                self.stats.records_ignored += 1;
                self.stats.refuse_record(refusal::RecordRefusal::of_record(&e));
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.rejected_records += 1;
                }
                return Ok(());
            }
            Err(e @ spore_spec::message::MessageError::TooLarge { .. })
            | Err(e @ spore_spec::message::MessageError::BadField { .. })
            | Err(e @ spore_spec::message::MessageError::PayloadNotAnObject(_)) => {
                self.stats.drop_message(refusal::MessageDrop::of_message(&e));
                self.punish(peer, 10, &e.to_string());
                return Ok(());
            }
            // Valid JSON that Rust cannot hold faithfully: Python accepts it, so it is not
            // the sender's fault; the message is dropped.
            Err(
                e @ spore_spec::message::MessageError::Json(
                    spore_spec::json::JsonError::LoneSurrogate { .. } | spore_spec::json::JsonError::IntegerTooLong(_),
                ),
            ) => {
                self.stats.records_ignored += 1;
                self.stats.refuse_record(refusal::RecordRefusal::Unrepresentable);
                tracing::debug!(peer, error = %e, "message refused");
                return Ok(());
            }
            Err(e @ spore_spec::message::MessageError::NoType) => {
                self.stats.drop_message(refusal::MessageDrop::NoType);
                tracing::debug!(peer, error = %e, "message ignored");
                return Ok(());
            }
            Err(e) => {
                // Not JSON at all: the stream is garbage.
                self.stats.drop_message(refusal::MessageDrop::Garbage);
                self.punish(peer, self.config.ban_score, &format!("garbage: {e}"));
                return Ok(());
            }
        };
        match message {
            Message::Experiment(record) => {
                let payload = payload_span
                    .and_then(|span| std::str::from_utf8(&body[span]).ok())
                    .map(str::to_owned)
                    .unwrap_or_default();
                self.on_experiment(peer, *record, payload, None)?;
            }
            Message::SyncRequest { since, after_seq } => self.on_sync_request(peer, &since, after_seq)?,
            Message::SyncResponse { last_seq, .. } => self.on_sync_response(peer, last_seq)?,
            Message::Hello { node_id, listen_port, capabilities, nonce, .. } => {
                self.on_hello(peer, Hello { node_id, listen_port, capabilities }, nonce)?
            }
            Message::Auth { signature } => self.on_auth(peer, &signature)?,
            Message::GetRecords { ids } => self.on_get_records(peer, &ids)?,
            Message::Have { ids } => self.on_have(peer, &ids)?,
            Message::PexRequest => self.on_pex_request(peer),
            Message::PexResponse { peer: addresses } => {
                let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
                state.pex_asked = false;
                let teller = state.remote.ip();
                if !self.is_public(peer) {
                    self.on_pex_response(teller, &addresses);
                }
            }
            Message::Ping => self.send(peer, &Message::Pong),
            Message::Pong => {}
            Message::Signed(event) => self.on_control(peer, *event)?,
            Message::Control(event) => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.native_controls = true;
                }
                self.on_control(peer, *event)?
            }
            Message::CodeRequest { code_cid } => self.on_code_request(peer, &code_cid),
            Message::CodeResponse { code_cid, code } => self.on_code_response(peer, &code_cid, &code),
            // Unsigned 0.1.2 challenges, responses and disputes are hints that move nothing.
            Message::Challenge { .. } | Message::ChallengeResponse { .. } | Message::Dispute { .. } => {
                self.stats.control_hints += 1;
            }
            Message::Unknown { message_type, payload } if message_type == "control_sync_request" => {
                self.on_control_sync_request(peer, &payload)?
            }
            Message::Unknown { message_type, payload } if message_type == "task_sync_request" => {
                self.on_task_sync_request(peer, &payload)?
            }
            Message::Unknown { message_type, payload } if message_type == "task" => self.on_task(peer, &payload)?,
            Message::Unknown { message_type, payload } if message_type == "control_sync_response" => {
                self.on_control_sync_response(peer, &payload)?
            }
            Message::Unknown { message_type, .. } => {
                // Only 0.5.0 and later speak of tasks: such a peer takes records with `task_id`.
                if message_type.starts_with("task") {
                    self.learned_newer_release(peer)?;
                }
                tracing::debug!(peer, message_type, "unknown message type")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! Limits of the gossip protocol, in one place, with documented defaults.

use std::time::Duration;

/// Every limit the protocol core enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolConfig {
    /// Inbound connections accepted at once (Bitcoin Core's default is 125).
    pub max_inbound: usize,
    /// Connections one IP address may hold at once (loopback exempt: local tools share it).
    pub max_inbound_per_ip: usize,
    /// Addresses learned by PEX waiting to be dialed, at most.
    pub max_dial_book: usize,
    /// Outbound connections kept at once (configured peers are always dialed).
    pub max_outbound: usize,
    /// Sustained non-record messages per second from one peer, and the burst above it.
    pub messages_per_second: f64,
    pub message_burst: f64,
    /// Sustained bytes per second from one peer, and the burst.
    pub bytes_per_second: f64,
    pub byte_burst: f64,
    /// Records per sync page, and per store transaction when ingesting.
    pub sync_batch: usize,
    /// Sync answers served at once; more wait their turn.
    pub max_concurrent_sync_serves: usize,
    /// A sync answer whose reader takes longer than this to read one page is ended with its
    /// connection, so slow readers cannot hold every serving slot.
    pub sync_stall: Duration,
    /// A peer may ask for a sync at most this often.
    pub min_sync_interval: Duration,
    /// How long to wait for a peer's `hello` (0.1.2 peers never send one) before asking it for
    /// a full sync.
    pub hello_wait: Duration,
    /// Misbehaviour points at which a peer is disconnected and discouraged.
    pub ban_score: u32,
    /// How long a discouraged address is refused.
    pub ban_duration: Duration,
    /// Redial backoff of persistent peers: first delay, doubling up to the maximum.
    pub dial_backoff_initial: Duration,
    pub dial_backoff_max: Duration,
    /// Ping a peer silent for this long; drop one silent for `idle_timeout`.
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    /// Recently seen record ids kept in memory (the store answers for older ones).
    pub seen_cache: usize,
    /// Addresses accepted from one `pex_response`, and sent in one.
    pub max_pex_addresses: usize,
    /// Ids honoured in one `get_records`.
    pub max_get_records: usize,
    /// Answers (`get_records`, `code_request`) are queued for a peer only while its unwritten
    /// bytes stay under this, and for all peers together under `max_answer_bytes_total`; each
    /// answer is also charged to the asker's byte budget.
    pub max_answer_bytes_per_peer: u64,
    pub max_answer_bytes_total: u64,
    /// Code CIDs we asked peers for and still wait for, at most, and how long we wait.
    pub max_code_wanted: usize,
    pub code_wait: Duration,
    /// How long a peer that announced a record (`have`) has to send it once asked, before the
    /// next announcer is asked.
    pub announce_timeout: Duration,
    /// Announced ids asked for and not yet received, at most (past it, announcements wait for
    /// the next cursor sync).
    pub max_wanted: usize,
    /// Announced ids asked of one peer and not yet received, at most (four full `get_records`;
    /// an honest peer answers within a round trip).
    pub max_asks_per_peer: usize,
    /// Announced ids waiting in one peer's queue until its asks drop below
    /// `max_asks_per_peer`, at most.
    pub max_deferred_per_peer: usize,
    /// Other announcers remembered for one wanted id, to ask when the first does not answer.
    pub spare_announcers: usize,
    /// Bodies of the records announced last, kept to answer the `get_records` that follow
    /// without reading the store once per asking peer (about 1.3 MB at typical record sizes).
    pub announced_bodies: usize,
    /// How often missing parents are asked for.
    pub orphan_fetch_interval: Duration,
    /// How often our own peers are asked again for what they stored since the last sync
    /// (longer than `min_sync_interval`, which the other side enforces).
    pub resync_interval: Duration,
    /// The lab's bridge to public peers; none: every peer is a lab peer.
    pub bridge: Option<super::bridge::BridgePolicy>,
    /// Past this size the store takes no more records from peers (this node's own still go
    /// in); none: no quota.
    pub store_quota_bytes: Option<u64>,
    /// Past this many bytes of fetched code in the artifact directory, no more is fetched;
    /// none: no quota.
    pub artifact_quota_bytes: Option<u64>,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            max_inbound: 125,
            max_inbound_per_ip: 8,
            max_dial_book: 1_024,
            max_outbound: 16,
            messages_per_second: 200.0,
            message_burst: 2_000.0,
            bytes_per_second: 64.0 * 1024.0 * 1024.0,
            byte_burst: 256.0 * 1024.0 * 1024.0,
            sync_batch: 256,
            max_concurrent_sync_serves: 4,
            sync_stall: Duration::from_secs(30),
            min_sync_interval: Duration::from_secs(10),
            hello_wait: Duration::from_millis(500),
            ban_score: 100,
            ban_duration: Duration::from_secs(24 * 60 * 60),
            dial_backoff_initial: Duration::from_secs(1),
            dial_backoff_max: Duration::from_secs(300),
            ping_interval: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            seen_cache: 100_000,
            max_pex_addresses: 32,
            max_get_records: 256,
            max_answer_bytes_per_peer: 2 * 1024 * 1024,
            max_answer_bytes_total: 64 * 1024 * 1024,
            max_code_wanted: 256,
            code_wait: Duration::from_secs(120),
            announce_timeout: Duration::from_secs(5),
            max_wanted: 65_536,
            max_asks_per_peer: 1_024,
            max_deferred_per_peer: 16_384,
            spare_announcers: 4,
            announced_bodies: 1_024,
            orphan_fetch_interval: Duration::from_secs(30),
            resync_interval: Duration::from_secs(60),
            bridge: None,
            store_quota_bytes: None,
            artifact_quota_bytes: None,
        }
    }
}

impl ProtocolConfig {
    /// Refuses settings that would make the node unusable.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_inbound == 0 && self.max_outbound == 0 {
            return Err("max_inbound and max_outbound cannot both be 0".into());
        }
        if self.messages_per_second <= 0.0 || self.bytes_per_second <= 0.0 {
            return Err("rate limits must be positive".into());
        }
        if self.sync_batch == 0 || self.seen_cache == 0 || self.max_get_records == 0 {
            return Err("sync_batch, seen_cache and max_get_records must be positive".into());
        }
        if self.announce_timeout.is_zero() {
            return Err("announce_timeout must be positive".into());
        }
        if self.dial_backoff_initial > self.dial_backoff_max {
            return Err("dial_backoff_initial exceeds dial_backoff_max".into());
        }
        if self.resync_interval < self.min_sync_interval {
            return Err("resync_interval must not be shorter than min_sync_interval".into());
        }
        if self.ping_interval >= self.idle_timeout {
            return Err("ping_interval must be shorter than idle_timeout".into());
        }
        Ok(())
    }
}

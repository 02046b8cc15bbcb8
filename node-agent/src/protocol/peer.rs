//! What the core knows about one connection: direction, identity (from `hello`), rate limits
//! and misbehaviour.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// A connection's id, assigned by the driver.
pub type PeerId = u64;

/// Milliseconds on the driver's monotonic clock.
pub type Millis = u64;

/// Who opened the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    /// We dialed this `host:port`.
    Outbound {
        dialed: String,
    },
}

/// What a peer said in its `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub node_id: String,
    pub listen_port: u16,
    pub capabilities: Vec<String>,
}

/// A token bucket: `rate` per second sustained, `burst` at once.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Millis,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64, now: Millis) -> Self {
        TokenBucket { rate, burst, tokens: burst, last: now }
    }

    /// Takes `cost` tokens if there are enough.
    pub fn take(&mut self, cost: f64, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.last) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// One connected peer.
#[derive(Debug)]
pub struct PeerState {
    pub remote: SocketAddr,
    pub direction: Direction,
    pub hello: Option<Hello>,
    pub connected_at: Millis,
    pub last_heard: Millis,
    pub last_ping_sent: Millis,
    pub messages: TokenBucket,
    pub bytes: TokenBucket,
    pub misbehaviour: u32,
    /// Records from this peer we refused, by reason class (for status and tests).
    pub rejected_records: u64,
    pub accepted_records: u64,
    /// A record from it was refused for a paused store since its last sync answer ended: that
    /// answer must not move its cursor past what we did not keep.
    pub refused_for_pause: bool,
    /// When we asked it for a sync; `None` until we do.
    pub sync_requested_at: Option<Millis>,
    /// When it last asked us for one.
    pub last_sync_request: Option<Millis>,
    /// We asked the driver to close it: nothing more is read from or sent to it.
    pub closing: bool,
    /// Bodies queued for it so far (compared with the driver's count of bodies written).
    pub enqueued: u64,
    /// Bytes queued for it so far, and written as the driver last reported.
    pub enqueued_bytes: u64,
    pub written_bytes: u64,
    /// We sent it a `pex_request` and have not had the answer: only then is a `pex_response`
    /// read.
    pub pex_asked: bool,
    /// The nonce our `hello` asked it to sign.
    pub nonce: String,
    /// Its `auth` proved the `node_id` of its `hello` (`spore_spec::handshake`).
    pub authenticated: bool,
    /// A public peer of the bridge (see `bridge.rs`), not a lab peer.
    pub public: bool,
    /// It takes records that carry `task_id` (our nodes say so in `hello`; a Python peer shows
    /// it by sending one, or a task message). A 0.1.2 peer disconnects on them.
    pub takes_task_id: bool,
    /// It reads signed control events only in 0.3.10's native form (it sent one so, or showed
    /// it is 0.5.0 or later): it gets that form; the others get our extended one.
    pub native_controls: bool,
    /// When it last had a control sync answered, and a task sync.
    pub last_control_sync: Option<Millis>,
    pub last_task_sync: Option<Millis>,
    /// It was sent `task_sync_request` and `control_sync_request`, which tell its release.
    pub release_probed: bool,
    /// One of our nodes asked for its manifests on this connection (once: later ones relay).
    pub tasks_requested: bool,
    /// The oldest timestamp of a record it was not sent because it might be a 0.1.2 node; sent
    /// again from there if it turns out to take them (see `releases.rs`).
    pub withheld_since: Option<i64>,
    /// Records accepted from it, when it is public.
    pub imports: TokenBucket,
    /// Announced ids we asked it for and have not received (lazy push).
    pub asks_outstanding: usize,
    /// Ids it announced that we will ask it for once `asks_outstanding` allows.
    pub deferred: VecDeque<String>,
}

impl PeerState {
    pub fn new(remote: SocketAddr, direction: Direction, now: Millis, config: &super::ProtocolConfig) -> Self {
        PeerState {
            remote,
            direction,
            hello: None,
            connected_at: now,
            last_heard: now,
            last_ping_sent: now,
            messages: TokenBucket::new(config.messages_per_second, config.message_burst, now),
            bytes: TokenBucket::new(config.bytes_per_second, config.byte_burst, now),
            misbehaviour: 0,
            rejected_records: 0,
            refused_for_pause: false,
            accepted_records: 0,
            sync_requested_at: None,
            last_sync_request: None,
            closing: false,
            enqueued: 0,
            enqueued_bytes: 0,
            written_bytes: 0,
            pex_asked: false,
            nonce: String::new(),
            authenticated: false,
            public: false,
            takes_task_id: false,
            native_controls: false,
            last_control_sync: None,
            last_task_sync: None,
            release_probed: false,
            tasks_requested: false,
            withheld_since: None,
            imports: {
                let rate = config.bridge.as_ref().map_or(f64::MAX, |b| b.records_per_second);
                TokenBucket::new(rate, rate * 10.0, now)
            },
            asks_outstanding: 0,
            deferred: VecDeque::new(),
        }
    }

    /// The address others can dial to reach this peer, if we know one: the address we dialed,
    /// or its IP with the listen port from its `hello`. Never an inbound ephemeral port.
    pub fn listen_address(&self) -> Option<String> {
        match (&self.direction, &self.hello) {
            (Direction::Outbound { dialed }, _) => Some(dialed.clone()),
            (Direction::Inbound, Some(hello)) => {
                Some(format_address(&SocketAddr::new(self.remote.ip(), hello.listen_port)))
            }
            (Direction::Inbound, None) => None,
        }
    }

    /// True when the peer says it speaks our extension `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.hello.as_ref().is_some_and(|h| h.capabilities.iter().any(|c| c == capability))
    }

    /// Bytes queued for it and not yet written, as far as the core knows (an upper bound: the
    /// driver reports progress now and then).
    pub fn queued_bytes(&self) -> u64 {
        self.enqueued_bytes.saturating_sub(self.written_bytes)
    }

    pub fn silent_for(&self, now: Millis) -> Duration {
        Duration::from_millis(now.saturating_sub(self.last_heard))
    }
}

/// `host:port`, with brackets around IPv6 hosts.
pub fn format_address(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Parses a peer address `host:port` (`[v6]:port` for IPv6). `None` for anything else,
/// including port 0 and empty hosts.
pub fn parse_address(text: &str) -> Option<(String, u16)> {
    if text.len() > 261 {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        (host, port)
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let valid_host = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    valid_host.then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_strictly() {
        assert_eq!(parse_address("127.0.0.1:7470"), Some(("127.0.0.1".into(), 7470)));
        assert_eq!(parse_address("peer.sporemesh.com:7470"), Some(("peer.sporemesh.com".into(), 7470)));
        assert_eq!(parse_address("[::1]:7470"), Some(("::1".into(), 7470)));
        for bad in ["::1:7470", "host", "host:0", "host:99999", "host:port", ":7470", "ho st:1", "a:b:c"] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let mut bucket = TokenBucket::new(10.0, 5.0, 0);
        assert!((0..5).all(|_| bucket.take(1.0, 0)));
        assert!(!bucket.take(1.0, 0));
        assert!(bucket.take(1.0, 100), "0.1 s refills one token");
    }
}

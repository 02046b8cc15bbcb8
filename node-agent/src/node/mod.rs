//! The tokio driver of a node: listener, dialer, connections, clock, and the task that owns the
//! protocol core. Everything the core decides arrives here as an [`Action`].
//!
//! Shutdown (mini-redis style): one `CancellationToken` is cancelled by Ctrl-C or the caller;
//! the listener stops accepting, every connection task ends, the core flushes its last batch
//! to the store, and `run` returns.

mod connection;
mod known_peers;
mod precheck;
pub mod status;
mod verify_pool;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::protocol::id_set::IdSet;
use crate::protocol::{Action, Direction, Event, PeerId, Protocol, ProtocolConfig, parse_address};
use crate::store::{DagStore, StoredRecord};
pub use connection::ConnectionHandle;
use precheck::Checker;

/// Python's bootstrap peer, dialed only when no peer is configured (as in 0.1.2).
pub const BOOTSTRAP_PEER: &str = "peer.sporemesh.com:7470";

/// How often the core's clock ticks.
const TICK: Duration = Duration::from_millis(100);
/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Events buffered between connections and the core (a connection's chunk of up to 64 frames
/// counts as one). Small on purpose: when the core is busy, readers wait and TCP flow control
/// pushes back on senders, instead of memory growing.
const EVENT_QUEUE: usize = 16;

/// Ids the node stored recently, shared with the connection tasks (see `precheck`).
#[derive(Debug, Clone)]
pub struct KnownIds(Arc<std::sync::Mutex<IdSet>>);

impl KnownIds {
    fn new(capacity: usize) -> Self {
        KnownIds(Arc::new(std::sync::Mutex::new(IdSet::new(capacity))))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(id))
    }

    /// For each id, whether it is held; the set is locked once for all of them (a poisoned
    /// lock holds nothing).
    pub fn contains_each<'a>(&self, ids: impl Iterator<Item = Option<&'a str>>) -> Vec<bool> {
        match self.0.lock() {
            Ok(set) => ids.map(|id| id.is_some_and(|id| set.contains(id))).collect(),
            Err(_) => ids.map(|_| false).collect(),
        }
    }

    fn extend(&self, ids: Vec<String>) {
        // Called after every event; most store nothing, and the lock is shared with the
        // verification threads.
        if ids.is_empty() {
            return;
        }
        if let Ok(mut set) = self.0.lock() {
            for id in ids {
                set.put(&id);
            }
        }
    }
}

/// What the core task receives.
#[derive(Debug)]
pub enum DriverEvent {
    Protocol(Event),
    /// What one connection read at once, in order.
    Chunk(Vec<Event>),
    /// A record this node made: stored and gossiped, then `done` is told.
    Publish {
        record: Box<StoredRecord>,
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// Dial `address` and keep dialing it (until `Disconnect`).
    Connect {
        address: String,
    },
    /// Stop dialing `address` and close connections to it; `done` says whether it was known.
    Disconnect {
        address: String,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    /// A new connection: its handle must be known before its first event.
    Register {
        peer: PeerId,
        handle: ConnectionHandle,
        remote: SocketAddr,
        direction: Direction,
    },
}

/// A running node, for the parts of the program beside it (the research loop).
#[derive(Debug, Clone)]
pub struct NodeHandle {
    /// The bound listen address.
    pub local: SocketAddr,
    /// Refreshed every second.
    pub snapshot: tokio::sync::watch::Receiver<status::Snapshot>,
    events: mpsc::Sender<DriverEvent>,
}

impl NodeHandle {
    /// Stores and gossips a record this node signed; returns once it is stored.
    pub async fn publish(&self, record: StoredRecord) -> anyhow::Result<()> {
        let (done, stored) = tokio::sync::oneshot::channel();
        self.events
            .send(DriverEvent::Publish { record: Box::new(record), done })
            .await
            .map_err(|_| anyhow::anyhow!("the node has stopped"))?;
        stored.await.map_err(|_| anyhow::anyhow!("the node stopped before storing the record"))
    }

    /// Stores and gossips a control event this node signed.
    pub async fn publish_control(&self, event: spore_spec::ControlEvent) -> anyhow::Result<()> {
        self.protocol(Event::PublishControl(Box::new(event))).await
    }

    /// Asks the peers for the code stored under `code_cid` (it lands in the artifact store).
    pub async fn fetch_code(&self, code_cid: String) -> anyhow::Result<()> {
        self.protocol(Event::FetchCode(code_cid)).await
    }

    async fn protocol(&self, event: Event) -> anyhow::Result<()> {
        self.events.send(DriverEvent::Protocol(event)).await.map_err(|_| anyhow::anyhow!("the node has stopped"))
    }

    /// Dials `address` (`host:port`) from now on, reconnecting with backoff.
    pub async fn connect(&self, address: String) -> anyhow::Result<()> {
        self.events.send(DriverEvent::Connect { address }).await.map_err(|_| anyhow::anyhow!("the node has stopped"))
    }

    /// Stops dialing `address` and closes connections to it; false when it was neither.
    pub async fn disconnect(&self, address: String) -> anyhow::Result<bool> {
        let (done, known) = tokio::sync::oneshot::channel();
        self.events
            .send(DriverEvent::Disconnect { address, done })
            .await
            .map_err(|_| anyhow::anyhow!("the node has stopped"))?;
        known.await.map_err(|_| anyhow::anyhow!("the node has stopped"))
    }
}

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub host: String,
    pub port: u16,
    /// Peers to dial and keep dialing.
    pub peers: Vec<String>,
    /// Listen only; dial nobody (Python's `--genesis`).
    pub genesis: bool,
    /// The bootstrap peer, dialed when no other peer is configured, remembered or public, and
    /// never remembered itself (it stays the fallback); `None` never dials one.
    pub bootstrap: Option<String>,
    /// Where the gRPC API listens (for the status file), when it is served.
    pub grpc: Option<SocketAddr>,
    pub protocol: ProtocolConfig,
}

impl NodeConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        NodeConfig {
            data_dir,
            host: "0.0.0.0".into(),
            port: 7470,
            peers: Vec::new(),
            genesis: false,
            bootstrap: Some(BOOTSTRAP_PEER.into()),
            grpc: None,
            protocol: ProtocolConfig::default(),
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("db").join("dag.sqlite")
    }
}

/// Runs a node until `shutdown` is cancelled. `ready` receives its handle once it listens.
pub async fn run(
    config: NodeConfig,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<NodeHandle>>,
) -> anyhow::Result<()> {
    config.protocol.validate().map_err(anyhow::Error::msg)?;
    let identity = crate::identity_file::load_or_create(&config.data_dir)?;
    let store = DagStore::open_writer(&config.store_path())?;
    let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
    let local = listener.local_addr()?;
    tracing::info!(node_id = %identity.node_id(), %local, "node listening");
    let artifacts = crate::research::artifacts::ArtifactStore::new(&config.data_dir);
    let mut core = Protocol::new(config.protocol.clone(), identity, local.port(), store)
        .with_artifacts(artifacts)
        .with_nonce_key(rand::random());
    if !config.genesis {
        let known = known_peers::load(&config.data_dir);
        let public: &[String] = config.protocol.bridge.as_ref().map_or(&[], |b| &b.public_peers);
        // Configured and public peers are redialed whenever they drop; peers merely remembered
        // from earlier runs are dialed once, within the outbound limit, like any learned peer.
        for address in config.peers.iter().chain(public) {
            core.add_dial_target(address, true);
        }
        for address in &known {
            core.add_dial_target(address, false);
        }
        // A bridge reaches the public mesh through its public peers only, never the bootstrap.
        if let Some(bootstrap) =
            config.bootstrap.as_deref().filter(|_| config.peers.is_empty() && known.is_empty() && public.is_empty())
        {
            core.add_dial_target(bootstrap, false);
        }
    }
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let next_peer = Arc::new(AtomicU64::new(1));
    let known = KnownIds::new(config.protocol.seen_cache);
    let checker = Checker::new(known.clone());
    tokio::spawn(accept_loop(listener, events_tx.clone(), next_peer.clone(), shutdown.clone(), checker.clone()));
    let (snapshot_tx, snapshot) = tokio::sync::watch::channel(status::snapshot(&core, local));
    if let Some(ready) = ready {
        let _ = ready.send(NodeHandle { local, snapshot, events: events_tx.clone() });
    }
    let driver = Driver {
        core,
        connections: HashMap::new(),
        events_tx,
        next_peer,
        shutdown: shutdown.clone(),
        started: Instant::now(),
        data_dir: config.data_dir.clone(),
        bootstrap: config.bootstrap.clone(),
        listen: local,
        grpc: config.grpc,
        snapshot: snapshot_tx,
        known,
        checker,
        io: tokio::runtime::Handle::current(),
    };
    // The core runs on a thread of its own, so its store writes never hold up the connections'
    // tasks (which feed the verification threads) and they never delay it.
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(driver.run(events))
    })
    .await?
}

async fn accept_loop(
    listener: TcpListener,
    events: mpsc::Sender<DriverEvent>,
    next_peer: Arc<AtomicU64>,
    shutdown: CancellationToken,
    checker: Checker,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                backoff = Duration::from_millis(10);
                let peer = next_peer.fetch_add(1, Ordering::Relaxed);
                register(peer, stream, remote, Direction::Inbound, &events, &shutdown, &checker);
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn register(
    peer: PeerId,
    stream: TcpStream,
    remote: SocketAddr,
    direction: Direction,
    events: &mpsc::Sender<DriverEvent>,
    shutdown: &CancellationToken,
    checker: &Checker,
) {
    connection::spawn(peer, stream, remote, direction, events.clone(), shutdown.clone(), checker.clone());
}

struct Driver {
    core: Protocol,
    connections: HashMap<PeerId, ConnectionHandle>,
    events_tx: mpsc::Sender<DriverEvent>,
    next_peer: Arc<AtomicU64>,
    shutdown: CancellationToken,
    started: Instant,
    data_dir: PathBuf,
    /// Never written to `known_peer`.
    bootstrap: Option<String>,
    listen: SocketAddr,
    grpc: Option<SocketAddr>,
    snapshot: tokio::sync::watch::Sender<status::Snapshot>,
    known: KnownIds,
    checker: Checker,
    /// The runtime of the connections (the core's own runs only the core).
    io: tokio::runtime::Handle,
}

/// Unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Driver {
    async fn run(mut self, mut events: mpsc::Receiver<DriverEvent>) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_status = Instant::now() - Duration::from_secs(10);
        loop {
            let event = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tick.tick() => DriverEvent::Protocol(Event::Tick),
                event = events.recv() => match event { Some(e) => e, None => break },
            };
            self.handle(event)?;
            // Drain what is already waiting, then let the core flush its batch.
            while let Ok(event) = events.try_recv() {
                self.handle(event)?;
            }
            self.handle(DriverEvent::Protocol(Event::Idle))?;
            if last_status.elapsed() >= Duration::from_secs(1) {
                last_status = Instant::now();
                self.report_status();
            }
        }
        self.handle(DriverEvent::Protocol(Event::Idle))?;
        self.report_status();
        for handle in self.connections.values() {
            handle.cancel.cancel();
        }
        tracing::info!("node stopped");
        Ok(())
    }

    /// Refreshes the status file and the snapshot the gRPC API reads.
    fn report_status(&self) {
        let snapshot = status::snapshot(&self.core, self.listen);
        status::write(&self.data_dir, &self.core, &snapshot, self.grpc);
        self.snapshot.send_replace(snapshot);
    }

    fn handle(&mut self, event: DriverEvent) -> anyhow::Result<()> {
        let event = match event {
            DriverEvent::Register { peer, handle, remote, direction } => {
                self.connections.insert(peer, handle);
                Event::Connected { peer, remote, direction }
            }
            DriverEvent::Chunk(events) => {
                for event in events {
                    self.handle(DriverEvent::Protocol(event))?;
                }
                return Ok(());
            }
            DriverEvent::Protocol(event) => {
                if let Event::Disconnected { peer } = &event {
                    self.connections.remove(peer);
                }
                event
            }
            DriverEvent::Publish { record, done } => {
                self.handle(DriverEvent::Protocol(Event::Publish(record)))?;
                let _ = done.send(());
                return Ok(());
            }
            DriverEvent::Connect { address } => {
                // The next tick dials it.
                self.core.add_dial_target(&address, true);
                return Ok(());
            }
            DriverEvent::Disconnect { address, done } => {
                let known = self.core.remove_dial_target(&address);
                for action in self.core.take_actions() {
                    self.act(action);
                }
                let _ = done.send(known);
                return Ok(());
            }
        };
        let now = self.started.elapsed().as_millis() as u64;
        let actions = self.core.handle(event, now, unix_now());
        self.known.extend(self.core.take_stored_ids());
        for action in actions {
            self.act(action);
        }
        Ok(())
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Send { peer, body } => self.send(peer, body),
            Action::Disconnect { peer, reason } => {
                tracing::debug!(peer, reason, "disconnecting");
                if let Some(handle) = self.connections.get(&peer) {
                    handle.cancel.cancel();
                }
            }
            Action::Dial { address } => self.dial(address),
            // The bootstrap peer is the fallback, not a peer to come back to instead of it.
            Action::RememberPeer { address } if self.bootstrap.as_deref() == Some(address.as_str()) => {}
            Action::RememberPeer { address } => known_peers::remember(&self.data_dir, &address),
        }
    }

    fn send(&mut self, peer: PeerId, body: Bytes) {
        let Some(handle) = self.connections.get(&peer) else { return };
        match handle.outgoing.try_send(body) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(peer, "peer reads too slowly; disconnecting");
                handle.cancel.cancel();
            }
            // The connection is closing; its Disconnected event is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn dial(&self, address: String) {
        let events = self.events_tx.clone();
        let shutdown = self.shutdown.clone();
        let checker = self.checker.clone();
        let peer = self.next_peer.fetch_add(1, Ordering::Relaxed);
        self.io.spawn(async move {
            let Some((host, port)) = parse_address(&address) else { return };
            let connected = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect((host.as_str(), port))).await;
            match connected {
                Ok(Ok(stream)) => {
                    let remote = stream.peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], port)));
                    register(
                        peer,
                        stream,
                        remote,
                        Direction::Outbound { dialed: address },
                        &events,
                        &shutdown,
                        &checker,
                    );
                }
                _ => {
                    tracing::debug!(address, "dial failed");
                    let _ = events.send(DriverEvent::Protocol(Event::DialFailed { address })).await;
                }
            }
        });
    }
}

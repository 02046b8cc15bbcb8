//! A deterministic network of protocol cores in one process: 100 nodes, a seeded RNG, TCP
//! connections that break at random (how message loss shows on TCP), and a partition that
//! heals. Every record published anywhere must reach every node.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spore_agent::protocol::{Action, Direction, Event, PeerId, Protocol, ProtocolConfig};
use spore_agent::store::{DagStore, StoredRecord};
use spore_spec::{Identity, JsonNumber, Status};

const NODES: usize = 100;
const DIALS_PER_NODE: usize = 3;
const STEP_MS: u64 = 100;

fn address(node: usize) -> String {
    format!("127.0.0.1:{}", 20_000 + node)
}

/// One end of a simulated TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct End {
    node: usize,
    peer: PeerId,
}

struct Network {
    cores: Vec<Protocol>,
    links: BTreeMap<End, End>,
    /// Ends that were written to since the last drain report.
    written: BTreeSet<End>,
    /// Bodies written by each end so far.
    written_count: BTreeMap<End, u64>,
    queue: VecDeque<(End, Bytes)>,
    rng: StdRng,
    now: u64,
    next_peer: PeerId,
    /// Probability that a delivery breaks its connection instead.
    break_probability: f64,
    /// Side of each node while partitioned.
    partition: Option<Vec<bool>>,
    published: HashSet<String>,
}

impl Network {
    fn new(seed: u64) -> Network {
        let config = ProtocolConfig { hello_wait: std::time::Duration::from_millis(200), ..ProtocolConfig::default() };
        let cores = (0..NODES)
            .map(|i| {
                let identity = Identity::from_seed([
                    (i % 251) as u8 + 1,
                    (i / 251) as u8,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                ]);
                Protocol::new(config.clone(), identity, 20_000 + i as u16, DagStore::open_in_memory().unwrap())
            })
            .collect();
        let mut network = Network {
            cores,
            links: BTreeMap::new(),
            written: BTreeSet::new(),
            written_count: BTreeMap::new(),
            queue: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
            now: 0,
            next_peer: 1,
            break_probability: 0.0,
            partition: None,
            published: HashSet::new(),
        };
        for node in 0..NODES {
            let mut targets = BTreeSet::new();
            while targets.len() < DIALS_PER_NODE {
                let target = network.rng.random_range(0..NODES);
                if target != node {
                    targets.insert(target);
                }
            }
            for target in targets {
                network.cores[node].add_dial_target(&address(target), true);
            }
        }
        network
    }

    fn feed(&mut self, node: usize, event: Event) {
        let unix_now = 1_773_000_000 + (self.now / 1000) as i64;
        let actions = self.cores[node].handle(event, self.now, unix_now);
        for action in actions {
            match action {
                Action::Send { peer, body } => {
                    if let Some(other) = self.links.get(&End { node, peer }) {
                        self.queue.push_back((*other, body));
                        self.written.insert(End { node, peer });
                        *self.written_count.entry(End { node, peer }).or_default() += 1;
                    }
                }
                Action::Disconnect { peer, .. } => self.break_link(End { node, peer }),
                Action::Dial { address } => self.dial(node, &address),
                Action::RememberPeer { .. } => {}
            }
        }
    }

    fn separated(&self, a: usize, b: usize) -> bool {
        self.partition.as_ref().is_some_and(|side| side[a] != side[b])
    }

    fn dial(&mut self, node: usize, address_text: &str) {
        let target: usize = address_text.rsplit(':').next().unwrap().parse::<usize>().unwrap() - 20_000;
        if self.separated(node, target) {
            self.feed(node, Event::DialFailed { address: address_text.to_string() });
            return;
        }
        let (a, b) = (End { node, peer: self.next_peer }, End { node: target, peer: self.next_peer + 1 });
        self.next_peer += 2;
        self.links.insert(a, b);
        self.links.insert(b, a);
        let remote = |n: usize| SocketAddr::from(([127, 0, 0, 1], 30_000 + n as u16));
        self.feed(
            node,
            Event::Connected {
                peer: a.peer,
                remote: remote(target),
                direction: Direction::Outbound { dialed: address_text.to_string() },
            },
        );
        self.feed(target, Event::Connected { peer: b.peer, remote: remote(node), direction: Direction::Inbound });
    }

    fn break_link(&mut self, end: End) {
        if let Some(other) = self.links.remove(&end) {
            self.links.remove(&other);
            self.feed(end.node, Event::Disconnected { peer: end.peer });
            self.feed(other.node, Event::Disconnected { peer: other.peer });
        }
    }

    /// Delivers queued messages until none are left (or the connection they were on broke).
    fn settle(&mut self) {
        let mut delivered = 0;
        while let Some((to, body)) = self.queue.pop_front() {
            if !self.links.contains_key(&to) {
                continue;
            }
            if self.rng.random_bool(self.break_probability) {
                self.break_link(to);
                continue;
            }
            self.feed(to.node, Event::Frame { peer: to.peer, body });
            self.feed(to.node, Event::Idle);
            delivered += 1;
            if self.queue.is_empty() || delivered % 64 == 0 {
                // Everything written so far has left the writers' queues.
                let written: Vec<End> =
                    std::mem::take(&mut self.written).into_iter().filter(|e| self.links.contains_key(e)).collect();
                let mut touched = BTreeSet::new();
                for end in written {
                    touched.insert(end.node);
                    let written = self.written_count.get(&end).copied().unwrap_or(0);
                    self.feed(end.node, Event::Drained { peer: end.peer, written, bytes: u64::MAX });
                }
                for node in touched {
                    self.feed(node, Event::Idle);
                }
            }
        }
    }

    fn step(&mut self, ms: u64) {
        let until = self.now + ms;
        while self.now < until {
            self.now += STEP_MS;
            for node in 0..NODES {
                self.feed(node, Event::Tick);
            }
            self.settle();
        }
    }

    fn publish(&mut self, node: usize, n: i64) {
        let mut record = spore_tests::records::record(n);
        record.val_bpb = JsonNumber::Float(1.0 - n as f64 * 1e-4);
        record.status = if n % 4 == 0 { Status::Discard } else { Status::Keep };
        record.description = format!("record {n} from node {node}");
        self.cores[node].identity().sign_record(&mut record);
        let mut payload = Vec::new();
        record.write_wire_payload(&mut payload);
        self.published.insert(record.id.clone());
        let stored =
            StoredRecord { record, payload: String::from_utf8(payload).unwrap(), flags: Vec::new(), received_at: 0 };
        self.feed(node, Event::Publish(Box::new(stored)));
        self.settle();
    }

    fn counts(&self) -> Vec<u64> {
        self.cores.iter().map(|c| c.store().counts().unwrap().total).collect()
    }
}

#[test]
fn records_reach_every_node_despite_broken_connections_and_a_partition() {
    let mut net = Network::new(20261125);
    net.step(3_000);
    let connected = net.links.len() / 2;
    assert!(connected >= NODES * DIALS_PER_NODE * 9 / 10, "only {connected} connections came up");

    // Gossip with 2 % of deliveries breaking their connection.
    net.break_probability = 0.02;
    for n in 0..40 {
        let node = net.rng.random_range(0..NODES);
        net.publish(node, n);
        net.step(200);
    }

    // A partition: the halves publish separately.
    let side: Vec<bool> = (0..NODES).map(|i| i < NODES / 2).collect();
    net.partition = Some(side.clone());
    let cut: Vec<End> = net.links.keys().copied().filter(|e| side[e.node] != side[net.links[e].node]).collect();
    for end in cut {
        net.break_link(end);
    }
    for n in 40..80 {
        let node = if n % 2 == 0 { net.rng.random_range(0..NODES / 2) } else { net.rng.random_range(NODES / 2..NODES) };
        net.publish(node, n);
        net.step(200);
    }
    assert!(net.counts().iter().all(|c| (*c as usize) < net.published.len()), "the partition holds");

    // Heal; redials (with backoff) and cursor syncs bring everyone up to date.
    net.partition = None;
    net.break_probability = 0.0;
    let total = net.published.len() as u64;
    let healed_at = net.now;
    while net.now - healed_at < 120_000 && net.counts().iter().any(|c| *c != total) {
        net.step(1_000);
    }
    eprintln!("converged {} s after the partition healed", (net.now - healed_at) / 1000);
    let lagging: Vec<(usize, u64)> = net.counts().into_iter().enumerate().filter(|(_, c)| *c != total).collect();
    assert!(lagging.is_empty(), "nodes missing records (node, count of {total}): {lagging:?}");
}

#[test]
fn the_simulation_is_deterministic() {
    let run = || {
        let mut net = Network::new(7);
        net.step(2_000);
        net.break_probability = 0.05;
        for n in 0..10 {
            net.publish(n as usize * 7 % NODES, n);
            net.step(100);
        }
        (net.counts(), net.links.len(), net.next_peer)
    };
    assert_eq!(run(), run());
}

#[test]
fn gossip_between_our_nodes_moves_each_record_across_each_link_once() {
    let mut net = Network::new(11);
    net.step(3_000);
    for n in 0..20 {
        let node = net.rng.random_range(0..NODES);
        net.publish(node, n);
        net.step(500);
    }
    // Well before the first anti-entropy sync (60 s): gossip alone delivered everything.
    assert!(net.now < 20_000);
    let total = net.published.len() as u64;
    assert!(net.counts().iter().all(|c| *c == total), "counts: {:?}", net.counts());
    // Each node heard every record announced by each neighbour, asked for it once and so
    // received no copy twice.
    let requested: u64 = net.cores.iter().map(|c| c.stats().announce.ids_requested).sum();
    let duplicates: u64 = net.cores.iter().map(|c| c.stats().records_duplicate).sum();
    assert_eq!(requested, total * (NODES as u64 - 1));
    assert_eq!(duplicates, 0);
    assert!(net.cores.iter().all(|c| c.wanted_count() == 0));
}

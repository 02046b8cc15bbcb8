#![allow(clippy::unwrap_used)]
//! A deterministic simulation of verification with honest and dishonest nodes, driving the
//! agent's own rules (`spore_agent::verification`) and real signed control events:
//!
//! * an inflater publishes results better than its code gives;
//! * a fabricator publishes keeps its code never earned;
//! * a forger challenges honest results with made-up numbers, and asserts verdicts in signed
//!   and unsigned disputes;
//! * a colluder answers every challenge in the liars' favour (with the forger, inflater and
//!   fabricator: a minority of 4 among 10).
//!
//! Then twenty fresh keys (Sybils) vote against an honest record and for a lie: counted as
//! everyone's, they win; counted by standing (`spore_agent::verification::standing`), they
//! change no honest node's verdict.
//!
//! Every node sees every record and every event (a full mesh without loss); the honest nodes
//! spot-check, challenge, answer challenges with their own re-runs and decide every dispute
//! themselves from the signed events. At the end no lie is on an honest node's frontier, no
//! honest record was rejected, and every honest node ranks every honest node above every liar.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spore_agent::verification::dispute::{Claim, Verdict, resolve};
use spore_agent::verification::reputation::Reputation;
use spore_agent::verification::sampling::{BASE_RATE, Candidate, should_spot_check, spot_check_rate};
use spore_agent::verification::standing::Standing;
use spore_agent::verification::tolerance::table_tolerance;
use spore_spec::{ControlEvent, ControlKind, Identity};

const CLASS: &str = "H100";
const GPU: &str = "NVIDIA H100 80GB HBM3";
/// Run-to-run noise of an honest re-run (σ), well inside the H100 band of 0.0015.
const NOISE: f64 = 0.0002;
const ROUNDS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Honest,
    Inflater,
    Fabricator,
    Forger,
    Colluder,
}

#[derive(Debug, Clone)]
struct Record {
    id: String,
    publisher: String,
    /// What the record says.
    claimed: f64,
    /// What its code gives when anyone runs it.
    actual: f64,
    lie: bool,
}

struct Node {
    identity: Identity,
    behaviour: Behaviour,
    reputation: Reputation,
    rejected: HashSet<String>,
    verified: HashSet<String>,
}

impl Node {
    fn id(&self) -> String {
        self.identity.node_id()
    }

    fn honest(&self) -> bool {
        self.behaviour == Behaviour::Honest
    }

    /// The best record this node would build on: the lowest claim not rejected.
    fn frontier<'a>(&self, records: &'a [Record]) -> Option<&'a Record> {
        records.iter().filter(|r| !self.rejected.contains(&r.id)).min_by(|a, b| a.claimed.total_cmp(&b.claimed))
    }
}

struct Sim {
    nodes: Vec<Node>,
    records: Vec<Record>,
    /// Signed challenges and the responses to each, as everyone received them.
    challenges: Vec<(ControlEvent, Vec<ControlEvent>)>,
    rng: StdRng,
    now: i64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let behaviours = [
            Behaviour::Honest,
            Behaviour::Honest,
            Behaviour::Honest,
            Behaviour::Honest,
            Behaviour::Honest,
            Behaviour::Honest,
            Behaviour::Inflater,
            Behaviour::Fabricator,
            Behaviour::Forger,
            Behaviour::Colluder,
        ];
        let nodes = behaviours
            .iter()
            .enumerate()
            .map(|(i, &behaviour)| Node {
                identity: Identity::from_seed([i as u8 + 1; 32]),
                behaviour,
                reputation: Reputation::default(),
                rejected: HashSet::new(),
                verified: HashSet::new(),
            })
            .collect();
        Sim { nodes, records: Vec::new(), challenges: Vec::new(), rng: StdRng::seed_from_u64(seed), now: 1_773_000_000 }
    }

    fn behaviour_of(&self, node_id: &str) -> Behaviour {
        self.nodes.iter().find(|n| n.id() == node_id).unwrap().behaviour
    }

    fn is_liar(&self, node_id: &str) -> bool {
        self.behaviour_of(node_id) != Behaviour::Honest
    }

    /// An honest re-run of `record`.
    fn rerun(&mut self, record: &Record) -> f64 {
        record.actual + self.rng.random_range(-NOISE..NOISE)
    }

    /// Every node publishes one record built on the best it knows.
    fn publish_round(&mut self, round: usize) {
        for i in 0..self.nodes.len() {
            // A child's code performs as its parent's code does, whatever the parent claimed.
            let base = self.nodes[i].frontier(&self.records).map_or(1.0, |r| r.actual);
            let gain = self.rng.random_range(0.0..0.004);
            let actual = base - gain + 0.002;
            let (claimed, lie) = match self.nodes[i].behaviour {
                Behaviour::Inflater => (actual - 0.05, true),
                Behaviour::Fabricator => (base - 0.1, true),
                _ => (actual + self.rng.random_range(-NOISE..NOISE), false),
            };
            let publisher = self.nodes[i].id();
            let id = spore_spec::cid_of(format!("{publisher}:{round}").as_bytes());
            self.records.push(Record { id, publisher, claimed, actual, lie });
        }
    }

    /// Honest nodes spot-check the round's records; failures become signed challenges. The
    /// forger challenges the best honest record with a made-up number.
    fn check_round(&mut self, fresh: &[Record]) {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].honest() {
                continue;
            }
            for record in fresh {
                let me = self.nodes[i].id();
                let score = self.nodes[i].reputation.score(&record.publisher, self.now);
                let best = self.nodes[i].frontier(&self.records).map(|r| r.claimed);
                let candidate = Candidate {
                    publisher: &record.publisher,
                    gpu_class: CLASS,
                    val_bpb: record.claimed,
                    crashed: false,
                    would_lead: best.is_none_or(|b| record.claimed <= b),
                };
                let rate = spot_check_rate(&candidate, &me, CLASS, score, BASE_RATE);
                let draw = self.rng.random::<f64>();
                if !should_spot_check(rate, draw) {
                    continue;
                }
                let value = self.rerun(record);
                if (value - record.claimed).abs() <= table_tolerance(CLASS) {
                    let node = &mut self.nodes[i];
                    node.reputation.verified(&record.id, &record.publisher, &me, true, false, self.now);
                    node.verified.insert(record.id.clone());
                } else if !self.challenges.iter().any(|(c, _)| c.experiment_id() == record.id && c.actor() == me) {
                    let challenge = ControlEvent::challenge(&self.nodes[i].identity, &record.id, value, GPU, self.now);
                    self.challenges.push((challenge, Vec::new()));
                }
            }
        }
        let forger = self.nodes.iter().find(|n| n.behaviour == Behaviour::Forger).unwrap();
        let honest_results = fresh.iter().filter(|r| !self.is_liar(&r.publisher));
        if let Some(target) = honest_results.min_by(|a, b| a.claimed.total_cmp(&b.claimed)) {
            let forged = ControlEvent::challenge(&forger.identity, &target.id, target.claimed + 0.3, GPU, self.now);
            self.challenges.push((forged, Vec::new()));
        }
    }

    /// Every node but the publisher and the challenger answers every open challenge: honest
    /// nodes with their re-run, liars in the liars' favour.
    fn answer_round(&mut self, open: std::ops::Range<usize>) {
        for c in open {
            let challenge = self.challenges[c].0.clone();
            let record = self.records.iter().find(|r| r.id == challenge.experiment_id()).unwrap().clone();
            let challenger = challenge.actor().to_string();
            for i in 0..self.nodes.len() {
                let me = self.nodes[i].id();
                if me == record.publisher || me == challenger {
                    continue;
                }
                let value = if self.nodes[i].honest() {
                    self.rerun(&record)
                } else if self.is_liar(&record.publisher) {
                    record.claimed
                } else {
                    record.claimed + 0.3
                };
                let response =
                    ControlEvent::response(&self.nodes[i].identity, &record.id, &challenger, value, GPU, self.now);
                self.challenges[c].1.push(response);
            }
        }
    }

    /// Every honest node decides every challenge from the signed events it holds.
    fn resolve_round(&mut self, open: std::ops::Range<usize>) {
        let eligible: HashSet<String> = self.nodes.iter().map(Node::id).collect();
        for c in open {
            let (challenge, responses) = self.challenges[c].clone();
            let record = self.records.iter().find(|r| r.id == challenge.experiment_id()).unwrap().clone();
            let claim = Claim {
                experiment_id: &record.id,
                publisher: &record.publisher,
                gpu_class: CLASS,
                val_bpb: record.claimed,
            };
            for node in self.nodes.iter_mut().filter(|n| n.honest()) {
                // Every challenge here is well-formed and answered; a node would drop one that is not.
                let resolution =
                    resolve(&claim, &challenge, &responses, |id| eligible.contains(id), table_tolerance(CLASS), 3)
                        .expect("a decidable challenge");
                node.reputation.resolved(&record.id, &record.publisher, &resolution, self.now);
                if resolution.verdict == Verdict::Rejected {
                    node.rejected.insert(record.id.clone());
                }
            }
        }
    }

    /// Before building on its best record, an honest node re-runs it unless it has confirmed
    /// it already: a failed re-run is challenged and decided at once, and the next best checked.
    fn settle_frontiers(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].honest() {
                continue;
            }
            while let Some(best) = self.nodes[i].frontier(&self.records).cloned() {
                if self.nodes[i].verified.contains(&best.id) || best.publisher == self.nodes[i].id() {
                    break;
                }
                let value = self.rerun(&best);
                if (value - best.claimed).abs() <= table_tolerance(CLASS) {
                    let node = &mut self.nodes[i];
                    let me = node.id();
                    node.reputation.verified(&best.id, &best.publisher, &me, true, true, self.now);
                    node.verified.insert(best.id.clone());
                    continue;
                }
                let open = self.challenges.len();
                let challenge = ControlEvent::challenge(&self.nodes[i].identity, &best.id, value, GPU, self.now);
                self.challenges.push((challenge, Vec::new()));
                self.answer_round(open..open + 1);
                self.resolve_round(open..open + 1);
                assert!(self.nodes[i].rejected.contains(&best.id), "a failed re-run of {} was upheld", &best.id[..8]);
            }
        }
    }

    fn run(&mut self) {
        for round in 0..ROUNDS {
            let first = self.records.len();
            self.publish_round(round);
            let fresh = self.records[first..].to_vec();
            let open = self.challenges.len();
            self.check_round(&fresh);
            let open = open..self.challenges.len();
            self.answer_round(open.clone());
            self.resolve_round(open);
            self.settle_frontiers();
            self.now += 600;
        }
    }

    /// Responses to `challenger` about `record`: every Sybil says `sybil_value`, each of the
    /// `honest` nodes what its re-run gives.
    fn votes(
        &mut self,
        sybils: &[Identity],
        record: &Record,
        challenger: &str,
        sybil_value: f64,
        honest: &[usize],
    ) -> Vec<ControlEvent> {
        let now = self.now;
        let mut votes: Vec<ControlEvent> =
            sybils.iter().map(|s| ControlEvent::response(s, &record.id, challenger, sybil_value, GPU, now)).collect();
        for &i in honest {
            let value = self.rerun(record);
            votes.push(ControlEvent::response(&self.nodes[i].identity, &record.id, challenger, value, GPU, now));
        }
        votes
    }

    fn snapshot(&self, node: usize) -> (Option<String>, Vec<(String, f64)>, HashSet<String>) {
        let n = &self.nodes[node];
        (n.frontier(&self.records).map(|r| r.id.clone()), n.reputation.table(self.now), n.rejected.clone())
    }
}

#[test]
fn liars_lose_and_honest_nodes_win_whatever_the_seed() {
    for seed in 0..5 {
        let mut sim = Sim::new(seed);
        sim.run();
        let liars: Vec<String> = sim.nodes.iter().filter(|n| !n.honest()).map(Node::id).collect();
        let honest: Vec<String> = sim.nodes.iter().filter(|n| n.honest()).map(Node::id).collect();
        let lies: HashSet<&str> = sim.records.iter().filter(|r| r.lie).map(|r| r.id.as_str()).collect();
        assert_eq!(lies.len(), 2 * ROUNDS);
        for node in sim.nodes.iter().filter(|n| n.honest()) {
            // The best this node builds on is an honest result.
            let best = node.frontier(&sim.records).unwrap();
            assert!(!best.lie, "seed {seed}: a lie leads the frontier of {}", &node.id()[..8]);
            // Every lie that would have led was rejected; no honest result ever was.
            for r in sim.records.iter().filter(|r| r.lie && r.claimed <= best.claimed) {
                assert!(node.rejected.contains(&r.id), "seed {seed}: lie {} stands", &r.id[..8]);
            }
            for r in &node.rejected {
                assert!(lies.contains(r.as_str()), "seed {seed}: an honest record was rejected");
            }
            // Every honest node ranks every honest node above every liar.
            let lowest_honest =
                honest.iter().map(|id| node.reputation.score(id, sim.now)).fold(f64::INFINITY, f64::min);
            let highest_liar =
                liars.iter().map(|id| node.reputation.score(id, sim.now)).fold(f64::NEG_INFINITY, f64::max);
            assert!(lowest_honest > highest_liar, "seed {seed}: honest {lowest_honest} vs liars {highest_liar}");
        }
        // The forger's challenges all failed, and cost it.
        let forger = sim.nodes.iter().find(|n| n.behaviour == Behaviour::Forger).unwrap().id();
        let forged = sim.challenges.iter().filter(|(c, _)| c.actor() == forger).count();
        assert_eq!(forged, ROUNDS);
        assert!(sim.nodes[0].reputation.score(&forger, sim.now) <= -(ROUNDS as f64) * 0.9);
    }
}

#[test]
fn forged_disputes_signed_or_not_move_nothing() {
    let mut sim = Sim::new(7);
    sim.run();
    let before = sim.snapshot(0);
    let honest_best = sim.nodes[0].frontier(&sim.records).unwrap().clone();
    let forger = sim.nodes.iter().find(|n| n.behaviour == Behaviour::Forger).unwrap();

    // A signed dispute in the forger's own name, asserting a rejection: a node decides
    // disputes from challenges and responses, never from a dispute's say-so.
    let payload = vec![
        ("experiment_id".to_string(), spore_spec::json::Value::String(honest_best.id.clone())),
        ("challenger_id".to_string(), spore_spec::json::Value::String(forger.id())),
        ("challenger_bpb".to_string(), spore_spec::json::Value::Number(spore_spec::JsonNumber::Float(9.0))),
        ("outcome".to_string(), spore_spec::json::Value::String("rejected".into())),
    ];
    let dispute = ControlEvent::sign(&forger.identity, ControlKind::Dispute, payload, sim.now);
    assert_eq!(dispute.verify(), Ok(()), "well-formed, and still no evidence");
    // With no counted response to its (absent) challenge, there is nothing to decide.
    let claim = Claim {
        experiment_id: &honest_best.id,
        publisher: &honest_best.publisher,
        gpu_class: CLASS,
        val_bpb: honest_best.claimed,
    };
    assert!(resolve(&claim, &dispute, &[], |_| true, table_tolerance(CLASS), 3).is_err());
    // A 0.1.2-style unsigned dispute has no signer at all.
    let unsigned = spore_spec::Message::decode(
        format!(
            "{{\"type\":\"dispute\",\"payload\":{{\"experiment_id\":\"{}\",\"challenger_id\":\"{}\",\
             \"challenger_bpb\":9.0,\"outcome\":\"rejected\",\"ground_truth_bpb\":9.0,\"verifier_count\":3}}}}",
            honest_best.id,
            forger.id()
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(matches!(unsigned, spore_spec::Message::Dispute { .. }));
    assert_eq!(sim.snapshot(0), before, "the node's frontier, rejections and reputation are unchanged");
}

fn claim_of(r: &Record) -> Claim<'_> {
    Claim { experiment_id: &r.id, publisher: &r.publisher, gpu_class: CLASS, val_bpb: r.claimed }
}

/// The standing a node has after the simulation: itself, and every publisher whose record it
/// re-ran and confirmed (before `before`).
fn standing_of(node: &Node, records: &[Record], before: i64) -> Standing {
    let mut standing = Standing::new(&node.id(), []);
    for record in records.iter().filter(|r| node.verified.contains(&r.id)) {
        standing.confirmed(&node.id(), &record.publisher, before - 1);
    }
    standing
}

#[test]
fn many_fresh_keys_change_no_honest_verdict() {
    let mut sim = Sim::new(3);
    sim.run();
    let sybils: Vec<Identity> = (0..20u8).map(|i| Identity::from_seed([200 + i; 32])).collect();
    let honest: Vec<usize> = (0..sim.nodes.len()).filter(|&i| sim.nodes[i].honest()).collect();
    let now = sim.now;

    // An honest record, challenged by the forger (whose own records are honest, so it may have
    // earned standing) and "re-run" badly by twenty fresh keys.
    let good = sim.nodes[0].frontier(&sim.records).unwrap().clone();
    assert!(!good.lie);
    let forger = sim.nodes.iter().find(|n| n.behaviour == Behaviour::Forger).unwrap();
    let attack = ControlEvent::challenge(&forger.identity, &good.id, good.claimed + 0.3, GPU, now);
    let forger_id = forger.id();
    let others: Vec<usize> = honest.iter().copied().filter(|&i| sim.nodes[i].id() != good.publisher).collect();
    let votes = sim.votes(&sybils, &good, &forger_id, good.claimed + 0.3, &others);
    let counting_everyone = resolve(&claim_of(&good), &attack, &votes, |_| true, table_tolerance(CLASS), 3).unwrap();
    assert_eq!(counting_everyone.verdict, Verdict::Rejected, "without standing, the Sybils win");
    let mut upheld = 0;
    for &i in &honest {
        let standing = standing_of(&sim.nodes[i], &sim.records, now);
        let decided =
            resolve(&claim_of(&good), &attack, &votes, |id| standing.eligible(id, now), table_tolerance(CLASS), 1);
        match decided {
            Ok(resolution) => {
                assert_eq!(resolution.verdict, Verdict::Upheld, "node {i} rejected an honest record");
                assert!(resolution.opposing.is_empty(), "node {i} counted a Sybil: {resolution:?}");
                upheld += 1;
            }
            Err(e) => eprintln!("node {i} decides nothing: {e}"),
        }
    }
    eprintln!("{upheld} of {} honest nodes upheld the record on earned standing", honest.len());
    assert!(upheld > 0, "earned standing decides some disputes");

    // A lie, challenged by an honest node, and "confirmed" by twenty fresh keys.
    let lie = sim.records.iter().rev().find(|r| r.lie).unwrap().clone();
    let challenger = honest[0];
    let value = sim.rerun(&lie);
    let challenge = ControlEvent::challenge(&sim.nodes[challenger].identity, &lie.id, value, GPU, now);
    let challenger_id = sim.nodes[challenger].id();
    let votes = sim.votes(&sybils, &lie, &challenger_id, lie.claimed, &honest[1..]);
    let counting_everyone = resolve(&claim_of(&lie), &challenge, &votes, |_| true, table_tolerance(CLASS), 3).unwrap();
    assert_eq!(counting_everyone.verdict, Verdict::Upheld, "without standing, the Sybils uphold the lie");
    let mut decided = 0;
    for &i in &honest {
        let mut standing = standing_of(&sim.nodes[i], &sim.records, now);
        // The lab's setting: the honest nodes trust the challenger's re-runs.
        if i != challenger {
            standing = Standing::new(&sim.nodes[i].id(), [challenger_id.clone()]);
        }
        match resolve(&claim_of(&lie), &challenge, &votes, |id| standing.eligible(id, now), table_tolerance(CLASS), 1) {
            Ok(resolution) => {
                assert_eq!(resolution.verdict, Verdict::Rejected, "node {i} upheld a lie");
                decided += 1;
            }
            Err(e) => panic!("node {i}: {e}"),
        }
    }
    assert_eq!(decided, honest.len());
}

//! Research reputation: slow, local, earned per event. Protocol violations are the other
//! channel (the gossip layer's misbehaviour score acts at once on the connection).
//!
//! Deltas of Python 0.3.10 (§15.4): a verified keep +1 (+2 on the frontier), a verified
//! discard or crash 0, performing a verification 0, a successful challenger +1, a verifier on
//! the winning side +0.5, a challenger or verifier on the losing side −1, a rejected publisher
//! −5. Each event counts once (its key), nobody gains from checking themselves, scores are
//! clamped to ±100 as in 0.1.2, and — unlike Python — they decay towards 0 with a half-life, so
//! old credit does not shelter new lies and old faults are forgiven.

use std::collections::{HashMap, HashSet};

use super::dispute::{Resolution, Verdict};

/// A score's bounds.
pub const MAX_SCORE: f64 = 100.0;
/// Default half-life of a score: 30 days.
pub const HALF_LIFE_SECS: f64 = 30.0 * 86_400.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    score: f64,
    at: i64,
}

/// The local reputation table.
#[derive(Debug, Clone)]
pub struct Reputation {
    entries: HashMap<String, Entry>,
    seen: HashSet<String>,
    half_life_secs: f64,
}

impl Default for Reputation {
    fn default() -> Self {
        Reputation::new(HALF_LIFE_SECS)
    }
}

impl Reputation {
    pub fn new(half_life_secs: f64) -> Self {
        Reputation { entries: HashMap::new(), seen: HashSet::new(), half_life_secs }
    }

    fn decayed(&self, entry: Entry, now: i64) -> f64 {
        let age = (now - entry.at).max(0) as f64;
        entry.score * 0.5f64.powf(age / self.half_life_secs)
    }

    /// `node`'s score at `now`.
    pub fn score(&self, node: &str, now: i64) -> f64 {
        self.entries.get(node).map_or(0.0, |e| self.decayed(*e, now))
    }

    /// Applies `delta`, earned at time `at`, to `node` once per `key`; false when the key was
    /// seen before. Events may arrive out of order (a restart replays them): an older one is
    /// added already decayed to the node's latest time.
    pub fn apply(&mut self, key: &str, node: &str, delta: f64, at: i64) -> bool {
        if !self.seen.insert(key.to_string()) {
            return false;
        }
        let latest = self.entries.get(node).map_or(at, |e| e.at.max(at));
        let current = self.score(node, latest);
        let added = self.decayed(Entry { score: delta, at }, latest);
        let score = (current + added).clamp(-MAX_SCORE, MAX_SCORE);
        self.entries.insert(node.to_string(), Entry { score, at: latest });
        true
    }

    /// A successful spot-check of `publisher`'s record by `verifier`.
    pub fn verified(
        &mut self,
        experiment_id: &str,
        publisher: &str,
        verifier: &str,
        keep: bool,
        frontier: bool,
        now: i64,
    ) {
        if publisher == verifier {
            return;
        }
        let delta = match (keep, frontier) {
            (true, true) => 2.0,
            (true, false) => 1.0,
            (false, _) => 0.0,
        };
        // One credit per record, however many nodes confirm it.
        self.apply(&format!("verified:{experiment_id}"), publisher, delta, now);
    }

    /// The consequences of a resolved dispute about `publisher`'s `experiment_id`.
    pub fn resolved(&mut self, experiment_id: &str, publisher: &str, resolution: &Resolution, now: i64) {
        let key = |who: &str| format!("dispute:{experiment_id}:{}:{who}", resolution.challenger);
        let (winners, losers) = match resolution.verdict {
            Verdict::Rejected => (&resolution.opposing, &resolution.supporting),
            Verdict::Upheld => (&resolution.supporting, &resolution.opposing),
        };
        match resolution.verdict {
            Verdict::Rejected => {
                // One penalty per false record, however many nodes challenged it.
                self.apply(&format!("rejected:{experiment_id}"), publisher, -5.0, now);
                self.apply(&key(&resolution.challenger), &resolution.challenger, 1.0, now);
            }
            Verdict::Upheld => {
                self.apply(&key(&resolution.challenger), &resolution.challenger, -1.0, now);
                self.apply(&format!("verified:{experiment_id}"), publisher, 1.0, now);
            }
        }
        for verifier in winners {
            self.apply(&key(verifier), verifier, 0.5, now);
        }
        for verifier in losers {
            self.apply(&key(verifier), verifier, -1.0, now);
        }
    }

    /// Every known node and its score at `now`, best first.
    pub fn table(&self, now: i64) -> Vec<(String, f64)> {
        let mut rows: Vec<(String, f64)> =
            self.entries.iter().map(|(id, e)| (id.clone(), self.decayed(*e, now))).collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolution(verdict: Verdict) -> Resolution {
        Resolution {
            verdict,
            ground_truth: 1.0,
            tolerance: 0.002,
            challenger: "c".into(),
            supporting: vec!["s".into()],
            opposing: vec!["o".into()],
        }
    }

    #[test]
    fn a_rejection_moves_everyone_once() {
        let mut rep = Reputation::default();
        rep.resolved("e", "p", &resolution(Verdict::Rejected), 0);
        rep.resolved("e", "p", &resolution(Verdict::Rejected), 0);
        // A second challenger of the same false record is rewarded; the publisher pays once.
        let second = Resolution { challenger: "c2".into(), ..resolution(Verdict::Rejected) };
        rep.resolved("e", "p", &second, 0);
        assert_eq!(rep.score("c2", 0), 1.0);
        assert_eq!(rep.score("p", 0), -5.0);
        assert_eq!(rep.score("c", 0), 1.0);
        // The verifiers answered two challenges: each answer counts once.
        assert_eq!(rep.score("o", 0), 1.0);
        assert_eq!(rep.score("s", 0), -2.0);
    }

    #[test]
    fn an_upheld_claim_costs_the_challenger_and_verifies_the_publisher() {
        let mut rep = Reputation::default();
        rep.resolved("e", "p", &resolution(Verdict::Upheld), 0);
        assert_eq!((rep.score("p", 0), rep.score("c", 0)), (1.0, -1.0));
        assert_eq!((rep.score("s", 0), rep.score("o", 0)), (0.5, -1.0));
        // A later spot-check of the same record does not pay twice.
        rep.verified("e", "p", "v", true, true, 0);
        assert_eq!(rep.score("p", 0), 1.0);
    }

    #[test]
    fn no_credit_for_checking_oneself_scores_clamp_and_decay() {
        let mut rep = Reputation::new(100.0);
        rep.verified("e1", "p", "p", true, true, 0);
        assert_eq!(rep.score("p", 0), 0.0);
        for i in 0..80 {
            rep.verified(&format!("x{i}"), "p", "v", true, true, 0);
        }
        assert_eq!(rep.score("p", 0), MAX_SCORE);
        assert!((rep.score("p", 100) - 50.0).abs() < 1e-9, "one half-life later");
        assert_eq!(rep.table(100)[0].0, "p");
    }

    #[test]
    fn events_replayed_out_of_order_decay_from_their_own_time() {
        let mut rep = Reputation::new(100.0);
        rep.verified("late", "p", "v", true, false, 100);
        rep.verified("early", "p", "v", true, false, 0);
        // 1 at t=100, plus 1 earned at t=0 (worth 0.5 at t=100).
        assert!((rep.score("p", 100) - 1.5).abs() < 1e-9);
        assert!((rep.score("p", 200) - 0.75).abs() < 1e-9);
    }
}

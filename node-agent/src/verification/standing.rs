//! Who may vote in a dispute, as this node sees it. Counting every signed voter let any four
//! fresh keys (a challenge and a quorum of three responses) reject an honest record or uphold a
//! lie on every node: keys cost nothing.
//!
//! A vote counts only from a node with standing here:
//!
//! * an *anchor*: this node itself, or a verifier the lab trusts (`--trust-verifier`, a
//!   SporeNode's `spec.verification.trustedVerifiers`);
//! * a node whose work an anchor re-ran and confirmed — a signed `verification` by an anchor of
//!   one of its records — before the dispute began (the challenge's timestamp). Standing is
//!   earned by real work that someone this node believes has checked, so fresh keys have none,
//!   and a confirmation signed during a dispute does not count in it.
//!
//! The same rule decides whose `verification` events credit a publisher's reputation (a lower
//! spot-check rate must not be bought with fresh keys either). A node with no anchor but itself
//! that never re-runs anything decides no dispute: it cannot tell honest voters from Sybils.

use std::collections::{HashMap, HashSet};

/// The anchors, and when each other node first earned standing.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    anchors: HashSet<String>,
    /// Node id → the earliest time an anchor confirmed one of its records.
    earned: HashMap<String, i64>,
}

impl Standing {
    /// `me` and the `trusted` verifiers are anchors.
    pub fn new(me: &str, trusted: impl IntoIterator<Item = String>) -> Standing {
        let mut anchors: HashSet<String> = trusted.into_iter().collect();
        anchors.insert(me.to_string());
        Standing { anchors, earned: HashMap::new() }
    }

    /// Notes a stored, verified `verification` event: `signer` confirmed a record of
    /// `publisher` at `at`. Counts only when the signer is an anchor and not the publisher.
    pub fn confirmed(&mut self, signer: &str, publisher: &str, at: i64) {
        if signer == publisher || !self.anchors.contains(signer) {
            return;
        }
        let earliest = self.earned.entry(publisher.to_string()).or_insert(at);
        *earliest = (*earliest).min(at);
    }

    /// Whether `node` may vote in a dispute that began at `started`.
    pub fn eligible(&self, node: &str, started: i64) -> bool {
        self.anchors.contains(node) || self.earned.get(node).is_some_and(|at| *at < started)
    }

    /// How many nodes earned standing (anchors aside), for `spore status`.
    pub fn earned_count(&self) -> usize {
        self.earned.keys().filter(|n| !self.anchors.contains(*n)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_vote_and_others_only_after_an_anchor_confirmed_their_work() {
        let mut standing = Standing::new("me", ["lab".to_string()]);
        assert!(standing.eligible("me", 0) && standing.eligible("lab", 0));
        assert!(!standing.eligible("fresh", 1_000));
        // A fresh key confirming another fresh key earns nothing for either.
        standing.confirmed("fresh", "sybil", 10);
        assert!(!standing.eligible("sybil", 1_000));
        // Nobody earns standing by confirming itself.
        standing.confirmed("lab", "lab", 10);
        assert_eq!(standing.earned_count(), 0);
        // The lab's verifier confirmed `worker` at 100: it votes in disputes begun after that.
        standing.confirmed("lab", "worker", 100);
        assert!(!standing.eligible("worker", 100) && standing.eligible("worker", 101));
        // An earlier confirmation, learned later, moves its standing back.
        standing.confirmed("me", "worker", 50);
        assert!(standing.eligible("worker", 51));
        assert_eq!(standing.earned_count(), 1);
    }
}

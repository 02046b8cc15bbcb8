//! Parent selection, as the Python peer's coordinator does it (§8.3 of the reference facts):
//! exploit the best frontier record with probability `exploit`, otherwise explore a frontier
//! record chosen with weight `1 / (1 + its number of children)`. The ratio adapts: (0.5, 0.5)
//! below 10 experiments, (0.6, 0.4) below 50, then (0.3, 0.7) on a plateau (fewer than 2 of the
//! last 20 records are keeps within 1 % of the best) and (0.7, 0.3) otherwise.
//!
//! Unlike Python, the candidates are the frontier of this node's GPU class, restricted to
//! records made with the same harness and data and whose code this node has (the caller filters).

use rand::Rng;
use spore_spec::{ExperimentRecord, Status};

/// A frontier record the loop could build on.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub record: ExperimentRecord,
    /// Children of any status.
    pub children: usize,
}

/// What the adaptive ratio looks at.
#[derive(Debug, Clone, Default)]
pub struct GraphStats {
    pub total: u64,
    /// The 20 most recent records.
    pub recent: Vec<ExperimentRecord>,
}

/// How a parent was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Exploit,
    Explore,
}

/// The exploit probability for the current state of the graph.
pub fn exploit_ratio(stats: &GraphStats, best: f64) -> f64 {
    if stats.total < 10 {
        return 0.5;
    }
    if stats.total < 50 {
        return 0.6;
    }
    let good_keeps =
        stats.recent.iter().filter(|r| r.status == Status::Keep && r.val_bpb.as_f64() < best * 1.01).count();
    if good_keeps < 2 { 0.3 } else { 0.7 }
}

/// Picks a parent; `None` when there is no candidate.
pub fn select_parent<'a>(
    candidates: &'a [Candidate],
    stats: &GraphStats,
    rng: &mut impl Rng,
) -> Option<(&'a Candidate, Strategy)> {
    let best = candidates.iter().min_by(|a, b| a.record.val_bpb.as_f64().total_cmp(&b.record.val_bpb.as_f64()))?;
    if candidates.len() == 1 {
        return Some((best, Strategy::Exploit));
    }
    if rng.random::<f64>() < exploit_ratio(stats, best.record.val_bpb.as_f64()) {
        return Some((best, Strategy::Exploit));
    }
    let weights: Vec<f64> = candidates.iter().map(|c| 1.0 / (1.0 + c.children as f64)).collect();
    let total: f64 = weights.iter().sum();
    let mut point = rng.random::<f64>() * total;
    for (candidate, weight) in candidates.iter().zip(&weights) {
        if point < *weight {
            return Some((candidate, Strategy::Explore));
        }
        point -= weight;
    }
    candidates.last().map(|c| (c, Strategy::Explore))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn record(val: f64, status: Status) -> ExperimentRecord {
        crate::research::test_support::record("", val, status, "")
    }

    #[test]
    fn ratios_adapt_to_size_and_plateaus() {
        let mut stats = GraphStats { total: 5, recent: vec![] };
        assert_eq!(exploit_ratio(&stats, 1.0), 0.5);
        stats.total = 20;
        assert_eq!(exploit_ratio(&stats, 1.0), 0.6);
        stats.total = 100;
        stats.recent = vec![record(1.0, Status::Keep), record(2.0, Status::Keep)];
        assert_eq!(exploit_ratio(&stats, 1.0), 0.3, "one good keep in the window is a plateau");
        stats.recent.push(record(1.005, Status::Keep));
        assert_eq!(exploit_ratio(&stats, 1.0), 0.7);
    }

    #[test]
    fn exploits_the_best_and_explores_the_less_tried() {
        let candidates = vec![
            Candidate { record: record(1.0, Status::Keep), children: 9 },
            Candidate { record: record(1.1, Status::Keep), children: 0 },
            Candidate { record: record(1.2, Status::Keep), children: 99 },
        ];
        let stats = GraphStats { total: 5, recent: vec![] };
        let mut rng = StdRng::seed_from_u64(7);
        let mut picks = [0usize; 3];
        let mut exploits = 0;
        for _ in 0..4000 {
            let (c, strategy) = select_parent(&candidates, &stats, &mut rng).unwrap();
            let i = candidates.iter().position(|x| std::ptr::eq(x, c)).unwrap();
            picks[i] += 1;
            if strategy == Strategy::Exploit {
                exploits += 1;
                assert_eq!(i, 0);
            }
        }
        assert!((1800..2200).contains(&exploits), "{exploits}");
        // Explore weights 1/10, 1/1, 1/100: the untried record wins most explorations.
        assert!(picks[1] > 1600 && picks[2] < 100, "{picks:?}");
        assert!(select_parent(&[], &stats, &mut rng).is_none());
    }
}

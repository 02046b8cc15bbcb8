//! Which incoming records a node re-runs (§5.2 of the reference facts, kept): base rate 5 %;
//! ×3 for a publisher with a negative local score, ×2 for one below 5 (so every new node is
//! checked at 10 %); ×2 more for a claim below 0.9 bits per byte; each step capped at 1.
//! Changed from Python: crash records are never re-run (nothing is claimed), a node never
//! checks its own records (no reputation for checking oneself), and only records of the
//! checker's own GPU class are eligible (a re-run elsewhere proves nothing). Added: a record
//! that would become the best this node builds on is always re-run first — nobody builds on an
//! unchecked lie.

/// Python's base spot-check rate.
pub const BASE_RATE: f64 = 0.05;

/// What the decision needs to know about a record.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub publisher: &'a str,
    pub gpu_class: &'a str,
    pub val_bpb: f64,
    pub crashed: bool,
    /// It would beat everything on this node's frontier of its class.
    pub would_lead: bool,
}

/// The probability of re-running `record` for a node `me` of class `my_class`, given the
/// publisher's local score. `base` is the configured base rate (1.0 checks everything).
pub fn spot_check_rate(record: &Candidate<'_>, me: &str, my_class: &str, publisher_score: f64, base: f64) -> f64 {
    if record.crashed || record.publisher == me || record.gpu_class != my_class {
        return 0.0;
    }
    if record.would_lead {
        return 1.0;
    }
    let mut rate = base.clamp(0.0, 1.0);
    if publisher_score < 0.0 {
        rate = (rate * 3.0).min(1.0);
    } else if publisher_score < 5.0 {
        rate = (rate * 2.0).min(1.0);
    }
    if record.val_bpb < 0.9 {
        rate = (rate * 2.0).min(1.0);
    }
    rate
}

/// The decision, given a uniform draw in [0, 1).
pub fn should_spot_check(rate: f64, draw: f64) -> bool {
    draw < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(publisher: &str, val_bpb: f64) -> Candidate<'_> {
        Candidate { publisher, gpu_class: "H100", val_bpb, crashed: false, would_lead: false }
    }

    #[test]
    fn rates_follow_python_for_eligible_records() {
        let r = candidate("p", 1.0);
        assert_eq!(spot_check_rate(&r, "me", "H100", 10.0, BASE_RATE), 0.05);
        assert_eq!(spot_check_rate(&r, "me", "H100", 0.0, BASE_RATE), 0.1, "a new publisher");
        assert!((spot_check_rate(&r, "me", "H100", -1.0, BASE_RATE) - 0.15).abs() < 1e-12);
        let good = candidate("p", 0.8);
        assert!((spot_check_rate(&good, "me", "H100", -1.0, BASE_RATE) - 0.3).abs() < 1e-12);
        assert_eq!(spot_check_rate(&good, "me", "H100", -1.0, 0.5), 1.0, "capped");
        let leader = Candidate { would_lead: true, ..candidate("p", 1.0) };
        assert_eq!(spot_check_rate(&leader, "me", "H100", 50.0, BASE_RATE), 1.0, "checked before anyone builds on it");
    }

    #[test]
    fn crashes_own_records_and_other_classes_are_never_checked() {
        let crash = Candidate { crashed: true, ..candidate("p", 0.0) };
        assert_eq!(spot_check_rate(&crash, "me", "H100", -50.0, 1.0), 0.0, "Python checked crashes too");
        assert_eq!(spot_check_rate(&candidate("me", 0.5), "me", "H100", 0.0, 1.0), 0.0, "Python re-ran its own");
        assert_eq!(spot_check_rate(&candidate("p", 0.5), "me", "A100", 0.0, 1.0), 0.0);
        assert!(!should_spot_check(0.0, 0.0));
        assert!(should_spot_check(1.0, 0.999));
    }
}

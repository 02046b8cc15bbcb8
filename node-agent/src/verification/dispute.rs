//! A challenge's verdict, recomputed by every node from the signed events themselves — never
//! taken from a `dispute` message, whose sender could assert anything (the caveat of §15.4).
//!
//! Rules (§5.3 and §15.4, with the changes named): the values are the claim, the challenger's
//! re-run and every counted response; the ground truth is their median (mean of the two middle
//! ones for an even count); `|claim − median| > tolerance` rejects the record, otherwise the
//! claim is upheld. A challenge counts only when it verifies (signature, id, actor = signer),
//! is about this record, comes from a node of the record's GPU class that is not its publisher.
//! A response counts only when it verifies, answers this challenge, comes from an eligible node
//! of the class that is neither publisher nor challenger, and is that verifier's first (one
//! vote per verifier, where Python counted every message). Changed from 0.3.x's "three chosen
//! verifiers": every eligible verifier may answer and all answers count, so whoever picks the
//! verifiers cannot pick colluders, and a colluding minority cannot move the median; a verdict
//! needs a quorum of answers (the caller's `quorum`, at least one), so a challenger alone never
//! rejects anything.

use std::collections::HashSet;

use spore_spec::{ControlEvent, ControlKind, gpu_class};
use thiserror::Error;

/// The record under dispute, as its signed fields say.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub experiment_id: &'a str,
    pub publisher: &'a str,
    /// The class of the record's `gpu_model`.
    pub gpu_class: &'a str,
    pub val_bpb: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The claim stands (and counts as verified).
    Upheld,
    /// The claim is false: the record leaves the frontier.
    Rejected,
}

/// What the evidence decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub verdict: Verdict,
    pub ground_truth: f64,
    pub tolerance: f64,
    pub challenger: String,
    /// Counted verifiers whose re-run confirmed the claim.
    pub supporting: Vec<String>,
    /// Counted verifiers whose re-run did not.
    pub opposing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum DisputeError {
    #[error("the challenge does not count: {0}")]
    BadChallenge(String),
    #[error("{have} counted responses, the quorum is {need}")]
    NoQuorum { have: usize, need: usize },
}

/// The median of a non-empty list.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// Checks `challenge` against `claim`; returns the challenger's id and value.
pub fn check_challenge(claim: &Claim<'_>, challenge: &ControlEvent) -> Result<(String, f64), DisputeError> {
    let bad = |why: String| DisputeError::BadChallenge(why);
    challenge.verify().map_err(|e| bad(e.to_string()))?;
    if challenge.kind != ControlKind::Challenge {
        return Err(bad(format!("a {} event", challenge.kind.as_str())));
    }
    if challenge.experiment_id() != claim.experiment_id {
        return Err(bad("about another experiment".into()));
    }
    let challenger = challenge.actor().to_string();
    if challenger == claim.publisher {
        return Err(bad("the publisher challenging itself".into()));
    }
    let class = gpu_class(challenge.field("challenger_gpu").unwrap_or_default());
    if class != claim.gpu_class {
        return Err(bad(format!("a re-run on {class}, the record is {}", claim.gpu_class)));
    }
    let value = challenge.number("challenger_bpb").unwrap_or(f64::NAN);
    Ok((challenger, value))
}

/// The verdict on `claim` from a challenge and the responses received so far.
pub fn resolve(
    claim: &Claim<'_>,
    challenge: &ControlEvent,
    responses: &[ControlEvent],
    eligible: impl Fn(&str) -> bool,
    tolerance: f64,
    quorum: usize,
) -> Result<Resolution, DisputeError> {
    let (challenger, challenger_bpb) = check_challenge(claim, challenge)?;
    if !eligible(&challenger) {
        return Err(DisputeError::BadChallenge(format!("challenger {challenger} is not an eligible node")));
    }
    let mut voted = HashSet::new();
    let mut counted: Vec<(String, f64)> = Vec::new();
    for response in responses {
        let verifier = response.actor();
        let counts = response.kind == ControlKind::ChallengeResponse
            && response.verify().is_ok()
            && response.experiment_id() == claim.experiment_id
            && response.field("challenger_id") == Some(challenger.as_str())
            && verifier != claim.publisher
            && verifier != challenger
            && gpu_class(response.field("verifier_gpu").unwrap_or_default()) == claim.gpu_class
            && eligible(verifier);
        if counts && voted.insert(verifier.to_string()) {
            counted.push((verifier.to_string(), response.number("verifier_bpb").unwrap_or(f64::NAN)));
        }
    }
    let need = quorum.max(1);
    if counted.len() < need {
        return Err(DisputeError::NoQuorum { have: counted.len(), need });
    }
    let mut values = vec![claim.val_bpb, challenger_bpb];
    values.extend(counted.iter().map(|(_, v)| *v));
    let ground_truth = median(&mut values);
    let verdict = if (claim.val_bpb - ground_truth).abs() > tolerance { Verdict::Rejected } else { Verdict::Upheld };
    let (supporting, opposing): (Vec<_>, Vec<_>) =
        counted.into_iter().partition(|(_, v)| (v - claim.val_bpb).abs() <= tolerance);
    Ok(Resolution {
        verdict,
        ground_truth,
        tolerance,
        challenger,
        supporting: supporting.into_iter().map(|(id, _)| id).collect(),
        opposing: opposing.into_iter().map(|(id, _)| id).collect(),
    })
}

#[cfg(test)]
mod tests {
    use spore_spec::Identity;

    use super::*;

    fn ids(n: u8) -> Vec<Identity> {
        (1..=n).map(|i| Identity::from_seed([i; 32])).collect()
    }

    const EXP: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn honest_verifiers_reject_an_inflated_claim_and_a_colluding_minority_cannot_save_it() {
        let n = ids(6);
        let publisher = n[0].node_id();
        let claim = Claim { experiment_id: EXP, publisher: &publisher, gpu_class: "H100", val_bpb: 0.95 };
        let challenge = ControlEvent::challenge(&n[1], EXP, 1.0, "NVIDIA H100 80GB HBM3", 1);
        let challenger = n[1].node_id();
        let respond = |i: usize, v: f64| ControlEvent::response(&n[i], EXP, &challenger, v, "H100", 2);
        // One colluder answers with the claim, two honest verifiers with the truth.
        let responses = [respond(2, 0.95), respond(3, 1.0005), respond(4, 0.9998)];
        let r = resolve(&claim, &challenge, &responses, |_| true, 0.0015, 3).unwrap();
        assert_eq!(r.verdict, Verdict::Rejected);
        assert_eq!(r.ground_truth, 0.9998);
        assert_eq!(r.supporting, [n[2].node_id()]);
        assert_eq!(r.opposing, [n[3].node_id(), n[4].node_id()]);
    }

    #[test]
    fn a_forged_challenge_against_an_honest_claim_is_upheld() {
        let n = ids(5);
        let publisher = n[0].node_id();
        let claim = Claim { experiment_id: EXP, publisher: &publisher, gpu_class: "H100", val_bpb: 1.0 };
        let challenge = ControlEvent::challenge(&n[1], EXP, 1.3, "H100", 1);
        let challenger = n[1].node_id();
        let responses: Vec<_> =
            (2..5).map(|i| ControlEvent::response(&n[i], EXP, &challenger, 1.0 + i as f64 * 1e-4, "H100", 2)).collect();
        let r = resolve(&claim, &challenge, &responses, |_| true, 0.0015, 3).unwrap();
        assert_eq!(r.verdict, Verdict::Upheld);
        assert_eq!(r.supporting.len(), 3);
    }

    #[test]
    fn votes_that_do_not_count_are_not_counted() {
        let n = ids(6);
        let publisher = n[0].node_id();
        let claim = Claim { experiment_id: EXP, publisher: &publisher, gpu_class: "H100", val_bpb: 0.9 };
        let challenge = ControlEvent::challenge(&n[1], EXP, 1.0, "H100", 1);
        let challenger = n[1].node_id();
        let mut responses = vec![
            // The publisher and the challenger voting for themselves.
            ControlEvent::response(&n[0], EXP, &challenger, 0.9, "H100", 2),
            ControlEvent::response(&n[1], EXP, &challenger, 1.0, "H100", 2),
            // Another class, another challenge, an ineligible node.
            ControlEvent::response(&n[2], EXP, &challenger, 0.9, "RTX_4090", 2),
            ControlEvent::response(&n[3], EXP, &n[5].node_id(), 0.9, "H100", 2),
            ControlEvent::response(&n[5], EXP, &challenger, 0.9, "H100", 2),
            // One real vote, repeated.
            ControlEvent::response(&n[4], EXP, &challenger, 1.0, "H100", 2),
            ControlEvent::response(&n[4], EXP, &challenger, 1.0, "H100", 3),
        ];
        // A tampered copy of a real vote.
        let mut tampered = ControlEvent::response(&n[2], EXP, &challenger, 0.9, "H100", 2);
        tampered.payload.iter_mut().find(|(k, _)| k == "verifier_bpb").unwrap().1 =
            spore_spec::json::Value::Number(spore_spec::JsonNumber::Float(0.91));
        responses.push(tampered);
        let banned = n[5].node_id();
        let eligible = |id: &str| id != banned;
        assert_eq!(
            resolve(&claim, &challenge, &responses, eligible, 0.002, 2),
            Err(DisputeError::NoQuorum { have: 1, need: 2 })
        );
        let r = resolve(&claim, &challenge, &responses, eligible, 0.002, 1).unwrap();
        assert_eq!((r.opposing.clone(), r.supporting.len()), (vec![n[4].node_id()], 0));
        // [0.9, 1.0, 1.0] → median 1.0: rejected.
        assert_eq!(r.verdict, Verdict::Rejected);
        // The publisher cannot challenge; a wrong-class challenge does not count.
        let own = ControlEvent::challenge(&n[0], EXP, 1.0, "H100", 1);
        assert!(matches!(resolve(&claim, &own, &[], |_| true, 0.002, 0), Err(DisputeError::BadChallenge(_))));
        let other = ControlEvent::challenge(&n[1], EXP, 1.0, "A100", 1);
        assert!(matches!(resolve(&claim, &other, &[], |_| true, 0.002, 0), Err(DisputeError::BadChallenge(_))));
    }
}

//! Signed control events cannot fill the store: a repeat of a stored `event_id` is dropped
//! before its signature is checked, and one experiment keeps at most `MAX_PER_EXPERIMENT`.

use spore_spec::ControlEvent;

use super::*;
use crate::protocol::control::MAX_PER_EXPERIMENT;

#[test]
fn made_up_keys_cannot_pile_events_on_one_experiment_and_repeats_are_not_verified() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    let exp = "e".repeat(64);
    let challenger = Identity::from_seed([3; 32]).node_id();
    for n in 0..(MAX_PER_EXPERIMENT + 44) {
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        let vote = ControlEvent::response(&Identity::from_seed(seed), &exp, &challenger, 1.0, "H100", 5);
        on(&mut core, 1, frame(&Message::Signed(Box::new(vote))));
    }
    assert_eq!(core.store().controls_for(&exp).unwrap().len() as u64, MAX_PER_EXPERIMENT);
    assert_eq!(core.stats().controls_rejected, 44);
    // A stored event's id with a changed body is a duplicate, dropped unverified: no points
    // (verifying it would cost a signature check for nothing).
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&0u64.to_le_bytes());
    let mut changed = ControlEvent::response(&Identity::from_seed(seed), &exp, &challenger, 1.0, "H100", 5);
    changed.timestamp += 1;
    on(&mut core, 1, frame(&Message::Signed(Box::new(changed))));
    assert_eq!(core.stats().controls_duplicate, 1);
    assert!(core.peers().any(|(p, s)| *p == 1 && s.misbehaviour == 0));
}

//! Signed control events through the mesh: stored once per `event_id` (the first wins, so
//! nobody replaces a challenge or a vote; a repeat is dropped before its signature is checked),
//! verified (signature, id, actor = signer), relayed to every peer but the source, and replayed
//! to nobody who has them. At most [`MAX_PER_EXPERIMENT`] events are kept about one experiment
//! and [`MAX_PER_ACTOR`] from one signer, so keys made up by the thousand cannot fill the store.
//! A forged event costs its sender misbehaviour points, as a forged record does. Events come in
//! two forms: ours (the 0.1.2 fields beside the envelope under `signed`, which 0.1.2 peers read)
//! and 0.3.10's native one (the payload is the envelope), which Python 0.3.10 and later send and
//! read exclusively; each peer is sent the form it reads. Unsigned 0.1.2
//! challenges, responses and disputes are hints: they are neither stored nor relayed and change
//! nothing.

use bytes::Bytes;
use spore_spec::{ControlEvent, Message};

use super::{PeerId, Protocol};
use crate::store::StoreError;

/// Misbehaviour points for a control event that does not verify.
const FORGED_CONTROL_POINTS: u32 = 20;
/// Events kept about one experiment: a challenge, its responses, verifications and a dispute
/// from far more verifiers than a quorum needs.
pub const MAX_PER_EXPERIMENT: u64 = 256;
/// Events kept from one signer (a busy verifier signs a few thousand in a year).
pub const MAX_PER_ACTOR: u64 = 100_000;

impl Protocol {
    /// A signed event from `peer` (or from this node, `PeerId::MAX`).
    pub(super) fn on_control(&mut self, peer: PeerId, event: ControlEvent) -> Result<(), StoreError> {
        if peer != PeerId::MAX && self.ingest_paused() {
            // Its store is paused ([`super::store_pause`]); the event comes again with a sync.
            self.stats.controls_rejected += 1;
            return Ok(());
        }
        if self.store.has_control(event.event_id())? {
            self.stats.controls_duplicate += 1;
            return Ok(());
        }
        if let Err(e) = event.verify() {
            self.stats.controls_rejected += 1;
            tracing::debug!(peer, error = %e, "control event refused");
            self.punish(peer, FORGED_CONTROL_POINTS, &format!("forged control event: {e}"));
            return Ok(());
        }
        let (about, by) = self.store.control_counts(event.experiment_id(), event.actor())?;
        if about >= MAX_PER_EXPERIMENT || by >= MAX_PER_ACTOR {
            self.stats.controls_rejected += 1;
            tracing::debug!(peer, event_id = %event.event_id(), "control event over its experiment's or signer's cap");
            return Ok(());
        }
        if !self.store.insert_control(&event, self.unix_now)? {
            self.stats.controls_duplicate += 1;
            return Ok(());
        }
        self.stats.controls_accepted += 1;
        let targets: Vec<PeerId> = self.peers.keys().copied().filter(|p| *p != peer && self.may_tell(*p)).collect();
        let native = |p: &PeerId| self.peers.get(p).is_some_and(|s| s.native_controls);
        let (native_targets, extended_targets): (Vec<PeerId>, Vec<PeerId>) = targets.into_iter().partition(native);
        let event = Box::new(event);
        if !extended_targets.is_empty() {
            let body = Bytes::from(Message::Signed(event.clone()).encode_body());
            for target in extended_targets {
                self.send_body(target, body.clone());
            }
        }
        if !native_targets.is_empty() {
            let body = Bytes::from(Message::Control(event).encode_body());
            for target in native_targets {
                self.send_body(target, body.clone());
            }
        }
        Ok(())
    }
}

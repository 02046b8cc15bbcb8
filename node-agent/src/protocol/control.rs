//! Signed control events through the mesh: verified (signature, id, actor = signer), stored
//! once per `event_id` (the first wins, so nobody replaces a challenge or a vote), relayed to
//! every peer but the source, and replayed to nobody who has them. A forged event costs its
//! sender misbehaviour points, as a forged record does. Unsigned 0.1.2 challenges, responses
//! and disputes are hints: they are neither stored nor relayed and change nothing.

use bytes::Bytes;
use spore_spec::{ControlEvent, Message};

use super::{PeerId, Protocol};
use crate::store::StoreError;

/// Misbehaviour points for a control event that does not verify.
const FORGED_CONTROL_POINTS: u32 = 20;

impl Protocol {
    /// A signed event from `peer` (or from this node, `PeerId::MAX`).
    pub(super) fn on_control(&mut self, peer: PeerId, event: ControlEvent) -> Result<(), StoreError> {
        if let Err(e) = event.verify() {
            self.stats.controls_rejected += 1;
            tracing::debug!(peer, error = %e, "control event refused");
            self.punish(peer, FORGED_CONTROL_POINTS, &format!("forged control event: {e}"));
            return Ok(());
        }
        if !self.store.insert_control(&event, self.unix_now)? {
            self.stats.controls_duplicate += 1;
            return Ok(());
        }
        self.stats.controls_accepted += 1;
        let body = Bytes::from(Message::Signed(Box::new(event)).encode_body());
        let targets: Vec<PeerId> = self.peers.keys().copied().filter(|p| *p != peer && self.may_tell(*p)).collect();
        for target in targets {
            self.send_body(target, body.clone());
        }
        Ok(())
    }
}

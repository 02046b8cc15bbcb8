//! Which Python release a peer runs, learned from what it sends, and what that changes.
//!
//! A Python peer says no `hello`, and a 0.1.2 node disconnects on a record with `task_id`, so
//! such a record goes to a Python peer only once it has shown it is 0.5.0 or later: by sending a
//! record with `task_id` or any `task…` message. To learn that early, a peer that has said no
//! `hello` by the end of the hello wait is sent `task_sync_request` and `control_sync_request`
//! once (0.1.2 ignores both; 0.5.0 answers with its task manifests — which we keep, see `tasks.rs` —
//! and `task_sync_response`, and
//! 0.3.10 and later with their signed control events, which we then keep). Until then its records
//! are withheld (see `body_for`); when it turns out to take them, what it was not sent is sent
//! again, as a sync answer from the oldest withheld record's timestamp, charged like any answer.

use spore_spec::json::Value;
use spore_spec::{JsonNumber, Message};

use super::sync::SyncServe;
use super::{PeerId, Protocol};
use crate::store::StoreError;

impl Protocol {
    /// `peer` showed it is 0.5.0 or later: it takes records with `task_id` and reads control
    /// events in the native form; what it was not sent is sent now.
    pub(super) fn learned_newer_release(&mut self, peer: PeerId) -> Result<(), StoreError> {
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        state.takes_task_id = true;
        state.native_controls = true;
        self.resend_withheld(peer)
    }

    /// A record of `timestamp` was not sent to `peer`.
    pub(super) fn note_withheld(&mut self, peer: PeerId, timestamp: JsonNumber) {
        let timestamp = timestamp.as_i64().unwrap_or_else(|| timestamp.as_f64().floor() as i64);
        if let Some(state) = self.peers.get_mut(&peer) {
            state.withheld_since = Some(state.withheld_since.map_or(timestamp, |t| t.min(timestamp)));
        }
    }

    /// Queues an answer of what `peer` was not sent, once it takes it and no answer to it is
    /// under way (one under way sends the rest; this runs again when it ends).
    pub(super) fn resend_withheld(&mut self, peer: PeerId) -> Result<(), StoreError> {
        if !self.takes_task_id(peer) || self.serving.contains_key(&peer) {
            return Ok(());
        }
        let Some(since) = self.peers.get_mut(&peer).and_then(|p| p.withheld_since.take()) else { return Ok(()) };
        tracing::debug!(peer, since, "sending the records withheld from a newer Python peer");
        self.serving.insert(peer, SyncServe::ordered(since));
        self.sync_queue.push_back(peer);
        self.start_queued_syncs()
    }

    /// Sends the release probes to `peer` once.
    pub(super) fn probe_release(&mut self, peer: PeerId) -> Result<(), StoreError> {
        let Some(state) = self.peers.get_mut(&peer).filter(|p| !p.release_probed) else { return Ok(()) };
        state.release_probed = true;
        let since = |n: i64| Value::Object(vec![("since".into(), Value::Number(JsonNumber::from(n)))]);
        let newest_task = self.store.latest_task_timestamp()?.unwrap_or(0);
        let task = Message::Unknown { message_type: "task_sync_request".into(), payload: since(newest_task) };
        let latest = self.store.latest_control_timestamp()?.unwrap_or(0);
        let control = Message::Unknown { message_type: "control_sync_request".into(), payload: since(latest) };
        self.send(peer, &task);
        self.send(peer, &control);
        Ok(())
    }
}

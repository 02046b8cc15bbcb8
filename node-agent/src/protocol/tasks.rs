//! Task manifests (`sporemesh` 0.5.0 and later): verified, stored once, relayed to the peers that
//! read them, and served in a task sync.
//!
//! A manifest is checked as Python checks it (its `task_id` is the hash of its fields, `created_by`
//! signed them) and, beyond Python, refused when a Python peer would fail on it (an unknown key,
//! a missing field, a wrong type), so a relay never breaks a Python connection. A forged one costs
//! its sender the points of a forged control event; a malformed one is dropped unpunished (a
//! later release may add a field). Each creator has at most [`MAX_TASKS_PER_CREATOR`] stored.
//! A manifest goes only to peers that take task ids (our nodes, and Python peers that showed they
//! are 0.5.0 or later): an older node has no use for it. Across the bridge a manifest goes where
//! a record from the same side would (the export policy), and none comes in with import `none`. A `task_sync_request {since}` gets the
//! stored manifests stamped after `since` (at most [`MAX_TASK_SYNC`], charged to the asker), then
//! `task_sync_response {since, count}`; a repeat within `min_sync_interval` is dropped unpunished.
//! Our nodes ask each other for every manifest with the first record sync of a connection.

use bytes::Bytes;
use spore_spec::json::Value;
use spore_spec::{JsonNumber, Message, TaskError, TaskManifest};

use super::ingest::TASK_ID_CAPABILITY;
use super::{PeerId, Protocol};
use crate::store::StoreError;

/// Manifests stored per creator: one key cannot fill the store with tasks.
pub const MAX_TASKS_PER_CREATOR: u64 = 1_000;
/// Manifests sent in answer to one task sync.
pub const MAX_TASK_SYNC: usize = 4_096;
/// Points a forged manifest costs its sender (as a forged control event).
const FORGED_TASK_POINTS: u32 = 20;

impl Protocol {
    pub(super) fn on_task(&mut self, peer: PeerId, payload: &Value) -> Result<(), StoreError> {
        // Only 0.5.0 and later (and our nodes) send tasks.
        self.learned_newer_release(peer)?;
        let from_public = self.is_public(peer);
        if self.ingest_paused() || (from_public && !self.may_ask(peer)) {
            self.stats.tasks_rejected += 1;
            return Ok(());
        }
        let manifest = match TaskManifest::from_value(payload) {
            Ok(manifest) => manifest,
            Err(e) => {
                self.stats.tasks_rejected += 1;
                tracing::debug!(peer, error = %e, "task manifest dropped");
                return Ok(());
            }
        };
        if self.store.has_task(&manifest.task_id)? {
            return Ok(());
        }
        if let Err(e) = manifest.verify() {
            self.stats.tasks_rejected += 1;
            let forged = matches!(e, TaskError::TaskId { .. } | TaskError::Signature(_));
            tracing::debug!(peer, error = %e, "task manifest refused");
            if forged {
                self.punish(peer, FORGED_TASK_POINTS, &format!("forged task manifest: {e}"));
            }
            return Ok(());
        }
        if self.store.task_count_by(&manifest.created_by)? >= MAX_TASKS_PER_CREATOR {
            self.stats.tasks_rejected += 1;
            tracing::debug!(peer, creator = %manifest.created_by, "task manifest over its creator's cap");
            return Ok(());
        }
        if !self.store.insert_task(&manifest, self.unix_now, from_public)? {
            return Ok(());
        }
        self.stats.tasks_accepted += 1;
        tracing::debug!(peer, task_id = %manifest.task_id, from_public, "task manifest stored");
        let body = Bytes::from(task_message(&manifest).encode_body());
        let targets: Vec<PeerId> = self
            .peers
            .keys()
            .copied()
            .filter(|p| *p != peer && self.may_export(*p, from_public) && self.takes_task_id(*p))
            .collect();
        for target in targets {
            self.send_body(target, body.clone());
        }
        Ok(())
    }

    pub(super) fn on_task_sync_request(&mut self, peer: PeerId, payload: &Value) -> Result<(), StoreError> {
        // Only 0.5.0 and later ask for tasks: such a peer takes task ids and native events.
        self.learned_newer_release(peer)?;
        let (now, min_interval) = (self.now, self.config.min_sync_interval.as_millis() as u64);
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        if state.last_task_sync.is_some_and(|last| now.saturating_sub(last) < min_interval) {
            self.stats.drop_message(super::refusal::MessageDrop::SyncTooOften);
            return Ok(());
        }
        state.last_task_sync = Some(now);
        let since = match payload.get("since") {
            Some(Value::Number(n)) => n.clone(),
            _ => JsonNumber::from(0),
        };
        let after =
            since.as_i64().unwrap_or_else(|| since.as_f64().floor().clamp(i64::MIN as f64, i64::MAX as f64) as i64);
        let mut count = 0i64;
        if !self.may_tell(peer) {
            return Ok(());
        }
        let imported = self.may_export(peer, true);
        for manifest in self.store.tasks_since(after, MAX_TASK_SYNC, imported)? {
            if !self.answer(peer, Bytes::from(task_message(&manifest).encode_body())) {
                break;
            }
            count += 1;
        }
        let end = Value::Object(vec![
            ("since".into(), Value::Number(since)),
            ("count".into(), Value::Number(JsonNumber::from(count))),
        ]);
        self.send(peer, &Message::Unknown { message_type: "task_sync_response".into(), payload: end });
        Ok(())
    }
}

impl Protocol {
    /// Asks one of our nodes for its manifests with the first record sync of a connection: from
    /// the start (a creator's timestamp is no cursor to trust), answered at most
    /// [`MAX_TASK_SYNC`] at a time. Later manifests come relayed, so resyncs ask for none.
    pub(super) fn request_tasks(&mut self, peer: PeerId) {
        let Some(state) = self.peers.get_mut(&peer) else { return };
        if state.tasks_requested || state.hello.is_none() || !state.has_capability(TASK_ID_CAPABILITY) {
            return;
        }
        state.tasks_requested = true;
        let payload = Value::Object(vec![("since".into(), Value::Number(JsonNumber::from(0)))]);
        self.send(peer, &Message::Unknown { message_type: "task_sync_request".into(), payload });
    }
}

/// The `task` message of a manifest.
pub(super) fn task_message(manifest: &TaskManifest) -> Message {
    Message::Unknown { message_type: "task".into(), payload: manifest.to_value() }
}

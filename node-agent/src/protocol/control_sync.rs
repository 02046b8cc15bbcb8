//! Control sync as Python 0.2.8 and later ask for it, served.
//!
//! A `control_sync_request {since}` is answered with the stored signed events whose timestamp is
//! after `since` (Python's `>`), oldest first, each in the form the asker reads (0.3.10's native
//! envelope or our extended form, as [`super::control`] relays them), then the end marker
//! `control_sync_response {since, count}` (a task sync is answered in `tasks.rs`). Events are
//! charged to the asker like every answer, at most [`MAX_CONTROL_SYNC`] per request, and a
//! control sync is taken at most once per
//! `min_sync_interval` per peer (a repeat is dropped as `sync_too_often`, unpunished: Python
//! repeats them on a timer).

use bytes::Bytes;
use spore_spec::json::Value;
use spore_spec::{JsonNumber, Message};

use super::refusal::MessageDrop;
use super::{PeerId, Protocol};
use crate::store::StoreError;

/// Events sent in answer to one request.
pub const MAX_CONTROL_SYNC: usize = 4096;

impl Protocol {
    /// Whether `peer` may have another control sync answered now (and notes it).
    fn control_sync_due(&mut self, peer: PeerId) -> bool {
        let (now, min_interval) = (self.now, self.config.min_sync_interval.as_millis() as u64);
        let Some(state) = self.peers.get_mut(&peer) else { return false };
        if state.last_control_sync.is_some_and(|last| now.saturating_sub(last) < min_interval) {
            self.stats.drop_message(MessageDrop::SyncTooOften);
            return false;
        }
        state.last_control_sync = Some(now);
        true
    }

    pub(super) fn on_control_sync_request(&mut self, peer: PeerId, payload: &Value) -> Result<(), StoreError> {
        if !self.control_sync_due(peer) {
            return Ok(());
        }
        if self.serve_controls_by_row(peer, payload)? {
            return Ok(());
        }
        let since = since(payload);
        let after =
            since.as_i64().unwrap_or_else(|| since.as_f64().floor().clamp(i64::MIN as f64, i64::MAX as f64) as i64);
        // Python asks from 0.2.8 on, and 0.3.10 (the oldest the mesh runs) and later read only
        // the native form: a peer without `hello` gets it even before it showed its release.
        let native = self.peers.get(&peer).is_some_and(|p| p.native_controls || p.hello.is_none());
        let mut count = 0u64;
        for event in self.store.controls_since(after, MAX_CONTROL_SYNC)? {
            let event = Box::new(event);
            let message = if native { Message::Control(event) } else { Message::Signed(event) };
            if !self.answer(peer, Bytes::from(message.encode_body())) {
                break;
            }
            count += 1;
        }
        self.send(peer, &end_marker("control_sync_response", since, count));
        Ok(())
    }
}

/// The request's `since` as it came (Python echoes it), 0 when absent or not a number.
fn since(payload: &Value) -> JsonNumber {
    match payload.get("since") {
        Some(Value::Number(n)) => n.clone(),
        _ => JsonNumber::from(0),
    }
}

/// `{since, count}`, the end of a sync answer.
fn end_marker(message_type: &str, since: JsonNumber, count: u64) -> Message {
    let payload = Value::Object(vec![
        ("since".into(), Value::Number(since)),
        ("count".into(), Value::Number(JsonNumber::from(count as i64))),
    ]);
    Message::Unknown { message_type: message_type.into(), payload }
}

//! Control events between our nodes, caught up by the server's arrival order.
//!
//! Python's control sync asks for events stamped after a timestamp the signers chose, so an
//! event signed with an old timestamp, or by a clock behind, never reaches a node that asked
//! later. Between our nodes (`control-seq` in `hello`) the asker instead names the last row of
//! the server's event table it has seen: `control_sync_request {since: 0, after_rowid: N}` gets
//! every event the server stored after row N, whatever its timestamp (at most
//! [`super::control_sync::MAX_CONTROL_SYNC`], the rest at the next resync), and the end marker
//! carries `last_rowid`. The asker keeps that cursor per peer node only when the peer proved
//! its id (as the record cursor), so a node that was offline during a dispute fetches exactly
//! the evidence it missed when it comes back, and recomputes the same verdict.

use bytes::Bytes;
use spore_spec::json::Value;
use spore_spec::{JsonNumber, Message};

use super::{PeerId, Protocol};
use crate::store::StoreError;

/// The `hello` capability: it serves and asks for control events by row.
pub const CONTROL_SEQ: &str = "control-seq";

/// The key of a peer node's control cursor among the sync cursors.
fn cursor_key(node_id: &str) -> String {
    format!("control:{node_id}")
}

fn integer(payload: &Value, key: &str) -> Option<i64> {
    match payload.get(key) {
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 0),
        _ => None,
    }
}

impl Protocol {
    /// Asks `peer`, if it is ours and speaks `control-seq`, for the events after our cursor.
    pub(super) fn request_controls(&mut self, peer: PeerId) -> Result<(), StoreError> {
        let Some(state) = self.peers.get(&peer).filter(|p| p.has_capability(CONTROL_SEQ)) else { return Ok(()) };
        // Read for the node it claims, as the record cursor is: only a proven node moves it.
        let after = match &state.hello {
            Some(hello) => self.store.sync_cursor(&cursor_key(&hello.node_id))?.unwrap_or(0),
            None => 0,
        };
        let payload = Value::Object(vec![
            ("since".into(), Value::Number(JsonNumber::from(0))),
            ("after_rowid".into(), Value::Number(JsonNumber::from(after))),
        ]);
        self.send(peer, &Message::Unknown { message_type: "control_sync_request".into(), payload });
        Ok(())
    }

    /// Answers a request by row (`after_rowid`); false when the request is by timestamp.
    pub(super) fn serve_controls_by_row(&mut self, peer: PeerId, payload: &Value) -> Result<bool, StoreError> {
        let Some(after) = integer(payload, "after_rowid") else { return Ok(false) };
        let native = self.peers.get(&peer).is_some_and(|p| p.native_controls);
        let (mut count, mut last) = (0i64, after);
        for (rowid, event) in self.store.controls_after(after, super::control_sync::MAX_CONTROL_SYNC)? {
            let event = Box::new(event);
            let message = if native { Message::Control(event) } else { Message::Signed(event) };
            if !self.answer(peer, Bytes::from(message.encode_body())) {
                break;
            }
            (count, last) = (count + 1, rowid);
        }
        let end = Value::Object(vec![
            ("since".into(), Value::Number(JsonNumber::from(0))),
            ("count".into(), Value::Number(JsonNumber::from(count))),
            ("last_rowid".into(), Value::Number(JsonNumber::from(last))),
        ]);
        self.send(peer, &Message::Unknown { message_type: "control_sync_response".into(), payload: end });
        Ok(true)
    }

    /// The end of an answer: a proven peer node's `last_rowid` becomes our cursor for it.
    pub(super) fn on_control_sync_response(&mut self, peer: PeerId, payload: &Value) -> Result<(), StoreError> {
        let Some(last) = integer(payload, "last_rowid") else { return Ok(()) };
        let Some(state) = self.peers.get(&peer) else { return Ok(()) };
        if let (Some(hello), true) = (&state.hello, state.authenticated && state.has_capability(CONTROL_SEQ)) {
            let key = cursor_key(&hello.node_id);
            // Events refused while the store was paused come again: the cursor stays.
            if !self.ingest_paused() {
                self.store.set_sync_cursor(&key, last)?;
            }
        }
        Ok(())
    }
}

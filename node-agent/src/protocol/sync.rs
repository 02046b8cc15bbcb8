//! Sync: asking peers for their records, and answering them page by page.
//!
//! A 0.1.2 peer is asked `since=0` (it can do nothing else) and answers with every record.
//! A peer of ours is asked for what it stored after the `last_seq` it told us last time, so a
//! reconnect costs what changed, not the whole history. Answers go out one page at a time: the
//! next page is read from the store only when the driver reports the previous one written
//! (`Event::Drained` with a count at or past the page's end), so a slow reader holds a cursor,
//! not a queue of records. A
//! `sync_response {since, count, last_seq}` marks the end.

use spore_spec::{JsonNumber, Message};

use super::{Millis, PeerId, Protocol};
use crate::store::{StoreError, SyncCursor};

/// Where an answer in progress stands.
#[derive(Debug, Clone)]
pub(super) struct SyncServe {
    since: i64,
    position: Position,
    sent: u64,
    started: bool,
    /// The peer's `enqueued` count once the last page was queued: the next page waits until
    /// the driver has written that many bodies, so one page at most is in flight.
    page_end: u64,
    /// When its first page went out.
    started_at: Millis,
    /// When its last page went out: a reader that takes longer than `sync_stall` to read a
    /// page loses its slot (one of `max_concurrent_sync_serves`) and its connection.
    page_at: Millis,
}

impl SyncServe {
    /// An answer in 0.1.2 order of the records stamped `since` or later, not started yet.
    pub(super) fn ordered(since: i64) -> SyncServe {
        SyncServe {
            since,
            position: Position::Ordered(None),
            sent: 0,
            started: false,
            page_end: 0,
            started_at: 0,
            page_at: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Position {
    /// 0.1.2 order: parents first (depth, timestamp).
    Ordered(Option<SyncCursor>),
    /// Our order: local arrival after a sequence number.
    AfterSeq(i64),
}

impl Protocol {
    /// Sends `sync_request`: with our cursor if the peer speaks `sync-seq`, else `since=0`.
    pub(super) fn request_sync(&mut self, peer: PeerId) -> Result<(), StoreError> {
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        state.sync_requested_at = Some(self.now);
        let node_id = state.hello.as_ref().filter(|_| state.has_capability("sync-seq")).map(|h| h.node_id.clone());
        let after_seq = match node_id {
            Some(node_id) => Some(self.store.sync_cursor(&node_id)?.unwrap_or(0).max(0) as u64),
            None => None,
        };
        self.send(peer, &Message::SyncRequest { since: JsonNumber::from(0), after_seq });
        // Our peers are asked for the control events and tasks we missed at the same times.
        self.request_tasks(peer);
        self.request_controls(peer)
    }

    pub(super) fn on_sync_request(
        &mut self,
        peer: PeerId,
        since: &JsonNumber,
        after_seq: Option<u64>,
    ) -> Result<(), StoreError> {
        let now = self.now;
        let min_interval = self.config.min_sync_interval.as_millis() as u64;
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        // Python compares `timestamp >= since` with whatever number it got.
        let since =
            since.as_i64().unwrap_or_else(|| since.as_f64().ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i64);
        let too_soon = state.last_sync_request.is_some_and(|last| now.saturating_sub(last) < min_interval);
        if too_soon || self.serving.contains_key(&peer) || self.sync_queue.contains(&peer) {
            self.stats.drop_message(super::refusal::MessageDrop::SyncTooOften);
            self.punish(peer, 5, "sync requests too often");
            return Ok(());
        }
        state.last_sync_request = Some(now);
        let position = match after_seq {
            Some(seq) => Position::AfterSeq(i64::try_from(seq).unwrap_or(i64::MAX)),
            None => Position::Ordered(None),
        };
        self.serving.insert(
            peer,
            SyncServe { since, position, sent: 0, started: false, page_end: 0, started_at: 0, page_at: 0 },
        );
        self.sync_queue.push_back(peer);
        self.start_queued_syncs()
    }

    /// Starts queued answers (their first page goes out now) while there is room for them.
    pub(super) fn start_queued_syncs(&mut self) -> Result<(), StoreError> {
        let active = self.serving.values().filter(|s| s.started).count();
        let room = self.config.max_concurrent_sync_serves.saturating_sub(active);
        for _ in 0..room {
            let Some(peer) = self.sync_queue.pop_front() else { break };
            if let Some(serve) = self.serving.get_mut(&peer) {
                serve.started = true;
                serve.started_at = self.now;
                self.continue_sync(peer)?;
            }
        }
        Ok(())
    }

    /// Sends the next page of an answer, or its end marker.
    pub(super) fn continue_sync(&mut self, peer: PeerId) -> Result<(), StoreError> {
        // A page the bridge's export policy filtered to nothing queues nothing that could
        // drain: read on until something goes out or the answer ends.
        while self.next_sync_page(peer)? == Some(0) {}
        Ok(())
    }

    /// Queues the next page (returning how many records went out) or the end marker (`None`).
    fn next_sync_page(&mut self, peer: PeerId) -> Result<Option<u64>, StoreError> {
        let Some(serve) = self.serving.get(&peer).cloned() else { return Ok(None) };
        if !serve.started {
            return Ok(None);
        }
        let batch = self.config.sync_batch;
        let (payloads, next) = match serve.position {
            Position::Ordered(cursor) => {
                let page = self.store.sync_page(serve.since, cursor, batch)?;
                let next = page.last().map(|(c, _)| Position::Ordered(Some(*c)));
                (page.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), next)
            }
            Position::AfterSeq(seq) => {
                let page = self.store.page_after_seq(seq, batch)?;
                let next = page.last().map(|(s, _)| Position::AfterSeq(*s));
                (page.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), next)
            }
        };
        let Some(next) = next else {
            self.serving.remove(&peer);
            let last_seq = Some(self.store.last_seq()?.max(0) as u64);
            let done = Message::SyncResponse { since: JsonNumber::from(serve.since), count: serve.sent, last_seq };
            self.send(peer, &done);
            self.stats.syncs_served += 1;
            self.stats.sync_served_millis += self.now.saturating_sub(serve.started_at);
            self.resend_withheld(peer)?;
            self.start_queued_syncs()?;
            return Ok(None);
        };
        let mut sent = 0;
        for payload in payloads {
            if self.is_public(peer) && !self.exportable(peer, &payload)? {
                continue;
            }
            let Some(body) = self.body_for(peer, &payload) else { continue };
            sent += 1;
            self.send_body(peer, body);
        }
        let page_end = self.peers.get(&peer).map_or(0, |p| p.enqueued);
        if let Some(serve) = self.serving.get_mut(&peer) {
            serve.position = next;
            serve.sent += sent;
            serve.page_end = page_end;
            serve.page_at = self.now;
        }
        Ok(Some(sent))
    }

    /// Whether a stored record may go to public `peer` in a sync answer.
    fn exportable(&self, peer: PeerId, payload: &str) -> Result<bool, StoreError> {
        let Ok(record) = spore_spec::ExperimentRecord::from_json(payload) else { return Ok(false) };
        Ok(self.may_export(peer, self.store.is_imported(&record.id)?))
    }

    /// Ends the answers whose reader has not taken a page for `sync_stall`: their slots go to
    /// the next in line.
    pub(super) fn end_stalled_syncs(&mut self) -> Result<(), StoreError> {
        let stall = self.config.sync_stall.as_millis() as Millis;
        let now = self.now;
        let stalled: Vec<PeerId> = self
            .serving
            .iter()
            .filter(|(_, serve)| serve.started && now.saturating_sub(serve.page_at) > stall)
            .map(|(peer, _)| *peer)
            .collect();
        if stalled.is_empty() {
            return Ok(());
        }
        for peer in stalled {
            self.stats.syncs_stalled += 1;
            self.serving.remove(&peer);
            self.disconnect(peer, "too slow to read a sync answer");
        }
        self.start_queued_syncs()
    }

    /// The driver wrote `written` bodies to `peer` so far: send the next page if the last one
    /// is out.
    pub(super) fn on_drained(&mut self, peer: PeerId, written: u64) -> Result<(), StoreError> {
        match self.serving.get(&peer) {
            Some(serve) if serve.started && written >= serve.page_end => self.continue_sync(peer),
            _ => Ok(()),
        }
    }

    /// A peer of ours finished answering: remember where its store stood.
    pub(super) fn on_sync_response(&mut self, peer: PeerId, last_seq: Option<u64>) -> Result<(), StoreError> {
        self.flush()?;
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        // Records of this answer refused for a paused store are asked for again next time.
        let complete = !std::mem::take(&mut state.refused_for_pause);
        if let Some(asked_at) = state.sync_requested_at {
            self.stats.syncs_received += 1;
            self.stats.sync_received_millis += self.now.saturating_sub(asked_at);
        }
        // A cursor is kept only for a node that proved its id: a peer claiming another's id
        // must not move that node's cursor.
        let trusted = state.sync_requested_at.is_some() && state.authenticated && complete;
        if let (true, Some(hello), Some(seq)) = (trusted, &state.hello, last_seq) {
            let node_id = hello.node_id.clone();
            self.store.set_sync_cursor(&node_id, i64::try_from(seq).unwrap_or(i64::MAX))?;
        }
        Ok(())
    }
}

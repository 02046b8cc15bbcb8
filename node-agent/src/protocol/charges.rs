//! What a message costs its sender before it is read, and what an answer costs its asker:
//! message and byte budgets charged by the type the body decodes to, answers only to what we
//! asked, and answers queued only while the asker reads them.

use bytes::Bytes;

use super::{PeerId, PeerState, Protocol, refusal};

impl Protocol {
    /// Queues an answer to something `peer` asked, charged to it: its byte budget pays for the
    /// answer, and none is queued while the bytes it has not read yet (or those of every peer
    /// together) are over their caps. False when refused: the caller answers no further.
    pub(super) fn answer(&mut self, peer: PeerId, body: Bytes) -> bool {
        let size = body.len() as u64;
        let total: u64 = self.peers.values().map(PeerState::queued_bytes).sum();
        let (now, per_peer) = (self.now, self.config.max_answer_bytes_per_peer);
        let Some(state) = self.peers.get_mut(&peer).filter(|p| !p.closing) else { return false };
        let fits = state.queued_bytes() + size <= per_peer && total + size <= self.config.max_answer_bytes_total;
        if !fits || !state.bytes.take(size as f64, now) {
            self.stats.drop_message(refusal::MessageDrop::AnswerRefused);
            return false;
        }
        self.send_body(peer, body);
        true
    }

    /// Whether an answer-type message from `peer` answers something we asked: a `pex_response`
    /// only after our `pex_request`, a `code_response` only while we wait for code (its CID is
    /// checked once decoded). Anything else is not an answer.
    pub(super) fn solicited(&self, peer: PeerId, message_type: Option<&str>) -> bool {
        match message_type {
            Some("pex_response") => self.peers.get(&peer).is_some_and(|p| p.pex_asked),
            Some("code_response") => !self.code_wanted.is_empty(),
            _ => true,
        }
    }

    /// Notes that `peer` spoke and charges its rate budgets (`size` bytes, `tokens` message
    /// tokens); false when the message must be dropped (closing connection, or over budget).
    pub(super) fn admit(&mut self, peer: PeerId, size: usize, tokens: f64) -> bool {
        let now = self.now;
        let Some(state) = self.peers.get_mut(&peer).filter(|p| !p.closing) else { return false };
        state.last_heard = now;
        if !state.bytes.take(size as f64, now) || (tokens > 0.0 && !state.messages.take(tokens, now)) {
            self.stats.drop_message(refusal::MessageDrop::RateLimited);
            self.punish(peer, 1, "rate limit exceeded");
            return false;
        }
        true
    }
}

/// The message tokens a frame costs. Records are data: a big sync arrives as fast as the peer
/// can send it, so only the byte budget applies to them. `have` and `get_records` travel with
/// the records on the lazy-push path, as often as the sender flushes: they cost a sixteenth of
/// a token and one more per 16 KiB (a list of 256 ids, about 17 KiB, a little over one), so
/// the ids they move per second (about 50,000 sustained) are bounded without punishing a busy
/// honest peer that flushes often. Every other message costs one.
///
/// The type is the one the body decodes to ([`Message::peek_type`]; a body with two `type`
/// keys has none and costs one token before it is refused as garbage).
pub(super) fn message_tokens(message_type: Option<&str>, size: usize) -> f64 {
    match message_type {
        Some("experiment") => 0.0,
        Some("have" | "get_records") => 1.0 / 16.0 + size as f64 / (16.0 * 1024.0),
        _ => 1.0,
    }
}

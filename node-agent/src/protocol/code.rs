//! Code fetching (Python 0.1.6's `code_request`/`code_response`): a node that wants to re-run a
//! record asks its peers for the `train.py` behind the record's `code_cid`; a peer that has it
//! answers (nobody answers "no"). Code is fetched, never pushed: a `code_response` is read only
//! for a CID this node asked for and still waits for (at most `max_code_wanted`, for
//! `code_wait`), and stored only if its SHA-256 is that CID — a mismatch is forgery and costs
//! the sender. Answers are capped in size and charged to the asker (`Protocol::answer`);
//! requests come through the ordinary per-peer message budget.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use spore_spec::Message;

use super::{PeerId, Protocol};
use crate::research::artifacts::{cid_of, is_cid};

/// Largest `train.py` served or accepted.
pub const MAX_CODE_BYTES: usize = 1024 * 1024;
/// Misbehaviour points for code that does not hash to its CID.
const FORGED_CODE_POINTS: u32 = 20;

impl Protocol {
    /// Asks every peer for `code_cid` (unless it is here already).
    pub(super) fn fetch_code(&mut self, code_cid: &str) {
        let Some(artifacts) = &self.artifacts else { return };
        if !is_cid(code_cid) || artifacts.contains(code_cid) {
            return;
        }
        if !self.code_wanted.contains_key(code_cid) && self.code_wanted.len() >= self.config.max_code_wanted {
            tracing::warn!(code_cid, "too many code fetches waiting; not asking");
            return;
        }
        self.code_wanted.insert(code_cid.to_string(), self.now);
        let request = Message::CodeRequest { code_cid: code_cid.to_string() };
        let peers: Vec<PeerId> = self.peers.keys().copied().filter(|p| self.may_ask(*p)).collect();
        for peer in peers {
            self.send(peer, &request);
        }
    }

    pub(super) fn on_code_request(&mut self, peer: PeerId, code_cid: &str) {
        if !self.may_tell(peer) {
            return;
        }
        let Some(artifacts) = &self.artifacts else { return };
        let Ok(Some(code)) = artifacts.get(code_cid) else { return };
        if code.len() <= MAX_CODE_BYTES {
            let response = Message::CodeResponse { code_cid: code_cid.to_string(), code: STANDARD.encode(&code) };
            self.answer(peer, response.encode_body().into());
        }
    }

    pub(super) fn on_code_response(&mut self, peer: PeerId, code_cid: &str, code: &str) {
        let Some(artifacts) = &self.artifacts else { return };
        if !self.code_wanted.contains_key(code_cid) {
            self.stats.drop_message(super::refusal::MessageDrop::Unsolicited);
            return;
        }
        if artifacts.contains(code_cid) {
            return;
        }
        let bytes = match STANDARD.decode(code) {
            Ok(bytes) if bytes.len() <= MAX_CODE_BYTES => bytes,
            _ => {
                self.punish(peer, FORGED_CODE_POINTS, "code_response that is not base64 of at most 1 MiB");
                return;
            }
        };
        if cid_of(&bytes) != code_cid {
            self.punish(peer, FORGED_CODE_POINTS, "code_response whose SHA-256 is not its code_cid");
            return;
        }
        self.code_wanted.remove(code_cid);
        let size = bytes.len() as u64;
        if self.config.artifact_quota_bytes.is_some_and(|quota| self.artifact_bytes.saturating_add(size) > quota) {
            self.stats.code_over_quota += 1;
            tracing::warn!(
                code_cid,
                bytes = size,
                "the artifact directory is at its quota (--artifacts-max-mb): fetched code not stored"
            );
            return;
        }
        match artifacts.put(&bytes) {
            Ok(_) => {
                self.artifact_bytes = self.artifact_bytes.saturating_add(size);
                self.stats.code_fetched += 1;
            }
            Err(e) => tracing::warn!(error = %e, "storing fetched code failed"),
        }
    }
}

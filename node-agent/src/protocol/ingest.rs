//! The record pipeline: dedup → CID → signature → `validate()` → batch → store → relay, and
//! fetching the parents of orphans.

use std::collections::BTreeMap;

use bytes::Bytes;
use spore_spec::{ExperimentRecord, Message, ValidationError, VerifyError, validate};

use super::{PeerId, Protocol};
use crate::store::{InsertOutcome, StoreError, StoredRecord};

/// Misbehaviour points for relaying a record whose CID or signature is wrong: honest peers
/// verify before relaying, so this is forgery or corruption, but not an instant ban.
const FORGED_RECORD_POINTS: u32 = 20;

/// The `hello` capability of nodes that take records carrying `task_id` (0.5.0's records).
pub const TASK_ID_CAPABILITY: &str = "task_id";

/// `{"type":"experiment","payload":<payload>}` around a stored payload.
pub(super) fn experiment_body(payload: &str) -> Bytes {
    let mut body = Vec::with_capacity(payload.len() + 32);
    body.extend_from_slice(b"{\"type\":\"experiment\",\"payload\":");
    body.extend_from_slice(payload.as_bytes());
    body.push(b'}');
    Bytes::from(body)
}

impl Protocol {
    /// Takes a record from `peer`. `verdict` is its CID and signature check when the driver
    /// already did it (off the core's thread); otherwise the core checks it here.
    pub(super) fn on_experiment(
        &mut self,
        peer: PeerId,
        record: ExperimentRecord,
        payload: String,
        verdict: Option<Result<(), VerifyError>>,
    ) -> Result<(), StoreError> {
        // Only recent ids are looked up here; one stored long ago is found by the insert.
        if self.seen.touch(&record.id) {
            self.received_wanted(&record.id);
            self.stats.records_duplicate += 1;
            return Ok(());
        }
        if !self.may_import(peer, &record, payload.len()) {
            return Ok(());
        }
        if self.ingest_paused() {
            // Paused for a store that is busy, full, failing or at its quota: not worth a
            // verification.
            self.refuse_for_pause(peer, &record.id);
            return Ok(());
        }
        let verdict = match verdict {
            Some(verdict) => verdict,
            None => self.keys.verify_record(&record),
        };
        if let Err(e) = verdict {
            self.stats.records_rejected += 1;
            self.stats.refuse_record(super::refusal::RecordRefusal::of_verify(&e));
            if let Some(state) = self.peers.get_mut(&peer) {
                state.rejected_records += 1;
            }
            tracing::debug!(peer, id = %record.id, error = %e, "record does not verify");
            self.punish(peer, FORGED_RECORD_POINTS, &e.to_string());
            return Ok(());
        }
        let flags = match validate(&record, &self.policy, self.unix_now) {
            Ok(flags) => flags,
            Err(e) => {
                // Python peers accept (and relay) these; refusing them is our policy, not the
                // sender's fault, except a future timestamp that only its signer chose.
                self.stats.records_ignored += 1;
                self.stats.refuse_record(super::refusal::RecordRefusal::of_validation(&e));
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.rejected_records += 1;
                }
                if !matches!(e, ValidationError::FutureTimestamp { .. }) {
                    tracing::debug!(peer, id = %record.id, error = %e, "record refused by validation");
                }
                // Its CID and signature hold, so every announcer would send the same record.
                self.received_wanted(&record.id);
                return Ok(());
            }
        };
        self.seen.put(&record.id);
        self.received_wanted(&record.id);
        // Only 0.5.0 and later send it (they are 0.3.10 and later too).
        if record.task_id.is_some() && self.peers.get(&peer).is_some_and(|p| !p.has_capability(TASK_ID_CAPABILITY)) {
            self.learned_newer_release(peer)?;
        }
        // A record with `task_id` is stored as we write it, with the key spelled plainly, so a
        // stored payload has `"task_id"` exactly when the record has the field (see `body_for`).
        let payload = if payload.is_empty() || record.task_id.is_some() {
            let mut out = Vec::new();
            record.write_wire_payload(&mut out);
            String::from_utf8(out).unwrap_or_default()
        } else {
            payload
        };
        self.pending.push((peer, StoredRecord { record, payload, flags, received_at: self.unix_now }));
        if self.pending.len() >= self.config.sync_batch {
            self.flush()?;
        }
        Ok(())
    }

    /// Stores the batched records in one transaction, then relays each to every peer but its
    /// source: a record is relayed only once it is durably stored. Peers that asked for
    /// announcements get its id in a `have` after the batch; the others get the record.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.pending);
        if self.ingest_paused() {
            batch = self.hold_back(batch);
            if batch.is_empty() {
                return Ok(());
            }
        }
        let items: Vec<&StoredRecord> = batch.iter().map(|(_, item)| item).collect();
        // What came over the bridge is remembered as imported (export `own` leaves it out).
        let imported: Vec<bool> = batch.iter().map(|(source, _)| self.is_public(*source)).collect();
        let outcomes = match self.store.insert_batch_from(&items, &imported) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // Nothing of the batch was stored (one transaction): peers' records are refused
                // and forgotten, ours wait for the store to come back.
                self.store_failed(&e);
                self.hold_back(batch);
                return Ok(());
            }
        };
        let mut orphan_sources: Vec<PeerId> = Vec::new();
        let mut announcements: BTreeMap<PeerId, Vec<String>> = BTreeMap::new();
        for ((source, item), outcome) in batch.into_iter().zip(outcomes) {
            let orphan = match outcome {
                InsertOutcome::Inserted { orphan, .. } => orphan,
                InsertOutcome::Duplicate => {
                    self.stats.records_duplicate += 1;
                    continue;
                }
                InsertOutcome::OutsideTask => {
                    // Its signer broke the rule; a relaying peer may not know the parent.
                    self.stats.records_ignored += 1;
                    self.stats.refuse_record(super::refusal::RecordRefusal::TaskLineage);
                    if let Some(state) = self.peers.get_mut(&source) {
                        state.rejected_records += 1;
                    }
                    tracing::debug!(peer = source, id = %item.record.id, "record refused: outside its parent's task");
                    continue;
                }
            };
            self.stats.records_accepted += 1;
            self.stored_ids.push(item.record.id.clone());
            if let Some(state) = self.peers.get_mut(&source) {
                state.accepted_records += 1;
            }
            if orphan && !orphan_sources.contains(&source) {
                orphan_sources.push(source);
            }
            let from_public = self.is_public(source);
            let targets: Vec<PeerId> =
                self.peers.keys().copied().filter(|p| *p != source && self.may_export(*p, from_public)).collect();
            if targets.is_empty() {
                continue;
            }
            let body = experiment_body(&item.payload);
            let mut announced = false;
            for peer in targets {
                if self.wants_announcements(peer) {
                    announcements.entry(peer).or_default().push(item.record.id.clone());
                    announced = true;
                } else if !self.takes_task_id(peer) && item.record.task_id.is_some() {
                    if let Some(body) = self.body_for(peer, &item.payload) {
                        self.send_body(peer, body);
                    }
                } else {
                    self.send_body(peer, body.clone());
                }
            }
            if announced {
                self.wanted.remember_body(&item.record.id, body);
            }
        }
        self.announce(announcements);
        for source in orphan_sources {
            self.fetch_missing_parents(Some(source))?;
        }
        Ok(())
    }

    /// Whether `peer` takes records carrying `task_id`.
    pub(super) fn takes_task_id(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.takes_task_id || p.has_capability(TASK_ID_CAPABILITY))
    }

    /// The `experiment` message of a stored payload for `peer`: as stored, unless the peer may be
    /// a 0.1.2 node and the record has `task_id` — then without it when it is not signed (a
    /// version-1 record keeps its CID), and nothing when it is (counted in `withheld_task_records`).
    pub(super) fn body_for(&mut self, peer: PeerId, payload: &str) -> Option<Bytes> {
        // memchr's search: the payload may be a megabyte, and this runs for every answer.
        if self.takes_task_id(peer) || memchr::memmem::find(payload.as_bytes(), b"\"task_id\"").is_none() {
            return Some(experiment_body(payload));
        }
        let record = ExperimentRecord::from_json(payload).ok()?;
        match record.for_v1_peer() {
            Some(older) => {
                let mut out = Vec::with_capacity(payload.len());
                older.write_wire_payload(&mut out);
                Some(experiment_body(std::str::from_utf8(&out).ok()?))
            }
            None => {
                self.stats.withheld_task_records += 1;
                self.note_withheld(peer, record.timestamp);
                None
            }
        }
    }

    /// Asks for parents we lack: from `source` if it speaks `get_records`, else from every peer
    /// that does.
    pub(super) fn fetch_missing_parents(&mut self, source: Option<PeerId>) -> Result<(), StoreError> {
        let missing = self.store.missing_parents(self.config.max_get_records)?;
        if missing.is_empty() {
            return Ok(());
        }
        let capable: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| p.has_capability("get_records") && source.is_none_or(|s| s == **id))
            .map(|(id, _)| *id)
            .filter(|id| self.may_ask(*id))
            .collect();
        for peer in capable {
            self.send(peer, &Message::GetRecords { ids: missing.clone() });
        }
        Ok(())
    }

    /// Answers with the records asked for that we have: each id once, only well-formed CIDs,
    /// and each answer charged to the asker ([`Protocol::answer`]); once one is refused, the
    /// rest of the request is dropped.
    pub(super) fn on_get_records(&mut self, peer: PeerId, ids: &[String]) -> Result<(), StoreError> {
        let public = self.is_public(peer);
        let mut asked = std::collections::HashSet::new();
        for id in ids.iter().take(self.config.max_get_records) {
            if !spore_spec::cid::is_cid(id) || !asked.insert(id.as_str()) {
                continue;
            }
            if public && !self.may_export(peer, self.store.is_imported(id)?) {
                continue;
            }
            let body = match self.wanted.announced_body(id) {
                Some(body) if self.takes_task_id(peer) => body,
                _ => match self.store.payload(id)? {
                    Some(payload) => match self.body_for(peer, &payload) {
                        Some(body) => body,
                        None => continue,
                    },
                    None => continue,
                },
            };
            if !self.answer(peer, body) {
                break;
            }
        }
        Ok(())
    }
}

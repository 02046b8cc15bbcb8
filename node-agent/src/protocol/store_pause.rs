//! A node that rides out its store. When a write fails because the database is busy (another
//! process holds its lock past the busy timeout), the disk is full, or the file fails some other
//! way, the core does not stop: it pauses ingest. While paused, records and control events from
//! peers are refused unread-for-storage (counted as `store_paused`, and forgotten, so the same
//! record is taken when a peer offers it again), no syncs are asked for, and this node's own
//! records and control events wait in memory, in order. Every [`PROBE_INTERVAL`] the core takes
//! the write lock without waiting; when it can, it stores what waited and resumes.
//!
//! The store quota (`ProtocolConfig::store_quota_bytes`) is the same pause for records from
//! peers only: past it they are refused, while this node's own records are still written (a
//! node's own research is a few kilobytes an experiment, and never a stranger's to stop).

use spore_spec::ControlEvent;

use super::refusal::RecordRefusal;
use super::{Millis, PeerId, Protocol};
use crate::store::{StoreError, StoreTrouble, StoredRecord};

/// How often a paused store is tried again.
pub const PROBE_INTERVAL: Millis = 2_000;

/// After a full disk, ingest resumes once this much is free again (the lock alone says
/// nothing about room).
pub const FREE_TO_RESUME: u64 = 1024 * 1024;

/// Why ingest is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseCause {
    /// A write waited out the busy timeout.
    Busy,
    /// The disk had no room.
    Full,
    /// The store is past its quota (records from peers only).
    Quota,
    /// Any other store error.
    Failed,
}

impl PauseCause {
    pub const ALL: [PauseCause; 4] = [PauseCause::Busy, PauseCause::Full, PauseCause::Quota, PauseCause::Failed];

    pub fn label(self) -> &'static str {
        match self {
            PauseCause::Busy => "busy",
            PauseCause::Full => "full",
            PauseCause::Quota => "quota",
            PauseCause::Failed => "failed",
        }
    }

    fn of(trouble: StoreTrouble) -> Self {
        match trouble {
            StoreTrouble::Busy => PauseCause::Busy,
            StoreTrouble::Full => PauseCause::Full,
            StoreTrouble::Failed => PauseCause::Failed,
        }
    }
}

/// The store's state as status and metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePause {
    pub cause: PauseCause,
    /// The error (or the quota) in words.
    pub reason: String,
    /// Unix seconds when ingest paused.
    pub since: i64,
    next_probe: Millis,
}

/// What waits for a paused store.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    pub(super) pause: Option<StorePause>,
    pub(super) own_records: Vec<StoredRecord>,
    pub(super) own_controls: Vec<ControlEvent>,
}

impl Protocol {
    /// Why ingest is paused, if it is.
    pub fn store_pause(&self) -> Option<&StorePause> {
        self.waiting.pause.as_ref()
    }

    /// This node's records and control events waiting for the store.
    pub fn own_waiting(&self) -> usize {
        self.waiting.own_records.len() + self.waiting.own_controls.len()
    }

    pub(super) fn ingest_paused(&self) -> bool {
        self.waiting.pause.is_some()
    }

    /// Pauses ingest after `error` (or records the newer error of a pause already on).
    pub(super) fn store_failed(&mut self, error: &StoreError) {
        let cause = PauseCause::of(error.trouble());
        self.pause(cause, error.to_string());
    }

    fn pause(&mut self, cause: PauseCause, reason: String) {
        let next_probe = self.now + PROBE_INTERVAL;
        match &mut self.waiting.pause {
            Some(pause) => {
                if pause.cause != cause {
                    tracing::warn!(cause = cause.label(), reason, "store still unavailable");
                }
                pause.cause = cause;
                pause.reason = reason;
                pause.next_probe = next_probe;
            }
            None => {
                tracing::warn!(
                    cause = cause.label(),
                    reason,
                    "store unavailable: ingest paused, this node's own records wait in memory"
                );
                self.stats.store_pauses += 1;
                self.waiting.pause = Some(StorePause { cause, reason, since: self.unix_now, next_probe });
            }
        }
    }

    /// Pauses ingest for the quota when the store has reached it; checked on each tick (every
    /// 100 ms), so the record path pays nothing for it and the store passes its quota by at
    /// most what arrives between two ticks.
    pub(super) fn check_quota(&mut self) {
        if self.waiting.pause.is_some() {
            return;
        }
        if let Err(e) = self.over_quota_now() {
            self.store_failed(&e);
        }
    }

    /// Whether the store has reached its quota; pauses ingest for it when it has.
    fn over_quota_now(&mut self) -> Result<bool, StoreError> {
        let Some(quota) = self.config.store_quota_bytes else { return Ok(false) };
        let size = self.store.size_bytes()?;
        if size < quota {
            return Ok(false);
        }
        if self.waiting.pause.is_none() {
            self.pause(
                PauseCause::Quota,
                format!("the store holds {size} bytes, its quota is {quota} (--store-max-mb)"),
            );
        }
        Ok(true)
    }

    /// Takes `batch` apart while ingest is paused: records from peers are refused and
    /// forgotten, this node's own wait (or, under a quota pause, are returned to be written).
    pub(super) fn hold_back(&mut self, batch: Vec<(PeerId, StoredRecord)>) -> Vec<(PeerId, StoredRecord)> {
        let quota = self.paused_for_quota();
        let mut write = Vec::new();
        for (source, item) in batch {
            if source == PeerId::MAX {
                if quota {
                    write.push((source, item));
                } else {
                    self.waiting.own_records.push(item);
                }
            } else {
                self.refuse_for_pause(source, &item.record.id);
            }
        }
        write
    }

    /// Refuses a record from `peer` because ingest is paused; a later offer is taken.
    pub(super) fn refuse_for_pause(&mut self, peer: PeerId, id: &str) {
        self.stats.records_ignored += 1;
        self.stats.refuse_record(RecordRefusal::StorePaused);
        self.seen.forget(id);
        if let Some(state) = self.peers.get_mut(&peer) {
            state.rejected_records += 1;
            state.refused_for_pause = true;
        }
    }

    /// This node's control event: stored and relayed now, or kept until the store is back.
    pub(super) fn publish_control(&mut self, event: ControlEvent) {
        if self.ingest_paused() && !self.paused_for_quota() {
            self.waiting.own_controls.push(event);
            return;
        }
        if let Err(e) = self.on_control(PeerId::MAX, event.clone()) {
            self.store_failed(&e);
            self.waiting.own_controls.push(event);
        }
    }

    fn paused_for_quota(&self) -> bool {
        self.waiting.pause.as_ref().is_some_and(|p| p.cause == PauseCause::Quota)
    }

    /// On each tick while paused: when the probe is due, tries the store; if it takes writes,
    /// stores what waited (in order) and resumes ingest.
    pub(super) fn probe_store(&mut self) {
        let cause = match &self.waiting.pause {
            Some(pause) if self.now >= pause.next_probe => pause.cause,
            _ => return,
        };
        let probe = match cause {
            PauseCause::Quota => self.over_quota_now().map(|over| !over),
            PauseCause::Full if self.store.free_bytes().is_some_and(|free| free < FREE_TO_RESUME) => Ok(false),
            _ => self.store.probe_writable().map(|()| true),
        };
        match probe {
            Ok(true) => {}
            Ok(false) => {
                // Still over the quota, or the disk still full: look again later.
                if let Some(pause) = &mut self.waiting.pause {
                    pause.next_probe = self.now + PROBE_INTERVAL;
                }
                return;
            }
            Err(e) => {
                self.store_failed(&e);
                return;
            }
        }
        let Some(pause) = self.waiting.pause.take() else { return };
        // What waited is written before anything new; a failure pauses again and keeps it.
        let records = std::mem::take(&mut self.waiting.own_records);
        let mut pending: Vec<(PeerId, StoredRecord)> = records.into_iter().map(|r| (PeerId::MAX, r)).collect();
        pending.append(&mut self.pending);
        self.pending = pending;
        if let Err(e) = self.flush() {
            self.store_failed(&e);
        }
        if self.ingest_paused() {
            return;
        }
        for event in std::mem::take(&mut self.waiting.own_controls) {
            self.publish_control(event);
        }
        if !self.ingest_paused() {
            tracing::info!(
                cause = pause.cause.label(),
                paused_for_s = self.unix_now.saturating_sub(pause.since),
                "store available again: ingest resumed"
            );
        }
    }
}

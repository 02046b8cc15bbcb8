//! What the driver tells the protocol core ([`Event`]), what the core asks of the driver
//! ([`Action`]), and the core's counters ([`Stats`]).

use std::net::SocketAddr;

use bytes::Bytes;
use spore_spec::{ControlEvent, ExperimentRecord, VerifyError};

use super::refusal::{MessageDrop, RecordRefusal};
use super::{Direction, PeerId};
use crate::store::StoredRecord;

/// Something that happened, reported by the driver.
#[derive(Debug)]
pub enum Event {
    Connected {
        peer: PeerId,
        remote: SocketAddr,
        direction: Direction,
    },
    Disconnected {
        peer: PeerId,
    },
    /// One frame body, already split by the frame codec.
    Frame {
        peer: PeerId,
        body: Bytes,
    },
    /// An `experiment` frame the driver already parsed and checked (CID and signature) off the
    /// core's thread; `payload` is the record's JSON as the peer wrote it.
    Record {
        peer: PeerId,
        record: Box<ExperimentRecord>,
        payload: String,
        /// `None` when the driver skipped the check because the id looked known already.
        verdict: Option<Result<(), VerifyError>>,
        size: usize,
    },
    /// `count` `experiment` frames of `bytes` in all whose ids the node stored recently: the
    /// driver dropped them unparsed, and tells the core for the peer's byte budget and the stats.
    Duplicates {
        peer: PeerId,
        count: u64,
        bytes: usize,
    },
    /// The stream could not be framed (oversize length): a protocol violation.
    FramingError {
        peer: PeerId,
        reason: String,
    },
    /// The peer's writer wrote `written` bodies of `bytes` bytes in all (the driver counts):
    /// sent when its queue runs empty, and after every megabyte while it does not.
    Drained {
        peer: PeerId,
        written: u64,
        bytes: u64,
    },
    DialFailed {
        address: String,
    },
    /// A record this node made and signed.
    Publish(Box<StoredRecord>),
    /// A control event this node signed.
    PublishControl(Box<ControlEvent>),
    /// Ask peers for the code stored under this CID.
    FetchCode(String),
    /// The clock moved (the driver ticks a few times a second).
    Tick,
    /// No more events are waiting: flush what is batched.
    Idle,
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        peer: PeerId,
        body: Bytes,
    },
    Disconnect {
        peer: PeerId,
        reason: String,
    },
    Dial {
        address: String,
    },
    /// Append to the `known_peer` file: we connected to it ourselves.
    RememberPeer {
        address: String,
    },
}

/// Counters for status output and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub records_accepted: u64,
    pub records_duplicate: u64,
    pub records_rejected: u64,
    pub records_ignored: u64,
    pub messages_dropped: u64,
    pub peers_banned: u64,
    pub controls_accepted: u64,
    pub controls_duplicate: u64,
    /// Sync answers ended because their reader stalled.
    pub syncs_stalled: u64,
    /// Peers that proved their `node_id`, and `auth` answers that did not.
    pub peers_authenticated: u64,
    pub auth_failed: u64,
    pub controls_rejected: u64,
    /// Task manifests (0.5.0 and later) stored, and refused (forged, malformed or over a cap).
    pub tasks_accepted: u64,
    pub tasks_rejected: u64,
    /// Unsigned 0.1.2 control messages received (and otherwise ignored).
    pub control_hints: u64,
    /// Code artifacts received and stored.
    pub code_fetched: u64,
    /// Records from public peers that the bridge's import policy or limits kept out.
    pub records_not_imported: u64,
    /// Records refused, by [`RecordRefusal`] (`as usize`).
    pub records_refused: [u64; RecordRefusal::COUNT],
    /// Messages dropped, by [`MessageDrop`] (`as usize`).
    pub messages_dropped_by: [u64; MessageDrop::COUNT],
    /// Sync answers we finished serving, and the time they took in all (first page to end
    /// marker).
    pub syncs_served: u64,
    pub sync_served_millis: u64,
    /// Sync answers our peers finished, and the time from our request to their end marker.
    pub syncs_received: u64,
    pub sync_received_millis: u64,
    /// The lazy push between our own nodes.
    pub announce: super::AnnounceStats,
    /// Times ingest paused for the store ([`super::store_pause`]).
    pub store_pauses: u64,
    /// Fetched code not stored because the artifact directory is at its quota.
    pub code_over_quota: u64,
    /// Version-2 records (their `task_id` signed) not sent to a peer that may be a 0.1.2 node.
    pub withheld_task_records: u64,
}

impl Stats {
    /// Counts a record refused for `reason` (its outcome class is counted by the caller).
    pub fn refuse_record(&mut self, reason: RecordRefusal) {
        self.records_refused[reason as usize] += 1;
    }

    /// Counts a dropped message, in all and by `reason`.
    pub fn drop_message(&mut self, reason: MessageDrop) {
        self.messages_dropped += 1;
        self.messages_dropped_by[reason as usize] += 1;
    }
}

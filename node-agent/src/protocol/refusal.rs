//! Why records and messages from peers were refused, one counter per reason, for `/metrics`
//! (`spore_records_refused_total{reason}`, `spore_messages_dropped_total{reason}`).

use spore_spec::message::MessageError;
use spore_spec::record::RecordError;
use spore_spec::validate::ValidationError;
use spore_spec::verify::VerifyError;

/// Why a record was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRefusal {
    /// Not a version-1 record: a field missing, unknown or of the wrong type.
    Malformed,
    /// Valid JSON that cannot be held exactly (a lone surrogate, an over-long integer).
    Unrepresentable,
    CidMismatch,
    BadPublicKey,
    MalformedSignature,
    BadSignature,
    NonFinite,
    BadId,
    BadNodeId,
    BadSignatureFormat,
    BadParent,
    BadTimestamp,
    FutureTimestamp,
    /// The bridge's import policy keeps it out.
    ImportPolicy,
    /// Over the bridge's size cap for public records.
    TooLarge,
    /// Over the bridge's record budget for the public peer.
    RateLimited,
    /// Ingest is paused: the store is busy, full, failing or past its quota.
    StorePaused,
    /// It breaks a task lineage rule: its signed task is not its parent's, or it claims another
    /// record's legacy task (`store/namespace.rs`).
    TaskLineage,
}

impl RecordRefusal {
    pub const COUNT: usize = 18;
    pub const ALL: [RecordRefusal; Self::COUNT] = [
        Self::Malformed,
        Self::Unrepresentable,
        Self::CidMismatch,
        Self::BadPublicKey,
        Self::MalformedSignature,
        Self::BadSignature,
        Self::NonFinite,
        Self::BadId,
        Self::BadNodeId,
        Self::BadSignatureFormat,
        Self::BadParent,
        Self::BadTimestamp,
        Self::FutureTimestamp,
        Self::ImportPolicy,
        Self::TooLarge,
        Self::RateLimited,
        Self::StorePaused,
        Self::TaskLineage,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unrepresentable => "unrepresentable",
            Self::CidMismatch => "cid_mismatch",
            Self::BadPublicKey => "bad_public_key",
            Self::MalformedSignature => "malformed_signature",
            Self::BadSignature => "bad_signature",
            Self::NonFinite => "non_finite",
            Self::BadId => "bad_id",
            Self::BadNodeId => "bad_node_id",
            Self::BadSignatureFormat => "bad_signature_format",
            Self::BadParent => "bad_parent",
            Self::BadTimestamp => "bad_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::ImportPolicy => "import_policy",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::StorePaused => "store_paused",
            Self::TaskLineage => "task_lineage",
        }
    }

    pub fn of_verify(error: &VerifyError) -> Self {
        match error {
            VerifyError::CidMismatch { .. } => Self::CidMismatch,
            VerifyError::BadPublicKey => Self::BadPublicKey,
            VerifyError::MalformedSignature => Self::MalformedSignature,
            VerifyError::BadSignature => Self::BadSignature,
        }
    }

    pub fn of_validation(error: &ValidationError) -> Self {
        match error {
            ValidationError::NonFinite(_) => Self::NonFinite,
            ValidationError::BadId => Self::BadId,
            ValidationError::BadNodeId => Self::BadNodeId,
            ValidationError::BadSignatureFormat => Self::BadSignatureFormat,
            ValidationError::BadParent => Self::BadParent,
            ValidationError::BadTimestamp => Self::BadTimestamp,
            ValidationError::FutureTimestamp { .. } => Self::FutureTimestamp,
        }
    }

    /// A record that could not even be read.
    pub fn of_record(error: &RecordError) -> Self {
        match error {
            RecordError::Json(_) => Self::Unrepresentable,
            _ => Self::Malformed,
        }
    }
}

/// Why a message was dropped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageDrop {
    /// Over the size limit of its type.
    TooLarge,
    /// A field of the wrong type, or a payload that is not an object.
    BadField,
    /// No string `type`.
    NoType,
    /// Not JSON at all.
    Garbage,
    /// Over the peer's byte or message budget.
    RateLimited,
    /// A sync request sooner than the peer may ask again, or while one is served.
    SyncTooOften,
    /// A frame whose length prefix is over the limit: the stream cannot be read on.
    BadFrame,
    /// An answer nobody asked for (`pex_response`, `code_response`): never read further.
    Unsolicited,
    /// A request whose answer would pass the asker's queued-bytes or byte budget: the rest of
    /// it is not answered.
    AnswerRefused,
}

impl MessageDrop {
    pub const COUNT: usize = 9;
    pub const ALL: [MessageDrop; Self::COUNT] = [
        Self::TooLarge,
        Self::BadField,
        Self::NoType,
        Self::Garbage,
        Self::RateLimited,
        Self::SyncTooOften,
        Self::BadFrame,
        Self::Unsolicited,
        Self::AnswerRefused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::BadField => "bad_field",
            Self::NoType => "no_type",
            Self::Garbage => "garbage",
            Self::RateLimited => "rate_limited",
            Self::SyncTooOften => "sync_too_often",
            Self::BadFrame => "bad_frame",
            Self::Unsolicited => "unsolicited",
            Self::AnswerRefused => "answer_refused",
        }
    }

    /// The drop reason of a message that did not decode (not a record's fault).
    pub fn of_message(error: &MessageError) -> Self {
        match error {
            MessageError::TooLarge { .. } => Self::TooLarge,
            MessageError::BadField { .. } | MessageError::PayloadNotAnObject(_) => Self::BadField,
            MessageError::NoType => Self::NoType,
            _ => Self::Garbage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_label_and_its_place_in_all() {
        let labels: std::collections::BTreeSet<_> = RecordRefusal::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), RecordRefusal::COUNT);
        for (i, r) in RecordRefusal::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in declaration order, so `as usize` indexes the counters");
        }
        let labels: std::collections::BTreeSet<_> = MessageDrop::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), MessageDrop::COUNT);
        for (i, r) in MessageDrop::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn errors_map_to_their_reasons() {
        assert_eq!(RecordRefusal::of_verify(&VerifyError::BadSignature), RecordRefusal::BadSignature);
        let future = ValidationError::FutureTimestamp { timestamp: 10, now: 0, skew: 1 };
        assert_eq!(RecordRefusal::of_validation(&future), RecordRefusal::FutureTimestamp);
        assert_eq!(RecordRefusal::of_record(&RecordError::MissingField("id")), RecordRefusal::Malformed);
        assert_eq!(MessageDrop::of_message(&MessageError::NoType), MessageDrop::NoType);
        let big = MessageError::TooLarge { message_type: "experiment".into(), size: 2, limit: 1 };
        assert_eq!(MessageDrop::of_message(&big), MessageDrop::TooLarge);
    }
}

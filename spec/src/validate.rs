//! Checks beyond Python's: what a record must satisfy to be stored and relayed (rejections), and
//! what is suspicious but signed and accepted by 0.1.2 peers (flags).
//!
//! The split keeps us on the same mesh as Python nodes: everything the 0.1.2 test vectors show
//! Python accepting and that can be faithfully stored is *flagged*, never rejected, except
//! non-finite metrics, which are not JSON and would poison every comparison. See
//! `spec/protocol.md` ("Validation") for the reason behind each rule.

use crate::cid::is_cid;
use crate::number::JsonNumber;
use crate::record::{ExperimentRecord, Status};

/// Limits for [`validate`]. Time is passed in, never read from a clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationPolicy {
    /// How far a record's timestamp may lie ahead of the receiver's clock. Default 2 hours
    /// (Bitcoin's rule for block times): enough for skewed clocks, too little to pin a record
    /// to the top of "recent" lists for long.
    pub max_future_skew_secs: i64,
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        ValidationPolicy { max_future_skew_secs: 2 * 60 * 60 }
    }
}

impl ValidationPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_future_skew_secs < 0 {
            return Err("max_future_skew_secs must not be negative".into());
        }
        Ok(())
    }
}

/// A reason to refuse a record (not store it, not relay it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("`{0}` is not a finite number (NaN/Infinity are not JSON and cannot be compared)")]
    NonFinite(&'static str),
    #[error("`id` must be 64 lowercase hex characters")]
    BadId,
    #[error("`node_id` must be 64 hex characters")]
    BadNodeId,
    #[error("`signature` must be 128 hex characters")]
    BadSignatureFormat,
    #[error("`parent` must be null, empty, or a 64-hex CID")]
    BadParent,
    #[error("`timestamp` must be an integer number of seconds")]
    BadTimestamp,
    #[error("timestamp {timestamp} is more than {skew} s ahead of now ({now})")]
    FutureTimestamp { timestamp: i64, now: i64, skew: i64 },
}

/// Something Python accepts that we store and relay but do not trust (the node keeps flagged
/// records off the frontier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    /// `parent` is `""`: Python treats it as a string, not a root, and no record has that CID.
    EmptyParent,
    /// A count or depth below zero.
    Negative(&'static str),
    /// An integer beyond 64 bits (kept exactly in the signed JSON, not in indexed columns).
    BeyondI64(&'static str),
    /// An int where Python writes floats (`val_bpb`, `peak_vram_mb`), or a float where it writes ints.
    TypeDrift(&'static str),
    /// `code_cid` is not a 64-hex SHA-256, so the code cannot be fetched by it.
    CodeCidNotHex,
    /// A keep or discard without a positive `val_bpb`.
    NonPositiveMetric,
    /// A protocol version other than 1 and 2.
    UnknownVersion,
}

const INT_FIELDS: [&str; 5] = ["depth", "time_budget", "num_steps", "num_params", "timestamp"];
const FLOAT_FIELDS: [&str; 2] = ["val_bpb", "peak_vram_mb"];

fn number<'a>(record: &'a ExperimentRecord, field: &str) -> &'a JsonNumber {
    match field {
        "depth" => &record.depth,
        "time_budget" => &record.time_budget,
        "num_steps" => &record.num_steps,
        "num_params" => &record.num_params,
        "timestamp" => &record.timestamp,
        "val_bpb" => &record.val_bpb,
        "peak_vram_mb" => &record.peak_vram_mb,
        _ => &record.version,
    }
}

fn is_hex_of_len(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Validates a record that already parsed. `now` is Unix seconds.
pub fn validate(record: &ExperimentRecord, policy: &ValidationPolicy, now: i64) -> Result<Vec<Flag>, ValidationError> {
    for field in INT_FIELDS.iter().chain(FLOAT_FIELDS.iter()).chain(["version"].iter()) {
        if !number(record, field).is_finite() {
            return Err(ValidationError::NonFinite(field));
        }
    }
    if !is_cid(&record.id) {
        return Err(ValidationError::BadId);
    }
    if !is_hex_of_len(&record.node_id, 64) {
        return Err(ValidationError::BadNodeId);
    }
    if !is_hex_of_len(&record.signature, 128) {
        return Err(ValidationError::BadSignatureFormat);
    }
    let mut flags = Vec::new();
    match record.parent.as_deref() {
        None => {}
        Some("") => flags.push(Flag::EmptyParent),
        Some(p) if is_cid(p) => {}
        Some(_) => return Err(ValidationError::BadParent),
    }
    let timestamp = record.timestamp.as_i64().ok_or(ValidationError::BadTimestamp)?;
    if timestamp > now.saturating_add(policy.max_future_skew_secs) {
        return Err(ValidationError::FutureTimestamp { timestamp, now, skew: policy.max_future_skew_secs });
    }
    for field in INT_FIELDS {
        let n = number(record, field);
        if !n.is_int() {
            flags.push(Flag::TypeDrift(field));
        }
        match n.as_i64() {
            Some(v) if v < 0 => flags.push(Flag::Negative(field)),
            Some(_) => {}
            None if n.is_int() => flags.push(Flag::BeyondI64(field)),
            None => {}
        }
    }
    for field in FLOAT_FIELDS {
        if number(record, field).is_int() {
            flags.push(Flag::TypeDrift(field));
        }
    }
    if !is_cid(&record.code_cid) {
        flags.push(Flag::CodeCidNotHex);
    }
    if record.status != Status::Crash && record.val_bpb.as_f64() <= 0.0 {
        flags.push(Flag::NonPositiveMetric);
    }
    if record.version != JsonNumber::from(1) && record.version != JsonNumber::from(2) {
        flags.push(Flag::UnknownVersion);
    }
    Ok(flags)
}

//! Nothing the mirror writes is taken on trust: a streamed record must parse, carry the id it
//! is streamed under, and verify — its CID is the hash of its canonical bytes and its signature
//! is its node's, the checks a node applies to a record from a peer (single verification,
//! exactly Python's verdicts). A refused record is counted (`spore_mirror_rows_refused_total`)
//! and logged, and never written; the cursor still moves past it, so one bad record cannot
//! stall the mirror. Records are checked by the task that reads the agent's stream, so checking
//! overlaps with writing the previous batch.

use spore_spec::grpc::StoredRecord;
use spore_spec::{ExperimentRecord, KeyCache};

use super::writer::{Row, row_of};

/// Why a streamed record was not written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the payload is not a record: {0}")]
    NotARecord(String),
    #[error("streamed as {streamed}, the record's id is {actual}")]
    WrongId { streamed: String, actual: String },
    #[error("the record does not verify: {0}")]
    Verify(String),
}

/// A streamed record, checked: what the writer needs.
#[derive(Debug)]
pub struct Checked {
    pub seq: i64,
    pub id: String,
    pub row: Result<Row, Refusal>,
}

impl Checked {
    pub fn of(stored: StoredRecord, keys: &mut KeyCache) -> Checked {
        let row = checked_row(&stored, keys);
        Checked { seq: stored.seq, id: stored.id, row }
    }
}

/// The row of a streamed record that verifies.
pub fn checked_row(stored: &StoredRecord, keys: &mut KeyCache) -> Result<Row, Refusal> {
    let record = ExperimentRecord::from_json(&stored.payload).map_err(|e| Refusal::NotARecord(e.to_string()))?;
    if record.id != stored.id {
        return Err(Refusal::WrongId { streamed: stored.id.clone(), actual: record.id });
    }
    keys.verify_record(&record).map_err(|e| Refusal::Verify(e.to_string()))?;
    Ok(row_of(stored, &record))
}

#[cfg(test)]
mod tests {
    use spore_spec::{Identity, JsonNumber};

    use super::*;

    fn stored(record: &ExperimentRecord) -> StoredRecord {
        let mut payload = Vec::new();
        record.write_wire_payload(&mut payload);
        StoredRecord { seq: 1, id: record.id.clone(), payload: String::from_utf8(payload).unwrap() }
    }

    #[test]
    fn only_records_that_verify_become_rows() {
        let mut keys = KeyCache::new(16);
        let mut record = spore_tests_record();
        Identity::from_seed([3; 32]).sign_record(&mut record);
        let good = stored(&record);
        assert_eq!(checked_row(&good, &mut keys).map(|r| r.id), Ok(record.id.clone()));
        // The payload changed after signing: its CID no longer holds.
        let altered = StoredRecord { payload: good.payload.replace("\"keep\"", "\"discard\""), ..good.clone() };
        assert!(matches!(checked_row(&altered, &mut keys), Err(Refusal::Verify(_))));
        // Re-hashed under the new content, but the signature is the old one.
        let mut forged = record.clone();
        forged.val_bpb = JsonNumber::Float(0.01);
        forged.id = spore_spec::cid_of(&forged.canonical_bytes());
        assert!(matches!(checked_row(&stored(&forged), &mut keys), Err(Refusal::Verify(_))));
        // Streamed under another record's id.
        let renamed = StoredRecord { id: "0".repeat(64), ..good.clone() };
        assert!(matches!(checked_row(&renamed, &mut keys), Err(Refusal::WrongId { .. })));
        let junk = StoredRecord { payload: "{}".into(), ..good };
        assert!(matches!(checked_row(&junk, &mut keys), Err(Refusal::NotARecord(_))));
    }

    fn spore_tests_record() -> ExperimentRecord {
        let mut r = spore_tests::records::record(7);
        r.val_bpb = JsonNumber::Float(1.25);
        r
    }
}

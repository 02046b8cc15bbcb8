//! Nothing the mirror writes is taken on trust: a streamed record must parse, carry the id it
//! is streamed under, and verify — its CID is the hash of its canonical bytes and its signature
//! is its node's, the checks a node applies to a record from a peer, with exactly Python's
//! verdicts. A chunk of records is checked at once ([`verify_records_exact`]: each signature on
//! its own, a frequent publisher's key with prepared tables, one shared field inversion for the
//! encodings). A refused record is counted (`spore_mirror_rows_refused_total`) and logged, and
//! never written; the cursor still moves past it, so one bad record cannot stall the mirror.
//! Records are checked beside the task that reads the agent's stream ([`super::checking`]), so
//! checking overlaps with writing the previous batch.

use spore_spec::ExperimentRecord;
use spore_spec::grpc::StoredRecord;
use spore_spec::verify_chunk::{PreparedKeyCache, verify_records_exact};

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

/// Checks a chunk of streamed records, in order: the rows of those that verify.
pub fn check_chunk(chunk: Vec<StoredRecord>, keys: &mut PreparedKeyCache) -> Vec<Checked> {
    let parsed: Vec<Result<ExperimentRecord, Refusal>> = chunk.iter().map(parse).collect();
    let records: Vec<&ExperimentRecord> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let mut verdicts = verify_records_exact(&records, keys).into_iter();
    chunk
        .into_iter()
        .zip(parsed)
        .map(|(stored, parsed)| {
            let (seq, id) = (stored.seq, stored.id.clone());
            let row = parsed.and_then(|record| match verdicts.next() {
                Some(Ok(())) => Ok(row_of(stored, record)),
                Some(Err(e)) => Err(Refusal::Verify(e.to_string())),
                None => Err(Refusal::Verify("not checked".into())),
            });
            Checked { seq, id, row }
        })
        .collect()
}

/// The record of a streamed payload, if it is one and carries the id it is streamed under.
fn parse(stored: &StoredRecord) -> Result<ExperimentRecord, Refusal> {
    let record = ExperimentRecord::from_json(&stored.payload).map_err(|e| Refusal::NotARecord(e.to_string()))?;
    if record.id != stored.id {
        return Err(Refusal::WrongId { streamed: stored.id.clone(), actual: record.id });
    }
    Ok(record)
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

    /// [`check_chunk`] of one record, alone and among good ones (the verdict may not depend
    /// on its neighbours).
    fn checked_row(stored: &StoredRecord, good: &StoredRecord) -> Result<Row, Refusal> {
        let mut keys = PreparedKeyCache::new(4, 1);
        let alone = check_chunk(vec![stored.clone()], &mut keys).remove(0).row;
        let among = check_chunk(vec![good.clone(), stored.clone(), good.clone()], &mut keys).remove(1).row;
        assert_eq!(alone, among);
        alone
    }

    #[test]
    fn only_records_that_verify_become_rows() {
        let mut record = spore_tests_record();
        Identity::from_seed([3; 32]).sign_record(&mut record);
        let good = stored(&record);
        assert_eq!(checked_row(&good, &good).map(|r| r.id), Ok(record.id.clone()));
        // The payload changed after signing: its CID no longer holds.
        let altered = StoredRecord { payload: good.payload.replace("\"keep\"", "\"discard\""), ..good.clone() };
        assert!(matches!(checked_row(&altered, &good), Err(Refusal::Verify(_))));
        // Re-hashed under the new content, but the signature is the old one.
        let mut forged = record.clone();
        forged.val_bpb = JsonNumber::Float(0.01);
        forged.id = spore_spec::cid_of(&forged.canonical_bytes());
        assert!(matches!(checked_row(&stored(&forged), &good), Err(Refusal::Verify(_))));
        // Streamed under another record's id.
        let renamed = StoredRecord { id: "0".repeat(64), ..good.clone() };
        assert!(matches!(checked_row(&renamed, &good), Err(Refusal::WrongId { .. })));
        let junk = StoredRecord { payload: "{}".into(), ..good.clone() };
        assert!(matches!(checked_row(&junk, &good), Err(Refusal::NotARecord(_))));
    }

    fn spore_tests_record() -> ExperimentRecord {
        let mut r = spore_tests::records::record(7);
        r.val_bpb = JsonNumber::Float(1.25);
        r
    }
}

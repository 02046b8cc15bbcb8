//! Reads by relationship, for the research loop and the query commands: one record, the
//! children of a record, the most recent records. Records come back parsed from the stored
//! JSON; a payload that no longer parses (it did when it was stored) is skipped, not fatal.

use rusqlite::OptionalExtension;
use spore_spec::ExperimentRecord;

use super::{DagStore, StoreError};

impl DagStore {
    /// The record with this CID.
    pub fn record(&self, id: &str) -> Result<Option<ExperimentRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT payload FROM record WHERE id = ?1")?;
        let payload: Option<String> = stmt.query_row([id], |row| row.get(0)).optional()?;
        Ok(payload.and_then(|p| ExperimentRecord::from_json(&p).ok()))
    }

    /// The direct children of a record, oldest first.
    pub fn children(&self, id: &str) -> Result<Vec<ExperimentRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT payload FROM record WHERE parent = ?1 ORDER BY ts_key, seq")?;
        let rows = stmt.query_map([id], |row| row.get::<_, String>(0))?;
        Ok(parse_all(rows.collect::<Result<Vec<_>, _>>()?))
    }

    /// The `limit` most recent records (by timestamp), newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<ExperimentRecord>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT payload FROM record ORDER BY ts_key DESC, seq DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |row| row.get::<_, String>(0))?;
        Ok(parse_all(rows.collect::<Result<Vec<_>, _>>()?))
    }

    /// The record and its ancestors, self first, until a root or a parent that is not stored.
    pub fn lineage(&self, id: &str, limit: usize) -> Result<Vec<ExperimentRecord>, StoreError> {
        let mut out = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(id) = next.take() {
            if out.len() >= limit {
                break;
            }
            let Some(record) = self.record(&id)? else { break };
            next = record.parent.clone().filter(|p| !p.is_empty());
            out.push(record);
        }
        Ok(out)
    }
}

fn parse_all(payloads: Vec<String>) -> Vec<ExperimentRecord> {
    payloads.iter().filter_map(|p| ExperimentRecord::from_json(p).ok()).collect()
}

//! Verdicts: a record a dispute rejected loses its trust and leaves the frontier (its parent
//! comes back if only this child had beaten it); the rejection is kept with its ground truth.
//! The signed events behind it are in `control_event`, so any node can check the decision.

use rusqlite::{OptionalExtension, params};

use super::{DagStore, StoreError};

impl DagStore {
    /// Marks `id` rejected; false when it was already.
    pub fn reject(&mut self, id: &str, ground_truth: f64, now: i64) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let inserted = tx
            .prepare_cached("INSERT OR IGNORE INTO rejected (id, ground_truth, decided_at) VALUES (?1, ?2, ?3)")?
            .execute(params![id, ground_truth, now])?;
        if inserted == 1 {
            tx.prepare_cached("UPDATE record SET trusted = 0, on_frontier = 0 WHERE id = ?1")?.execute([id])?;
            let parent: Option<Option<String>> = tx
                .prepare_cached("SELECT parent FROM record WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            if let Some(Some(parent)) = parent {
                tx.prepare_cached(
                    "UPDATE record SET on_frontier = 1 WHERE id = ?1 AND status = 'keep' AND trusted = 1
                     AND NOT EXISTS (SELECT 1 FROM record c WHERE c.parent = record.id AND c.status = 'keep'
                                     AND c.trusted = 1 AND c.val_bpb < record.val_bpb)",
                )?
                .execute([parent])?;
            }
        }
        tx.commit()?;
        Ok(inserted == 1)
    }

    /// Whether a dispute rejected `id`.
    pub fn is_rejected(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn.prepare_cached("SELECT 1 FROM rejected WHERE id = ?1")?.exists([id])?)
    }

    /// Every rejected record and the ground truth found, oldest decision first.
    pub fn rejected(&self) -> Result<Vec<(String, f64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT id, ground_truth FROM rejected ORDER BY decided_at, id")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

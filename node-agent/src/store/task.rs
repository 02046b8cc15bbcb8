//! Verified task manifests (`sporemesh` 0.5.0 and later), one per `task_id`, kept as they came
//! so they are relayed and synced to Python peers unchanged.

use rusqlite::OptionalExtension;
use spore_spec::TaskManifest;
use spore_spec::encode::{KeyOrder, to_compact_string};

use super::{DagStore, StoreError};

impl DagStore {
    /// Whether the manifest of `task_id` is stored.
    pub fn has_task(&self, task_id: &str) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM task_manifest WHERE task_id = ?1")?;
        Ok(stmt.query_row([task_id], |_| Ok(())).optional()?.is_some())
    }

    /// The stored manifest of `task_id`.
    pub fn task_manifest(&self, task_id: &str) -> Result<Option<TaskManifest>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT manifest FROM task_manifest WHERE task_id = ?1")?;
        let manifest: Option<String> = stmt.query_row([task_id], |row| row.get(0)).optional()?;
        Ok(manifest.and_then(|m| spore_spec::json::parse(&m).ok()).and_then(|v| TaskManifest::from_value(&v).ok()))
    }

    /// How many stored manifests `created_by` signed.
    pub fn task_count_by(&self, created_by: &str) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT COUNT(*) FROM task_manifest WHERE created_by = ?1")?;
        Ok(stmt.query_row([created_by], |row| row.get::<_, i64>(0))?.max(0) as u64)
    }

    /// Stores a verified manifest (`imported`: it came from a public peer of the bridge); false
    /// when it was there already.
    pub fn insert_task(&self, manifest: &TaskManifest, received_at: i64, imported: bool) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO task_manifest (task_id, created_by, timestamp, received_at, imported, manifest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let inserted = stmt.execute(rusqlite::params![
            manifest.task_id,
            manifest.created_by,
            manifest.timestamp,
            received_at,
            imported,
            to_compact_string(&manifest.to_value(), KeyOrder::AsGiven),
        ])?;
        Ok(inserted == 1)
    }

    /// Manifests whose (creator-chosen) timestamp is after `timestamp`, oldest first: what a
    /// Python peer's task sync asks for (its `timestamp > ?`); imported ones only if `imported`.
    pub fn tasks_since(&self, timestamp: i64, limit: usize, imported: bool) -> Result<Vec<TaskManifest>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT manifest FROM task_manifest WHERE timestamp > ?1 AND (?3 OR imported = 0)
             ORDER BY timestamp, task_id LIMIT ?2",
        )?;
        let rows =
            stmt.query_map(rusqlite::params![timestamp, limit as i64, imported], |row| row.get::<_, String>(0))?;
        let mut manifests = Vec::new();
        for manifest in rows {
            let parsed = spore_spec::json::parse(&manifest?).ok().and_then(|v| TaskManifest::from_value(&v).ok());
            manifests.extend(parsed);
        }
        Ok(manifests)
    }

    /// Every stored manifest, oldest first.
    pub fn all_tasks(&self) -> Result<Vec<TaskManifest>, StoreError> {
        self.tasks_since(i64::MIN, i64::MAX as usize, true)
    }

    /// The newest stored manifest's timestamp: where a task sync we ask for starts.
    pub fn latest_task_timestamp(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row("SELECT max(timestamp) FROM task_manifest", [], |row| row.get::<_, Option<i64>>(0))?)
    }

    /// How many manifests are stored.
    pub fn task_count(&self) -> Result<u64, StoreError> {
        Ok(self.conn.query_row("SELECT count(*) FROM task_manifest", [], |row| row.get::<_, i64>(0))?.max(0) as u64)
    }
}

//! Tasks as namespaces of the DAG (`sporemesh` 0.5.0, facts §15.1). Every stored record
//! belongs to one task, kept in the `task` column:
//!
//! * a record whose signature covers a non-empty `task_id` (version 2 and later) belongs to
//!   that task;
//! * any other record belongs to its parent's task, and a root to the *legacy* task named by
//!   its own CID (0.5.0 derives one for every parentless record, and so do we);
//! * an unsigned record whose parent is not stored has task `''` until the parent comes, and is
//!   then adopted, with its unsigned descendants. The `task_id` that a 0.5.0 node stamps on a
//!   version-1 record it relays is not signed, so anyone on the path could have written it:
//!   we derive the task from the lineage instead of believing it.
//!
//! Lineage rules on insert (a refused record is not stored):
//!
//! * a signed task must be the parent's task when the parent is stored with a known task;
//! * a signed root may not claim another record's legacy task (a task id that is the CID of a
//!   different stored record).
//!
//! Unlike 0.5.0 a task may have several roots. Its "first root wins" rule makes what a node
//! keeps depend on the order records arrived in (two nodes that saw different roots first never
//! agree again), and hands a new task to whoever publishes a root for it first.

use rusqlite::{Connection, OptionalExtension, params};
use spore_spec::ExperimentRecord;

use super::{DagStore, StoreError};

/// Where a record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lineage {
    /// In this task (`''`: not known yet); `signed` when the record's signature covers it.
    In { task: String, signed: bool },
    /// Breaks a lineage rule.
    Refused,
}

/// The task `record` belongs to, given its parent's task when the parent is stored.
pub(super) fn lineage_of(
    conn: &Connection,
    record: &ExperimentRecord,
    parent_task: Option<&str>,
) -> Result<Lineage, StoreError> {
    let has_parent = record.parent.as_deref().is_some_and(|p| !p.is_empty());
    let signed_task = record.task_id.as_deref().filter(|t| record.signs_task_id() && !t.is_empty());
    let Some(task) = signed_task else {
        let task = match (has_parent, parent_task) {
            (false, _) => record.id.clone(),
            (true, Some(parent_task)) => parent_task.to_string(),
            (true, None) => String::new(),
        };
        return Ok(Lineage::In { task, signed: false });
    };
    if let Some(parent_task) = parent_task.filter(|p| !p.is_empty())
        && parent_task != task
    {
        return Ok(Lineage::Refused);
    }
    if !has_parent && task != record.id {
        let mut stmt = conn.prepare_cached("SELECT 1 FROM record WHERE id = ?1")?;
        if stmt.exists([task])? {
            return Ok(Lineage::Refused);
        }
    }
    Ok(Lineage::In { task: task.to_string(), signed: true })
}

/// Puts the unsigned descendants of `id` that are not in `task` into it (they arrived before
/// `id` did). Runs before the record's frontier checks, which compare it with its children.
pub(super) fn adopt_descendants(conn: &Connection, id: &str, task: &str) -> Result<(), StoreError> {
    if task.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE adopted(id) AS ( \
             SELECT id FROM record WHERE parent = ?1 AND task_signed = 0 AND task != ?2 \
             UNION SELECT r.id FROM record r JOIN adopted a ON r.parent = a.id \
                 WHERE r.task_signed = 0 AND r.task != ?2) \
         UPDATE record SET task = ?2 WHERE id IN adopted",
    )?;
    stmt.execute(params![id, task])?;
    Ok(())
}

/// Adds the task columns to a store written before tasks and fills them, parents first.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let has_task = conn.prepare("SELECT 1 FROM pragma_table_info('record') WHERE name = 'task'")?.exists([])?;
    if !has_task {
        let tx = conn.transaction()?;
        tx.execute_batch(
            "ALTER TABLE record ADD COLUMN task TEXT NOT NULL DEFAULT ''; \
             ALTER TABLE record ADD COLUMN task_signed INTEGER NOT NULL DEFAULT 0;",
        )?;
        let rows: Vec<(String, String)> = tx
            .prepare("SELECT id, payload FROM record ORDER BY depth_key, ts_key, seq")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (id, payload) in rows {
            let Ok(record) = ExperimentRecord::from_json(&payload) else { continue };
            let parent_task: Option<String> = match record.parent.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => tx.query_row("SELECT task FROM record WHERE id = ?1", [p], |row| row.get(0)).optional()?,
                None => None,
            };
            // A stored record stays stored: one that breaks a rule keeps task ''.
            if let Lineage::In { task, signed } = lineage_of(&tx, &record, parent_task.as_deref())? {
                tx.execute("UPDATE record SET task = ?1, task_signed = ?2 WHERE id = ?3", params![task, signed, id])?;
                adopt_descendants(&tx, &id, &task)?;
            }
        }
        tx.commit()?;
    }
    conn.execute_batch(super::schema::TASK_INDEXES)?;
    Ok(())
}

/// What a task holds, for `spore task list` and the explorer.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTally {
    pub task: String,
    pub records: u64,
    pub keeps: u64,
    pub roots: u64,
    /// The newest record's timestamp.
    pub latest: i64,
    /// The best `val_bpb` on the task's frontier.
    pub best: Option<f64>,
}

/// How active a task is lately, as 0.5.0 picks a task when none is set: records among its 25
/// most recent, keeps among those, the newest timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaskActivity {
    pub recent: u64,
    pub keeps: u64,
    pub latest: i64,
}

impl DagStore {
    /// The task a stored record belongs to (`''` while its lineage is unknown).
    pub fn task_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT task FROM record WHERE id = ?1")?;
        Ok(stmt.query_row([id], |row| row.get(0)).optional()?)
    }

    /// Every task that holds records, the most records first (at most `limit`).
    pub fn task_tallies(&self, limit: usize) -> Result<Vec<TaskTally>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT task, COUNT(*), SUM(status = 'keep'), SUM(parent IS NULL OR parent = ''), MAX(ts_key), \
                 MIN(CASE WHEN on_frontier = 1 THEN val_bpb END) \
             FROM record WHERE task != '' GROUP BY task ORDER BY COUNT(*) DESC, task LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |row| {
            Ok(TaskTally {
                task: row.get(0)?,
                records: row.get::<_, i64>(1)?.max(0) as u64,
                keeps: row.get::<_, i64>(2)?.max(0) as u64,
                roots: row.get::<_, i64>(3)?.max(0) as u64,
                latest: row.get(4)?,
                best: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The tasks that hold frontier records, best first: `(task, frontier size, best val_bpb)`.
    /// Reads the frontier's index only, so it costs the same at a million records as at ten.
    pub fn frontier_tasks(&self, limit: usize) -> Result<Vec<(String, u64, f64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT task, COUNT(*), MIN(val_bpb) FROM record WHERE on_frontier = 1 AND task != '' \
             GROUP BY task ORDER BY MIN(val_bpb), task LIMIT ?1",
        )?;
        let rows =
            stmt.query_map([limit as i64], |row| Ok((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64, row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The activity of `task` (see [`TaskActivity`]).
    pub fn task_activity(&self, task: &str) -> Result<TaskActivity, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(status = 'keep'), 0), COALESCE(MAX(ts_key), 0) FROM \
             (SELECT status, ts_key FROM record WHERE task = ?1 ORDER BY ts_key DESC, seq DESC LIMIT 25)",
        )?;
        Ok(stmt.query_row([task], |row| {
            Ok(TaskActivity {
                recent: row.get::<_, i64>(0)?.max(0) as u64,
                keeps: row.get::<_, i64>(1)?.max(0) as u64,
                latest: row.get(2)?,
            })
        })?)
    }
}

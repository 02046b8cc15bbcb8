//! The DAG store: every record as the exact signed JSON it arrived as, plus indexed columns.
//!
//! SQLite (WAL) under `<data-dir>/db/dag.sqlite`. Columns exist only to find records; what is
//! sent to peers and exported is always the stored JSON text, never a re-serialisation of the
//! columns (that is how the Python peer loses CIDs to SQLite's type affinity). The frontier is
//! maintained on insert (a flag plus a partial index), so reading it costs the same at a million
//! records as at ten.
//!
//! Frontier, as Python defines it: a `keep` record with no direct `keep` child whose `val_bpb` is
//! strictly lower; per GPU class the filter applies to the record only. Ours also leaves out
//! records that failed a check (validation flags, depth that disagrees with the parent's).

mod browse;
mod checkpointer;
mod control;
mod frontier_class;
mod lineage;
mod measurement;
mod namespace;
mod schema;
mod status_count;
mod task;
mod verdict;

pub use browse::{BrowseRow, KeepPoint, ModelFrontier, NodeTally};
pub use measurement::MeasuredBy;
pub use namespace::{TaskActivity, TaskTally};

use std::path::Path;

use rusqlite::{CachedStatement, Connection, OptionalExtension, params};
use spore_spec::{ExperimentRecord, Flag, Status};

/// The queries that status pages, `/metrics` and the mirror's lag poll run over and over; each is
/// answered from an index (the store's tests check the plans).
const TOTAL: &str = "SELECT count(*) FROM record";
const FRONTIER_SIZE: &str = "SELECT COUNT(*) FROM record WHERE on_frontier = 1";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What kind of trouble a [`StoreError`] is, for a node that must ride it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreTrouble {
    /// Another connection holds the write lock past the busy timeout.
    Busy,
    /// The disk (or the file system's quota) has no room for the write.
    Full,
    /// Anything else: an I/O error, a read-only or corrupt file.
    Failed,
}

impl StoreTrouble {
    pub fn label(self) -> &'static str {
        match self {
            StoreTrouble::Busy => "busy",
            StoreTrouble::Full => "full",
            StoreTrouble::Failed => "failed",
        }
    }
}

impl StoreError {
    /// Whether this error may pass by itself (busy, full) or needs a person (anything else).
    pub fn trouble(&self) -> StoreTrouble {
        let (StoreError::Open { source: e, .. } | StoreError::Sqlite(e)) = self;
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => StoreTrouble::Busy,
            Some(rusqlite::ErrorCode::DiskFull) => StoreTrouble::Full,
            _ => StoreTrouble::Failed,
        }
    }
}

/// A record ready to store: parsed, verified and validated.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub record: ExperimentRecord,
    /// The payload exactly as the sender wrote it (or as we signed it).
    pub payload: String,
    pub flags: Vec<Flag>,
    /// Unix seconds when this node received it.
    pub received_at: i64,
}

/// What happened to one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored under this local sequence number; `orphan` when its parent is not (yet) here.
    Inserted {
        seq: i64,
        orphan: bool,
    },
    Duplicate,
    /// Refused: it breaks a task lineage rule ([`namespace`]).
    OutsideTask,
}

/// A record on the frontier.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierEntry {
    pub id: String,
    pub val_bpb: f64,
    pub gpu_model: String,
    pub payload: String,
    /// Its task (`''` while unknown).
    pub task: String,
}

/// Position in the sync order (parents before children: depth, then timestamp, then arrival).
pub type SyncCursor = (i64, i64, i64);

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub total: u64,
    pub keep: u64,
    pub discard: u64,
    pub crash: u64,
}

/// The SQLite DAG store. One writer (the node's core task); readers may open the same file.
#[derive(Debug)]
pub struct DagStore {
    conn: Connection,
    /// The file, for the free space of its disk (none in memory).
    path: Option<std::path::PathBuf>,
    /// Present on the node's writer: checkpoints run there, not on this connection's commits.
    _checkpointer: Option<checkpointer::Checkpointer>,
}

impl DagStore {
    /// Opens (creating if needed) the store file.
    pub fn open(path: &Path) -> Result<DagStore, StoreError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn =
            Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        let mut store = Self::init(conn)?;
        store.path = Some(path.to_path_buf());
        Ok(store)
    }

    /// The node's writer: like [`DagStore::open`], with checkpoints moved to a thread of their
    /// own so that commits never wait for the disk to take the log back.
    pub fn open_writer(path: &Path) -> Result<DagStore, StoreError> {
        let mut store = Self::open(path)?;
        match checkpointer::Checkpointer::start(path) {
            Ok(checkpointer) => {
                checkpointer::wait_briefly_when_busy(&store.conn)?;
                store.conn.execute_batch(&format!(
                    "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {};",
                    checkpointer::LOG_LIMIT_BYTES
                ))?;
                store._checkpointer = Some(checkpointer);
            }
            Err(e) => tracing::warn!(error = %e, "cannot start the checkpoint thread; checkpoints stay on commit"),
        }
        Ok(store)
    }

    /// A private in-memory store (tests, simulations).
    pub fn open_in_memory() -> Result<DagStore, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<DagStore, StoreError> {
        conn.busy_timeout(checkpointer::BUSY_TIMEOUT)?;
        conn.execute_batch(schema::PRAGMAS)?;
        conn.execute_batch(schema::SCHEMA)?;
        let mut conn = conn;
        status_count::catch_up(&mut conn)?;
        namespace::migrate(&mut conn)?;
        Ok(DagStore { conn, path: None, _checkpointer: None })
    }

    /// The store's size on disk in bytes: the database's pages (the log is bounded apart, by
    /// the checkpointer).
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        Ok(u64::try_from(pages.saturating_mul(page_size)).unwrap_or(0))
    }

    /// Bytes free to this process on the store's disk; `None` in memory or when unknown.
    pub fn free_bytes(&self) -> Option<u64> {
        let stat = nix::sys::statvfs::statvfs(self.path.as_ref()?.parent()?).ok()?;
        Some(stat.blocks_available().saturating_mul(stat.fragment_size()))
    }

    /// Takes the write lock without waiting and gives it back: whether a write could start
    /// now. The node's core asks this while its store is paused, and must not sit in the busy
    /// timeout each time.
    pub fn probe_writable(&self) -> Result<(), StoreError> {
        self.conn.busy_handler(None)?;
        let probe = self.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
        // A BEGIN that succeeded before a failed ROLLBACK leaves a transaction open.
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if self._checkpointer.is_some() {
            checkpointer::wait_briefly_when_busy(&self.conn)?;
        } else {
            self.conn.busy_timeout(checkpointer::BUSY_TIMEOUT)?;
        }
        Ok(probe?)
    }

    /// True if a record with this CID is stored.
    pub fn contains(&self, id: &str) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM record WHERE id = ?1")?;
        Ok(stmt.exists([id])?)
    }

    /// The stored payload of a record.
    pub fn payload(&self, id: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT payload FROM record WHERE id = ?1")?;
        Ok(stmt.query_row([id], |row| row.get(0)).optional()?)
    }

    /// Stores a batch in one transaction; duplicates are skipped, the rest is all-or-nothing.
    pub fn insert_batch(&mut self, items: &[StoredRecord]) -> Result<Vec<InsertOutcome>, StoreError> {
        self.insert_batch_from(&items.iter().collect::<Vec<_>>(), &[])
    }

    /// [`DagStore::insert_batch`], remembering in the same transaction which of the records
    /// came from public peers (`imported[i]` for `items[i]`; missing entries are false).
    pub fn insert_batch_from(
        &mut self,
        items: &[&StoredRecord],
        imported: &[bool],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(items.len());
        {
            let mut inserter = Inserter::new(&tx)?;
            let mut tally = status_count::Tally::default();
            for (i, item) in items.iter().enumerate() {
                let outcome = inserter.insert(item)?;
                if let InsertOutcome::Inserted { seq, .. } = outcome {
                    tally.add(item.record.status, seq);
                    if imported.get(i).copied().unwrap_or(false) {
                        tx.prepare_cached("INSERT OR IGNORE INTO imported (id) VALUES (?1)")?
                            .execute([&item.record.id])?;
                    }
                }
                outcomes.push(outcome);
            }
            tally.write(&tx)?;
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// Records in the store: a scan of the smallest index (12 ms for 1,000,000 records here).
    /// For callers that poll.
    pub fn total(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.prepare_cached(TOTAL)?.query_row([], |row| row.get(0))?;
        Ok(n as u64)
    }

    /// Records in the store, by status: counters the store keeps ([`status_count`]).
    pub fn counts(&self) -> Result<RecordCounts, StoreError> {
        let mut counts = RecordCounts::default();
        let mut stmt = self.conn.prepare_cached(status_count::COUNTS)?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
        for row in rows {
            let (status, n) = row?;
            let n = n as u64;
            counts.total += n;
            match status.as_str() {
                "keep" => counts.keep += n,
                "discard" => counts.discard += n,
                _ => counts.crash += n,
            }
        }
        Ok(counts)
    }

    /// The frontier, best first, optionally for one GPU model.
    pub fn frontier(&self, gpu_model: Option<&str>, limit: usize) -> Result<Vec<FrontierEntry>, StoreError> {
        self.frontier_in(None, gpu_model, limit)
    }

    /// The frontier of one task (all tasks: `None`), best first, optionally for one GPU model.
    pub fn frontier_in(
        &self,
        task: Option<&str>,
        gpu_model: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FrontierEntry>, StoreError> {
        let sql = match (task, gpu_model) {
            (Some(_), Some(_)) => {
                "SELECT id, val_bpb, gpu_model, payload, task FROM record \
                 WHERE on_frontier = 1 AND task = ?1 AND gpu_model = ?2 ORDER BY val_bpb, seq LIMIT ?3"
            }
            (Some(_), None) => {
                "SELECT id, val_bpb, gpu_model, payload, task FROM record \
                 WHERE on_frontier = 1 AND task = ?1 AND ?2 IS NULL ORDER BY val_bpb, seq LIMIT ?3"
            }
            (None, Some(_)) => {
                "SELECT id, val_bpb, gpu_model, payload, task FROM record \
                 WHERE on_frontier = 1 AND ?1 IS NULL AND gpu_model = ?2 ORDER BY val_bpb, seq LIMIT ?3"
            }
            (None, None) => {
                "SELECT id, val_bpb, gpu_model, payload, task FROM record \
                 WHERE on_frontier = 1 AND ?1 IS NULL AND ?2 IS NULL ORDER BY val_bpb, seq LIMIT ?3"
            }
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![task, gpu_model, limit as i64], |row| {
            Ok(FrontierEntry {
                id: row.get(0)?,
                val_bpb: row.get(1)?,
                gpu_model: row.get(2)?,
                payload: row.get(3)?,
                task: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` payloads with `timestamp >= since` after `cursor`, parents first.
    pub fn sync_page(
        &self,
        since: i64,
        cursor: Option<SyncCursor>,
        limit: usize,
    ) -> Result<Vec<(SyncCursor, String)>, StoreError> {
        let (d, t, s) = cursor.unwrap_or((i64::MIN, i64::MIN, i64::MIN));
        let mut stmt = self.conn.prepare_cached(
            "SELECT depth_key, ts_key, seq, payload FROM record \
             WHERE ts_key >= ?1 AND (depth_key, ts_key, seq) > (?2, ?3, ?4) \
             ORDER BY depth_key, ts_key, seq LIMIT ?5",
        )?;
        let rows = stmt.query_map(params![since, d, t, s, limit as i64], |row| {
            Ok(((row.get(0)?, row.get(1)?, row.get(2)?), row.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` payloads stored after local sequence number `after_seq`, in arrival order.
    pub fn page_after_seq(&self, after_seq: i64, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT seq, payload FROM record WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![after_seq, limit as i64], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` records stored after `after_seq`, in arrival order: `(seq, id, payload)`.
    pub fn records_after_seq(&self, after_seq: i64, limit: usize) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT seq, id, payload FROM record WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows =
            stmt.query_map(params![after_seq, limit as i64], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The highest local sequence number (0 when empty).
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM record", [], |row| row.get(0))?)
    }

    /// Parents that records point to but that are not stored (orphans' parents).
    pub fn missing_parents(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT r.parent FROM record r WHERE r.parent IS NOT NULL AND r.parent != '' \
             AND NOT EXISTS (SELECT 1 FROM record p WHERE p.id = r.parent) LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Calls `each` with every stored payload in arrival order.
    pub fn for_each_payload(&self, mut each: impl FnMut(&str)) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("SELECT payload FROM record ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            each(row.get_ref(0)?.as_str().unwrap_or_default());
        }
        Ok(())
    }

    /// Whether a record came from a public peer.
    pub fn is_imported(&self, id: &str) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM imported WHERE id = ?1")?;
        Ok(stmt.exists([id])?)
    }

    /// The last sequence number we received from a peer's store (by its node id).
    pub fn sync_cursor(&self, peer_node_id: &str) -> Result<Option<i64>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT last_seq FROM sync_cursor WHERE peer_node_id = ?1")?;
        Ok(stmt.query_row([peer_node_id], |row| row.get(0)).optional()?)
    }

    pub fn set_sync_cursor(&self, peer_node_id: &str, last_seq: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sync_cursor (peer_node_id, last_seq) VALUES (?1, ?2) \
             ON CONFLICT(peer_node_id) DO UPDATE SET last_seq = excluded.last_seq",
            params![peer_node_id, last_seq],
        )?;
        Ok(())
    }
}

fn status_text(status: Status) -> &'static str {
    status.as_str()
}

/// The insert path's lookups of a record's children (the store's tests check that they use the
/// parent index: a scan here makes every insert cost the whole store). `BEATEN` names the index:
/// left to itself, the planner of a store without statistics took `record_task` for its
/// `task = ?`, and every keep's insert read every record of its task.
const DISTRUST_CHILDREN: &str =
    "UPDATE record SET trusted = 0, on_frontier = 0 WHERE parent = ?1 AND depth IS NOT NULL AND depth != ?2";
const BEATEN: &str = "SELECT 1 FROM record INDEXED BY record_parent \
     WHERE parent = ?1 AND status = 'keep' AND trusted = 1 AND val_bpb < ?2 AND task = ?3";

/// The statements that storing a record runs, looked up in the statement cache once per batch
/// rather than once per record.
struct Inserter<'conn> {
    conn: &'conn Connection,
    parent: CachedStatement<'conn>,
    distrust_children: CachedStatement<'conn>,
    beaten: CachedStatement<'conn>,
    insert: CachedStatement<'conn>,
    leave_frontier: CachedStatement<'conn>,
}

impl<'conn> Inserter<'conn> {
    fn new(conn: &'conn Connection) -> Result<Self, StoreError> {
        Ok(Inserter {
            conn,
            parent: conn.prepare_cached("SELECT depth, task FROM record WHERE id = ?1")?,
            distrust_children: conn.prepare_cached(DISTRUST_CHILDREN)?,
            beaten: conn.prepare_cached(BEATEN)?,
            insert: conn.prepare_cached(
                "INSERT INTO record (id, parent, node_id, status, val_bpb, gpu_model, depth, depth_key, timestamp, \
                 ts_key, trusted, on_frontier, received_at, payload, task, task_signed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
                 ON CONFLICT(id) DO NOTHING",
            )?,
            leave_frontier: conn.prepare_cached(
                "UPDATE record SET on_frontier = 0 WHERE id = ?1 AND on_frontier = 1 AND val_bpb > ?2",
            )?,
        })
    }

    fn insert(&mut self, item: &StoredRecord) -> Result<InsertOutcome, StoreError> {
        let r = &item.record;
        let val_bpb = r.val_bpb.as_f64();
        let depth = r.depth.as_i64();
        let parent = r.parent.as_deref().filter(|p| !p.is_empty());
        let parent_row: Option<(Option<i64>, String)> = match parent {
            Some(p) => self.parent.query_row([p], |row| Ok((row.get(0)?, row.get(1)?))).optional()?,
            None => None,
        };
        let depth_ok = match (&parent_row, depth) {
            (Some((Some(parent_depth), _)), Some(d)) => parent_depth.checked_add(1) == Some(d),
            _ => true,
        };
        let (task, task_signed) = match namespace::lineage_of(self.conn, r, parent_row.as_ref().map(|p| p.1.as_str()))?
        {
            namespace::Lineage::In { task, signed } => (task, signed),
            namespace::Lineage::Refused if self.parent.exists([&r.id])? => return Ok(InsertOutcome::Duplicate),
            namespace::Lineage::Refused => return Ok(InsertOutcome::OutsideTask),
        };
        namespace::adopt_descendants(self.conn, &r.id, &task)?;
        // Children that arrived first and claim a depth this record contradicts lose their trust
        // (for a duplicate this repeats what its first insert did).
        if let Some(child_depth) = depth.and_then(|d| d.checked_add(1)) {
            self.distrust_children.execute(params![r.id, child_depth])?;
        }
        let trusted = item.flags.is_empty() && depth_ok;
        let is_keep = r.status == Status::Keep && trusted;
        let beaten = is_keep && self.beaten.exists(params![r.id, val_bpb, task])?;
        // A stored id inserts nothing (and changes nothing): the record is a duplicate.
        let inserted = self.insert.execute(params![
            r.id,
            r.parent,
            r.node_id,
            status_text(r.status),
            val_bpb,
            r.gpu_model,
            depth,
            depth.unwrap_or(i64::MAX),
            r.timestamp.as_i64(),
            r.timestamp.as_i64().unwrap_or(i64::MAX),
            trusted,
            is_keep && !beaten,
            item.received_at,
            item.payload,
            task,
            task_signed,
        ])?;
        if inserted == 0 {
            return Ok(InsertOutcome::Duplicate);
        }
        let seq = self.conn.last_insert_rowid();
        if let (true, Some(p)) = (is_keep, parent) {
            self.leave_frontier.execute(params![p, val_bpb])?;
        }
        Ok(InsertOutcome::Inserted { seq, orphan: parent.is_some() && parent_row.is_none() })
    }
}

#[cfg(test)]
mod namespace_tests;
#[cfg(test)]
mod tests;

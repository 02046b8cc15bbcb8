//! The records per status, kept beside the records: what status pages, `/metrics` and SporeNode
//! status poll, read from three rows. Counting them from the records read every row (1.5 s at
//! 1,000,000 records), and any visitor of the explorer's summary could ask as often as they liked.
//!
//! Each insert batch adds its new records' statuses in its own transaction, and notes the last
//! sequence number counted; a store opened with records past that (written by a version that
//! did not count) counts those first. Decided against the alternatives, measured on 200,000
//! inserts: a trigger doubles an insert's cost (each statement then keeps a statement journal),
//! and an index on `status` lets the planner choose it over the parent index for
//! `parent = ? AND status = 'keep'`, so every insert reads every keep.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use spore_spec::Status;

use super::StoreError;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS record_status_count (
    status TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS record_counted (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL                           -- records up to this seq are counted
);
";

/// The counters, as [`super::DagStore::counts`] reads them.
pub(super) const COUNTS: &str = "SELECT status, n FROM record_status_count";

const ADD: &str = "INSERT INTO record_status_count (status, n) VALUES (?1, ?2) \
     ON CONFLICT(status) DO UPDATE SET n = n + excluded.n";
const COUNTED: &str = "INSERT INTO record_counted (one, seq) VALUES (1, ?1) \
     ON CONFLICT(one) DO UPDATE SET seq = excluded.seq";

fn last_seq(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM record", [], |row| row.get(0))
}

fn counted(conn: &Connection) -> Result<Option<i64>, rusqlite::Error> {
    let exists = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'record_counted'", [], |_| Ok(()))
        .optional()?
        .is_some();
    match exists {
        true => Ok(Some(conn.query_row("SELECT coalesce(max(seq), 0) FROM record_counted", [], |row| row.get(0))?)),
        false => Ok(None),
    }
}

/// Brings the counters up to the records (creating them on a store that has none), under the
/// write lock, so two processes opening one store count each record once. Costs two lookups
/// when they are current.
pub(super) fn catch_up(conn: &mut Connection) -> Result<(), StoreError> {
    if counted(conn)? == Some(last_seq(conn)?) {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let from = counted(&tx)?.unwrap_or(0);
    tx.execute_batch(TABLES)?;
    let last = last_seq(&tx)?;
    if last > from {
        let mut stmt = tx.prepare("SELECT status, count(*) FROM record WHERE seq > ?1 GROUP BY status")?;
        let added: Vec<(String, i64)> =
            stmt.query_map([from], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
        drop(stmt);
        for (status, n) in added {
            tx.execute(ADD, params![status, n])?;
        }
    }
    tx.execute(COUNTED, [last])?;
    tx.commit()?;
    Ok(())
}

/// What one insert batch adds to the counters, written in its transaction by [`Tally::write`].
#[derive(Debug, Default)]
pub(super) struct Tally {
    added: [i64; 3],
    last_seq: Option<i64>,
}

impl Tally {
    /// A record stored with sequence number `seq`.
    pub(super) fn add(&mut self, status: Status, seq: i64) {
        let slot = match status {
            Status::Keep => 0,
            Status::Discard => 1,
            Status::Crash => 2,
        };
        self.added[slot] += 1;
        self.last_seq = Some(self.last_seq.map_or(seq, |s| s.max(seq)));
    }

    pub(super) fn write(self, tx: &Connection) -> Result<(), StoreError> {
        let Some(last_seq) = self.last_seq else { return Ok(()) };
        for (status, n) in [Status::Keep, Status::Discard, Status::Crash].into_iter().zip(self.added) {
            if n > 0 {
                tx.prepare_cached(ADD)?.execute(params![status.as_str(), n])?;
            }
        }
        tx.prepare_cached(COUNTED)?.execute([last_seq])?;
        Ok(())
    }
}

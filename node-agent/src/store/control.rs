//! Verified control events (challenges, responses, verifications, disputes), one per
//! `event_id`: the signed evidence from which any node recomputes a dispute's verdict.

use rusqlite::OptionalExtension;
use spore_spec::ControlEvent;
use spore_spec::encode::{KeyOrder, to_compact_string};

use super::{DagStore, StoreError};

impl DagStore {
    /// Whether an event with this `event_id` is stored.
    pub fn has_control(&self, event_id: &str) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM control_event WHERE event_id = ?1")?;
        Ok(stmt.query_row([event_id], |_| Ok(())).optional()?.is_some())
    }

    /// Events stored about `experiment_id`, and signed by `actor`.
    pub fn control_counts(&self, experiment_id: &str, actor: &str) -> Result<(u64, u64), StoreError> {
        let count = |sql: &str, key: &str| -> Result<u64, StoreError> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            Ok(stmt.query_row([key], |row| row.get::<_, i64>(0))?.max(0) as u64)
        };
        Ok((
            count("SELECT COUNT(*) FROM control_event WHERE experiment_id = ?1", experiment_id)?,
            count("SELECT COUNT(*) FROM control_event WHERE actor = ?1", actor)?,
        ))
    }

    /// Stores a verified event; false when its `event_id` was there already (the first wins:
    /// an actor cannot replace its challenge or its vote).
    pub fn insert_control(&self, event: &ControlEvent, received_at: i64) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO control_event
             (event_id, id, kind, experiment_id, actor, timestamp, received_at, envelope)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let inserted = stmt.execute(rusqlite::params![
            event.event_id(),
            event.id,
            event.kind.as_str(),
            event.experiment_id(),
            event.actor(),
            event.timestamp,
            received_at,
            to_compact_string(&event.to_value(), KeyOrder::AsGiven),
        ])?;
        Ok(inserted == 1)
    }

    /// The stored events about one experiment, in arrival order.
    pub fn controls_for(&self, experiment_id: &str) -> Result<Vec<ControlEvent>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT envelope FROM control_event WHERE experiment_id = ?1 ORDER BY rowid")?;
        let rows = stmt.query_map([experiment_id], |row| row.get::<_, String>(0))?;
        let mut events = Vec::new();
        for envelope in rows {
            let parsed = spore_spec::json::parse(&envelope?).ok().and_then(|v| ControlEvent::from_value(&v).ok());
            events.extend(parsed);
        }
        Ok(events)
    }

    /// Events stored after `rowid`, with their rowids, oldest first.
    pub fn controls_after(&self, rowid: i64, limit: usize) -> Result<Vec<(i64, ControlEvent)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT rowid, envelope FROM control_event WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")?;
        let rows = stmt.query_map(rusqlite::params![rowid, limit as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (rowid, envelope) = row?;
            let parsed = spore_spec::json::parse(&envelope).ok().and_then(|v| ControlEvent::from_value(&v).ok());
            events.extend(parsed.map(|event| (rowid, event)));
        }
        Ok(events)
    }

    /// Events whose (signer-chosen) timestamp is after `timestamp`, oldest first: what a Python
    /// peer's control sync asks for.
    pub fn controls_since(&self, timestamp: i64, limit: usize) -> Result<Vec<ControlEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT envelope FROM control_event WHERE timestamp > ?1 ORDER BY timestamp, rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![timestamp, limit as i64], |row| row.get::<_, String>(0))?;
        let mut events = Vec::new();
        for envelope in rows {
            let parsed = spore_spec::json::parse(&envelope?).ok().and_then(|v| ControlEvent::from_value(&v).ok());
            events.extend(parsed);
        }
        Ok(events)
    }

    /// The newest (signer-chosen) timestamp of a stored event: where a control sync we ask for
    /// starts, as Python's does.
    pub fn latest_control_timestamp(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row("SELECT max(timestamp) FROM control_event", [], |row| row.get::<_, Option<i64>>(0))?)
    }

    /// How many events are stored.
    pub fn control_count(&self) -> Result<u64, StoreError> {
        Ok(self.conn.query_row("SELECT count(*) FROM control_event", [], |row| row.get::<_, i64>(0))? as u64)
    }
}

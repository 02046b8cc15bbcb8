//! How this node measured the `val_bpb` of a record it published: with the trusted evaluator, or
//! by taking what `train.py` printed (a workspace of the seed's contract, or `--metric
//! reported`). Records say nothing of it on the wire (their format is the Python peer's), so the
//! node keeps it beside them and shows it (`spore frontier --json`, the explorer); for a peer's
//! record nothing is known, and nothing is shown as known.

use rusqlite::{OptionalExtension, params};

use super::{DagStore, StoreError};

/// Who measured a record's metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasuredBy {
    /// `spore-eval`, on the validation split the training process could not read.
    Evaluator,
    /// The value `train.py` printed.
    TrainPy,
}

impl MeasuredBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MeasuredBy::Evaluator => "evaluator",
            MeasuredBy::TrainPy => "train.py",
        }
    }

    fn parse(text: &str) -> Option<MeasuredBy> {
        match text {
            "evaluator" => Some(MeasuredBy::Evaluator),
            "train.py" => Some(MeasuredBy::TrainPy),
            _ => None,
        }
    }
}

impl DagStore {
    /// Notes how this node measured its record `id`.
    pub fn set_measured_by(&self, id: &str, by: MeasuredBy) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO measured (id, by) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET by = excluded.by",
            params![id, by.as_str()],
        )?;
        Ok(())
    }

    /// How this node measured record `id`; `None` for a record it did not measure (a peer's).
    pub fn measured_by(&self, id: &str) -> Result<Option<MeasuredBy>, StoreError> {
        let by: Option<String> =
            self.conn.query_row("SELECT by FROM measured WHERE id = ?1", [id], |row| row.get(0)).optional()?;
        Ok(by.as_deref().and_then(MeasuredBy::parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_is_kept_per_record_and_unknown_for_others() {
        let store = DagStore::open_in_memory().unwrap();
        store.set_measured_by("a", MeasuredBy::TrainPy).unwrap();
        store.set_measured_by("b", MeasuredBy::Evaluator).unwrap();
        assert_eq!(store.measured_by("a").unwrap(), Some(MeasuredBy::TrainPy));
        assert_eq!(store.measured_by("b").unwrap(), Some(MeasuredBy::Evaluator));
        assert_eq!(store.measured_by("c").unwrap(), None);
    }
}

//! The mirror's counters, rendered into the operator's `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct MirrorMetrics {
    /// Records received from the agent.
    pub records_streamed: AtomicU64,
    /// Rows that were new in Postgres.
    pub rows_written: AtomicU64,
    pub batches: AtomicU64,
    /// Sessions that ended in an error (database or agent gone).
    pub errors: AtomicU64,
    /// The cursor committed last.
    pub cursor: AtomicI64,
    /// The agent's newest sequence number, polled.
    pub agent_last_seq: AtomicI64,
}

impl MirrorMetrics {
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let cursor = self.cursor.load(Ordering::Relaxed);
        let last = self.agent_last_seq.load(Ordering::Relaxed);
        format!(
            "# HELP spore_mirror_records_streamed_total Records received from the agent.\n\
             # TYPE spore_mirror_records_streamed_total counter\nspore_mirror_records_streamed_total {}\n\
             # HELP spore_mirror_rows_written_total Rows new in Postgres.\n\
             # TYPE spore_mirror_rows_written_total counter\nspore_mirror_rows_written_total {}\n\
             # HELP spore_mirror_batches_total Transactions committed.\n\
             # TYPE spore_mirror_batches_total counter\nspore_mirror_batches_total {}\n\
             # HELP spore_mirror_errors_total Sessions ended by an error.\n\
             # TYPE spore_mirror_errors_total counter\nspore_mirror_errors_total {}\n\
             # HELP spore_mirror_cursor The agent sequence number committed last.\n\
             # TYPE spore_mirror_cursor gauge\nspore_mirror_cursor {cursor}\n\
             # HELP spore_mirror_lag_records Records the agent holds that are not in Postgres yet.\n\
             # TYPE spore_mirror_lag_records gauge\nspore_mirror_lag_records {}\n",
            get(&self.records_streamed),
            get(&self.rows_written),
            get(&self.batches),
            get(&self.errors),
            (last - cursor).max(0),
        )
    }
}

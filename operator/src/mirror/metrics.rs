//! The mirrors' counters, rendered into the operator's `/metrics` with one `agent` label per
//! mirrored agent (the SporeNode `namespace/name` in the cluster, the URL for `spore-operator
//! mirror`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One mirror's counters.
#[derive(Debug, Default)]
pub struct MirrorMetrics {
    /// Records received from the agent.
    pub records_streamed: AtomicU64,
    /// Rows that were new in Postgres.
    pub rows_written: AtomicU64,
    /// Streamed records that did not verify, never written.
    pub rows_refused: AtomicU64,
    pub batches: AtomicU64,
    /// Sessions that ended in an error (database or agent gone).
    pub errors: AtomicU64,
    /// The cursor committed last.
    pub cursor: AtomicI64,
    /// The agent's newest sequence number, polled.
    pub agent_last_seq: AtomicI64,
    /// Secondary indexes this mirror's lean backfill holds deferred ([`super::lean`]).
    pub indexes_deferred: AtomicI64,
    /// Lean backfills this mirror began.
    pub lean_backfills: AtomicU64,
}

/// Every running mirror's counters, by agent label.
#[derive(Debug, Default)]
pub struct MirrorRegistry {
    mirrors: Mutex<BTreeMap<String, Arc<MirrorMetrics>>>,
}

/// (name, type, help, value of one mirror)
type Family = (&'static str, &'static str, &'static str, fn(&MirrorMetrics) -> i64);

const FAMILIES: [Family; 9] = [
    ("spore_mirror_records_streamed_total", "counter", "Records received from the agent.", |m| {
        m.records_streamed.load(Ordering::Relaxed) as i64
    }),
    ("spore_mirror_rows_written_total", "counter", "Rows new in Postgres.", |m| {
        m.rows_written.load(Ordering::Relaxed) as i64
    }),
    ("spore_mirror_rows_refused_total", "counter", "Streamed records that did not verify, not written.", |m| {
        m.rows_refused.load(Ordering::Relaxed) as i64
    }),
    ("spore_mirror_batches_total", "counter", "Transactions committed.", |m| m.batches.load(Ordering::Relaxed) as i64),
    ("spore_mirror_errors_total", "counter", "Sessions ended by an error.", |m| {
        m.errors.load(Ordering::Relaxed) as i64
    }),
    ("spore_mirror_cursor", "gauge", "The agent sequence number committed last.", |m| m.cursor.load(Ordering::Relaxed)),
    ("spore_mirror_lag_records", "gauge", "Records the agent holds that are not in Postgres yet.", |m| {
        (m.agent_last_seq.load(Ordering::Relaxed) - m.cursor.load(Ordering::Relaxed)).max(0)
    }),
    ("spore_mirror_indexes_deferred", "gauge", "Secondary indexes dropped by this mirror's lean backfill.", |m| {
        m.indexes_deferred.load(Ordering::Relaxed)
    }),
    ("spore_mirror_lean_backfills_total", "counter", "Backlogs written with the secondary indexes deferred.", |m| {
        m.lean_backfills.load(Ordering::Relaxed) as i64
    }),
];

impl MirrorRegistry {
    /// The counters of the mirror of `agent`, created at zero the first time.
    pub fn get(&self, agent: &str) -> Arc<MirrorMetrics> {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        mirrors.entry(agent.to_string()).or_default().clone()
    }

    /// Stops reporting the mirror of `agent` (its SporeNode is gone).
    pub fn remove(&self, agent: &str) {
        self.mirrors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(agent);
    }

    /// The Prometheus text of every mirror; empty when none runs.
    pub fn render(&self) -> String {
        let mirrors = self.mirrors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut text = String::new();
        if mirrors.is_empty() {
            return text;
        }
        for (name, kind, help, value) in FAMILIES {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (agent, metrics) in &mirrors {
                let _ = writeln!(text, "{name}{{agent=\"{}\"}} {}", escape(agent), value(metrics));
            }
        }
        text
    }
}

/// A label value as Prometheus's text format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mirror_is_one_labelled_line_per_metric_and_removed_ones_vanish() {
        let registry = MirrorRegistry::default();
        assert_eq!(registry.render(), "");
        let a = registry.get("lab/a");
        a.cursor.store(40, Ordering::Relaxed);
        a.agent_last_seq.store(100, Ordering::Relaxed);
        registry.get("lab/\"b\"").rows_written.fetch_add(7, Ordering::Relaxed);
        let text = registry.render();
        assert!(text.contains("spore_mirror_lag_records{agent=\"lab/a\"} 60\n"), "{text}");
        assert!(text.contains("spore_mirror_rows_written_total{agent=\"lab/\\\"b\\\"\"} 7\n"), "{text}");
        assert_eq!(text.matches("# TYPE spore_mirror_cursor gauge").count(), 1);
        // The same agent is the same counters.
        assert_eq!(registry.get("lab/a").cursor.load(Ordering::Relaxed), 40);
        registry.remove("lab/a");
        assert!(!registry.render().contains("lab/a"));
    }
}

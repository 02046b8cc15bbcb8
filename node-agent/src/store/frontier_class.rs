//! The frontier of one GPU class: every GPU model on the frontier whose
//! [`spore_spec::gpu_class`] is the class (`NVIDIA H100 80GB HBM3` and `NVIDIA H100 PCIe` are
//! both `H100`), merged best first. Python compares raw model strings, so two H100 nodes
//! with different board names never build on each other's results.

use super::{DagStore, FrontierEntry, StoreError};

impl DagStore {
    /// The best `limit` frontier records of GPU class `class`.
    pub fn frontier_of_class(&self, class: &str, limit: usize) -> Result<Vec<FrontierEntry>, StoreError> {
        self.frontier_of_class_in(None, class, limit)
    }

    /// The best `limit` frontier records of GPU class `class` in one task (all: `None`).
    pub fn frontier_of_class_in(
        &self,
        task: Option<&str>,
        class: &str,
        limit: usize,
    ) -> Result<Vec<FrontierEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT DISTINCT gpu_model FROM record WHERE on_frontier = 1")?;
        let models: Vec<String> = stmt.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
        let mut entries = Vec::new();
        for model in models.iter().filter(|m| spore_spec::gpu_class(m) == class) {
            entries.extend(self.frontier_in(task, Some(model), limit)?);
        }
        entries.sort_by(|a, b| a.val_bpb.total_cmp(&b.val_bpb));
        entries.truncate(limit);
        Ok(entries)
    }
}

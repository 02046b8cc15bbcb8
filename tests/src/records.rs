//! Records for tests: an unsigned record with plausible defaults, numbered so each is distinct.
//! Tests change the fields they care about, then sign with `Identity::sign_record`.

use spore_spec::{ExperimentRecord, JsonNumber, Status};

/// Record number `n`: a root `keep` on `cpu`, `val_bpb` 1.0, timestamp 1,773,000,000 + n.
pub fn record(n: i64) -> ExperimentRecord {
    ExperimentRecord {
        parent: None,
        depth: JsonNumber::from(0),
        code_cid: format!("{n:064x}"),
        diff: String::new(),
        dataset_cid: "climbmix-400b-shuffle".into(),
        prepare_cid: String::new(),
        time_budget: JsonNumber::from(300),
        val_bpb: JsonNumber::Float(1.0),
        peak_vram_mb: JsonNumber::Float(1.0),
        num_steps: JsonNumber::from(1),
        num_params: JsonNumber::from(1),
        status: Status::Keep,
        description: format!("record {n}"),
        hypothesis: String::new(),
        agent_model: "test".into(),
        gpu_model: "cpu".into(),
        cuda_version: "unknown".into(),
        torch_version: "unknown".into(),
        node_id: String::new(),
        task_id: None,
        timestamp: JsonNumber::from(1_773_000_000 + n),
        signature: String::new(),
        id: String::new(),
        version: JsonNumber::from(1),
    }
}

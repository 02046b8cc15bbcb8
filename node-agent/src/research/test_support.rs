//! Records for the research modules' unit tests.

use spore_spec::{ExperimentRecord, JsonNumber, Status};

/// An unsigned CPU record with the given id, metric, status and description.
pub fn record(id: &str, val_bpb: f64, status: Status, description: &str) -> ExperimentRecord {
    ExperimentRecord {
        parent: None,
        depth: JsonNumber::from(2),
        code_cid: String::new(),
        diff: String::new(),
        dataset_cid: String::new(),
        prepare_cid: String::new(),
        time_budget: JsonNumber::from(300),
        val_bpb: JsonNumber::from(val_bpb),
        peak_vram_mb: JsonNumber::from(0.0),
        num_steps: JsonNumber::from(0),
        num_params: JsonNumber::from(0),
        status,
        description: description.into(),
        hypothesis: String::new(),
        agent_model: String::new(),
        gpu_model: "cpu".into(),
        cuda_version: String::new(),
        torch_version: String::new(),
        node_id: String::new(),
        task_id: None,
        timestamp: JsonNumber::from(0),
        signature: String::new(),
        id: id.into(),
        version: JsonNumber::from(1),
    }
}

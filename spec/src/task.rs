//! Signed task manifests, as `sporemesh` 0.5.0 and later publish them (`spore/task.py`): a task
//! names a research problem (metric, goal, harness, budget) and every record of 0.5.0 and later
//! belongs to one through its `task_id`.
//!
//! The id is the SHA-256 (hex) of the canonical bytes — every field but `signature` and
//! `task_id`, keys sorted, `(",", ":")` separators, ASCII — and `created_by` signs those bytes
//! (Ed25519). Python builds the manifest with `TaskManifest(**payload)`, so a payload with a key
//! it does not know makes a Python peer fail on it: such a manifest is refused here, never relayed.
//! The fields are kept as they came (key order included); a missing `version` counts as 1, as
//! Python's default does.

use crate::encode::{KeyOrder, write_compact};
use crate::json::Value;
use crate::{Identity, JsonNumber};

/// The text fields (all required).
pub const TEXT_FIELDS: [&str; 10] = [
    "name",
    "description",
    "task_type",
    "artifact_type",
    "metric",
    "goal",
    "base_code_cid",
    "prepare_cid",
    "dataset_cid",
    "created_by",
];

/// The integer fields (`version` may be absent).
pub const INTEGER_FIELDS: [&str; 3] = ["time_budget", "timestamp", "version"];

/// A manifest as it came, its identity fields read out.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskManifest {
    entries: Vec<(String, Value)>,
    pub task_id: String,
    pub created_by: String,
    pub timestamp: i64,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("a task manifest is a JSON object")]
    NotAnObject,
    #[error("unknown task manifest field {0:?} (a Python peer would fail on it)")]
    UnknownKey(String),
    #[error("task manifest field {0} is missing")]
    Missing(&'static str),
    #[error("task manifest field {0} has the wrong type")]
    WrongType(String),
    #[error("task manifest field {0} appears twice")]
    Duplicate(String),
    #[error("task id {claimed} is not the hash of the manifest ({computed})")]
    TaskId { claimed: String, computed: String },
    #[error("task manifest signature: {0}")]
    Signature(String),
}

impl TaskManifest {
    /// Reads a `task` message's payload (not yet verified: call [`TaskManifest::verify`]).
    pub fn from_value(value: &Value) -> Result<TaskManifest, TaskError> {
        let Value::Object(entries) = value else { return Err(TaskError::NotAnObject) };
        let mut seen = std::collections::HashSet::new();
        for (key, value) in entries {
            if !seen.insert(key.as_str()) {
                return Err(TaskError::Duplicate(key.clone()));
            }
            let fits = if TEXT_FIELDS.contains(&key.as_str()) || key == "signature" || key == "task_id" {
                matches!(value, Value::String(_))
            } else if INTEGER_FIELDS.contains(&key.as_str()) {
                matches!(value, Value::Number(n) if n.as_i64().is_some())
            } else {
                return Err(TaskError::UnknownKey(key.clone()));
            };
            if !fits {
                return Err(TaskError::WrongType(key.clone()));
            }
        }
        for field in TEXT_FIELDS.iter().chain(&["time_budget", "timestamp", "signature", "task_id"]) {
            if !seen.contains(field) {
                return Err(TaskError::Missing(field));
            }
        }
        let text = |name: &str| match value.get(name) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let timestamp = match value.get("timestamp") {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            _ => 0,
        };
        Ok(TaskManifest {
            entries: entries.clone(),
            task_id: text("task_id"),
            created_by: text("created_by"),
            timestamp,
            signature: text("signature"),
        })
    }

    /// What is hashed and signed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut fields: Vec<(String, Value)> =
            self.entries.iter().filter(|(k, _)| k != "signature" && k != "task_id").cloned().collect();
        if !fields.iter().any(|(k, _)| k == "version") {
            fields.push(("version".into(), Value::Number(JsonNumber::from(1))));
        }
        let mut out = Vec::new();
        write_compact(&mut out, &Value::Object(fields), KeyOrder::Sorted);
        out
    }

    /// Python's `verify_id()` and `verify_signature()`.
    pub fn verify(&self) -> Result<(), TaskError> {
        let canonical = self.canonical_bytes();
        let computed = crate::cid::cid_of(&canonical);
        if computed != self.task_id {
            return Err(TaskError::TaskId { claimed: self.task_id.clone(), computed });
        }
        crate::verify::check_signature(&self.created_by, &self.signature, &canonical)
            .map_err(|e| TaskError::Signature(e.to_string()))
    }

    /// The payload as it came.
    pub fn to_value(&self) -> Value {
        Value::Object(self.entries.clone())
    }

    /// A text field (`""` when absent or not text).
    pub fn text(&self, key: &str) -> &str {
        match self.entries.iter().find(|(k, _)| k == key) {
            Some((_, Value::String(s))) => s,
            _ => "",
        }
    }

    /// The time budget in seconds.
    pub fn time_budget(&self) -> Option<i64> {
        match self.entries.iter().find(|(k, _)| k == "time_budget") {
            Some((_, Value::Number(n))) => n.as_i64(),
            _ => None,
        }
    }

    /// A manifest signed by `identity`, with `SporeNode.create_task`'s other defaults.
    pub fn signed(identity: &Identity, name: &str, time_budget: i64, timestamp: i64) -> TaskManifest {
        let fields = TaskFields {
            name: name.into(),
            artifact_type: "python_script".into(),
            time_budget,
            ..TaskFields::default()
        };
        TaskManifest::sign(identity, &fields, timestamp)
    }

    /// A manifest of `fields` signed by `identity`, as `SporeNode.create_task` makes one.
    pub fn sign(identity: &Identity, fields: &TaskFields, timestamp: i64) -> TaskManifest {
        let text = |s: &str| Value::String(s.to_string());
        let mut entries = vec![
            ("name".to_string(), text(&fields.name)),
            ("description".into(), text(&fields.description)),
            ("task_type".into(), text(&fields.task_type)),
            ("artifact_type".into(), text(&fields.artifact_type)),
            ("metric".into(), text(&fields.metric)),
            ("goal".into(), text(&fields.goal)),
            ("base_code_cid".into(), text(&fields.base_code_cid)),
            ("prepare_cid".into(), text(&fields.prepare_cid)),
            ("dataset_cid".into(), text(&fields.dataset_cid)),
            ("time_budget".into(), Value::Number(JsonNumber::from(fields.time_budget))),
            ("created_by".into(), text(&identity.node_id())),
            ("timestamp".into(), Value::Number(JsonNumber::from(timestamp))),
            ("signature".into(), text("")),
            ("task_id".into(), text("")),
            ("version".into(), Value::Number(JsonNumber::from(1))),
        ];
        let unsigned =
            TaskManifest::from_value(&Value::Object(entries.clone())).unwrap_or_else(|e| unreachable!("{e}"));
        let canonical = unsigned.canonical_bytes();
        let signature = identity.sign_hex(&canonical);
        let task_id = crate::cid::cid_of(&canonical);
        for (key, value) in &mut entries {
            match key.as_str() {
                "signature" => *value = text(&signature),
                "task_id" => *value = text(&task_id),
                _ => {}
            }
        }
        TaskManifest::from_value(&Value::Object(entries)).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

/// What a task's creator chooses (`spore task create`'s flags, with the Python CLI's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFields {
    pub name: String,
    pub description: String,
    pub task_type: String,
    pub artifact_type: String,
    pub metric: String,
    pub goal: String,
    pub base_code_cid: String,
    pub prepare_cid: String,
    pub dataset_cid: String,
    pub time_budget: i64,
}

impl Default for TaskFields {
    fn default() -> Self {
        TaskFields {
            name: String::new(),
            description: String::new(),
            task_type: "ml_train".into(),
            artifact_type: "python_train_script".into(),
            metric: "val_bpb".into(),
            goal: "minimize".into(),
            base_code_cid: String::new(),
            prepare_cid: String::new(),
            dataset_cid: String::new(),
            time_budget: 300,
        }
    }
}

#[cfg(test)]
mod tests;

//! `ExperimentRecord`: the signed, content-addressed result of one experiment.
//!
//! Field names, JSON types and defaults follow `sporemesh` 0.1.2 (`record.py`). Numbers keep the
//! Python type they were signed with ([`JsonNumber`]); the canonical bytes, the wire payload and
//! `to_json()` are written by [`crate::encode`] exactly as Python writes them.
//!
//! Records of 0.5.0 and later carry `task_id` (their task's namespace). It is signed only when
//! `version >= 2` (the canonical bytes then hold it, `""` when absent); a version-1 record that
//! carries one (newer peers stamp it on records they relay) keeps its 0.1.2 CID. A record keeps
//! `task_id` exactly as it arrived: absent stays absent on the wire.

use std::fmt;

use crate::encode::{write_number, write_string};
use crate::json::{self, Value};
use crate::number::JsonNumber;

/// The outcome a publisher declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Keep,
    Discard,
    Crash,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Keep => "keep",
            Status::Discard => "discard",
            Status::Crash => "crash",
        }
    }

    /// Case-sensitive, as Python's `Status(value)`.
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "keep" => Some(Status::Keep),
            "discard" => Some(Status::Discard),
            "crash" => Some(Status::Crash),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One experiment: lineage, code, configuration, results, provenance, hardware, identity.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRecord {
    /// CID of the parent record; `None` for a root.
    pub parent: Option<String>,
    pub depth: JsonNumber,
    /// SHA-256 hex of the full `train.py` text.
    pub code_cid: String,
    /// Unified diff from the parent's `train.py`; empty for a baseline.
    pub diff: String,
    pub dataset_cid: String,
    pub prepare_cid: String,
    pub time_budget: JsonNumber,
    /// Validation bits per byte; lower is better; 0.0 for crashes.
    pub val_bpb: JsonNumber,
    pub peak_vram_mb: JsonNumber,
    pub num_steps: JsonNumber,
    pub num_params: JsonNumber,
    pub status: Status,
    pub description: String,
    pub hypothesis: String,
    pub agent_model: String,
    pub gpu_model: String,
    pub cuda_version: String,
    pub torch_version: String,
    /// Ed25519 public key of the signer, hex. Part of the signed bytes verbatim.
    pub node_id: String,
    /// The task (0.5.0+); `None` when the JSON has no `task_id` (every 0.1.2 record). Signed
    /// only when `version >= 2`.
    pub task_id: Option<String>,
    /// Unix seconds chosen by the signer.
    pub timestamp: JsonNumber,
    /// Ed25519 signature over the canonical bytes, hex; not itself signed.
    pub signature: String,
    /// CID = SHA-256 hex of the canonical bytes; not itself signed.
    pub id: String,
    pub version: JsonNumber,
}

/// Why a JSON value is not a 0.1.2 record. Python's `from_json` raises on the same inputs
/// (plus wrong types, which Python accepts and hashes as-is, and which we refuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is not valid JSON: {0}")]
    Json(#[from] json::JsonError),
    #[error("record must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("unknown field `{0}` (not part of a version-1 or version-2 record)")]
    UnknownField(String),
    #[error("field `{field}` must be {expected}, got {found}")]
    WrongType { field: &'static str, expected: &'static str, found: &'static str },
    #[error("status {0:?} is not one of keep, discard, crash")]
    InvalidStatus(String),
}

/// Field names in the canonical (sorted) order, with `id` and `signature` where they sort, and
/// `task_id` (present only when the record has one).
pub const SORTED_FIELDS: [&str; 24] = [
    "agent_model",
    "code_cid",
    "cuda_version",
    "dataset_cid",
    "depth",
    "description",
    "diff",
    "gpu_model",
    "hypothesis",
    "id",
    "node_id",
    "num_params",
    "num_steps",
    "parent",
    "peak_vram_mb",
    "prepare_cid",
    "signature",
    "status",
    "task_id",
    "time_budget",
    "timestamp",
    "torch_version",
    "val_bpb",
    "version",
];

enum FieldRef<'a> {
    Str(&'a str),
    OptStr(Option<&'a str>),
    Num(&'a JsonNumber),
    /// Not in this record's JSON.
    Absent,
}

impl ExperimentRecord {
    fn field(&self, name: &str) -> FieldRef<'_> {
        use FieldRef::*;
        match name {
            "agent_model" => Str(&self.agent_model),
            "code_cid" => Str(&self.code_cid),
            "cuda_version" => Str(&self.cuda_version),
            "dataset_cid" => Str(&self.dataset_cid),
            "depth" => Num(&self.depth),
            "description" => Str(&self.description),
            "diff" => Str(&self.diff),
            "gpu_model" => Str(&self.gpu_model),
            "hypothesis" => Str(&self.hypothesis),
            "id" => Str(&self.id),
            "node_id" => Str(&self.node_id),
            "num_params" => Num(&self.num_params),
            "num_steps" => Num(&self.num_steps),
            "parent" => OptStr(self.parent.as_deref()),
            "peak_vram_mb" => Num(&self.peak_vram_mb),
            "prepare_cid" => Str(&self.prepare_cid),
            "signature" => Str(&self.signature),
            "status" => Str(self.status.as_str()),
            "task_id" => self.task_id.as_deref().map_or(Absent, Str),
            "time_budget" => Num(&self.time_budget),
            "timestamp" => Num(&self.timestamp),
            "torch_version" => Str(&self.torch_version),
            "val_bpb" => Num(&self.val_bpb),
            _ => Num(&self.version),
        }
    }

    /// Version 2 or later: `task_id` is signed.
    pub fn signs_task_id(&self) -> bool {
        self.version.as_f64() >= 2.0
    }

    /// The field as written: in the canonical bytes (`with_identity` false) `task_id` is there
    /// exactly when it is signed (`""` when absent), on the wire exactly when the record has it.
    fn written_field(&self, name: &str, with_identity: bool) -> FieldRef<'_> {
        match (name, with_identity) {
            ("id" | "signature", false) => FieldRef::Absent,
            ("task_id", false) if self.signs_task_id() => FieldRef::Str(self.task_id.as_deref().unwrap_or("")),
            ("task_id", false) => FieldRef::Absent,
            _ => self.field(name),
        }
    }

    fn write_sorted(&self, out: &mut Vec<u8>, with_identity: bool) {
        out.push(b'{');
        let mut first = true;
        for name in SORTED_FIELDS {
            let field = self.written_field(name, with_identity);
            if matches!(field, FieldRef::Absent) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            match field {
                FieldRef::Str(s) | FieldRef::OptStr(Some(s)) => write_string(out, s),
                FieldRef::OptStr(None) => out.extend_from_slice(b"null"),
                FieldRef::Num(n) => write_number(out, n),
                FieldRef::Absent => {}
            }
        }
        out.push(b'}');
    }

    /// This record as a 0.1.2 peer can take it: without `task_id` (a 0.1.2 node fails on the
    /// unknown key and disconnects). `None` when `task_id` is signed (version 2+): leaving it out
    /// would break the CID, so such a record cannot go to a 0.1.2 peer at all.
    pub fn for_v1_peer(&self) -> Option<std::borrow::Cow<'_, ExperimentRecord>> {
        match (&self.task_id, self.signs_task_id()) {
            (None, false) => Some(std::borrow::Cow::Borrowed(self)),
            (Some(_), false) => Some(std::borrow::Cow::Owned(ExperimentRecord { task_id: None, ..self.clone() })),
            (_, true) => None,
        }
    }

    /// The bytes that are hashed (CID) and signed: every field but `id` and `signature`,
    /// `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024 + self.diff.len());
        self.write_sorted(&mut out, false);
        out
    }

    /// SHA-256 hex of the canonical bytes.
    pub fn compute_cid(&self) -> String {
        crate::cid::cid_of(&self.canonical_bytes())
    }

    /// Appends the payload of an `experiment` message: all fields, sorted, compact.
    pub fn write_wire_payload(&self, out: &mut Vec<u8>) {
        self.write_sorted(out, true);
    }

    /// `ExperimentRecord.to_json()`: all fields, sorted, `indent=2`.
    pub fn to_json_pretty(&self) -> String {
        let mut out = Vec::new();
        crate::encode::write_pretty_sorted(&mut out, &self.to_value(), 0);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The record as a JSON object in canonical key order, `id` and `signature` included.
    pub fn to_value(&self) -> Value {
        let entries = SORTED_FIELDS
            .iter()
            .filter_map(|name| {
                let value = match self.field(name) {
                    FieldRef::Str(s) | FieldRef::OptStr(Some(s)) => Value::String(s.to_string()),
                    FieldRef::OptStr(None) => Value::Null,
                    FieldRef::Num(n) => Value::Number(n.clone()),
                    FieldRef::Absent => return None,
                };
                Some((name.to_string(), value))
            })
            .collect();
        Value::Object(entries)
    }

    /// Parses wire JSON text (the payload of an `experiment` message, or `to_json()` output).
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        Self::from_owned_value(json::parse(text)?)
    }

    /// Builds a record from a parsed JSON object as Python's `from_json` does, except that
    /// wrong JSON types are refused instead of being hashed as-is. Absent `signature`/`id`
    /// default to `""` and absent `version` to 1 (Python's dataclass defaults); an absent
    /// `timestamp` is an error (Python substitutes "now", which can never verify).
    pub fn from_value(value: &Value) -> Result<Self, RecordError> {
        Self::from_owned_value(value.clone())
    }

    /// [`ExperimentRecord::from_value`], moving the strings out of `value` instead of copying them.
    pub fn from_owned_value(value: Value) -> Result<Self, RecordError> {
        let entries = match value {
            Value::Object(entries) => entries,
            other => return Err(RecordError::NotAnObject(other.type_name())),
        };
        let mut fields = Fields(Default::default());
        for (key, value) in entries {
            match field_slot(&key) {
                Some(slot) => fields.0[slot] = Some(value),
                None => return Err(RecordError::UnknownField(key)),
            }
        }
        let status_text = fields.string("status")?;
        Ok(ExperimentRecord {
            parent: fields.optional_string("parent")?,
            depth: fields.number("depth")?,
            code_cid: fields.string("code_cid")?,
            diff: fields.string("diff")?,
            dataset_cid: fields.string("dataset_cid")?,
            prepare_cid: fields.string("prepare_cid")?,
            time_budget: fields.number("time_budget")?,
            val_bpb: fields.number("val_bpb")?,
            peak_vram_mb: fields.number("peak_vram_mb")?,
            num_steps: fields.number("num_steps")?,
            num_params: fields.number("num_params")?,
            status: Status::parse(&status_text).ok_or(RecordError::InvalidStatus(status_text))?,
            description: fields.string("description")?,
            hypothesis: fields.string("hypothesis")?,
            agent_model: fields.string("agent_model")?,
            gpu_model: fields.string("gpu_model")?,
            cuda_version: fields.string("cuda_version")?,
            torch_version: fields.string("torch_version")?,
            node_id: fields.string("node_id")?,
            task_id: fields.present_string("task_id")?,
            timestamp: fields.number("timestamp")?,
            signature: fields.string_or_empty("signature")?,
            id: fields.string_or_empty("id")?,
            version: fields.number_or_one("version")?,
        })
    }
}

/// Python's canonical bytes for *any* JSON object taken as a record: every key but `id` and
/// `signature`, with `version` = 1 when absent, and `task_id` only when `version >= 2` (`""` when
/// absent; 0.5.0's rule), sorted and compact. Equals [`ExperimentRecord::canonical_bytes`] for
/// every well-typed record; used to give Python's cryptographic verdict on objects that are not
/// (wrong types, unknown keys).
pub fn canonical_bytes_of_object(entries: &[(String, Value)]) -> Vec<u8> {
    let mut fields: Vec<(String, Value)> =
        entries.iter().filter(|(k, _)| k != "id" && k != "signature").cloned().collect();
    if !fields.iter().any(|(k, _)| k == "version") {
        fields.push(("version".into(), Value::Number(JsonNumber::from(1))));
    }
    let signs_task_id =
        fields.iter().any(|(k, v)| k == "version" && matches!(v, Value::Number(n) if n.as_f64() >= 2.0));
    if !signs_task_id {
        fields.retain(|(k, _)| k != "task_id");
    } else if !fields.iter().any(|(k, _)| k == "task_id") {
        fields.push(("task_id".into(), Value::String(String::new())));
    }
    let mut out = Vec::new();
    crate::encode::write_compact(&mut out, &Value::Object(fields), crate::encode::KeyOrder::Sorted);
    out
}

/// Where `name` is in [`SORTED_FIELDS`]. A scan for equal strings: most lengths differ, so it
/// is cheaper than a binary search's ordered comparisons.
fn field_slot(name: &str) -> Option<usize> {
    SORTED_FIELDS.iter().position(|field| *field == name)
}

/// A record's values taken from its JSON object, one slot per field in [`SORTED_FIELDS`] order.
struct Fields([Option<Value>; SORTED_FIELDS.len()]);

impl Fields {
    fn take(&mut self, name: &'static str) -> Option<Value> {
        field_slot(name).and_then(|slot| self.0[slot].take())
    }

    fn required(&mut self, name: &'static str) -> Result<Value, RecordError> {
        self.take(name).ok_or(RecordError::MissingField(name))
    }

    fn string(&mut self, name: &'static str) -> Result<String, RecordError> {
        match self.required(name)? {
            Value::String(s) => Ok(s),
            other => Err(wrong(name, "a string", &other)),
        }
    }

    fn string_or_empty(&mut self, name: &'static str) -> Result<String, RecordError> {
        match self.take(name) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(wrong(name, "a string", &other)),
        }
    }

    /// A string that may be absent (not null).
    fn present_string(&mut self, name: &'static str) -> Result<Option<String>, RecordError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong(name, "a string", &other)),
        }
    }

    fn optional_string(&mut self, name: &'static str) -> Result<Option<String>, RecordError> {
        match self.required(name)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(wrong(name, "a string or null", &other)),
        }
    }

    fn number(&mut self, name: &'static str) -> Result<JsonNumber, RecordError> {
        match self.required(name)? {
            Value::Number(n) => Ok(n),
            other => Err(wrong(name, "a number", &other)),
        }
    }

    fn number_or_one(&mut self, name: &'static str) -> Result<JsonNumber, RecordError> {
        match self.take(name) {
            None => Ok(JsonNumber::from(1)),
            Some(Value::Number(n)) => Ok(n),
            Some(other) => Err(wrong(name, "a number", &other)),
        }
    }
}

fn wrong(field: &'static str, expected: &'static str, found: &Value) -> RecordError {
    RecordError::WrongType { field, expected, found: found.type_name() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_fields_really_are_sorted() {
        let mut sorted = SORTED_FIELDS;
        sorted.sort_unstable();
        assert_eq!(sorted, SORTED_FIELDS);
    }

    #[test]
    fn refuses_unknown_fields_wrong_types_and_bad_status() {
        let base = r#"{"parent":null,"depth":0,"code_cid":"","diff":"","dataset_cid":"","prepare_cid":"","time_budget":300,"val_bpb":1.0,"peak_vram_mb":0.0,"num_steps":1,"num_params":1,"status":"keep","description":"","hypothesis":"","agent_model":"","gpu_model":"","cuda_version":"","torch_version":"","node_id":"","timestamp":1}"#;
        let record = ExperimentRecord::from_json(base).unwrap();
        assert_eq!(record.version, JsonNumber::from(1));
        assert_eq!(record.id, "");
        let with = |from: &str, to: &str| ExperimentRecord::from_json(&base.replace(from, to));
        assert_eq!(
            with("\"depth\":0", "\"depth\":0,\"task_ids\":\"x\""),
            Err(RecordError::UnknownField("task_ids".into()))
        );
        assert!(matches!(
            with("\"depth\":0", "\"depth\":0,\"task_id\":null"),
            Err(RecordError::WrongType { field: "task_id", .. })
        ));
        assert_eq!(with("\"depth\":0", "\"depth\":0,\"task_id\":\"x\"").unwrap().task_id.as_deref(), Some("x"));
        assert_eq!(with("\"keep\"", "\"KEEP\""), Err(RecordError::InvalidStatus("KEEP".into())));
        assert!(matches!(with("\"depth\":0", "\"depth\":\"0\""), Err(RecordError::WrongType { field: "depth", .. })));
        assert!(matches!(with("\"diff\":\"\"", "\"diff\":null"), Err(RecordError::WrongType { field: "diff", .. })));
        assert_eq!(with(",\"timestamp\":1", ""), Err(RecordError::MissingField("timestamp")));
        assert_eq!(ExperimentRecord::from_json("[]"), Err(RecordError::NotAnObject("array")));
    }
}

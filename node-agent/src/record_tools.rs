//! `spore record check` and `spore record sign`: per-line verdicts and signing, the tools for
//! debugging interop with other peers.
//!
//! `check` reports the cryptographic verdict exactly as Python computes it (`verify_cid`,
//! `verify_signature` over the sorted record without `id`/`signature`, `version` defaulting to
//! 1), even for records Python's `from_json` would refuse, and separately whether this node
//! would accept the record (`error` is null only then).

use spore_spec::encode::{KeyOrder, write_string};
use spore_spec::json::{self, Value};
use spore_spec::record::canonical_bytes_of_object;
use spore_spec::verify::{VerifyError, check_signature};
use spore_spec::{ExperimentRecord, Identity, JsonNumber, ValidationPolicy, cid_of, validate};

/// The verdict on one input line.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// `id` as given, if it was a string.
    pub id: Option<String>,
    /// CID recomputed from the record's fields, if the line was a JSON object.
    pub cid: Option<String>,
    pub cid_ok: bool,
    pub sig_ok: bool,
    /// Why this node would refuse the record; `None` if it would accept it.
    pub error: Option<String>,
}

impl CheckReport {
    /// One JSON line: `{"id":…,"cid":…,"cid_ok":…,"sig_ok":…,"error":…}`.
    pub fn to_json_line(&self) -> String {
        let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        let value = Value::Object(vec![
            ("id".into(), opt(&self.id)),
            ("cid".into(), opt(&self.cid)),
            ("cid_ok".into(), Value::Bool(self.cid_ok)),
            ("sig_ok".into(), Value::Bool(self.sig_ok)),
            ("error".into(), opt(&self.error)),
        ]);
        spore_spec::encode::to_compact_string(&value, KeyOrder::AsGiven)
    }
}

/// A record may be given bare or wrapped in its `experiment` envelope.
fn unwrap_envelope(value: Value) -> Value {
    match (value.get("type"), value.get("payload")) {
        (Some(Value::String(t)), Some(payload @ Value::Object(_))) if t == "experiment" => payload.clone(),
        _ => value,
    }
}

/// Checks one line of input. `now` is Unix seconds, for the future-timestamp rule.
pub fn check_line(line: &[u8], now: i64) -> CheckReport {
    let mut report = CheckReport { id: None, cid: None, cid_ok: false, sig_ok: false, error: None };
    let value = match json::parse_bytes(line) {
        Ok(value) => unwrap_envelope(value),
        Err(e) => {
            report.error = Some(format!("not JSON: {e}"));
            return report;
        }
    };
    let Value::Object(entries) = &value else {
        report.error = Some(format!("record must be a JSON object, got {}", value.type_name()));
        return report;
    };
    let text = |key: &str| match value.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    report.id = text("id");
    let canonical = canonical_bytes_of_object(entries);
    let cid = cid_of(&canonical);
    report.cid_ok = report.id.as_deref() == Some(cid.as_str());
    report.cid = Some(cid);
    report.sig_ok = match (text("node_id"), text("signature")) {
        (Some(node_id), Some(sig)) => check_signature(&node_id, &sig, &canonical).is_ok(),
        _ => false,
    };
    report.error = acceptance_error(&value, &report, now);
    report
}

fn acceptance_error(value: &Value, report: &CheckReport, now: i64) -> Option<String> {
    let record = match ExperimentRecord::from_value(value) {
        Ok(record) => record,
        Err(e) => return Some(e.to_string()),
    };
    if !report.cid_ok {
        let claimed = record.id.clone();
        let computed = report.cid.clone().unwrap_or_default();
        return Some(VerifyError::CidMismatch { claimed, computed }.to_string());
    }
    if let Err(e) = check_signature(&record.node_id, &record.signature, &record.canonical_bytes()) {
        return Some(e.to_string());
    }
    validate(&record, &ValidationPolicy::default(), now).err().map(|e| e.to_string())
}

/// Why one line could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("not JSON: {0}")]
    Json(#[from] json::JsonError),
    #[error("{0}")]
    Record(#[from] spore_spec::RecordError),
    #[error("refusing to sign: `{0}` is not a finite number")]
    NonFinite(&'static str),
}

/// Signs one line of record fields with `identity`. `node_id` comes from the identity; an
/// absent `timestamp` becomes `now` and an absent `version` 1, as in Python.
pub fn sign_line(line: &[u8], identity: &Identity, now: i64) -> Result<ExperimentRecord, SignError> {
    let mut value = json::parse_bytes(line)?;
    if let Value::Object(entries) = &mut value {
        entries.retain(|(k, _)| k != "node_id" && k != "id" && k != "signature");
        entries.push(("node_id".into(), Value::String(identity.node_id())));
        if !entries.iter().any(|(k, _)| k == "timestamp") {
            entries.push(("timestamp".into(), Value::Number(JsonNumber::from(now))));
        }
    }
    let mut record = ExperimentRecord::from_value(&value)?;
    for (field, number) in [
        ("depth", &record.depth),
        ("time_budget", &record.time_budget),
        ("val_bpb", &record.val_bpb),
        ("peak_vram_mb", &record.peak_vram_mb),
        ("num_steps", &record.num_steps),
        ("num_params", &record.num_params),
        ("timestamp", &record.timestamp),
        ("version", &record.version),
    ] {
        if !number.is_finite() {
            return Err(SignError::NonFinite(field));
        }
    }
    identity.sign_record(&mut record);
    Ok(record)
}

/// The signed record as one line of wire JSON (all fields, sorted, compact).
pub fn signed_line(record: &ExperimentRecord) -> String {
    let mut out = Vec::new();
    record.write_wire_payload(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// An error line for `sign`: `{"error":"…"}`.
pub fn error_line(message: &str) -> String {
    let mut out = b"{\"error\":".to_vec();
    write_string(&mut out, message);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

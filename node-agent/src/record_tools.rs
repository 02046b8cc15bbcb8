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
use spore_spec::verify_chunk::{PreparedKeyCache, begin_signature_check, finish_signature_checks};
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
    let mut reports = check_lines(&[line], now, &mut PreparedKeyCache::default());
    reports.pop().unwrap_or(CheckReport { id: None, cid: None, cid_ok: false, sig_ok: false, error: None })
}

/// One line parsed: its report so far, and for an object its value and canonical bytes.
struct Parsed {
    report: CheckReport,
    record: Option<(Value, Vec<u8>)>,
}

fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn parse_line(line: &[u8]) -> Parsed {
    let mut report = CheckReport { id: None, cid: None, cid_ok: false, sig_ok: false, error: None };
    let value = match json::parse_bytes(line) {
        Ok(value) => unwrap_envelope(value),
        Err(e) => {
            report.error = Some(format!("not JSON: {e}"));
            return Parsed { report, record: None };
        }
    };
    let Value::Object(entries) = &value else {
        report.error = Some(format!("record must be a JSON object, got {}", value.type_name()));
        return Parsed { report, record: None };
    };
    report.id = text(&value, "id");
    let canonical = canonical_bytes_of_object(entries);
    let cid = cid_of(&canonical);
    report.cid_ok = report.id.as_deref() == Some(cid.as_str());
    report.cid = Some(cid);
    Parsed { report, record: Some((value, canonical)) }
}

/// Checks many lines, in order: each exactly as [`check_line`], with the publishers' keys
/// prepared once in `keys` and the signature checks finished together (one shared inversion,
/// each signature its own verdict).
pub fn check_lines(lines: &[&[u8]], now: i64, keys: &mut PreparedKeyCache) -> Vec<CheckReport> {
    let mut parsed: Vec<Parsed> = lines.iter().map(|line| parse_line(line)).collect();
    let (mut pending, mut slots) = (Vec::new(), Vec::new());
    for (slot, line) in parsed.iter().enumerate() {
        let Some((value, canonical)) = &line.record else { continue };
        let (Some(node_id), Some(signature)) = (text(value, "node_id"), text(value, "signature")) else { continue };
        if let Ok(check) = keys.key(&node_id).and_then(|key| begin_signature_check(&key, &signature, canonical)) {
            slots.push(slot);
            pending.push(check);
        }
    }
    for (slot, holds) in slots.into_iter().zip(finish_signature_checks(&pending)) {
        parsed[slot].report.sig_ok = holds;
    }
    parsed
        .into_iter()
        .map(|Parsed { mut report, record }| {
            if let Some((value, canonical)) = record {
                report.error = acceptance_error(&value, &canonical, &report, now);
            }
            report
        })
        .collect()
}

fn acceptance_error(value: &Value, canonical: &[u8], report: &CheckReport, now: i64) -> Option<String> {
    let record = match ExperimentRecord::from_value(value) {
        Ok(record) => record,
        Err(e) => return Some(e.to_string()),
    };
    if !report.cid_ok {
        let claimed = record.id.clone();
        let computed = report.cid.clone().unwrap_or_default();
        return Some(VerifyError::CidMismatch { claimed, computed }.to_string());
    }
    // The signature over the record's own canonical bytes: the verdict above when those are the
    // bytes it was checked over (always, for a record whose CID holds), else checked again.
    let signed = record.canonical_bytes();
    if (signed != canonical || !report.sig_ok)
        && let Err(e) = check_signature(&record.node_id, &record.signature, &signed)
    {
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

//! Wire messages: the JSON envelope `{"type": ..., "payload": {...}}` and its typed payloads.
//!
//! Every 0.1.2 message type is here, written with Python's key order (the envelope is not
//! sorted; payload keys are in the order the Python code builds its dicts). Types we do not know
//! decode to [`Message::Unknown`], never to an error: forward compatibility is what lets newer
//! peers add messages without splitting the mesh. A payload of a known type that is malformed is
//! a [`MessageError`] for that one message; the connection is not at fault for the frame.

use crate::control::{ControlEvent, ControlKind};
use crate::encode::{KeyOrder, write_compact, write_number, write_string};
use crate::json::{self, Value};
use crate::number::JsonNumber;
use crate::record::{ExperimentRecord, RecordError};

/// Bodies larger than this are refused by the frame decoder (Python's `MAX_MESSAGE_SIZE`).
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// Largest `experiment` body: the record (its diff of a rewritten `train.py` included) and the
/// envelope. Python's records are a few kilobytes; a diff that replaces a 25 KB `train.py` whole
/// is about 60 KB of escaped JSON.
pub const MAX_RECORD_MESSAGE_SIZE: usize = 1024 * 1024;

/// Largest body accepted for each message type, decided from the envelope's `type` before the
/// body is parsed. Control messages are tiny; an `experiment` carries a diff; a type we do not
/// know is read only to be logged.
pub fn max_body_size(message_type: &str) -> usize {
    match message_type {
        "ping" | "pong" | "pex_request" | "sync_request" | "sync_response" | "hello" | "auth" => 4 * 1024,
        "control_sync_request" | "control_sync_response" | "task_sync_request" | "task_sync_response" => 4 * 1024,
        // A task manifest is ten short strings and three numbers (0.5.0's `TaskManifest`).
        "get_records" | "have" | "code_request" | "task" => 64 * 1024,
        "code_response" => 2 * 1024 * 1024,
        "challenge" | "challenge_response" | "dispute" | "verification" => 16 * 1024,
        "pex_response" => 256 * 1024,
        _ => MAX_RECORD_MESSAGE_SIZE,
    }
}

/// The envelope's `type` as [`json::top_level_string`] finds it, read straight from the front of
/// the body when it is laid out as every peer writes it (`{"type":"<plain name>"`), so the
/// common case costs no pass over the body. A second `type` later in the body is no way around
/// the cap of the first: the full parse refuses duplicate keys.
fn envelope_type(text: &str) -> Result<Option<std::borrow::Cow<'_, str>>, json::JsonError> {
    if let Some(rest) = text.strip_prefix("{\"type\":\"")
        && let Some(end) = rest.find(['"', '\\'])
        && rest.as_bytes()[end] == b'"'
    {
        return Ok(Some(std::borrow::Cow::Borrowed(&rest[..end])));
    }
    Ok(json::top_level_string(text, "type")?.map(std::borrow::Cow::Owned))
}

/// The outcome a challenger announces in a `dispute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeOutcome {
    Upheld,
    Rejected,
}

impl DisputeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeOutcome::Upheld => "upheld",
            DisputeOutcome::Rejected => "rejected",
        }
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Experiment(Box<ExperimentRecord>),
    /// Ask for every record with `timestamp >= since` (0.1.2 always sends 0). `after_seq` is
    /// our extension: only records the responder stored after its local sequence number `n`
    /// (the `last_seq` of its previous end marker); 0.1.2 ignores it.
    SyncRequest {
        since: JsonNumber,
        after_seq: Option<u64>,
    },
    /// End of a sync answer: our extension (0.1.2 defines the type and ignores it).
    /// `last_seq` is the responder's local sequence number of the last record it holds.
    SyncResponse {
        since: JsonNumber,
        count: u64,
        last_seq: Option<u64>,
    },
    /// Our extension, sent first on every connection: who we are and where we listen, and a
    /// fresh nonce for the other side to sign (`crate::handshake`).
    Hello {
        node_id: String,
        listen_port: u16,
        capabilities: Vec<String>,
        agent: String,
        nonce: Option<String>,
    },
    /// Our extension: the answer to the other side's `hello` nonce, proving our `node_id`.
    Auth {
        signature: String,
    },
    /// Our extension: ask for records by CID (orphans' parents, announced records).
    GetRecords {
        ids: Vec<String>,
    },
    /// Our extension: "I stored these records", sent instead of the records themselves to
    /// peers that announce the `announce` capability; they ask with `get_records` for the ids
    /// they lack.
    Have {
        ids: Vec<String>,
    },
    PexRequest,
    /// `host:port` strings; the key is singular `peer` in 0.1.2.
    PexResponse {
        peer: Vec<String>,
    },
    Challenge {
        experiment_id: String,
        challenger_id: String,
        challenger_bpb: JsonNumber,
        challenger_gpu: String,
    },
    ChallengeResponse {
        experiment_id: String,
        challenger_id: String,
        verifier_id: String,
        verifier_bpb: JsonNumber,
        verifier_gpu: String,
    },
    Dispute {
        experiment_id: String,
        challenger_id: String,
        challenger_bpb: JsonNumber,
        outcome: DisputeOutcome,
        ground_truth_bpb: JsonNumber,
        verifier_count: JsonNumber,
    },
    /// Ask for the code (`train.py`) stored under a CID (Python 0.1.6+); answered only when found.
    CodeRequest {
        code_cid: String,
    },
    /// The code, base64; the receiver checks SHA-256(code) == `code_cid` before using it.
    CodeResponse {
        code_cid: String,
        code: String,
    },
    /// A signed control event (0.3.10's envelope), sent under its own type with the 0.1.2
    /// fields beside it (so 0.1.2 peers read it as before) and the envelope under `signed`.
    /// Decoding only reads the envelope; the receiver verifies it.
    Signed(Box<ControlEvent>),
    /// The same event in the form Python 0.3.10 and later send it: the payload *is* the
    /// envelope. Not read by 0.1.2 peers; our extended form ([`Message::Signed`]) is not read by
    /// 0.3.10 and later, which drop it as an invalid payload.
    Control(Box<ControlEvent>),
    Ping,
    Pong,
    /// A type this implementation does not know; kept so it can be logged or relayed.
    Unknown {
        message_type: String,
        payload: Value,
    },
}

/// Why one message could not be decoded. None of these justify closing the connection alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message body is not JSON: {0}")]
    Json(#[from] json::JsonError),
    #[error("message body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("message has no string `type`")]
    NoType,
    #[error("`payload` must be an object, got {0}")]
    PayloadNotAnObject(&'static str),
    #[error("{message_type} message of {size} bytes exceeds its limit of {limit}")]
    TooLarge { message_type: String, size: usize, limit: usize },
    #[error("{message_type}: field `{field}` must be {expected}")]
    BadField { message_type: &'static str, field: &'static str, expected: &'static str },
    #[error("experiment payload: {0}")]
    Record(#[from] RecordError),
}

impl Message {
    /// The envelope's `type` string.
    pub fn message_type(&self) -> &str {
        match self {
            Message::Experiment(_) => "experiment",
            Message::SyncRequest { .. } => "sync_request",
            Message::SyncResponse { .. } => "sync_response",
            Message::Hello { .. } => "hello",
            Message::Auth { .. } => "auth",
            Message::GetRecords { .. } => "get_records",
            Message::Have { .. } => "have",
            Message::PexRequest => "pex_request",
            Message::PexResponse { .. } => "pex_response",
            Message::Challenge { .. } => "challenge",
            Message::ChallengeResponse { .. } => "challenge_response",
            Message::Dispute { .. } => "dispute",
            Message::Signed(event) | Message::Control(event) => event.kind.as_str(),
            Message::CodeRequest { .. } => "code_request",
            Message::CodeResponse { .. } => "code_response",
            Message::Ping => "ping",
            Message::Pong => "pong",
            Message::Unknown { message_type, .. } => message_type,
        }
    }

    /// Decodes a frame body. Python ignores a body without `type`; we report [`MessageError::NoType`]
    /// and the caller ignores it the same way.
    pub fn decode(body: &[u8]) -> Result<Message, MessageError> {
        Self::decode_with_payload_span(body).map(|(message, _)| message)
    }

    /// [`Message::decode`], also returning the byte range of the payload in `body`, so an
    /// `experiment` can be stored and relayed exactly as its sender wrote it.
    ///
    /// The type and its size cap are found first, by a linear skim that builds no value
    /// ([`Message::peek_type`]), so an oversize body costs one pass and no allocation.
    pub fn decode_with_payload_span(body: &[u8]) -> Result<(Message, Option<std::ops::Range<usize>>), MessageError> {
        let text = std::str::from_utf8(body).map_err(|e| json::JsonError::InvalidUtf8(e.valid_up_to()))?;
        if let Some(message_type) = envelope_type(text)? {
            let limit = max_body_size(&message_type);
            if body.len() > limit {
                return Err(MessageError::TooLarge {
                    message_type: message_type.into_owned(),
                    size: body.len(),
                    limit,
                });
            }
        }
        let (value, spans) = json::parse_with_spans(text)?;
        let span = spans.into_iter().rev().find(|(key, _)| key == "payload").map(|(_, range)| range);
        Ok((Self::from_value(value)?, span))
    }

    /// The envelope's `type`, read without parsing the body (the size caps and rate charges are
    /// decided from it). `None` for a body that is not a JSON object with one string `type`.
    pub fn peek_type(body: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(body).ok()?;
        envelope_type(text).ok().flatten().map(std::borrow::Cow::into_owned)
    }

    fn from_value(value: Value) -> Result<Message, MessageError> {
        let entries = match value {
            Value::Object(entries) => entries,
            other => return Err(MessageError::NotAnObject(other.type_name())),
        };
        let (mut message_type, mut payload) = (None, None);
        for (key, value) in entries {
            match key.as_str() {
                "type" => message_type = Some(value),
                "payload" => payload = Some(value),
                _ => {}
            }
        }
        let Some(Value::String(message_type)) = message_type else {
            return Err(MessageError::NoType);
        };
        let message_type = message_type.as_str();
        let payload = payload.unwrap_or(Value::Object(Vec::new()));
        if !matches!(payload, Value::Object(_)) {
            return Err(MessageError::PayloadNotAnObject(payload.type_name()));
        }
        if message_type == "experiment" {
            return Ok(Message::Experiment(Box::new(ExperimentRecord::from_owned_value(payload)?)));
        }
        let payload = &payload;
        let p = Payload { message_type: static_type(message_type), value: payload };
        let control = ControlKind::parse(message_type).is_some();
        if control && payload.get("signature").is_some() && payload.get("payload").is_some() {
            let event = ControlEvent::from_value(payload).map_err(|_| p.bad("payload", "a control envelope"))?;
            if event.kind.as_str() != message_type {
                return Err(p.bad("payload", "an envelope of the message's type"));
            }
            return Ok(Message::Control(Box::new(event)));
        }
        if let Some(signed) = payload.get("signed").filter(|_| control) {
            let event = ControlEvent::from_value(signed).map_err(|_| p.bad("signed", "a control envelope"))?;
            if event.kind.as_str() != message_type {
                return Err(p.bad("signed", "an envelope of the message's type"));
            }
            return Ok(Message::Signed(Box::new(event)));
        }
        Ok(match message_type {
            "sync_request" => {
                Message::SyncRequest { since: p.number_or("since", 0)?, after_seq: p.optional_u64("after_seq")? }
            }
            "sync_response" => Message::SyncResponse {
                since: p.number_or("since", 0)?,
                count: p.optional_u64("count")?.unwrap_or(0),
                last_seq: p.optional_u64("last_seq")?,
            },
            "hello" => Message::Hello {
                node_id: p.string("node_id")?,
                listen_port: p
                    .optional_u64("listen_port")?
                    .and_then(|port| u16::try_from(port).ok())
                    .ok_or_else(|| p.bad("listen_port", "a port number"))?,
                capabilities: p.string_list("capabilities")?,
                agent: p.string("agent").unwrap_or_default(),
                nonce: match payload.get("nonce") {
                    None => None,
                    Some(Value::String(nonce)) if nonce.len() <= 128 => Some(nonce.clone()),
                    Some(_) => return Err(p.bad("nonce", "a string of at most 128 characters")),
                },
            },
            "auth" => Message::Auth { signature: p.string("signature")? },
            "get_records" => Message::GetRecords { ids: p.string_list("ids")? },
            "have" => Message::Have { ids: p.string_list("ids")? },
            "pex_request" => Message::PexRequest,
            "pex_response" => Message::PexResponse { peer: p.string_list("peer")? },
            "challenge" => Message::Challenge {
                experiment_id: p.string("experiment_id")?,
                challenger_id: p.string("challenger_id")?,
                challenger_bpb: p.number("challenger_bpb")?,
                challenger_gpu: p.string("challenger_gpu")?,
            },
            "challenge_response" => Message::ChallengeResponse {
                experiment_id: p.string("experiment_id")?,
                challenger_id: p.string("challenger_id")?,
                verifier_id: p.string("verifier_id")?,
                verifier_bpb: p.number("verifier_bpb")?,
                verifier_gpu: p.string("verifier_gpu")?,
            },
            "dispute" => Message::Dispute {
                experiment_id: p.string("experiment_id")?,
                challenger_id: p.string("challenger_id")?,
                challenger_bpb: p.number("challenger_bpb")?,
                outcome: match p.string("outcome")?.as_str() {
                    "upheld" => DisputeOutcome::Upheld,
                    "rejected" => DisputeOutcome::Rejected,
                    _ => return Err(p.bad("outcome", "\"upheld\" or \"rejected\"")),
                },
                ground_truth_bpb: p.number("ground_truth_bpb")?,
                verifier_count: p.number("verifier_count")?,
            },
            "code_request" => Message::CodeRequest { code_cid: p.string("code_cid")? },
            "code_response" => Message::CodeResponse { code_cid: p.string("code_cid")?, code: p.string("code")? },
            "ping" => Message::Ping,
            "pong" => Message::Pong,
            _ => Message::Unknown { message_type: message_type.to_owned(), payload: payload.clone() },
        })
    }

    /// The frame body: `{"type":"…","payload":{…}}`, compact and ASCII, as Python's `encode_message`.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"type\":");
        write_string(&mut out, self.message_type());
        out.extend_from_slice(b",\"payload\":");
        self.write_payload(&mut out);
        out.push(b'}');
        out
    }

    /// Appends the payload object: records sorted, unknown payloads as received, the rest in
    /// the key order Python builds them in.
    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            Message::Experiment(record) => return record.write_wire_payload(out),
            Message::Unknown { payload, .. } => return write_compact(out, payload, KeyOrder::AsGiven),
            Message::Signed(event) => return write_signed(out, event),
            Message::Control(event) => return write_compact(out, &event.to_value(), KeyOrder::AsGiven),
            _ => {}
        }
        out.push(b'{');
        let mut w = PayloadWriter { out, first: true };
        match self {
            Message::SyncRequest { since, after_seq } => {
                w.number("since", since);
                if let Some(seq) = after_seq {
                    w.number("after_seq", &JsonNumber::Int(seq.to_string()));
                }
            }
            Message::SyncResponse { since, count, last_seq } => {
                w.number("since", since);
                w.number("count", &JsonNumber::Int(count.to_string()));
                if let Some(seq) = last_seq {
                    w.number("last_seq", &JsonNumber::Int(seq.to_string()));
                }
            }
            Message::Hello { node_id, listen_port, capabilities, agent, nonce } => {
                w.string("node_id", node_id);
                w.number("listen_port", &JsonNumber::Int(listen_port.to_string()));
                w.string_list("capabilities", capabilities);
                w.string("agent", agent);
                if let Some(nonce) = nonce {
                    w.string("nonce", nonce);
                }
            }
            Message::Auth { signature } => w.string("signature", signature),
            Message::GetRecords { ids } | Message::Have { ids } => w.string_list("ids", ids),
            Message::PexResponse { peer } => w.string_list("peer", peer),
            Message::Challenge { experiment_id, challenger_id, challenger_bpb, challenger_gpu } => {
                w.string("experiment_id", experiment_id);
                w.string("challenger_id", challenger_id);
                w.number("challenger_bpb", challenger_bpb);
                w.string("challenger_gpu", challenger_gpu);
            }
            Message::ChallengeResponse { experiment_id, challenger_id, verifier_id, verifier_bpb, verifier_gpu } => {
                w.string("experiment_id", experiment_id);
                w.string("challenger_id", challenger_id);
                w.string("verifier_id", verifier_id);
                w.number("verifier_bpb", verifier_bpb);
                w.string("verifier_gpu", verifier_gpu);
            }
            Message::Dispute {
                experiment_id,
                challenger_id,
                challenger_bpb,
                outcome,
                ground_truth_bpb,
                verifier_count,
            } => {
                w.string("experiment_id", experiment_id);
                w.string("challenger_id", challenger_id);
                w.number("challenger_bpb", challenger_bpb);
                w.string("outcome", outcome.as_str());
                w.number("ground_truth_bpb", ground_truth_bpb);
                w.number("verifier_count", verifier_count);
            }
            Message::CodeRequest { code_cid } => w.string("code_cid", code_cid),
            Message::CodeResponse { code_cid, code } => {
                w.string("code_cid", code_cid);
                w.string("code", code);
            }
            Message::PexRequest | Message::Ping | Message::Pong => {}
            Message::Experiment(_) | Message::Unknown { .. } | Message::Signed(_) | Message::Control(_) => {}
        }
        w.out.push(b'}');
    }

    /// The whole frame: 4-byte big-endian body length, then the body.
    pub fn encode_frame(&self) -> Vec<u8> {
        crate::frame::frame_bytes(&self.encode_body())
    }
}

/// The 0.1.2 fields of a signed event's kind, in Python's order, then `signed`: the envelope.
fn write_signed(out: &mut Vec<u8>, event: &ControlEvent) {
    let legacy: &[&str] = match event.kind {
        ControlKind::Challenge => &["experiment_id", "challenger_id", "challenger_bpb", "challenger_gpu"],
        ControlKind::ChallengeResponse => {
            &["experiment_id", "challenger_id", "verifier_id", "verifier_bpb", "verifier_gpu"]
        }
        ControlKind::Dispute => {
            &["experiment_id", "challenger_id", "challenger_bpb", "outcome", "ground_truth_bpb", "verifier_count"]
        }
        ControlKind::Verification => &[],
    };
    let mut fields: Vec<(String, Value)> =
        legacy.iter().filter_map(|key| event.payload.iter().find(|(k, _)| k == key).cloned()).collect();
    fields.push(("signed".into(), event.to_value()));
    write_compact(out, &Value::Object(fields), KeyOrder::AsGiven);
}

fn static_type(message_type: &str) -> &'static str {
    match message_type {
        "hello" => "hello",
        "auth" => "auth",
        "get_records" => "get_records",
        "have" => "have",
        "sync_request" => "sync_request",
        "sync_response" => "sync_response",
        "pex_response" => "pex_response",
        "challenge" => "challenge",
        "challenge_response" => "challenge_response",
        "dispute" => "dispute",
        "verification" => "verification",
        "code_request" => "code_request",
        "code_response" => "code_response",
        _ => "message",
    }
}

struct Payload<'a> {
    message_type: &'static str,
    value: &'a Value,
}

impl Payload<'_> {
    fn bad(&self, field: &'static str, expected: &'static str) -> MessageError {
        MessageError::BadField { message_type: self.message_type, field, expected }
    }

    fn string(&self, field: &'static str) -> Result<String, MessageError> {
        match self.value.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(self.bad(field, "a string")),
        }
    }

    fn number(&self, field: &'static str) -> Result<JsonNumber, MessageError> {
        match self.value.get(field) {
            Some(Value::Number(n)) => Ok(n.clone()),
            _ => Err(self.bad(field, "a number")),
        }
    }

    fn number_or(&self, field: &'static str, default: i64) -> Result<JsonNumber, MessageError> {
        match self.value.get(field) {
            None => Ok(JsonNumber::from(default)),
            Some(_) => self.number(field),
        }
    }

    /// A non-negative integer if present.
    fn optional_u64(&self, field: &'static str) -> Result<Option<u64>, MessageError> {
        match self.value.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(JsonNumber::Int(text))) => {
                text.parse().map(Some).map_err(|_| self.bad(field, "a non-negative integer"))
            }
            Some(_) => Err(self.bad(field, "a non-negative integer")),
        }
    }

    fn string_list(&self, field: &'static str) -> Result<Vec<String>, MessageError> {
        match self.value.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.bad(field, "a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.bad(field, "a list of strings")),
        }
    }
}

struct PayloadWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl PayloadWriter<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_string(self.out, key);
        self.out.push(b':');
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        write_string(self.out, value);
    }

    fn number(&mut self, key: &str, value: &JsonNumber) {
        self.key(key);
        write_number(self.out, value);
    }

    fn string_list(&mut self, key: &str, values: &[String]) {
        self.key(key);
        self.out.push(b'[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_string(self.out, value);
        }
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests;

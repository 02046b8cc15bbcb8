//! Wire messages: the JSON envelope `{"type": ..., "payload": {...}}` and its typed payloads.
//!
//! Every 0.1.2 message type is here, written with Python's key order (the envelope is not
//! sorted; payload keys are in the order the Python code builds its dicts). Types we do not know
//! decode to [`Message::Unknown`], never to an error: forward compatibility is what lets newer
//! peers add messages without splitting the mesh. A payload of a known type that is malformed is
//! a [`MessageError`] for that one message; the connection is not at fault for the frame.

use crate::encode::{KeyOrder, write_compact, write_number, write_string};
use crate::json::{self, Value};
use crate::number::JsonNumber;
use crate::record::{ExperimentRecord, RecordError};

/// Bodies larger than this are refused by the frame decoder (Python's `MAX_MESSAGE_SIZE`).
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// Largest body accepted for each message type. Control messages are tiny; an `experiment`
/// carries a diff, which for a rewritten `train.py` can approach the frame cap.
pub fn max_body_size(message_type: &str) -> usize {
    match message_type {
        "ping" | "pong" | "pex_request" | "sync_request" | "sync_response" => 4 * 1024,
        "challenge" | "challenge_response" | "dispute" => 16 * 1024,
        "pex_response" => 256 * 1024,
        _ => MAX_MESSAGE_SIZE,
    }
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
    /// Ask for every record with `timestamp >= since` (0.1.2 always sends 0).
    SyncRequest {
        since: JsonNumber,
    },
    /// End of a sync answer: our extension (0.1.2 defines the type and ignores it).
    SyncResponse {
        since: JsonNumber,
        count: u64,
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
    TooLarge {
        message_type: String,
        size: usize,
        limit: usize,
    },
    #[error("{message_type}: field `{field}` must be {expected}")]
    BadField {
        message_type: &'static str,
        field: &'static str,
        expected: &'static str,
    },
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
            Message::PexRequest => "pex_request",
            Message::PexResponse { .. } => "pex_response",
            Message::Challenge { .. } => "challenge",
            Message::ChallengeResponse { .. } => "challenge_response",
            Message::Dispute { .. } => "dispute",
            Message::Ping => "ping",
            Message::Pong => "pong",
            Message::Unknown { message_type, .. } => message_type,
        }
    }

    /// Decodes a frame body. Python ignores a body without `type`; we report [`MessageError::NoType`]
    /// and the caller ignores it the same way.
    pub fn decode(body: &[u8]) -> Result<Message, MessageError> {
        let value = json::parse_bytes(body)?;
        let Value::Object(_) = value else {
            return Err(MessageError::NotAnObject(value.type_name()));
        };
        let Some(Value::String(message_type)) = value.get("type") else {
            return Err(MessageError::NoType);
        };
        let limit = max_body_size(message_type);
        if body.len() > limit {
            return Err(MessageError::TooLarge {
                message_type: message_type.clone(),
                size: body.len(),
                limit,
            });
        }
        let empty = Value::Object(Vec::new());
        let payload = value.get("payload").unwrap_or(&empty);
        if !matches!(payload, Value::Object(_)) {
            return Err(MessageError::PayloadNotAnObject(payload.type_name()));
        }
        let p = Payload {
            message_type: static_type(message_type),
            value: payload,
        };
        Ok(match message_type.as_str() {
            "experiment" => Message::Experiment(Box::new(ExperimentRecord::from_value(payload)?)),
            "sync_request" => Message::SyncRequest {
                since: p.number_or("since", 0)?,
            },
            "sync_response" => Message::SyncResponse {
                since: p.number_or("since", 0)?,
                count: p
                    .number_or("count", 0)?
                    .as_i64()
                    .and_then(|c| u64::try_from(c).ok())
                    .unwrap_or(0),
            },
            "pex_request" => Message::PexRequest,
            "pex_response" => Message::PexResponse {
                peer: p.string_list("peer")?,
            },
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
            "ping" => Message::Ping,
            "pong" => Message::Pong,
            _ => Message::Unknown {
                message_type: message_type.clone(),
                payload: payload.clone(),
            },
        })
    }

    /// The frame body: `{"type":"…","payload":{…}}`, compact and ASCII, as Python's `encode_message`.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"type\":");
        write_string(&mut out, self.message_type());
        out.extend_from_slice(b",\"payload\":");
        let mut w = PayloadWriter {
            out: &mut out,
            first: true,
        };
        match self {
            Message::Experiment(record) => {
                record.write_wire_payload(w.out);
                w.first = false;
                w.out.push(b'}');
                return out;
            }
            Message::Unknown { payload, .. } => {
                write_compact(w.out, payload, KeyOrder::AsGiven);
                w.out.push(b'}');
                return out;
            }
            _ => {}
        }
        w.out.push(b'{');
        match self {
            Message::SyncRequest { since } => w.number("since", since),
            Message::SyncResponse { since, count } => {
                w.number("since", since);
                w.number("count", &JsonNumber::Int(count.to_string()));
            }
            Message::PexResponse { peer } => {
                w.key("peer");
                w.out.push(b'[');
                for (i, addr) in peer.iter().enumerate() {
                    if i > 0 {
                        w.out.push(b',');
                    }
                    write_string(w.out, addr);
                }
                w.out.push(b']');
            }
            Message::Challenge {
                experiment_id,
                challenger_id,
                challenger_bpb,
                challenger_gpu,
            } => {
                w.string("experiment_id", experiment_id);
                w.string("challenger_id", challenger_id);
                w.number("challenger_bpb", challenger_bpb);
                w.string("challenger_gpu", challenger_gpu);
            }
            Message::ChallengeResponse {
                experiment_id,
                challenger_id,
                verifier_id,
                verifier_bpb,
                verifier_gpu,
            } => {
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
            Message::PexRequest | Message::Ping | Message::Pong => {}
            Message::Experiment(_) | Message::Unknown { .. } => {}
        }
        out.extend_from_slice(b"}}");
        out
    }

    /// The whole frame: 4-byte big-endian body length, then the body.
    pub fn encode_frame(&self) -> Vec<u8> {
        crate::frame::frame_bytes(&self.encode_body())
    }
}

fn static_type(message_type: &str) -> &'static str {
    match message_type {
        "sync_request" => "sync_request",
        "sync_response" => "sync_response",
        "pex_response" => "pex_response",
        "challenge" => "challenge",
        "challenge_response" => "challenge_response",
        "dispute" => "dispute",
        _ => "message",
    }
}

struct Payload<'a> {
    message_type: &'static str,
    value: &'a Value,
}

impl Payload<'_> {
    fn bad(&self, field: &'static str, expected: &'static str) -> MessageError {
        MessageError::BadField {
            message_type: self.message_type,
            field,
            expected,
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_decode_and_round_trip() {
        let body = br#"{"type":"hello","payload":{"listen_port":7470,"caps":["sync2"]}}"#;
        let message = Message::decode(body).unwrap();
        assert_eq!(message.message_type(), "hello");
        assert_eq!(message.encode_body(), body.to_vec());
    }

    #[test]
    fn missing_payload_is_an_empty_object_and_missing_type_is_reported() {
        assert_eq!(
            Message::decode(br#"{"type":"ping"}"#).unwrap(),
            Message::Ping
        );
        assert_eq!(
            Message::decode(br#"{"payload":{}}"#),
            Err(MessageError::NoType)
        );
        assert_eq!(
            Message::decode(b"[1]"),
            Err(MessageError::NotAnObject("array"))
        );
    }

    #[test]
    fn malformed_payloads_are_typed_errors() {
        let bad_port = br#"{"type":"pex_response","payload":{"peer":[7470]}}"#;
        assert!(matches!(
            Message::decode(bad_port),
            Err(MessageError::BadField { field: "peer", .. })
        ));
        let bad_since = br#"{"type":"sync_request","payload":{"since":"0"}}"#;
        assert!(matches!(
            Message::decode(bad_since),
            Err(MessageError::BadField { field: "since", .. })
        ));
        let huge_ping = format!(
            r#"{{"type":"ping","payload":{{"pad":"{}"}}}}"#,
            "x".repeat(5000)
        );
        assert!(matches!(
            Message::decode(huge_ping.as_bytes()),
            Err(MessageError::TooLarge { .. })
        ));
    }

    #[test]
    fn sync_response_end_marker_round_trips() {
        let message = Message::SyncResponse {
            since: JsonNumber::from(5),
            count: 12,
        };
        let body = message.encode_body();
        assert_eq!(
            body,
            br#"{"type":"sync_response","payload":{"since":5,"count":12}}"#.to_vec()
        );
        assert_eq!(Message::decode(&body).unwrap(), message);
    }
}

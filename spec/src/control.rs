//! Signed control events: challenges, challenge responses, verifications and disputes in the
//! envelope of Python 0.3.10 (§15.4 of the reference facts), so anyone can check who said what.
//!
//! ```text
//! {"type", "payload": {…, "event_id"}, "node_id", "timestamp", "signature", "id", "version": 1}
//! ```
//!
//! `id` is the SHA-256 of the canonical JSON (sorted keys at every level, compact, ASCII) of
//! `{type, payload, node_id, timestamp, version}`; the signature is Ed25519 over the same bytes
//! by `node_id`. The signer must be the event's actor (`challenger_id` for challenges and
//! disputes, `verifier_id` for responses and verifications), and `event_id` must be the one the
//! payload implies (`challenge:<experiment>:<challenger>`, …), so one actor has one event per
//! experiment and kind. Python 0.1.2's unsigned challenges and disputes carry none of this: our
//! nodes take them as hints that change nothing.

use thiserror::Error;

use crate::encode::{KeyOrder, write_compact};
use crate::identity::Identity;
use crate::json::Value;
use crate::number::JsonNumber;
use crate::verify::check_signature;

/// The four kinds of control event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    Challenge,
    ChallengeResponse,
    Verification,
    Dispute,
}

impl ControlKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Challenge => "challenge",
            ControlKind::ChallengeResponse => "challenge_response",
            ControlKind::Verification => "verification",
            ControlKind::Dispute => "dispute",
        }
    }

    pub fn parse(text: &str) -> Option<ControlKind> {
        Some(match text {
            "challenge" => ControlKind::Challenge,
            "challenge_response" => ControlKind::ChallengeResponse,
            "verification" => ControlKind::Verification,
            "dispute" => ControlKind::Dispute,
            _ => return None,
        })
    }

    /// The payload field naming who acts, who must sign.
    pub fn actor_field(self) -> &'static str {
        match self {
            ControlKind::Challenge | ControlKind::Dispute => "challenger_id",
            ControlKind::ChallengeResponse | ControlKind::Verification => "verifier_id",
        }
    }

    /// The payload fields after the kind in `event_id`.
    fn event_id_fields(self) -> &'static [&'static str] {
        match self {
            ControlKind::Challenge | ControlKind::Dispute => &["experiment_id", "challenger_id"],
            ControlKind::ChallengeResponse => &["experiment_id", "challenger_id", "verifier_id"],
            ControlKind::Verification => &["experiment_id", "verifier_id"],
        }
    }
}

/// Why a control event is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    #[error("not a control envelope: {0}")]
    Shape(String),
    #[error("unknown control type {0:?}")]
    UnknownType(String),
    #[error("the payload has no string field {0:?}")]
    MissingField(&'static str),
    #[error("event_id is {found:?}, the payload implies {expected:?}")]
    EventId { found: String, expected: String },
    #[error("signed by {signer}, but the actor ({field}) is {actor}")]
    ActorNotSigner { field: &'static str, actor: String, signer: String },
    #[error("id {claimed} is not the SHA-256 of the envelope ({computed})")]
    IdMismatch { claimed: String, computed: String },
    #[error("bad signature: {0}")]
    Signature(String),
    #[error("{0} is not a finite number")]
    NotFinite(&'static str),
}

/// A control event: its kind, payload (a JSON object) and the signer's envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlEvent {
    pub kind: ControlKind,
    pub payload: Vec<(String, Value)>,
    pub node_id: String,
    pub timestamp: i64,
    pub signature: String,
    pub id: String,
}

fn text(value: &str) -> Value {
    Value::String(value.to_string())
}

fn number(value: f64) -> Value {
    Value::Number(JsonNumber::Float(value))
}

impl ControlEvent {
    /// A challenge of `experiment_id` by `identity`, which measured `challenger_bpb`.
    pub fn challenge(identity: &Identity, experiment_id: &str, challenger_bpb: f64, gpu: &str, timestamp: i64) -> Self {
        let me = identity.node_id();
        Self::sign(
            identity,
            ControlKind::Challenge,
            vec![
                ("experiment_id".into(), text(experiment_id)),
                ("task_id".into(), text("")),
                ("challenger_id".into(), text(&me)),
                ("challenger_bpb".into(), number(challenger_bpb)),
                ("challenger_gpu".into(), text(gpu)),
            ],
            timestamp,
        )
    }

    /// `identity`'s re-run of a challenged experiment.
    pub fn response(
        identity: &Identity,
        experiment_id: &str,
        challenger_id: &str,
        verifier_bpb: f64,
        gpu: &str,
        timestamp: i64,
    ) -> Self {
        let me = identity.node_id();
        Self::sign(
            identity,
            ControlKind::ChallengeResponse,
            vec![
                ("experiment_id".into(), text(experiment_id)),
                ("task_id".into(), text("")),
                ("challenger_id".into(), text(challenger_id)),
                ("verifier_id".into(), text(&me)),
                ("verifier_bpb".into(), number(verifier_bpb)),
                ("verifier_gpu".into(), text(gpu)),
            ],
            timestamp,
        )
    }

    /// A successful spot-check of `verified_node_id`'s experiment.
    pub fn verification(
        identity: &Identity,
        experiment_id: &str,
        verified_node_id: &str,
        verifier_bpb: f64,
        gpu: &str,
        timestamp: i64,
    ) -> Self {
        let me = identity.node_id();
        Self::sign(
            identity,
            ControlKind::Verification,
            vec![
                ("experiment_id".into(), text(experiment_id)),
                ("task_id".into(), text("")),
                ("verified_node_id".into(), text(verified_node_id)),
                ("verifier_id".into(), text(&me)),
                ("verifier_gpu".into(), text(gpu)),
                ("verifier_bpb".into(), number(verifier_bpb)),
                ("is_frontier".into(), Value::Bool(false)),
            ],
            timestamp,
        )
    }

    /// Signs `payload` (without `event_id`, which is derived and added here).
    pub fn sign(identity: &Identity, kind: ControlKind, mut payload: Vec<(String, Value)>, timestamp: i64) -> Self {
        payload.retain(|(k, _)| k != "event_id");
        let mut event = ControlEvent {
            kind,
            payload,
            node_id: identity.node_id(),
            timestamp,
            signature: String::new(),
            id: String::new(),
        };
        if let Ok(event_id) = event.expected_event_id() {
            event.payload.push(("event_id".into(), Value::String(event_id)));
        }
        let canonical = event.canonical_bytes();
        event.id = crate::cid::cid_of(&canonical);
        event.signature = identity.sign_hex(&canonical);
        event
    }

    /// The signed bytes: `{type, payload, node_id, timestamp, version}`, sorted and compact.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let envelope = Value::Object(vec![
            ("type".into(), text(self.kind.as_str())),
            ("payload".into(), Value::Object(self.payload.clone())),
            ("node_id".into(), text(&self.node_id)),
            ("timestamp".into(), Value::Number(JsonNumber::from(self.timestamp))),
            ("version".into(), Value::Number(JsonNumber::from(1))),
        ]);
        let mut out = Vec::with_capacity(512);
        write_compact(&mut out, &envelope, KeyOrder::Sorted);
        out
    }

    /// A string field of the payload.
    pub fn field(&self, key: &str) -> Option<&str> {
        match self.payload.iter().find(|(k, _)| k == key)?.1 {
            Value::String(ref s) => Some(s),
            _ => None,
        }
    }

    /// A number field of the payload.
    pub fn number(&self, key: &str) -> Option<f64> {
        match self.payload.iter().find(|(k, _)| k == key)?.1 {
            Value::Number(ref n) => Some(n.as_f64()),
            _ => None,
        }
    }

    fn required(&self, key: &'static str) -> Result<&str, ControlError> {
        self.field(key).ok_or(ControlError::MissingField(key))
    }

    /// `<type>:<experiment>:<actor…>` as the payload implies it.
    pub fn expected_event_id(&self) -> Result<String, ControlError> {
        let mut parts = vec![self.kind.as_str().to_string()];
        for key in self.kind.event_id_fields() {
            parts.push(self.required(key)?.to_string());
        }
        Ok(parts.join(":"))
    }

    /// The deduplication key: `event_id`.
    pub fn event_id(&self) -> &str {
        self.field("event_id").unwrap_or_default()
    }

    /// The experiment the event is about.
    pub fn experiment_id(&self) -> &str {
        self.field("experiment_id").unwrap_or_default()
    }

    /// Who acted (and signed).
    pub fn actor(&self) -> &str {
        self.field(self.kind.actor_field()).unwrap_or_default()
    }

    /// Everything a receiver checks: fields, event id, actor == signer, id, signature.
    pub fn verify(&self) -> Result<(), ControlError> {
        let expected = self.expected_event_id()?;
        if self.event_id() != expected {
            return Err(ControlError::EventId { found: self.event_id().to_string(), expected });
        }
        let actor = self.required(self.kind.actor_field())?;
        if actor != self.node_id {
            return Err(ControlError::ActorNotSigner {
                field: self.kind.actor_field(),
                actor: actor.to_string(),
                signer: self.node_id.clone(),
            });
        }
        let bpb_field = match self.kind {
            ControlKind::Challenge | ControlKind::Dispute => "challenger_bpb",
            ControlKind::ChallengeResponse | ControlKind::Verification => "verifier_bpb",
        };
        if !self.number(bpb_field).is_some_and(f64::is_finite) {
            return Err(ControlError::NotFinite(bpb_field));
        }
        let canonical = self.canonical_bytes();
        let computed = crate::cid::cid_of(&canonical);
        if computed != self.id {
            return Err(ControlError::IdMismatch { claimed: self.id.clone(), computed });
        }
        check_signature(&self.node_id, &self.signature, &canonical).map_err(|e| ControlError::Signature(e.to_string()))
    }

    /// The whole envelope as JSON.
    pub fn to_value(&self) -> Value {
        Value::Object(vec![
            ("type".into(), text(self.kind.as_str())),
            ("payload".into(), Value::Object(self.payload.clone())),
            ("node_id".into(), text(&self.node_id)),
            ("timestamp".into(), Value::Number(JsonNumber::from(self.timestamp))),
            ("signature".into(), text(&self.signature)),
            ("id".into(), text(&self.id)),
            ("version".into(), Value::Number(JsonNumber::from(1))),
        ])
    }

    /// Reads an envelope (not yet verified: call [`ControlEvent::verify`]).
    pub fn from_value(value: &Value) -> Result<ControlEvent, ControlError> {
        let string = |key: &'static str| match value.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(ControlError::Shape(format!("no string {key:?}"))),
        };
        let kind_text = string("type")?;
        let kind = ControlKind::parse(&kind_text).ok_or(ControlError::UnknownType(kind_text))?;
        let payload = match value.get("payload") {
            Some(Value::Object(entries)) => entries.clone(),
            _ => return Err(ControlError::Shape("no object \"payload\"".into())),
        };
        let timestamp = match value.get("timestamp") {
            Some(Value::Number(n)) => n.as_i64().ok_or(ControlError::Shape("timestamp is not an integer".into()))?,
            _ => return Err(ControlError::Shape("no number \"timestamp\"".into())),
        };
        match value.get("version") {
            Some(Value::Number(n)) if n.as_i64() == Some(1) => {}
            _ => return Err(ControlError::Shape("version is not 1".into())),
        }
        Ok(ControlEvent {
            kind,
            payload,
            node_id: string("node_id")?,
            timestamp,
            signature: string("signature")?,
            id: string("id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    /// §15.4's example: the canonical bytes and id of a signed challenge, and the signature
    /// PyNaCl makes over them with the RFC 8032 test key.
    #[test]
    fn signs_the_reference_example_exactly() {
        let identity = Identity::from_seed_hex(RFC8032_SEED).unwrap();
        let me = identity.node_id();
        let d = "d".repeat(64);
        let payload = vec![
            ("experiment_id".into(), text(&d)),
            ("task_id".into(), text(&"c".repeat(64))),
            ("challenger_id".into(), text(&me)),
            ("challenger_bpb".into(), number(1.0123)),
            ("challenger_gpu".into(), text("RTX_4090")),
        ];
        let event = ControlEvent::sign(&identity, ControlKind::Challenge, payload, 1_773_000_600);
        let expected = format!(
            "{{\"node_id\":\"{me}\",\"payload\":{{\"challenger_bpb\":1.0123,\"challenger_gpu\":\"RTX_4090\",\
             \"challenger_id\":\"{me}\",\"event_id\":\"challenge:{d}:{me}\",\"experiment_id\":\"{d}\",\
             \"task_id\":\"{c}\"}},\"timestamp\":1773000600,\"type\":\"challenge\",\"version\":1}}",
            c = "c".repeat(64)
        );
        assert_eq!(String::from_utf8(event.canonical_bytes()).unwrap(), expected);
        assert_eq!(event.id, "ad9acd026c9a61eedaa3cc583d7461af6ece0f9f93558154f862bf05511346ff");
        assert_eq!(
            event.signature,
            "507b1ddd49f5b5341265374fa443df0e28cf63412ec4fd04666364745c66de9b\
             5d092ed2b223b77db4af4a1a86eefb279fede98a8f9b0d541cabdfce72aaf80a"
        );
        assert_eq!(event.verify(), Ok(()));
        // Through JSON and back, unchanged.
        let parsed = ControlEvent::from_value(&event.to_value()).unwrap();
        assert_eq!(parsed, event);
    }

    #[test]
    fn forgeries_are_refused_with_their_reason() {
        let alice = Identity::from_seed([1; 32]);
        let mallory = Identity::from_seed([2; 32]);
        let exp = "e".repeat(64);
        let good = ControlEvent::response(&alice, &exp, &mallory.node_id(), 1.5, "H100", 10);
        assert_eq!(good.verify(), Ok(()));

        // A changed number after signing.
        let mut tampered = good.clone();
        tampered.payload.iter_mut().find(|(k, _)| k == "verifier_bpb").unwrap().1 = number(1.4);
        assert!(matches!(tampered.verify(), Err(ControlError::IdMismatch { .. })));

        // Mallory signs a response in Alice's name.
        let mut impersonated = ControlEvent::response(&mallory, &exp, &mallory.node_id(), 1.5, "H100", 10);
        impersonated.payload.iter_mut().find(|(k, _)| k == "verifier_id").unwrap().1 = text(&alice.node_id());
        assert!(matches!(impersonated.verify(), Err(ControlError::EventId { .. })));
        let mut fields = impersonated.payload.clone();
        fields.retain(|(k, _)| k != "event_id");
        let forged = ControlEvent::sign(&mallory, ControlKind::ChallengeResponse, fields, 10);
        assert!(matches!(forged.verify(), Err(ControlError::ActorNotSigner { .. })));

        // A valid id over a signature by somebody else.
        let mut resigned = good.clone();
        resigned.signature = mallory.sign_hex(&good.canonical_bytes());
        assert!(matches!(resigned.verify(), Err(ControlError::Signature(_))));

        // Non-finite numbers never verify.
        let nan = ControlEvent::challenge(&alice, &exp, f64::NAN, "H100", 10);
        assert_eq!(nan.verify(), Err(ControlError::NotFinite("challenger_bpb")));

        // Shapes.
        assert!(matches!(ControlEvent::from_value(&Value::Null), Err(ControlError::Shape(_))));
        let mut unknown = good.to_value();
        if let Value::Object(entries) = &mut unknown {
            entries[0].1 = text("vote");
        }
        assert_eq!(ControlEvent::from_value(&unknown), Err(ControlError::UnknownType("vote".into())));
    }
}

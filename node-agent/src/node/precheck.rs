//! Checking `experiment` frames before the core sees them: parse, CID and signature, on the
//! connection's side of the channel, so the work runs beside the core instead of in it. A chunk
//! of frames that arrived together is checked on the node's verification threads, and a
//! connection keeps a few chunks in flight, so a single busy connection uses every core; the
//! reader hands the results on in arrival order.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{self, BoxFuture};
use spore_spec::verify::prepare_key;
use spore_spec::verify_chunk::{
    PendingSignature, PreparedKey, PreparedKeyCache, begin_record_check, finish_signature_checks,
};
use spore_spec::{ExperimentRecord, Message, VerifyError};

use super::KnownIds;
use super::verify_pool::VerifyPool;
use crate::protocol::{Event, PeerId};

/// Below this many frames a chunk is checked where it is: handing it to other threads would
/// cost more than it saves.
const PARALLEL_FROM: usize = 4;

/// Prepared public keys, shared by every connection of the node.
#[derive(Debug, Clone, Default)]
pub struct SharedKeys(Arc<Mutex<PreparedKeyCache>>);

impl SharedKeys {
    /// CID, then the signature up to its last step, with the publisher's key prepared once for
    /// the whole node.
    fn begin(&self, record: &ExperimentRecord) -> Result<PendingSignature, VerifyError> {
        begin_record_check(record, |node_id| match self.0.lock() {
            Ok(mut keys) => keys.key(node_id),
            Err(_) => prepare_key(node_id).map(|key| Arc::new(PreparedKey::new(key))),
        })
    }
}

/// What the connections of one node share for checking frames.
#[derive(Debug, Clone)]
pub struct Checker {
    known: KnownIds,
    keys: SharedKeys,
    pool: VerifyPool,
}

impl Checker {
    pub fn new(known: KnownIds) -> Self {
        Checker { known, keys: SharedKeys::default(), pool: VerifyPool::new() }
    }

    /// Checks a chunk of frame bodies from `peer`, in order: a small one here and now, a big
    /// one on a verification thread. `None` if the check failed to run (a bug: the caller
    /// closes the connection, and the peer's records come again with the next sync).
    pub fn check_chunk(&self, peer: PeerId, mut bodies: Vec<Bytes>) -> BoxFuture<'static, Option<Vec<Event>>> {
        // Records the node already has (most of what a well-connected node hears) go no further.
        let claims: Vec<Option<&str>> = bodies.iter().map(|body| claimed_id(body)).collect();
        let mut known = self.known.contains_each(claims.into_iter()).into_iter();
        let (mut count, mut bytes) = (0, 0);
        bodies.retain(|body| {
            let known = known.next().unwrap_or(false);
            if known {
                count += 1;
                bytes += body.len();
            }
            !known
        });
        let duplicates = (count > 0).then_some(Event::Duplicates { peer, count, bytes });
        if bodies.len() < PARALLEL_FROM {
            let events = pre_check(peer, bodies, &self.keys, &self.known).into_iter().chain(duplicates).collect();
            return future::ready(Some(events)).boxed();
        }
        let checker = self.clone();
        async move {
            let (keys, known) = (checker.keys.clone(), checker.known.clone());
            let work = move || pre_check(peer, bodies, &keys, &known).into_iter().chain(duplicates).collect();
            checker.pool.run(work).await
        }
        .boxed()
    }
}

/// Parses `experiment` frames and checks their CIDs and signatures, unless a record's id is
/// among those the node stored recently (then the core drops it as a duplicate; a lying id gains
/// nothing, as the core stores nothing unchecked). Anything else, or anything that does not
/// parse, goes to the core as a plain frame (which judges it). The signatures of the chunk are
/// finished together ([`finish_signature_checks`]: one inversion for all), each with its own
/// verdict.
fn pre_check(peer: PeerId, bodies: Vec<Bytes>, keys: &SharedKeys, known: &KnownIds) -> Vec<Event> {
    let mut events = Vec::with_capacity(bodies.len());
    let (mut pending, mut slots) = (Vec::new(), Vec::new());
    for body in bodies {
        let Some((record, payload)) = parse_experiment(&body) else {
            events.push(Event::Frame { peer, body });
            continue;
        };
        let verdict = match known.contains(&record.id) {
            true => None,
            false => match keys.begin(&record) {
                Ok(check) => {
                    slots.push(events.len());
                    pending.push(check);
                    Some(Ok(()))
                }
                Err(e) => Some(Err(e)),
            },
        };
        events.push(Event::Record { peer, record, payload, verdict, size: body.len() });
    }
    for (slot, holds) in slots.into_iter().zip(finish_signature_checks(&pending)) {
        if let (false, Some(Event::Record { verdict, .. })) = (holds, events.get_mut(slot)) {
            *verdict = Some(Err(VerifyError::BadSignature));
        }
    }
    events
}

/// The record of an `experiment` frame and its payload exactly as sent.
fn parse_experiment(body: &[u8]) -> Option<(Box<ExperimentRecord>, String)> {
    if !body.starts_with(b"{\"type\":\"experiment\"") {
        return None;
    }
    match Message::decode_with_payload_span(body) {
        Ok((Message::Experiment(record), Some(span))) => {
            std::str::from_utf8(&body[span]).ok().map(|payload| (record, payload.to_owned()))
        }
        _ => None,
    }
}

/// The id an `experiment` frame's payload claims, found without parsing the record: the string
/// value of the one key `id` at the top level of the payload object. `None` when the frame is
/// not laid out that way (another envelope, an escaped or repeated key, bad JSON): such frames
/// take the full path. Trusting the claim is safe because it is only used to drop frames whose
/// id is already stored: a frame that lies about its id loses nothing but itself.
pub fn claimed_id(body: &[u8]) -> Option<&str> {
    const ENVELOPE: &[u8] = b"{\"type\":\"experiment\",\"payload\":{";
    let payload = body.strip_prefix(ENVELOPE)?;
    let mut depth = 1usize;
    let mut expect_key = true;
    let mut found = None;
    let mut i = 0;
    while i < payload.len() {
        match payload[i] {
            b'"' => {
                let (text, end) = json_string(payload, i)?;
                i = end;
                if depth == 1 && expect_key {
                    expect_key = false;
                    i = skip_space(payload, i);
                    if payload.get(i) != Some(&b':') {
                        return None;
                    }
                    if text == b"id" {
                        let value_at = skip_space(payload, i + 1);
                        if payload.get(value_at) != Some(&b'"') || found.is_some() {
                            return None;
                        }
                        let (value, value_end) = json_string(payload, value_at)?;
                        if value.contains(&b'\\') {
                            return None;
                        }
                        found = Some(std::str::from_utf8(value).ok()?);
                        i = value_end;
                    }
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return found;
                }
            }
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The raw text of the JSON string starting at `start` (a quote) and the index after it.
/// The payload's long strings (`diff`) are skipped with `memchr` rather than byte by byte.
fn json_string(bytes: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let mut j = start + 1;
    loop {
        j += memchr::memchr2(b'"', b'\\', bytes.get(j..)?)?;
        if bytes[j] == b'"' {
            return Some((&bytes[start + 1..j], j + 1));
        }
        j += 2;
    }
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::claimed_id;

    #[test]
    fn finds_the_top_level_id_only() {
        let frame = br#"{"type":"experiment","payload":{"a":{"id":"inner"},"d":"x\"id\":\"no\"","id":"cid1","z":[1,{"id":"q"}]}}"#;
        assert_eq!(claimed_id(frame), Some("cid1"));
        let spaced = br#"{"type":"experiment","payload":{"b": 1, "id" : "cid2"}}"#;
        assert_eq!(claimed_id(spaced), Some("cid2"));
    }

    #[test]
    fn gives_up_on_anything_unusual() {
        for frame in [
            &br#"{"type":"experiment","payload":{"id":"a","id":"b"}}"#[..],
            br#"{"type":"experiment","payload":{"\u0069d":"a"}}"#,
            br#"{"type":"experiment","payload":{"id":"a\u0062"}}"#,
            br#"{"type":"experiment","payload":{"id":7}}"#,
            br#"{"type":"experiment","payload":{"id":"a""#,
            br#"{"type":"experiment","payload":{"id":"a\"#,
            br#"{"type":"experiment","payload":{"x":"\"#,
            br#"{"type":"experiment","payload":{"x":"y"}}"#,
            br#"{"payload":{"id":"a"},"type":"experiment"}"#,
            br#"{"type":"experiment","payload":{"id""a"}}"#,
            b"",
        ] {
            assert_eq!(claimed_id(frame), None, "{}", String::from_utf8_lossy(frame));
        }
    }
}

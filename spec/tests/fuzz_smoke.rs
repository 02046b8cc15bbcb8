//! A bounded mutation fuzzer for everything that reads a stranger's bytes: the frame decoder,
//! the JSON parser and its skim, message decoding, record parsing, validation and
//! verification. It starts from a committed corpus (`spec/fuzz/corpus/`, hostile shapes) and
//! the Python-made vectors, mutates them (flips, inserts, deletions, duplicated and spliced
//! ranges) from a seed it prints, and runs each input through every target for a bounded time
//! (`SPORE_FUZZ_SECONDS`, default 3; `SPORE_FUZZ_SEED` replays a run). Any panic fails the test.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use spore_spec::frame::{FrameCodec, frame_bytes};
use spore_spec::json::{self, Value};
use spore_spec::{ExperimentRecord, Message, ValidationPolicy, validate, verify_record};
use tokio_util::codec::Decoder;

/// xorshift64*: small, seedable, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root.join("fuzz/corpus"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let text = |file: &str| std::fs::read_to_string(root.join("vectors").join(file)).unwrap();
    let strings = |value: &Value, list: &str, key: &str| -> Vec<Vec<u8>> {
        let Some(Value::Array(items)) = value.get(list) else { panic!("no {list}") };
        items
            .iter()
            .filter_map(|item| match item.get(key) {
                Some(Value::String(s)) => Some(s.clone().into_bytes()),
                _ => None,
            })
            .collect()
    };
    seeds.extend(strings(&json::parse(&text("messages.json")).unwrap(), "messages", "body_utf8"));
    let records = json::parse(&text("records.json")).unwrap();
    seeds.extend(strings(&records, "cases", "wire_body_utf8"));
    seeds.extend(strings(&records, "cases", "to_json"));
    assert!(seeds.len() > 40, "the corpus is there");
    seeds
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, b"{}[]\",:\\0123456789eE-+.ntfu"[rng.below(27)]),
            2 => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(64)).min(input.len());
                let copy = input[at..end].to_vec();
                let to = rng.below(input.len() + 1);
                input.splice(to..to, copy);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(128)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
            _ => input.truncate(at),
        }
    }
    input
}

/// Every target on one input; none may panic.
fn run_targets(input: &[u8]) {
    let _ = json::parse_bytes(input);
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = json::top_level_string(text, "type");
        if let Ok(record) = ExperimentRecord::from_json(text) {
            let _ = validate(&record, &ValidationPolicy::default(), 1_800_000_000);
            let _ = verify_record(&record);
        }
    }
    let _ = Message::peek_type(input);
    if let Ok(message) = Message::decode(input) {
        let _ = Message::decode(&message.encode_body());
        if let Message::Experiment(record) = message {
            let _ = verify_record(&record);
        }
    }
    // The body framed, twice, then cut: the decoder yields what is whole and waits for the rest.
    let mut stream = frame_bytes(input);
    stream.extend_from_slice(&frame_bytes(input));
    stream.truncate(stream.len() - input.len() / 2);
    let mut buffer = BytesMut::from(stream.as_slice());
    while let Ok(Some(body)) = FrameCodec.decode(&mut buffer) {
        let _ = Message::decode(&body);
    }
    // The input read as a stream of frames itself (its first bytes as a length).
    let mut raw = BytesMut::from(input);
    while let Ok(Some(body)) = FrameCodec.decode(&mut raw) {
        let _ = Message::decode(&body);
    }
}

#[test]
fn mutated_corpus_inputs_never_panic_any_reader() {
    let seconds = std::env::var("SPORE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let seed = std::env::var("SPORE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("fuzz smoke: seed {seed} (SPORE_FUZZ_SEED={seed} replays it), {seconds} s");
    let seeds = corpus();
    for seed_input in &seeds {
        run_targets(seed_input);
    }
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            run_targets(&mutate(&mut rng, &seeds));
            runs += 1;
        }
    }
    eprintln!("fuzz smoke: {runs} inputs");
    assert!(runs > 1_000, "the fuzzer ran");
}

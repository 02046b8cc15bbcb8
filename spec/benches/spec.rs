//! Criterion benchmarks of the protocol hot paths, on records of about 1.3 KB canonical (the
//! size of the Python peer's benchmark records). Run: `cargo bench -p spore-spec --bench spec`.
//! Per-record throughput = 1 / time per iteration (batch: elements per second as printed).

#![allow(clippy::unwrap_used)] // a test fails loudly on bad fixtures

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spore_spec::frame::FrameCodec;
use spore_spec::verify::prepare_key;
use spore_spec::verify_chunk::{PreparedKey, PreparedKeyCache, verify_records_exact};
use spore_spec::{ExperimentRecord, Identity, JsonNumber, KeyCache, Message, Status, verify_record};
use tokio_util::codec::Decoder;

fn sample_record(identity: &Identity, n: i64) -> ExperimentRecord {
    let mut record = ExperimentRecord {
        parent: Some("5d6b502b909b5d719cd077dfadd95cf7b69b9989694ffabe99bd72f2ccfeef15".into()),
        depth: JsonNumber::from(3),
        code_cid: "540e73a98ff829b1b89893599533ca021c15270e0268524eaa65c007892046e1".into(),
        diff: "--- a/train.py\n+++ b/train.py\n@@ -40,7 +40,7 @@\n-MATRIX_LR = 0.04\n+MATRIX_LR = 0.05\n \
               -WARMDOWN_RATIO = 0.5\n+WARMDOWN_RATIO = 0.6\n"
            .repeat(5),
        dataset_cid: "a19b0c7ccf1413dd388ac482c5e1dd23917c4baceb1ed56e0a15d7e9049e4e1d".into(),
        prepare_cid: "059223b88af92bee07fe770d5525d571e7eb97d0b00257e0996a1f0b20bf2c87".into(),
        time_budget: JsonNumber::from(300),
        val_bpb: JsonNumber::Float(0.997912 - n as f64 * 1e-6),
        peak_vram_mb: JsonNumber::Float(45060.2),
        num_steps: JsonNumber::from(953),
        num_params: JsonNumber::from(50331648),
        status: Status::Keep,
        description: "raise the matrix learning rate and lengthen warmdown".into(),
        hypothesis: "the baseline under-trains in five minutes".into(),
        agent_model: "claude-sonnet-4-5-20250929".into(),
        gpu_model: "NVIDIA_H100_80GB_HBM3".into(),
        cuda_version: "12.8".into(),
        torch_version: "2.9.0+cu128".into(),
        node_id: String::new(),
        task_id: None,
        timestamp: JsonNumber::from(1773072000 + n),
        signature: String::new(),
        id: String::new(),
        version: JsonNumber::from(1),
    };
    identity.sign_record(&mut record);
    record
}

fn benches(c: &mut Criterion) {
    let identity = Identity::from_seed([7; 32]);
    let record = sample_record(&identity, 0);
    let canonical_len = record.canonical_bytes().len();
    eprintln!("canonical record size: {canonical_len} bytes");

    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("canonical_encode", |b| b.iter(|| record.canonical_bytes()));
    group.bench_function("cid", |b| b.iter(|| record.compute_cid()));
    group.bench_function("sign_and_cid", |b| {
        b.iter_batched(|| record.clone(), |mut r| identity.sign_record(&mut r), BatchSize::SmallInput)
    });
    group.bench_function("verify_cid_and_signature_cold_key", |b| b.iter(|| verify_record(&record)));
    let mut cache = KeyCache::default();
    group.bench_function("verify_cid_and_signature", |b| b.iter(|| cache.verify_record(&record)));
    let mut payload = Vec::new();
    record.write_wire_payload(&mut payload);
    let payload = String::from_utf8(payload).unwrap();
    group.bench_function("from_json", |b| b.iter(|| ExperimentRecord::from_json(&payload).is_ok()));
    let body = Message::Experiment(Box::new(record.clone())).encode_body();
    group.bench_function("decode", |b| b.iter(|| Message::decode(&body).is_ok()));
    group.bench_function("parse_and_verify", |b| {
        b.iter(|| match Message::decode(&body) {
            Ok(Message::Experiment(r)) => cache.verify_record(&r).is_ok(),
            _ => false,
        })
    });
    group.finish();

    let batch: Vec<ExperimentRecord> = (0..64).map(|n| sample_record(&identity, n)).collect();
    let refs: Vec<&ExperimentRecord> = batch.iter().collect();
    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(refs.len() as u64));
    group.bench_function("verify_records_64", |b| b.iter(|| cache.verify_records(&refs)));
    let mut prepared = PreparedKeyCache::default();
    group.bench_function("verify_records_exact_64", |b| b.iter(|| verify_records_exact(&refs, &mut prepared)));
    let distinct: Vec<ExperimentRecord> =
        (0..64).map(|n| sample_record(&Identity::from_seed([n as u8; 32]), n)).collect();
    let distinct_refs: Vec<&ExperimentRecord> = distinct.iter().collect();
    group.bench_function("verify_records_64_distinct_keys", |b| b.iter(|| cache.verify_records(&distinct_refs)));
    group.finish();

    let key = prepare_key(&identity.node_id()).expect("a valid key");
    c.bench_function("key/prepare_tables", |b| b.iter(|| PreparedKey::with_tables(key)));

    let frames: Vec<u8> = batch.iter().flat_map(|r| Message::Experiment(Box::new(r.clone())).encode_frame()).collect();
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("decode_64_frames", |b| {
        b.iter_batched(
            || BytesMut::from(frames.as_slice()),
            |mut buf| {
                let mut codec = FrameCodec;
                let mut count = 0;
                while let Ok(Some(_)) = codec.decode(&mut buf) {
                    count += 1;
                }
                count
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(spec_benches, benches);
criterion_main!(spec_benches);

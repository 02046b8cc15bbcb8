//! Property tests: random records survive parse → encode → parse unchanged, the typed and the
//! generic canonical encoders agree, signatures verify, and no parser panics on any input.

#![allow(clippy::unwrap_used)] // a test fails loudly on bad fixtures

use bytes::BytesMut;
use proptest::prelude::*;
use spore_spec::frame::FrameCodec;
use spore_spec::json::Value;
use spore_spec::record::canonical_bytes_of_object;
use spore_spec::{ExperimentRecord, Identity, JsonNumber, Message, Status, json, verify_record};
use tokio_util::codec::Decoder;

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 _./-]{0,40}",
        any::<String>(),
        prop::collection::vec(prop::char::range('\u{0}', '\u{7f}'), 0..30).prop_map(|c| c.into_iter().collect()),
        prop::collection::vec(prop::char::range('\u{1f300}', '\u{1f64f}'), 0..10).prop_map(|c| c.into_iter().collect()),
    ]
}

fn any_number() -> impl Strategy<Value = JsonNumber> {
    prop_oneof![
        any::<i64>().prop_map(JsonNumber::from),
        "-?[1-9][0-9]{19,40}".prop_map(|t| JsonNumber::int_from_text(&t).unwrap()),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(JsonNumber::Float),
        (0.5f64..1.5).prop_map(JsonNumber::Float),
    ]
}

fn any_status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Keep), Just(Status::Discard), Just(Status::Crash)]
}

prop_compose! {
    fn any_record()(
        parent in prop::option::of("[0-9a-f]{64}"),
        numbers in prop::collection::vec(any_number(), 8),
        texts in prop::collection::vec(any_text(), 10),
        status in any_status(),
        seed in any::<[u8; 32]>(),
        task_id in prop::option::of("[0-9a-f]{0,64}"),
    ) -> ExperimentRecord {
        let mut record = ExperimentRecord {
            parent,
            depth: numbers[0].clone(),
            code_cid: texts[0].clone(),
            diff: texts[1].clone(),
            dataset_cid: texts[2].clone(),
            prepare_cid: texts[3].clone(),
            time_budget: numbers[1].clone(),
            val_bpb: numbers[2].clone(),
            peak_vram_mb: numbers[3].clone(),
            num_steps: numbers[4].clone(),
            num_params: numbers[5].clone(),
            status,
            description: texts[4].clone(),
            hypothesis: texts[5].clone(),
            agent_model: texts[6].clone(),
            gpu_model: texts[7].clone(),
            cuda_version: texts[8].clone(),
            torch_version: texts[9].clone(),
            node_id: String::new(),
            task_id,
            timestamp: numbers[6].clone(),
            signature: String::new(),
            id: String::new(),
            version: numbers[7].clone(),
        };
        Identity::from_seed(seed).sign_record(&mut record);
        record
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn records_survive_wire_round_trip(record in any_record()) {
        let body = Message::Experiment(Box::new(record.clone())).encode_body();
        let Ok(Message::Experiment(decoded)) = Message::decode(&body) else { panic!("decode failed") };
        prop_assert_eq!(&*decoded, &record);
        prop_assert_eq!(Message::Experiment(decoded).encode_body(), body);
    }

    #[test]
    fn pretty_json_parses_back_to_the_same_record(record in any_record()) {
        let parsed = ExperimentRecord::from_json(&record.to_json_pretty()).unwrap();
        prop_assert_eq!(parsed, record);
    }

    #[test]
    fn typed_and_generic_canonical_bytes_agree(record in any_record()) {
        let Value::Object(entries) = record.to_value() else { panic!("not an object") };
        prop_assert_eq!(canonical_bytes_of_object(&entries), record.canonical_bytes());
    }

    #[test]
    fn signed_records_verify_and_any_change_breaks_them(record in any_record(), extra in "[a-z]{1,8}") {
        prop_assert!(verify_record(&record).is_ok());
        let mut tampered = record.clone();
        tampered.description.push_str(&extra);
        prop_assert!(verify_record(&tampered).is_err());
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = json::parse_bytes(&bytes);
        let _ = Message::decode(&bytes);
        let mut buf = BytesMut::from(bytes.as_slice());
        let mut codec = FrameCodec;
        while let Ok(Some(body)) = codec.decode(&mut buf) {
            let _ = Message::decode(&body);
        }
    }

    #[test]
    fn record_parser_never_panics_on_json_like_text(text in r#"[{}\[\]",:0-9a-zA-Z_.eE+\\ -]{0,200}"#) {
        let _ = ExperimentRecord::from_json(&text);
        let _ = Message::decode(text.as_bytes());
    }

    #[test]
    fn mutated_valid_bodies_never_panic(record in any_record(), position in any::<usize>(), byte in any::<u8>()) {
        let mut body = Message::Experiment(Box::new(record)).encode_body();
        let at = position % body.len();
        body[at] = byte;
        let _ = Message::decode(&body);
        body.truncate(at);
        let _ = Message::decode(&body);
    }
}

use super::*;

#[test]
fn unknown_types_decode_and_round_trip() {
    let body = br#"{"type":"profile","payload":{"listen_port":7470,"caps":["sync2"]}}"#;
    let message = Message::decode(body).unwrap();
    assert_eq!(message.message_type(), "profile");
    assert_eq!(message.encode_body(), body.to_vec());
}

#[test]
fn signed_events_carry_the_legacy_fields_and_the_envelope() {
    let alice = crate::Identity::from_seed([7; 32]);
    let exp = "e".repeat(64);
    let event = ControlEvent::challenge(&alice, &exp, 1.25, "H100", 1_773_000_600);
    let message = Message::Signed(Box::new(event.clone()));
    let body = message.encode_body();
    // A 0.1.2 peer reads the challenge it knows.
    let text = String::from_utf8(body.clone()).unwrap();
    let prefix = format!(
        "{{\"type\":\"challenge\",\"payload\":{{\"experiment_id\":\"{exp}\",\"challenger_id\":\"{}\",\
         \"challenger_bpb\":1.25,\"challenger_gpu\":\"H100\",\"signed\":{{\"type\":\"challenge\"",
        alice.node_id()
    );
    assert!(text.starts_with(&prefix), "{text}");
    // We read the envelope, intact and verifiable.
    let Message::Signed(decoded) = Message::decode(&body).unwrap() else { panic!("not signed") };
    assert_eq!(*decoded, event);
    assert_eq!(decoded.verify(), Ok(()));
    assert_eq!(Message::decode(&body).unwrap().encode_body(), body);
    // A verification (no 0.1.2 form) and malformed envelopes.
    let verification = ControlEvent::verification(&alice, &exp, &"p".repeat(64), 1.0, "H100", 2);
    let body = Message::Signed(Box::new(verification)).encode_body();
    assert!(matches!(Message::decode(&body).unwrap(), Message::Signed(_)));
    let bad = br#"{"type":"challenge","payload":{"signed":{"type":"challenge"}}}"#;
    assert!(matches!(Message::decode(bad), Err(MessageError::BadField { field: "signed", .. })));
    let mismatched = String::from_utf8(body).unwrap().replacen("\"type\":\"verification\"", "\"type\":\"dispute\"", 1);
    assert!(matches!(Message::decode(mismatched.as_bytes()), Err(MessageError::BadField { field: "signed", .. })));
}

#[test]
fn code_requests_and_responses_round_trip_in_pythons_shape() {
    let cid = "a".repeat(64);
    let request = Message::CodeRequest { code_cid: cid.clone() };
    let body = request.encode_body();
    assert_eq!(body, format!("{{\"type\":\"code_request\",\"payload\":{{\"code_cid\":\"{cid}\"}}}}").into_bytes());
    assert_eq!(Message::decode(&body).unwrap(), request);
    let response = Message::CodeResponse { code_cid: cid, code: "cHJpbnQoMSkK".into() };
    assert_eq!(Message::decode(&response.encode_body()).unwrap(), response);
    assert!(matches!(
        Message::decode(br#"{"type":"code_response","payload":{"code_cid":"x"}}"#),
        Err(MessageError::BadField { field: "code", .. })
    ));
}

#[test]
fn missing_payload_is_an_empty_object_and_missing_type_is_reported() {
    assert_eq!(Message::decode(br#"{"type":"ping"}"#).unwrap(), Message::Ping);
    assert_eq!(Message::decode(br#"{"payload":{}}"#), Err(MessageError::NoType));
    assert_eq!(Message::decode(b"[1]"), Err(MessageError::NotAnObject("array")));
}

#[test]
fn malformed_payloads_are_typed_errors() {
    let bad_port = br#"{"type":"pex_response","payload":{"peer":[7470]}}"#;
    assert!(matches!(Message::decode(bad_port), Err(MessageError::BadField { field: "peer", .. })));
    let bad_since = br#"{"type":"sync_request","payload":{"since":"0"}}"#;
    assert!(matches!(Message::decode(bad_since), Err(MessageError::BadField { field: "since", .. })));
    let huge_ping = format!(r#"{{"type":"ping","payload":{{"pad":"{}"}}}}"#, "x".repeat(5000));
    assert!(matches!(Message::decode(huge_ping.as_bytes()), Err(MessageError::TooLarge { .. })));
}

#[test]
fn the_size_cap_comes_before_the_parse_and_one_type_is_all_a_body_may_have() {
    // A ping of a million keys, or of broken JSON, is refused for its size without being parsed;
    // with its type written last, after one linear skim (broken JSON then fails the skim).
    let keys: Vec<String> = (0..1_000_000).map(|i| format!("\"{i}\":0")).collect();
    let wide = format!(r#"{{"type":"ping","payload":{{{}}}}}"#, keys.join(","));
    assert!(matches!(Message::decode(wide.as_bytes()), Err(MessageError::TooLarge { size, .. }) if size == wide.len()));
    let last = format!(r#"{{"payload":{{{}}},"type":"ping"}}"#, keys.join(","));
    assert!(matches!(Message::decode(last.as_bytes()), Err(MessageError::TooLarge { .. })));
    let broken = format!(r#"{{"type":"ping","payload":{{"x":[{}"#, "1,".repeat(5000));
    assert!(matches!(Message::decode(broken.as_bytes()), Err(MessageError::TooLarge { .. })));
    let broken_last = format!(r#"{{"payload":{{"x":[{}"#, "1,".repeat(5000));
    assert!(matches!(Message::decode(broken_last.as_bytes()), Err(MessageError::Json(json::JsonError::UnexpectedEnd))));
    // A second `type` would let a body be charged as one type and handled as another.
    let twice = br#"{"type":"experiment","type":"ping","payload":{}}"#;
    assert!(matches!(Message::decode(twice), Err(MessageError::Json(json::JsonError::DuplicateKey { .. }))));
    assert_eq!(Message::peek_type(twice).as_deref(), Some("experiment"), "the first, read from the front");
    assert_eq!(Message::peek_type(br#"{"payload":{},"type":"ping","type":"x"}"#), None, "skimmed: refused");
    assert_eq!(Message::peek_type(br#"{"payload":{"type":"x"},"type":"ping"}"#).as_deref(), Some("ping"));
    // A task manifest is small: one of 100 KB is refused before it is read.
    let task = format!(r#"{{"type":"task","payload":{{"description":"{}"}}}}"#, "x".repeat(100_000));
    assert!(matches!(Message::decode(task.as_bytes()), Err(MessageError::TooLarge { .. })));
    // An experiment over the record cap is refused whatever it holds.
    let big = format!(r#"{{"type":"experiment","payload":{{"diff":"{}"}}}}"#, "x".repeat(MAX_RECORD_MESSAGE_SIZE));
    assert!(matches!(Message::decode(big.as_bytes()), Err(MessageError::TooLarge { .. })));
}

#[test]
fn payload_span_is_the_payload_as_sent() {
    let body = br#"{"type": "experiment", "payload" : {"a" :1}}"#;
    let (_, span) = Message::decode_with_payload_span(b"{\"type\":\"ping\"}").unwrap();
    assert_eq!(span, None);
    let err = Message::decode_with_payload_span(body).unwrap_err();
    assert!(matches!(err, MessageError::Record(_)));
    let text = r#"{"type":"profile","payload":{"z": 1, "a": 2}}"#;
    let (_, span) = Message::decode_with_payload_span(text.as_bytes()).unwrap();
    assert_eq!(&text[span.unwrap()], r#"{"z": 1, "a": 2}"#);
}

#[test]
fn sync_response_end_marker_round_trips() {
    let message = Message::SyncResponse { since: JsonNumber::from(5), count: 12, last_seq: Some(40) };
    let body = message.encode_body();
    assert_eq!(body, br#"{"type":"sync_response","payload":{"since":5,"count":12,"last_seq":40}}"#.to_vec());
    assert_eq!(Message::decode(&body).unwrap(), message);
    let hello = Message::Hello {
        node_id: "ab".into(),
        listen_port: 7470,
        capabilities: vec!["sync-seq".into()],
        agent: "spore-rs/0.1.0".into(),
        nonce: None,
    };
    assert_eq!(Message::decode(&hello.encode_body()).unwrap(), hello);
    let with_nonce = Message::Hello {
        node_id: "ab".into(),
        listen_port: 7470,
        capabilities: vec!["auth".into()],
        agent: "spore-rs/0.1.0".into(),
        nonce: Some("0f".repeat(32)),
    };
    assert_eq!(Message::decode(&with_nonce.encode_body()).unwrap(), with_nonce);
    let auth = Message::Auth { signature: "11".repeat(64) };
    assert_eq!(Message::decode(&auth.encode_body()).unwrap(), auth);
    let long_nonce =
        format!(r#"{{"type":"hello","payload":{{"node_id":"ab","listen_port":1,"nonce":"{}"}}}}"#, "x".repeat(200));
    assert!(matches!(Message::decode(long_nonce.as_bytes()), Err(MessageError::BadField { field: "nonce", .. })));
    let bad_port = br#"{"type":"hello","payload":{"node_id":"ab","listen_port":70000}}"#;
    assert!(matches!(Message::decode(bad_port), Err(MessageError::BadField { field: "listen_port", .. })));
    let get = Message::GetRecords { ids: vec!["a".into(), "b".into()] };
    assert_eq!(Message::decode(&get.encode_body()).unwrap(), get);
    let have = Message::Have { ids: vec!["a".into()] };
    assert_eq!(have.encode_body(), br#"{"type":"have","payload":{"ids":["a"]}}"#.to_vec());
    assert_eq!(Message::decode(&have.encode_body()).unwrap(), have);
    let not_a_list = br#"{"type":"have","payload":{"ids":"a"}}"#;
    assert!(matches!(Message::decode(not_a_list), Err(MessageError::BadField { field: "ids", .. })));
}

#[test]
fn events_in_0_3_10_s_native_form_decode_as_controls_and_round_trip() {
    let alice = crate::Identity::from_seed([7; 32]);
    let event = ControlEvent::challenge(&alice, &"e".repeat(64), 1.25, "H100", 1_773_000_600);
    let body = Message::Control(Box::new(event.clone())).encode_body();
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.starts_with("{\"type\":\"challenge\",\"payload\":{\"type\":\"challenge\",\"payload\":{"), "{text}");
    let Message::Control(decoded) = Message::decode(&body).unwrap() else { panic!("not a native control") };
    assert_eq!((*decoded == event, decoded.verify()), (true, Ok(())));
    assert_eq!(Message::decode(&body).unwrap().encode_body(), body);
    // An envelope that is not one, or of another type, is a bad payload.
    let bad = br#"{"type":"challenge","payload":{"type":"challenge","payload":{},"signature":"00"}}"#;
    assert!(matches!(Message::decode(bad), Err(MessageError::BadField { field: "payload", .. })));
    let other = text.replacen("\"payload\":{\"type\":\"challenge\"", "\"payload\":{\"type\":\"dispute\"", 1);
    assert!(matches!(Message::decode(other.as_bytes()), Err(MessageError::BadField { field: "payload", .. })));
}

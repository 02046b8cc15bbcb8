//! Bad input of every kind against one running node: each case gets its documented treatment
//! (the message dropped and the connection kept, or the connection closed), the node keeps
//! serving, and nothing valid is lost. See `spec/protocol.md` §4 and `node-agent/src/protocol`.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use spore_spec::{ExperimentRecord, Identity, JsonNumber, Message};
use spore_tests::nodes::{SporeNode, free_port, wait_until_or};
use spore_tests::wire::Client;

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

/// What the node must do with one input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Treatment {
    /// Dropped; the connection still answers a ping.
    Kept,
    /// The node closes the connection.
    Closed,
}

/// The connection's state after an input: answers a ping, or is closed.
fn treatment(client: &mut Client) -> Treatment {
    if !client.send_body(&Message::Ping.encode_body()) {
        return Treatment::Closed;
    }
    match client.wait_for_type("pong", Duration::from_secs(3)) {
        Some(true) => Treatment::Kept,
        None => Treatment::Closed,
        Some(false) => panic!("no pong and no close within 3 s"),
    }
}

fn signed(n: i64, change: impl FnOnce(&mut ExperimentRecord)) -> ExperimentRecord {
    let mut record = spore_tests::records::record(n);
    record.val_bpb = JsonNumber::Float(0.99);
    change(&mut record);
    Identity::from_seed([5; 32]).sign_record(&mut record);
    record
}

fn body(record: &ExperimentRecord) -> Vec<u8> {
    Message::Experiment(Box::new(record.clone())).encode_body()
}

fn with_field(record: &ExperimentRecord, from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(body(record)).unwrap().replacen(from, to, 1).into_bytes()
}

#[test]
fn every_bad_input_gets_its_treatment_and_the_node_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let node = SporeNode::start(Path::new(SPORE), tmp.path(), free_port().unwrap(), &[]);
    let port = node.port;
    let valid = signed(1, |_| {});
    let tampered = with_field(&valid, "\"val_bpb\":0.99", "\"val_bpb\":0.5");
    let mut other_key = signed(2, |_| {});
    other_key.node_id = Identity::from_seed([6; 32]).node_id();
    let mut bad_signature = signed(3, |_| {});
    bad_signature.signature = "00".repeat(64);
    let nan = signed(4, |r| r.val_bpb = JsonNumber::Float(f64::NAN));
    let future = signed(5, |r| r.timestamp = JsonNumber::from(4_000_000_000));
    let huge = signed(6, |r| r.num_params = JsonNumber::int_from_text("18446744073709551617").unwrap());
    let spaced = signed(7, |_| {});
    // Same record, written with spaces: the CID is over the canonical form, so it verifies, and
    // the node must keep (and re-send) the text as it came.
    let spaced_body = with_field(&spaced, "\"depth\":0", "\"depth\": 0");
    let unsent = signed(8, |_| {});
    // A version-1 record that a 0.5.0 peer stamped with its task id (not signed): a good record.
    let stamped = signed(9, |r| r.task_id = Some("7".repeat(64)));
    let lone_surrogate = with_field(&unsent, "record 8", "record \\ud800");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let many_peers: Vec<String> = (0..1000).map(|i| format!("10.{}.{}.1:7470", i / 256, i % 256)).collect();
    let pex_flood = Message::PexResponse { peer: many_peers }.encode_body();
    let get_flood = Message::GetRecords { ids: vec!["a".repeat(64); 2000] }.encode_body();
    let have_flood = Message::Have { ids: vec!["b".repeat(64); 2000] }.encode_body();
    let have_junk =
        Message::Have { ids: (0..800).map(|i| format!("{i}")).chain([String::new()]).collect() }.encode_body();
    let own_hello = format!(
        "{{\"type\":\"hello\",\"payload\":{{\"node_id\":\"{}\",\"listen_port\":1,\"capabilities\":[],\"agent\":\"x\"}}}}",
        std::fs::read_to_string(tmp.path().join("identity/node_id")).unwrap()
    );

    let cases: Vec<(&str, Vec<u8>, Treatment)> = vec![
        ("valid record", body(&valid), Treatment::Kept),
        ("duplicate record", body(&valid), Treatment::Kept),
        ("forged CID (val_bpb changed after signing)", tampered, Treatment::Kept),
        ("signature of another key", body(&other_key), Treatment::Kept),
        ("zeroed signature", body(&bad_signature), Treatment::Kept),
        ("NaN val_bpb, correctly signed", body(&nan), Treatment::Kept),
        ("timestamp far in the future", body(&future), Treatment::Kept),
        ("integer beyond 64 bits (Python accepts it)", body(&huge), Treatment::Kept),
        ("payload with extra whitespace", spaced_body, Treatment::Kept),
        // These five carry the id of a record nobody sent intact: a stored id would have them
        // dropped unread as duplicates (as the forged val_bpb above is).
        ("version-1 record stamped with a task id (0.5.0 relays them so)", body(&stamped), Treatment::Kept),
        ("task_id that is not a string", with_field(&unsent, "\"version\":1", "\"version\":1,\"task_id\":7"), Treatment::Kept),
        ("status KEEP", with_field(&unsent, "\"keep\"", "\"KEEP\""), Treatment::Kept),
        ("depth as a string", with_field(&unsent, "\"depth\":0", "\"depth\":\"0\""), Treatment::Kept),
        ("missing field", with_field(&unsent, "\"depth\":0,", ""), Treatment::Kept),
        ("lone surrogate in a string", lone_surrogate, Treatment::Kept),
        ("unknown message type", br#"{"type":"profile","payload":{"x":1}}"#.to_vec(), Treatment::Kept),
        ("no type", br#"{"payload":{}}"#.to_vec(), Treatment::Kept),
        ("payload not an object", br#"{"type":"ping","payload":[1]}"#.to_vec(), Treatment::Kept),
        ("oversize ping", format!(r#"{{"type":"ping","payload":{{"pad":"{}"}}}}"#, "x".repeat(5000)).into_bytes(), Treatment::Kept),
        // Nobody asked these two: dropped unread (a node reads only the answer to its own request).
        ("pex_response with numbers", br#"{"type":"pex_response","payload":{"peer":[7470]}}"#.to_vec(), Treatment::Kept),
        ("pex_response with 1000 addresses", pex_flood, Treatment::Kept),
        ("a second type key", br#"{"type":"experiment","type":"ping","payload":{}}"#.to_vec(), Treatment::Closed),
        ("sync_request with a string", br#"{"type":"sync_request","payload":{"since":"0"}}"#.to_vec(), Treatment::Kept),
        ("get_records with 2000 ids", get_flood, Treatment::Kept),
        ("have with 2000 ids", have_flood, Treatment::Kept),
        ("have with 801 ids that are no CIDs", have_junk, Treatment::Kept),
        ("have with numbers", br#"{"type":"have","payload":{"ids":[1,2]}}"#.to_vec(), Treatment::Kept),
        ("unsigned 0.1.2 dispute", br#"{"type":"dispute","payload":{"experiment_id":"x","challenger_id":"y","challenger_bpb":1.0,"outcome":"rejected","ground_truth_bpb":2.0,"verifier_count":3}}"#.to_vec(), Treatment::Kept),
        ("not JSON", b"hello world".to_vec(), Treatment::Closed),
        ("invalid UTF-8", b"{\"type\":\"\xff\"}".to_vec(), Treatment::Closed),
        ("byte-order mark", b"\xef\xbb\xbf{\"type\":\"ping\"}".to_vec(), Treatment::Closed),
        ("10,000 levels of nesting", deep.into_bytes(), Treatment::Closed),
        ("a JSON array", b"[1,2,3]".to_vec(), Treatment::Closed),
        ("trailing garbage", br#"{"type":"ping"} x"#.to_vec(), Treatment::Closed),
        ("hello with our own node id", own_hello.into_bytes(), Treatment::Closed),
    ];
    for (name, input, expected) in &cases {
        let mut client = Client::connect(port).unwrap();
        assert!(client.send_body(input), "{name}: send");
        assert_eq!(treatment(&mut client), *expected, "{name}");
    }

    // Framing violations: a length over 10 MiB ends the connection at once.
    for (name, header) in [("length 10 MiB + 1", 10_485_761u32), ("length 4 GiB", u32::MAX)] {
        let mut client = Client::connect(port).unwrap();
        client.send_raw(&header.to_be_bytes());
        assert_eq!(client.wait_for_type("pong", Duration::from_secs(3)), None, "{name}");
    }
    // Exactly 10 MiB is framed (and then dropped, unparsed, as an oversize unknown message).
    let mut big = Client::connect(port).unwrap();
    let padding = format!(r#"{{"type":"blob","payload":{{"pad":"{}"}}}}"#, "x".repeat(10 * 1024 * 1024 - 36));
    assert_eq!(padding.len(), 10 * 1024 * 1024);
    big.send_body(padding.as_bytes());
    assert_eq!(treatment(&mut big), Treatment::Kept, "a body of exactly 10 MiB");

    // A truncated frame, then a hang-up: nothing to store, nothing breaks.
    let mut truncated = Client::connect(port).unwrap();
    truncated.send_raw(&[0, 0, 0, 100, b'{', b'"']);
    drop(truncated);

    // A sync flood: one answer, then every early repeat costs points until the peer is dropped.
    let mut flood = Client::connect(port).unwrap();
    let request = Message::SyncRequest { since: JsonNumber::from(0), after_seq: None }.encode_body();
    for _ in 0..50 {
        if !flood.send_body(&request) {
            break;
        }
    }
    assert_eq!(treatment(&mut flood), Treatment::Closed, "sync flood");

    // A slowloris peer trickles a frame while another client is served normally.
    let mut slow = Client::connect(port).unwrap();
    slow.send_raw(&[0, 0, 0, 50]);
    for byte in b"{\"type\":\"ping\"" {
        slow.send_raw(&[*byte]);
        let mut other = Client::connect(port).unwrap();
        assert_eq!(treatment(&mut other), Treatment::Kept, "served during a slowloris");
    }

    // A thousand connections at once: those over the inbound limit are refused, the node lives.
    let crowd: Vec<TcpStream> = (0..1000).filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    assert!(crowd.len() > 100);
    let mut during = Client::connect(port).unwrap();
    let _ = treatment(&mut during);
    drop(crowd);
    std::thread::sleep(Duration::from_millis(500));
    let mut after = Client::connect(port).unwrap();
    assert_eq!(treatment(&mut after), Treatment::Kept, "serving after the crowd left");

    // Nothing valid was lost, nothing invalid was stored, and what is stored still verifies.
    let mut node = node;
    assert!(node.is_running(), "the node survived: {}", node.log());
    let stored: Vec<ExperimentRecord> = node.export().iter().map(|l| ExperimentRecord::from_json(l).unwrap()).collect();
    let mut ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![valid.id.as_str(), huge.id.as_str(), spaced.id.as_str(), stamped.id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(stored.iter().all(|r| spore_spec::verify_record(r).is_ok()));
    assert!(node.export().iter().any(|l| l.contains("\"depth\": 0")), "stored exactly as sent");

    // /metrics says why, reason by reason (the counters are a per-second snapshot).
    let refused = |reason: &str| node.metric(&format!("spore_records_refused_total{{reason=\"{reason}\"}}"));
    let dropped = |reason: &str| node.metric(&format!("spore_messages_dropped_total{{reason=\"{reason}\"}}"));
    let counters = || {
        let reasons = [
            "bad_frame",
            "too_large",
            "bad_field",
            "no_type",
            "garbage",
            "rate_limited",
            "sync_too_often",
            "unsolicited",
        ];
        reasons.map(|r| format!("{r}={:?}", dropped(r))).join(" ")
    };
    // The two oversize frames (the unasked PEX flood made it dial nobody).
    let frames = || dropped("bad_frame") == Some(2.0);
    wait_until_or(Duration::from_secs(5), "the refusal counters", frames, counters);
    assert_eq!(refused("non_finite"), Some(1.0), "the NaN val_bpb");
    assert_eq!(refused("future_timestamp"), Some(1.0));
    assert_eq!(refused("unrepresentable"), Some(1.0), "the lone surrogate");
    assert_eq!(refused("bad_signature"), Some(1.0), "the zeroed signature");
    // The changed val_bpb kept the stored record's id: a duplicate, dropped before any check.
    assert_eq!(refused("cid_mismatch"), Some(1.0), "the swapped node_id");
    assert_eq!(refused("malformed"), Some(4.0), "unknown field, status KEEP, depth as a string, missing field");
    assert_eq!(refused("import_policy"), Some(0.0), "no bridge here");
    assert_eq!(dropped("no_type"), Some(1.0));
    assert_eq!(dropped("too_large"), Some(4.0), "oversize ping, get_records and have with 2000 ids, 10 MiB blob");
    assert_eq!(dropped("bad_field"), Some(3.0), "payload not an object, sync since as a string, have numbers");
    assert_eq!(dropped("unsolicited"), Some(2.0), "the two pex_responses nobody asked for");
    assert!(
        dropped("garbage").unwrap() >= 6.0,
        "not JSON, bad UTF-8, BOM, nesting, array, trailing garbage, two types"
    );
    assert!(dropped("sync_too_often").unwrap() >= 1.0, "the sync flood");
}

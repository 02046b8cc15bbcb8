//! Differential tests against the real `sporemesh` packages, 0.1.2 and 0.5.0 (whose records carry
//! `task_id`, signed in version 2): thousands of random records (with every kind of string,
//! float, integer and type drift, a third of them tampered) must get the same canonical bytes,
//! CID and verdicts from us as from Python, in both directions.

#![allow(clippy::unwrap_used)] // a test fails loudly on bad fixtures

use spore_spec::json::{self, Value};
use spore_spec::verify::{check_cid, check_signature};
use spore_spec::verify_chunk::{PreparedKeyCache, verify_records_exact};
use spore_spec::{ExperimentRecord, Identity, Message, ValidationPolicy, validate};
use spore_tests::python::{generate_reference_records_with, python_verdicts_with, require_python_of};

const RECORDS: usize = 1500;

fn field<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or_else(|| panic!("missing {key}"))
}

fn text(value: &Value, key: &str) -> String {
    match field(value, key) {
        Value::String(s) => s.clone(),
        other => panic!("{key} is {other:?}"),
    }
}

fn flag(value: &Value, key: &str) -> bool {
    matches!(field(value, key), Value::Bool(true))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[test]
fn python_made_records_get_the_same_bytes_and_verdicts() {
    python_made_records(&require_python_of("0.1.2"), 20261125);
}

#[test]
fn records_of_0_5_0_with_task_ids_get_the_same_bytes_and_verdicts() {
    let tasks = python_made_records(&require_python_of("0.5.0"), 20261206);
    assert!(tasks.signed >= RECORDS / 3 && tasks.unsigned >= RECORDS / 10 && tasks.absent >= RECORDS / 50, "{tasks:?}");
}

#[test]
fn records_signed_by_us_verify_in_python() {
    signed_by_us(&require_python_of("0.1.2"), 7);
}

#[test]
fn records_with_task_ids_signed_by_us_verify_in_0_5_0() {
    signed_by_us(&require_python_of("0.5.0"), 8);
}

/// How many of the records had `task_id` signed (version 2), carried but unsigned (version 1),
/// and left out.
#[derive(Debug, Default)]
struct TaskIds {
    signed: usize,
    unsigned: usize,
    absent: usize,
}

fn python_made_records(python: &std::path::Path, seed: u64) -> TaskIds {
    let lines = generate_reference_records_with(python, RECORDS, seed);
    assert_eq!(lines.len(), RECORDS);
    let mut tasks = TaskIds::default();
    let (mut tampered, mut rejected) = (0, 0);
    let mut python_verdicts: Vec<(ExperimentRecord, bool)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let case = json::parse(line).unwrap();
        let body = text(&case, "wire_body");
        let Message::Experiment(record) = Message::decode(body.as_bytes()).unwrap_or_else(|e| panic!("#{i}: {e}"))
        else {
            panic!("#{i}: not an experiment")
        };
        let canonical = record.canonical_bytes();
        assert_eq!(String::from_utf8_lossy(&canonical), text(&case, "canonical"), "#{i}: canonical bytes");
        assert_eq!(record.compute_cid(), text(&case, "cid"), "#{i}: CID");
        let cid_ok = check_cid(&record, &canonical).is_ok();
        let sig_ok = check_signature(&record.node_id, &record.signature, &canonical).is_ok();
        assert_eq!(cid_ok, flag(&case, "verify_cid"), "#{i}: CID verdict");
        assert_eq!(sig_ok, flag(&case, "verify_signature"), "#{i}: signature verdict");
        let python_accepts = flag(&case, "verify_cid") && flag(&case, "verify_signature");
        let we_accept = python_accepts && validate(&record, &ValidationPolicy::default(), now()).is_ok();
        assert_eq!(we_accept, python_accepts, "#{i}: acceptance");
        if !matches!(field(&case, "tamper_mode"), Value::Null) {
            tampered += 1;
        }
        if !python_accepts {
            rejected += 1;
        }
        python_verdicts.push(((*record).clone(), python_accepts));
        // What we relay is byte for byte what Python relays (it re-serialises the parsed record),
        // except that we keep an absent `task_id` absent where 0.5.0 writes its default: a 0.1.2
        // peer must be able to take it.
        let mut python_relay = text(&case, "relay_body");
        match (&record.task_id, record.signs_task_id()) {
            (Some(_), true) => tasks.signed += 1,
            (Some(_), false) => tasks.unsigned += 1,
            (None, _) => {
                tasks.absent += 1;
                python_relay = python_relay.replacen(",\"task_id\":\"\"", "", 1);
            }
        }
        let relayed = Message::Experiment(record).encode_body();
        assert_eq!(String::from_utf8_lossy(&relayed), python_relay, "#{i}: relayed body");
    }
    // Checked together, as a node's verification threads check a chunk of frames.
    let records: Vec<&ExperimentRecord> = python_verdicts.iter().map(|(record, _)| record).collect();
    // Once with every publisher's tables prepared at first sight, once with none.
    for prepare_after in [1, u32::MAX] {
        let mut keys = PreparedKeyCache::new(PreparedKeyCache::DEFAULT_TABLE_CAPACITY, prepare_after);
        let together = verify_records_exact(&records, &mut keys);
        for (i, ((_, python), ours)) in python_verdicts.iter().zip(together).enumerate() {
            assert_eq!(ours.is_ok(), *python, "#{i}: verdict when checked in a chunk ({prepare_after})");
        }
    }
    assert!(tampered >= RECORDS / 4, "only {tampered} tampered records");
    assert!(rejected >= RECORDS / 5, "only {rejected} rejected records: tampering is not reaching the verdicts");
    tasks
}

fn signed_by_us(python: &std::path::Path, seed: u64) {
    let lines = generate_reference_records_with(python, RECORDS, seed);
    let identity = Identity::from_seed([42; 32]);
    let mut ours = Vec::with_capacity(lines.len());
    let mut payloads = Vec::with_capacity(lines.len());
    for line in &lines {
        let case = json::parse(line).unwrap();
        let Ok(Message::Experiment(mut record)) = Message::decode(text(&case, "wire_body").as_bytes()) else {
            panic!("not an experiment")
        };
        identity.sign_record(&mut record);
        let mut payload = Vec::new();
        record.write_wire_payload(&mut payload);
        payloads.push(String::from_utf8(payload).unwrap());
        ours.push(record);
    }
    let verdicts = python_verdicts_with(python, &payloads);
    assert_eq!(verdicts.len(), ours.len());
    for (i, (record, verdict)) in ours.iter().zip(&verdicts).enumerate() {
        let verdict = json::parse(verdict).unwrap();
        assert_eq!(
            text(&verdict, "canonical"),
            String::from_utf8_lossy(&record.canonical_bytes()),
            "#{i}: canonical bytes"
        );
        assert_eq!(text(&verdict, "cid"), record.id, "#{i}: CID");
        assert!(flag(&verdict, "verify_cid") && flag(&verdict, "verify_signature"), "#{i}: Python rejects our record");
    }
}

#[test]
fn a_record_we_parse_round_trips_through_python_unchanged() {
    // Python re-serialises what it parsed; our payload must survive json.loads/to_json untouched.
    let record = ExperimentRecord::from_json(
        r#"{"parent":null,"depth":0,"code_cid":"","diff":"é\u0000😀","dataset_cid":"","prepare_cid":"","time_budget":300.0,"val_bpb":1e-05,"peak_vram_mb":24000,"num_steps":18446744073709551617,"num_params":-0,"status":"keep","description":"","hypothesis":"","agent_model":"","gpu_model":"","cuda_version":"","torch_version":"","node_id":"","timestamp":1,"version":1}"#,
    )
    .unwrap();
    let mut payload = Vec::new();
    record.write_wire_payload(&mut payload);
    let verdict = python_verdicts_with(&require_python_of("0.1.2"), &[String::from_utf8(payload).unwrap()]);
    let verdict = json::parse(&verdict[0]).unwrap();
    assert_eq!(text(&verdict, "canonical").as_bytes(), record.canonical_bytes());
}

#[test]
fn float_text_matches_python_repr_for_random_doubles() {
    let output = std::process::Command::new(spore_tests::python::require_python())
        .arg(spore_tests::python::script("reference_records.py"))
        .args(["floats", "200000", "11"])
        .output()
        .expect("run the float generator");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let mut checked = 0;
    for line in text.lines() {
        let (bits, python) = line.split_once(' ').unwrap();
        let x = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        assert_eq!(spore_spec::number::python_float_repr(x), python, "bits {bits}");
        checked += 1;
    }
    assert!(checked > 190_000);
}

/// Runs `control_events.py ARGS` under 0.5.0, feeding `input`, and returns its JSON lines.
fn control_events(args: &[&str], input: &str) -> Vec<Value> {
    use std::io::Write;
    let mut child = std::process::Command::new(require_python_of("0.5.0"))
        .arg(spore_tests::python::script("control_events.py"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().lines().map(|l| json::parse(l).unwrap()).collect()
}

#[test]
fn signed_control_events_of_0_5_0_are_read_and_ours_are_read_by_it() {
    // Python's events, as its gossip sends them: we read each and reach its verdict.
    let cases = control_events(&["make", "300", "3"], "");
    let mut kept = 0;
    for (i, case) in cases.iter().enumerate() {
        let body = text(case, "body");
        let Ok(Message::Control(event)) = Message::decode(body.as_bytes()) else { panic!("#{i}: not read: {body}") };
        assert_eq!(event.verify().is_ok(), flag(case, "keeps"), "#{i}: verdict on {body}");
        kept += usize::from(flag(case, "keeps"));
        // Relayed in the same form, it is still what Python signed.
        let relayed = String::from_utf8(Message::Control(event).encode_body()).unwrap();
        assert_eq!(json::parse(&relayed).unwrap(), json::parse(&body).unwrap(), "#{i}");
    }
    assert!((150..300).contains(&kept), "{kept} of 300 verify: the tampering does not reach the verdicts");
    // Ours, in the native form: Python keeps every one.
    let alice = Identity::from_seed([9; 32]);
    let exp = "e".repeat(64);
    let ours = [
        spore_spec::ControlEvent::challenge(&alice, &exp, 1.0123, "RTX_4090", 1_773_000_600),
        spore_spec::ControlEvent::verification(&alice, &exp, &"p".repeat(64), 0.99, "H100", 1_773_000_601),
    ];
    let bodies: Vec<String> =
        ours.iter().map(|e| String::from_utf8(Message::Control(Box::new(e.clone())).encode_body()).unwrap()).collect();
    let verdicts = control_events(&["check"], &bodies.join("\n"));
    assert_eq!(verdicts, vec![Value::Bool(true); 2], "{bodies:?}");
}

//! `spore record check` and `spore record sign` as a user runs them, judged by the real Python
//! package: fresh random records (a third tampered) from `sporemesh` 0.1.2 go through our
//! binary, and what we sign goes back through Python.

#![allow(clippy::unwrap_used)] // a test fails loudly on bad fixtures

use std::process::Output;

use spore_spec::json::{self, Value};
use spore_tests::python::{generate_reference_records, python_verdicts};

fn spore(args: &[&str], stdin: &[u8]) -> Output {
    spore_tests::bins::run_with_stdin(std::path::Path::new(env!("CARGO_BIN_EXE_spore")), args, stdin)
}

fn get<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or_else(|| panic!("no {key} in {value:?}"))
}

fn text(value: &Value, key: &str) -> String {
    match get(value, key) {
        Value::String(s) => s.clone(),
        other => panic!("{key} = {other:?}"),
    }
}

fn payload_of(wire_body: &str) -> Value {
    get(&json::parse(wire_body).unwrap(), "payload").clone()
}

fn compact(value: &Value) -> String {
    spore_spec::encode::to_compact_string(value, spore_spec::encode::KeyOrder::AsGiven)
}

#[test]
fn check_agrees_with_python_on_random_and_tampered_records() {
    let cases: Vec<Value> = generate_reference_records(600, 99).iter().map(|l| json::parse(l).unwrap()).collect();
    let input: String = cases.iter().map(|c| compact(&payload_of(&text(c, "wire_body"))) + "\n").collect();
    let output = spore(&["record", "check", "-"], input.as_bytes());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), cases.len());
    let mut refused = 0;
    for (i, (case, line)) in cases.iter().zip(&lines).enumerate() {
        let report = json::parse(line).unwrap();
        let payload = payload_of(&text(case, "wire_body"));
        assert_eq!(get(&report, "id"), get(&payload, "id"), "#{i}: id as given");
        assert_eq!(text(&report, "cid"), text(case, "cid"), "#{i}: recomputed CID");
        let python_cid = get(case, "verify_cid");
        let python_sig = get(case, "verify_signature");
        assert_eq!(get(&report, "cid_ok"), python_cid, "#{i}: cid_ok");
        assert_eq!(get(&report, "sig_ok"), python_sig, "#{i}: sig_ok");
        let python_accepts = *python_cid == Value::Bool(true) && *python_sig == Value::Bool(true);
        assert_eq!(*get(&report, "error") == Value::Null, python_accepts, "#{i}: error = {:?}", get(&report, "error"));
        if !python_accepts {
            refused += 1;
        }
    }
    assert!(refused > 100, "tampered records must reach the check: {refused}");
}

#[test]
fn check_reports_bad_lines_and_keeps_going() {
    let mut input = Vec::new();
    input.extend_from_slice(b"not json\n[1,2]\n\xff\xfe\n{\"id\":\"x\",\"task_id\":1}\n\n");
    input.extend_from_slice(format!("{{\"a\":{}}}\n", "[".repeat(10_000)).as_bytes());
    let output = spore(&["record", "check"], &input);
    assert!(output.status.success());
    let lines: Vec<Value> =
        std::str::from_utf8(&output.stdout).unwrap().lines().map(|l| json::parse(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "one verdict per non-blank line");
    for line in &lines {
        assert!(matches!(get(line, "error"), Value::String(_)), "{line:?}");
        assert_eq!(get(line, "cid_ok"), &Value::Bool(false));
    }
    assert_eq!(get(&lines[3], "id"), &Value::String("x".into()));
}

#[test]
fn check_fails_only_when_the_input_cannot_be_read() {
    let output = spore(&["record", "check", "/nonexistent/records.jsonl"], b"");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open"));
}

#[test]
fn sign_produces_records_python_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let cases = generate_reference_records(300, 5);
    let input: String = cases
        .iter()
        .map(|line| {
            let Value::Object(entries) = payload_of(&text(&json::parse(line).unwrap(), "wire_body")) else {
                panic!("payload not an object")
            };
            let fields = entries.into_iter().filter(|(k, _)| !["node_id", "id", "signature"].contains(&k.as_str()));
            compact(&Value::Object(fields.collect())) + "\n"
        })
        .collect();
    let output = spore(&["record", "sign", "-", "--data-dir", data_dir], input.as_bytes());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let signed: Vec<String> = std::str::from_utf8(&output.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(signed.len(), cases.len());
    let node_id = std::fs::read_to_string(dir.path().join("identity/node_id")).unwrap();
    for (line, verdict) in signed.iter().zip(python_verdicts(&signed)) {
        assert_eq!(text(&json::parse(line).unwrap(), "node_id"), node_id);
        let verdict = json::parse(&verdict).unwrap();
        assert_eq!(get(&verdict, "verify_cid"), &Value::Bool(true));
        assert_eq!(get(&verdict, "verify_signature"), &Value::Bool(true));
    }
    // The same data dir signs with the same key next time.
    let again = spore(&["record", "sign", "--data-dir", data_dir], input.lines().next().unwrap().as_bytes());
    let line = String::from_utf8(again.stdout).unwrap();
    assert_eq!(text(&json::parse(line.trim()).unwrap(), "node_id"), node_id);
}

#[test]
fn sign_refuses_non_finite_numbers_and_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"parent":null,"depth":0,"code_cid":"","diff":"","dataset_cid":"","prepare_cid":"","time_budget":300,"val_bpb":1.0,"peak_vram_mb":0.0,"num_steps":1,"num_params":1,"status":"keep","description":"","hypothesis":"","agent_model":"","gpu_model":"","cuda_version":"","torch_version":""}"#;
    let input = format!("{}\n{}\n{}\n", good.replace("1.0", "NaN"), good.replace("\"keep\"", "\"best\""), good);
    let output = spore(&["record", "sign", "--data-dir", dir.path().to_str().unwrap()], input.as_bytes());
    assert_eq!(output.status.code(), Some(1));
    let lines: Vec<Value> =
        std::str::from_utf8(&output.stdout).unwrap().lines().map(|l| json::parse(l).unwrap()).collect();
    assert!(text(&lines[0], "error").contains("not a finite number"));
    assert!(text(&lines[1], "error").contains("status"));
    assert!(matches!(get(&lines[2], "timestamp"), Value::Number(_)), "absent timestamp becomes now");
    assert_eq!(text(&lines[2], "id").len(), 64);
}

#[test]
fn read_commands_refuse_a_data_dir_without_a_node_instead_of_creating_one() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("typo");
    for command in [&["status"][..], &["frontier"], &["graph", "--json"], &["record", "export"]] {
        let mut args: Vec<&str> = command.to_vec();
        args.extend(["--data-dir", missing.to_str().unwrap()]);
        let output = spore(&args, b"");
        assert!(!output.status.success(), "{command:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("no node store"), "{command:?}");
    }
    assert!(!missing.exists(), "nothing was created");
}

#[test]
fn import_stores_what_gossip_would_and_export_gives_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let signer = dir.path().join("signer");
    let fields: String = (0..50)
        .map(|n| {
            format!(
                "{{\"parent\":null,\"depth\":0,\"code_cid\":\"{n:064x}\",\"diff\":\"\",\"dataset_cid\":\"d\",\
                 \"prepare_cid\":\"\",\"time_budget\":300,\"val_bpb\":1.{n:03},\"peak_vram_mb\":0.0,\"num_steps\":1,\
                 \"num_params\":1,\"status\":\"keep\",\"description\":\"r{n}\",\"hypothesis\":\"\",\"agent_model\":\"t\",\
                 \"gpu_model\":\"cpu\",\"cuda_version\":\"none\",\"torch_version\":\"2\",\"timestamp\":1773000000}}\n"
            )
        })
        .collect();
    let signed = spore(&["record", "sign", "--data-dir", signer.to_str().unwrap()], fields.as_bytes());
    assert!(signed.status.success());
    let lines = String::from_utf8(signed.stdout).unwrap();
    // One tampered copy and one line that is not JSON are refused; the rest is stored once.
    let tampered = lines.lines().next().unwrap().replace("\"r0\"", "\"forged\"");
    let input = format!("{lines}{tampered}\nnot json\n{lines}");
    let node = dir.path().join("node");
    let import = spore(&["record", "import", "--data-dir", node.to_str().unwrap()], input.as_bytes());
    assert_eq!(import.status.code(), Some(1), "bad lines make the exit code 1");
    assert_eq!(String::from_utf8_lossy(&import.stdout).trim(), "imported 50, already stored 50, rejected 2");
    let export = spore(&["record", "export", "--data-dir", node.to_str().unwrap()], b"");
    assert_eq!(String::from_utf8(export.stdout).unwrap(), lines, "byte for byte, in order");
}

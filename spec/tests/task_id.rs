//! Records of `sporemesh` 0.5.0 and later carry `task_id`: the fixed vectors of the facts
//! reference (made with the real 0.5.0 `record.py`), and what a 0.1.2 peer may be sent.

#![allow(clippy::unwrap_used)] // a test fails loudly on bad fixtures

use spore_spec::{ExperimentRecord, JsonNumber};

/// V1 of the 0.1.2 vectors: its canonical bytes, which parse as a record without id/signature.
const V1: &str = r#"{"agent_model":"baseline","code_cid":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","cuda_version":"unknown","dataset_cid":"climbmix-400b-shuffle","depth":0,"description":"baseline","diff":"","gpu_model":"NVIDIA_H100_80GB_HBM3","hypothesis":"","node_id":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a","num_params":50300000,"num_steps":953,"parent":null,"peak_vram_mb":45060.2,"prepare_cid":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","status":"keep","time_budget":300,"timestamp":1773000000,"torch_version":"2.9.0+cu128","val_bpb":0.9979,"version":1}"#;
const V1_CID: &str = "5d6b502b909b5d719cd077dfadd95cf7b69b9989694ffabe99bd72f2ccfeef15";
/// The same fields with `task_id` = "c"×64 and `version` 2 (0.5.0).
const V2_CID: &str = "2493230bb5758f142eb86e5692c5dde0a9a357e9b62621c161da8240361d4f21";

#[test]
fn task_id_is_signed_from_version_2_on_and_only_then() {
    let v1 = ExperimentRecord::from_json(V1).unwrap();
    assert_eq!((v1.task_id.clone(), v1.compute_cid()), (None, V1_CID.to_string()));
    assert_eq!(v1.canonical_bytes(), V1.as_bytes(), "no task_id in a 0.1.2 record's bytes");
    // A version-1 record that newer peers stamped with a task id keeps its CID.
    let stamped = ExperimentRecord { task_id: Some("c".repeat(64)), ..v1.clone() };
    assert_eq!(stamped.compute_cid(), V1_CID);
    let mut wire = Vec::new();
    stamped.write_wire_payload(&mut wire);
    let wire = String::from_utf8(wire).unwrap();
    assert!(wire.contains(&format!(",\"task_id\":\"{}\",\"time_budget\":300,", "c".repeat(64))), "{wire}");
    assert_eq!(ExperimentRecord::from_json(&wire).unwrap(), stamped, "kept as it came");
    // Version 2 signs it, between status and time_budget.
    let v2 = ExperimentRecord { version: JsonNumber::from(2), ..stamped.clone() };
    assert_eq!(v2.compute_cid(), V2_CID);
    let canonical = String::from_utf8(v2.canonical_bytes()).unwrap();
    assert!(canonical.contains(&format!("\"status\":\"keep\",\"task_id\":\"{}\",\"time_budget\"", "c".repeat(64))));
    // A version-2 record without the key signs 0.5.0's default, "".
    let bare = ExperimentRecord { task_id: None, ..v2.clone() };
    assert!(String::from_utf8(bare.canonical_bytes()).unwrap().contains("\"task_id\":\"\","));
    assert!(!String::from_utf8(bare.to_json_pretty().into_bytes()).unwrap().contains("task_id"), "absent stays absent");
}

#[test]
fn a_0_1_2_peer_gets_version_1_records_without_task_id_and_no_version_2_record() {
    let v1 = ExperimentRecord::from_json(V1).unwrap();
    assert!(matches!(v1.for_v1_peer(), Some(std::borrow::Cow::Borrowed(_))));
    let stamped = ExperimentRecord { task_id: Some("c".repeat(64)), ..v1.clone() };
    let older = stamped.for_v1_peer().unwrap().into_owned();
    assert_eq!((older.task_id.clone(), older.compute_cid()), (None, V1_CID.to_string()));
    let v2 = ExperimentRecord { version: JsonNumber::from(2), ..stamped };
    assert!(v2.for_v1_peer().is_none(), "leaving task_id out would break its CID");
    let float_v2 = ExperimentRecord { version: JsonNumber::Float(2.0), ..v1 };
    assert!(float_v2.signs_task_id(), "Python compares 2.0 >= 2");
}

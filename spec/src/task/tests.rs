use super::*;

/// Made and signed by the real `sporemesh` 0.5.0 (`TaskManifest.sign`, key seed `07` × 32).
const PYTHON_MANIFEST: &str = r#"{"name": "nanochat climbmix", "description": "lower val_bpb in 5 minutes \u2014 \"\u00e9\"", "task_type": "ml_train", "artifact_type": "python_script", "metric": "val_bpb", "goal": "minimize", "base_code_cid": "abababababababababababababababababababababababababababababababab", "prepare_cid": "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", "dataset_cid": "climbmix-400b-shuffle", "time_budget": 300, "created_by": "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c", "timestamp": 1773000000, "signature": "af235303d4baad05184b40c1871cf6d1f828ac9567adbd47fb7b37a065aa0a1b419a82b629c70633c5d73b9edd3e7b833d572420ee564f67630fd9066c2f9d0c", "task_id": "5fbefc816651ba9ef3c18b67250c287f2fb7facac999972d08f56deff3fc08a0", "version": 1}"#;

/// Its canonical bytes as Python printed them.
const PYTHON_CANONICAL: &str = r#"{"artifact_type":"python_script","base_code_cid":"abababababababababababababababababababababababababababababababab","created_by":"ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c","dataset_cid":"climbmix-400b-shuffle","description":"lower val_bpb in 5 minutes \u2014 \"\u00e9\"","goal":"minimize","metric":"val_bpb","name":"nanochat climbmix","prepare_cid":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","task_type":"ml_train","time_budget":300,"timestamp":1773000000,"version":1}"#;

fn python_manifest() -> Value {
    crate::json::parse(PYTHON_MANIFEST).unwrap()
}

fn with(value: &Value, key: &str, new: Option<Value>) -> Value {
    let Value::Object(entries) = value else { unreachable!() };
    let mut entries: Vec<(String, Value)> = entries.iter().filter(|(k, _)| k != key).cloned().collect();
    entries.extend(new.map(|v| (key.to_string(), v)));
    Value::Object(entries)
}

#[test]
fn a_manifest_python_signed_verifies_with_python_s_canonical_bytes() {
    let manifest = TaskManifest::from_value(&python_manifest()).unwrap();
    assert_eq!(String::from_utf8(manifest.canonical_bytes()).unwrap(), PYTHON_CANONICAL);
    assert_eq!(manifest.verify(), Ok(()));
    assert_eq!(manifest.timestamp, 1_773_000_000);
    assert_eq!(manifest.to_value(), python_manifest(), "kept as it came");
    // Without `version` it is still version 1, as Python's default says.
    assert_eq!(TaskManifest::from_value(&with(&python_manifest(), "version", None)).unwrap().verify(), Ok(()));
}

#[test]
fn a_changed_field_a_wrong_id_or_a_foreign_signature_is_refused() {
    let changed = with(&python_manifest(), "time_budget", Some(Value::Number(JsonNumber::from(301))));
    assert!(matches!(TaskManifest::from_value(&changed).unwrap().verify(), Err(TaskError::TaskId { .. })));
    // Id recomputed, but the signature is not the creator's.
    let mut forged = TaskManifest::from_value(&changed).unwrap();
    let id = crate::cid::cid_of(&forged.canonical_bytes());
    forged = TaskManifest::from_value(&with(&forged.to_value(), "task_id", Some(Value::String(id)))).unwrap();
    assert!(matches!(forged.verify(), Err(TaskError::Signature(_))));
}

#[test]
fn what_python_would_fail_on_is_refused_before_anything_else() {
    let extra = with(&python_manifest(), "priority", Some(Value::Number(JsonNumber::from(1))));
    assert_eq!(TaskManifest::from_value(&extra), Err(TaskError::UnknownKey("priority".into())));
    assert_eq!(TaskManifest::from_value(&with(&python_manifest(), "name", None)), Err(TaskError::Missing("name")));
    let typed = with(&python_manifest(), "timestamp", Some(Value::String("1773000000".into())));
    assert_eq!(TaskManifest::from_value(&typed), Err(TaskError::WrongType("timestamp".into())));
    assert_eq!(TaskManifest::from_value(&Value::Null), Err(TaskError::NotAnObject));
}

#[test]
fn a_manifest_we_sign_verifies() {
    let manifest = TaskManifest::signed(&Identity::from_seed([4; 32]), "ours", 300, 1_773_000_000);
    assert_eq!(manifest.verify(), Ok(()));
    assert_eq!(manifest.created_by, Identity::from_seed([4; 32]).node_id());
}

//! Records as the explorer's JSON shows them. `full` is Python's record dict (the 23 record
//! fields, `SORTED_FIELDS`, as signed, and `task_id` when the record has one) plus what this
//! store knows (`on_frontier`, `children`, `orphan`);
//! `summary` is what the graph needs to draw a node, without diffs and signatures.

use serde_json::{Map, Value, json};

use spore_spec::record::SORTED_FIELDS;

use crate::store::BrowseRow;

/// Fields a graph node carries.
const SUMMARY_FIELDS: [&str; 9] =
    ["id", "parent", "depth", "status", "val_bpb", "gpu_model", "node_id", "timestamp", "description"];

/// Longest description in a summary, in characters.
const SUMMARY_DESCRIPTION: usize = 160;

fn signed_fields(row: &BrowseRow, fields: &[&str]) -> Map<String, Value> {
    // A stored payload parsed when it was stored; should it not now, the row still shows its id.
    let payload: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
    let mut out = Map::new();
    for field in fields {
        match payload.get(*field) {
            Some(value) => out.insert((*field).to_string(), value.clone()),
            // Records of 0.5.0 and later have it; the others show as they were signed.
            None if *field == "task_id" => None,
            None => out.insert((*field).to_string(), Value::Null),
        };
    }
    out.insert("id".into(), Value::String(row.id.clone()));
    out
}

fn with_store_facts(mut fields: Map<String, Value>, row: &BrowseRow) -> Value {
    fields.insert("on_frontier".into(), json!(row.on_frontier));
    fields.insert("children".into(), json!(row.children));
    fields.insert("orphan".into(), json!(row.orphan));
    Value::Object(fields)
}

/// Python's record dict plus the store's facts.
pub fn full(row: &BrowseRow) -> Value {
    with_store_facts(signed_fields(row, &SORTED_FIELDS), row)
}

/// A graph node: identity, outcome and a short description.
pub fn summary(row: &BrowseRow) -> Value {
    let mut fields = signed_fields(row, &SUMMARY_FIELDS);
    if let Some(Value::String(text)) = fields.get_mut("description")
        && text.chars().count() > SUMMARY_DESCRIPTION
    {
        *text = text.chars().take(SUMMARY_DESCRIPTION).chain(std::iter::once('…')).collect();
    }
    with_store_facts(fields, row)
}

/// Edges of a set of rows, Python's shape: one per row that names a parent (the parent may be
/// missing from the store, or from this page).
pub fn edges(rows: &[BrowseRow]) -> Vec<Value> {
    rows.iter().filter_map(|r| r.parent.as_ref().map(|p| json!({"source": p, "target": r.id}))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payload: &str) -> BrowseRow {
        BrowseRow {
            id: "ab".repeat(32),
            parent: None,
            payload: payload.into(),
            on_frontier: true,
            children: 2,
            orphan: false,
        }
    }

    #[test]
    fn full_keeps_the_signed_values_and_adds_the_store_facts() {
        let value = full(&row(r#"{"val_bpb":1e-05,"depth":3,"description":"<b>x</b>","extra":1}"#));
        assert_eq!(value["val_bpb"], json!(1e-05));
        assert_eq!(value["depth"], json!(3));
        assert_eq!(value["description"], "<b>x</b>");
        assert_eq!(value["hypothesis"], Value::Null);
        assert!(value.get("extra").is_none(), "only the record's fields");
        assert_eq!((value["on_frontier"].clone(), value["children"].clone()), (json!(true), json!(2)));
        assert_eq!(value.as_object().map(|o| o.len()), Some(26));
        let tasked = full(&row(r#"{"task_id":"t","version":2}"#));
        assert_eq!((tasked["task_id"].clone(), tasked.as_object().map(|o| o.len())), (json!("t"), Some(27)));
    }

    #[test]
    fn summary_shortens_long_descriptions_and_drops_the_diff() {
        let long = "é".repeat(500);
        let value = summary(&row(&format!(r#"{{"description":"{long}","diff":"+x"}}"#)));
        assert_eq!(value["description"].as_str().map(|d| d.chars().count()), Some(SUMMARY_DESCRIPTION + 1));
        assert!(value.get("diff").is_none());
    }
}

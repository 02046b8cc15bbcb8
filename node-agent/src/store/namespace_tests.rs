//! Unit tests of tasks as namespaces: derived and signed tasks, adoption of orphans, the lineage
//! rules, task-scoped frontiers, and the migration of a store written before tasks.

use spore_spec::{ExperimentRecord, Identity, JsonNumber, Status};

use super::tests::{insert, record};
use super::{DagStore, InsertOutcome};

/// `record` with its `task_id` signed (version 2).
fn in_task(parent: Option<&ExperimentRecord>, task: &str, val_bpb: f64, n: i64) -> ExperimentRecord {
    let mut r = record(parent, Status::Keep, val_bpb, "H100", n);
    r.task_id = Some(task.to_string());
    r.version = JsonNumber::from(2);
    Identity::from_seed([9; 32]).sign_record(&mut r);
    r
}

fn task(store: &DagStore, r: &ExperimentRecord) -> String {
    store.task_of(&r.id).unwrap().unwrap()
}

fn frontier(store: &DagStore, task: &str) -> Vec<String> {
    store.frontier_in(Some(task), None, 100).unwrap().into_iter().map(|e| e.id).collect()
}

#[test]
fn a_root_names_its_legacy_task_and_orphans_join_it_when_it_comes() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let child = record(Some(&root), Status::Keep, 0.9, "H100", 1);
    let grandchild = record(Some(&child), Status::Discard, 0.95, "H100", 2);
    insert(&mut store, &[&grandchild, &child]);
    assert_eq!((task(&store, &child), task(&store, &grandchild)), (String::new(), String::new()));
    assert!(frontier(&store, &root.id).is_empty(), "an orphan is in no task yet");
    insert(&mut store, &[&root]);
    for r in [&root, &child, &grandchild] {
        assert_eq!(task(&store, r), root.id, "every record of the lineage is in the root's task");
    }
    assert_eq!(frontier(&store, &root.id), vec![child.id.clone()]);
}

#[test]
fn an_unsigned_task_id_is_not_believed() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let mut stamped = record(Some(&root), Status::Keep, 0.9, "H100", 1);
    // What a relaying 0.5.0 node writes on a version-1 record: not covered by the signature.
    stamped.task_id = Some("e".repeat(64));
    insert(&mut store, &[&root, &stamped]);
    assert_eq!(task(&store, &stamped), root.id);
}

#[test]
fn a_signed_task_must_be_the_parents() {
    let mut store = DagStore::open_in_memory().unwrap();
    let t = "a".repeat(64);
    let root = in_task(None, &t, 1.0, 0);
    let same = in_task(Some(&root), &t, 0.9, 1);
    let other = in_task(Some(&root), &"b".repeat(64), 0.5, 2);
    let legacy_parent = record(None, Status::Keep, 1.0, "H100", 3);
    let into_legacy = in_task(Some(&legacy_parent), &t, 0.4, 4);
    let outcomes = insert(&mut store, &[&root, &same, &other, &legacy_parent, &into_legacy]);
    assert!(matches!(outcomes[..2], [InsertOutcome::Inserted { .. }, InsertOutcome::Inserted { .. }]));
    assert_eq!(outcomes[2], InsertOutcome::OutsideTask);
    assert_eq!(outcomes[4], InsertOutcome::OutsideTask);
    assert!(!store.contains(&other.id).unwrap() && !store.contains(&into_legacy.id).unwrap());
    assert_eq!(frontier(&store, &t), vec![same.id.clone()]);
    assert_eq!(insert(&mut store, &[&same]), vec![InsertOutcome::Duplicate]);
}

#[test]
fn a_signed_root_cannot_take_another_records_legacy_task_but_a_task_may_have_several_roots() {
    let mut store = DagStore::open_in_memory().unwrap();
    let legacy = record(None, Status::Keep, 1.0, "H100", 0);
    let squatter = in_task(None, &legacy.id, 0.1, 1);
    let t = "c".repeat(64);
    let first = in_task(None, &t, 1.0, 2);
    let second = in_task(None, &t, 0.8, 3);
    let outcomes = insert(&mut store, &[&legacy, &squatter, &first, &second]);
    assert_eq!(outcomes[1], InsertOutcome::OutsideTask);
    assert!(matches!(outcomes[3], InsertOutcome::Inserted { .. }), "0.5.0 would keep only the first root");
    assert_eq!(frontier(&store, &legacy.id), vec![legacy.id.clone()]);
    assert_eq!(frontier(&store, &t), vec![second.id.clone(), first.id.clone()]);
    let tallies = store.task_tallies(10).unwrap();
    let of_t = tallies.iter().find(|x| x.task == t).unwrap();
    assert_eq!((of_t.records, of_t.roots, of_t.best), (2, 2, Some(0.8)));
}

#[test]
fn a_child_in_another_task_does_not_push_its_parent_off_its_tasks_frontier() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    // Arrives first, so nothing could check it against its parent.
    let stranger = in_task(Some(&root), &"d".repeat(64), 0.5, 1);
    insert(&mut store, &[&stranger, &root]);
    assert_eq!(frontier(&store, &root.id), vec![root.id.clone()]);
    assert_eq!(task(&store, &stranger), "d".repeat(64), "a signed task is never adopted");
}

#[test]
fn task_activity_counts_the_25_most_recent_records() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let mut all = vec![root.clone()];
    for n in 1..30 {
        all.push(record(Some(&root), Status::Discard, 1.1, "H100", n));
    }
    insert(&mut store, &all.iter().collect::<Vec<_>>());
    let activity = store.task_activity(&root.id).unwrap();
    assert_eq!((activity.recent, activity.keeps, activity.latest), (25, 0, 1_700_000_029));
    assert_eq!(store.task_activity("none").unwrap().recent, 0);
}

#[test]
fn a_store_written_before_tasks_is_migrated_and_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dag.sqlite");
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let child = record(Some(&root), Status::Keep, 0.9, "H100", 1);
    let signed = in_task(None, &"f".repeat(64), 1.2, 2);
    {
        let mut store = DagStore::open(&path).unwrap();
        insert(&mut store, &[&root, &child, &signed]);
        store
            .conn
            .execute_batch(
                "DROP INDEX record_task; DROP INDEX record_frontier_task; \
                 ALTER TABLE record DROP COLUMN task; ALTER TABLE record DROP COLUMN task_signed;",
            )
            .unwrap();
    }
    let store = DagStore::open(&path).unwrap();
    assert_eq!((task(&store, &root), task(&store, &child)), (root.id.clone(), root.id.clone()));
    assert_eq!(task(&store, &signed), "f".repeat(64));
    assert_eq!(frontier(&store, &root.id), vec![child.id.clone()]);
}

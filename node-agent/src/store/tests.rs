//! Unit tests of the DAG store: frontier rules, orphans, depth checks, sync pages.

use spore_spec::{ExperimentRecord, Flag, Identity, JsonNumber, Status};

use super::{DagStore, InsertOutcome, StoredRecord};

pub(super) fn record(
    parent: Option<&ExperimentRecord>,
    status: Status,
    val_bpb: f64,
    gpu: &str,
    n: i64,
) -> ExperimentRecord {
    let mut r = spore_tests::records::record(n);
    r.parent = parent.map(|p| p.id.clone());
    r.depth = JsonNumber::from(parent.map_or(0, |p| p.depth.as_i64().unwrap_or(0) + 1));
    r.status = status;
    r.val_bpb = JsonNumber::Float(val_bpb);
    r.gpu_model = gpu.into();
    r.timestamp = JsonNumber::from(1_700_000_000 + n);
    Identity::from_seed([9; 32]).sign_record(&mut r);
    r
}

pub(super) fn stored(record: &ExperimentRecord) -> StoredRecord {
    let mut payload = Vec::new();
    record.write_wire_payload(&mut payload);
    StoredRecord {
        record: record.clone(),
        payload: String::from_utf8(payload).unwrap(),
        flags: Vec::new(),
        received_at: 0,
    }
}

pub(super) fn insert(store: &mut DagStore, records: &[&ExperimentRecord]) -> Vec<InsertOutcome> {
    let items: Vec<StoredRecord> = records.iter().map(|r| stored(r)).collect();
    store.insert_batch(&items).unwrap()
}

fn frontier_ids(store: &DagStore, gpu: Option<&str>) -> Vec<String> {
    store.frontier(gpu, 100).unwrap().into_iter().map(|e| e.id).collect()
}

#[test]
fn a_better_keep_child_removes_its_parent_from_the_frontier() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let better = record(Some(&root), Status::Keep, 0.9, "H100", 1);
    let worse = record(Some(&root), Status::Keep, 1.1, "H100", 2);
    let discard = record(Some(&better), Status::Discard, 0.5, "H100", 3);
    insert(&mut store, &[&root, &worse, &discard]);
    assert_eq!(frontier_ids(&store, None), vec![root.id.clone(), worse.id.clone()]);
    insert(&mut store, &[&better]);
    assert_eq!(frontier_ids(&store, None), vec![better.id.clone(), worse.id.clone()], "discard children never count");
}

#[test]
fn an_orphan_that_beats_its_late_parent_keeps_the_parent_off_the_frontier() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let child = record(Some(&root), Status::Keep, 0.8, "H100", 1);
    let outcomes = insert(&mut store, &[&child]);
    assert_eq!(outcomes, vec![InsertOutcome::Inserted { seq: 1, orphan: true }]);
    assert_eq!(store.missing_parents(10).unwrap(), vec![root.id.clone()]);
    insert(&mut store, &[&root]);
    assert_eq!(frontier_ids(&store, None), vec![child.id.clone()]);
    assert!(store.missing_parents(10).unwrap().is_empty());
}

#[test]
fn the_gpu_filter_applies_to_the_record_only_as_in_python() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "A100", 0);
    let other_gpu_child = record(Some(&root), Status::Keep, 0.9, "H100", 1);
    insert(&mut store, &[&root, &other_gpu_child]);
    assert!(frontier_ids(&store, Some("A100")).is_empty());
    assert_eq!(frontier_ids(&store, Some("H100")), vec![other_gpu_child.id.clone()]);
}

#[test]
fn flagged_records_and_wrong_depths_stay_off_the_frontier() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let mut flagged = stored(&record(Some(&root), Status::Keep, 0.5, "H100", 1));
    flagged.flags.push(Flag::NonPositiveMetric);
    let mut wrong_depth = record(Some(&root), Status::Keep, 0.7, "H100", 2);
    wrong_depth.depth = JsonNumber::from(5);
    Identity::from_seed([9; 32]).sign_record(&mut wrong_depth);
    store.insert_batch(&[stored(&root), flagged, stored(&wrong_depth)]).unwrap();
    assert_eq!(frontier_ids(&store, None), vec![root.id.clone()], "untrusted children neither join nor remove");

    // A child that arrived before its parent is judged when the parent arrives.
    let mut store = DagStore::open_in_memory().unwrap();
    insert(&mut store, &[&wrong_depth]);
    assert_eq!(frontier_ids(&store, None), vec![wrong_depth.id.clone()], "unknown parent: nothing to check yet");
    insert(&mut store, &[&root]);
    assert_eq!(frontier_ids(&store, None), vec![root.id.clone()]);
}

#[test]
fn duplicates_are_reported_and_payloads_kept_verbatim() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let mut item = stored(&root);
    item.payload = format!(" {} ", item.payload);
    store.insert_batch(std::slice::from_ref(&item)).unwrap();
    assert_eq!(insert(&mut store, &[&root]), vec![InsertOutcome::Duplicate]);
    assert_eq!(store.payload(&root.id).unwrap(), Some(item.payload));
    assert_eq!(store.counts().unwrap().keep, 1);
    assert_eq!(store.total().unwrap(), 1, "a duplicate is not counted twice");
}

#[test]
fn the_total_is_every_status_counted() {
    let mut store = DagStore::open_in_memory().unwrap();
    assert_eq!(store.total().unwrap(), 0);
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let discard = record(Some(&root), Status::Discard, 1.2, "H100", 1);
    let crash = record(Some(&root), Status::Crash, 0.0, "A100", 2);
    insert(&mut store, &[&root, &discard, &crash]);
    let counts = store.counts().unwrap();
    assert_eq!((counts.keep, counts.discard, counts.crash), (1, 1, 1));
    assert_eq!(store.total().unwrap(), counts.total);
    assert_eq!(store.total().unwrap(), 3);
}

fn plan(store: &DagStore, query: &str) -> Vec<String> {
    let mut plan = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {query}")).unwrap();
    let unbound = rusqlite::params_from_iter(std::iter::repeat_n(rusqlite::types::Null, plan.parameter_count()));
    plan.query_map(unbound, |row| row.get::<_, String>(3)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// What anyone who can load a status page may make the node do: each polled count is read from
/// an index or the store's counters, never by visiting every record (an attacker repeating the
/// explorer's summary cost the node 1.5 s of reading per request at 1,000,000 records); and the
/// insert path finds a record's children by the parent index (a scan there makes every insert
/// cost the whole store). Plans as a store without statistics gets them.
#[test]
fn polled_counts_and_the_insert_paths_lookups_read_no_more_than_they_need() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let crash = record(Some(&root), Status::Crash, 0.0, "A100", 1);
    insert(&mut store, &[&root, &crash]);
    for query in [super::TOTAL, super::FRONTIER_SIZE] {
        let steps = plan(&store, query);
        assert!(steps.iter().all(|s| s.contains("USING COVERING INDEX")), "{query}: {steps:?}");
    }
    let steps = plan(&store, super::status_count::COUNTS);
    assert!(steps.iter().all(|s| s.contains("record_status_count")), "{steps:?}");
    for query in [super::DISTRUST_CHILDREN, super::BEATEN] {
        let steps = plan(&store, query);
        assert!(steps.iter().all(|s| s.contains("USING INDEX record_parent (parent=?)")), "{query}: {steps:?}");
    }
}

fn counts_of(store: &DagStore) -> (u64, u64, u64, u64) {
    let c = store.counts().unwrap();
    (c.total, c.keep, c.discard, c.crash)
}

/// A store written before the counters gets them from its records when opened, records that a
/// version without them wrote later are counted at the next open, and the counters follow every
/// insert.
#[test]
fn the_status_counters_start_from_the_records_and_follow_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dag.sqlite");
    let mut store = DagStore::open(&path).unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    insert(&mut store, &[&root, &record(Some(&root), Status::Discard, 1.2, "H100", 1)]);
    store.conn.execute_batch("DROP TABLE record_status_count; DROP TABLE record_counted").unwrap();
    drop(store);
    let mut store = DagStore::open(&path).unwrap();
    assert_eq!(counts_of(&store), (2, 1, 1, 0));
    // As if a version without counters had stored the crash.
    insert(&mut store, &[&record(Some(&root), Status::Crash, 0.0, "H100", 2)]);
    store
        .conn
        .execute_batch(
            "UPDATE record_counted SET seq = seq - 1; DELETE FROM record_status_count WHERE status = 'crash'",
        )
        .unwrap();
    assert_eq!(counts_of(&store), (2, 1, 1, 0));
    drop(store);
    let mut store = DagStore::open(&path).unwrap();
    assert_eq!(counts_of(&store), (3, 1, 1, 1));
    // A duplicate counts nothing; a new record counts once.
    insert(&mut store, &[&root, &record(Some(&root), Status::Keep, 0.9, "H100", 3)]);
    assert_eq!(counts_of(&store), (4, 2, 1, 1));
    assert_eq!(store.total().unwrap(), 4);
}

#[test]
fn sync_pages_send_parents_first_and_resume_from_a_cursor() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 50);
    let child = record(Some(&root), Status::Discard, 1.2, "H100", 10);
    let grandchild = record(Some(&child), Status::Crash, 0.0, "H100", 5);
    insert(&mut store, &[&grandchild, &child, &root]);
    let first = store.sync_page(0, None, 2).unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].1.contains(&root.id) && first[1].1.contains(&child.id));
    let rest = store.sync_page(0, Some(first[1].0), 10).unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].1.contains(&grandchild.id));
    assert_eq!(store.sync_page(1_700_000_011, None, 10).unwrap().len(), 1, "since filters by timestamp");
    assert_eq!(store.page_after_seq(1, 10).unwrap().len(), 2);
    assert_eq!(store.last_seq().unwrap(), 3);
}

#[test]
fn the_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/dag.sqlite");
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    {
        let mut store = DagStore::open(&path).unwrap();
        insert(&mut store, &[&root]);
        store.set_sync_cursor("peer", 42).unwrap();
    }
    let store = DagStore::open(&path).unwrap();
    assert!(store.contains(&root.id).unwrap());
    assert_eq!(store.sync_cursor("peer").unwrap(), Some(42));
    assert_eq!(frontier_ids(&store, None), vec![root.id]);
}

#[test]
fn the_frontier_of_a_class_merges_its_board_names() {
    let mut store = DagStore::open_in_memory().unwrap();
    let sxm = record(None, Status::Keep, 1.0, "NVIDIA_H100_80GB_HBM3", 0);
    let pcie = record(None, Status::Keep, 0.9, "NVIDIA_H100_PCIe", 1);
    let a100 = record(None, Status::Keep, 0.5, "NVIDIA_A100-SXM4-80GB", 2);
    insert(&mut store, &[&sxm, &pcie, &a100]);
    let ids: Vec<String> = store.frontier_of_class("H100", 10).unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![pcie.id.clone(), sxm.id.clone()]);
    assert_eq!(store.frontier_of_class("H100", 1).unwrap().len(), 1);
    assert!(store.frontier_of_class("RTX_4090", 10).unwrap().is_empty());
}

#[test]
fn a_rejected_record_leaves_the_frontier_and_its_parent_returns() {
    let mut store = DagStore::open_in_memory().unwrap();
    let root = record(None, Status::Keep, 1.0, "H100", 0);
    let lie = record(Some(&root), Status::Keep, 0.5, "H100", 1);
    insert(&mut store, &[&root, &lie]);
    assert_eq!(frontier_ids(&store, None), vec![lie.id.clone()]);
    assert!(store.reject(&lie.id, 1.02, 10).unwrap());
    assert!(!store.reject(&lie.id, 1.02, 11).unwrap(), "once");
    assert_eq!(frontier_ids(&store, None), vec![root.id.clone()]);
    assert!(store.is_rejected(&lie.id).unwrap());
    assert_eq!(store.rejected().unwrap(), vec![(lie.id.clone(), 1.02)]);
}

#[test]
fn the_writer_leaves_checkpoints_to_its_thread_and_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dag.sqlite");
    let mut store = DagStore::open_writer(&path).unwrap();
    let autocheckpoint: i64 = store.conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0)).unwrap();
    assert_eq!(autocheckpoint, 0, "commits do not checkpoint");
    let before = std::fs::metadata(&path).unwrap().len();
    let records: Vec<ExperimentRecord> = (0..200).map(|n| record(None, Status::Keep, 1.0, "H100", n)).collect();
    let refs: Vec<&ExperimentRecord> = records.iter().collect();
    insert(&mut store, &refs);
    // The records reach the database file without this connection (or the test) checkpointing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() <= before + 100_000 {
        assert!(std::time::Instant::now() < deadline, "no checkpoint copied the log back");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(store);
    let reopened = DagStore::open(&path).unwrap();
    assert_eq!(reopened.counts().unwrap().total, 200);
}

#[test]
fn the_writer_waits_for_a_lock_held_by_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dag.sqlite");
    let store = DagStore::open_writer(&path).unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (tx_held, rx_held) = std::sync::mpsc::channel::<()>();
    let (tx_release, rx_release) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        tx_held.send(()).unwrap();
        rx_release.recv().unwrap();
        holder.execute_batch("COMMIT").unwrap();
    });
    rx_held.recv().unwrap();
    // Without a busy handler the write fails at once with "database is locked".
    let impatient = rusqlite::Connection::open(&path).unwrap();
    impatient.busy_handler(None).unwrap();
    assert!(impatient.execute("INSERT INTO imported (id) VALUES ('x')", []).is_err());
    // The writer waits in short steps and goes on once the lock is released.
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        tx_release.send(()).unwrap();
    });
    store.conn.execute("INSERT INTO imported (id) VALUES ('y')", []).unwrap();
    holder.join().unwrap();
    let count: i64 = store.conn.query_row("SELECT COUNT(*) FROM imported", [], |row| row.get(0)).unwrap();
    assert_eq!(count, 1);
}

//! The frontier query on a store of 1,000,000 records (a tree of keeps and discards over four
//! GPU models), and the counts that status pages and `/metrics` poll. Run: `cargo bench -p
//! spore-agent --bench frontier`. Building the store takes a minute; the queries are what is
//! measured. The Python peer's query is a correlated subquery
//! without an index on the result (754 s at 100,000 records on the build machine).

use criterion::{Criterion, criterion_group, criterion_main};
use spore_agent::store::{DagStore, StoredRecord};
use spore_spec::{ExperimentRecord, JsonNumber, Status};

const RECORDS: usize = 1_000_000;
const GPUS: [&str; 4] = ["H100", "A100", "RTX_4090", "CPU"];

fn record(n: usize, parent: Option<String>) -> ExperimentRecord {
    // Unsigned: the store trusts its caller; signatures are checked before records get here.
    let mut r = spore_tests::records::record(n as i64);
    r.parent = parent;
    r.val_bpb = JsonNumber::Float(1.0 + ((n * 7919) % 10_007) as f64 * 1e-5);
    r.status = if n.is_multiple_of(3) { Status::Discard } else { Status::Keep };
    r.gpu_model = GPUS[n % 4].into();
    r.node_id = "ab".repeat(32);
    r.id = format!("{:064x}", n + 1);
    r
}

fn build(store: &mut DagStore) {
    let mut batch = Vec::with_capacity(10_000);
    let mut depths = vec![0i64; RECORDS];
    for n in 0..RECORDS {
        // Each record's parent is an earlier one (ids are n + 1), with a consistent depth.
        let parent_index = (n > 0).then(|| (n.wrapping_mul(2_654_435_761) >> 7) % n);
        let mut r = record(n, parent_index.map(|p| format!("{:064x}", p + 1)));
        depths[n] = parent_index.map_or(0, |p| depths[p] + 1);
        r.depth = JsonNumber::from(depths[n]);
        batch.push(StoredRecord { record: r, payload: "{}".into(), flags: vec![], received_at: 0 });
        if batch.len() == 10_000 {
            store.insert_batch(&batch).expect("insert");
            batch.clear();
        }
    }
    store.insert_batch(&batch).expect("insert");
}

fn frontier(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = DagStore::open(&dir.path().join("dag.sqlite")).expect("open");
    let started = std::time::Instant::now();
    build(&mut store);
    eprintln!("built {} records in {:.1} s", store.counts().expect("count").total, started.elapsed().as_secs_f64());
    let size = store.frontier(None, usize::MAX).expect("frontier").len();
    eprintln!("frontier holds {size} records");
    c.bench_function("frontier_top20_at_1m", |b| b.iter(|| store.frontier(None, 20).expect("frontier")));
    c.bench_function("frontier_top20_one_gpu_at_1m", |b| {
        b.iter(|| store.frontier(Some("H100"), 20).expect("frontier"))
    });
    c.bench_function("counts_by_status_at_1m", |b| b.iter(|| store.counts().expect("counts")));
    c.bench_function("frontier_size_at_1m", |b| b.iter(|| store.frontier_size().expect("size")));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = frontier
}
criterion_main!(benches);

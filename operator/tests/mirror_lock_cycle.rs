#![allow(clippy::unwrap_used)]
//! Two writers of one database whose transactions wait on each other through a mirror's commit
//! order, for real: a cycle PostgreSQL cannot see. The mirror's later batch holds a row that the
//! other writer needs, and waits (in the mirror, not in Postgres) for its earlier batch, which
//! waits for a row the other writer holds. The writers' lock timeout ends the mirror's session;
//! the other writer goes on, and the mirror resumes from its cursor and writes every record once.
//!
//! The other writer is a plain connection of the test, inserting what another mirror's batch
//! would; a third transaction holds the mirror's first record until the stream's other records
//! have reached it, so its batches form the same way on any machine.

#[path = "support/hostile_agent.rs"]
mod hostile_agent;
#[path = "support/poll.rs"]
mod poll;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hostile_agent::{Hostile, numbered, payload, signed};
use poll::{connect, wait_until};
use spore_operator::mirror::metrics::MirrorMetrics;
use spore_operator::mirror::writer::LOCK_TIMEOUT;
use spore_spec::ExperimentRecord;
use spore_tests::testenv::{TestEnv, TestEnvOptions};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

async fn backend_pid(client: &Client) -> i32 {
    client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
}

async fn i64(client: &Client, sql: &str, pid: i32) -> i64 {
    client.query_one(sql, &[&pid]).await.unwrap().get(0)
}

/// Backends that wait for a lock `pid` holds.
const BLOCKED_BY: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) AND wait_event_type = 'Lock'";
/// Other backends inside a transaction and waiting for their client (a staged batch).
const STAGED: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE state = 'idle in transaction' AND pid <> $1 AND datname = current_database()";

/// Inserts `record` as another mirror's batch would.
async fn insert(client: &Client, record: &ExperimentRecord) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO experiments (id, node_id, status, val_bpb, gpu_model, gpu_class, description, payload, \
             source_agent, source_seq) VALUES ($1, $2, 'keep', 1.0, 'cpu', 'cpu', '', $3, 'another-mirror', 1)",
            &[&record.id, &record.node_id, &payload(record)],
        )
        .await
}

/// How long each step may take.
const STEP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_cycle_through_the_mirrors_commit_order_ends_by_its_lock_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = TestEnvOptions::new(tmp.path().join("env"));
    options.postgres = true;
    let env = tokio::task::spawn_blocking(move || TestEnv::up(&options).expect("PostgreSQL")).await.unwrap();
    let url = env.database_url().unwrap().to_string();
    let mut setup = connect(&url).await;
    spore_operator::mirror::migrate(&mut setup).await.unwrap();

    let (first, p, q) = (signed(1), signed(2), signed(3));
    // `holder` keeps the mirror's first batch waiting; `other` is the other writer, holding p.
    let (holder, other) = (connect(&url).await, connect(&url).await);
    let (holder_pid, other_pid) = (backend_pid(&holder).await, backend_pid(&other).await);
    holder.batch_execute("BEGIN").await.unwrap();
    insert(&holder, &first).await.unwrap();
    other.batch_execute("BEGIN").await.unwrap();
    insert(&other, &p).await.unwrap();

    // The agent streams the three at once; one record per batch, two batches in flight.
    let records = numbered([&first, &p, &q].iter().map(|r| (r.id.clone(), payload(r))).collect());
    let (agent, server) = hostile_agent::serve(Hostile { records, ..Hostile::default() }).await;
    let metrics = Arc::new(MirrorMetrics::default());
    let mut config = hostile_agent::mirror_config(&agent, &url, &metrics, 0);
    config.batch = 1;
    let shutdown = CancellationToken::new();
    let mirror = tokio::spawn(spore_operator::mirror::run(config, shutdown.clone()));

    wait_until("the mirror's first batch waits", STEP, async || i64(&setup, BLOCKED_BY, holder_pid).await == 1).await;
    // Time for the other two records to reach the mirror (microseconds of checking).
    tokio::time::sleep(Duration::from_secs(2)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    // The cycle's first half: the mirror's batch of p waits for the other writer, and its batch
    // of q, staged, waits in the mirror for that one to commit.
    wait_until("the mirror waits for p and holds q", STEP, async || {
        i64(&setup, BLOCKED_BY, other_pid).await == 1 && i64(&setup, STAGED, other_pid).await == 1
    })
    .await;
    assert_eq!(metrics.errors.load(Ordering::Relaxed), 0);

    // The other writer now needs q: a cycle. Without a lock timeout it never ends.
    let waited = tokio::time::Instant::now();
    let inserted = tokio::time::timeout(LOCK_TIMEOUT + Duration::from_secs(60), insert(&other, &q)).await;
    assert!(
        matches!(inserted, Ok(Ok(1))),
        "the other writer is still stuck after {:?}: {inserted:?}",
        waited.elapsed()
    );
    wait_until("the mirror counts its ended session", STEP, async || metrics.errors.load(Ordering::Relaxed) >= 1).await;
    other.batch_execute("COMMIT").await.unwrap();

    // The mirror resumes from its cursor: every record once, the other writer's rows kept.
    wait_until("the mirror's cursor passes the stream", STEP, async || metrics.cursor.load(Ordering::Relaxed) == 3)
        .await;
    let rows: Vec<(String, String)> = setup
        .query("SELECT id, source_agent FROM experiments ORDER BY id COLLATE \"C\"", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut expected: Vec<(String, String)> =
        [(&first, "ab".repeat(32)), (&p, "another-mirror".into()), (&q, "another-mirror".into())]
            .into_iter()
            .map(|(record, source)| (record.id.clone(), source))
            .collect();
    expected.sort();
    assert_eq!(rows, expected);
    shutdown.cancel();
    mirror.await.unwrap().unwrap();
    server.abort();
    drop(env);
}

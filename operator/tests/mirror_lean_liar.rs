#![allow(clippy::unwrap_used)]
//! An agent that lies about its backlog cannot keep a table's indexes away, for real: a hostile
//! agent (a real gRPC server on 127.0.0.1) claims 10¹² records waiting, which makes the mirror
//! defer the secondary indexes of a real PostgreSQL. Its stream then carries a record that does
//! not verify, and the indexes come back while it keeps streaming; its next session claims the
//! same backlog and is not believed again; a fresh mirror that believes it once more builds them
//! again as soon as the stream goes quiet.

#[path = "support/hostile_agent.rs"]
mod hostile_agent;
#[path = "support/poll.rs"]
mod poll;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hostile_agent::{Hostile, numbered, payload, signed};
use poll::{connect, wait_until};
use spore_operator::mirror::lean;
use spore_operator::mirror::metrics::MirrorMetrics;
use spore_tests::testenv::{TestEnv, TestEnvOptions};
use tokio_util::sync::CancellationToken;

const CLAIMED: i64 = 1_000_000_000_000;

async fn i64(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn indexes(client: &tokio_postgres::Client) -> i64 {
    i64(client, "SELECT count(*) FROM pg_indexes WHERE tablename = 'experiments'").await
}

/// How long each step may take.
const STEP: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_backlog_holds_the_indexes_only_until_a_lie_or_a_quiet_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = TestEnvOptions::new(tmp.path().join("env"));
    options.postgres = true;
    let env = tokio::task::spawn_blocking(move || TestEnv::up(&options).expect("PostgreSQL")).await.unwrap();
    let url = env.database_url().unwrap().to_string();

    // Two honest records, a payload changed after signing, then honest ones at 5 a second (never
    // quiet long enough for the mirror's idle repair), and the stream ends after the last.
    let victim = signed(3);
    let mut stream: Vec<(String, String)> = [signed(1), signed(2)].iter().map(|r| (r.id.clone(), payload(r))).collect();
    stream.push((victim.id.clone(), payload(&victim).replace("\"record 3\"", "\"record 3, better\"")));
    stream.extend((4..=30).map(signed).map(|r| (r.id.clone(), payload(&r))));
    let streams = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let liar = Hostile {
        records: numbered(stream),
        claimed_last_seq: Some(CLAIMED),
        pace: Duration::from_millis(200),
        end_first_stream: true,
        streams: streams.clone(),
    };
    let (agent, server) = hostile_agent::serve(liar).await;

    let client = connect(&url).await;
    let metrics = Arc::new(MirrorMetrics::default());
    let shutdown = CancellationToken::new();
    let mirror = tokio::spawn(spore_operator::mirror::run(
        hostile_agent::mirror_config(&agent, &url, &metrics, 1),
        shutdown.clone(),
    ));

    // Believed once: the indexes are deferred for the claimed backlog.
    wait_until("the claimed backlog defers the indexes", STEP, async || {
        metrics.lean_backfills.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(indexes(&client).await, 1, "only the primary key while the backlog is written");
    // The forged record ends it, while records keep coming well inside the repair interval.
    assert!(lean::REPAIR_EVERY > Duration::from_millis(200) * 10);
    wait_until("a refused record ends the lean backfill", STEP, async || indexes(&client).await == 7).await;
    let cursor = metrics.cursor.load(Ordering::Relaxed);
    assert!((3..30).contains(&cursor), "ended mid-stream (cursor {cursor}), not by the stream's end");
    assert_eq!(metrics.rows_refused.load(Ordering::Relaxed), 1);
    assert_eq!(i64(&client, "SELECT count(*) FROM mirror_deferred_indexes").await, 0);

    // The stream ends; the next session hears the same claim and keeps the indexes.
    wait_until("a second session", STEP, async || streams.load(Ordering::SeqCst) == 2).await;
    assert!(metrics.errors.load(Ordering::Relaxed) >= 1);
    assert_eq!(metrics.lean_backfills.load(Ordering::Relaxed), 1, "the claim is believed once per run");
    assert_eq!(indexes(&client).await, 7);
    assert_eq!(metrics.cursor.load(Ordering::Relaxed), 30);
    assert_eq!(i64(&client, "SELECT count(*) FROM experiments").await, 29, "every honest record, once");
    shutdown.cancel();
    mirror.await.unwrap().unwrap();

    // A fresh mirror believes the claim once more; the stream stays quiet, so the backlog is not
    // coming: the indexes are built again within the repair interval.
    let metrics = Arc::new(MirrorMetrics::default());
    let shutdown = CancellationToken::new();
    let mirror = tokio::spawn(spore_operator::mirror::run(
        hostile_agent::mirror_config(&agent, &url, &metrics, 1),
        shutdown.clone(),
    ));
    wait_until("a fresh mirror defers them again", STEP, async || metrics.lean_backfills.load(Ordering::Relaxed) == 1)
        .await;
    let deferred_at = tokio::time::Instant::now();
    wait_until("a quiet stream ends the lean backfill", STEP, async || indexes(&client).await == 7).await;
    assert!(deferred_at.elapsed() >= lean::REPAIR_EVERY - Duration::from_secs(1), "ended by the quiet stream");
    assert_eq!(metrics.indexes_deferred.load(Ordering::Relaxed), 0);
    assert_eq!(i64(&client, "SELECT count(*) FROM mirror_deferred_indexes").await, 0);
    assert_eq!(
        i64(
            &client,
            "SELECT count(*) FILTER (WHERE NOT indisvalid) FROM pg_index WHERE indrelid = 'experiments'::regclass"
        )
        .await,
        0
    );
    shutdown.cancel();
    mirror.await.unwrap().unwrap();
    server.abort();
    drop(env);
}

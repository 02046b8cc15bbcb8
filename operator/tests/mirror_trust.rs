#![allow(clippy::unwrap_used)]
//! The mirror trusts nothing it streams, for real: a hostile agent (a real gRPC server on
//! 127.0.0.1 speaking the agent's API) streams two honest records between forged ones — a
//! payload changed after signing, a record re-hashed under a signature that is not its own, a
//! record streamed under another id, a payload that is no record — into a real PostgreSQL.
//! Only the honest two are written; the rest are counted as refused, and the cursor moves past
//! them all.

#[path = "support/hostile_agent.rs"]
mod hostile_agent;
#[path = "support/poll.rs"]
mod poll;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hostile_agent::{Hostile, numbered, payload, signed};
use spore_spec::JsonNumber;
use spore_tests::testenv::{TestEnv, TestEnvOptions};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_records_from_a_hostile_agent_are_never_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = TestEnvOptions::new(tmp.path().join("env"));
    options.postgres = true;
    let env = tokio::task::spawn_blocking(move || TestEnv::up(&options).expect("PostgreSQL")).await.unwrap();
    let url = env.database_url().unwrap().to_string();

    let (first, second) = (signed(1), signed(2));
    let mut rehashed = signed(3);
    rehashed.val_bpb = JsonNumber::Float(0.01);
    rehashed.id = spore_spec::cid_of(&rehashed.canonical_bytes());
    let victim = signed(4);
    let forged: Vec<(String, String)> = vec![
        (victim.id.clone(), payload(&victim).replace("\"record 4\"", "\"record 4, better\"")),
        (rehashed.id.clone(), payload(&rehashed)),
        ("0".repeat(64), payload(&victim)),
        ("1".repeat(64), "{\"not\":\"a record\"}".into()),
    ];
    let mut stream = vec![(first.id.clone(), payload(&first))];
    stream.extend(forged);
    stream.push((second.id.clone(), payload(&second)));
    let records = numbered(stream);
    let (agent, server) = hostile_agent::serve(Hostile { records, ..Default::default() }).await;

    let metrics = Arc::new(spore_operator::mirror::metrics::MirrorMetrics::default());
    let config = hostile_agent::mirror_config(&agent, &url, &metrics, 0);
    let shutdown = CancellationToken::new();
    let mirror = tokio::spawn(spore_operator::mirror::run(config, shutdown.clone()));
    poll::wait_until("the mirror reaches the stream's end", Duration::from_secs(60), async || {
        metrics.cursor.load(Ordering::Relaxed) >= 6
    })
    .await;
    shutdown.cancel();
    mirror.await.unwrap().unwrap();
    server.abort();

    let client = poll::connect(&url).await;
    let rows: Vec<(String, String)> = client
        .query("SELECT id, payload FROM experiments ORDER BY source_seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![(first.id.clone(), payload(&first)), (second.id.clone(), payload(&second))],
        "only the records that verify are written, byte for byte"
    );
    assert_eq!(metrics.rows_refused.load(Ordering::Relaxed), 4);
    assert_eq!(metrics.rows_written.load(Ordering::Relaxed), 2);
    drop(env);
}

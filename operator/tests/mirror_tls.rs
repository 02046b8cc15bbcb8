#![allow(clippy::unwrap_used)]
//! The mirror and a PostgreSQL that offers TLS (its certificate issued by the environment's
//! CA), for real: with `sslmode=require` and the lab's CA, records arrive over TLS (the server
//! says so in `pg_stat_ssl`); without that CA the certificate does not verify and nothing is
//! written; with `sslmode=disable` the mirror speaks plain text.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spore_operator::mirror::MirrorConfig;
use spore_operator::mirror::metrics::MirrorMetrics;
use spore_spec::Identity;
use spore_tests::bins::workspace_bin;
use spore_tests::nodes::{SporeNode, free_port};
use spore_tests::testenv::{TestEnv, TestEnvOptions};
use tokio_util::sync::CancellationToken;

/// Connections of `application` the server sees, and how many of them are encrypted.
async fn connections(url: &str, application: &str) -> (i64, i64) {
    let sql = |filter: &str| {
        format!(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = '{application}'{filter}"
        )
    };
    (
        support::query_i64(url, &sql("")).await.unwrap_or(0),
        support::query_i64(url, &sql(" AND s.ssl")).await.unwrap_or(0),
    )
}

/// How long each step may take.
const STEP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_speaks_tls_as_the_url_asks_and_verifies_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = TestEnvOptions::new(tmp.path().join("env"));
    (options.postgres, options.postgres_tls) = (true, true);
    let env = tokio::task::spawn_blocking(move || TestEnv::up(&options).expect("PostgreSQL")).await.unwrap();
    let url = env.database_url().unwrap().to_string();
    let ca = env.postgres_ca().unwrap().to_path_buf();

    let token = tmp.path().join("token");
    std::fs::write(&token, "mirror-token").unwrap();
    let extra = ["--grpc-token-file".to_string(), token.display().to_string()];
    let agent_dir = tmp.path().join("agent");
    let node = tokio::task::spawn_blocking(move || {
        let node = SporeNode::start_with_args(
            &workspace_bin("spore-agent", "spore"),
            &agent_dir,
            free_port().unwrap(),
            &[],
            &extra,
        );
        node.push_records(&Identity::from_seed([90; 32]), 0..50, 50);
        node
    })
    .await
    .unwrap();
    let mirror = |sslmode: &str, application: &str, ca: Option<std::path::PathBuf>| {
        let metrics = Arc::new(MirrorMetrics::default());
        let config = MirrorConfig {
            agent: format!("http://127.0.0.1:{}", node.grpc_port),
            database_url: format!("{url}?sslmode={sslmode}&application_name={application}"),
            batch: 100,
            max_backoff: Duration::from_millis(500),
            metrics: metrics.clone(),
            agent_token: Some("mirror-token".into()),
            cursor_key: Some(application.to_string()),
            database_ca: ca,
            lean_backfill_min: 0,
        };
        let stop = CancellationToken::new();
        tokio::spawn(spore_operator::mirror::run(config, stop.clone()));
        (metrics, stop)
    };

    // Encrypted, the server's certificate verified against the lab's CA.
    let (metrics, stop) = mirror("require", "mirror-tls", Some(ca));
    support::poll::wait_until("the records to arrive over TLS", STEP, async || {
        support::query_i64(&url, "SELECT count(*) FROM experiments").await == Some(50)
    })
    .await;
    let (seen, encrypted) = connections(&url, "mirror-tls").await;
    assert!(seen >= 1 && encrypted == seen, "{encrypted} of {seen} connections encrypted");
    assert_eq!(metrics.rows_written.load(Ordering::Relaxed), 50);
    stop.cancel();

    // Without the lab's CA the server's certificate does not verify: no session, nothing written.
    let (metrics, stop) = mirror("require", "mirror-unverified", None);
    support::poll::wait_until("the mirror to fail", STEP, async || metrics.errors.load(Ordering::Relaxed) >= 2).await;
    assert_eq!(metrics.rows_written.load(Ordering::Relaxed), 0);
    assert_eq!(connections(&url, "mirror-unverified").await, (0, 0));
    stop.cancel();

    // sslmode=disable: plain text, as asked.
    let (_metrics, stop) = mirror("disable", "mirror-plain", None);
    support::poll::wait_until("the plain connection", STEP, async || connections(&url, "mirror-plain").await.0 >= 1)
        .await;
    assert_eq!(connections(&url, "mirror-plain").await.1, 0, "no TLS when disabled");
    stop.cancel();
    drop(node);
    drop(env);
}

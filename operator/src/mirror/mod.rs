//! The Postgres mirror: streams an agent's `WatchRecords` into Postgres, exactly once.
//!
//! One session = three Postgres connections (one for the schema, applied first by refinery, the
//! cursor and [`lean`] backfills; two that write) and one stream from the agent, started after
//! the cursor stored for that agent (keyed by its SporeNode in the cluster, else by its node
//! id). Every record is verified before it is written ([`check`], on several threads:
//! [`checking`]). Records are written in batches (up to
//! `batch`, or what arrived within 100 ms), two in flight on two connections ([`pipeline`]), each
//! moving the cursor in its own transaction, in the stream's order. Any failure — the
//! database gone, the agent restarted — ends the session; the next one starts after an
//! exponential backoff and resumes from the cursor, so nothing is lost or written twice. The
//! agent never waits for the mirror: its stream only buffers a bounded number of records. A
//! large backlog is written with the secondary indexes deferred ([`lean`]).

pub mod check;
pub mod checking;
pub mod fleet;
pub mod lean;
pub mod metrics;
pub mod pipeline;
pub mod tls;
pub mod writer;

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use spore_spec::grpc::agent_service_client::AgentServiceClient;
use spore_spec::grpc::{StatusRequest, WatchRecordsRequest};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long records may wait to fill a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// First retry delay; doubles up to `max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// A session that lasted this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);
/// How often the agent's newest sequence number is asked for (the lag gauge).
const LAG_POLL: Duration = Duration::from_secs(2);
/// HTTP/2 flow-control window of the agent stream.
const STREAM_WINDOW: u32 = 16 * 1024 * 1024;
/// Connections that write batches ([`pipeline`]).
const WRITERS: usize = 2;
/// Connecting to Postgres or the agent may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to mirror where.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// The agent's gRPC URL, e.g. `http://127.0.0.1:7471`.
    pub agent: String,
    /// A libpq-style connection string or URL.
    pub database_url: String,
    /// Records per transaction.
    pub batch: usize,
    pub max_backoff: Duration,
    /// This mirror's counters for `/metrics`.
    pub metrics: std::sync::Arc<metrics::MirrorMetrics>,
    /// Sent as `authorization: Bearer <token>` when the agent requires one.
    pub agent_token: Option<String>,
    /// What the cursor is stored under (the operator's: its SporeNode's uid); `None`: the node
    /// id the agent reports.
    pub cursor_key: Option<String>,
    /// The lab's CA for the database's certificate (PEM), beside the system's roots ([`tls`]).
    pub database_ca: Option<std::path::PathBuf>,
    /// A backlog of at least this many records (and more than the table holds) is written with
    /// the secondary indexes deferred ([`lean`]); 0: never.
    pub lean_backfill_min: u64,
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Applies the schema migrations.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    embedded::migrations::runner().run_async(client).await.context("schema migration failed")?;
    Ok(())
}

/// Mirrors until `shutdown`, retrying every failure with backoff.
pub async fn run(config: MirrorConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            outcome = session(&config) => outcome,
        };
        let error = match outcome {
            Ok(()) => anyhow::anyhow!("the session ended"),
            Err(e) => e,
        };
        config.metrics.errors.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() >= HEALTHY_SESSION {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!("mirror: {error:#}; retrying in {} ms", backoff.as_millis());
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

async fn session(config: &MirrorConfig) -> anyhow::Result<()> {
    // One connection for the schema, the cursor and lean backfills, and the writers'.
    let mut clients = Vec::with_capacity(1 + WRITERS);
    let mut connections = Vec::with_capacity(1 + WRITERS);
    let outcome = async {
        for _ in 0..1 + WRITERS {
            let connect = tls::connect(&config.database_url, config.database_ca.as_deref());
            let (client, connection) =
                tokio::time::timeout(CONNECT_TIMEOUT, connect).await.context("Postgres: connect timed out")??;
            clients.push(client);
            connections.push(connection);
        }
        let mut control = clients.remove(0);
        migrate(&mut control).await?;
        for writer in &clients {
            writer::prepare_session(writer).await.context("Postgres: staging table")?;
        }
        stream_into(config, &mut control, std::mem::take(&mut clients)).await
    }
    .await;
    drop(clients);
    for connection in connections {
        connection.abort();
    }
    outcome
}

async fn stream_into(
    config: &MirrorConfig,
    client: &mut tokio_postgres::Client,
    writers: Vec<tokio_postgres::Client>,
) -> anyhow::Result<()> {
    let endpoint = tonic::transport::Endpoint::from_shared(config.agent.clone())
        .with_context(|| format!("bad agent URL {:?}", config.agent))?
        .connect_timeout(CONNECT_TIMEOUT)
        // HTTP/2's default 64 KiB windows would hold a backfill to a trickle.
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(STREAM_WINDOW));
    let authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> = match &config.agent_token {
        Some(token) => Some(format!("Bearer {token}").parse().context("the agent token is not valid header text")?),
        None => None,
    };
    let channel = endpoint.connect().await.context("agent")?;
    let mut agent = AgentServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
        if let Some(value) = &authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    });
    let status = agent.status(StatusRequest {}).await.context("agent status")?.into_inner();
    let agent_id = status.node_id;
    let cursor_key = config.cursor_key.clone().unwrap_or_else(|| agent_id.clone());
    let cursor: i64 = client
        .query_opt("SELECT last_seq FROM mirror_cursors WHERE agent = $1", &[&cursor_key])
        .await
        .context("Postgres: read the cursor")?
        .map(|row| row.get(0))
        .unwrap_or(0);
    tracing::info!(agent = %config.agent, node_id = &agent_id[..16.min(agent_id.len())], cursor, "mirroring");
    let metrics = &config.metrics;
    metrics.cursor.store(cursor, Ordering::Relaxed);
    let pending = status.last_seq - cursor;
    let mut lean = lean::Lean::begin(client, pending, status.last_seq, config.lean_backfill_min, metrics.clone())
        .await
        .context("Postgres: lean backfill")?;
    // The agent's newest sequence number, for the lag gauge; ends with the session.
    let poller = tokio::spawn({
        let mut agent = agent.clone();
        let config_metrics = config.metrics.clone();
        async move {
            loop {
                if let Ok(status) = agent.status(StatusRequest {}).await {
                    config_metrics.agent_last_seq.store(status.into_inner().last_seq, Ordering::Relaxed);
                }
                tokio::time::sleep(LAG_POLL).await;
            }
        }
    });
    let _poller = AbortOnDrop(poller);
    let stream =
        agent.watch_records(WatchRecordsRequest { since_seq: cursor }).await.context("agent stream")?.into_inner();
    // Records keep coming, checked on the machine's cores (`checking`), while a batch is being
    // written.
    let (mut rx, checker) = checking::spawn(stream, config.batch * 4);
    let _checker = AbortOnDrop(checker);
    let mut expected = cursor;
    let mut received = Vec::with_capacity(config.batch);
    let mut pipeline = pipeline::Pipeline::new(writers, agent_id.clone(), cursor_key.clone());
    // A refused record since the last landed batch (it ends a lean backfill).
    let mut refused_since = false;
    loop {
        received.clear();
        // A quiet stream still looks now and then for indexes a dead backfill left deferred.
        if tokio::time::timeout(lean::REPAIR_EVERY, rx.recv_many(&mut received, config.batch)).await.is_err() {
            lean.idle(client).await.context("Postgres: deferred indexes")?;
            continue;
        }
        let deadline = Instant::now() + BATCH_WINDOW;
        while received.len() < config.batch && received.last().is_some_and(|r| matches!(r, Ok(Some(_)))) {
            let room = config.batch - received.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut received, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // The records before a stream's end (or error) are written; then the session ends.
        let mut batch = Vec::with_capacity(received.len());
        let mut ended = None;
        for item in received.drain(..) {
            match item {
                Ok(Some(record)) => batch.push(record),
                Ok(None) => ended = Some(anyhow::anyhow!("the agent ended the stream")),
                Err(e) => ended = Some(anyhow::Error::new(e).context("agent stream")),
            }
            if ended.is_some() {
                break;
            }
        }
        if batch.is_empty() {
            return Err(ended.unwrap_or_else(|| anyhow::anyhow!("the agent stream ended")));
        }
        let last_seq = batch.last().map_or(expected, |r| r.seq);
        if batch.iter().any(|r| r.seq <= expected) || batch.windows(2).any(|w| w[0].seq >= w[1].seq) {
            bail!("the agent's stream went backwards (after {expected}); resynchronising");
        }
        let streamed = batch.len() as u64;
        let mut rows: Vec<writer::Row> = Vec::with_capacity(batch.len());
        let mut refused = 0u64;
        for checked in batch {
            match checked.row {
                Ok(row) => rows.push(row),
                Err(refusal) => {
                    refused += 1;
                    tracing::debug!(seq = checked.seq, id = %checked.id, "refused: {refusal}");
                }
            }
        }
        if refused > 0 {
            metrics.rows_refused.fetch_add(refused, Ordering::Relaxed);
            tracing::warn!(refused, last_seq, agent = %config.agent, "records that do not verify were not written");
        }
        metrics.records_streamed.fetch_add(streamed, Ordering::Relaxed);
        expected = last_seq;
        refused_since |= refused > 0;
        let mut landed: Vec<pipeline::Landed> =
            pipeline.submit(rows, last_seq).await.context("Postgres: write")?.into_iter().collect();
        // Nothing more waiting: what is in flight is landed, so the cursor is current while quiet.
        if rx.is_empty() || ended.is_some() {
            landed.extend(pipeline.drain().await.context("Postgres: write")?);
        }
        for batch in landed {
            metrics.rows_written.fetch_add(batch.inserted, Ordering::Relaxed);
            metrics.batches.fetch_add(1, Ordering::Relaxed);
            metrics.cursor.store(batch.last_seq, Ordering::Relaxed);
            tracing::debug!(inserted = batch.inserted, last_seq = batch.last_seq, "batch mirrored");
            lean.after_batch(client, batch.last_seq, std::mem::take(&mut refused_since))
                .await
                .context("Postgres: lean backfill")?;
        }
        if let Some(end) = ended {
            return Err(end);
        }
    }
}

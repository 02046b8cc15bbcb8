//! Writing a batch of records into Postgres: `COPY` (binary) into a per-session staging table,
//! one `INSERT … ON CONFLICT DO NOTHING` into `experiments` ([`stage`]), then the counts per node
//! and the agent's cursor ([`land`]) — all in one transaction, so a crash at any point leaves
//! either the whole batch with its cursor or neither. Rows are inserted in key order, so mirrors of several
//! agents (which hold many of the same records) take row locks in one order (bytewise: `COLLATE
//! "C"`, the order the rows are copied in, so Postgres's sort finds them sorted); a deadlock that
//! still happened would end one session, which resumes from its cursor.

use futures_util::pin_mut;
use spore_spec::ExperimentRecord;
use spore_spec::grpc::StoredRecord;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

/// One row of the staging table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub seq: i64,
    pub id: String,
    pub parent: Option<String>,
    pub node_id: String,
    pub status: String,
    pub val_bpb: f64,
    pub gpu_model: String,
    pub depth: Option<i64>,
    pub timestamp: Option<i64>,
    pub description: String,
    /// Postgres's `jsonb` can hold the payload (no NaN/Infinity, no `\u0000`).
    pub json_ok: bool,
    pub payload: String,
}

/// The row of a streamed record, parsed as `record` (checked by [`super::check`]); both are
/// moved into it, so a backfill copies no payload.
pub fn row_of(stored: StoredRecord, record: ExperimentRecord) -> Row {
    // jsonb refuses NaN/Infinity (which our parser accepts, as Python's does) and `\u0000`.
    let numbers = [
        &record.depth,
        &record.time_budget,
        &record.val_bpb,
        &record.peak_vram_mb,
        &record.num_steps,
        &record.num_params,
        &record.timestamp,
        &record.version,
    ];
    let json_ok = numbers.iter().all(|n| n.is_finite()) && !stored.payload.contains("\\u0000");
    Row {
        seq: stored.seq,
        id: stored.id,
        parent: record.parent.filter(|p| !p.is_empty()),
        node_id: record.node_id,
        status: record.status.as_str().to_string(),
        val_bpb: record.val_bpb.as_f64(),
        gpu_model: record.gpu_model,
        depth: record.depth.as_i64(),
        timestamp: record.timestamp.as_i64(),
        description: record.description,
        json_ok,
        payload: stored.payload,
    }
}

const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS mirror_staging (
    seq bigint, id text, parent text, node_id text, status text, val_bpb double precision, gpu_model text,
    depth bigint, ts bigint, description text, json_ok boolean, payload text) ON COMMIT DELETE ROWS";

const TYPES: [Type; 12] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::BOOL,
    Type::TEXT,
];

const MERGE: &str = "WITH ins AS (
        INSERT INTO experiments (id, parent, node_id, status, val_bpb, gpu_model, gpu_class, depth, \"timestamp\",
                                 description, record, payload, source_agent, source_seq)
        SELECT id, parent, node_id, status, val_bpb, gpu_model, gpu_model, depth, ts, description,
               CASE WHEN json_ok THEN payload::jsonb END, payload, $1, seq
        FROM mirror_staging ORDER BY id COLLATE \"C\"
        ON CONFLICT (id) DO NOTHING
        RETURNING node_id)
    SELECT node_id, count(*) FROM ins GROUP BY node_id ORDER BY node_id";

const COUNT_NODES: &str = "INSERT INTO nodes (node_id, records)
    SELECT * FROM unnest($1::text[], $2::bigint[]) ORDER BY 1
    ON CONFLICT (node_id) DO UPDATE SET records = nodes.records + EXCLUDED.records, last_seen = now()";

const MOVE_CURSOR: &str = "INSERT INTO mirror_cursors (agent, last_seq, updated_at) VALUES ($1, $2, now())
    ON CONFLICT (agent) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()";

/// The rows a batch added, per publishing node (in node order).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Added {
    pub nodes: Vec<String>,
    pub counts: Vec<i64>,
}

impl Added {
    /// Rows added in all.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| c.max(0) as u64).sum()
    }
}

/// The longest a writer waits for one lock before its session ends (see [`prepare_session`]).
pub const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Creates the session's staging table (once per connection). Commits need not wait for the
/// WAL flush: rows and cursor commit together, so a lost commit is re-sent whole on resume.
/// A writer waits at most `lock_timeout` for a row lock: two mirrors whose batches wait on each
/// other through their own commit order (a cycle Postgres cannot see) end one session, which
/// resumes from its cursor.
pub async fn prepare_session(client: &Client) -> Result<(), tokio_postgres::Error> {
    // A default batch (5,000 records of about 2 KiB) stays in memory: past `temp_buffers` (8 MB by
    // default) the staging table is written to a file and read back at every batch.
    let timeout = LOCK_TIMEOUT.as_secs();
    client
        .batch_execute(&format!(
            "SET synchronous_commit = off; SET lock_timeout = '{timeout}s'; SET temp_buffers = '32MB'"
        ))
        .await?;
    client.batch_execute(STAGING).await
}

/// First half of a batch, in a transaction of a session prepared by [`prepare_session`]: copies
/// `rows` into the staging table and inserts the new ones, noting `agent` (its node id) as their
/// source. Holds only the new rows' locks, so it may run while an earlier batch commits.
pub async fn stage(tx: &Transaction<'_>, agent: &str, rows: &[Row]) -> Result<Added, tokio_postgres::Error> {
    let sink = tx.copy_in("COPY mirror_staging FROM STDIN BINARY").await?;
    let writer = BinaryCopyInWriter::new(sink, &TYPES);
    pin_mut!(writer);
    for r in rows {
        let values: [&(dyn ToSql + Sync); 12] = [
            &r.seq,
            &r.id,
            &r.parent,
            &r.node_id,
            &r.status,
            &r.val_bpb,
            &r.gpu_model,
            &r.depth,
            &r.timestamp,
            &r.description,
            &r.json_ok,
            &r.payload,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    let mut added = Added::default();
    for row in tx.query(MERGE, &[&agent]).await? {
        added.nodes.push(row.get(0));
        added.counts.push(row.get(1));
    }
    Ok(added)
}

/// Second half, in stream order: counts the rows per node and moves the cursor `cursor` to
/// `last_seq` in the same transaction (committed by the caller).
pub async fn land(
    tx: &Transaction<'_>,
    added: &Added,
    cursor: &str,
    last_seq: i64,
) -> Result<(), tokio_postgres::Error> {
    if !added.nodes.is_empty() {
        tx.execute(COUNT_NODES, &[&added.nodes, &added.counts]).await?;
    }
    tx.execute(MOVE_CURSOR, &[&cursor, &last_seq]).await?;
    Ok(())
}

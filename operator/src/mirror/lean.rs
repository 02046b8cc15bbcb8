//! Lean backfill: while a mirror writes a backlog larger than the table already holds, the
//! table's secondary indexes are dropped and built once at the end (a sorted build costs less
//! than a million insertions into six B-trees). The primary key stays, so `ON CONFLICT` still
//! makes every row exactly-once, for this mirror and for any other writing beside it; readers
//! see the same rows meanwhile, found more slowly.
//!
//! Each dropped index is first noted in `mirror_deferred_indexes` with its exact definition
//! (`pg_get_indexdef`), in the transaction that drops it, so the finished table has the indexes it
//! had — the migration's and any a lab added. The mirror that deferred them holds a session-level
//! advisory lock until they are built again; if it dies, Postgres releases the lock with its
//! connection, and any mirror that finds deferred indexes and the lock free builds them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, Error};

use super::metrics::MirrorMetrics;

/// The advisory lock of the one lean backfill at a time.
pub const LOCK: i64 = 0x5350_4f52_4544_4958;
/// The longest a lean backfill holds the indexes, whatever backlog the agent announced (the
/// rest of a longer one is written with them).
const LONGEST: Duration = Duration::from_secs(15 * 60);
/// How often a mirror that is not backfilling looks for indexes left deferred by a dead one.
pub const REPAIR_EVERY: Duration = Duration::from_secs(10);
/// Secondary indexes: neither the primary key nor unique, and backing no constraint.
const SECONDARY: &str = "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i
    WHERE i.indrelid = 'experiments'::regclass AND NOT i.indisprimary AND NOT i.indisunique
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    ORDER BY 1";

/// Whether a backlog of `pending` records into a table of about `rows` rows is worth writing
/// leanly: at least `min` records (`min` 0: never) and at least as many as the table holds, so
/// one build over the whole table costs less than the insertions it saves.
pub fn worth_it(pending: i64, rows: i64, min: u64) -> bool {
    min > 0 && pending >= i64::try_from(min).unwrap_or(i64::MAX) && pending >= rows
}

/// A mirror session's part in lean backfills.
#[derive(Debug)]
pub struct Lean {
    /// While this session holds the indexes deferred: the agent sequence number whose batch
    /// ends the backfill, and the latest time it may end.
    until: Option<(i64, Instant)>,
    next_repair: Instant,
    metrics: Arc<MirrorMetrics>,
}

impl Lean {
    /// Starts a session that is `pending` records behind, up to sequence number `target`: defers
    /// the indexes when that is [`worth_it`], this mirror has not had a lean backfill yet (the
    /// agent's word on its backlog is believed once per run) and no other mirror's backfill holds
    /// them; else builds any that a dead backfill left deferred.
    pub async fn begin(
        client: &mut Client,
        pending: i64,
        target: i64,
        min: u64,
        metrics: Arc<MirrorMetrics>,
    ) -> Result<Lean, Error> {
        let mut lean = Lean { until: None, next_repair: Instant::now() + REPAIR_EVERY, metrics };
        let first = lean.metrics.lean_backfills.load(Ordering::Relaxed) == 0;
        if first
            && worth_it(pending, table_rows(client).await?, min)
            && let Some(deferred) = defer(client).await?
        {
            tracing::info!(pending, deferred, "lean backfill: secondary indexes deferred until the backlog is written");
            lean.until = Some((target, Instant::now() + LONGEST));
            lean.metrics.lean_backfills.fetch_add(1, Ordering::Relaxed);
            lean.metrics.indexes_deferred.store(deferred_count(client).await?, Ordering::Relaxed);
            return Ok(lean);
        }
        repair(client).await?;
        Ok(lean)
    }

    /// After a batch up to `last_seq` committed: ends the backfill (the indexes built again, the
    /// lock released) once its backlog is written, when the batch held records that did not
    /// verify (a stream that lies gets no more favours) or when it has lasted [`LONGEST`]; when
    /// not backfilling, now and then builds what a dead backfill left deferred.
    pub async fn after_batch(&mut self, client: &mut Client, last_seq: i64, refused: bool) -> Result<(), Error> {
        match self.until {
            Some((until, deadline)) if last_seq >= until || refused || Instant::now() >= deadline => {
                self.finish(client).await
            }
            Some(_) => Ok(()),
            None => self.idle(client).await,
        }
    }

    /// The stream was quiet for [`REPAIR_EVERY`]: a backfill ends (its backlog is not coming);
    /// otherwise, at most that often, the indexes a dead backfill left deferred are built if no
    /// live one holds them.
    pub async fn idle(&mut self, client: &mut Client) -> Result<(), Error> {
        if self.until.is_some() {
            return self.finish(client).await;
        }
        if Instant::now() >= self.next_repair {
            self.next_repair = Instant::now() + REPAIR_EVERY;
            repair(client).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, client: &mut Client) -> Result<(), Error> {
        let started = Instant::now();
        let built = build_deferred(client).await?;
        unlock(client).await?;
        self.until = None;
        self.metrics.indexes_deferred.store(0, Ordering::Relaxed);
        tracing::info!(built, seconds = started.elapsed().as_secs_f64(), "lean backfill done: indexes built again");
        Ok(())
    }
}

/// The table's size as the planner knows it, or from its size on disk (every row takes more
/// than 2 KiB with its payload and `jsonb`) when it was never analysed.
async fn table_rows(client: &Client) -> Result<i64, Error> {
    let sql = "SELECT GREATEST(reltuples, pg_relation_size(oid) / 2048)::bigint FROM pg_class
               WHERE oid = 'experiments'::regclass";
    Ok(client.query_one(sql, &[]).await?.get(0))
}

async fn deferred_count(client: &Client) -> Result<i64, Error> {
    Ok(client.query_one("SELECT count(*) FROM mirror_deferred_indexes", &[]).await?.get(0))
}

async fn unlock(client: &Client) -> Result<(), Error> {
    client.query_one("SELECT pg_advisory_unlock($1)", &[&LOCK]).await.map(drop)
}

/// Takes the lock and defers every secondary index in one transaction; `None` when another
/// mirror's backfill holds the lock. A table another session keeps locked for 5 s is left as it
/// is (the lock released, `Some(0)` deferred is not claimed: `None`).
async fn defer(client: &mut Client) -> Result<Option<usize>, Error> {
    if !client.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK]).await?.get::<_, bool>(0) {
        return Ok(None);
    }
    match drop_secondary(client).await {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            tracing::warn!("lean backfill: the table stayed locked by another session; writing with its indexes");
            unlock(client).await?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn drop_secondary(client: &mut Client) -> Result<usize, Error> {
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL lock_timeout = '5s'").await?;
    let indexes = tx.query(SECONDARY, &[]).await?;
    for index in &indexes {
        let (name, definition): (String, String) = (index.get(0), index.get(1));
        tx.execute(
            "INSERT INTO mirror_deferred_indexes (name, definition) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &definition],
        )
        .await?;
        // `regclass` prints the name quoted where it must be: it is an identifier as it stands.
        tx.batch_execute(&format!("DROP INDEX {name}")).await?;
    }
    tx.commit().await?;
    Ok(indexes.len())
}

/// Builds the deferred indexes whose lock is free: nothing while another mirror backfills.
async fn repair(client: &mut Client) -> Result<(), Error> {
    if deferred_count(client).await? == 0 {
        return Ok(());
    }
    if !client.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK]).await?.get::<_, bool>(0) {
        return Ok(());
    }
    let outcome = build_deferred(client).await;
    unlock(client).await?;
    let built = outcome?;
    tracing::warn!(built, "indexes a dead mirror's backfill had deferred were built again");
    Ok(())
}

/// Builds every deferred index that does not exist (each in its own transaction, so a crash
/// keeps what was built) and forgets it; returns how many were built.
async fn build_deferred(client: &mut Client) -> Result<usize, Error> {
    let deferred = client.query("SELECT name, definition FROM mirror_deferred_indexes ORDER BY name", &[]).await?;
    let mut built = 0;
    for index in deferred {
        let (name, definition): (String, String) = (index.get(0), index.get(1));
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'").await?;
        if tx.query_one("SELECT to_regclass($1) IS NULL", &[&name]).await?.get::<_, bool>(0) {
            tx.batch_execute(&definition).await?;
            built += 1;
        }
        tx.execute("DELETE FROM mirror_deferred_indexes WHERE name = $1", &[&name]).await?;
        tx.commit().await?;
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::worth_it;

    #[test]
    fn a_backlog_is_lean_only_when_large_and_larger_than_the_table() {
        assert!(worth_it(1_000_000, 0, 100_000));
        assert!(worth_it(100_000, 100_000, 100_000));
        assert!(!worth_it(99_999, 0, 100_000), "too small to pay for the builds");
        assert!(!worth_it(1_000_000, 5_000_000, 100_000), "building over a larger table costs more");
        assert!(!worth_it(i64::MAX, 0, 0), "0 turns it off");
        assert!(!worth_it(10, 0, u64::MAX));
    }
}

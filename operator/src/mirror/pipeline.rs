//! Two batches in flight: while one batch commits, the next is already copied and inserted on a
//! second connection, so Postgres works while the mirror gathers and checks the next records
//! instead of waiting for them.
//!
//! Each batch is one transaction on its own connection: [`writer::stage`] (the `COPY` and the
//! insert) runs as soon as the batch is submitted; [`writer::land`] (the per-node counts and the
//! cursor) and the commit wait for the previous batch's commit, so cursors commit in stream
//! order and a crash leaves a prefix of the stream written. A later batch never holds a lock an
//! earlier one waits for: it takes only its new rows' locks before its turn, and the earlier
//! batch touches none of them (a record is in one batch of a stream). A failed batch fails every
//! batch after it, and the session with them.

use std::collections::VecDeque;

use anyhow::{Context, anyhow};
use tokio::sync::oneshot;
use tokio_postgres::Client;

use super::writer::{self, Row};

/// A batch whose transaction committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landed {
    /// The rows it added (the rest were in Postgres already).
    pub inserted: u64,
    /// The cursor it committed.
    pub last_seq: i64,
}

type Job = tokio::task::JoinHandle<anyhow::Result<(Client, Landed)>>;

/// Batches in flight on a set of writer connections.
pub struct Pipeline {
    idle: Vec<Client>,
    /// Aborted with the pipeline (the session ended).
    in_flight: VecDeque<Job>,
    /// Fires when the latest submitted batch has committed.
    turn: Option<oneshot::Receiver<()>>,
    agent: String,
    cursor: String,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("idle", &self.idle.len()).field("in_flight", &self.in_flight.len()).finish()
    }
}

impl Pipeline {
    /// `writers`: connections prepared by [`writer::prepare_session`]; as many batches as there
    /// are writers may be in flight. `agent`: the source node id noted on rows; `cursor`: the key
    /// the cursor is stored under.
    pub fn new(writers: Vec<Client>, agent: String, cursor: String) -> Pipeline {
        assert!(!writers.is_empty(), "a pipeline needs a writer");
        Pipeline { idle: writers, in_flight: VecDeque::new(), turn: None, agent, cursor }
    }

    /// Starts writing `rows` (the stream up to `last_seq`); when every writer is busy, first waits
    /// for the oldest batch, which is returned.
    pub async fn submit(&mut self, rows: Vec<Row>, last_seq: i64) -> anyhow::Result<Option<Landed>> {
        let landed = match self.idle.is_empty() {
            true => Some(self.land_oldest().await?),
            false => None,
        };
        let client = self.idle.pop().expect("a writer is idle");
        let previous = self.turn.take();
        let (done, turn) = oneshot::channel();
        self.turn = Some(turn);
        let (agent, cursor) = (self.agent.clone(), self.cursor.clone());
        self.in_flight.push_back(tokio::spawn(write(client, agent, cursor, rows, last_seq, previous, done)));
        Ok(landed)
    }

    /// Waits for every batch in flight; returns them in stream order.
    pub async fn drain(&mut self) -> anyhow::Result<Vec<Landed>> {
        let mut landed = Vec::with_capacity(self.in_flight.len());
        while !self.in_flight.is_empty() {
            landed.push(self.land_oldest().await?);
        }
        Ok(landed)
    }

    async fn land_oldest(&mut self) -> anyhow::Result<Landed> {
        // Awaited in place: a session dropped meanwhile still aborts it.
        let job = self.in_flight.front_mut().expect("a batch is in flight");
        let outcome = job.await;
        self.in_flight.pop_front();
        let (client, landed) = outcome.context("a writer task")??;
        self.idle.push(client);
        Ok(landed)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        for job in &self.in_flight {
            job.abort();
        }
    }
}

async fn write(
    mut client: Client,
    agent: String,
    cursor: String,
    mut rows: Vec<Row>,
    last_seq: i64,
    previous: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
) -> anyhow::Result<(Client, Landed)> {
    // In the insert's order, off the stream's task.
    rows.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let tx = client.transaction().await?;
    let added = writer::stage(&tx, &agent, &rows).await?;
    if let Some(previous) = previous {
        previous.await.map_err(|_| anyhow!("an earlier batch was not written"))?;
    }
    writer::land(&tx, &added, &cursor, last_seq).await?;
    tx.commit().await?;
    // The next batch may commit; if it is gone (the session ends), nobody waits.
    let _ = done.send(());
    Ok((client, Landed { inserted: added.total(), last_seq }))
}

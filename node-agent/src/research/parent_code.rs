//! The code of the parents: a peer's record can be a parent only once its `train.py` is here, so
//! the research loop asks peers for the code of the frontier records it lacks (by `code_cid`,
//! checked on arrival), and a node that joins waits a little for it rather than running a
//! baseline of its own.

use std::time::Duration;

use spore_spec::ExperimentRecord;
use tokio_util::sync::CancellationToken;

use super::executor::Executor;
use super::research_loop::Research;
use crate::store::DagStore;

/// How long a joining node waits for the code of the frontier it synced.
const CODE_WAIT: Duration = Duration::from_secs(15);
/// How soon the code of one record is asked for again.
const CODE_ASK_AGAIN: Duration = Duration::from_secs(60);
/// Code fetches asked for at once.
const CODE_ASKS: usize = 8;

/// When the code of each record was last asked for.
pub(super) type Asked = std::collections::HashMap<String, tokio::time::Instant>;

impl<E: Executor> Research<E> {
    /// Waits up to `sync_wait` for peers' records, and when some came, up to [`CODE_WAIT`] more
    /// for the code of one of them: a node that joins builds on the mesh's frontier instead of
    /// running a baseline of its own.
    pub(super) async fn wait_for_sync(
        &self,
        store: &DagStore,
        asked: &mut Asked,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            let frontier = self.frontier(&self.workspace, store)?;
            if frontier.iter().any(|r| self.code_of(r).is_some()) {
                return Ok(());
            }
            let limit = if frontier.is_empty() { self.config.sync_wait } else { self.config.sync_wait + CODE_WAIT };
            if self.config.sync_wait.is_zero() || start.elapsed() >= limit {
                return Ok(());
            }
            self.ask_code(&frontier, asked).await?;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Asks peers for the code of frontier records this node lacks (each again after
    /// [`CODE_ASK_AGAIN`]): a peer's record can be a parent only once its code is here.
    pub(super) async fn ask_code(&self, frontier: &[ExperimentRecord], asked: &mut Asked) -> anyhow::Result<()> {
        let now = tokio::time::Instant::now();
        asked.retain(|_, at| now.duration_since(*at) < CODE_ASK_AGAIN);
        let missing: Vec<&ExperimentRecord> = frontier
            .iter()
            .filter(|r| !asked.contains_key(&r.code_cid) && self.code_of(r).is_none())
            .take(CODE_ASKS)
            .collect();
        for record in missing {
            asked.insert(record.code_cid.clone(), now);
            self.node.fetch_code(record.code_cid.clone()).await?;
        }
        Ok(())
    }
}

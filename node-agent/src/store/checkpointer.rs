//! Background checkpoints for the node's store.
//!
//! In WAL mode SQLite copies the log back into the database file (a checkpoint, with an fsync)
//! on whichever connection's commit crosses the threshold. On the node that is the core, and a
//! checkpoint's disk wait stalls every record behind it. The node's writer turns that off and
//! this thread, with a connection of its own, checkpoints every [`INTERVAL`] instead (passive: it
//! never blocks the writer or readers). Durability is unchanged: committed transactions are in
//! the log either way.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is copied back.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Stops the checkpointer (after one last checkpoint) when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the store file at `path`.
    pub fn start(path: &Path) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let path = path.to_path_buf();
        std::thread::Builder::new().name("spore-checkpoint".into()).spawn(move || {
            let conn = match Connection::open(&path) {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the store for checkpoints");
                    return;
                }
            };
            let _ = conn.busy_timeout(Duration::from_secs(5));
            loop {
                let last = !matches!(stopped.recv_timeout(INTERVAL), Err(mpsc::RecvTimeoutError::Timeout));
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "checkpoint failed");
                }
                if last {
                    return;
                }
            }
        })?;
        Ok(Checkpointer { _stop: stop })
    }
}

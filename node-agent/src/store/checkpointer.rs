//! Background checkpoints for the node's store.
//!
//! In WAL mode SQLite copies the log back into the database file (a checkpoint, with an fsync)
//! on whichever connection's commit crosses the threshold. On the node that is the core, and a
//! checkpoint's disk wait stalls every record behind it. The node's writer turns that off and
//! this thread, with a connection of its own, checkpoints every [`INTERVAL`] instead (passive: it
//! never blocks the writer or readers) and, under a writer that never pauses, now and then holds
//! it briefly to bound the log ([`LOG_LIMIT_FRAMES`]). Durability is unchanged: committed
//! transactions are in the log either way.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is copied back.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Past this many frames (256 MiB of 4 KiB pages) the log is not left to grow: a passive
/// checkpoint never catches up with a writer that never pauses, and the log only starts over
/// once one has. Then a restarting checkpoint holds the writer for the few frames left, and
/// the log starts over from its beginning (and is cut back to this size). Each restart stops
/// the writer for its two fsyncs (tens to hundreds of milliseconds on ext4); at 64 MiB a sync
/// of 100,000 records stood still about a fifth of its time (6.8–7.8 s against 5.7–6.2 s).
pub const LOG_LIMIT_FRAMES: i64 = 65_536;

/// `journal_size_limit` for the node's store, in bytes.
pub const LOG_LIMIT_BYTES: i64 = LOG_LIMIT_FRAMES * 4096;

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
            let _ = wait_briefly_when_busy(&conn);
            let _ = conn.execute_batch(&format!("PRAGMA journal_size_limit = {LOG_LIMIT_BYTES};"));
            // A full disk fails every checkpoint until space returns: said once, not 4 times a second.
            let mut failing = false;
            loop {
                let last = !matches!(stopped.recv_timeout(INTERVAL), Err(mpsc::RecvTimeoutError::Timeout));
                let outcome = match checkpoint(&conn, "PASSIVE") {
                    Ok(frames) if frames > LOG_LIMIT_FRAMES => checkpoint(&conn, "RESTART").map(|_| ()),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("checkpoints work again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "checkpoint failed (said once until one works)");
                    }
                    Err(e) => tracing::debug!(error = %e, "checkpoint failed"),
                }
                if last {
                    return;
                }
            }
        })?;
        Ok(Checkpointer { _stop: stop })
    }
}

/// How long a connection to a store waits for a lock before it reports the store busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Each wait for a lock held by the other connection (the writer, or the checkpointer holding
/// it for a restart) is this short, so the waiter goes on as soon as the lock is free. SQLite's
/// own busy timeout sleeps ever longer, up to 100 ms at a time, and the whole pipeline behind the
/// writer stands still that long after a checkpoint that took a few milliseconds.
const BUSY_STEP: Duration = Duration::from_micros(250);

/// Installs the short waits of [`BUSY_STEP`], up to [`BUSY_TIMEOUT`] in all, on `conn`.
pub fn wait_briefly_when_busy(conn: &Connection) -> rusqlite::Result<()> {
    fn retry(attempt: i32) -> bool {
        if BUSY_STEP.saturating_mul(u32::try_from(attempt).unwrap_or(0)) >= BUSY_TIMEOUT {
            return false;
        }
        std::thread::sleep(BUSY_STEP);
        true
    }
    conn.busy_handler(Some(retry))
}

/// Runs a checkpoint of `mode`; returns how many frames the log held.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| row.get(1))
}

//! A fixed set of threads, one per core, that check signatures for every connection of a node.
//!
//! Jobs wait in a channel; idle threads sleep on it (they never spin, which matters when many
//! nodes share a machine). Memory stays bounded because each connection keeps only a few
//! chunks in flight.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// The node's verification threads.
#[derive(Debug, Clone)]
pub struct VerifyPool {
    /// `None` when no thread could be started: then work runs where it is asked for.
    jobs: Option<mpsc::Sender<Job>>,
}

impl VerifyPool {
    /// Starts one thread per available core. The threads end when the last handle is dropped.
    pub fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut running = 0;
        for i in 0..threads {
            let queue = queue.clone();
            let started = std::thread::Builder::new().name(format!("spore-verify-{i}")).spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job drops its result sender (its caller hears of it);
                        // the thread stays.
                        Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                        Err(_) => return,
                    }
                }
            });
            match started {
                Ok(_) => running += 1,
                Err(e) => tracing::warn!(error = %e, "cannot start a verification thread"),
            }
        }
        VerifyPool { jobs: (running > 0).then_some(jobs) }
    }

    /// Runs `work` on a pool thread and returns its result; `None` if the work panicked.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let Some(jobs) = &self.jobs else { return Some(work()) };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        jobs.send(job).ok()?;
        result.await.ok()
    }
}

//! The agent's stream, checked on several threads: records are read as they come, checked in
//! chunks on blocking threads (each with its own key cache; a signature check is pure CPU, tens
//! of microseconds; [`check_chunk`]) and handed on in the stream's order. On a busy backfill one thread of checks
//! was the mirror's bottleneck; the writer now gets records as fast as the machine's cores
//! verify them.

use std::collections::VecDeque;

use spore_spec::grpc::StoredRecord;
use spore_spec::verify_chunk::PreparedKeyCache;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::AbortOnDrop;
use super::check::{Checked, check_chunk};

/// Records checked by one blocking task.
const CHUNK: usize = 256;

/// What the writer receives: a checked record, or how the stream ended (`Ok(None)`: the agent
/// closed it).
pub type Item = Result<Option<Checked>, tonic::Status>;

/// Threads that check at once: the machine's cores, at most 8.
pub fn checkers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8)
}

/// Reads `stream` and sends every record, checked, into the returned channel (of `capacity`
/// items) in the stream's order, then how the stream ended. The tasks end when the stream does
/// or the receiver is dropped.
pub fn spawn(mut stream: tonic::Streaming<StoredRecord>, capacity: usize) -> (mpsc::Receiver<Item>, JoinHandle<()>) {
    let (raw_tx, mut raw_rx) = mpsc::channel::<Result<Option<StoredRecord>, tonic::Status>>(capacity.max(CHUNK));
    let (tx, rx) = mpsc::channel::<Item>(capacity.max(1));
    let reader = tokio::spawn(async move {
        loop {
            let next = stream.message().await;
            let end = !matches!(next, Ok(Some(_)));
            if raw_tx.send(next).await.is_err() || end {
                return;
            }
        }
    });
    let checker = tokio::spawn(async move {
        let _reader = AbortOnDrop(reader);
        let workers = checkers();
        let mut caches: Vec<PreparedKeyCache> = (0..workers).map(|_| PreparedKeyCache::default()).collect();
        let mut in_flight: VecDeque<JoinHandle<(Vec<Checked>, PreparedKeyCache)>> = VecDeque::new();
        let mut raw = Vec::with_capacity(CHUNK);
        loop {
            raw.clear();
            // Checked chunks go on as soon as they are done, also while the stream is quiet.
            let got = match in_flight.front_mut() {
                None => raw_rx.recv_many(&mut raw, CHUNK).await,
                Some(oldest) => tokio::select! {
                    got = raw_rx.recv_many(&mut raw, CHUNK) => got,
                    done = oldest => {
                        in_flight.pop_front();
                        if !deliver(done, &mut caches, &tx).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            let mut chunk = Vec::with_capacity(raw.len());
            let mut ending = (got == 0).then_some(Ok(None));
            for item in raw.drain(..) {
                match item {
                    Ok(Some(stored)) => chunk.push(stored),
                    other => {
                        ending = Some(other.map(|_| None));
                        break;
                    }
                }
            }
            if !chunk.is_empty() {
                if in_flight.len() >= workers && !forward(&mut in_flight, &mut caches, &tx).await {
                    return;
                }
                let mut keys = caches.pop().unwrap_or_default();
                in_flight.push_back(tokio::task::spawn_blocking(move || {
                    let checked = check_chunk(chunk, &mut keys);
                    (checked, keys)
                }));
            }
            if let Some(end) = ending {
                while !in_flight.is_empty() {
                    if !forward(&mut in_flight, &mut caches, &tx).await {
                        return;
                    }
                }
                let _ = tx.send(end).await;
                return;
            }
        }
    });
    (rx, checker)
}

/// Sends the oldest chunk's records on, once checked; false when the receiver is gone.
async fn forward(
    in_flight: &mut VecDeque<JoinHandle<(Vec<Checked>, PreparedKeyCache)>>,
    caches: &mut Vec<PreparedKeyCache>,
    tx: &mpsc::Sender<Item>,
) -> bool {
    match in_flight.pop_front() {
        Some(oldest) => deliver(oldest.await, caches, tx).await,
        None => true,
    }
}

/// Sends a checked chunk's records on and keeps its key cache; false when the receiver is gone.
async fn deliver(
    done: Result<(Vec<Checked>, PreparedKeyCache), tokio::task::JoinError>,
    caches: &mut Vec<PreparedKeyCache>,
    tx: &mpsc::Sender<Item>,
) -> bool {
    let Ok((checked, keys)) = done else {
        let _ = tx.send(Err(tonic::Status::internal("a record check panicked"))).await;
        return false;
    };
    caches.push(keys);
    for record in checked {
        if tx.send(Ok(Some(record))).await.is_err() {
            return false;
        }
    }
    true
}

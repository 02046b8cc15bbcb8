//! One TCP connection: a reader task that frames bodies into events, and a writer task that
//! drains a bounded queue of bodies onto the socket and reports when the queue is empty.
//! A peer that cannot keep up fills its own queue and is dropped; it never slows the others.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use spore_spec::frame::{FrameCodec, FrameError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::DriverEvent;
use super::precheck::Checker;
use crate::protocol::{Event, PeerId};

/// Bodies queued for one peer before it counts as too slow.
pub const SEND_QUEUE: usize = 8192;

/// At most this many frames that arrived together are checked and handed to the core at once.
const CHUNK_FRAMES: usize = 64;
/// ... and at most about this many bytes of them (also the most one write gathers).
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks of one connection being checked at once: enough to keep every verification thread
/// busy with one fast peer.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The writer reports progress to the core at least this often (in bytes written).
const REPORT_BYTES: u64 = 1024 * 1024;

/// How long one write may take before the peer counts as stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The core's handle on a connection.
#[derive(Debug, Clone)]
pub struct ConnectionHandle {
    pub outgoing: mpsc::Sender<Bytes>,
    pub cancel: CancellationToken,
}

/// Starts the reader and writer of `stream`. The reader first registers the connection with the
/// core (its handle, address and direction), so the core knows the peer before any of its frames.
pub fn spawn(
    peer: PeerId,
    stream: TcpStream,
    remote: std::net::SocketAddr,
    direction: crate::protocol::Direction,
    events: mpsc::Sender<DriverEvent>,
    shutdown: CancellationToken,
    checker: Checker,
) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let (outgoing, mut queue) = mpsc::channel::<Bytes>(SEND_QUEUE);
    let cancel = shutdown.child_token();

    let handle = ConnectionHandle { outgoing, cancel: cancel.clone() };
    let reader_events = events.clone();
    let reader_cancel = cancel.clone();
    tokio::spawn(async move {
        let registered = DriverEvent::Register { peer, handle, remote, direction };
        if reader_events.send(registered).await.is_err() {
            reader_cancel.cancel();
            return;
        }
        let mut frames = FramedRead::new(read, FrameCodec);
        // Chunks being checked, handed to the core in the order they were read.
        let mut checking = FuturesOrdered::new();
        let mut end = None;
        loop {
            if end.is_some() && checking.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                _ = reader_cancel.cancelled() => {
                    end = Some(End::Closed);
                    break;
                }
                Some(checked) = checking.next(), if !checking.is_empty() => {
                    let Some(events) = checked else {
                        tracing::error!(peer, "checking frames failed; closing the connection");
                        end = Some(End::Closed);
                        break;
                    };
                    if reader_events.send(DriverEvent::Chunk(events)).await.is_err() {
                        end = Some(End::Closed);
                        break;
                    }
                }
                first = frames.next(), if end.is_none() && checking.len() < CHUNKS_IN_FLIGHT => {
                    // Take what else has already arrived, so one channel message and one
                    // hand-off to the verification threads serve many frames.
                    let mut chunk = Vec::new();
                    let mut bytes = 0;
                    end = read_end(first, &mut chunk, &mut bytes);
                    while end.is_none() && chunk.len() < CHUNK_FRAMES && bytes < CHUNK_BYTES {
                        match frames.next().now_or_never() {
                            Some(next) => end = read_end(next, &mut chunk, &mut bytes),
                            None => break,
                        }
                    }
                    if !chunk.is_empty() {
                        checking.push_back(checker.check_chunk(peer, chunk));
                    }
                }
            }
        }
        if let Some(End::Violation(reason)) = end {
            let _ = reader_events.send(DriverEvent::Protocol(Event::FramingError { peer, reason })).await;
        }
        reader_cancel.cancel();
        let _ = reader_events.send(DriverEvent::Protocol(Event::Disconnected { peer })).await;
    });

    let writer_cancel = cancel.clone();
    tokio::spawn(async move {
        let mut header_and_body = Vec::new();
        let (mut written, mut written_bytes, mut reported_bytes) = (0u64, 0u64, 0u64);
        loop {
            let body = tokio::select! {
                biased;
                _ = writer_cancel.cancelled() => break,
                body = queue.recv() => match body { Some(body) => body, None => break },
            };
            // Everything already queued goes out in one write.
            header_and_body.clear();
            let mut next = Some(body);
            while let Some(body) = next.take() {
                header_and_body.extend_from_slice(&(body.len() as u32).to_be_bytes());
                header_and_body.extend_from_slice(&body);
                written += 1;
                written_bytes += body.len() as u64;
                if header_and_body.len() < CHUNK_BYTES {
                    next = queue.try_recv().ok();
                }
            }
            let result = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&header_and_body)).await;
            if !matches!(result, Ok(Ok(()))) {
                writer_cancel.cancel();
                break;
            }
            // The core learns what went out when the queue is empty, and after every
            // megabyte while it is not (what it may still queue for the peer depends on it).
            if queue.is_empty() || written_bytes - reported_bytes >= REPORT_BYTES {
                reported_bytes = written_bytes;
                let drained = Event::Drained { peer, written, bytes: written_bytes };
                if events.send(DriverEvent::Protocol(drained)).await.is_err() {
                    break;
                }
            }
        }
        let _ = write.shutdown().await;
    });
}

/// How a connection's stream ended.
enum End {
    Closed,
    /// A framing violation (oversize length): reported to the core, which discourages the peer.
    Violation(String),
}

/// Adds a framed body to `chunk`, or says how the stream ended.
fn read_end(next: Option<Result<Bytes, FrameError>>, chunk: &mut Vec<Bytes>, bytes: &mut usize) -> Option<End> {
    match next {
        Some(Ok(body)) => {
            *bytes += body.len();
            chunk.push(body);
            None
        }
        Some(Err(FrameError::TooLarge { declared })) => {
            Some(End::Violation(format!("frame of {declared} bytes exceeds the limit")))
        }
        Some(Err(FrameError::Io(_))) | None => Some(End::Closed),
    }
}

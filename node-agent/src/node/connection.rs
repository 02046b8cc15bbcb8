//! One TCP connection: a reader task that frames bodies into events, and a writer task that
//! drains a bounded queue of bodies onto the socket and reports when the queue is empty.
//! A peer that cannot keep up fills its own queue and is dropped; it never slows the others.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use spore_spec::frame::{FrameCodec, FrameError};
use spore_spec::{KeyCache, Message};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::{DriverEvent, KnownIds};
use crate::protocol::{Event, PeerId};

/// Bodies queued for one peer before it counts as too slow.
pub const SEND_QUEUE: usize = 8192;

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
    known: KnownIds,
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
        let mut keys = KeyCache::new(1024);
        loop {
            let next = tokio::select! {
                _ = reader_cancel.cancelled() => break,
                next = frames.next() => next,
            };
            let event = match next {
                Some(Ok(body)) => pre_check(peer, body, &mut keys, &known),
                Some(Err(FrameError::TooLarge { declared })) => {
                    Event::FramingError { peer, reason: format!("frame of {declared} bytes exceeds the limit") }
                }
                Some(Err(FrameError::Io(_))) | None => break,
            };
            let fatal = matches!(event, Event::FramingError { .. });
            if reader_events.send(DriverEvent::Protocol(event)).await.is_err() || fatal {
                break;
            }
        }
        reader_cancel.cancel();
        let _ = reader_events.send(DriverEvent::Protocol(Event::Disconnected { peer })).await;
    });

    let writer_cancel = cancel.clone();
    tokio::spawn(async move {
        let mut header_and_body = Vec::new();
        let mut written = 0u64;
        loop {
            let body = tokio::select! {
                biased;
                _ = writer_cancel.cancelled() => break,
                body = queue.recv() => match body { Some(body) => body, None => break },
            };
            header_and_body.clear();
            header_and_body.extend_from_slice(&(body.len() as u32).to_be_bytes());
            header_and_body.extend_from_slice(&body);
            let result = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&header_and_body)).await;
            if !matches!(result, Ok(Ok(()))) {
                writer_cancel.cancel();
                break;
            }
            written += 1;
            if queue.is_empty() && events.send(DriverEvent::Protocol(Event::Drained { peer, written })).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
}

/// Parses an `experiment` frame and checks its CID and signature here, on the connection's
/// task, so the work runs beside the core instead of in it, unless its id is among those the
/// node stored recently (then the core drops it as a duplicate; a lying id gains nothing, as
/// the core stores nothing unchecked). Anything else, or anything that does not parse, goes to
/// the core as a plain frame (which judges it).
fn pre_check(peer: PeerId, body: Bytes, keys: &mut KeyCache, known: &KnownIds) -> Event {
    if !body.starts_with(b"{\"type\":\"experiment\"") {
        return Event::Frame { peer, body };
    }
    match Message::decode_with_payload_span(&body) {
        Ok((Message::Experiment(record), Some(span))) => match std::str::from_utf8(&body[span]) {
            Ok(payload) => {
                let verdict = (!known.contains(&record.id)).then(|| keys.verify_record(&record));
                Event::Record { peer, record, payload: payload.to_owned(), verdict, size: body.len() }
            }
            Err(_) => Event::Frame { peer, body },
        },
        _ => Event::Frame { peer, body },
    }
}

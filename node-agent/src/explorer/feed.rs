//! The live feed: a thread follows the store (records stored after its cursor, every
//! [`POLL`]) and broadcasts each as Python's message, `{"event":"experiment","data":<record>}`,
//! to every `WS /ws` client. A client that falls [`super::Limits::feed_buffer`] events behind
//! gets `{"event":"lagged","skipped":n}` and carries on (the page then reloads its view); one
//! slow client never slows the others or the node. Client messages are read and ignored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Explorer, view};
use crate::store::DagStore;

/// How often the feed looks for new records.
const POLL: Duration = Duration::from_millis(100);
/// Records read per look.
const PAGE: usize = 512;
/// Largest message a client may send (they are ignored anyway).
const CLIENT_MESSAGE_BYTES: usize = 4096;

/// Starts the thread that follows the store from its current end.
pub fn start(store: DagStore, feed: broadcast::Sender<Arc<str>>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut cursor = store.last_seq()?;
    std::thread::Builder::new().name("explorer-feed".into()).spawn(move || {
        while !shutdown.is_cancelled() {
            match store.records_after_seq(cursor, PAGE) {
                Ok(page) => {
                    let full = page.len() == PAGE;
                    for (seq, id, _) in page {
                        cursor = seq;
                        // Read with the store's facts (frontier, children, orphan) as the API shows them.
                        if let Ok(Some(row)) = store.browse_one(&id) {
                            let message = json!({"event": "experiment", "data": view::full(&row)}).to_string();
                            // No subscriber is not an error: the cursor moves on either way.
                            let _ = feed.send(Arc::from(message));
                        }
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "explorer feed: store read failed; retrying"),
            }
            std::thread::sleep(POLL);
        }
    })?;
    Ok(())
}

pub async fn websocket(State(explorer): State<Explorer>, upgrade: WebSocketUpgrade) -> Response {
    let clients = explorer.ws_clients.clone();
    if clients.fetch_add(1, Ordering::SeqCst) >= explorer.limits.ws_clients {
        clients.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live feeds open\n").into_response();
    }
    let events = explorer.feed.subscribe();
    let shutdown = explorer.shutdown.clone();
    upgrade.max_message_size(CLIENT_MESSAGE_BYTES).on_upgrade(move |socket| async move {
        follow(socket, events, shutdown).await;
        clients.fetch_sub(1, Ordering::SeqCst);
    })
}

async fn follow(mut socket: WebSocket, mut events: broadcast::Receiver<Arc<str>>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            event = events.recv() => {
                let text = match event {
                    Ok(text) => text.to_string(),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        json!({"event": "lagged", "skipped": skipped}).to_string()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

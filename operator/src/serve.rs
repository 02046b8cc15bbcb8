//! The operator's HTTP endpoints: `/healthz`, `/readyz` and Prometheus `/metrics`. A handful of
//! fixed GET routes, so a small HTTP/1.1 responder on tokio is enough.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters and gauges the endpoints report.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reconciles by controller and result: [experiment ok, experiment error, sporenode ok,
    /// sporenode error].
    reconciles: [AtomicU64; 4],
    pub pods_created: AtomicU64,
    /// How long reconciles take: [experiment, sporenode].
    reconcile_seconds: [crate::histogram::Histogram; 2],
    /// This replica holds the lease (or runs without leader election).
    pub leader: Arc<AtomicBool>,
    /// The controllers are running (or waiting for the lease): ready to serve.
    pub ready: AtomicBool,
    /// The Postgres mirrors' counters, by agent (none when no mirror runs).
    pub mirrors: crate::mirror::metrics::MirrorRegistry,
}

impl Metrics {
    /// Counts one reconcile of `controller` (`experiment` or `sporenode`).
    pub fn record_reconcile(&self, controller: &str, ok: bool) {
        let slot = usize::from(controller == "sporenode") * 2 + usize::from(!ok);
        self.reconciles[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Times one reconcile of `controller` (`experiment` or `sporenode`).
    pub fn observe_reconcile(&self, controller: &str, took: Duration) {
        self.reconcile_seconds[usize::from(controller == "sporenode")].observe(took);
    }

    fn render(&self) -> String {
        let mut text = self.render_counters();
        text.push_str(
            "# HELP spore_operator_reconcile_duration_seconds How long reconciles take, by controller.\n\
             # TYPE spore_operator_reconcile_duration_seconds histogram\n",
        );
        for (i, controller) in ["experiment", "sporenode"].iter().enumerate() {
            let labels = format!("controller=\"{controller}\"");
            self.reconcile_seconds[i].render(&mut text, "spore_operator_reconcile_duration_seconds", &labels);
        }
        text
    }

    fn render_counters(&self) -> String {
        let reconciles = |slot: usize| self.reconciles[slot].load(Ordering::Relaxed);
        format!(
            "# HELP spore_operator_leader Whether this replica is the active one.\n\
             # TYPE spore_operator_leader gauge\nspore_operator_leader {}\n\
             # HELP spore_operator_reconciles_total Reconciles by controller and result.\n\
             # TYPE spore_operator_reconciles_total counter\n\
             spore_operator_reconciles_total{{controller=\"experiment\",result=\"ok\"}} {}\n\
             spore_operator_reconciles_total{{controller=\"experiment\",result=\"error\"}} {}\n\
             spore_operator_reconciles_total{{controller=\"sporenode\",result=\"ok\"}} {}\n\
             spore_operator_reconciles_total{{controller=\"sporenode\",result=\"error\"}} {}\n\
             # HELP spore_operator_pods_created_total Training pods created.\n\
             # TYPE spore_operator_pods_created_total counter\nspore_operator_pods_created_total {}\n",
            u8::from(self.leader.load(Ordering::Relaxed)),
            reconciles(0),
            reconciles(1),
            reconciles(2),
            reconciles(3),
            self.pods_created.load(Ordering::Relaxed),
        )
    }
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await;
            let Ok(Ok(n)) = read else { return };
            let line = String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or_default().to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/healthz" | "/livez" => ("200 OK", "ok\n".to_string()),
                "/readyz" if metrics.ready.load(Ordering::Relaxed) => ("200 OK", "ok\n".to_string()),
                "/readyz" => ("503 Service Unavailable", "starting\n".to_string()),
                "/metrics" => ("200 OK", metrics.render() + &metrics.mirrors.render()),
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

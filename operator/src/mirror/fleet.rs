//! The in-cluster mirror: the operator streams the agent of every SporeNode into one Postgres.
//!
//! Every `resync` the SporeNodes are listed; each one that is not being deleted and whose
//! gRPC token Secret (made by the SporeNode controller) exists gets a mirror ([`super::run`])
//! to `agent_url_template` with `{name}` and `{namespace}` filled in (or to the URL in its
//! [`AGENT_URL_ANNOTATION`]), presenting the token. A
//! SporeNode that goes away, or whose URL or token changes, has its mirror stopped (and
//! restarted with the new settings). Mirrors of different agents share the `experiments`
//! table: the records they hold in common are written once (`ON CONFLICT DO NOTHING`), and each
//! agent has its own cursor. A failing list keeps the running mirrors as they are.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use spore_crds::SporeNode;
use tokio_util::sync::CancellationToken;

use super::MirrorConfig;
use crate::serve::Metrics;
use crate::sporenode::children::{GRPC_PORT, GRPC_TOKEN_KEY, grpc_token_secret_name};

/// On a SporeNode: its agent's gRPC URL when it is not reached through the SporeNode's Service
/// (an agent outside the cluster, a port-forward).
pub const AGENT_URL_ANNOTATION: &str = "sporemesh.io/mirror-agent-url";

/// How the operator mirrors the SporeNodes' agents.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// A libpq-style connection string or URL.
    pub database_url: String,
    /// The agent's gRPC URL; `{name}` and `{namespace}` are the SporeNode's.
    pub agent_url_template: String,
    /// Records per transaction.
    pub batch: usize,
    pub max_backoff: Duration,
    /// How often the SporeNodes are listed.
    pub resync: Duration,
}

/// The default agent URL: the gRPC port of the SporeNode's headless Service.
pub fn default_agent_url_template() -> String {
    format!("http://{{name}}.{{namespace}}.svc:{GRPC_PORT}")
}

/// `template` with the SporeNode's name and namespace filled in.
pub fn agent_url(template: &str, namespace: &str, name: &str) -> String {
    template.replace("{name}", name).replace("{namespace}", namespace)
}

/// What one mirror is started with; a change restarts it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    url: String,
    token: String,
}

/// A running mirror; dropping it stops the mirror.
struct Running {
    target: Target,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Mirrors every SporeNode's agent until the future is dropped (which stops them all).
pub async fn run(client: Client, config: FleetConfig, metrics: Arc<Metrics>) {
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    loop {
        match targets(&client, &config).await {
            Ok(wanted) => {
                running.retain(|key, mirror| {
                    let keep = wanted.get(key) == Some(&mirror.target);
                    if !keep {
                        tracing::info!(sporenode = %key, "mirror stopped");
                        metrics.mirrors.remove(key);
                    }
                    keep
                });
                for (key, target) in wanted {
                    if running.contains_key(&key) {
                        continue;
                    }
                    tracing::info!(sporenode = %key, agent = %target.url, "mirror started");
                    let stop = CancellationToken::new();
                    let mirror = MirrorConfig {
                        agent: target.url.clone(),
                        database_url: config.database_url.clone(),
                        batch: config.batch,
                        max_backoff: config.max_backoff,
                        metrics: metrics.mirrors.get(&key),
                        agent_token: Some(target.token.clone()),
                    };
                    let until = stop.clone();
                    tokio::spawn(async move {
                        if let Err(e) = super::run(mirror, until).await {
                            tracing::error!("mirror ended: {e:#}");
                        }
                    });
                    running.insert(key, Running { target, stop });
                }
            }
            Err(e) => tracing::warn!("mirror: cannot list SporeNodes or their tokens: {e}; mirrors keep running"),
        }
        tokio::time::sleep(config.resync).await;
    }
}

/// The mirrors that should run, by `namespace/name`.
async fn targets(client: &Client, config: &FleetConfig) -> Result<BTreeMap<String, Target>, kube::Error> {
    let nodes = Api::<SporeNode>::all(client.clone()).list(&ListParams::default()).await?;
    let mut wanted = BTreeMap::new();
    for node in nodes {
        let (Some(namespace), name) = (node.namespace(), node.name_any()) else { continue };
        if node.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
        let token = secrets
            .get_opt(&grpc_token_secret_name(&node))
            .await?
            .and_then(|secret| secret.data?.remove(GRPC_TOKEN_KEY))
            .and_then(|bytes| String::from_utf8(bytes.0).ok())
            .map(|token| token.trim().to_string())
            .filter(|token| !token.is_empty());
        let Some(token) = token else {
            tracing::debug!(sporenode = %name, "no gRPC token yet; not mirrored");
            continue;
        };
        let url = match node.annotations().get(AGENT_URL_ANNOTATION) {
            Some(url) => url.clone(),
            None => agent_url(&config.agent_url_template, &namespace, &name),
        };
        wanted.insert(format!("{namespace}/{name}"), Target { url, token });
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_url_is_the_template_filled_in() {
        assert_eq!(agent_url(&default_agent_url_template(), "lab", "gpu-box"), "http://gpu-box.lab.svc:7471");
        assert_eq!(agent_url("http://127.0.0.1:9000", "lab", "x"), "http://127.0.0.1:9000");
    }
}

//! The in-cluster mirror: the operator streams the agent of every SporeNode into one Postgres.
//!
//! Every `resync` the SporeNodes are listed; each one that the operator's policy admits (its
//! namespace among `namespaces`, when that list is given), that is not being deleted and whose
//! gRPC token Secret (made by the SporeNode controller) exists gets a mirror ([`super::run`])
//! to `agent_url_template` with `{name}` and `{namespace}` filled in, presenting the token. The
//! URL in a SporeNode's [`AGENT_URL_ANNOTATION`] is followed only when the operator allows it
//! (`url_annotation`): otherwise anyone who may edit a SporeNode could point the shared
//! database at an agent of their choosing. Each mirror's cursor is its SporeNode's (by uid),
//! not the node id an agent reports. A
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
    /// Only SporeNodes of these namespaces are mirrored; empty: every namespace.
    pub namespaces: Vec<String>,
    /// The lab's CA for the database's certificate (PEM).
    pub database_ca: Option<std::path::PathBuf>,
    /// Follow [`AGENT_URL_ANNOTATION`] (an agent outside the cluster); off: the template only.
    pub url_annotation: bool,
    /// [`MirrorConfig::lean_backfill_min`].
    pub lean_backfill_min: u64,
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
    /// The mirror's cursor key: the SporeNode's uid.
    cursor: String,
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
                        cursor_key: Some(target.cursor.clone()),
                        database_ca: config.database_ca.clone(),
                        lean_backfill_min: config.lean_backfill_min,
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
    // Listed where the operator may list them: each namespace of the policy, else all.
    let mut nodes = Vec::new();
    if config.namespaces.is_empty() {
        nodes = Api::<SporeNode>::all(client.clone()).list(&ListParams::default()).await?.items;
    }
    for namespace in &config.namespaces {
        nodes.extend(Api::<SporeNode>::namespaced(client.clone(), namespace).list(&ListParams::default()).await?.items);
    }
    let mut wanted = BTreeMap::new();
    for node in nodes {
        let (Some(namespace), name) = (node.namespace(), node.name_any()) else { continue };
        let Some(url) = admitted(&node, &namespace, config) else { continue };
        let Some(uid) = node.uid() else { continue };
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
        wanted.insert(format!("{namespace}/{name}"), Target { url, token, cursor: format!("sporenode/{uid}") });
    }
    Ok(wanted)
}

/// The agent URL of `node` when the operator's policy admits it to the database.
fn admitted(node: &SporeNode, namespace: &str, config: &FleetConfig) -> Option<String> {
    if node.metadata.deletion_timestamp.is_some()
        || (!config.namespaces.is_empty() && !config.namespaces.iter().any(|n| n == namespace))
    {
        return None;
    }
    let annotated = node.annotations().get(AGENT_URL_ANNOTATION).filter(|_| config.url_annotation);
    Some(match annotated {
        Some(url) => url.clone(),
        None => agent_url(&config.agent_url_template, namespace, &node.name_any()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(namespaces: &[&str], url_annotation: bool) -> FleetConfig {
        FleetConfig {
            database_url: String::new(),
            agent_url_template: default_agent_url_template(),
            batch: 1,
            max_backoff: Duration::from_secs(1),
            resync: Duration::from_secs(1),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            url_annotation,
            database_ca: None,
            lean_backfill_min: 0,
        }
    }

    #[test]
    fn only_what_the_operator_admits_is_mirrored_and_annotations_need_its_leave() {
        let mut node = SporeNode::new("gpu-box", serde_json::from_value(serde_json::json!({})).unwrap());
        node.metadata.annotations =
            Some([(AGENT_URL_ANNOTATION.to_string(), "http://attacker.example:7471".to_string())].into());
        let template = "http://gpu-box.lab.svc:7471".to_string();
        assert_eq!(admitted(&node, "lab", &config(&[], false)), Some(template.clone()), "the annotation is ignored");
        assert_eq!(admitted(&node, "lab", &config(&["lab"], true)).as_deref(), Some("http://attacker.example:7471"));
        assert_eq!(admitted(&node, "lab", &config(&["other"], false)), None, "another namespace's node");
        node.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(admitted(&node, "lab", &config(&[], false)), None, "a node being deleted");
    }

    #[test]
    fn the_agent_url_is_the_template_filled_in() {
        assert_eq!(agent_url(&default_agent_url_template(), "lab", "gpu-box"), "http://gpu-box.lab.svc:7471");
        assert_eq!(agent_url("http://127.0.0.1:9000", "lab", "x"), "http://127.0.0.1:9000");
    }
}

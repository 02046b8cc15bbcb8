//! The SporeNode controller: an identity Secret (generated once when none is named; the key is
//! never logged; it outlives the SporeNode, so a node deleted and applied again is the same
//! node) and the gRPC token Secret, then the config, Services, node-agent StatefulSet and training egress policy
//! applied server-side under one field manager, and the status: node id, readiness,
//! observed generation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use spore_crds::trust::trusted_verifiers;
use spore_crds::{SporeNode, SporeNodeStatus, SporeTrustPolicy};
use spore_spec::Identity;

use super::access;
use super::children::{
    AGENT_LABEL, GRPC_TOKEN_KEY, config_map, grpc_token_secret_name, identity_secret_name, services, stateful_set,
    training_egress_policy,
};
use super::health::{Observed, node_conditions};
use crate::experiment::controller::Context;
use crate::{Error, FIELD_MANAGER};

async fn apply<K>(api: &Api<K>, object: &K) -> Result<(), Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().ok_or(Error::MissingName)?;
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object)).await?;
    Ok(())
}

/// The node id held by an identity Secret (`node_id`, else derived from `private_key`).
fn node_id_of(secret: &Secret) -> Option<String> {
    let data = secret.data.as_ref()?;
    if let Some(id) = data.get("node_id") {
        return String::from_utf8(id.0.clone()).ok().map(|s| s.trim().to_string());
    }
    let key = String::from_utf8(data.get("private_key")?.0.clone()).ok()?;
    Identity::from_seed_hex(&key).ok().map(|identity| identity.node_id())
}

/// Finds the identity Secret, creating `<name>-identity` with a fresh key if the spec names none.
async fn ensure_identity(node: &SporeNode, secrets: &Api<Secret>) -> Result<Option<String>, Error> {
    let name = identity_secret_name(node);
    if let Some(secret) = secrets.get_opt(&name).await? {
        return Ok(node_id_of(&secret));
    }
    if node.spec.identity_secret_name.is_some() {
        return Ok(None); // named but missing: reported in the status, never invented
    }
    let identity = Identity::generate();
    let data = [("private_key", identity.seed_hex()), ("node_id", identity.node_id())];
    // Not owned by the SporeNode: deleting or re-applying the SporeNode (a GitOps sync, a rename
    // undone) must not destroy the node's key and with it its identity and reputation.
    if create_secret(node, secrets, name, &data, false).await? {
        return Ok(Some(identity.node_id()));
    }
    // Made by a racing reconcile: its key is the one.
    Ok(secrets.get_opt(&identity_secret_name(node)).await?.as_ref().and_then(node_id_of))
}

/// Creates a Secret holding `data` (owned by `node` if `owned`, so it goes with it); false when
/// it exists already.
async fn create_secret(
    node: &SporeNode,
    secrets: &Api<Secret>,
    name: String,
    data: &[(&str, String)],
    owned: bool,
) -> Result<bool, Error> {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: node.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(AGENT_LABEL.to_string(), node.name_any())])),
            owner_references: node.controller_owner_ref(&()).map(|r| vec![r]).filter(|_| owned),
            annotations: (!owned).then(|| {
                BTreeMap::from([(
                    "sporemesh.io/kept".to_string(),
                    "the node's signing key outlives its SporeNode; delete this Secret to discard the identity"
                        .to_string(),
                )])
            }),
            ..Default::default()
        },
        string_data: Some(data.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Creates `<name>-grpc-token` (32 random bytes, hex) unless it exists: the bearer token the
/// agent's gRPC API requires and the mirror presents. Never logged; deleting the Secret rotates
/// it (the next reconcile makes a new one).
async fn ensure_grpc_token(node: &SporeNode, secrets: &Api<Secret>) -> Result<(), Error> {
    let name = grpc_token_secret_name(node);
    if secrets.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    let token: [u8; 32] = rand::random();
    create_secret(node, secrets, name, &[(GRPC_TOKEN_KEY, hex::encode(token))], true).await?;
    Ok(())
}

/// The lab's trust policies. An install that may not read them (a namespaced install whose
/// ClusterRole was trimmed) or a cluster without the CRD has none; any other failure is an error
/// (the reconcile is retried), never a silently shorter list.
async fn policies(ctx: &Context) -> Result<Vec<SporeTrustPolicy>, Error> {
    match Api::<SporeTrustPolicy>::all(ctx.client.clone()).list(&Default::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(e)) if e.code == 403 || e.code == 404 => {
            tracing::debug!(code = e.code, "no SporeTrustPolicy readable: {}", e.message);
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// [`reconcile`], timed for `spore_operator_reconcile_duration_seconds`.
async fn timed_reconcile(node: Arc<SporeNode>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile(node, ctx.clone()).await;
    ctx.metrics.observe_reconcile("sporenode", started.elapsed());
    result
}

async fn reconcile(node: Arc<SporeNode>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = node.namespace().ok_or(Error::MissingName)?;
    let client = ctx.client.clone();
    let secrets = Api::namespaced(client.clone(), &namespace);
    let node_id = ensure_identity(&node, &secrets).await?;
    ensure_grpc_token(&node, &secrets).await?;
    apply(&Api::<ConfigMap>::namespaced(client.clone(), &namespace), &config_map(&node)).await?;
    apply(&Api::<ServiceAccount>::namespaced(client.clone(), &namespace), &access::service_account(&node)).await?;
    apply(&Api::<Role>::namespaced(client.clone(), &namespace), &access::role(&node)).await?;
    apply(&Api::<RoleBinding>::namespaced(client.clone(), &namespace), &access::role_binding(&node)).await?;
    for service in services(&node) {
        apply(&Api::<Service>::namespaced(client.clone(), &namespace), &service).await?;
    }
    let stateful_sets = Api::<StatefulSet>::namespaced(client.clone(), &namespace);
    let refused = super::consent::refusal(&node, &secrets, &ctx.allowed_image_prefixes).await?;
    if let Some(why) = &refused {
        tracing::warn!(sporenode = %node.name_any(), namespace = %namespace, "not started: {why}");
    }
    // Without a key the agent could not start: wait for the Secret instead of crash-looping.
    if node_id.is_some() && refused.is_none() {
        let trusted = trusted_verifiers(&node.spec.verification.trusted_verifiers, &policies(&ctx).await?, &namespace);
        apply(&stateful_sets, &stateful_set(&node, &ctx.settings, &trusted)).await?;
    }
    apply(&Api::<NetworkPolicy>::namespaced(client.clone(), &namespace), &training_egress_policy(&node)).await?;

    let stateful_set = stateful_sets.get_opt(&node.name_any()).await?;
    let previous = node.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let generation = node.metadata.generation;
    let identity_secret = identity_secret_name(&node);
    let seen = Observed {
        has_identity: node_id.is_some(),
        identity_secret: &identity_secret,
        stateful_set: stateful_set.as_ref(),
        generation,
        refused: refused.as_deref(),
    };
    let conditions = node_conditions(&previous, seen);
    let ready = conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let status = SporeNodeStatus {
        node_id_short: node_id.as_ref().map(|id| id.chars().take(12).collect()),
        node_id,
        conditions,
        observed_generation: generation,
        ..SporeNodeStatus::default()
    };
    let current = node.status.as_ref();
    let changed = current.is_none_or(|c| {
        (&c.node_id, &c.observed_generation, &c.conditions)
            != (&status.node_id, &status.observed_generation, &status.conditions)
    });
    if changed {
        let patch = serde_json::json!({"apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "status": status});
        Api::<SporeNode>::namespaced(client, &namespace)
            .patch_status(&node.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await?;
    }
    Ok(Action::requeue(Duration::from_secs(if ready { 300 } else { 10 })))
}

fn error_policy(node: Arc<SporeNode>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(sporenode = %node.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the SporeNode controller until its watches end (or the task is dropped).
pub async fn run(ctx: Arc<Context>) {
    let nodes: Api<SporeNode> = crate::scoped(ctx.client.clone(), ctx.watch_namespace.as_deref());
    let stateful_sets: Api<StatefulSet> = crate::scoped(ctx.client.clone(), ctx.watch_namespace.as_deref());
    let metrics = ctx.metrics.clone();
    // A change to a trust policy may change every agent's flags.
    // (Backed off: without the CRD or the right to read it the watch fails on every try.)
    let policies = watcher::watcher(Api::<SporeTrustPolicy>::all(ctx.client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(|event| async move {
            match event {
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => Some(()),
                _ => None,
            }
        });
    let results = Controller::new(nodes, watcher::Config::default())
        .owns(stateful_sets, watcher::Config::default().labels(AGENT_LABEL))
        .reconcile_all_on(policies)
        .run(timed_reconcile, error_policy, ctx);
    crate::report(results, "sporenode", metrics).await;
}

//! The Experiment controller: one pod per Experiment (created once, found by its deterministic
//! name after any restart), and the status written back with server-side apply under one field
//! manager, only when it changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use spore_crds::{Experiment, ExperimentPhase, ExperimentStatus, SporeNode};

use super::cache::Cache;
use super::ownership::{blocked, owned_by};
use super::pod::{PodSettings, inline_code, inline_code_name, is_diff, isolation_policy, pod_name, training_pod_on};
use super::retention;
use super::status::{
    awaiting_candidate, desired_status, differs, is_terminal, overdue_at, overdue_status, published_condition,
    with_conditions,
};
use crate::{Error, FIELD_MANAGER};

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub settings: PodSettings,
    pub metrics: Arc<crate::serve::Metrics>,
    /// One lock per SporeNode: counting its live pods and creating one is a single step.
    pub node_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Kubernetes Events on phase changes (what `kubectl describe experiment` shows).
    pub recorder: Recorder,
    /// Training pods, SporeNodes and nodes as the watches see them.
    pub cache: Cache,
    /// Keep an Experiment `Queued` without a pod while its GPUs are taken ([`super::capacity`]).
    pub gpu_admission: bool,
    /// Watch and act in this namespace only (a namespaced install); `None`: every namespace.
    pub watch_namespace: Option<String>,
    /// A SporeNode's `spec.image` must start with one of these (empty: any image).
    pub allowed_image_prefixes: Vec<String>,
}

impl Context {
    pub fn new(client: Client, settings: PodSettings, metrics: Arc<crate::serve::Metrics>) -> Self {
        let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        let recorder = Recorder::new(client.clone(), reporter);
        Context {
            client,
            settings,
            metrics,
            node_locks: Default::default(),
            recorder,
            cache: Cache::default(),
            gpu_admission: true,
            watch_namespace: None,
            allowed_image_prefixes: Vec::new(),
        }
    }

    fn node_lock(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.node_locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(key).or_default().clone()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// [`reconcile`], timed for `spore_operator_reconcile_duration_seconds`.
async fn timed_reconcile(experiment: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile(experiment, ctx.clone()).await;
    ctx.metrics.observe_reconcile("experiment", started.elapsed());
    result
}

async fn reconcile(experiment: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Pods and SporeNodes are read from the cache, once it has listed them.
    ctx.cache.ready(ctx.gpu_admission).await;
    let namespace = experiment.namespace().ok_or(Error::MissingName)?;
    let name = experiment.metadata.name.clone().ok_or(Error::MissingName)?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let finished = experiment.status.as_ref().is_some_and(is_terminal);
    // A finished run kept long enough goes, with what it owns (its records stay).
    let owner = ctx.cache.node(&namespace, &experiment.spec.node);
    let expiry = if finished { retention::expires_at(&experiment, owner.as_ref()) } else { None };
    if let Some(at) = expiry
        && at <= Timestamp::now()
    {
        let experiments: Api<Experiment> = Api::namespaced(ctx.client.clone(), &namespace);
        match experiments.delete(&name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(experiment = %name, namespace = %namespace, "finished run deleted (retention)"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Action::await_change());
    }
    // Once finished, look again only when it expires (or when it changes).
    let settled = || match expiry {
        Some(at) => {
            Action::requeue(Duration::from_secs(at.duration_since(Timestamp::now()).as_secs().max(0) as u64 + 1))
        }
        None => Action::await_change(),
    };
    let pod_name = pod_name(&experiment);
    let cached = ctx.cache.pod(&namespace, &pod_name);
    let candidate = if cached.is_none() && !finished && is_diff(&experiment) {
        candidate_state(&experiment, &namespace, &ctx).await?
    } else {
        Candidate::Written
    };
    let pod = match cached {
        Some(pod) if owned_by(&pod.metadata, &experiment) => Some(pod),
        // Never read; a finished run stays as it finished.
        Some(_) if finished => return Ok(settled()),
        Some(_) => return block(&experiment, &namespace, &name, &ctx, "pod", &pod_name).await,
        // A finished run whose pod was cleaned up keeps its status; it is never re-run.
        None if finished => return Ok(settled()),
        None if candidate == Candidate::Foreign => {
            return block(&experiment, &namespace, &name, &ctx, "ConfigMap", &inline_code_name(&experiment)).await;
        }
        None if candidate == Candidate::Missing => {
            let desired = awaiting_candidate(&experiment);
            write_status(&experiment, &namespace, &name, &ctx, &desired).await?;
            return Ok(if is_terminal(&desired) { Action::await_change() } else { Action::requeue(CANDIDATE_POLL) });
        }
        None => {
            // A SporeNode's limit: counting its live pods and creating one is a single step.
            let node = owner;
            let _slot = if node.is_some() {
                Some(ctx.node_lock(format!("{namespace}/{}", experiment.spec.node)).lock_owned().await)
            } else {
                None
            };
            if let Some(limit) = node_limit_reached(node.as_ref(), &experiment, &namespace, &ctx) {
                let why = format!(
                    "waiting for a slot: SporeNode {} runs at most {limit} experiments at once",
                    experiment.spec.node
                );
                let desired = queued(&experiment, why);
                write_status(&experiment, &namespace, &name, &ctx, &desired).await?;
                return Ok(Action::requeue(QUEUE_POLL));
            }
            let class =
                experiment.spec.gpu.as_ref().or(node.as_ref().map(|n| &n.spec.gpu)).and_then(|g| g.gpu_class.clone());
            let products = class.map(|class| ctx.cache.gpu_products(&class)).unwrap_or_default();
            let wanted = training_pod_on(&experiment, node.as_ref(), &ctx.settings, &products);
            let reservation = match ctx.cache.reserve(&wanted, ctx.gpu_admission) {
                Ok(reservation) => reservation,
                Err(room) => {
                    let desired =
                        queued(&experiment, format!("waiting for GPUs: {}", room.reason().unwrap_or_default()));
                    write_status(&experiment, &namespace, &name, &ctx, &desired).await?;
                    return Ok(Action::requeue(QUEUE_POLL));
                }
            };
            // Deny-all first: the pod never exists without its network closed.
            let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
            let policy = isolation_policy(&experiment);
            match policies.create(&PostParams::default(), &policy).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let policy_name = policy.metadata.name.unwrap_or_default();
                    if !policies.get_opt(&policy_name).await?.is_some_and(|p| owned_by(&p.metadata, &experiment)) {
                        return block(&experiment, &namespace, &name, &ctx, "NetworkPolicy", &policy_name).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(code) = inline_code(&experiment) {
                let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
                match maps.create(&PostParams::default(), &code).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let map_name = code.metadata.name.unwrap_or_default();
                        if !maps.get_opt(&map_name).await?.is_some_and(|m| owned_by(&m.metadata, &experiment)) {
                            return block(&experiment, &namespace, &name, &ctx, "ConfigMap", &map_name).await;
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            match pods.create(&PostParams::default(), &wanted).await {
                Ok(pod) => {
                    ctx.metrics.pods_created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    reservation.keep();
                    Some(pod)
                }
                // The watch has not shown it yet: the status is written once it has (a status
                // from a pod read here could be newer than the watch's and go back after).
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    if !pods.get_opt(&pod_name).await?.is_some_and(|p| owned_by(&p.metadata, &experiment)) {
                        return block(&experiment, &namespace, &name, &ctx, "pod", &pod_name).await;
                    }
                    reservation.keep();
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    // A pod the kubelet did not end at its deadline: the run is failed here, then the pod is
    // removed (in that order: a finished run without a pod is never re-run).
    let overdue = pod.as_ref().and_then(|p| overdue_at(p, ctx.settings.overdue_grace_seconds));
    if let (Some(at), Some(pod)) = (overdue, pod.as_ref())
        && at <= Timestamp::now()
    {
        if !finished {
            write_status(&experiment, &namespace, &name, &ctx, &overdue_status(&experiment, pod)).await?;
        }
        match pods.delete(&pod_name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Action::await_change());
    }
    let desired = desired_status(&experiment, pod.as_ref());
    write_status(&experiment, &namespace, &name, &ctx, &desired).await?;
    if is_terminal(&desired) {
        return Ok(settled());
    }
    // Look again when the pod would be overdue, and at least every five minutes.
    let until_overdue =
        overdue.map(|at| at.duration_since(Timestamp::now()).as_secs().max(0) as u64 + 1).unwrap_or(u64::MAX);
    Ok(Action::requeue(Duration::from_secs(until_overdue.min(300))))
}

/// How often a queued Experiment (a SporeNode's limit, or no free GPU) looks again.
const QUEUE_POLL: Duration = Duration::from_secs(5);

/// How often a diff run looks for the candidate its node-agent writes.
const CANDIDATE_POLL: Duration = Duration::from_secs(3);

/// Where a diff run's candidate ConfigMap stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidate {
    /// Written by the node-agent for this Experiment (owned by it).
    Written,
    Missing,
    /// A ConfigMap of that name that this Experiment does not own.
    Foreign,
}

async fn candidate_state(experiment: &Experiment, namespace: &str, ctx: &Context) -> Result<Candidate, Error> {
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(match maps.get_opt(&inline_code_name(experiment)).await? {
        Some(map) if owned_by(&map.metadata, experiment) => Candidate::Written,
        Some(_) => Candidate::Foreign,
        None => Candidate::Missing,
    })
}

/// Holds the Experiment while a foreign object takes its child's name (`ownership.rs`).
async fn block(
    experiment: &Experiment,
    namespace: &str,
    name: &str,
    ctx: &Context,
    kind: &str,
    object: &str,
) -> Result<Action, Error> {
    tracing::warn!(experiment = %name, namespace = %namespace, kind, object, "blocked by an object it does not own");
    write_status(experiment, namespace, name, ctx, &blocked(experiment, kind, object)).await?;
    Ok(Action::requeue(QUEUE_POLL))
}

/// Writes the status (server-side apply) if the fields this operator owns changed.
async fn write_status(
    experiment: &Experiment,
    namespace: &str,
    name: &str,
    ctx: &Context,
    desired: &ExperimentStatus,
) -> Result<(), Error> {
    let previous = experiment.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut desired = with_conditions(previous, desired.clone());
    desired.conditions.push(published_condition(experiment, &desired, previous));
    let desired = &desired;
    if !differs(experiment.status.as_ref(), desired) {
        return Ok(());
    }
    let experiments: Api<Experiment> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "status": desired});
    experiments.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    let previous = experiment.status.as_ref().map(|s| s.phase);
    if let Some(event) = phase_event(previous, desired) {
        // Written beside the reconcile, which never waits for it; an event that cannot be
        // written is not worth failing anything for.
        let (recorder, reference, name) = (ctx.recorder.clone(), experiment.object_ref(&()), name.to_string());
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(experiment = %name, error = %e, "event not recorded");
            }
        });
    }
    Ok(())
}

/// The Event for a phase change (none when the phase stays): a Warning when the run failed.
pub fn phase_event(previous: Option<ExperimentPhase>, desired: &ExperimentStatus) -> Option<Event> {
    if previous == Some(desired.phase) {
        return None;
    }
    let (type_, reason) = match desired.phase {
        ExperimentPhase::Pending => (EventType::Normal, "Pending"),
        ExperimentPhase::Queued => (EventType::Normal, "Queued"),
        ExperimentPhase::Running => (EventType::Normal, "Started"),
        ExperimentPhase::Succeeded => (EventType::Normal, "Succeeded"),
        ExperimentPhase::Failed => (EventType::Warning, "Failed"),
    };
    let mut note = desired.message.clone().unwrap_or_default();
    if let Some(m) = &desired.metrics {
        note = format!("{note}: val_bpb {:.6} after {} steps", m.val_bpb, m.num_steps);
    }
    note.truncate(1000);
    Some(Event { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None })
}

/// The owning SporeNode's `maxConcurrentExperiments`, if its live training pods already reach
/// it. A node that does not exist (yet) sets no limit. Callers hold the node's lock, so counting
/// and creating cannot interleave within this (leading) replica.
fn node_limit_reached(
    node: Option<&SporeNode>,
    experiment: &Experiment,
    namespace: &str,
    ctx: &Context,
) -> Option<u32> {
    let limit = node?.spec.research.max_concurrent_experiments;
    let live = ctx.cache.live_pods(namespace, &experiment.spec.node);
    (live >= limit as usize).then_some(limit)
}

/// A `Queued` status with no pod, saying why.
fn queued(experiment: &Experiment, why: String) -> ExperimentStatus {
    let mut status = desired_status(experiment, None);
    status.phase = spore_crds::ExperimentPhase::Queued;
    status.message = Some(why);
    status
}

fn error_policy(experiment: Arc<Experiment>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(experiment = %experiment.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until the watch streams end (or the task is dropped).
pub async fn run(ctx: Arc<Context>) {
    let experiments: Api<Experiment> = crate::scoped(ctx.client.clone(), ctx.watch_namespace.as_deref());
    let metrics = ctx.metrics.clone();
    let Some((pods, nodes)) = ctx.cache.watch(ctx.client.clone(), ctx.watch_namespace.as_deref()) else {
        tracing::error!("the Experiment controller runs once per context");
        return;
    };
    // The pods come from the cache's watch: the store has each pod before its Experiment is
    // reconciled for it.
    let results = Controller::new(experiments, watcher::Config::default()).owns_stream(pods).run(
        timed_reconcile,
        error_policy,
        ctx,
    );
    tokio::select! {
        () = nodes => tracing::warn!("the SporeNode watch ended"),
        () = crate::report(results, "experiment", metrics) => {}
    }
}

#[cfg(test)]
mod mock_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_changes_become_events_and_failures_warnings() {
        let failed = ExperimentStatus {
            phase: ExperimentPhase::Failed,
            message: Some("training exited with code 3: CUDA out of memory".into()),
            ..ExperimentStatus::default()
        };
        let event = phase_event(Some(ExperimentPhase::Running), &failed).unwrap();
        assert_eq!((event.type_, event.reason.as_str()), (EventType::Warning, "Failed"));
        assert_eq!(event.note.as_deref(), Some("training exited with code 3: CUDA out of memory"));
        assert!(phase_event(Some(ExperimentPhase::Failed), &failed).is_none(), "no event without a change");
        let queued = ExperimentStatus { phase: ExperimentPhase::Queued, ..ExperimentStatus::default() };
        assert_eq!(phase_event(None, &queued).unwrap().type_, EventType::Normal);
    }
}

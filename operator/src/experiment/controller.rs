//! The Experiment controller: one pod per Experiment (created once, found by its deterministic
//! name after any restart), and the status written back with server-side apply under one field
//! manager, only when it changed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use spore_crds::Experiment;

use super::pod::{EXPERIMENT_LABEL, PodSettings, pod_name, training_pod};
use super::status::{desired_status, differs, is_terminal};
use crate::{Error, FIELD_MANAGER};

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub settings: PodSettings,
    pub metrics: Arc<crate::serve::Metrics>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("settings", &self.settings).finish_non_exhaustive()
    }
}

async fn reconcile(experiment: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = experiment.namespace().ok_or(Error::MissingName)?;
    let name = experiment.metadata.name.clone().ok_or(Error::MissingName)?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let finished = experiment.status.as_ref().is_some_and(is_terminal);
    let pod_name = pod_name(&experiment);
    let pod = match pods.get_opt(&pod_name).await? {
        Some(pod) => Some(pod),
        // A finished run whose pod was cleaned up keeps its status; it is never re-run.
        None if finished => return Ok(Action::await_change()),
        None => match pods.create(&PostParams::default(), &training_pod(&experiment, &ctx.settings)).await {
            Ok(pod) => {
                ctx.metrics.pods_created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(pod)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => pods.get_opt(&pod_name).await?,
            Err(e) => return Err(e.into()),
        },
    };
    let desired = desired_status(&experiment, pod.as_ref());
    if differs(experiment.status.as_ref(), &desired) {
        let experiments: Api<Experiment> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1",
            "kind": "Experiment",
            "status": desired,
        });
        experiments.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    Ok(if is_terminal(&desired) { Action::await_change() } else { Action::requeue(Duration::from_secs(300)) })
}

fn error_policy(experiment: Arc<Experiment>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(experiment = %experiment.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until the watch streams end (or the task is dropped).
pub async fn run(ctx: Arc<Context>) {
    let experiments: Api<Experiment> = Api::all(ctx.client.clone());
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let metrics = ctx.metrics.clone();
    Controller::new(experiments, watcher::Config::default())
        .owns(pods, watcher::Config::default().labels(EXPERIMENT_LABEL))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            let metrics = metrics.clone();
            async move {
                let counter = if result.is_ok() { &metrics.reconciles_ok } else { &metrics.reconciles_failed };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = result {
                    tracing::debug!(error = %e, "reconcile error");
                }
            }
        })
        .await;
}

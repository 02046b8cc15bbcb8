//! The Experiment controller's view of training pods and SporeNodes, kept by two watches
//! ([`Cache::watch`]; a reconcile waits until both are filled): a reconcile reads
//! them instead of asking the API server — one pod GET per reconcile, a SporeNode GET and a pod
//! LIST per new pod were most of the operator's requests in a burst.
//!
//! A watch lags the writes it reflects, so counting a node's live pods also counts the pods
//! this replica created that the watch has not shown yet (for at most [`UNSEEN_FOR`]); without
//! that, a burst could start more pods than `maxConcurrentExperiments`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use spore_crds::SporeNode;
use spore_crds::experiment::EXPERIMENT_LABEL;

use super::pod::NODE_LABEL;

/// How long a created pod the watch has not shown is counted against its node anyway.
const UNSEEN_FOR: Duration = Duration::from_secs(60);

/// Training pods and SporeNodes, as the watches last saw them.
pub struct Cache {
    pods: Store<Pod>,
    nodes: Store<SporeNode>,
    /// Taken by [`Cache::watch`].
    writers: Mutex<Option<(Writer<Pod>, Writer<SporeNode>)>>,
    /// Per `namespace/node`: pods created here and not yet seen by the watch, with when.
    unseen: Mutex<HashMap<String, Vec<(String, Instant)>>>,
}

impl Default for Cache {
    fn default() -> Self {
        let (pods, pod_writer) = reflector::store();
        let (nodes, node_writer) = reflector::store();
        Cache { pods, nodes, writers: Mutex::new(Some((pod_writer, node_writer))), unseen: Mutex::default() }
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("pods", &self.pods.len()).field("nodes", &self.nodes.len()).finish()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn live(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending" | "Running") | None)
}

impl Cache {
    /// Watches training pods and SporeNodes (in every namespace) into the stores: the pods as a
    /// stream that fills the store before it yields each pod (the controller's trigger for the
    /// pod's Experiment, so a reconcile never reads a pod older than what woke it), the
    /// SporeNodes as a future to poll alongside. `None` when they are already watched.
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &self,
        client: kube::Client,
    ) -> Option<(
        impl futures_util::Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
        impl std::future::Future<Output = ()> + Send + 'static,
    )> {
        let (pod_writer, node_writer) = locked(&self.writers).take()?;
        let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default().labels(EXPERIMENT_LABEL));
        let pods = reflector::reflector(pod_writer, pods.default_backoff()).touched_objects();
        let nodes = watcher(Api::<SporeNode>::all(client), watcher::Config::default()).default_backoff();
        let nodes = reflector::reflector(node_writer, nodes).touched_objects();
        let nodes = async move {
            let mut nodes = std::pin::pin!(nodes);
            while let Some(event) = nodes.next().await {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "watching SporeNodes failed; retrying");
                }
            }
        };
        Some((pods, nodes))
    }

    /// Until both stores are filled.
    pub async fn ready(&self) {
        let _ = futures_util::future::join(self.pods.wait_until_ready(), self.nodes.wait_until_ready()).await;
    }

    /// The training pod `name` in `namespace`, if the watch has seen it.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.pods.get(&ObjectRef::new(name).within(namespace)).map(|p| (*p).clone())
    }

    /// The SporeNode `name` in `namespace`, if the watch has seen it.
    pub fn node(&self, namespace: &str, name: &str) -> Option<SporeNode> {
        self.nodes.get(&ObjectRef::new(name).within(namespace)).map(|n| (*n).clone())
    }

    /// Pods of `node` that are (or may be) pending or running: those the watch shows live, and
    /// those created here that it does not show yet.
    pub fn live_pods(&self, namespace: &str, node: &str) -> usize {
        let shown = self
            .pods
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get(NODE_LABEL)).is_some_and(|n| n == node))
            .filter(|p| live(p))
            .count();
        let mut unseen = locked(&self.unseen);
        let pending = unseen.entry(format!("{namespace}/{node}")).or_default();
        pending.retain(|(name, at)| at.elapsed() < UNSEEN_FOR && self.pod(namespace, name).is_none());
        shown + pending.len()
    }

    /// Notes a pod this replica created for `node`.
    pub fn created(&self, namespace: &str, node: &str, pod: &str) {
        let mut unseen = locked(&self.unseen);
        unseen.entry(format!("{namespace}/{node}")).or_default().push((pod.to_string(), Instant::now()));
    }

    /// Puts objects into the stores as a watch would, and marks them filled (for tests).
    #[cfg(test)]
    pub fn seed(&self, pods: Vec<Pod>, nodes: Vec<SporeNode>) {
        fn relist<K: Clone + kube::Resource<DynamicType = ()>>(store: &Store<K>, writer: &mut Writer<K>, new: Vec<K>) {
            for object in new {
                writer.apply_watcher_event(&watcher::Event::Apply(object));
            }
            let all = store.state();
            writer.apply_watcher_event(&watcher::Event::Init);
            for object in all {
                writer.apply_watcher_event(&watcher::Event::InitApply((*object).clone()));
            }
            writer.apply_watcher_event(&watcher::Event::InitDone);
        }
        let mut writers = locked(&self.writers);
        let (pod_writer, node_writer) = writers.as_mut().expect("the watches are not running");
        relist(&self.pods, pod_writer, pods);
        relist(&self.nodes, node_writer, nodes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "lab", "labels": {NODE_LABEL: node, EXPERIMENT_LABEL: name}},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn live_pods_count_what_the_watch_shows_and_what_it_does_not_show_yet() {
        let cache = Cache::default();
        cache.seed(vec![pod("a", "n1", "Running"), pod("b", "n1", "Succeeded"), pod("c", "n2", "Pending")], vec![]);
        assert_eq!(cache.live_pods("lab", "n1"), 1);
        cache.created("lab", "n1", "d");
        assert_eq!(cache.live_pods("lab", "n1"), 2, "created, not yet shown");
        cache.seed(vec![pod("d", "n1", "Pending")], vec![]);
        assert_eq!(cache.live_pods("lab", "n1"), 2, "shown now, counted once");
        cache.seed(vec![pod("d", "n1", "Failed")], vec![]);
        assert_eq!(cache.live_pods("lab", "n1"), 1);
        assert_eq!(cache.live_pods("other", "n1"), 0);
        assert!(cache.pod("lab", "c").is_some() && cache.pod("other", "c").is_none());
    }
}

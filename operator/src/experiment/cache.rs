//! The Experiment controller's view of training pods, SporeNodes and the cluster's nodes, kept by
//! three watches ([`Cache::watch`]; a reconcile waits until the first two are filled): a
//! reconcile reads them instead of asking the API server — one pod GET per reconcile, a
//! SporeNode GET and a pod LIST per new pod were most of the operator's requests in a burst.
//!
//! A watch lags the writes it reflects, so counting a node's live pods or the GPUs taken also
//! counts the pods this replica is creating or created that the watch has not shown yet (for at
//! most [`UNSEEN_FOR`]); without that, a burst could start more pods than
//! `maxConcurrentExperiments`, or than there are GPUs. A pod is counted from before its creation
//! is sent ([`Cache::reserve`]), so concurrent reconciles never both take the last GPU.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use spore_crds::SporeNode;
use spore_crds::experiment::EXPERIMENT_LABEL;

use super::capacity::{Room, live, room};
use super::pod::NODE_LABEL;

/// How long a created pod the watch has not shown is counted against its node anyway.
const UNSEEN_FOR: Duration = Duration::from_secs(60);
/// How long after start a reconcile waits for the nodes (when GPUs are counted): without them a
/// restarted operator would create a pod for every queued Experiment at once. Nodes that cannot
/// be listed (no RBAC for them) only delay the first reconciles by this much.
const NODES_WAIT: Duration = Duration::from_secs(30);

/// Training pods, SporeNodes and cluster nodes, as the watches last saw them.
pub struct Cache {
    pods: Store<Pod>,
    nodes: Store<SporeNode>,
    cluster_nodes: Store<Node>,
    /// Taken by [`Cache::watch`].
    writers: Mutex<Option<Writers>>,
    /// Pods being created or created here, not yet seen by the watch, with when.
    unseen: Mutex<Vec<(Pod, Instant)>>,
    /// When the cache was made.
    born: Instant,
}

struct Writers {
    pods: Writer<Pod>,
    nodes: Writer<SporeNode>,
    cluster_nodes: Writer<Node>,
}

impl Default for Cache {
    fn default() -> Self {
        let (pods, pod_writer) = reflector::store();
        let (nodes, node_writer) = reflector::store();
        let (cluster_nodes, cluster_node_writer) = reflector::store();
        let writers = Writers { pods: pod_writer, nodes: node_writer, cluster_nodes: cluster_node_writer };
        Cache {
            pods,
            nodes,
            cluster_nodes,
            writers: Mutex::new(Some(writers)),
            unseen: Mutex::default(),
            born: Instant::now(),
        }
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("pods", &self.pods.len())
            .field("nodes", &self.nodes.len())
            .field("cluster_nodes", &self.cluster_nodes.len())
            .finish()
    }
}

/// A pod counted as live while its creation is under way; dropped unkept (the creation failed),
/// it is no longer counted.
#[derive(Debug)]
#[must_use = "a reservation not kept is released at once"]
pub struct Reservation<'a> {
    cache: &'a Cache,
    namespace: String,
    name: String,
    kept: bool,
}

impl Reservation<'_> {
    /// The pod exists: it stays counted until the watch shows it.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.kept {
            locked(&self.cache.unseen).retain(|(pod, _)| !is(pod, &self.namespace, &self.name));
        }
    }
}

fn is(pod: &Pod, namespace: &str, name: &str) -> bool {
    pod.metadata.namespace.as_deref() == Some(namespace) && pod.metadata.name.as_deref() == Some(name)
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cache {
    /// Watches training pods, SporeNodes (in `namespace`, else every one) and nodes into the stores: the pods
    /// as a stream that fills the store before it yields each pod (the controller's trigger for
    /// the pod's Experiment, so a reconcile never reads a pod older than what woke it), the
    /// others as a future to poll alongside. `None` when they are already watched.
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &self,
        client: kube::Client,
        namespace: Option<&str>,
    ) -> Option<(
        impl futures_util::Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
        impl std::future::Future<Output = ()> + Send + 'static,
    )> {
        let writers = locked(&self.writers).take()?;
        let pods = watcher(
            crate::scoped::<Pod>(client.clone(), namespace),
            watcher::Config::default().labels(EXPERIMENT_LABEL),
        );
        let pods = reflector::reflector(writers.pods, pods.default_backoff()).touched_objects();
        let nodes = watcher(crate::scoped::<SporeNode>(client.clone(), namespace), watcher::Config::default())
            .default_backoff();
        let nodes = drain(reflector::reflector(writers.nodes, nodes).touched_objects(), "SporeNodes");
        let cluster_nodes = watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff();
        let cluster_nodes =
            drain(reflector::reflector(writers.cluster_nodes, cluster_nodes).touched_objects(), "nodes");
        Some((pods, futures_util::future::join(nodes, cluster_nodes).map(|_| ())))
    }

    /// Until the pod and SporeNode stores are filled, and, when GPUs are counted, the nodes too
    /// (for at most [`NODES_WAIT`] after start; without nodes, GPUs are not counted).
    pub async fn ready(&self, counting_gpus: bool) {
        let _ = futures_util::future::join(self.pods.wait_until_ready(), self.nodes.wait_until_ready()).await;
        if counting_gpus {
            let deadline = tokio::time::Instant::from_std(self.born + NODES_WAIT);
            let _ = tokio::time::timeout_at(deadline, self.cluster_nodes.wait_until_ready()).await;
        }
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
        let of_node = |p: &Pod| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata.labels.as_ref().and_then(|l| l.get(NODE_LABEL)).is_some_and(|n| n == node)
        };
        let shown = self.pods.state().iter().filter(|p| of_node(p) && live(p)).count();
        shown + self.unseen().iter().filter(|p| of_node(p)).count()
    }

    /// The pods created here that the watch does not show yet (forgetting those it shows now
    /// and those older than [`UNSEEN_FOR`]).
    fn unseen(&self) -> Vec<Pod> {
        let mut unseen = locked(&self.unseen);
        self.prune(&mut unseen);
        unseen.iter().map(|(pod, _)| pod.clone()).collect()
    }

    fn prune(&self, unseen: &mut Vec<(Pod, Instant)>) {
        unseen.retain(|(pod, at)| {
            let shown = self.pods.get(&ObjectRef::from_obj(pod)).is_some();
            at.elapsed() < UNSEEN_FOR && !shown
        });
    }

    /// The `nvidia.com/gpu.product` values of the known cluster nodes that normalise to `class`.
    pub fn gpu_products(&self, class: &str) -> Vec<String> {
        let nodes = self.cluster_nodes.state();
        super::gpu_class::products_of_class(class, nodes.iter().map(|n| n.as_ref()))
    }

    /// Counts `pod` as live from now on, if its GPUs fit (when `admission` is on and the nodes
    /// are known): else the [`Room`] it met. The check and the counting are one step.
    pub fn reserve(&self, pod: &Pod, admission: bool) -> Result<Reservation<'_>, Room> {
        let mut unseen = locked(&self.unseen);
        self.prune(&mut unseen);
        let nodes_known = self.cluster_nodes.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok());
        if admission && nodes_known {
            let nodes = self.cluster_nodes.state();
            let nodes: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
            let shown = self.pods.state();
            let others = shown.iter().map(|p| p.as_ref()).chain(unseen.iter().map(|(p, _)| p));
            let verdict = room(pod, &nodes, others);
            if matches!(verdict, Room::Full { .. }) {
                return Err(verdict);
            }
        }
        unseen.push((pod.clone(), Instant::now()));
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        Ok(Reservation { cache: self, namespace, name, kept: false })
    }

    /// Puts objects into the stores as a watch would, and marks them filled (for tests).
    #[cfg(test)]
    pub fn seed(&self, pods: Vec<Pod>, nodes: Vec<SporeNode>) {
        let mut writers = locked(&self.writers);
        let writers = writers.as_mut().expect("the watches are not running");
        relist(&self.pods, &mut writers.pods, pods);
        relist(&self.nodes, &mut writers.nodes, nodes);
    }

    /// Puts cluster nodes into their store and marks it filled (for tests).
    #[cfg(test)]
    pub fn seed_cluster_nodes(&self, nodes: Vec<Node>) {
        let mut writers = locked(&self.writers);
        let writers = writers.as_mut().expect("the watches are not running");
        relist(&self.cluster_nodes, &mut writers.cluster_nodes, nodes);
    }
}

/// Applies `new` to a store as a relist would: what it held, updated, and marked filled.
#[cfg(test)]
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

/// Polls a reflector's stream for as long as it runs, saying when the watch fails.
async fn drain<K>(stream: impl futures_util::Stream<Item = Result<K, watcher::Error>>, what: &str) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if let Err(e) = event {
            tracing::warn!(error = %e, "watching {what} failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-GPU training pod of SporeNode `node`, in `phase` (none: just created).
    fn pod(name: &str, node: &str, phase: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "lab", "labels": {NODE_LABEL: node, EXPERIMENT_LABEL: name}},
            "spec": {"containers": [{"name": "evaluate", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": phase.map(|p| serde_json::json!({"phase": p}))
        }))
        .unwrap()
    }

    fn gpu_node(name: &str, gpus: u32) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"nvidia.com/gpu": gpus.to_string()}}
        }))
        .unwrap()
    }

    #[test]
    fn live_pods_count_what_the_watch_shows_and_what_it_does_not_show_yet() {
        let cache = Cache::default();
        let shown =
            vec![pod("a", "n1", Some("Running")), pod("b", "n1", Some("Succeeded")), pod("c", "n2", Some("Pending"))];
        cache.seed(shown, vec![]);
        assert_eq!(cache.live_pods("lab", "n1"), 1);
        cache.reserve(&pod("d", "n1", None), true).unwrap().keep();
        assert_eq!(cache.live_pods("lab", "n1"), 2, "created, not yet shown");
        cache.seed(vec![pod("d", "n1", Some("Pending"))], vec![]);
        assert_eq!(cache.live_pods("lab", "n1"), 2, "shown now, counted once");
        cache.seed(vec![pod("d", "n1", Some("Failed"))], vec![]);
        assert_eq!(cache.live_pods("lab", "n1"), 1);
        assert_eq!(cache.live_pods("other", "n1"), 0);
        assert!(cache.pod("lab", "c").is_some() && cache.pod("other", "c").is_none());
        let released = cache.reserve(&pod("e", "n1", None), true).unwrap();
        assert_eq!(cache.live_pods("lab", "n1"), 2, "counted while its creation is under way");
        drop(released);
        assert_eq!(cache.live_pods("lab", "n1"), 1, "a creation that failed is not counted");
    }

    #[test]
    fn counting_gpus_waits_for_the_nodes_after_start() {
        let cache = Cache::default();
        cache.seed(vec![], vec![]);
        assert!(cache.ready(false).now_or_never().is_some(), "not counting GPUs: pods and SporeNodes suffice");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let _guard = runtime.enter();
        assert!(cache.ready(true).now_or_never().is_none(), "counting GPUs: not before the nodes are known");
        cache.seed_cluster_nodes(vec![gpu_node("g1", 8)]);
        assert!(cache.ready(true).now_or_never().is_some());
    }

    #[test]
    fn reservations_take_gpus_until_none_are_left() {
        let cache = Cache::default();
        cache.seed(vec![pod("a", "n1", Some("Running"))], vec![]);
        assert!(cache.reserve(&pod("b", "n1", None), true).is_ok(), "nodes unknown yet: not counted");
        cache.seed_cluster_nodes(vec![gpu_node("g1", 2), gpu_node("g2", 1)]);
        let first = cache.reserve(&pod("c", "n1", None), true).unwrap();
        let second = cache.reserve(&pod("d", "n1", None), true).unwrap();
        let refused = cache.reserve(&pod("e", "n1", None), true).err().unwrap();
        assert_eq!(refused, Room::Full { resource: "nvidia.com/gpu".into(), asked: 1, taken: 3, total: 3 });
        assert!(cache.reserve(&pod("e", "n1", None), false).is_ok(), "admission off: always created");
        first.keep();
        drop(second);
        cache.reserve(&pod("f", "n1", None), true).expect("the failed creation's GPU is free again").keep();
        assert!(cache.reserve(&pod("g", "n1", None), true).is_err());
        cache.seed(vec![pod("a", "n1", Some("Succeeded"))], vec![]);
        assert!(cache.reserve(&pod("g", "n1", None), true).is_ok(), "a finished pod's GPU is free again");
    }
}

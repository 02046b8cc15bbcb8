//! Two `spore-operator` processes against a real control plane, as an unprivileged user granted
//! only the chart's RBAC: exactly one leads (and reconciles), both answer their probes, and when
//! the leader dies the other takes over.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spore_tests::nodes::{free_port, wait_until};
use spore_tests::testenv::TestEnv;

struct Operator {
    child: Child,
    metrics: u16,
    health: u16,
}

impl Operator {
    fn start(kubeconfig: &std::path::Path, name: &str) -> Operator {
        let (metrics, health) = (free_port().unwrap(), free_port().unwrap());
        let child = Command::new(env!("CARGO_BIN_EXE_spore-operator"))
            .args([
                "run",
                "--agent-image",
                "spore:test",
                "--lease-namespace",
                "default",
                "--lease-duration-seconds",
                "3",
            ])
            .args([
                "--metrics-address",
                &format!("127.0.0.1:{metrics}"),
                "--health-address",
                &format!("127.0.0.1:{health}"),
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start spore-operator");
        Operator { child, metrics, health }
    }

    fn get(port: u16, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    }

    fn leads(&self) -> bool {
        Self::get(self.metrics, "/metrics").is_some_and(|m| m.contains("\nspore_operator_leader 1\n"))
    }

    fn healthy(&self) -> bool {
        ["/healthz", "/readyz"].iter().all(|p| Self::get(self.health, p).is_some_and(|r| r.starts_with("HTTP/1.1 200")))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_replica_leads_and_another_takes_over_when_it_dies() {
    let env = TestEnv::kubernetes_with_crds("leader-test", 4).expect("test control plane");
    let dir = env.dir().to_path_buf();
    let kubectl = env.kubectl().unwrap();
    // Grant the restricted user exactly what the chart grants the operator's ServiceAccount.
    let helm = std::process::Command::new(env.bin("helm").unwrap())
        .args(["template", "spore", concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/spore"), "--namespace", "default"])
        .env("HELM_CACHE_HOME", dir.join("helm/cache"))
        .env("HELM_CONFIG_HOME", dir.join("helm/config"))
        .env("HELM_DATA_HOME", dir.join("helm/data"))
        .output()
        .unwrap();
    assert!(helm.status.success(), "{}", String::from_utf8_lossy(&helm.stderr));
    let rendered = String::from_utf8(helm.stdout).unwrap();
    let roles: Vec<&str> = rendered
        .split("\n---")
        .filter(|doc| doc.contains("\nkind: ClusterRole\n") || doc.contains("\nkind: Role\n"))
        .collect();
    assert_eq!(roles.len(), 2, "the chart's ClusterRole and leader-election Role");
    kubectl.run(&["apply", "-f", "-"], Some(&roles.join("\n---\n"))).unwrap();
    let user = spore_tests::testenv::RESTRICTED_USER;
    kubectl
        .run(
            &["create", "clusterrolebinding", "operator-as-user", "--clusterrole=spore", &format!("--user={user}")],
            None,
        )
        .unwrap();
    kubectl
        .run(
            &[
                "create",
                "rolebinding",
                "-n",
                "default",
                "leases-as-user",
                "--role=spore-leader-election",
                &format!("--user={user}"),
            ],
            None,
        )
        .unwrap();
    let kubeconfig = env.restricted_kubeconfig().unwrap();

    let mut replicas = vec![Operator::start(kubeconfig, "replica-a"), Operator::start(kubeconfig, "replica-b")];
    wait_until(Duration::from_secs(30), "a leader", || replicas.iter().any(Operator::leads));
    std::thread::sleep(Duration::from_secs(4)); // more than a lease: the other must still wait
    assert_eq!(replicas.iter().filter(|r| r.leads()).count(), 1, "exactly one leader");
    assert!(replicas.iter().all(Operator::healthy), "both replicas answer their probes");

    let experiment = |name: &str| {
        format!(
            "apiVersion: sporemesh.io/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  node: lab-node\n  code: {{inline: \"print(1)\"}}\n"
        )
    };
    kubectl.run(&["apply", "-f", "-"], Some(&experiment("first"))).unwrap();
    wait_until(Duration::from_secs(30), "the leader to create the first pod", || {
        kubectl.run(&["get", "pod", "first-train"], None).is_ok()
    });

    // A SporeNode with research on: its agent's Role lets its research loop create Experiments,
    // which the operator can grant only because the chart grants it that verb.
    let researcher = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: researcher}\nspec:\n  \
                      research: {enabled: true}\n";
    kubectl.run(&["apply", "-f", "-"], Some(researcher)).unwrap();
    let verbs = || kubectl.run(&["get", "role", "researcher-agent", "-o", "jsonpath={.rules[0].verbs}"], None);
    wait_until(Duration::from_secs(30), "the research agent's Role", || verbs().is_ok_and(|v| v.contains("create")));
    let args = || {
        let path = "jsonpath={.spec.template.spec.containers[0].args}";
        kubectl.run(&["get", "statefulset", "researcher", "-o", path], None).unwrap_or_default()
    };
    wait_until(Duration::from_secs(30), "the research agent's StatefulSet", || !args().is_empty());
    assert!(args().contains(r#""--time-budget","300""#) && !args().contains("--no-train"), "{}", args());

    let leader = replicas.iter().position(Operator::leads).unwrap();
    let metrics = Operator::get(replicas[leader].metrics, "/metrics").unwrap();
    assert!(metrics.contains("\nspore_operator_pods_created_total 1\n"), "{metrics}");
    assert!(!metrics.contains("controller=\"experiment\",result=\"ok\"} 0\n"), "reconciles are counted: {metrics}");
    let timed = "spore_operator_reconcile_duration_seconds_count{controller=\"experiment\"}";
    assert!(metrics.contains(timed) && !metrics.contains(&format!("{timed} 0\n")), "reconciles are timed: {metrics}");
    let follower = Operator::get(replicas[1 - leader].metrics, "/metrics").unwrap();
    assert!(follower.contains("\nspore_operator_pods_created_total 0\n"), "the follower does nothing: {follower}");
    drop(replicas.remove(leader));
    let survivor = &replicas[0];
    wait_until(Duration::from_secs(20), "the survivor to take over", || survivor.leads());
    kubectl.run(&["apply", "-f", "-"], Some(&experiment("second"))).unwrap();
    wait_until(Duration::from_secs(30), "the new leader to create the second pod", || {
        kubectl.run(&["get", "pod", "second-train"], None).is_ok()
    });
    let pods = kubectl.run(&["get", "pods", "-l", "sporemesh.io/experiment", "-o", "name"], None).unwrap();
    assert_eq!(pods.lines().count(), 2, "one pod per Experiment: {pods}");
    let holder =
        kubectl.run(&["get", "lease", "spore-operator", "-o", "jsonpath={.spec.holderIdentity}"], None).unwrap();
    assert!(holder.starts_with("replica-"), "{holder}");
    drop(replicas);
    drop(env);
}

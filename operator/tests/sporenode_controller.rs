//! The SporeNode controller against a real control plane: identity Secret, config, Services,
//! StatefulSet (its pod run by kwok), training egress policy, status; named and missing
//! identities; deletion.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::time::Duration;

use spore_tests::nodes::wait_until;
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;

const NS: &str = "lab";

fn get(kubectl: &Kubectl, what: &[&str], path: &str) -> String {
    let mut args = vec!["get", "-n", NS];
    args.extend_from_slice(what);
    let jsonpath = format!("jsonpath={path}");
    args.extend(["-o", jsonpath.as_str()]);
    kubectl.run(&args, None).unwrap_or_default()
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sporenode_becomes_a_running_agent_with_its_own_identity() {
    let env = TestEnv::kubernetes_with_crds("sporenode-test", 4).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", NS], None).unwrap();
    // Volumes for the agents' stores (no provisioner in the test cluster).
    let volumes: Vec<String> = (0..2)
        .map(|i| format!("apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: store-{i}}}\nspec:\n  capacity: {{storage: 10Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: /tmp/spore-store-{i}}}\n"))
        .collect();
    kubectl.run(&["apply", "-f", "-"], Some(&volumes.join("---\n"))).unwrap();
    // A named identity (the RFC 8032 test key) for the second node.
    kubectl
        .run(
            &[
                "create",
                "secret",
                "generic",
                "-n",
                NS,
                "known-key",
                "--from-literal=private_key=9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            ],
            None,
        )
        .unwrap();
    // Its owner lets that SporeNode mount it; a database password nobody offered to Spore.
    kubectl.run(&["label", "secret", "-n", NS, "known-key", "sporemesh.io/for-sporenode=known"], None).unwrap();
    kubectl
        .run(&["create", "secret", "generic", "-n", NS, "db-password", "--from-literal=private_key=00"], None)
        .unwrap();

    // Only the lab's images run.
    let settings = spore_operator::experiment::pod::PodSettings::new("spore:test");
    let ctx = support::operator_context_with(&env, settings, &["spore:"]).await;
    let controllers = tokio::spawn(spore_operator::run_controllers(ctx));

    let nodes = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lab-node}\nspec:\n  bridge: {publicPeers: [\"peer.example:7470\"], export: own}\n  \
                 verification: {spotCheckRate: 0.25, challengeTimeoutSeconds: 600, trustedVerifiers: [\"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\"]}\n---\n\
                 apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: known}\nspec: {identitySecretName: known-key}\n---\n\
                 apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lost}\nspec: {identitySecretName: no-such-secret}\n---\n\
                 apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: thief}\nspec: {identitySecretName: db-password}\n---\n\
                 apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: odd}\nspec: {image: \"evil.example/spore:1\"}\n";
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(nodes)).unwrap();
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(90), "lab-node and known to be Ready", || {
            get(&k, &["sporenode", "lab-node"], r#"{.status.conditions[?(@.type=="Ready")].status}"#) == "True"
                && get(&k, &["sporenode", "known"], r#"{.status.conditions[?(@.type=="Ready")].status}"#) == "True"
        })
    })
    .await
    .unwrap();

    // The generated identity: a Python-format key whose public key is the status's node id.
    let seed =
        String::from_utf8(base64_decode(&get(&kubectl, &["secret", "lab-node-identity"], "{.data.private_key}")))
            .unwrap();
    let node_id = spore_spec::Identity::from_seed_hex(&seed).unwrap().node_id();
    assert_eq!(get(&kubectl, &["sporenode", "lab-node"], "{.status.nodeId}"), node_id);
    assert_eq!(
        get(&kubectl, &["sporenode", "known"], "{.status.nodeId}"),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    assert!(
        kubectl.run(&["get", "secret", "-n", NS, "known-identity"], None).is_err(),
        "a named identity is not replaced"
    );
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(30), "a missing named identity to be reported", || {
            get(&k, &["sporenode", "lost"], r#"{.status.conditions[?(@.type=="Ready")].reason}"#) == "IdentityMissing"
        })
    })
    .await
    .unwrap();

    let condition = |node: &str, type_: &str| {
        let path = format!(
            r#"{{.status.conditions[?(@.type=="{type_}")].status}}/{{.status.conditions[?(@.type=="{type_}")].reason}}"#
        );
        get(&kubectl, &["sporenode", node], &path)
    };
    assert_eq!(condition("lost", "Degraded"), "True/IdentityMissing");
    assert_eq!(condition("lost", "Progressing"), "False/Blocked");
    assert_eq!(condition("lab-node", "Degraded"), "False/AsExpected");
    // A Secret its owner did not offer, an image the lab does not allow: not started.
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(30), "thief and odd to be refused", || {
            ["thief", "odd"].iter().all(|n| {
                get(&k, &["sporenode", n], r#"{.status.conditions[?(@.type=="Degraded")].reason}"#) == "NotPermitted"
            })
        })
    })
    .await
    .unwrap();
    let why = get(&kubectl, &["sporenode", "thief"], r#"{.status.conditions[?(@.type=="Degraded")].message}"#);
    assert!(why.starts_with("Secret db-password is not labelled sporemesh.io/for-sporenode=thief"), "{why}");
    let why = get(&kubectl, &["sporenode", "odd"], r#"{.status.conditions[?(@.type=="Degraded")].message}"#);
    assert_eq!(why, "image evil.example/spore:1 is not among the images this operator allows");
    for refused in ["thief", "odd"] {
        assert!(kubectl.run(&["get", "statefulset", "-n", NS, refused], None).is_err(), "{refused} got an agent");
    }
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(30), "lab-node's rollout to settle", || {
            get(&k, &["sporenode", "lab-node"], r#"{.status.conditions[?(@.type=="Progressing")].reason}"#) == "Stable"
        })
    })
    .await
    .unwrap();

    // What the node owns.
    let args = get(&kubectl, &["statefulset", "lab-node"], "{.spec.template.spec.containers[0].args}");
    assert!(args.contains("--no-train") && args.contains(r#""--public-peer","peer.example:7470""#), "{args}");
    assert!(args.contains(r#""--export","own","--import","all""#), "the SporeNode's bridge policy: {args}");
    // Its verification policy: the votes it trusts in disputes.
    assert!(args.contains(r#""--spot-check-rate","0.25","--challenge-timeout","600""#), "{args}");
    assert!(
        args.contains(r#""--trust-verifier","d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a""#),
        "{args}"
    );
    // The gRPC API is reachable in the cluster, behind a generated token mounted from a Secret.
    let token =
        String::from_utf8(base64_decode(&get(&kubectl, &["secret", "lab-node-grpc-token"], "{.data.token}"))).unwrap();
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "a 32-byte hex token");
    assert!(args.contains(r#""--grpc-host","0.0.0.0""#), "{args}");
    // The explorer and /metrics answer on the pod's address, behind the node's Service.
    assert!(args.contains(r#""--web-host","0.0.0.0","--web-port","8470""#), "{args}");
    assert!(args.contains(r#""--metrics-host","0.0.0.0","--metrics-port","7472""#), "{args}");
    assert_eq!(get(&kubectl, &["service", "lab-node"], "{.spec.ports[*].name}"), "gossip grpc explorer metrics");
    assert!(args.contains(r#""--grpc-token-file","/var/run/spore/grpc/token""#), "{args}");
    assert_eq!(
        get(
            &kubectl,
            &["statefulset", "lab-node"],
            r#"{.spec.template.spec.volumes[?(@.name=="grpc-token")].secret.secretName}"#
        ),
        "lab-node-grpc-token"
    );
    // The agent publishes its Experiments under its own, narrow ServiceAccount.
    assert!(args.contains(r#""--kubernetes-node","lab-node""#), "{args}");
    assert_eq!(
        get(&kubectl, &["statefulset", "lab-node"], "{.spec.template.spec.serviceAccountName}"),
        "lab-node-agent"
    );
    assert_eq!(get(&kubectl, &["rolebinding", "lab-node-agent"], "{.subjects[0].name}"), "lab-node-agent");
    let can = |verb: &str, what: &str, subresource: &str| {
        let who = format!("--as=system:serviceaccount:{NS}:lab-node-agent");
        let sub = format!("--subresource={subresource}");
        let mut args = vec!["auth", "can-i", verb, what, "-n", NS, &who];
        if !subresource.is_empty() {
            args.push(&sub);
        }
        kubectl.run(&args, None).map(|out| out.trim() == "yes").unwrap_or(false)
    };
    assert!(can("watch", "experiments.sporemesh.io", "") && can("patch", "experiments.sporemesh.io", "status"));
    assert!(can("get", "configmaps", "") && can("create", "configmaps", ""));
    assert!(!can("patch", "experiments.sporemesh.io", "") && !can("get", "secrets", "") && !can("create", "pods", ""));
    // Its own SporeNode's status, and no other's.
    assert!(can("patch", "sporenodes.sporemesh.io/lab-node", "status"));
    assert!(!can("patch", "sporenodes.sporemesh.io/known", "status") && !can("patch", "sporenodes.sporemesh.io", ""));
    assert_eq!(get(&kubectl, &["service", "lab-node"], "{.spec.clusterIP}"), "None");
    assert_eq!(get(&kubectl, &["service", "lab-node-gossip"], "{.spec.type}"), "ClusterIP");
    assert!(
        get(&kubectl, &["configmap", "lab-node-config"], "{.data.config\\.toml}")
            .contains("public_peer = [\"peer.example:7470\"]")
    );
    assert_eq!(get(&kubectl, &["networkpolicy", "lab-node-training-no-egress"], "{.spec.policyTypes[0]}"), "Egress");
    assert_eq!(get(&kubectl, &["statefulset", "lab-node"], "{.metadata.ownerReferences[0].kind}"), "SporeNode");
    let table = kubectl.run(&["get", "sporenodes", "-n", NS], None).unwrap();
    assert!(table.contains(&node_id[..12]), "kubectl get sporenodes shows the node id: {table}");

    // The node's concurrency limit (default 1) holds its other Experiments in the queue.
    let runs: Vec<String> = (0..3)
        .map(|i| format!("apiVersion: sporemesh.io/v1alpha1\nkind: Experiment\nmetadata: {{name: run-{i}}}\nspec:\n  node: known\n  code: {{inline: \"print(1)\"}}\n  gpu: {{count: 0}}\n"))
        .collect();
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(&runs.join("---\n"))).unwrap();
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), "one run and two queued behind the node's limit", || {
            let phases = get(&k, &["experiments"], "{.items[*].status.phase}");
            phases.split_whitespace().filter(|p| *p == "Running").count() == 1
                && phases.split_whitespace().filter(|p| *p == "Queued").count() == 2
        })
    })
    .await
    .unwrap();
    let messages = get(&kubectl, &["experiments"], "{.items[*].status.message}");
    assert!(messages.contains("SporeNode known runs at most 1 experiments at once"), "{messages}");

    // Deleting the node removes what it owned, but not its key.
    kubectl.run(&["delete", "sporenode", "-n", NS, "lab-node"], None).unwrap();
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), "the node's StatefulSet and token Secret to go", || {
            k.run(&["get", "statefulset", "-n", NS, "lab-node"], None).is_err()
                && k.run(&["get", "secret", "-n", NS, "lab-node-grpc-token"], None).is_err()
        })
    })
    .await
    .unwrap();
    assert_eq!(get(&kubectl, &["secret", "lab-node-identity"], "{.metadata.ownerReferences}"), "");
    // Applied again (a GitOps sync after a delete), it is the same node.
    let again = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lab-node}\nspec: {}\n";
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(again)).unwrap();
    let (k, id) = (kubectl.clone(), node_id.clone());
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(30), "the re-applied node to report its id", || {
            get(&k, &["sporenode", "lab-node"], "{.status.nodeId}") == id
        })
    })
    .await
    .unwrap();
    controllers.abort();
    drop(env);
}

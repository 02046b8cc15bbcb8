//! A lab's trust policy on a real control plane: a cluster-scoped `SporeTrustPolicy` adds its
//! verifiers to the agents of the SporeNodes it applies to (all namespaces, or those it names),
//! beside each SporeNode's own list; changing or deleting the policy changes the running agents'
//! flags; a malformed node id is refused by the API server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::time::Duration;

use spore_tests::nodes::wait_until;
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;

const OWN: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const LAB: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
const TEAM: &str = "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025";

fn args(kubectl: &Kubectl, namespace: &str, name: &str) -> String {
    let path = "jsonpath={.spec.template.spec.containers[0].args}";
    kubectl.run(&["get", "statefulset", "-n", namespace, name, "-o", path], None).unwrap_or_default()
}

fn trusts(args: &str, id: &str) -> bool {
    args.contains(&format!(r#""--trust-verifier","{id}""#))
}

async fn wait_for(kubectl: &Kubectl, what: &'static str, check: impl Fn(&Kubectl) -> bool + Send + 'static) {
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || wait_until(Duration::from_secs(30), what, || check(&k))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_trust_policy_reaches_the_agents_it_applies_to() {
    let env = TestEnv::kubernetes_with_crds("trust-policy-test", 0).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    for ns in ["lab", "team"] {
        kubectl.run(&["create", "namespace", ns], None).unwrap();
    }
    let ctx = support::operator_context(&env).await;
    let controllers = tokio::spawn(spore_operator::run_controllers(ctx));

    // Everywhere: LAB. Only in `team`: TEAM.
    let policies = format!(
        "apiVersion: sporemesh.io/v1alpha1\nkind: SporeTrustPolicy\nmetadata: {{name: lab-wide}}\nspec: {{trustedVerifiers: [\"{LAB}\"]}}\n---\n\
         apiVersion: sporemesh.io/v1alpha1\nkind: SporeTrustPolicy\nmetadata: {{name: team-only}}\nspec: {{trustedVerifiers: [\"{TEAM}\"], namespaces: [team]}}\n"
    );
    kubectl.run(&["apply", "-f", "-"], Some(&policies)).unwrap();
    let node = |ns: &str| {
        format!(
            "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {{name: agent, namespace: {ns}}}\nspec:\n  research: {{enabled: false}}\n  \
             storage: {{size: 1Gi}}\n  verification: {{trustedVerifiers: [\"{OWN}\"]}}\n"
        )
    };
    for ns in ["lab", "team"] {
        kubectl.run(&["apply", "-f", "-"], Some(&node(ns))).unwrap();
    }
    wait_for(&kubectl, "both agents", |k| !args(k, "lab", "agent").is_empty() && !args(k, "team", "agent").is_empty())
        .await;
    let lab = args(&kubectl, "lab", "agent");
    assert!(trusts(&lab, OWN) && trusts(&lab, LAB) && !trusts(&lab, TEAM), "{lab}");
    let team = args(&kubectl, "team", "agent");
    assert!(trusts(&team, OWN) && trusts(&team, LAB) && trusts(&team, TEAM), "{team}");

    // The lab changes its policy: running agents follow, with no change to their SporeNodes.
    let changed = format!(
        "apiVersion: sporemesh.io/v1alpha1\nkind: SporeTrustPolicy\nmetadata: {{name: lab-wide}}\nspec: {{trustedVerifiers: [\"{LAB}\", \"{TEAM}\"]}}\n"
    );
    kubectl.run(&["apply", "-f", "-"], Some(&changed)).unwrap();
    wait_for(&kubectl, "the lab agent to trust TEAM", |k| trusts(&args(k, "lab", "agent"), TEAM)).await;
    kubectl.run(&["delete", "sporetrustpolicy", "lab-wide", "team-only"], None).unwrap();
    wait_for(&kubectl, "both agents to trust only their own", |k| {
        ["lab", "team"].iter().all(|ns| {
            let a = args(k, ns, "agent");
            trusts(&a, OWN) && !trusts(&a, LAB) && !trusts(&a, TEAM)
        })
    })
    .await;

    // A node id that is not one: refused by the API server, not by the operator's guess.
    let bad = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeTrustPolicy\nmetadata: {name: bad}\nspec: {trustedVerifiers: [\"not-a-node-id\"]}\n";
    let refused = kubectl.run(&["apply", "-f", "-"], Some(bad)).unwrap_err().to_string();
    assert!(refused.contains("trustedVerifiers") || refused.contains("should match"), "{refused}");

    controllers.abort();
}

//! What a node-agent may do with the Kubernetes API, and nothing more: its own ServiceAccount,
//! bound by a Role in its namespace to reading Experiments and the ConfigMaps that hold their
//! code, creating the candidate ConfigMap of a diff run, and writing the Experiments' status
//! (the CID it published), reading its own SporeNode (the GPU class it compares with) and
//! writing its status (what it knows: peers, records, best results, reputation). With research
//! or verification on, also creating Experiments (its research loop's runs, its re-runs of
//! other nodes' records). Pure, tested without a cluster.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use spore_crds::SporeNode;

use super::children::meta;

/// The node-agent's ServiceAccount, Role and RoleBinding are all called this.
pub fn agent_account_name(node: &SporeNode) -> String {
    format!("{}-agent", node.metadata.name.as_deref().unwrap_or_default())
}

pub fn service_account(node: &SporeNode) -> ServiceAccount {
    ServiceAccount { metadata: meta(node, agent_account_name(node)), ..ServiceAccount::default() }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

pub fn role(node: &SporeNode) -> Role {
    // Its research loop's runs, and its re-runs of other nodes' records (`purpose: verify`).
    let creates = node.spec.research.enabled || node.spec.verification.enabled;
    let experiments: &[&str] = if creates { &["get", "list", "watch", "create"] } else { &["get", "list", "watch"] };
    let mut rules = vec![
        rule("sporemesh.io", &["experiments"], experiments),
        rule("sporemesh.io", &["experiments/status"], &["get", "patch"]),
        // Reading the code of its runs; creating the candidate of a diff run.
        rule("", &["configmaps"], &["get", "create"]),
    ];
    // Its own SporeNode: the GPU class its research and its re-runs compare with.
    let mut own = rule("sporemesh.io", &["sporenodes"], &["get"]);
    own.resource_names = node.metadata.name.clone().map(|n| vec![n]);
    rules.push(own);
    // Its own SporeNode's live status (peers, records, best results, reputation).
    let mut own_status = rule("sporemesh.io", &["sporenodes/status"], &["get", "patch"]);
    own_status.resource_names = node.metadata.name.clone().map(|n| vec![n]);
    rules.push(own_status);
    Role { metadata: meta(node, agent_account_name(node)), rules: Some(rules) }
}

pub fn role_binding(node: &SporeNode) -> RoleBinding {
    RoleBinding {
        metadata: meta(node, agent_account_name(node)),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: agent_account_name(node),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: agent_account_name(node),
            namespace: node.metadata.namespace.clone(),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_reads_experiments_and_writes_only_their_status_and_its_own_sporenodes() {
        let node: SporeNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode",
            "metadata": {"name": "lab", "namespace": "ns", "uid": "u"},
            "spec": {"verification": {"enabled": false}}
        }))
        .unwrap();
        let role = role(&node);
        let rules = role.rules.unwrap();
        let writes: Vec<_> = rules
            .iter()
            .filter(|r| r.verbs.iter().any(|v| !matches!(v.as_str(), "get" | "list" | "watch")))
            .flat_map(|r| r.resources.clone().unwrap_or_default())
            .collect();
        assert_eq!(writes, ["experiments/status", "configmaps", "sporenodes/status"]);
        // Only its own SporeNode's status.
        let own =
            rules.iter().find(|r| r.resources.as_deref() == Some(&["sporenodes/status".to_string()][..])).unwrap();
        assert_eq!(own.resource_names, Some(vec!["lab".to_string()]));
        let binding = role_binding(&node);
        assert_eq!(binding.subjects.unwrap()[0].namespace.as_deref(), Some("ns"));
        assert_eq!(binding.role_ref.name, "lab-agent");
        assert_eq!(service_account(&node).metadata.owner_references.unwrap()[0].uid, "u");
    }

    #[test]
    fn verifying_it_creates_experiments_for_its_re_runs() {
        let node: SporeNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode",
            "metadata": {"name": "lab", "namespace": "ns", "uid": "u"}, "spec": {}
        }))
        .unwrap();
        assert_eq!(role(&node).rules.unwrap()[0].verbs, ["get", "list", "watch", "create"]);
    }

    #[test]
    fn with_research_it_creates_experiments_and_reads_its_own_sporenode() {
        let node: SporeNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode",
            "metadata": {"name": "lab", "namespace": "ns", "uid": "u"}, "spec": {"research": {"enabled": true}}
        }))
        .unwrap();
        let rules = role(&node).rules.unwrap();
        assert_eq!(rules[0].verbs, ["get", "list", "watch", "create"]);
        let own = rules.iter().find(|r| r.resources.as_deref() == Some(&["sporenodes".to_string()][..])).unwrap();
        assert_eq!(
            (own.verbs.clone(), own.resource_names.clone()),
            (vec!["get".to_string()], Some(vec!["lab".into()]))
        );
    }
}

//! What a node-agent may do with the Kubernetes API, and nothing more: its own ServiceAccount,
//! bound by a Role in its namespace to reading Experiments and the ConfigMaps that hold their
//! code, creating the candidate ConfigMap of a diff run, and writing the Experiments' status
//! (the CID it published). Pure, tested without a cluster.

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
    Role {
        metadata: meta(node, agent_account_name(node)),
        rules: Some(vec![
            rule("sporemesh.io", &["experiments"], &["get", "list", "watch"]),
            rule("sporemesh.io", &["experiments/status"], &["get", "patch"]),
            // Reading the code of its runs; creating the candidate of a diff run.
            rule("", &["configmaps"], &["get", "create"]),
        ]),
    }
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
    fn the_agent_reads_experiments_and_writes_only_their_status() {
        let node: SporeNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode",
            "metadata": {"name": "lab", "namespace": "ns", "uid": "u"}, "spec": {}
        }))
        .unwrap();
        let role = role(&node);
        let rules = role.rules.unwrap();
        let writes: Vec<_> = rules
            .iter()
            .filter(|r| r.verbs.iter().any(|v| !matches!(v.as_str(), "get" | "list" | "watch")))
            .flat_map(|r| r.resources.clone().unwrap_or_default())
            .collect();
        assert_eq!(writes, ["experiments/status", "configmaps"]);
        let binding = role_binding(&node);
        assert_eq!(binding.subjects.unwrap()[0].namespace.as_deref(), Some("ns"));
        assert_eq!(binding.role_ref.name, "lab-agent");
        assert_eq!(service_account(&node).metadata.owner_references.unwrap()[0].uid, "u");
    }
}

//! `SporeTrustPolicy`: the verifiers a lab trusts, once for the whole cluster (cluster-scoped).
//! The operator gives every SporeNode it applies to the union of these and the SporeNode's own
//! `spec.verification.trustedVerifiers`: their votes count in every dispute.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Verifiers trusted by the SporeNodes of some or all namespaces.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "sporemesh.io",
    version = "v1alpha1",
    kind = "SporeTrustPolicy",
    shortname = "strust",
    category = "spore",
    doc = "Verifiers a lab trusts, for the SporeNodes of the namespaces named (all when none are).",
    printcolumn(name = "Namespaces", type_ = "string", json_path = ".spec.namespaces"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SporeTrustPolicySpec {
    /// Node ids (64 hex characters) whose votes count in every dispute.
    #[schemars(length(max = 256), inner(regex(pattern = r"^[0-9a-f]{64}$")))]
    pub trusted_verifiers: Vec<String>,
    /// The namespaces whose SporeNodes follow this policy; every namespace when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub namespaces: Vec<String>,
}

impl SporeTrustPolicy {
    /// Whether the SporeNodes of `namespace` follow this policy.
    pub fn applies_to(&self, namespace: &str) -> bool {
        self.spec.namespaces.is_empty() || self.spec.namespaces.iter().any(|n| n == namespace)
    }
}

/// The verifiers a SporeNode of `namespace` trusts: its own list, then every applicable policy's,
/// each once, in that order.
pub fn trusted_verifiers<'a>(
    own: &'a [String],
    policies: impl IntoIterator<Item = &'a SporeTrustPolicy>,
    namespace: &str,
) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    let from_policies =
        policies.into_iter().filter(|p| p.applies_to(namespace)).flat_map(|p| &p.spec.trusted_verifiers);
    for id in own.iter().chain(from_policies) {
        if !all.contains(id) {
            all.push(id.clone());
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ids: &[&str], namespaces: &[&str]) -> SporeTrustPolicy {
        SporeTrustPolicy::new(
            "p",
            SporeTrustPolicySpec {
                trusted_verifiers: ids.iter().map(|s| s.to_string()).collect(),
                namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            },
        )
    }

    #[test]
    fn a_policy_adds_its_verifiers_where_it_applies_and_once() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let everywhere = policy(&[&b, &a], &[]);
        let elsewhere = policy(&[&c], &["other"]);
        let own = vec![a.clone()];
        assert_eq!(trusted_verifiers(&own, [&everywhere, &elsewhere], "lab"), vec![a.clone(), b.clone()]);
        assert_eq!(trusted_verifiers(&own, [&everywhere, &elsewhere], "other"), vec![a, b, c]);
    }
}

//! What a SporeNode may put into its agent's pod. Its author chooses Secret names and an image;
//! unchecked, anyone who may write a SporeNode could mount any Secret of its namespace into an
//! image of their choosing and read it out. So:
//!
//! * a Secret is mounted only when the operator made it for this SporeNode (label
//!   `sporemesh.io/agent=<name>`, set on the keys it generates) or its owner labelled it for
//!   Spore: [`FOR_SPORENODE_LABEL`] = the SporeNode's name, or `*` for any SporeNode of the
//!   namespace (writing that label takes write access to the Secret: its owner's consent);
//! * `spec.image` must start with one of the operator's allowed prefixes
//!   (`--allowed-image-prefix`; the chart allows its own repository), when any are set.
//!
//! A SporeNode that asks for more is not started (`Degraded`, reason `NotPermitted`, saying
//! what was refused); an agent already running keeps the spec it had.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use spore_crds::SporeNode;

use super::children::{AGENT_LABEL, identity_secret_name};
use crate::Error;

/// The label by which a Secret's owner lets a SporeNode (by name, or `*`) mount it.
pub const FOR_SPORENODE_LABEL: &str = "sporemesh.io/for-sporenode";

/// Whether the SporeNode `node` may mount `secret`.
pub fn secret_permitted(secret: &Secret, node: &str) -> bool {
    let label = |key: &str| secret.metadata.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str);
    label(AGENT_LABEL) == Some(node) || matches!(label(FOR_SPORENODE_LABEL), Some(v) if v == node || v == "*")
}

/// Whether `image` (a SporeNode's `spec.image`; `None`: the operator's own) may run.
pub fn image_permitted(image: Option<&str>, allowed_prefixes: &[String]) -> bool {
    match image {
        None => true,
        Some(image) => allowed_prefixes.is_empty() || allowed_prefixes.iter().any(|p| image.starts_with(p.as_str())),
    }
}

/// Why `node` may not be started as it asks; `None` when it may.
pub async fn refusal(
    node: &SporeNode,
    secrets: &Api<Secret>,
    allowed_images: &[String],
) -> Result<Option<String>, Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let image = node.spec.image.as_deref();
    if !image_permitted(image, allowed_images) {
        return Ok(Some(format!("image {} is not among the images this operator allows", image.unwrap_or_default())));
    }
    let mut mounted = vec![identity_secret_name(node)];
    if let Some(key) = node.spec.research.llm.as_ref().and_then(|l| l.api_key_secret_ref.as_ref()) {
        mounted.push(key.name.clone());
    }
    for secret_name in mounted {
        if let Some(secret) = secrets.get_opt(&secret_name).await?
            && !secret_permitted(&secret, &name)
        {
            return Ok(Some(format!(
                "Secret {secret_name} is not labelled {FOR_SPORENODE_LABEL}={name} (or *) by its owner, nor made by \
                 the operator for this SporeNode"
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn secret(labels: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.labels =
            Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
        s
    }

    #[test]
    fn a_secret_needs_its_owners_consent_and_an_image_the_operators() {
        assert!(secret_permitted(&secret(&[(AGENT_LABEL, "lab")]), "lab"), "made by the operator for it");
        assert!(secret_permitted(&secret(&[(FOR_SPORENODE_LABEL, "lab")]), "lab"));
        assert!(secret_permitted(&secret(&[(FOR_SPORENODE_LABEL, "*")]), "lab"));
        assert!(!secret_permitted(&secret(&[(FOR_SPORENODE_LABEL, "other")]), "lab"));
        assert!(!secret_permitted(&secret(&[(AGENT_LABEL, "other")]), "lab"), "another node's key");
        assert!(!secret_permitted(&Secret::default(), "lab"));
        let allowed = vec!["ghcr.io/spore/".to_string()];
        assert!(image_permitted(Some("ghcr.io/spore/spore:1"), &allowed));
        assert!(!image_permitted(Some("evil.example/spore:1"), &allowed));
        assert!(image_permitted(None, &allowed), "the operator's own image");
        assert!(image_permitted(Some("anything"), &[]), "no list: any image");
    }
}

//! A SporeNode's conditions from what the controller saw: `Ready` (its agent serves),
//! `Progressing` (its agent is being started or rolled out) and `Degraded` (something keeps it
//! from working as asked: its named key is missing, it asks for a Secret or image it may not
//! have, or a ready agent went away). Pure, tested without a cluster.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::conditions::{State, condition};

/// What the conditions are computed from.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The node's key was found (or made).
    pub has_identity: bool,
    /// The identity Secret's name, for the messages.
    pub identity_secret: &'a str,
    /// The agent's StatefulSet, if it exists.
    pub stateful_set: Option<&'a StatefulSet>,
    /// The SporeNode's generation.
    pub generation: Option<i64>,
    /// Why the SporeNode may not be started as it asks ([`super::consent`]).
    pub refused: Option<&'a str>,
}

/// `Ready`, `Progressing`, `Degraded`, keeping transition times from `previous`.
pub fn node_conditions(previous: &[Condition], seen: Observed<'_>) -> Vec<Condition> {
    let status = seen.stateful_set.and_then(|s| s.status.as_ref());
    let wanted = seen.stateful_set.and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(1);
    let ready_replicas = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let rolled_out = seen
        .stateful_set
        .is_some_and(|s| status.and_then(|st| st.observed_generation) >= s.metadata.generation && updated >= wanted);
    let was_ready = previous.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let missing_key = format!("Secret {} has no usable key", seen.identity_secret);

    if let Some(why) = seen.refused {
        return vec![
            condition(previous, "Ready", State::False, "NotPermitted", why, seen.generation),
            condition(previous, "Progressing", State::False, "Blocked", why, seen.generation),
            condition(previous, "Degraded", State::True, "NotPermitted", why, seen.generation),
        ];
    }
    let (ready, ready_reason, ready_message) = match (seen.has_identity, ready_replicas) {
        (false, _) => (State::False, "IdentityMissing", missing_key.clone()),
        (true, 0) => (State::False, "Starting", "the node-agent is not ready yet".to_string()),
        (true, _) => (State::True, "AgentReady", "the node-agent is running".to_string()),
    };
    let (progressing, progressing_reason, progressing_message) = if !seen.has_identity {
        (State::False, "Blocked", "the node-agent cannot start without its key".to_string())
    } else if !rolled_out {
        (State::True, "RollingOut", "the node-agent's StatefulSet is being rolled out".to_string())
    } else if ready_replicas < wanted {
        (State::True, "Starting", "the node-agent is starting".to_string())
    } else {
        (State::False, "Stable", "the node-agent runs the current spec".to_string())
    };
    let (degraded, degraded_reason, degraded_message) = if !seen.has_identity {
        (State::True, "IdentityMissing", missing_key)
    } else if was_ready && ready_replicas == 0 {
        (State::True, "AgentUnavailable", "the node-agent was ready and is not any more".to_string())
    } else {
        (State::False, "AsExpected", "nothing is wrong".to_string())
    };
    vec![
        condition(previous, "Ready", ready, ready_reason, &ready_message, seen.generation),
        condition(previous, "Progressing", progressing, progressing_reason, &progressing_message, seen.generation),
        condition(previous, "Degraded", degraded, degraded_reason, &degraded_message, seen.generation),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stateful_set(generation: i64, observed: i64, updated: i32, ready: i32) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "n", "generation": generation},
            "spec": {"replicas": 1, "selector": {}, "serviceName": "n", "template": {}},
            "status": {"replicas": 1, "observedGeneration": observed, "updatedReplicas": updated, "readyReplicas": ready}
        }))
        .unwrap()
    }

    fn get<'a>(conditions: &'a [Condition], type_: &str) -> (&'a str, &'a str) {
        let c = conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    fn seen(has_identity: bool, set: Option<&StatefulSet>) -> Observed<'_> {
        Observed { has_identity, identity_secret: "n-identity", stateful_set: set, generation: Some(1), refused: None }
    }

    #[test]
    fn a_node_starts_rolls_out_becomes_ready_and_is_degraded_when_its_agent_goes() {
        let none = node_conditions(&[], seen(true, None));
        assert_eq!(get(&none, "Progressing"), ("True", "RollingOut"));
        let starting = stateful_set(2, 2, 1, 0);
        let starting = node_conditions(&none, seen(true, Some(&starting)));
        assert_eq!(get(&starting, "Ready"), ("False", "Starting"));
        assert_eq!(get(&starting, "Progressing"), ("True", "Starting"));
        assert_eq!(get(&starting, "Degraded"), ("False", "AsExpected"), "not ready yet is not degraded");
        let ready = stateful_set(2, 2, 1, 1);
        let ready = node_conditions(&starting, seen(true, Some(&ready)));
        assert_eq!(get(&ready, "Ready"), ("True", "AgentReady"));
        assert_eq!(get(&ready, "Progressing"), ("False", "Stable"));
        let changed = stateful_set(3, 2, 1, 1);
        assert_eq!(get(&node_conditions(&ready, seen(true, Some(&changed))), "Progressing"), ("True", "RollingOut"));
        let lost = stateful_set(2, 2, 1, 0);
        let lost = node_conditions(&ready, seen(true, Some(&lost)));
        assert_eq!(get(&lost, "Degraded"), ("True", "AgentUnavailable"));
    }

    #[test]
    fn a_missing_key_is_degraded_and_blocks_progress() {
        let conditions = node_conditions(&[], seen(false, None));
        assert_eq!(get(&conditions, "Ready"), ("False", "IdentityMissing"));
        assert_eq!(get(&conditions, "Progressing"), ("False", "Blocked"));
        assert_eq!(get(&conditions, "Degraded"), ("True", "IdentityMissing"));
    }

    #[test]
    fn a_refused_spec_is_degraded_and_blocks_progress() {
        let refused = Observed { refused: Some("image x is not allowed"), ..seen(true, None) };
        let conditions = node_conditions(&[], refused);
        assert_eq!(get(&conditions, "Ready"), ("False", "NotPermitted"));
        assert_eq!(get(&conditions, "Progressing"), ("False", "Blocked"));
        assert_eq!(get(&conditions, "Degraded"), ("True", "NotPermitted"));
    }
}

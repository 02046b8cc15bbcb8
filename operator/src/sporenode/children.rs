//! What a SporeNode owns, built as plain objects (pure, tested without a cluster): the config,
//! the Services, the node-agent StatefulSet, and the default-deny egress policy for its
//! training pods. The identity and gRPC token Secrets are generated in `controller.rs` (they
//! need randomness).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Resource;
use spore_crds::SporeNode;
use spore_crds::sporenode::{ExportPolicy, ImportPolicy};

use crate::experiment::pod::{NODE_LABEL, PodSettings};

/// Ports of a node-agent.
pub const GOSSIP_PORT: i32 = 7470;
pub const GRPC_PORT: i32 = 7471;
pub const EXPLORER_PORT: i32 = 8470;
pub const METRICS_PORT: i32 = 7472;
/// Label on the node-agent's own pods.
pub const AGENT_LABEL: &str = "sporemesh.io/agent";
/// Where the agent reads the bearer token its gRPC API requires.
pub const GRPC_TOKEN_DIR: &str = "/var/run/spore/grpc";
/// The key of the token in its Secret.
pub const GRPC_TOKEN_KEY: &str = "token";

/// Names of the children of a SporeNode called `name`.
pub fn identity_secret_name(node: &SporeNode) -> String {
    node.spec
        .identity_secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-identity", node.metadata.name.as_deref().unwrap_or_default()))
}

/// The Secret holding the bearer token of the agent's gRPC API (the mirror presents it).
pub fn grpc_token_secret_name(node: &SporeNode) -> String {
    format!("{}-grpc-token", name(node))
}

fn name(node: &SporeNode) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

pub(super) fn meta(node: &SporeNode, child_name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(child_name),
        namespace: node.metadata.namespace.clone(),
        labels: Some(BTreeMap::from([(AGENT_LABEL.to_string(), name(node))])),
        owner_references: node.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// `config.toml` with the Python peer's keys.
pub fn config_map(node: &SporeNode) -> ConfigMap {
    let peers: Vec<String> = node.spec.bridge.public_peers.iter().map(|p| format!("{p:?}")).collect();
    // Public peers are not lab peers: the agent dials them as the bridge (`--public-peer`).
    let toml = format!(
        "host = \"0.0.0.0\"\nport = {}\npeer = []\npublic_peer = [{}]\ndata_dir = \"/data\"\n",
        node.spec.gossip.port,
        peers.join(", ")
    );
    ConfigMap {
        metadata: meta(node, format!("{}-config", name(node))),
        data: Some(BTreeMap::from([("config.toml".to_string(), toml)])),
        ..ConfigMap::default()
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort { name: Some(name.into()), port, ..ServicePort::default() }
}

/// The headless Service of the StatefulSet, and the gossip Service of the requested type.
pub fn services(node: &SporeNode) -> [Service; 2] {
    let selector = Some(BTreeMap::from([(AGENT_LABEL.to_string(), name(node))]));
    let headless = Service {
        metadata: meta(node, name(node)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: selector.clone(),
            ports: Some(vec![
                port("gossip", GOSSIP_PORT),
                port("grpc", GRPC_PORT),
                port("explorer", EXPLORER_PORT),
                port("metrics", METRICS_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let service_type = format!("{:?}", node.spec.gossip.service_type);
    let gossip = Service {
        metadata: meta(node, format!("{}-gossip", name(node))),
        spec: Some(ServiceSpec {
            type_: Some(service_type),
            selector,
            ports: Some(vec![ServicePort {
                name: Some("gossip".into()),
                port: i32::from(node.spec.gossip.port),
                target_port: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(GOSSIP_PORT)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    [headless, gossip]
}

/// A TCP probe of the gossip port: the agent has opened its store and listens for peers.
fn gossip_probe(period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(GOSSIP_PORT),
            host: None,
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// The node-agent: one replica, its identity Secret mounted read-only where `spore` looks
/// for it, its store on a volume claim; ready (and alive) while its gossip port accepts.
pub fn stateful_set(node: &SporeNode, settings: &PodSettings, trusted_verifiers: &[String]) -> StatefulSet {
    let labels = BTreeMap::from([(AGENT_LABEL.to_string(), name(node))]);
    let mut args = vec![
        "run".to_string(),
        "--port".into(),
        GOSSIP_PORT.to_string(),
        "--data-dir".into(),
        "/data".into(),
        "--no-bootstrap".into(),
        // Publish the Experiments of this SporeNode (the namespace is the pod's own).
        "--kubernetes-node".into(),
        name(node),
        // The API is reachable in the cluster (the mirror streams from it), so it takes a token.
        "--grpc-host".into(),
        "0.0.0.0".into(),
        "--grpc-port".into(),
        GRPC_PORT.to_string(),
        "--grpc-token-file".into(),
        format!("{GRPC_TOKEN_DIR}/{GRPC_TOKEN_KEY}"),
        // The explorer (read-only: it shows what the node would gossip anyway) and `/metrics`
        // are reached through the node's Service, inside the cluster.
        "--web-host".into(),
        "0.0.0.0".into(),
        "--web-port".into(),
        EXPLORER_PORT.to_string(),
        "--metrics-host".into(),
        "0.0.0.0".into(),
        "--metrics-port".into(),
        METRICS_PORT.to_string(),
    ];
    let (research_args, research_env) = super::research::agent_research(node);
    args.extend(research_args);
    // The agent judges disputes (and would re-run nothing at a zero rate).
    let verification = &node.spec.verification;
    let rate = if verification.enabled { verification.spot_check_rate } else { 0.0 };
    args.extend(["--spot-check-rate".into(), rate.to_string()]);
    args.extend(["--challenge-timeout".into(), verification.challenge_timeout_seconds.to_string()]);
    for verifier in trusted_verifiers {
        args.extend(["--trust-verifier".into(), verifier.clone()]);
    }
    // The agent is the lab's bridge: only these peers are public, under the SporeNode's policy.
    let bridge = &node.spec.bridge;
    for peer in &bridge.public_peers {
        args.extend(["--public-peer".into(), peer.clone()]);
    }
    if !bridge.public_peers.is_empty() {
        let export = match bridge.export {
            ExportPolicy::None => "none",
            ExportPolicy::Own => "own",
            ExportPolicy::All => "all",
        };
        let import = match bridge.import {
            ImportPolicy::All => "all",
            ImportPolicy::Frontier => "frontier",
            ImportPolicy::None => "none",
        };
        args.extend(["--export".into(), export.into(), "--import".into(), import.into()]);
        if let Some(rate) = bridge.max_messages_per_second {
            args.extend(["--public-records-per-second".into(), rate.to_string()]);
        }
    }
    let container = Container {
        name: "spore".into(),
        image: Some(node.spec.image.clone().unwrap_or_else(|| settings.image.clone())),
        command: Some(vec!["spore".into()]),
        args: Some(args),
        env: (!research_env.is_empty()).then_some(research_env),
        ports: Some(vec![
            ContainerPort { name: Some("gossip".into()), container_port: GOSSIP_PORT, ..ContainerPort::default() },
            ContainerPort { name: Some("grpc".into()), container_port: GRPC_PORT, ..ContainerPort::default() },
            ContainerPort { name: Some("explorer".into()), container_port: EXPLORER_PORT, ..ContainerPort::default() },
            ContainerPort { name: Some("metrics".into()), container_port: METRICS_PORT, ..ContainerPort::default() },
        ]),
        volume_mounts: Some(vec![
            VolumeMount { name: "data".into(), mount_path: "/data".into(), ..VolumeMount::default() },
            VolumeMount {
                name: "identity".into(),
                mount_path: "/data/identity".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "config".into(),
                mount_path: "/etc/spore".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "grpc-token".into(),
                mount_path: GRPC_TOKEN_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(k8s_openapi::api::core::v1::Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..SecurityContext::default()
        }),
        readiness_probe: Some(gossip_probe(5, 3)),
        // Opening its store can take a while on a large DAG: a minute before it counts as dead.
        liveness_probe: Some(Probe { initial_delay_seconds: Some(60), ..gossip_probe(20, 3) }),
        ..Container::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some("data".into()), ..ObjectMeta::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: node.spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(node.spec.storage.size.clone()))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    StatefulSet {
        metadata: meta(node, name(node)),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name(node)),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        fs_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    image_pull_secrets: settings.pull_secrets(),
                    service_account_name: Some(super::access::agent_account_name(node)),
                    volumes: Some(vec![
                        Volume {
                            name: "identity".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(identity_secret_name(node)),
                                default_mode: Some(0o400),
                                ..SecretVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "grpc-token".into(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(grpc_token_secret_name(node)),
                                default_mode: Some(0o400),
                                ..SecretVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: format!("{}-config", name(node)),
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// Training pods of this node may reach nothing: LLM-written code gets no network.
pub fn training_egress_policy(node: &SporeNode) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(node, format!("{}-training-no-egress", name(node))),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(NODE_LABEL.to_string(), name(node))])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![]),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_is_probed_on_its_gossip_port_and_pulls_with_the_secrets() {
        let node: SporeNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode",
            "metadata": {"name": "lab", "namespace": "lab"}, "spec": {}
        }))
        .unwrap();
        let mut settings = PodSettings::new("registry.lab/spore:1").with_training_image("registry.lab/spore-trainer:1");
        settings.image_pull_secrets = vec!["regcred".into()];
        let pod = stateful_set(&node, &settings, &[]).spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "regcred");
        let agent = &pod.containers[0];
        assert_eq!(agent.image.as_deref(), Some("registry.lab/spore:1"), "the agent image, not the trainer");
        for probe in [agent.readiness_probe.clone().unwrap(), agent.liveness_probe.clone().unwrap()] {
            let port = probe.tcp_socket.unwrap().port;
            assert_eq!(port, k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(GOSSIP_PORT));
        }
    }
}

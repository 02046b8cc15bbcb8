//! How a SporeNode's research settings reach its node-agent: with research on, the agent runs
//! its research loop, whose runs are Experiments of the SporeNode (the agent's pod has no GPU),
//! with the time budget and the runs in flight (`maxConcurrentExperiments`) as arguments and the
//! LLM in the environment — the API key as a
//! reference to the user's Secret, never copied. With research off, `--no-train`. Pure, tested
//! without a cluster.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use spore_crds::SporeNode;
use spore_crds::sporenode::{LlmProvider, Proposer};

/// The agent's name for a provider (`spore set --provider`).
fn provider_name(provider: LlmProvider) -> &'static str {
    match provider {
        LlmProvider::Groq => "groq",
        LlmProvider::Anthropic => "anthropic",
        LlmProvider::Openai => "openai",
        LlmProvider::Xai => "xai",
        LlmProvider::OpenaiCompatible => "custom",
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

/// The agent's research arguments and environment.
pub fn agent_research(node: &SporeNode) -> (Vec<String>, Vec<EnvVar>) {
    let research = &node.spec.research;
    if !research.enabled {
        return (vec!["--no-train".into()], Vec::new());
    }
    let args = vec![
        "--time-budget".into(),
        research.time_budget_seconds.to_string(),
        "--parallel".into(),
        research.max_concurrent_experiments.to_string(),
    ];
    let mut vars = Vec::new();
    if let (Proposer::Llm, Some(llm)) = (research.proposer, &research.llm) {
        vars.push(env("SPORE_LLM_PROVIDER", provider_name(llm.provider)));
        vars.push(env("SPORE_LLM_MODEL", &llm.model));
        if let Some(url) = &llm.base_url {
            vars.push(env("SPORE_LLM_BASE_URL", url));
        }
        if let Some(secret) = &llm.api_key_secret_ref {
            vars.push(EnvVar {
                name: "SPORE_LLM_API_KEY".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.name.clone(),
                        key: secret.key.clone(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            });
        }
    }
    (args, vars)
}

#[cfg(test)]
mod tests {
    use spore_crds::SporeNodeSpec;
    use spore_crds::common::SecretKeyRef;
    use spore_crds::sporenode::LlmSpec;

    use super::*;

    #[test]
    fn research_off_is_no_train() {
        let node = SporeNode::new("lab", SporeNodeSpec::default());
        assert_eq!(agent_research(&node), (vec!["--no-train".to_string()], vec![]));
    }

    #[test]
    fn research_on_passes_the_budget_and_the_llm_with_its_key_by_reference() {
        let mut spec = SporeNodeSpec::default();
        spec.research.enabled = true;
        spec.research.time_budget_seconds = 120;
        let (args, vars) = agent_research(&SporeNode::new("lab", spec.clone()));
        assert_eq!(
            (args, vars),
            (vec!["--time-budget".to_string(), "120".into(), "--parallel".into(), "1".into()], vec![])
        );

        spec.research.proposer = Proposer::Llm;
        spec.research.llm = Some(LlmSpec {
            provider: LlmProvider::OpenaiCompatible,
            model: "qwen3".into(),
            base_url: Some("http://vllm:8000/v1".into()),
            api_key_secret_ref: Some(SecretKeyRef { name: "llm".into(), key: "api-key".into() }),
        });
        let (_, vars) = agent_research(&SporeNode::new("lab", spec));
        let value = |name: &str| vars.iter().find(|v| v.name == name).and_then(|v| v.value.clone());
        assert_eq!(value("SPORE_LLM_PROVIDER").as_deref(), Some("custom"));
        assert_eq!(value("SPORE_LLM_MODEL").as_deref(), Some("qwen3"));
        assert_eq!(value("SPORE_LLM_BASE_URL").as_deref(), Some("http://vllm:8000/v1"));
        let key = vars.iter().find(|v| v.name == "SPORE_LLM_API_KEY").unwrap();
        assert_eq!(key.value, None, "the key is never copied into the StatefulSet");
        let selector = key.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((selector.name.as_str(), selector.key.as_str()), ("llm", "api-key"));
    }
}

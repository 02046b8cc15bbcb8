#![allow(clippy::unwrap_used)]
//! The five LLM providers against local servers that speak their real wire formats: the
//! request each one receives, retries on 429 and 5xx (honouring `retry-after`), no retry on a
//! rejected key, and clear errors for replies without usable text.

use std::time::Duration;

use serde_json::{Value, json};
use spore_agent::research::prompt::ProposalContext;
use spore_agent::research::proposer::ProposeError;
use spore_agent::research::proposer::config::LlmConfig;
use spore_agent::research::proposer::llm::LlmProposer;
use spore_spec::ExperimentRecord;
use spore_tests::fake_llm::{FakeLlm, Reply};

const TRAIN: &str = "from prepare import evaluate_bpb\nDEPTH = 4\nprint('val_bpb:')";

/// Every provider: (name, speaks Anthropic's Messages API).
const PROVIDERS: [(&str, bool); 5] =
    [("anthropic", true), ("openai", false), ("groq", false), ("xai", false), ("custom", false)];

fn context() -> ProposalContext {
    let parent = ExperimentRecord::from_json(
        r#"{"parent":null,"depth":0,"code_cid":"","diff":"","dataset_cid":"","prepare_cid":"","time_budget":300,
        "val_bpb":1.5,"peak_vram_mb":0.0,"num_steps":0,"num_params":0,"status":"keep","description":"baseline",
        "hypothesis":"","agent_model":"","gpu_model":"cpu","cuda_version":"","torch_version":"","node_id":"",
        "timestamp":0,"signature":"","id":"","version":1}"#,
    )
    .unwrap();
    ProposalContext {
        parent,
        parent_code: TRAIN.into(),
        improvements: vec![],
        siblings: vec![],
        branches: vec![],
        frontier: vec![],
        total_experiments: 1,
        best_val_bpb: Some(1.5),
        profile: "cpu".into(),
        time_budget: 300,
    }
}

fn answer_text() -> String {
    format!("Description: deeper model\nHypothesis: more capacity helps\n```python\n{}\n```", TRAIN.replace("4", "5"))
}

/// A successful reply in the provider's format.
fn success(anthropic: bool) -> Reply {
    if anthropic {
        Reply::json(
            200,
            json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                   "content": [{"type": "text", "text": "Description: deeper model\n"},
                               {"type": "text", "text": answer_text().trim_start_matches("Description: deeper model\n")}],
                   "stop_reason": "end_turn", "usage": {"input_tokens": 120, "output_tokens": 80}}),
        )
    } else {
        Reply::json(
            200,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_text()},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200}}),
        )
    }
}

fn error(anthropic: bool, status: u16, kind: &str, message: &str) -> Reply {
    if anthropic {
        Reply::json(status, json!({"type": "error", "error": {"type": kind, "message": message}}))
    } else {
        Reply::json(status, json!({"error": {"message": message, "type": kind, "param": null, "code": kind}}))
    }
}

fn proposer(provider: &str, fake: &FakeLlm) -> LlmProposer {
    let model = (provider == "custom").then_some("local-model");
    let config = LlmConfig::new(provider, "sk-test-0123456789abcdef", model, Some(&fake.base_url())).unwrap();
    let mut p = LlmProposer::new(config, Duration::from_secs(10)).unwrap();
    p.backoff = Duration::from_millis(20);
    p
}

#[tokio::test]
async fn every_provider_gets_its_wire_format_and_the_proposal_is_parsed() {
    for (provider, anthropic) in PROVIDERS {
        let fake = FakeLlm::start(vec![success(anthropic)]).unwrap();
        let proposal = proposer(provider, &fake).propose(&context()).await.unwrap();
        assert_eq!(proposal.description, "deeper model", "{provider}");
        assert_eq!(proposal.hypothesis, "more capacity helps", "{provider}");
        assert!(proposal.code.contains("DEPTH = 5"), "{provider}");
        let requests = fake.requests();
        assert_eq!(requests.len(), 1, "{provider}");
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("content-type"), Some("application/json"), "{provider}");
        let body: Value = request.json();
        assert_eq!(body["max_tokens"], 16384, "{provider}");
        assert_eq!(body["temperature"], 0.7, "{provider}");
        if anthropic {
            assert_eq!(request.path, "/v1/messages");
            assert_eq!(request.header("x-api-key"), Some("sk-test-0123456789abcdef"));
            assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
            assert!(body["system"].as_str().unwrap().contains("minimise val_bpb"));
            assert_eq!(body["messages"].as_array().unwrap().len(), 1);
            assert_eq!(body["messages"][0]["role"], "user");
            assert!(body["messages"][0]["content"].as_str().unwrap().contains("## Current train.py"));
        } else {
            assert_eq!(request.path, "/v1/chat/completions", "{provider}");
            assert_eq!(request.header("authorization"), Some("Bearer sk-test-0123456789abcdef"), "{provider}");
            let expected_model = match provider {
                "openai" => "gpt-4o",
                "groq" => "openai/gpt-oss-120b",
                "xai" => "grok-3",
                _ => "local-model",
            };
            assert_eq!(body["model"], expected_model);
            assert_eq!(body["messages"][0]["role"], "system");
            assert_eq!(body["messages"][1]["role"], "user");
            assert!(body["messages"][1]["content"].as_str().unwrap().contains(TRAIN), "{provider}");
        }
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    for (provider, anthropic) in PROVIDERS {
        let overloaded = if anthropic { 529 } else { 503 };
        let fake = FakeLlm::start(vec![
            error(anthropic, 429, "rate_limit_error", "slow down").with_header("retry-after", "0"),
            error(anthropic, overloaded, "overloaded_error", "Overloaded"),
            success(anthropic),
        ])
        .unwrap();
        let proposal = proposer(provider, &fake).propose(&context()).await.unwrap();
        assert!(proposal.code.contains("DEPTH = 5"), "{provider}");
        assert_eq!(fake.requests().len(), 3, "{provider}");
    }
    // Retries end: four failures in a row are an error with the provider's message.
    let fake = FakeLlm::start(vec![error(false, 429, "rate_limit_exceeded", "Rate limit reached"); 4]).unwrap();
    let err = proposer("groq", &fake).propose(&context()).await.unwrap_err();
    assert!(matches!(err, ProposeError::Http { status: 429, .. }), "{err}");
    assert!(err.to_string().contains("Rate limit reached"), "{err}");
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn a_rejected_key_is_fatal_and_not_retried() {
    for (provider, anthropic) in PROVIDERS {
        let kind = if anthropic { "authentication_error" } else { "invalid_api_key" };
        let fake = FakeLlm::start(vec![error(anthropic, 401, kind, "Incorrect API key provided")]).unwrap();
        let err = proposer(provider, &fake).propose(&context()).await.unwrap_err();
        assert!(err.is_fatal(), "{provider}: {err}");
        let text = err.to_string();
        assert!(text.contains("rejected the API key (HTTP 401)") && text.contains("Incorrect API key"), "{text}");
        assert_eq!(fake.requests().len(), 1, "{provider}");
    }
}

#[tokio::test]
async fn malformed_replies_are_clear_errors() {
    for (provider, anthropic) in PROVIDERS {
        let empty = if anthropic {
            Reply::json(200, json!({"type": "message", "content": [{"type": "tool_use", "id": "x"}]}))
        } else {
            Reply::json(200, json!({"choices": []}))
        };
        let no_code = if anthropic {
            Reply::json(200, json!({"type": "message", "content": [{"type": "text", "text": "I would add dropout."}]}))
        } else {
            Reply::json(
                200,
                json!({"choices": [{"message": {"role": "assistant", "content": "I would add dropout."}}]}),
            )
        };
        let fake = FakeLlm::start(vec![empty, Reply::raw(200, "<html>gateway</html>"), no_code]).unwrap();
        let p = proposer(provider, &fake);
        for expected in ["no text block|choices[0].message.content", "not JSON", "no ```python block"] {
            let err = p.propose(&context()).await.unwrap_err();
            assert!(matches!(err, ProposeError::Malformed(_)), "{provider}: {err}");
            assert!(expected.split('|').any(|e| err.to_string().contains(e)), "{provider}: {err}");
            assert!(!err.is_fatal());
        }
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_connection_error_after_retries() {
    let port = spore_tests::nodes::free_port().unwrap();
    let config =
        LlmConfig::new("custom", "k-0123456789abcdef", Some("m"), Some(&format!("http://127.0.0.1:{port}/v1")))
            .unwrap();
    let mut p = LlmProposer::new(config, Duration::from_secs(2)).unwrap();
    p.backoff = Duration::from_millis(10);
    let err = p.propose(&context()).await.unwrap_err();
    assert!(matches!(err, ProposeError::Connection(_)), "{err}");
}

//! The LLM proposers: Anthropic's Messages API and OpenAI-style chat completions (OpenAI, Groq,
//! xAI, any compatible endpoint), with the wire formats of the Python peer (§9 of the reference
//! facts). Unlike Python 0.1.2 it retries 429, 5xx and connection failures with exponential
//! backoff (honouring `retry-after`), and turns every failure into a clear error: a rejected key
//! says so, a reply without text says what was missing.

use std::time::Duration;

use serde_json::{Value, json};

use super::config::{DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, LlmConfig};
use super::{Proposal, ProposeError, reply};
use crate::research::prompt::{ProposalContext, system_prompt, user_prompt};

/// Attempts per proposal.
const ATTEMPTS: u32 = 4;
/// The longest `retry-after` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A client for one configured provider.
#[derive(Debug, Clone)]
pub struct LlmProposer {
    config: LlmConfig,
    base_url: String,
    anthropic: bool,
    http: reqwest::Client,
    /// First backoff delay (doubles per attempt).
    pub backoff: Duration,
}

impl LlmProposer {
    pub fn new(config: LlmConfig, timeout: Duration) -> anyhow::Result<Self> {
        let anthropic = config.provider()?.anthropic;
        let base_url = config.base_url()?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("spore/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(LlmProposer { config, base_url, anthropic, http, backoff: Duration::from_secs(1) })
    }

    pub fn agent_model(&self) -> String {
        self.config.model.clone()
    }

    fn request(&self, system: &str, prompt: &str) -> reqwest::RequestBuilder {
        let max_tokens = self.config.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        let temperature = self.config.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        if self.anthropic {
            self.http
                .post(format!("{}/messages", self.base_url))
                .header("x-api-key", &self.config.api_key)
                .header("anthropic-version", "2023-06-01")
                .json(&json!({
                    "model": self.config.model,
                    "max_tokens": max_tokens,
                    "temperature": temperature,
                    "system": system,
                    "messages": [{"role": "user", "content": prompt}],
                }))
        } else {
            self.http.post(format!("{}/chat/completions", self.base_url)).bearer_auth(&self.config.api_key).json(
                &json!({
                    "model": self.config.model,
                    "max_tokens": max_tokens,
                    "temperature": temperature,
                    "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                }),
            )
        }
    }

    /// The text of a successful reply.
    fn text_of(&self, body: &Value) -> Result<String, ProposeError> {
        if self.anthropic {
            let blocks = body["content"]
                .as_array()
                .ok_or_else(|| ProposeError::Malformed("the Anthropic reply has no `content` list".into()))?;
            let text: String =
                blocks.iter().filter(|b| b["type"] == "text").filter_map(|b| b["text"].as_str()).collect();
            if text.is_empty() {
                return Err(ProposeError::Malformed("the Anthropic reply has no text block".into()));
            }
            tracing::info!(input = %body["usage"]["input_tokens"], output = %body["usage"]["output_tokens"], "LLM usage");
            Ok(text)
        } else {
            let text = body["choices"][0]["message"]["content"].as_str().ok_or_else(|| {
                ProposeError::Malformed("the reply has no `choices[0].message.content` string".into())
            })?;
            tracing::info!(prompt = %body["usage"]["prompt_tokens"], completion = %body["usage"]["completion_tokens"], "LLM usage");
            Ok(text.to_string())
        }
    }

    /// Sends the prompts, with retries, and returns the reply's text.
    pub async fn complete(&self, system: &str, prompt: &str) -> Result<String, ProposeError> {
        let provider = self.config.provider.clone();
        let mut delay = self.backoff;
        let mut attempt = 1;
        loop {
            let outcome = self.request(system, prompt).send().await;
            let retry_after = match outcome {
                Err(e) => {
                    let error = ProposeError::Connection(format!("{provider}: {e}"));
                    if attempt >= ATTEMPTS {
                        return Err(error);
                    }
                    tracing::warn!(attempt, "{error}; retrying");
                    None
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    let body = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        let json: Value = serde_json::from_str(&body).map_err(|e| {
                            ProposeError::Malformed(format!("{provider} replied with something that is not JSON: {e}"))
                        })?;
                        return self.text_of(&json);
                    }
                    let message = error_message(&body);
                    let code = status.as_u16();
                    if code == 401 || code == 403 {
                        return Err(ProposeError::Auth(format!(
                            "{provider} rejected the API key (HTTP {code}): {message}; set another with `spore set`"
                        )));
                    }
                    let retriable = code == 429 || status.is_server_error();
                    let error = ProposeError::Http { status: code, message: format!("{provider}: {message}") };
                    if !retriable || attempt >= ATTEMPTS {
                        return Err(error);
                    }
                    tracing::warn!(attempt, "{error}; retrying");
                    retry_after
                }
            };
            tokio::time::sleep(retry_after.unwrap_or(delay)).await;
            delay *= 2;
            attempt += 1;
        }
    }

    pub async fn propose(&self, ctx: &ProposalContext) -> Result<Proposal, ProposeError> {
        let text = self.complete(&system_prompt(ctx.time_budget), &user_prompt(ctx)).await?;
        reply::parse_reply(&text)
    }
}

/// The `error.message` of an OpenAI or Anthropic error body, else the body's start.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| v["error"]["message"].as_str().or(v["message"].as_str()));
    match message {
        Some(m) => m.to_string(),
        None => body.chars().take(200).collect::<String>().trim().to_string(),
    }
}

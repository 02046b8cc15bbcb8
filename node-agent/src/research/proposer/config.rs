//! `llm.toml`: which LLM proposes experiments. The keys are the Python peer's (`provider`,
//! `api_key`, `model`, `base_url`, `max_token`, `temperature`), written with a real TOML
//! library and with mode 0600 (Python writes the key in plaintext with default permissions).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Python's defaults.
pub const DEFAULT_MAX_TOKENS: u32 = 16384;
pub const DEFAULT_TEMPERATURE: f64 = 0.7;

/// A provider and how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    pub name: &'static str,
    pub base_url: &'static str,
    pub default_model: &'static str,
    /// Anthropic's Messages API; every other provider speaks OpenAI chat completions.
    pub anthropic: bool,
}

pub const PROVIDERS: [Provider; 5] = [
    Provider {
        name: "anthropic",
        base_url: "https://api.anthropic.com/v1",
        default_model: "claude-sonnet-4-5-20250929",
        anthropic: true,
    },
    Provider { name: "openai", base_url: "https://api.openai.com/v1", default_model: "gpt-4o", anthropic: false },
    Provider {
        name: "groq",
        base_url: "https://api.groq.com/openai/v1",
        default_model: "openai/gpt-oss-120b",
        anthropic: false,
    },
    Provider { name: "xai", base_url: "https://api.x.ai/v1", default_model: "grok-3", anthropic: false },
    Provider { name: "custom", base_url: "", default_model: "", anthropic: false },
];

pub fn provider(name: &str) -> Option<Provider> {
    PROVIDERS.iter().copied().find(|p| p.name == name)
}

/// The contents of `llm.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmConfig {
    pub provider: String,
    pub api_key: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, rename = "max_token", skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

impl LlmConfig {
    /// A checked configuration; the model defaults to the provider's.
    pub fn new(
        provider_name: &str,
        api_key: &str,
        model: Option<&str>,
        base_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let Some(p) = provider(provider_name) else {
            let names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
            bail!("unknown provider {provider_name:?}; one of {}", names.join(", "));
        };
        if api_key.trim().is_empty() {
            bail!("the API key is empty");
        }
        if p.name == "custom" && base_url.is_none() {
            bail!("provider custom needs --base-url (an OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1)");
        }
        let model = model.unwrap_or(p.default_model);
        if model.is_empty() {
            bail!("provider {} needs --model", p.name);
        }
        if let Some(url) = base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("--base-url must start with http:// or https://");
        }
        Ok(LlmConfig {
            provider: p.name.into(),
            api_key: api_key.trim().into(),
            model: model.into(),
            base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
            max_tokens: None,
            temperature: None,
        })
    }

    pub fn provider(&self) -> anyhow::Result<Provider> {
        provider(&self.provider).with_context(|| format!("llm.toml names an unknown provider {:?}", self.provider))
    }

    /// The endpoint base URL (configured, else the provider's).
    pub fn base_url(&self) -> anyhow::Result<String> {
        match &self.base_url {
            Some(url) => Ok(url.trim_end_matches('/').to_string()),
            None if self.provider()?.base_url.is_empty() => bail!("provider {} needs base_url", self.provider),
            None => Ok(self.provider()?.base_url.to_string()),
        }
    }

    /// The key as shown to people: first 8 and last 4 characters.
    pub fn masked_key(&self) -> String {
        let chars: Vec<char> = self.api_key.chars().collect();
        if chars.len() <= 12 {
            return "****".into();
        }
        let head: String = chars[..8].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}...{tail}")
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("llm.toml")
}

/// Reads `<data_dir>/llm.toml`; `None` when there is none.
pub fn load(data_dir: &Path) -> anyhow::Result<Option<LlmConfig>> {
    let path = path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let config: LlmConfig =
        toml::from_str(&text).with_context(|| format!("{} is not a valid llm.toml", path.display()))?;
    config.provider()?;
    Ok(Some(config))
}

/// The LLM named by the environment (`SPORE_LLM_PROVIDER`, `SPORE_LLM_API_KEY`,
/// `SPORE_LLM_MODEL`, `SPORE_LLM_BASE_URL`): how the operator configures a SporeNode's agent,
/// the key coming from a Secret. `None` when `SPORE_LLM_PROVIDER` is unset.
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<LlmConfig>> {
    let Some(provider) = var("SPORE_LLM_PROVIDER").filter(|p| !p.is_empty()) else { return Ok(None) };
    let key = var("SPORE_LLM_API_KEY").unwrap_or_default();
    let model = var("SPORE_LLM_MODEL").filter(|m| !m.is_empty());
    let base_url = var("SPORE_LLM_BASE_URL").filter(|u| !u.is_empty());
    LlmConfig::new(&provider, &key, model.as_deref(), base_url.as_deref())
        .map(Some)
        .context("the LLM named by SPORE_LLM_PROVIDER")
}

/// Writes `<data_dir>/llm.toml` readable by the owner only.
pub fn save(data_dir: &Path, config: &LlmConfig) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(data_dir)?;
    let path = path(data_dir);
    let tmp = data_dir.join(".llm.toml.tmp");
    let text = toml::to_string(config)?;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_environment_names_an_llm_or_none() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(from_env(env(&[])).unwrap(), None);
        let groq = from_env(env(&[("SPORE_LLM_PROVIDER", "groq"), ("SPORE_LLM_API_KEY", "gsk-1")])).unwrap().unwrap();
        assert_eq!((groq.model.as_str(), groq.api_key.as_str()), ("openai/gpt-oss-120b", "gsk-1"));
        let custom = env(&[
            ("SPORE_LLM_PROVIDER", "custom"),
            ("SPORE_LLM_API_KEY", "k"),
            ("SPORE_LLM_MODEL", "qwen"),
            ("SPORE_LLM_BASE_URL", "http://127.0.0.1:11434/v1/"),
        ]);
        assert_eq!(from_env(custom).unwrap().unwrap().base_url().unwrap(), "http://127.0.0.1:11434/v1");
        let no_key = from_env(env(&[("SPORE_LLM_PROVIDER", "openai")])).unwrap_err();
        assert!(format!("{no_key:#}").contains("the API key is empty"), "{no_key:#}");
    }

    #[test]
    fn round_trips_with_python_keys_and_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LlmConfig::new("groq", "gsk_0123456789abcdef", None, None).unwrap();
        config.temperature = Some(0.2);
        save(dir.path(), &config).unwrap();
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.contains("provider = \"groq\"") && text.contains("model = \"openai/gpt-oss-120b\""), "{text}");
        assert!(text.contains("temperature = 0.2") && !text.contains("max_token"), "{text}");
        let mode = std::fs::metadata(path(dir.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(dir.path()).unwrap(), Some(config.clone()));
        assert_eq!(config.masked_key(), "gsk_0123...cdef");
    }

    #[test]
    fn refuses_bad_settings_with_reasons() {
        assert!(LlmConfig::new("nope", "k", None, None).unwrap_err().to_string().contains("unknown provider"));
        assert!(LlmConfig::new("custom", "k", Some("m"), None).unwrap_err().to_string().contains("--base-url"));
        assert!(LlmConfig::new("custom", "k", None, Some("http://x")).unwrap_err().to_string().contains("--model"));
        assert!(LlmConfig::new("openai", " ", None, None).is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "provider = [").unwrap();
        assert!(load(dir.path()).is_err());
        assert_eq!(load(tempfile::tempdir().unwrap().path()).unwrap(), None);
    }
}

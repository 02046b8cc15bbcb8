//! `spore set [PROVIDER API_KEY] [--model M] [--base-url URL]`: configure the LLM that proposes
//! experiments (`<data_dir>/llm.toml`, mode 0600). Without arguments it shows the configuration
//! (key masked) or the providers. `spore set --clear` goes back to the built-in mutator.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use spore_agent::research::proposer::config::{self, LlmConfig, PROVIDERS};

use super::DataDir;

#[derive(Debug, Args)]
pub struct SetArgs {
    /// anthropic, openai, groq, xai or custom.
    provider: Option<String>,
    api_key: Option<String>,
    #[arg(short = 'm', long)]
    model: Option<String>,
    /// An OpenAI-compatible endpoint (required for `custom`).
    #[arg(long)]
    base_url: Option<String>,
    /// Remove the LLM configuration (use the built-in mutator).
    #[arg(long, conflicts_with_all = ["provider", "api_key"])]
    clear: bool,
    #[command(flatten)]
    data_dir: DataDir,
}

pub fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.data_dir.data_dir;
    if args.clear {
        match std::fs::remove_file(config::path(dir)) {
            Ok(()) => println!("LLM configuration removed; proposals come from the built-in mutator"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("no LLM was configured"),
            Err(e) => return Err(e.into()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    match (args.provider, args.api_key) {
        (None, None) => {
            match config::load(dir)? {
                Some(c) => {
                    println!("provider: {}\nmodel:    {}\napi_key:  {}", c.provider, c.model, c.masked_key());
                    if let Some(url) = &c.base_url {
                        println!("base_url: {url}");
                    }
                }
                None => {
                    println!("No LLM configured: proposals come from the built-in mutator.\n");
                    println!("{:<10} {:<34} default model", "provider", "endpoint");
                    for p in PROVIDERS {
                        let base = if p.base_url.is_empty() { "--base-url URL" } else { p.base_url };
                        let model = if p.default_model.is_empty() { "--model M" } else { p.default_model };
                        println!("{:<10} {base:<34} {model}", p.name);
                    }
                    println!("\nspore set PROVIDER API_KEY [--model M] [--base-url URL]");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        (Some(provider), Some(key)) => {
            let c = LlmConfig::new(&provider, &key, args.model.as_deref(), args.base_url.as_deref())?;
            config::save(dir, &c)?;
            println!(
                "saved {} (model {}, key {}) to {}",
                c.provider,
                c.model,
                c.masked_key(),
                config::path(dir).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!("give the API key after the provider"),
    }
}

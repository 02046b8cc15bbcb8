//! `spore-eval`: `bpb` measures an exported model, `probe` describes the machine. Both print
//! one JSON object on stdout; failures print `spore-eval: <reason>` on stderr and exit 1 (2 for
//! usage errors).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spore_eval::EvalError;
use spore_eval::bpb::{EvalPlan, Layout, TokenBytes, evaluate, load_model};
use spore_eval::causal::Dice;
use tch::Device;

#[derive(Debug, Parser)]
#[command(name = "spore-eval", version, about = "Spore's trusted evaluator (libtorch)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bits per byte of an exported TorchScript model on the pinned validation tokens.
    Bpb(Box<BpbArgs>),
    /// The machine: torch and CUDA versions, the GPU, its class.
    Probe,
}

#[derive(Debug, clap::Args)]
struct BpbArgs {
    /// The model `train.py` exported.
    #[arg(long)]
    model: PathBuf,
    /// `val.bin` of the prepared data, or `-` to read it from standard input.
    #[arg(long)]
    val: PathBuf,
    /// Refuse the data unless its SHA-256 is this (the manifest's `val_sha256`).
    #[arg(long)]
    val_sha256: Option<String>,
    #[arg(long)]
    seq_len: i64,
    #[arg(long)]
    eval_tokens: i64,
    #[arg(long, default_value_t = 257)]
    vocab_size: i64,
    #[arg(long, default_value_t = 256)]
    bos: i64,
    #[arg(long, default_value_t = 16)]
    batch_size: i64,
    /// `stream` (rows cut from one token stream) or `rows` (packed rows of seq-len + 1).
    #[arg(long, default_value = "stream")]
    layout: String,
    /// The tokenizer's token-byte table (u16 little-endian per token id); without it every
    /// token but BOS is one byte.
    #[arg(long)]
    token_bytes: Option<PathBuf>,
    /// Refuse the table unless its SHA-256 is this.
    #[arg(long)]
    token_bytes_sha256: Option<String>,
    /// `auto` (CUDA when available), `cpu` or `cuda`.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Refuse a model file larger than this.
    #[arg(long, default_value_t = 8 << 30)]
    max_model_bytes: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spore-eval: {e}");
            ExitCode::from(if matches!(e, EvalError::Usage(_)) { 2 } else { 1 })
        }
    }
}

fn run(command: Command) -> Result<String, EvalError> {
    let json = |value: serde_json::Result<String>| value.map_err(|e| EvalError::Torch(format!("serialising: {e}")));
    match command {
        Command::Probe => json(serde_json::to_string(&spore_eval::probe::probe())),
        Command::Bpb(args) => {
            let BpbArgs {
                model,
                val,
                val_sha256,
                seq_len,
                eval_tokens,
                vocab_size,
                bos,
                batch_size,
                layout,
                token_bytes,
                token_bytes_sha256,
                device,
                max_model_bytes,
            } = *args;
            let layout = match layout.as_str() {
                "stream" => Layout::Stream,
                "rows" => Layout::Rows,
                other => return Err(EvalError::Usage(format!("--layout {other:?}: expected stream or rows"))),
            };
            let token_bytes = match token_bytes {
                Some(path) => TokenBytes::Table(spore_eval::tokens::read_token_bytes(
                    &path,
                    token_bytes_sha256.as_deref(),
                    vocab_size,
                )?),
                None => TokenBytes::ByteLevel,
            };
            let device = match device.as_str() {
                "auto" => Device::cuda_if_available(),
                "cpu" => Device::Cpu,
                "cuda" if tch::Cuda::is_available() => Device::Cuda(0),
                "cuda" => return Err(EvalError::Usage("--device cuda, but CUDA is not available".into())),
                other => return Err(EvalError::Usage(format!("--device {other:?}: expected auto, cpu or cuda"))),
            };
            let plan = EvalPlan { seq_len, eval_tokens, vocab_size, bos, batch_size, layout, token_bytes };
            let tokens = spore_eval::tokens::read_tokens(&val, val_sha256.as_deref(), vocab_size)?;
            let module = load_model(&model, device, max_model_bytes)?;
            json(serde_json::to_string(&evaluate(&module, &tokens, &plan, device, &mut Dice::new())?))
        }
    }
}

//! `spore-eval`: `bpb` measures an exported model, `probe` describes the machine. Both print
//! one JSON object on stdout; failures print `spore-eval: <reason>` on stderr and exit 1 (2 for
//! usage errors).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spore_eval::EvalError;
use spore_eval::bpb::{EvalPlan, evaluate, load_model};
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
    Bpb {
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
        /// `auto` (CUDA when available), `cpu` or `cuda`.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Refuse a model file larger than this.
        #[arg(long, default_value_t = 8 << 30)]
        max_model_bytes: u64,
    },
    /// The machine: torch and CUDA versions, the GPU, its class.
    Probe,
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
        Command::Bpb {
            model,
            val,
            val_sha256,
            seq_len,
            eval_tokens,
            vocab_size,
            bos,
            batch_size,
            device,
            max_model_bytes,
        } => {
            let device = match device.as_str() {
                "auto" => Device::cuda_if_available(),
                "cpu" => Device::Cpu,
                "cuda" if tch::Cuda::is_available() => Device::Cuda(0),
                "cuda" => return Err(EvalError::Usage("--device cuda, but CUDA is not available".into())),
                other => return Err(EvalError::Usage(format!("--device {other:?}: expected auto, cpu or cuda"))),
            };
            let plan = EvalPlan { seq_len, eval_tokens, vocab_size, bos, batch_size };
            let tokens = spore_eval::tokens::read_tokens(&val, val_sha256.as_deref(), vocab_size)?;
            let module = load_model(&model, device, max_model_bytes)?;
            json(serde_json::to_string(&evaluate(&module, &tokens, &plan, device, &mut Dice::new())?))
        }
    }
}

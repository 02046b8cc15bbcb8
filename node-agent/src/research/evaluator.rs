//! The node's side of trusted evaluation: runs `spore-eval` (the libtorch evaluator, its own
//! binary so that a model that crashes libtorch cannot take the node down) on the model that
//! `train.py` exported, and probes the machine with it.
//!
//! The validation split is read here, checked against the manifest's SHA-256, and piped into the
//! evaluator, which runs in a [`Jail`] that shows it only its own program, its libraries and the
//! model: the model being judged executes inside the evaluator and must find nothing to read,
//! the split least of all.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::jail::Jail;
use super::workspace::Machine;

/// What `prepare.py` pins for the profile that runs (its `eval` block).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct EvalPlan {
    pub profile: String,
    pub seq_len: i64,
    pub eval_tokens: i64,
    pub vocab_size: i64,
    pub bos: i64,
    pub val_path: PathBuf,
    pub val_sha256: String,
    /// The directory of all validation splits: hidden from training and from the model.
    pub val_root: PathBuf,
    /// The training data: read-only for the training process.
    pub train_dir: PathBuf,
    /// `python-stdlib` or `climbmix` (absent from a `prepare.py` that knew only the first).
    #[serde(default = "default_dataset")]
    pub dataset: String,
    /// `stream` or `rows` (packed rows of `seq_len + 1`).
    #[serde(default = "default_layout")]
    pub layout: String,
    /// The tokenizer's token-byte table; absent for a byte-level vocabulary.
    #[serde(default)]
    pub token_bytes_path: Option<PathBuf>,
    #[serde(default)]
    pub token_bytes_sha256: Option<String>,
}

fn default_dataset() -> String {
    "python-stdlib".into()
}

fn default_layout() -> String {
    "stream".into()
}

impl EvalPlan {
    /// The environment that lets the harness find the training data from inside a jail (where
    /// `$HOME` is a private `/tmp`): the cache root the plan's data lives under.
    pub fn data_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("SPORE_DATASET".into(), self.dataset.clone()),
            ("SPORE_DATA_DIR".into(), self.train_dir.display().to_string()),
        ];
        if let Some(root) = self.train_dir.parent() {
            env.push(("SPORE_DATA_CACHE".into(), root.display().to_string()));
        }
        env
    }
}

/// The evaluator's measurement.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Evaluation {
    pub val_bpb: f64,
    pub bytes: i64,
    pub rows: i64,
    pub seconds: f64,
    pub device: String,
}

/// How to run `spore-eval`.
#[derive(Debug, Clone)]
pub struct Evaluator {
    pub program: PathBuf,
    pub plan: EvalPlan,
    /// Where it runs (its program and the model are added); `None` only where no jail can be
    /// built, and then the caller deletes the split before the model is loaded.
    pub jail: Option<Jail>,
    pub timeout: Duration,
}

/// `spore-eval` as given, else from `SPORE_EVAL`, else beside this executable, else on `PATH`.
pub fn find_program(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    if let Some(path) = std::env::var_os("SPORE_EVAL").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("spore-eval")));
    match beside {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from("spore-eval"),
    }
}

/// Output of a finished `spore-eval`: the JSON line, or the reason it gave.
fn result_of(output: std::process::Output) -> Result<String, String> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
    let reason = reason.strip_prefix("spore-eval: ").unwrap_or(reason);
    Err(match output.status.code() {
        Some(code) => format!("{reason} (exit {code})"),
        None => format!("{reason} (killed by a signal: the model crashed libtorch?)"),
    })
}

/// The machine as the evaluator's probe sees it.
pub fn probe(program: &Path) -> anyhow::Result<Machine> {
    let output = std::process::Command::new(program).arg("probe").stdin(Stdio::null()).output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run the evaluator {}: {e} (build it with `cargo build -p spore-eval`, as scripts/research.sh does, or pass --evaluator)",
            program.display()
        )
    })?;
    let json = result_of(output).map_err(|e| anyhow::anyhow!("{} probe failed: {e}", program.display()))?;
    serde_json::from_str(&json).map_err(|e| anyhow::anyhow!("{} probe printed {json:?}: {e}", program.display()))
}

impl Evaluator {
    /// Reads the validation split (the plan's file).
    pub async fn read_split(&self) -> Result<Vec<u8>, String> {
        tokio::fs::read(&self.plan.val_path)
            .await
            .map_err(|e| format!("cannot read the validation split {}: {e}", self.plan.val_path.display()))
    }

    /// Measures the model at `model`.
    pub async fn evaluate(&self, model: &Path) -> Result<Evaluation, String> {
        let val = self.read_split().await?;
        self.evaluate_split(model, val).await
    }

    /// Measures the model at `model` on `val`, the split's bytes read earlier (a caller that
    /// cannot sandboxes the evaluator deletes the file in between, so the model finds nothing).
    pub async fn evaluate_split(&self, model: &Path, val: Vec<u8>) -> Result<Evaluation, String> {
        let digest = hex::encode(Sha256::digest(&val));
        if digest != self.plan.val_sha256 {
            return Err(format!(
                "the validation split {} changed: SHA-256 {digest}, the manifest says {}",
                self.plan.val_path.display(),
                self.plan.val_sha256
            ));
        }
        let (mut command, _jail_run) = match &self.jail {
            Some(jail) => {
                let mut jail = jail.clone();
                let program = std::fs::canonicalize(&self.program)
                    .map_err(|e| format!("cannot find the evaluator {}: {e}", self.program.display()))?;
                let model = std::path::absolute(model).map_err(|e| format!("model path: {e}"))?;
                jail.read_only.extend([program.clone(), model.clone()]);
                jail.read_only.extend(self.plan.token_bytes_path.clone());
                let (mut command, run) = jail.command(&program, Path::new("/"))?;
                if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
                    command.env("LD_LIBRARY_PATH", paths);
                }
                (command, Some(run))
            }
            None => (tokio::process::Command::new(&self.program), None),
        };
        command
            .arg("bpb")
            .arg("--model")
            .arg(model)
            .args(["--val", "-", "--val-sha256", &self.plan.val_sha256])
            .args(["--seq-len", &self.plan.seq_len.to_string()])
            .args(["--eval-tokens", &self.plan.eval_tokens.to_string()])
            .args(["--vocab-size", &self.plan.vocab_size.to_string()])
            .args(["--bos", &self.plan.bos.to_string()])
            .args(["--layout", &self.plan.layout]);
        if let Some(path) = &self.plan.token_bytes_path {
            command.arg("--token-bytes").arg(path);
        }
        if let Some(digest) = &self.plan.token_bytes_sha256 {
            command.args(["--token-bytes-sha256", digest]);
        }
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child =
            command.spawn().map_err(|e| format!("cannot start the evaluator {}: {e}", self.program.display()))?;
        let mut stdin = child.stdin.take().ok_or("the evaluator has no standard input")?;
        let run = async move {
            // A failed write means the evaluator exited early; its own message says why.
            let _ = stdin.write_all(&val).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| format!("the evaluator gave no result within {} s", self.timeout.as_secs()))?
            .map_err(|e| format!("waiting for the evaluator: {e}"))?;
        let json = result_of(output)?;
        let evaluation: Evaluation =
            serde_json::from_str(&json).map_err(|e| format!("the evaluator printed {json:?}: {e}"))?;
        if !(evaluation.val_bpb.is_finite() && evaluation.val_bpb > 0.0) {
            return Err(format!("the evaluator measured val_bpb {}", evaluation.val_bpb));
        }
        Ok(evaluation)
    }
}

//! `spore exec`: the entrypoint of a training pod. Runs the candidate `train.py` (from
//! `--code-dir`, read-only) with the harness built into `spore` (or `--harness-dir`) under the
//! deadline, through the same runner as `spore run`, and writes the result to the termination
//! message, where the operator reads it: the metrics as JSON on success (exit 0), the reason
//! and the log's tail on failure (exit 1). Kubernetes keeps at most 4,096 bytes of it.
//!
//! `--phase all` (default) trains and measures in one process, `train.py` and the evaluator in
//! the jail; where the jail cannot be built it refuses, unless `--unsandboxed`. A pod usually
//! cannot create user namespaces, so the operator splits the work and the pod is the boundary:
//! `--phase train` (an init container, run `--unsandboxed`) prepares the data, deletes the
//! validation split before `train.py` starts, and leaves the exported model and the summary in
//! `<work-dir>/out/` (in a pod, a volume of its own that the evaluation step mounts read-only,
//! seeing nothing else the training step wrote); `--phase evaluate` (the pod's container, the
//! only one that mounts the validation volume) writes the built-in harness afresh where the
//! training step could not (`--eval-harness-dir`), prepares the split with it, reads it, deletes
//! it unless the evaluator can be jailed, and has `spore-eval` measure the model: nothing the
//! training step wrote runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use spore_agent::research::evaluator::Evaluator;
use spore_agent::research::executor::{Executor, RunAbout, RunSpec};
use spore_agent::research::jail;
use spore_agent::research::local::{LocalExecutor, MODEL_FILE, Measure};
use spore_agent::research::summary::Summary;
use spore_agent::research::workspace::{self, Workspace};

use super::jail::JailArgs;
use super::metric::MetricArgs;

/// Kubernetes's limit on a termination message.
const MAX_MESSAGE: usize = 4096;

/// Which part of an experiment this invocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Train and measure.
    All,
    /// Train without the validation split; leave the model and summary in `<work-dir>/out/`.
    Train,
    /// Measure the model a `train` phase left.
    Evaluate,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Seconds of training.
    #[arg(long)]
    budget_seconds: u64,
    /// Directory holding the candidate `train.py` (phases `all` and `train`).
    #[arg(long)]
    code_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Phase::All)]
    phase: Phase,
    /// Writable scratch directory for the run.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    work_dir: PathBuf,
    /// Directory with the harness (`prepare.py`, …); default: the files built into spore.
    #[arg(long)]
    harness_dir: Option<PathBuf>,
    /// Phase `evaluate`: where the harness built into spore is written afresh (emptied first)
    /// and run from; give a directory the training step cannot write (default: a new directory
    /// under $TMPDIR). Never the scratch volume: a candidate could have planted modules there.
    #[arg(long)]
    eval_harness_dir: Option<PathBuf>,
    /// Python interpreter with torch.
    #[arg(long, env = "SPORE_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Percent of the device to use.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    resource: u8,
    /// Seconds allowed beyond the budget (start-up, evaluation); keep it below the pod's own
    /// deadline margin so this wrapper, not the kubelet, reports the timeout.
    #[arg(long, default_value_t = 100)]
    margin_seconds: u64,
    /// Where the result goes.
    #[arg(long, default_value = "/dev/termination-log")]
    termination_log: PathBuf,
    #[command(flatten)]
    metric: MetricArgs,
    #[command(flatten)]
    jail: JailArgs,
}

fn truncated(text: &str) -> &str {
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    // The end of the log says the most; cut at a character boundary.
    let mut start = text.len() - MAX_MESSAGE;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs the candidate; any failure of the wrapper itself (no code, no interpreter, no scratch
/// space) also goes to the termination message, so the Experiment says why.
pub fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let termination_log = args.termination_log.clone();
    match run(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            let message = format!("spore exec: {e:#}");
            std::fs::write(&termination_log, truncated(&message))
                .with_context(|| format!("write {}", termination_log.display()))?;
            Err(e)
        }
    }
}

/// Deletes a directory when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The evaluate phase's harness: the built-in files, written into a directory emptied first, so
/// nothing the training step wrote is beside `prepare.py` when it runs.
fn fresh_harness(args: &ExecArgs) -> anyhow::Result<PathBuf> {
    let dir = match &args.eval_harness_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("spore-eval-harness-{}", std::process::id())),
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("empty {}", dir.display()))?;
    }
    workspace::materialize(&dir)?;
    Ok(dir)
}

fn harness(args: &ExecArgs) -> anyhow::Result<PathBuf> {
    match &args.harness_dir {
        Some(dir) => Ok(dir.clone()),
        None => {
            let dir = args.work_dir.join("harness");
            workspace::materialize(&dir)?;
            Ok(dir)
        }
    }
}

/// The JSON the operator reads: the metric (absent after the train phase), the summary, and
/// where it ran (the record the node-agent publishes carries it).
fn metrics_message(val_bpb: Option<f64>, s: &Summary, workspace: &Workspace) -> String {
    let machine = &workspace.machine;
    let mut message = serde_json::json!({
        "num_steps": s.num_steps,
        "num_params": s.num_params,
        "peak_vram_mb": s.peak_vram_mb,
        "training_seconds": s.training_seconds,
        "gpu_model": machine.gpu_model,
        "cuda_version": machine.cuda_version,
        "torch_version": machine.torch_version,
        "dataset_cid": workspace.dataset_cid,
        "prepare_cid": workspace.prepare_cid,
    });
    if let Some(val_bpb) = val_bpb {
        message["val_bpb"] = serde_json::json!(val_bpb);
    }
    message.to_string()
}

fn finish(args: &ExecArgs, message: &str, code: ExitCode) -> anyhow::Result<ExitCode> {
    std::fs::write(&args.termination_log, truncated(message))
        .with_context(|| format!("write {}", args.termination_log.display()))?;
    Ok(code)
}

fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    match args.phase {
        Phase::Evaluate => evaluate(args),
        Phase::All | Phase::Train => train(args),
    }
}

fn train(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let code_dir = args.code_dir.as_ref().context("--code-dir is required to train")?;
    let code_path = code_dir.join("train.py");
    let code = std::fs::read_to_string(&code_path).with_context(|| format!("read {}", code_path.display()))?;
    let harness = harness(&args)?;
    let margin = Duration::from_secs(args.margin_seconds);
    // The data (and the evaluation plan) are prepared here, before the candidate runs.
    let program = args.metric.program().filter(|_| args.phase != Phase::Train);
    let prepared = Workspace::prepare(&harness, &args.python, program.as_deref())?;
    let train_data = prepared.eval.iter().map(|plan| plan.train_dir.clone()).collect();
    let (python, jail) = args.jail.training_jail(&args.python, &[harness.as_path()], train_data)?;
    let measure = match (args.phase, program) {
        // The split the candidate must not have is gone before it starts.
        (Phase::Train, _) => {
            let plan = prepared.eval.as_ref().context("the harness's prepare.py printed no evaluation plan")?;
            // (Absent where the step never saw it: a data volume whose validation part only the
            // evaluation step mounts.)
            match std::fs::remove_dir_all(&plan.val_root) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("remove the validation split {}", plan.val_root.display()));
                }
                _ => {}
            }
            Measure::ExportOnly
        }
        (_, Some(_)) => args.metric.measure(&prepared, margin, jail.clone())?,
        (_, None) => Measure::Reported,
    };
    let executor = LocalExecutor {
        python,
        workspace: harness,
        runs_dir: args.work_dir.join("run"),
        margin,
        env: prepared.eval.as_ref().map(|plan| plan.data_env()).unwrap_or_default(),
        show_progress: false,
        measure,
        jail,
    };
    let spec = RunSpec {
        label: "train".into(),
        code,
        time_budget: args.budget_seconds,
        resource: args.resource,
        about: RunAbout::default(),
    };
    let outcome = tokio::runtime::Runtime::new()?.block_on(executor.run(&spec))?;
    // The pod's log shows the whole run.
    if let Ok(log) = std::fs::read_to_string(&outcome.log) {
        eprint!("{log}");
    }
    let summary = match (&outcome.error, outcome.summary) {
        (None, Some(summary)) => summary,
        _ => return finish(&args, &outcome.error.unwrap_or_else(|| "the run failed".into()), ExitCode::from(1)),
    };
    if args.phase == Phase::Train {
        let out = args.work_dir.join("out");
        std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
        let model = args.work_dir.join("run").join("train").join(MODEL_FILE);
        // `out` may be a volume of its own (a pod's): a rename cannot cross into it.
        std::fs::rename(&model, out.join(MODEL_FILE))
            .or_else(|_| std::fs::copy(&model, out.join(MODEL_FILE)).and_then(|_| std::fs::remove_file(&model)))
            .with_context(|| format!("move {}", model.display()))?;
        std::fs::write(out.join("summary.json"), serde_json::to_vec(&summary)?).context("write the summary")?;
        return finish(&args, &metrics_message(None, &summary, &prepared), ExitCode::SUCCESS);
    }
    match outcome.val_bpb {
        Some(val_bpb) if outcome.success() => {
            finish(&args, &metrics_message(Some(val_bpb), &summary, &prepared), ExitCode::SUCCESS)
        }
        _ => finish(&args, "the run gave no metric", ExitCode::from(1)),
    }
}

fn evaluate(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let Some(program) = args.metric.program() else {
        bail!("--phase evaluate measures with the evaluator; --metric reported has nothing to do");
    };
    let out = args.work_dir.join("out");
    let summary: Summary = std::fs::read(out.join("summary.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .with_context(|| format!("the training step left no summary in {}", out.display()))?;
    let harness_dir = fresh_harness(&args)?;
    // One made under $TMPDIR (no --eval-harness-dir) goes when this step ends, whatever happens.
    let _made_here = args.eval_harness_dir.is_none().then(|| RemoveOnDrop(harness_dir.clone()));
    let prepared = Workspace::prepare(&harness_dir, &args.python, Some(&program))?;
    let plan = prepared.eval.clone().context("the harness's prepare.py printed no evaluation plan")?;
    // The evaluator is trusted; the model it loads is not: jailed where possible, else (a pod)
    // with the split deleted before the model is loaded.
    let jail = match args.jail.unsandboxed || jail::check().is_err() {
        true => None,
        false => args.jail.training_jail(&args.python, &[], Vec::new())?.1,
    };
    let jailed = jail.is_some();
    let evaluator = Evaluator { program, plan, jail, timeout: Duration::from_secs(args.margin_seconds) };
    let runtime = tokio::runtime::Runtime::new()?;
    let split = runtime.block_on(evaluator.read_split()).map_err(anyhow::Error::msg)?;
    if !jailed {
        // The model runs inside the evaluator: without a sandbox, it must find no split to read.
        std::fs::remove_dir_all(&evaluator.plan.val_root)
            .with_context(|| format!("remove {}", evaluator.plan.val_root.display()))?;
    }
    match runtime.block_on(evaluator.evaluate_split(&out.join(MODEL_FILE), split)) {
        Ok(evaluation) => {
            eprintln!(
                "[spore] evaluator: val_bpb {:.6} ({} bytes, {:.1} s)",
                evaluation.val_bpb, evaluation.bytes, evaluation.seconds
            );
            finish(&args, &metrics_message(Some(evaluation.val_bpb), &summary, &prepared), ExitCode::SUCCESS)
        }
        Err(e) => finish(&args, &format!("evaluation: {e}"), ExitCode::from(1)),
    }
}

//! The workspace: the harness (`prepare.py`, `batching.py`) and the baseline `train.py`.
//!
//! The files of the repository's `workspace/` are embedded in the binary, so `spore run` works
//! from any directory: on first use they are written to `<data_dir>/workspace/` (existing files
//! are kept: a researcher may bring their own `train.py`). `prepare.py` is run once to prepare
//! the data; it prints a manifest whose `dataset_cid` goes into every record, as does the
//! SHA-256 of `prepare.py` (`prepare_cid`), and an `eval` block: what the trusted evaluator
//! measures. The machine is described by the evaluator's probe (libtorch + `nvidia-smi`), or by
//! the interpreter when the node runs on self-reported metrics.
//!
//! A workspace may also follow only the seed's contract (sporemesh 0.1.2, autoresearch): a
//! `prepare.py` that prepares the data and prints what it likes, a `train.py` that prints the
//! summary block. Nothing is written into such a directory; its records carry Python's dataset
//! name ([`SEED_DATASET`]) and the SHA-256 of its `prepare.py`, as a Python node's do, so nodes
//! of either kind running the same workspace build on each other. No evaluator can measure it:
//! its runs carry the `val_bpb` that `train.py` prints ([`Contract::Seed`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::artifacts::cid_of;
use super::evaluator::EvalPlan;

/// The embedded workspace files.
pub const FILES: [(&str, &str); 5] = [
    ("prepare.py", include_str!("../../../workspace/prepare.py")),
    ("climbmix.py", include_str!("../../../workspace/climbmix.py")),
    ("batching.py", include_str!("../../../workspace/batching.py")),
    ("train.py", include_str!("../../../workspace/train.py")),
    ("requirements.txt", include_str!("../../../workspace/requirements.txt")),
];

/// The dataset name the seed's records carry (sporemesh 0.1.2's constant).
pub const SEED_DATASET: &str = "climbmix-400b-shuffle";

/// The dataset `prepare.py` prepares unless told: autoresearch's climbmix where training runs on
/// a GPU, the offline Python standard library on a CPU.
pub fn default_dataset(profile: &str) -> &'static str {
    if profile == "gpu" { "climbmix" } else { "python-stdlib" }
}

/// Which contract a workspace follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// Ours: `prepare.py` prints a data manifest (and the evaluation plan).
    Spore,
    /// The seed's: `prepare.py` prints no manifest; runs are measured by what `train.py` prints.
    Seed,
}

/// A prepared workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub dir: PathBuf,
    /// SHA-256 of `prepare.py`.
    pub prepare_cid: String,
    /// From the data manifest `prepare.py` prints.
    pub dataset_cid: String,
    pub machine: Machine,
    /// What the evaluator measures (absent from a `prepare.py` older than the evaluator).
    pub eval: Option<EvalPlan>,
    pub contract: Contract,
}

/// What the probe reports about this machine.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Machine {
    pub torch_version: String,
    pub cuda_version: String,
    /// The CUDA device name with spaces as `_` (as Python records it), or `cpu`.
    pub gpu_model: String,
    /// [`spore_spec::gpu_class`] of `gpu_model`.
    #[serde(default)]
    pub gpu_class: String,
    /// `gpu` or `cpu`: which hyperparameter block of `train.py` runs.
    pub profile: String,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    dataset_cid: String,
    eval: Option<EvalPlan>,
}

const PROBE: &str = "import json, torch\n\
cuda = torch.cuda.is_available()\n\
print(json.dumps({'torch_version': torch.__version__, 'cuda_version': (torch.version.cuda if cuda else None) or 'none',\n\
  'gpu_model': torch.cuda.get_device_name(0).replace(' ', '_') if cuda else 'cpu',\n\
  'profile': 'gpu' if cuda else 'cpu'}))\n";

/// Writes the embedded files that `dir` does not have yet — unless it holds a `prepare.py` of
/// its own (another harness: nothing of ours belongs beside it).
pub fn materialize(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    if foreign_harness(dir) {
        return Ok(());
    }
    for (name, text) in FILES {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(())
}

/// `dir` has a `prepare.py` that is not the one built into spore.
fn foreign_harness(dir: &Path) -> bool {
    std::fs::read(dir.join("prepare.py")).is_ok_and(|ours| ours != FILES[0].1.as_bytes())
}

/// Runs `python <args>` in `dir` with `env` and returns its stdout; a failure carries the stderr
/// tail.
fn python_output(python: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut command = std::process::Command::new(python);
    command.envs(env.iter().copied());
    let output = command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} (set --python to an interpreter with torch)", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{} {} failed ({}):\n{}", python.display(), args.join(" "), output.status, tail.join("\n"));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs the built-in `prepare.py` for `profile` and `dataset` in a directory of its own (written
/// from the files built into spore, removed after) and returns the manifest it prints: data
/// prepared once, for nodes and pods that find it ready (`spore data prepare`).
pub fn prepare_data(python: &Path, profile: &str, dataset: &str) -> anyhow::Result<serde_json::Value> {
    let dir = std::env::temp_dir().join(format!("spore-prepare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    materialize(&dir)?;
    let env = [("SPORE_PROFILE", profile), ("SPORE_DATASET", dataset)];
    let output = python_output(python, &dir, &["prepare.py"], &env);
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&output?).context("prepare.py printed no manifest")
}

impl Workspace {
    /// Materializes `dir`, probes the machine (with `evaluator`'s probe when given, else the
    /// interpreter) and prepares the data of the dataset `prepare.py` picks (`SPORE_DATASET`, else
    /// by profile). With an evaluator, `prepare.py` must print the evaluation plan.
    pub fn prepare(dir: &Path, python: &Path, evaluator: Option<&Path>) -> anyhow::Result<Workspace> {
        Workspace::prepare_with(dir, python, evaluator, None, |_| Ok(()))
    }

    /// [`Workspace::prepare`] with the dataset chosen (`None`: `SPORE_DATASET`, else
    /// [`default_dataset`] for the machine's profile) and `before` run with it once the machine
    /// is known and before `prepare.py` runs (to fetch the data it needs).
    pub fn prepare_with(
        dir: &Path,
        python: &Path,
        evaluator: Option<&Path>,
        dataset: Option<&str>,
        before: impl FnOnce(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<Workspace> {
        materialize(dir)?;
        let mut machine: Machine = match evaluator {
            Some(program) => super::evaluator::probe(program)?,
            None => serde_json::from_str(python_output(python, dir, &["-c", PROBE], &[])?.trim())
                .context("the interpreter's probe printed something unexpected")?,
        };
        machine.gpu_class = spore_spec::gpu_class(&machine.gpu_model);
        let from_env = std::env::var("SPORE_DATASET").ok().filter(|d| !d.is_empty());
        let dataset =
            dataset.map(str::to_string).or(from_env).unwrap_or_else(|| default_dataset(&machine.profile).into());
        if !foreign_harness(dir) {
            before(&dataset)?;
        }
        let env = [("SPORE_PROFILE", machine.profile.as_str()), ("SPORE_DATASET", dataset.as_str())];
        let output = python_output(python, dir, &["prepare.py"], &env)?;
        let prepare = std::fs::read(dir.join("prepare.py")).context("read prepare.py")?;
        let manifest = match serde_json::from_str::<Manifest>(&output) {
            Ok(manifest) => manifest,
            Err(_) if foreign_harness(dir) => {
                tracing::warn!(
                    workspace = %dir.display(),
                    "prepare.py printed no data manifest: a workspace of the seed's contract, whose runs are \
                     measured by the val_bpb train.py prints (no evaluator can check them)"
                );
                return Ok(Workspace {
                    dir: dir.to_path_buf(),
                    prepare_cid: cid_of(&prepare),
                    dataset_cid: SEED_DATASET.to_string(),
                    machine,
                    eval: None,
                    contract: Contract::Seed,
                });
            }
            Err(e) => return Err(e).context("prepare.py did not print a data manifest"),
        };
        if !super::artifacts::is_cid(&manifest.dataset_cid) {
            bail!("prepare.py printed a bad dataset_cid {:?}", manifest.dataset_cid);
        }
        if evaluator.is_some() && manifest.eval.is_none() {
            bail!(
                "{}/prepare.py predates the trusted evaluator (it prints no `eval` block): move it away so \
                 the built-in one is written, or run with --metric reported",
                dir.display()
            );
        }
        Ok(Workspace {
            dir: dir.to_path_buf(),
            prepare_cid: cid_of(&prepare),
            dataset_cid: manifest.dataset_cid,
            machine,
            eval: manifest.eval,
            contract: Contract::Spore,
        })
    }

    /// The workspace's `train.py`, the code of a baseline.
    pub fn baseline_code(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(self.dir.join("train.py")).context("read the workspace's train.py")
    }
}

//! The workspace: the harness (`prepare.py`, `batching.py`) and the baseline `train.py`.
//!
//! The files of the repository's `workspace/` are embedded in the binary, so `spore run` works
//! from any directory: on first use they are written to `<data_dir>/workspace/` (existing files
//! are kept: a researcher may bring their own `train.py`). `prepare.py` is run once to prepare
//! the data; it prints a manifest whose `dataset_cid` goes into every record, as does the
//! SHA-256 of `prepare.py` (`prepare_cid`), and an `eval` block: what the trusted evaluator
//! measures. The machine is described by the evaluator's probe (libtorch + `nvidia-smi`), or by
//! the interpreter when the node runs on self-reported metrics.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::artifacts::cid_of;
use super::evaluator::EvalPlan;

/// The embedded workspace files.
pub const FILES: [(&str, &str); 4] = [
    ("prepare.py", include_str!("../../../workspace/prepare.py")),
    ("batching.py", include_str!("../../../workspace/batching.py")),
    ("train.py", include_str!("../../../workspace/train.py")),
    ("requirements.txt", include_str!("../../../workspace/requirements.txt")),
];

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

/// Writes the embedded files that `dir` does not have yet.
pub fn materialize(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (name, text) in FILES {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(())
}

/// Runs `python <args>` in `dir` and returns its stdout; a failure carries the stderr tail.
fn python_output(python: &Path, dir: &Path, args: &[&str], profile: Option<&str>) -> anyhow::Result<String> {
    let mut command = std::process::Command::new(python);
    if let Some(profile) = profile {
        command.env("SPORE_PROFILE", profile);
    }
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

impl Workspace {
    /// Materializes `dir`, probes the machine (with `evaluator`'s probe when given, else the
    /// interpreter) and prepares the data. With an evaluator, `prepare.py` must print the
    /// evaluation plan.
    pub fn prepare(dir: &Path, python: &Path, evaluator: Option<&Path>) -> anyhow::Result<Workspace> {
        materialize(dir)?;
        let mut machine: Machine = match evaluator {
            Some(program) => super::evaluator::probe(program)?,
            None => serde_json::from_str(python_output(python, dir, &["-c", PROBE], None)?.trim())
                .context("the interpreter's probe printed something unexpected")?,
        };
        machine.gpu_class = spore_spec::gpu_class(&machine.gpu_model);
        let manifest = python_output(python, dir, &["prepare.py"], Some(&machine.profile))?;
        let manifest: Manifest = serde_json::from_str(&manifest).context("prepare.py did not print a data manifest")?;
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
        let prepare = std::fs::read(dir.join("prepare.py")).context("read prepare.py")?;
        Ok(Workspace {
            dir: dir.to_path_buf(),
            prepare_cid: cid_of(&prepare),
            dataset_cid: manifest.dataset_cid,
            machine,
            eval: manifest.eval,
        })
    }

    /// The workspace's `train.py`, the code of a baseline.
    pub fn baseline_code(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(self.dir.join("train.py")).context("read the workspace's train.py")
    }
}

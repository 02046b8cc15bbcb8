//! An autoresearch run brought into the graph: its `results.tsv` (one row per experiment:
//! `commit`, `val_bpb`, `memory_gb`, `status`, `description`, tab-separated) and the git history of
//! its `train.py` become signed records, as Python's `wrapper.import_results_tsv` builds them.
//!
//! The lineage is autoresearch's: a kept commit's parent is the previous kept commit (the first
//! row is the root); a discard or a crash hangs under the kept commit it was tried on. Each
//! record's code is `train.py` at its commit (stored as the code artifact), its diff the change of
//! `train.py` from its parent's commit, `prepare_cid` the SHA-256 of `prepare.py` at the commit,
//! and its timestamp the commit's: the same run imported again gives the same records, so a
//! re-import stores nothing new. A row whose commit is no longer in the repository (a discard
//! that `git gc` pruned) is skipped and said so; it has no code to share.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use spore_spec::{ExperimentRecord, Identity, JsonNumber, Status, cid_of};

/// What the run does not say, given by the user.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub dataset_cid: String,
    pub time_budget: i64,
    pub gpu_model: String,
    pub agent_model: String,
}

/// One record to publish, with the code it names.
#[derive(Debug, Clone)]
pub struct Imported {
    pub record: ExperimentRecord,
    pub code: Vec<u8>,
    pub commit: String,
}

/// The run's rows as records, in `results.tsv` order, and the rows skipped (with why).
#[derive(Debug, Default)]
pub struct ImportPlan {
    pub records: Vec<Imported>,
    pub skipped: Vec<String>,
}

/// One `results.tsv` row.
#[derive(Debug, Clone)]
struct Row {
    commit: String,
    val_bpb: f64,
    memory_gb: f64,
    status: Status,
    description: String,
}

fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().context("results.tsv is empty")?.split('\t').map(str::trim).collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let Some(commit) = column("commit") else { bail!("results.tsv has no commit column: {header:?}") };
    let (bpb, memory, status, description) =
        (column("val_bpb"), column("memory_gb"), column("status"), column("description"));
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split('\t').collect();
        let cell = |i: Option<usize>| i.and_then(|i| cells.get(i)).map_or("", |c| c.trim());
        let number = |i: Option<usize>| -> anyhow::Result<f64> {
            let text = cell(i);
            if text.is_empty() {
                return Ok(0.0);
            }
            let value: f64 =
                text.parse().with_context(|| format!("results.tsv row {}: {text:?} is not a number", n + 2))?;
            anyhow::ensure!(value.is_finite(), "results.tsv row {}: {text:?} is not finite", n + 2);
            Ok(value)
        };
        // Python's rule: an unknown status is a crash.
        let status = match cell(status).to_ascii_lowercase().as_str() {
            "keep" => Status::Keep,
            "discard" => Status::Discard,
            _ => Status::Crash,
        };
        rows.push(Row {
            commit: cell(Some(commit)).to_string(),
            val_bpb: number(bpb)?,
            memory_gb: number(memory)?,
            status,
            description: cell(description).to_string(),
        });
    }
    Ok(rows)
}

/// `git` in the run's repository; `None` when the object does not exist.
fn git(repo: &Path, args: &[&str]) -> anyhow::Result<Option<Vec<u8>>> {
    let output =
        Command::new("git").arg("-C").arg(repo).args(args).output().context("cannot run git (is it installed?)")?;
    Ok(output.status.success().then_some(output.stdout))
}

/// A commit's full id, if the repository has it.
fn resolve(repo: &Path, commit: &str) -> anyhow::Result<Option<String>> {
    if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let spec = format!("{commit}^{{commit}}");
    Ok(git(repo, &["rev-parse", "--verify", "--quiet", &spec])?
        .map(|out| String::from_utf8_lossy(&out).trim().to_string()))
}

/// Reads the run in `repo` into records signed by `identity`.
pub fn plan(repo: &Path, identity: &Identity, settings: &ImportSettings) -> anyhow::Result<ImportPlan> {
    let tsv: PathBuf = repo.join("results.tsv");
    let rows = read_rows(&tsv)?;
    // Without its history every row would be skipped one by one: say what is wrong once.
    if git(repo, &["rev-parse", "--git-dir"])?.is_none() {
        bail!("{} is not a git repository: the run's train.py lives in its history", repo.display());
    }
    let mut plan = ImportPlan::default();
    // The last kept record, and its commit.
    let mut last_keep: Option<(ExperimentRecord, String)> = None;
    for row in rows {
        let Some(commit) = resolve(repo, &row.commit)? else {
            plan.skipped.push(format!("{}: the commit is not in the repository", row.commit));
            continue;
        };
        let Some(code) = git(repo, &["show", &format!("{commit}:train.py")])? else {
            plan.skipped.push(format!("{}: the commit has no train.py", row.commit));
            continue;
        };
        let prepare = git(repo, &["show", &format!("{commit}:prepare.py")])?;
        let timestamp: i64 = git(repo, &["show", "-s", "--format=%ct", &commit])?
            .and_then(|out| String::from_utf8_lossy(&out).trim().parse().ok())
            .with_context(|| format!("cannot read the time of commit {commit}"))?;
        let diff = match &last_keep {
            Some((_, parent_commit)) => {
                git(repo, &["diff", "--no-color", "--no-ext-diff", parent_commit, &commit, "--", "train.py"])?
                    .map(|out| String::from_utf8_lossy(&out).into_owned())
                    .unwrap_or_default()
            }
            None => String::new(),
        };
        let mut record = ExperimentRecord {
            parent: last_keep.as_ref().map(|(r, _)| r.id.clone()),
            depth: JsonNumber::from(last_keep.as_ref().map_or(0, |(r, _)| r.depth.as_i64().unwrap_or(0) + 1)),
            code_cid: cid_of(&code),
            diff,
            dataset_cid: settings.dataset_cid.clone(),
            prepare_cid: prepare.map(|bytes| cid_of(&bytes)).unwrap_or_default(),
            time_budget: JsonNumber::from(settings.time_budget),
            val_bpb: JsonNumber::Float(row.val_bpb),
            peak_vram_mb: JsonNumber::Float(row.memory_gb * 1024.0),
            num_steps: JsonNumber::from(0),
            num_params: JsonNumber::from(0),
            status: row.status,
            description: row.description,
            hypothesis: String::new(),
            agent_model: settings.agent_model.clone(),
            gpu_model: settings.gpu_model.clone(),
            cuda_version: "unknown".into(),
            torch_version: "unknown".into(),
            node_id: String::new(),
            task_id: None,
            timestamp: JsonNumber::from(timestamp),
            signature: String::new(),
            id: String::new(),
            version: JsonNumber::from(1),
        };
        identity.sign_record(&mut record);
        if record.status == Status::Keep {
            last_keep = Some((record.clone(), commit.clone()));
        }
        plan.records.push(Imported { record, code, commit });
    }
    Ok(plan)
}

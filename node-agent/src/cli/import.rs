//! `spore import autoresearch DIR`: an autoresearch run's experiments as this node's signed
//! records (see `spore_agent::autoresearch`), stored with their code; the node serves them in
//! the syncs its peers ask for. `--dry-run` prints the records and stores nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use spore_agent::autoresearch::{ImportSettings, plan};
use spore_agent::research::artifacts::ArtifactStore;
use spore_agent::store::{DagStore, InsertOutcome, StoredRecord};
use spore_spec::{ValidationPolicy, validate};

use super::DataDir;

#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// An autoresearch run: its results.tsv and the git history of its train.py.
    Autoresearch(AutoresearchArgs),
}

#[derive(Debug, clap::Args)]
pub struct AutoresearchArgs {
    /// The autoresearch checkout (with results.tsv and its git history).
    pub dir: PathBuf,
    /// Print the records and store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The dataset the run trained on.
    #[arg(long, default_value = "climbmix-400b-shuffle")]
    pub dataset_cid: String,
    /// Seconds each experiment trained.
    #[arg(long, default_value_t = 300)]
    pub time_budget: i64,
    /// The GPU it ran on, as `nvidia-smi` names it (spaces become underscores).
    #[arg(long, default_value = "unknown")]
    pub gpu_model: String,
    /// The agent that proposed the changes.
    #[arg(long, default_value = "autoresearch")]
    pub agent_model: String,
    #[command(flatten)]
    pub data_dir: DataDir,
}

pub fn run(command: ImportCommand) -> anyhow::Result<ExitCode> {
    match command {
        ImportCommand::Autoresearch(args) => autoresearch(args),
    }
}

fn autoresearch(args: AutoresearchArgs) -> anyhow::Result<ExitCode> {
    let data_dir = &args.data_dir.data_dir;
    let identity = spore_agent::identity_file::load_or_create(data_dir)?;
    let settings = ImportSettings {
        dataset_cid: args.dataset_cid,
        time_budget: args.time_budget,
        gpu_model: args.gpu_model.replace(' ', "_"),
        agent_model: args.agent_model,
    };
    let plan = plan(&args.dir, &identity, &settings)?;
    for skipped in &plan.skipped {
        eprintln!("spore: skipping {skipped}");
    }
    if args.dry_run {
        for item in &plan.records {
            let r = &item.record;
            let parent = r.parent.as_deref().map_or("-", |p| &p[..12]);
            println!(
                "{} {:<7} {:>9} parent {:<12} commit {} {}",
                &r.id[..12],
                r.status.as_str(),
                r.val_bpb,
                parent,
                &item.commit[..12.min(item.commit.len())],
                r.description
            );
        }
        println!("would import {} records, skip {}", plan.records.len(), plan.skipped.len());
        return Ok(ExitCode::SUCCESS);
    }
    let artifacts = ArtifactStore::new(data_dir);
    let path = super::run::store_path(data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut store = DagStore::open(&path)?;
    let now = spore_agent::node::unix_now();
    let mut batch = Vec::with_capacity(plan.records.len());
    for item in plan.records {
        artifacts.put(&item.code)?;
        let flags = validate(&item.record, &ValidationPolicy::default(), now)
            .map_err(|e| anyhow::anyhow!("record of commit {}: {e}", item.commit))?;
        let mut payload = Vec::new();
        item.record.write_wire_payload(&mut payload);
        let payload = String::from_utf8(payload).context("a record's payload is UTF-8")?;
        batch.push(StoredRecord { record: item.record, payload, flags, received_at: now });
    }
    let (mut stored, mut duplicates) = (0u64, 0u64);
    for outcome in store.insert_batch(&batch)? {
        match outcome {
            InsertOutcome::Inserted { .. } => stored += 1,
            InsertOutcome::Duplicate => duplicates += 1,
            InsertOutcome::OutsideTask => anyhow::bail!("an imported record breaks its task's lineage"),
        }
    }
    println!("imported {stored}, already stored {duplicates}, skipped {}", plan.skipped.len());
    Ok(ExitCode::SUCCESS)
}

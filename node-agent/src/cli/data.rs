//! `spore data fetch|export|import|status|prepare`: the climbmix shards of this machine's cache
//! (`SPORE_DATA_CACHE`, `SPORE_VAL_CACHE`), online or carried to an air-gapped lab.

use std::path::PathBuf;
use std::process::ExitCode;

use spore_agent::data::fetch::{DEFAULT_MAX_SHARD_BYTES, FetchOptions, fetch};
use spore_agent::data::transfer::{export, import};
use spore_agent::data::{Cache, DEFAULT_MIRROR, DEFAULT_SHARDS, VAL_SHARD, shard_name};

#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Download the climbmix shards (training shards 0..N and the validation shard) into the
    /// cache: in parallel, resumed, retried, checksummed.
    Fetch(FetchArgs),
    /// Copy the cache's shards, checked, with SHA256SUMS into DIR (to carry to an air-gapped
    /// machine, or to serve over HTTP as a --data-mirror).
    Export { dir: PathBuf },
    /// Copy the shards that DIR/SHA256SUMS lists into the cache, each checked.
    Import { dir: PathBuf },
    /// The shards in the cache.
    Status,
    /// Prepare the data once (tokenizer, training tokens, validation rows) for a profile: for
    /// nodes of this machine, or into a volume that training pods mount read-only.
    Prepare(PrepareArgs),
}

#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// The profile whose sequence length the validation rows are cut for.
    #[arg(long, default_value = "gpu", value_parser = ["gpu", "cpu"])]
    pub profile: String,
    #[arg(long, default_value = "climbmix", value_parser = ["climbmix", "python-stdlib"])]
    pub dataset: String,
    /// Python interpreter with torch (and, for climbmix, pyarrow, rustbpe and tiktoken).
    #[arg(long, env = "SPORE_PYTHON", default_value = "python3")]
    pub python: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// Training shards to have (shard_00000 on).
    #[arg(long, default_value_t = DEFAULT_SHARDS)]
    pub shards: u32,
    #[command(flatten)]
    pub mirror: MirrorArg,
    /// Downloads at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
}

/// The task's data of a node (`spore run`).
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// The task's data: `climbmix` (autoresearch's: the default where training runs on a GPU;
    /// its shards are fetched when missing) or `python-stdlib` (offline: the default on CPU).
    #[arg(long, env = "SPORE_DATASET", value_parser = ["climbmix", "python-stdlib"])]
    pub dataset: Option<String>,
    /// climbmix training shards to fetch when the cache lacks them.
    #[arg(long, default_value_t = DEFAULT_SHARDS)]
    pub data_shards: u32,
    #[command(flatten)]
    pub mirror: MirrorArg,
}

/// Where shards are downloaded from.
#[derive(Debug, Clone, clap::Args)]
pub struct MirrorArg {
    /// The URL the shards are under (`<URL>/shard_00000.parquet`): a lab's mirror of the public
    /// dataset, or a directory written by `spore data export` served over HTTP.
    #[arg(long, env = "SPORE_DATA_MIRROR", default_value = DEFAULT_MIRROR)]
    pub data_mirror: String,
    /// The largest shard taken from it, in MiB: a server that announces or sends more is
    /// refused, so a hostile or broken mirror cannot fill the disk.
    #[arg(long, env = "SPORE_DATA_MAX_SHARD_MB", default_value_t = DEFAULT_MAX_SHARD_BYTES >> 20)]
    pub data_max_shard_mb: u64,
}

impl MirrorArg {
    /// How to fetch `shards` training shards from this mirror.
    pub fn options(&self, shards: u32) -> FetchOptions {
        let mut options = FetchOptions::new(&self.data_mirror, shards);
        options.max_bytes = self.data_max_shard_mb.saturating_mul(1 << 20);
        options
    }
}

/// Before a node prepares `dataset`: climbmix's shards are fetched when the cache lacks any of
/// the `shards` wanted; a fetch that fails leaves the node with what the cache has, if that is
/// at least a training shard and the validation shard (an air-gapped machine with imported
/// shards).
pub fn ensure(dataset: &str, shards: u32, mirror: &MirrorArg) -> anyhow::Result<()> {
    let cache = Cache::from_env();
    if dataset != "climbmix" || (cache.train_shards() >= shards && cache.has_val()) {
        return Ok(());
    }
    tracing::info!(shards, mirror = %mirror.data_mirror, cache = %cache.data_root.display(), "fetching the climbmix shards");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match runtime.block_on(fetch(&cache, &mirror.options(shards))) {
        Ok(report) => {
            tracing::info!(fetched = report.fetched.len(), present = report.present.len(), "climbmix shards ready");
            Ok(())
        }
        Err(e) if cache.train_shards() >= 1 && cache.has_val() => {
            tracing::warn!(
                error = %format!("{e:#}"),
                train_shards = cache.train_shards(),
                "could not fetch every climbmix shard; going on with the ones the cache has"
            );
            Ok(())
        }
        Err(e) => {
            Err(e.context("the climbmix shards are missing (fetch them, or import them with `spore data import DIR`)"))
        }
    }
}

pub fn run(command: DataCommand) -> anyhow::Result<ExitCode> {
    let cache = Cache::from_env();
    match command {
        DataCommand::Fetch(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let mut options = args.mirror.options(args.shards);
            options.jobs = args.jobs;
            let report = runtime.block_on(fetch(&cache, &options))?;
            println!(
                "fetched {} shards ({:.1} MB), {} already present; {} training shards and {} under {}",
                report.fetched.len(),
                report.bytes as f64 / 1e6,
                report.present.len(),
                cache.train_shards(),
                if cache.has_val() { "the validation shard" } else { "no validation shard" },
                cache.data_root.display()
            );
        }
        DataCommand::Export { dir } => {
            let report = export(&cache, &dir)?;
            println!(
                "exported {} shards to {} ({} copied, {} unchanged); import them with `spore data import {}`",
                report.copied.len() + report.unchanged.len(),
                dir.display(),
                report.copied.len(),
                report.unchanged.len(),
                dir.display()
            );
        }
        DataCommand::Import { dir } => {
            let report = import(&cache, &dir)?;
            println!(
                "imported {} shards from {} ({} already present); {} training shards and {}",
                report.copied.len(),
                dir.display(),
                report.unchanged.len(),
                cache.train_shards(),
                if cache.has_val() { "the validation shard" } else { "no validation shard" }
            );
        }
        DataCommand::Prepare(args) => {
            let manifest = spore_agent::research::workspace::prepare_data(&args.python, &args.profile, &args.dataset)?;
            let eval = &manifest["eval"];
            println!(
                "prepared {} for the {} profile: dataset_cid {}, training data {}, validation rows {}",
                args.dataset,
                args.profile,
                manifest["dataset_cid"].as_str().unwrap_or("?"),
                eval["train_dir"].as_str().unwrap_or("?"),
                eval["val_path"].as_str().unwrap_or("?")
            );
        }
        DataCommand::Status => {
            let train = cache.train_shards();
            println!("training shards: {train} (shard_00000..) under {}", cache.dir_of(0).display());
            println!(
                "validation:      {} {}",
                shard_name(VAL_SHARD),
                if cache.has_val() { "present" } else { "missing" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

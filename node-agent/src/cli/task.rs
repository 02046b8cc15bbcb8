//! `spore task list|show|use|create`: the tasks this node knows — signed manifests (`sporemesh`
//! 0.5.0 and later) and the legacy tasks that parentless records start — and the one its
//! research works in (`task_id` in `config.toml`, as 0.5.0 keeps it). Read from the store
//! without disturbing a running node; `create` and `use` take effect at the next `spore run`.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::Context;
use spore_agent::research::task_scope::{self, ActiveTask};
use spore_agent::store::{DagStore, TaskTally};
use spore_spec::encode::{KeyOrder, to_compact_string};
use spore_spec::json::Value;
use spore_spec::{JsonNumber, TaskFields, TaskManifest};

use super::{DataDir, node_config};

#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// Every task: manifests oldest first, then legacy tasks by size; `*` marks the one in use.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// One task (its id or a unique prefix): a manifest as its creator signed it, or a legacy
    /// task's root and tally, as one JSON line.
    Show {
        id: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Work in this task from the next `spore run` (`auto`: the most active one).
    Use {
        id: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Sign a new task manifest with this node's key, store it, and work in it.
    Create(CreateArgs),
}

/// `spore task create`'s flags: the manifest's fields, with the Python CLI's defaults.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long, default_value = "ml_train")]
    task_type: String,
    #[arg(long, default_value = "python_train_script")]
    artifact_type: String,
    #[arg(long, default_value = "val_bpb")]
    metric: String,
    #[arg(long, default_value = "minimize")]
    goal: String,
    /// The code the task starts from (a CID; empty: any).
    #[arg(long, default_value = "")]
    base_code_cid: String,
    /// The harness that measures it (a CID; empty: any).
    #[arg(long, default_value = "")]
    prepare_cid: String,
    /// The data (a CID; empty: any).
    #[arg(long, default_value = "")]
    dataset_cid: String,
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    time_budget: i64,
    #[command(flatten)]
    data_dir: DataDir,
}

impl CreateArgs {
    fn fields(self) -> (TaskFields, DataDir) {
        let fields = TaskFields {
            name: self.name,
            description: self.description,
            task_type: self.task_type,
            artifact_type: self.artifact_type,
            metric: self.metric,
            goal: self.goal,
            base_code_cid: self.base_code_cid,
            prepare_cid: self.prepare_cid,
            dataset_cid: self.dataset_cid,
            time_budget: self.time_budget,
        };
        (fields, self.data_dir)
    }
}

/// The task `spore run` works in: `--task`, else the config's `task_id`; `None`: chosen by
/// activity. An unknown task is an error before the node starts.
pub fn chosen(data_dir: &std::path::Path, flag: Option<&str>, configured: &str) -> anyhow::Result<Option<ActiveTask>> {
    let Some(wanted) = flag.or(Some(configured).filter(|t| !t.is_empty())) else { return Ok(None) };
    let store = DagStore::open(&super::run::store_path(data_dir))?;
    let task = task_scope::resolve(&store, wanted)?;
    tracing::info!(task = %task.id, manifest = task.manifest.is_some(), "working in one task");
    Ok(Some(task))
}

fn legacy(store: &DagStore, manifests: &[TaskManifest]) -> anyhow::Result<Vec<TaskTally>> {
    let named: HashSet<&str> = manifests.iter().map(|m| m.task_id.as_str()).collect();
    Ok(store.task_tallies(usize::MAX >> 1)?.into_iter().filter(|t| !named.contains(t.task.as_str())).collect())
}

fn tally_value(tally: &TaskTally) -> Value {
    let n = |v: i64| Value::Number(JsonNumber::from(v));
    Value::Object(vec![
        ("task_id".into(), Value::String(tally.task.clone())),
        ("name".into(), Value::String(format!("legacy-{}", &tally.task[..tally.task.len().min(8)]))),
        ("source".into(), Value::String("legacy".into())),
        ("root_experiment_id".into(), Value::String(tally.task.clone())),
        ("records".into(), n(tally.records as i64)),
        ("keeps".into(), n(tally.keeps as i64)),
        ("best_val_bpb".into(), tally.best.map_or(Value::Null, |b| Value::Number(JsonNumber::Float(b)))),
    ])
}

fn short(id: &str) -> &str {
    &id[..id.len().min(16)]
}

pub fn run(command: TaskCommand) -> anyhow::Result<ExitCode> {
    match command {
        TaskCommand::List { json, data_dir } => {
            let store = super::query::open_store(&data_dir)?;
            let manifests = store.all_tasks()?;
            let legacy = legacy(&store, &manifests)?;
            if json {
                let values: Vec<String> = manifests
                    .iter()
                    .map(|t| to_compact_string(&t.to_value(), KeyOrder::AsGiven))
                    .chain(legacy.iter().map(|t| to_compact_string(&tally_value(t), KeyOrder::AsGiven)))
                    .collect();
                println!("[{}]", values.join(","));
                return Ok(ExitCode::SUCCESS);
            }
            let active = node_config::load(&data_dir.data_dir)?.task_id;
            let mark = |id: &str| if !active.is_empty() && id == active { '*' } else { ' ' };
            if manifests.is_empty() && legacy.is_empty() {
                println!("no tasks (a baseline starts one; `spore task create` signs one)");
            }
            for task in &manifests {
                let records = store.task_activity(&task.task_id)?;
                println!(
                    "{}{}  {:<24} {} {:<8} {:>5} s  {:>3}+ recent records  by {}",
                    mark(&task.task_id),
                    short(&task.task_id),
                    task.text("name"),
                    task.text("goal"),
                    task.text("metric"),
                    task.time_budget().unwrap_or(0),
                    records.recent,
                    short(&task.created_by),
                );
            }
            for task in &legacy {
                let best = task.best.map_or("-".to_string(), |b| format!("{b:.6}"));
                println!(
                    "{}{}  legacy-{:<17} {:>6} records {:>5} keeps  best {best}",
                    mark(&task.task),
                    short(&task.task),
                    &task.task[..task.task.len().min(8)],
                    task.records,
                    task.keeps,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Show { id, data_dir } => {
            let store = super::query::open_store(&data_dir)?;
            let task = task_scope::resolve(&store, &id)?;
            let value = match &task.manifest {
                Some(manifest) => manifest.to_value(),
                None => {
                    let tallies = legacy(&store, &[])?;
                    let tally = tallies.iter().find(|t| t.task == task.id).context("the task vanished")?;
                    tally_value(tally)
                }
            };
            println!("{}", to_compact_string(&value, KeyOrder::Sorted));
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Use { id, data_dir } => {
            let dir = &data_dir.data_dir;
            let mut config = node_config::load(dir)?;
            if id == "auto" {
                config.task_id.clear();
                node_config::save(dir, &config)?;
                println!("the research works in the most active task it can build on");
                return Ok(ExitCode::SUCCESS);
            }
            let store = super::query::open_store(&data_dir)?;
            let task = task_scope::resolve(&store, &id)?;
            config.task_id = task.id.clone();
            node_config::save(dir, &config)?;
            println!("active task: {}", task.id);
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Create(args) => {
            let (fields, data_dir) = args.fields();
            if fields.name.trim().is_empty() {
                anyhow::bail!("--name must not be empty");
            }
            let dir = &data_dir.data_dir;
            let identity = spore_agent::identity_file::load_or_create(dir)?;
            let now = spore_agent::node::unix_now();
            let manifest = TaskManifest::sign(&identity, &fields, now);
            let store = DagStore::open(&super::run::store_path(dir))?;
            store.insert_task(&manifest, now, false)?;
            let mut config = node_config::load(dir)?;
            config.task_id = manifest.task_id.clone();
            node_config::save(dir, &config)?;
            println!("{}", manifest.task_id);
            eprintln!("spore: task created and in use; peers get it when they sync tasks with this node");
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! `spore task list|show`: the signed task manifests (`sporemesh` 0.5.0 and later) this node has
//! verified and keeps, read from its store without disturbing a running node.

use std::process::ExitCode;

use spore_spec::TaskManifest;
use spore_spec::json::Value;

use super::DataDir;

#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// Every task manifest, oldest first: id, name, metric and goal, budget, creator.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// One task manifest as its creator signed it (the id, or a unique prefix of it).
    Show {
        id: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
}

fn text<'a>(manifest: &'a Value, key: &str) -> &'a str {
    match manifest.get(key) {
        Some(Value::String(s)) => s,
        _ => "",
    }
}

fn manifests(data_dir: &DataDir) -> anyhow::Result<Vec<TaskManifest>> {
    let store = super::query::open_store(data_dir)?;
    Ok(store.all_tasks()?)
}

pub fn run(command: TaskCommand) -> anyhow::Result<ExitCode> {
    match command {
        TaskCommand::List { json, data_dir } => {
            let tasks = manifests(&data_dir)?;
            if json {
                let values: Vec<String> = tasks
                    .iter()
                    .map(|t| {
                        spore_spec::encode::to_compact_string(&t.to_value(), spore_spec::encode::KeyOrder::AsGiven)
                    })
                    .collect();
                println!("[{}]", values.join(","));
                return Ok(ExitCode::SUCCESS);
            }
            if tasks.is_empty() {
                println!("no tasks (tasks come from peers of sporemesh 0.5.0 and later)");
            }
            for task in &tasks {
                let v = task.to_value();
                let budget = match v.get("time_budget") {
                    Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
                    _ => 0,
                };
                println!(
                    "{}  {:<24} {} {:<8} {:>4} s  by {}",
                    &task.task_id[..16.min(task.task_id.len())],
                    text(&v, "name"),
                    text(&v, "goal"),
                    text(&v, "metric"),
                    budget,
                    &task.created_by[..16.min(task.created_by.len())],
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Show { id, data_dir } => {
            let tasks = manifests(&data_dir)?;
            let found: Vec<&TaskManifest> = tasks.iter().filter(|t| t.task_id.starts_with(&id)).collect();
            match found[..] {
                [task] => {
                    println!(
                        "{}",
                        spore_spec::encode::to_compact_string(&task.to_value(), spore_spec::encode::KeyOrder::Sorted)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                [] => anyhow::bail!("no task {id} in this node's store"),
                _ => anyhow::bail!("{id} names {} tasks: give more of the id", found.len()),
            }
        }
    }
}

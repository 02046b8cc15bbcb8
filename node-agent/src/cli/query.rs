//! `spore status`, `spore frontier`, `spore graph`: read the store (and the running node's
//! status file) without disturbing a running node.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};
use spore_agent::node::{status, unix_now};
use spore_agent::research::noise::NoiseBook;
use spore_agent::store::DagStore;
use spore_spec::ExperimentRecord;

use super::DataDir;

/// Records in `spore status`'s recent activity, as in the Python CLI.
const RECENT: usize = 10;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data_dir: DataDir,
}

#[derive(Debug, Args)]
pub struct FrontierArgs {
    #[arg(long)]
    json: bool,
    /// Only this GPU model.
    #[arg(short = 'g', long)]
    gpu: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    data_dir: DataDir,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[arg(long)]
    json: bool,
    /// Levels of the tree to print.
    #[arg(long, default_value_t = 50)]
    depth: usize,
    #[command(flatten)]
    data_dir: DataDir,
}

/// Opens a node's store for reading. The default data directory (`~/.spore`) is initialised
/// on first use, as the seed's CLI promises (said on stderr); any other `--data-dir` must hold a
/// node already, so a mistyped one is an error, never a second identity.
pub fn open_store(data_dir: &DataDir) -> anyhow::Result<DagStore> {
    let path = super::run::store_path(&data_dir.data_dir);
    if !path.exists() {
        if data_dir.data_dir != super::default_data_dir() {
            anyhow::bail!(
                "no node store at {} (start a node with `spore run`, or pass the right --data-dir)",
                path.display()
            );
        }
        let identity = super::admin::ensure_initialized(&data_dir.data_dir)?;
        eprintln!(
            "spore: initialised a new node {}… in {} (as `spore init` does)",
            &identity.node_id()[..16],
            data_dir.data_dir.display()
        );
    }
    Ok(DagStore::open(&path)?)
}

fn payload_value(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or(Value::Null)
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let store = open_store(&args.data_dir)?;
    let counts = store.counts()?;
    let frontier = store.frontier(None, usize::MAX)?;
    let node_id = std::fs::read_to_string(args.data_dir.data_dir.join("identity/node_id")).ok();
    let running: Option<Value> = std::fs::read_to_string(args.data_dir.data_dir.join(status::FILE))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .filter(|s: &Value| {
            s["pid"].as_u64().is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        });
    let peers = running.as_ref().map(|s| s["peers"].clone()).unwrap_or_else(|| json!([]));
    let recent = store.recent(RECENT)?;
    let noise = NoiseBook::read(&args.data_dir.data_dir);
    let report = json!({
        "node_id": node_id,
        "data_dir": args.data_dir.data_dir,
        "running": running.is_some(),
        "listen": running.as_ref().map(|s| s["listen"].clone()),
        "experiments": counts.total,
        "keep": counts.keep,
        "discard": counts.discard,
        "crash": counts.crash,
        "frontier_size": frontier.len(),
        "best_val_bpb": frontier.first().map(|f| f.val_bpb),
        "peers": peers,
        "stats": running.as_ref().map(|s| s["stats"].clone()),
        // Whether ingest is paused for the store (busy, full, failing, at its quota), and why.
        "store": running.as_ref().map(|s| s["store"].clone()),
        // The verifier's local table (node id → score) and the records disputes rejected.
        "reputation": std::fs::read_to_string(args.data_dir.data_dir.join("reputation.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .unwrap_or_else(|| json!({})),
        // This node's run-to-run noise per setting and the keep margin it gives.
        "noise": noise.report(unix_now()),
        "rejected": store.rejected()?.into_iter().map(|(id, truth)| json!({"id": id, "ground_truth": truth})).collect::<Vec<_>>(),
        // The recent activity the Python CLI prints: the newest records by timestamp.
        "recent": recent.iter().map(|r| json!({
            "id": r.id, "val_bpb": r.val_bpb.as_f64(), "status": r.status.as_str(), "node_id": r.node_id,
            "description": r.description,
        })).collect::<Vec<_>>(),
    });
    if args.json {
        writeln!(out, "{report}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "node      {}", node_id.as_deref().unwrap_or("(no identity yet)"))?;
    writeln!(out, "data      {}", args.data_dir.data_dir.display())?;
    match &running {
        Some(s) => {
            writeln!(out, "running   yes, listening on {}", s["listen"].as_str().unwrap_or("?"))?;
            let store = &s["store"];
            if store["state"] == "paused" {
                writeln!(
                    out,
                    "store     PAUSED ({}): {}; records from peers refused, {} of this node's waiting",
                    store["cause"].as_str().unwrap_or("?"),
                    store["reason"].as_str().unwrap_or("?"),
                    store["own_waiting"].as_u64().unwrap_or(0),
                )?;
            }
        }
        None => writeln!(out, "running   no")?,
    }
    writeln!(
        out,
        "records   {} ({} keep, {} discard, {} crash)",
        counts.total, counts.keep, counts.discard, counts.crash
    )?;
    match frontier.first() {
        Some(best) => {
            let short: String = best.id.chars().take(12).collect();
            writeln!(out, "frontier  {} records, best val_bpb {:.6} ({short})", frontier.len(), best.val_bpb)?
        }
        None => writeln!(out, "frontier  empty")?,
    }
    write_noise(&mut out, &report["noise"])?;
    let peer_list = peers.as_array().cloned().unwrap_or_default();
    writeln!(out, "peers     {}", peer_list.len())?;
    for peer in peer_list {
        writeln!(out, "  {:9} {}", peer["direction"].as_str().unwrap_or(""), peer["address"].as_str().unwrap_or(""))?;
    }
    if !recent.is_empty() {
        writeln!(out, "recent")?;
        writeln!(out, "  {:12}  {:>10}  {:7}  {:16}  description", "id", "val_bpb", "status", "node")?;
        for r in &recent {
            let description: String = r.description.chars().take(40).collect();
            writeln!(
                out,
                "  {:12}  {:>10.6}  {:7}  {:16}  {description}",
                &r.id[..12.min(r.id.len())],
                r.val_bpb.as_f64(),
                r.status.as_str(),
                &r.node_id[..16.min(r.node_id.len())],
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per setting: σ and the keep margin, or how far the measurement is.
fn write_noise(out: &mut impl Write, noise: &Value) -> std::io::Result<()> {
    if let Some(fixed) = noise["keep_margin"].as_f64() {
        writeln!(out, "keep      a child must beat its parent by more than {fixed} (--keep-margin)")?;
    }
    for s in noise["settings"].as_array().into_iter().flatten() {
        let setting = format!(
            "{} {} s {}",
            s["gpu_class"].as_str().unwrap_or("?"),
            s["time_budget"],
            s["prepare_cid"].as_str().unwrap_or("").chars().take(8).collect::<String>()
        );
        match s["sigma"].as_f64() {
            Some(sigma) => writeln!(
                out,
                "noise     {setting}: sigma {sigma:.6} ({} runs, {} dof), keep margin {:.6}",
                s["runs"],
                s["dof"],
                s["margin"].as_f64().unwrap_or(0.0)
            )?,
            None => writeln!(out, "noise     {setting}: measuring ({} dof of the 2 needed)", s["dof"])?,
        }
    }
    Ok(())
}

pub fn frontier(args: FrontierArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let store = open_store(&args.data_dir)?;
    let entries = store.frontier(args.gpu.as_deref(), args.limit)?;
    if args.json {
        // Each record as signed, plus `verified` (a signed verification of it is stored here) and
        // `measured_by`.
        let mut list: Vec<Value> = Vec::new();
        for entry in &entries {
            let mut value = payload_value(&entry.payload);
            let verified = store
                .controls_for(&entry.id)?
                .iter()
                .any(|e| e.kind == spore_spec::ControlKind::Verification && e.verify().is_ok());
            value["verified"] = json!(verified);
            // How this node measured it (its own records); null: a peer's claim.
            value["measured_by"] = json!(store.measured_by(&entry.id)?.map(|by| by.as_str()));
            list.push(value);
        }
        writeln!(out, "{}", Value::Array(list))?;
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        writeln!(out, "(empty frontier)")?;
    }
    writeln!(out, "{:>4}  {:12}  {:>10}  {:24}  description", "rank", "id", "val_bpb", "gpu")?;
    for (rank, entry) in entries.iter().enumerate() {
        let description = payload_value(&entry.payload)["description"].as_str().unwrap_or_default().to_string();
        let short: String = description.chars().take(60).collect();
        let gpu: String = entry.gpu_model.chars().take(24).collect();
        writeln!(
            out,
            "{:>4}  {:12}  {:>10.6}  {:24}  {}",
            rank + 1,
            &entry.id[..12.min(entry.id.len())],
            entry.val_bpb,
            gpu,
            short
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn graph(args: GraphArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let store = open_store(&args.data_dir)?;
    let mut records = Vec::new();
    store.for_each_payload(|payload| {
        if let Ok(record) = ExperimentRecord::from_json(payload) {
            records.push(record);
        }
    })?;
    let ids: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    if args.json {
        let nodes: Vec<Value> = records
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "parent": r.parent, "status": r.status.as_str(), "val_bpb": r.val_bpb.as_f64(),
                    "gpu_model": r.gpu_model, "node_id": r.node_id, "depth": r.depth.as_i64(),
                    "timestamp": r.timestamp.as_i64(), "description": r.description,
                })
            })
            .collect();
        // Only edges to parents we hold: an edge to a missing node breaks graph renderers.
        let edges: Vec<Value> = records
            .iter()
            .filter_map(|r| {
                r.parent.as_deref().filter(|p| ids.contains(p)).map(|p| json!({"source": p, "target": r.id}))
            })
            .collect();
        writeln!(out, "{}", json!({"nodes": nodes, "edges": edges}))?;
        return Ok(ExitCode::SUCCESS);
    }
    print_tree(&mut out, &records, &ids, args.depth)?;
    Ok(ExitCode::SUCCESS)
}

/// The Python peer's ASCII tree: `[+]` keep, `[x]` discard, `[!]` crash; roots and each
/// record's children in timestamp order. Records whose parent this node lacks follow the roots
/// (Python hides them; here nothing stored is hidden).
fn print_tree(
    out: &mut impl Write,
    records: &[ExperimentRecord],
    ids: &HashSet<&str>,
    max_depth: usize,
) -> std::io::Result<()> {
    if records.is_empty() {
        writeln!(out, "(empty graph)")?;
        return Ok(());
    }
    let mut records: Vec<&ExperimentRecord> = records.iter().collect();
    records.sort_by_key(|r| r.timestamp.as_i64());
    let mut by_parent: std::collections::HashMap<&str, Vec<&ExperimentRecord>> = std::collections::HashMap::new();
    for &record in &records {
        if let Some(parent) = record.parent.as_deref() {
            by_parent.entry(parent).or_default().push(record);
        }
    }
    let children = |parent: &str| -> Vec<&ExperimentRecord> { by_parent.get(parent).cloned().unwrap_or_default() };
    fn line(r: &ExperimentRecord) -> String {
        let icon = match r.status {
            spore_spec::Status::Keep => '+',
            spore_spec::Status::Discard => 'x',
            spore_spec::Status::Crash => '!',
        };
        let description: String = r.description.chars().take(40).collect();
        format!("[{icon}] {} val_bpb={:.6} | {description}", &r.id[..8.min(r.id.len())], r.val_bpb.as_f64())
    }
    let mut stack: Vec<(&ExperimentRecord, String, bool, usize)> = Vec::new();
    let roots: Vec<&ExperimentRecord> = records
        .iter()
        .filter(|r| r.parent.is_none())
        .chain(records.iter().filter(|r| r.parent.as_deref().is_some_and(|p| !ids.contains(p))))
        .copied()
        .collect();
    for (i, root) in roots.iter().enumerate().rev() {
        stack.push((root, String::new(), i + 1 == roots.len(), 0));
    }
    while let Some((record, prefix, last, level)) = stack.pop() {
        writeln!(out, "{prefix}{}{}", if last { "└─ " } else { "├─ " }, line(record))?;
        if level + 1 >= max_depth {
            continue;
        }
        let kids = children(&record.id);
        let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
        for (i, kid) in kids.iter().enumerate().rev() {
            stack.push((kid, child_prefix.clone(), i + 1 == kids.len(), level + 1));
        }
    }
    Ok(())
}

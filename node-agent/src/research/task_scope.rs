//! The task the research loop works in: its parents come from that task's frontier only, and
//! what it publishes lands in that task.
//!
//! * `--task` (or `task_id` in `config.toml`, written by `spore task use`) names it: a stored
//!   manifest, or a task that holds records (a legacy task is named by its root's CID). A
//!   manifest task whose harness, data or budget differ from this node's is refused at start.
//! * Otherwise the loop chooses as 0.5.0 does — the most records among a task's 25 most recent,
//!   then the most keeps among those, then the newest — but only among the tasks whose
//!   frontier holds records this node could build on (same GPU class, harness, data, budget),
//!   so a busy task of another harness never stalls it. With none, the baseline starts a
//!   legacy task of its own.
//! * A record signs its task (version 2) when its parent's task is signed, or when it is the
//!   root of a manifest task. Every other record stays version 1: 0.1.2 peers can take it, and
//!   its task follows from its lineage.

use std::collections::BTreeMap;

use anyhow::bail;
use spore_spec::{ExperimentRecord, TaskManifest};

use crate::store::{DagStore, TaskActivity};

/// A task chosen with `--task` or `spore task use`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTask {
    pub id: String,
    /// Its manifest, when it has one (a legacy task has none).
    pub manifest: Option<TaskManifest>,
}

/// Finds a task by id or unique prefix: a stored manifest, else a task that holds records.
pub fn resolve(store: &DagStore, wanted: &str) -> anyhow::Result<ActiveTask> {
    if wanted.is_empty() {
        bail!("a task id is empty");
    }
    let mut found: BTreeMap<String, Option<TaskManifest>> = BTreeMap::new();
    for manifest in store.all_tasks()? {
        if manifest.task_id.starts_with(wanted) {
            found.insert(manifest.task_id.clone(), Some(manifest));
        }
    }
    for tally in store.task_tallies(usize::MAX >> 1)? {
        if tally.task.starts_with(wanted) {
            found.entry(tally.task).or_insert(None);
        }
    }
    let mut matches = found.into_iter();
    match (matches.next(), matches.next()) {
        (Some((id, manifest)), None) => Ok(ActiveTask { id, manifest }),
        (None, _) => bail!(
            "unknown task {wanted:?}: `spore task list` shows the tasks this node knows (a peer's task is known once \
             it has synced)"
        ),
        (Some(_), Some(_)) => bail!("task prefix {wanted:?} is ambiguous: give more of the id"),
    }
}

/// Refuses a manifest task this node's runs would not fit: another harness (`prepare_cid`),
/// other data, another time budget. An empty manifest field fits anything.
pub fn check_fits(task: &ActiveTask, prepare_cid: &str, dataset_cid: &str, time_budget: u64) -> anyhow::Result<()> {
    let Some(manifest) = &task.manifest else { return Ok(()) };
    let differs = |theirs: &str, ours: &str| !theirs.is_empty() && !ours.is_empty() && theirs != ours;
    if differs(manifest.text("prepare_cid"), prepare_cid) {
        bail!(
            "task {} is measured by prepare.py {}, this workspace has {prepare_cid}",
            short(&task.id),
            manifest.text("prepare_cid")
        );
    }
    if differs(manifest.text("dataset_cid"), dataset_cid) {
        bail!(
            "task {} trains on data {}, this workspace has {dataset_cid}",
            short(&task.id),
            manifest.text("dataset_cid")
        );
    }
    if let Some(budget) = manifest.time_budget().filter(|b| *b > 0 && *b as u64 != time_budget) {
        bail!("task {} runs for {budget} s: start with --time-budget {budget}", short(&task.id));
    }
    Ok(())
}

/// Keeps the comparable frontier records (`(task, record)`, best first) of the task the loop
/// works in: `explicit`, else the most active of their tasks.
pub fn scope(
    store: &DagStore,
    explicit: Option<&str>,
    entries: Vec<(String, ExperimentRecord)>,
) -> anyhow::Result<Vec<ExperimentRecord>> {
    let task = match explicit {
        Some(task) => task.to_string(),
        None => {
            let mut best: Option<(TaskActivity, &str)> = None;
            let mut seen = std::collections::HashSet::new();
            for (task, _) in entries.iter().filter(|(t, _)| !t.is_empty()) {
                if !seen.insert(task.as_str()) {
                    continue;
                }
                let activity = store.task_activity(task)?;
                if best.is_none_or(|(b, t)| (activity, task.as_str()) > (b, t)) {
                    best = Some((activity, task));
                }
            }
            match best {
                Some((_, task)) => task.to_string(),
                None => return Ok(Vec::new()),
            }
        }
    };
    Ok(entries.into_iter().filter(|(t, _)| *t == task).map(|(_, r)| r).collect())
}

/// The `task_id` a new record signs (see the module's rules); `None`: a version-1 record.
pub fn task_to_sign(parent: Option<&ExperimentRecord>, task: Option<&ActiveTask>) -> Option<String> {
    match parent {
        Some(parent) => parent.task_id.clone().filter(|t| parent.signs_task_id() && !t.is_empty()),
        None => task.filter(|t| t.manifest.is_some()).map(|t| t.id.clone()),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(16)]
}

#[cfg(test)]
mod tests {
    use spore_spec::{Identity, JsonNumber, Status};

    use super::*;
    use crate::store::StoredRecord;

    fn stored(record: &ExperimentRecord) -> StoredRecord {
        let mut payload = Vec::new();
        record.write_wire_payload(&mut payload);
        StoredRecord {
            record: record.clone(),
            payload: String::from_utf8(payload).unwrap(),
            flags: vec![],
            received_at: 0,
        }
    }

    fn record(parent: Option<&ExperimentRecord>, task: Option<&str>, status: Status, n: i64) -> ExperimentRecord {
        let mut r = crate::research::test_support::record("", 1.0 - n as f64 / 100.0, status, "");
        r.parent = parent.map(|p| p.id.clone());
        r.depth = JsonNumber::from(parent.map_or(0, |p| p.depth.as_i64().unwrap_or(0) + 1));
        r.timestamp = JsonNumber::from(1_700_000_000 + n);
        if let Some(task) = task {
            r.task_id = Some(task.into());
            r.version = JsonNumber::from(2);
        }
        Identity::from_seed([3; 32]).sign_record(&mut r);
        r
    }

    fn frontier(store: &DagStore) -> Vec<(String, ExperimentRecord)> {
        let entries = store.frontier_in(None, None, 100).unwrap();
        entries.into_iter().map(|e| (e.task, ExperimentRecord::from_json(&e.payload).unwrap())).collect()
    }

    #[test]
    fn the_loop_works_in_the_most_active_task_unless_told() {
        let mut store = DagStore::open_in_memory().unwrap();
        let quiet = record(None, None, Status::Keep, 0);
        let busy = record(None, None, Status::Keep, 1);
        let mut all = vec![quiet.clone(), busy.clone()];
        for n in 2..6 {
            all.push(record(Some(&busy), None, Status::Discard, n));
        }
        store.insert_batch(&all.iter().map(stored).collect::<Vec<_>>()).unwrap();
        let picked = scope(&store, None, frontier(&store)).unwrap();
        assert_eq!(picked.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![busy.id.clone()]);
        let told = scope(&store, Some(&quiet.id), frontier(&store)).unwrap();
        assert_eq!(told.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![quiet.id.clone()]);
        assert!(scope(&store, None, Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn tasks_resolve_by_prefix_and_manifest_tasks_must_fit() {
        let mut store = DagStore::open_in_memory().unwrap();
        let root = record(None, None, Status::Keep, 0);
        store.insert_batch(&[stored(&root)]).unwrap();
        let fields = spore_spec::TaskFields {
            name: "t".into(),
            prepare_cid: "p".repeat(64),
            time_budget: 60,
            ..Default::default()
        };
        let manifest = TaskManifest::sign(&Identity::from_seed([4; 32]), &fields, 1_700_000_000);
        store.insert_task(&manifest, 0, false).unwrap();
        let legacy = resolve(&store, &root.id[..10]).unwrap();
        assert_eq!((legacy.id.as_str(), legacy.manifest.is_none()), (root.id.as_str(), true));
        let task = resolve(&store, &manifest.task_id).unwrap();
        assert_eq!(task.manifest.as_ref(), Some(&manifest));
        assert!(resolve(&store, "zz").unwrap_err().to_string().contains("unknown task"));
        assert!(check_fits(&task, &"p".repeat(64), "d", 60).is_ok());
        assert!(check_fits(&task, &"q".repeat(64), "d", 60).unwrap_err().to_string().contains("prepare.py"));
        assert!(check_fits(&task, &"p".repeat(64), "d", 300).unwrap_err().to_string().contains("--time-budget 60"));
        assert!(check_fits(&legacy, "x", "y", 1).is_ok());
    }

    #[test]
    fn records_sign_a_task_only_where_their_lineage_needs_it() {
        let t = "a".repeat(64);
        let signed_parent = record(None, Some(&t), Status::Keep, 0);
        let legacy_parent = record(None, None, Status::Keep, 1);
        let manifest = TaskManifest::signed(&Identity::from_seed([4; 32]), "t", 300, 1);
        let with_manifest = ActiveTask { id: manifest.task_id.clone(), manifest: Some(manifest.clone()) };
        let legacy = ActiveTask { id: legacy_parent.id.clone(), manifest: None };
        assert_eq!(task_to_sign(Some(&signed_parent), None), Some(t));
        assert_eq!(task_to_sign(Some(&legacy_parent), Some(&with_manifest)), None);
        assert_eq!(task_to_sign(None, Some(&with_manifest)), Some(manifest.task_id.clone()));
        assert_eq!(task_to_sign(None, Some(&legacy)), None);
        assert_eq!(task_to_sign(None, None), None);
    }
}

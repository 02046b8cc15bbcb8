//! `GET /api/task`: the tasks the frontier can be scoped to (`/api/frontier?task=`). Every task
//! that holds frontier records, best first — a signed manifest's fields when the task has one,
//! else a legacy task named by its root — then the manifests that hold no frontier yet.

use axum::extract::State;
use serde_json::{Value, json};

use super::Explorer;
use super::api::{ApiResult, ok};

fn manifest_fields(manifest: &spore_spec::TaskManifest) -> Value {
    json!({
        "task_id": manifest.task_id,
        "name": manifest.text("name"),
        "source": "manifest",
        "metric": manifest.text("metric"),
        "goal": manifest.text("goal"),
        "time_budget": manifest.time_budget(),
        "created_by": manifest.created_by,
    })
}

pub(super) async fn tasks(State(explorer): State<Explorer>) -> ApiResult {
    let limit = explorer.limits.list;
    let (frontier, manifests) = explorer
        .read(move |s| {
            let mut frontier = Vec::new();
            for (task, size, best) in s.frontier_tasks(limit)? {
                frontier.push((s.task_manifest(&task)?, task, size, best));
            }
            Ok((frontier, s.tasks_since(i64::MIN, limit, true)?))
        })
        .await?;
    let mut out = Vec::new();
    for (manifest, task, size, best) in &frontier {
        let mut value = match manifest {
            Some(manifest) => manifest_fields(manifest),
            None => {
                json!({"task_id": task, "name": format!("legacy-{}", &task[..task.len().min(8)]), "source": "legacy"})
            }
        };
        value["frontier_size"] = json!(size);
        value["best_val_bpb"] = json!(best);
        out.push(value);
    }
    for manifest in manifests.iter().filter(|m| !frontier.iter().any(|(_, t, _, _)| *t == m.task_id)) {
        if out.len() >= limit {
            break;
        }
        let mut value = manifest_fields(manifest);
        value["frontier_size"] = json!(0);
        value["best_val_bpb"] = Value::Null;
        out.push(value);
    }
    ok(Value::Array(out))
}

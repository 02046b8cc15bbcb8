//! The JSON API. Python's paths and shapes first, then the endpoints added beside them; see
//! `openapi.json` (served at `/api/openapi.json`) for every parameter and limit.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use spore_spec::{ControlKind, gpu_class};

use super::{Explorer, view};
use crate::research::artifacts::is_cid;
use crate::store::{BrowseRow, DagStore, StoreError};

/// The OpenAPI description of this API.
const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> axum::Router<Explorer> {
    axum::Router::new()
        .route("/api/stat", get(stat))
        .route("/api/graph", get(graph))
        .route("/api/frontier", get(frontier))
        .route("/api/frontier/classes", get(frontier_classes))
        .route("/api/task", get(super::tasks::tasks))
        .route("/api/experiment/{cid}", get(experiment))
        .route("/api/experiment/{cid}/ancestor", get(ancestor))
        .route("/api/experiment/{cid}/children", get(children))
        .route("/api/experiment/{cid}/verification", get(verification))
        .route("/api/recent", get(recent))
        .route("/api/node/{node_id}/experiment", get(node_experiments))
        .route("/api/search", get(search))
        .route("/api/leaderboard", get(leaderboard))
        .route("/api/noise", get(noise))
        .route("/api/progress", get(progress))
        .route("/api/artifact/{cid}", get(artifact))
        .route("/api/openapi.json", get(openapi))
        .fallback(not_found)
}

/// An error as Python's explorer words it (`{"error": …}`), with a real status code.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn not_found() -> Self {
        ApiError(StatusCode::NOT_FOUND, "not found".into())
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "explorer: store read failed");
        ApiError(StatusCode::SERVICE_UNAVAILABLE, "the store cannot be read right now".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        no_store((self.0, Json(json!({"error": self.1}))).into_response())
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok(value: Value) -> ApiResult {
    Ok(no_store(Json(value).into_response()))
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

impl Explorer {
    /// Runs `read` on the explorer's store connection, off the async threads.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&DagStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        let unavailable = || ApiError(StatusCode::SERVICE_UNAVAILABLE, "the store cannot be read right now".into());
        tokio::task::spawn_blocking(move || {
            let store = store.lock().map_err(|_| unavailable())?;
            read(&store).map_err(ApiError::from)
        })
        .await
        .map_err(|_| unavailable())?
    }
}

fn cid(text: &str) -> Result<String, ApiError> {
    if is_cid(text) {
        Ok(text.to_string())
    } else {
        Err(ApiError::bad_request("not a CID (64 lowercase hex characters)"))
    }
}

/// The running node's id and open connections, from its status file; the identity file's id
/// and no peers when no node runs on this data directory.
fn node_facts(explorer: &Explorer) -> (Option<String>, usize) {
    let dir = &explorer.data_dir;
    let running: Option<Value> = std::fs::read_to_string(dir.join(crate::node::status::FILE))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .filter(|s: &Value| {
            s["pid"].as_u64().is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        });
    match running {
        Some(status) => (status["node_id"].as_str().map(str::to_owned), status["peers"].as_array().map_or(0, Vec::len)),
        None => (std::fs::read_to_string(dir.join("identity/node_id")).ok().map(|s| s.trim().to_owned()), 0),
    }
}

async fn stat(State(explorer): State<Explorer>) -> ApiResult {
    let (counts, frontier_size, best, rejected) = explorer
        .read(|s| {
            let best = s.frontier(None, 1)?.first().map(|f| f.val_bpb);
            Ok((s.counts()?, s.frontier_size()?, best, s.rejected()?.len()))
        })
        .await?;
    let (node_id, peers) = node_facts(&explorer);
    ok(json!({
        "experiment_count": counts.total,
        "frontier_size": frontier_size,
        "best_val_bpb": best,
        "peer_count": peers,
        "node_id": node_id,
        "ws_client": explorer.ws_clients.load(Ordering::Relaxed),
        "keep": counts.keep,
        "discard": counts.discard,
        "crash": counts.crash,
        "rejected": rejected,
    }))
}

#[derive(Debug, Deserialize)]
struct GraphQuery {
    /// `full` (every record, Python's default) or `lineage` (the frontier's lineages).
    mode: Option<String>,
    /// `full` records (Python's) or `summary` nodes.
    fields: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn graph(State(explorer): State<Explorer>, Query(q): Query<GraphQuery>) -> ApiResult {
    let limits = explorer.limits;
    let limit = q.limit.unwrap_or(limits.graph_page).clamp(1, limits.graph_page);
    let offset = q.offset.unwrap_or(0);
    let summary = match q.fields.as_deref() {
        None | Some("full") => false,
        Some("summary") => true,
        Some(other) => return Err(ApiError::bad_request(format!("fields={other:?}: use full or summary"))),
    };
    let lineage = match q.mode.as_deref() {
        None | Some("full") => false,
        Some("lineage") => true,
        Some(other) => return Err(ApiError::bad_request(format!("mode={other:?}: use full or lineage"))),
    };
    let per_class = limits.lineage_per_class;
    // One more than asked tells whether another page follows.
    let (mut rows, total) = explorer
        .read(move |s| {
            let rows =
                if lineage { s.frontier_lineages(per_class, limit + 1)? } else { s.graph_page(offset, limit + 1)? };
            Ok((rows, s.total()?))
        })
        .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let nodes: Vec<Value> = rows.iter().map(if summary { view::summary } else { view::full }).collect();
    let frontier: Vec<&str> = rows.iter().filter(|r| r.on_frontier).map(|r| r.id.as_str()).collect();
    ok(json!({
        "node": nodes,
        "edge": view::edges(&rows),
        "frontier_id": frontier,
        "mode": if lineage { "lineage" } else { "full" },
        "offset": if lineage { 0 } else { offset },
        "next_offset": (more && !lineage).then_some(offset + limit),
        "truncated": more,
        "total": total,
    }))
}

#[derive(Debug, Deserialize)]
struct FrontierQuery {
    /// One GPU model (Python's parameter).
    gpu: Option<String>,
    /// One GPU class (`H100`, `CPU`, …).
    class: Option<String>,
    /// One task (its id).
    task: Option<String>,
    limit: Option<usize>,
}

async fn frontier(State(explorer): State<Explorer>, Query(q): Query<FrontierQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(explorer.limits.list).clamp(1, explorer.limits.list);
    let rows = explorer
        .read(move |s| {
            let task = q.task.as_deref().filter(|t| !t.is_empty());
            let entries = match &q.class {
                Some(class) => s.frontier_of_class_in(task, class, limit)?,
                None => s.frontier_in(task, q.gpu.as_deref().filter(|g| !g.is_empty()), limit)?,
            };
            let mut rows = Vec::with_capacity(entries.len());
            for entry in entries {
                if let Some(row) = s.browse_one(&entry.id)? {
                    rows.push((row, verified(s, &entry.id)?));
                }
            }
            Ok(rows)
        })
        .await?;
    ok(Value::Array(
        rows.iter()
            .map(|(row, verified)| {
                let mut value = view::full(row);
                value["verified"] = json!(verified);
                value
            })
            .collect(),
    ))
}

/// A signed verification of the record is stored here.
fn verified(store: &DagStore, id: &str) -> Result<bool, StoreError> {
    Ok(store.controls_for(id)?.iter().any(|e| e.kind == ControlKind::Verification))
}

/// One GPU class's frontier.
#[derive(Debug, Default)]
struct ClassFrontier {
    size: u64,
    gpu_models: Vec<String>,
    best: Option<(String, f64)>,
}

async fn frontier_classes(State(explorer): State<Explorer>) -> ApiResult {
    let models = explorer.read(|s| s.frontier_by_model()).await?;
    let mut classes: BTreeMap<String, ClassFrontier> = BTreeMap::new();
    for model in models {
        let class = classes.entry(gpu_class(&model.gpu_model)).or_default();
        class.size += model.size;
        if class.best.as_ref().is_none_or(|(_, best)| model.best_val_bpb < *best) {
            class.best = Some((model.best_id.clone(), model.best_val_bpb));
        }
        class.gpu_models.push(model.gpu_model);
    }
    ok(Value::Array(
        classes
            .into_iter()
            .map(|(class, frontier)| {
                json!({
                    "class": class,
                    "size": frontier.size,
                    "gpu_models": frontier.gpu_models,
                    "best_id": frontier.best.as_ref().map(|b| b.0.clone()),
                    "best_val_bpb": frontier.best.as_ref().map(|b| b.1),
                })
            })
            .collect(),
    ))
}

/// Verification state of one record: signed events about it and a dispute's verdict.
fn verification_state(store: &DagStore, id: &str) -> Result<Value, StoreError> {
    let events = store.controls_for(id)?;
    let count = |kind: ControlKind| events.iter().filter(|e| e.kind == kind).count();
    let rejected = store.rejected()?.into_iter().find(|(r, _)| r == id).map(|(_, truth)| truth);
    Ok(json!({
        "verified": count(ControlKind::Verification) > 0,
        "verifications": count(ControlKind::Verification),
        "challenges": count(ControlKind::Challenge),
        "challenge_responses": count(ControlKind::ChallengeResponse),
        "disputes": count(ControlKind::Dispute),
        "rejected": rejected.is_some(),
        "ground_truth": rejected,
    }))
}

async fn experiment(State(explorer): State<Explorer>, Path(id): Path<String>) -> ApiResult {
    let id = cid(&id)?;
    let found = explorer
        .read(move |s| match s.browse_one(&id)? {
            Some(row) => Ok(Some((row, verification_state(s, &id)?, s.measured_by(&id)?))),
            None => Ok(None),
        })
        .await?;
    let (row, state, measured_by) = found.ok_or_else(ApiError::not_found)?;
    let mut value = view::full(&row);
    value["verification"] = state;
    value["measured_by"] = json!(measured_by.map(|by| by.as_str()));
    ok(value)
}

async fn ancestor(State(explorer): State<Explorer>, Path(id): Path<String>) -> ApiResult {
    let id = cid(&id)?;
    let limit = explorer.limits.list;
    let rows = explorer
        .read(move |s| {
            let mut rows: Vec<BrowseRow> = Vec::new();
            let mut next = Some(id);
            while let Some(id) = next.take() {
                if rows.len() >= limit {
                    break;
                }
                let Some(row) = s.browse_one(&id)? else { break };
                next = row.parent.clone();
                rows.push(row);
            }
            Ok(rows)
        })
        .await?;
    if rows.is_empty() {
        return Err(ApiError::not_found());
    }
    ok(Value::Array(rows.iter().map(view::full).collect()))
}

async fn children(State(explorer): State<Explorer>, Path(id): Path<String>) -> ApiResult {
    let id = cid(&id)?;
    let limit = explorer.limits.list;
    let rows = explorer.read(move |s| s.children_rows(&id, limit)).await?;
    ok(Value::Array(rows.iter().map(view::full).collect()))
}

async fn verification(State(explorer): State<Explorer>, Path(id): Path<String>) -> ApiResult {
    let id = cid(&id)?;
    let (state, events) = explorer
        .read(move |s| {
            if !s.contains(&id)? {
                return Ok(None);
            }
            let events: Vec<Value> = s
                .controls_for(&id)?
                .iter()
                .map(|e| {
                    json!({
                        "type": e.kind.as_str(),
                        "actor": e.actor(),
                        "timestamp": e.timestamp,
                        "val_bpb": e.number(match e.kind {
                            ControlKind::Challenge | ControlKind::Dispute => "challenger_bpb",
                            ControlKind::ChallengeResponse | ControlKind::Verification => "verifier_bpb",
                        }),
                    })
                })
                .collect();
            Ok(Some((verification_state(s, &id)?, events)))
        })
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut value = state;
    value["events"] = Value::Array(events);
    ok(value)
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn recent(State(explorer): State<Explorer>, Query(q): Query<LimitQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(50).clamp(1, explorer.limits.list);
    let rows = explorer.read(move |s| s.recent_rows(limit)).await?;
    ok(Value::Array(rows.iter().map(view::full).collect()))
}

async fn node_experiments(
    State(explorer): State<Explorer>,
    Path(node_id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult {
    if node_id.len() != 64 || !node_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("not a node id (64 hex characters)"));
    }
    let limit = q.limit.unwrap_or(explorer.limits.list).clamp(1, explorer.limits.list);
    let rows = explorer.read(move |s| s.by_node(&node_id, limit)).await?;
    ok(Value::Array(rows.iter().map(view::full).collect()))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

async fn search(State(explorer): State<Explorer>, Query(q): Query<SearchQuery>) -> ApiResult {
    let query = q.q.unwrap_or_default();
    if query.len() > explorer.limits.query_bytes {
        return Err(ApiError::bad_request(format!("q is longer than {} bytes", explorer.limits.query_bytes)));
    }
    if query.chars().count() < 2 {
        return ok(json!([]));
    }
    let limit = explorer.limits.search;
    let rows = explorer.read(move |s| s.search(&query, limit)).await?;
    ok(Value::Array(rows.iter().map(view::full).collect()))
}

/// The node's measured run-to-run noise per setting and the keep margin it gives
/// (`noise.json`, rewritten by the running node).
async fn noise(State(explorer): State<Explorer>) -> ApiResult {
    ok(crate::research::noise::NoiseBook::read(&explorer.data_dir).report(crate::node::unix_now()))
}

async fn leaderboard(State(explorer): State<Explorer>) -> ApiResult {
    let tallies = explorer.read(|s| s.node_tallies()).await?;
    // The verifier's decayed scores (node id → score), rewritten by the running node.
    let scores: serde_json::Map<String, Value> = std::fs::read_to_string(explorer.data_dir.join("reputation.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let mut rows: Vec<(f64, Value)> = tallies
        .into_iter()
        .map(|t| {
            let score = scores.get(&t.node_id).and_then(Value::as_f64).unwrap_or(0.0);
            let row = json!({
                "node_id": t.node_id,
                "score": score,
                "experiments_published": t.published,
                "experiments_verified": t.verified,
                "verifications_performed": t.verifications,
                "disputes_won": t.disputes_won,
                "disputes_lost": t.disputes_lost,
            });
            (score, row)
        })
        .collect();
    rows.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| b.1["experiments_published"].as_u64().cmp(&a.1["experiments_published"].as_u64()))
    });
    ok(Value::Array(rows.into_iter().take(50).map(|(_, row)| row).collect()))
}

async fn progress(State(explorer): State<Explorer>) -> ApiResult {
    let limit = explorer.limits.progress_points;
    let keeps = explorer.read(move |s| s.keeps_over_time(limit)).await?;
    // Per GPU class, the keeps that lowered the best val_bpb so far.
    let mut classes: BTreeMap<String, (f64, Vec<Value>)> = BTreeMap::new();
    for keep in keeps {
        let (best, points) = classes.entry(gpu_class(&keep.gpu_model)).or_insert((f64::INFINITY, Vec::new()));
        if keep.val_bpb < *best {
            *best = keep.val_bpb;
            points.push(json!({"timestamp": keep.timestamp, "val_bpb": keep.val_bpb, "id": keep.id}));
        }
    }
    ok(Value::Array(
        classes.into_iter().map(|(class, (_, points))| json!({"class": class, "points": points})).collect(),
    ))
}

async fn artifact(State(explorer): State<Explorer>, Path(id): Path<String>) -> ApiResult {
    let id = cid(&id)?;
    let artifacts = explorer.artifacts.clone();
    let max = explorer.limits.artifact_bytes;
    let read = tokio::task::spawn_blocking(move || artifacts.get(&id).map(|bytes| (id, bytes)))
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "artifact read failed".into()))?;
    match read {
        Ok((id, Some(bytes))) if bytes.len() <= max => {
            ok(json!({"cid": id, "content": String::from_utf8_lossy(&bytes)}))
        }
        Ok((_, Some(bytes))) => Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("artifact is {} bytes; the explorer serves up to {max}", bytes.len()),
        )),
        Ok((_, None)) => Err(ApiError::not_found()),
        Err(e) => {
            tracing::warn!(error = %e, "explorer: artifact");
            Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, "the artifact cannot be read".into()))
        }
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

//! The explorer's HTTP and WebSocket API over a real store, served on 127.0.0.1: Python's
//! paths and shapes, the limits Python lacks, the security headers, and bad input of every
//! kind (bad CIDs, traversal attempts, writes, foreign Host headers, oversize artifacts).

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use spore_agent::explorer::{self, ExplorerConfig};
use spore_agent::node::NodeConfig;
use spore_agent::research::artifacts::ArtifactStore;
use spore_agent::store::{DagStore, MeasuredBy, StoredRecord};
use spore_spec::{ExperimentRecord, Identity, JsonNumber, Status};
use tokio_util::sync::CancellationToken;

/// The 23 fields of Python's record dict.
const PYTHON_FIELDS: [&str; 23] = [
    "id",
    "parent",
    "depth",
    "code_cid",
    "diff",
    "dataset_cid",
    "prepare_cid",
    "time_budget",
    "val_bpb",
    "peak_vram_mb",
    "num_steps",
    "num_params",
    "status",
    "description",
    "hypothesis",
    "agent_model",
    "gpu_model",
    "cuda_version",
    "torch_version",
    "node_id",
    "timestamp",
    "signature",
    "version",
];

struct Served {
    base: String,
    store_path: std::path::PathBuf,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn store(lines: &[String], path: &Path) {
    let mut store = DagStore::open(path).unwrap();
    let items: Vec<StoredRecord> = lines
        .iter()
        .map(|line| StoredRecord {
            record: ExperimentRecord::from_json(line).unwrap(),
            payload: line.clone(),
            flags: Vec::new(),
            received_at: 0,
        })
        .collect();
    store.insert_batch(&items).unwrap();
}

async fn serve(lines: &[String]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store_path = NodeConfig::new(dir.path().to_path_buf()).store_path();
    store(lines, &store_path);
    let listener = explorer::bind("127.0.0.1", 0).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let config = ExplorerConfig::new(dir.path(), &store_path);
    tokio::spawn(explorer::serve(listener, config, shutdown.clone()));
    Served { base, store_path, shutdown, _dir: dir }
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn sign(identity: &Identity, mut record: ExperimentRecord) -> String {
    identity.sign_record(&mut record);
    let mut wire = Vec::new();
    record.write_wire_payload(&mut wire);
    String::from_utf8(wire).unwrap()
}

fn id_of(line: &str) -> String {
    ExperimentRecord::from_json(line).unwrap().id
}

#[tokio::test(flavor = "multi_thread")]
async fn python_paths_answer_with_python_shapes_and_limits() {
    let lines = spore_tests::seed::research_dag(1_200, 4, 7);
    let served = serve(&lines).await;
    let base = &served.base;

    let (status, stat) = get(&format!("{base}/api/stat")).await;
    assert_eq!(status, 200);
    assert_eq!(stat["experiment_count"], 1_200);
    for key in ["frontier_size", "best_val_bpb", "peer_count", "node_id", "ws_client"] {
        assert!(stat.get(key).is_some(), "{key} missing from {stat}");
    }

    // Python's /api/graph: full records, parents before children, edges to parents.
    let (_, graph) = get(&format!("{base}/api/graph")).await;
    let nodes = graph["node"].as_array().unwrap();
    assert_eq!(nodes.len(), 1_200);
    for field in PYTHON_FIELDS {
        assert!(nodes[5].get(field).is_some(), "{field} missing");
    }
    let position: std::collections::HashMap<&str, usize> =
        nodes.iter().enumerate().map(|(i, n)| (n["id"].as_str().unwrap(), i)).collect();
    for edge in graph["edge"].as_array().unwrap() {
        assert!(position[edge["source"].as_str().unwrap()] < position[edge["target"].as_str().unwrap()]);
    }
    // The values are the signed ones: the record re-verifies from the API's fields.
    let first = lines.iter().find(|l| id_of(l) == nodes[7]["id"]).unwrap();
    let signed: Value = serde_json::from_str(first).unwrap();
    for field in PYTHON_FIELDS {
        assert_eq!(nodes[7][field], signed[field], "{field}");
    }

    // Pages: every record exactly once, then next_offset is null.
    let mut seen = std::collections::HashSet::new();
    let mut offset = Some(0u64);
    while let Some(at) = offset {
        let (_, page) = get(&format!("{base}/api/graph?fields=summary&limit=500&offset={at}")).await;
        for node in page["node"].as_array().unwrap() {
            assert!(seen.insert(node["id"].as_str().unwrap().to_string()), "a record twice");
            assert!(node.get("diff").is_none(), "summaries carry no diff");
        }
        offset = page["next_offset"].as_u64();
    }
    assert_eq!(seen.len(), 1_200);
    let (_, capped) = get(&format!("{base}/api/graph?limit=999999")).await;
    assert!(capped["node"].as_array().unwrap().len() <= 5_000);

    // The lineage view: every node's parent is in the view (no dangling lineage), the best
    // frontier records are in it, and so is what was tried from their ancestors.
    let (_, lineage) = get(&format!("{base}/api/graph?mode=lineage&fields=summary")).await;
    let ids: std::collections::HashSet<&str> =
        lineage["node"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert!(!ids.is_empty() && ids.len() < 1_200, "{} nodes", ids.len());
    for node in lineage["node"].as_array().unwrap() {
        if let Some(parent) = node["parent"].as_str() {
            assert!(ids.contains(parent), "lineage broken at {}", node["id"]);
        }
    }
    let statuses: std::collections::HashSet<&str> =
        lineage["node"].as_array().unwrap().iter().map(|n| n["status"].as_str().unwrap()).collect();
    assert!(statuses.contains("discard") && statuses.contains("crash"), "{statuses:?}");
    let (_, frontier) = get(&format!("{base}/api/frontier?limit=1")).await;
    let best = frontier[0]["id"].as_str().unwrap();
    assert!(ids.contains(best));
    assert_eq!(frontier[0]["verified"], false);

    // Frontier per class, recent, node lists, children, lineage.
    let (_, classes) = get(&format!("{base}/api/frontier/classes")).await;
    let names: Vec<&str> = classes.as_array().unwrap().iter().map(|c| c["class"].as_str().unwrap()).collect();
    assert_eq!(names, ["A100", "CPU", "H100"]);
    let (_, h100) = get(&format!("{base}/api/frontier?class=H100")).await;
    assert!(h100.as_array().unwrap().iter().all(|r| r["gpu_model"] == "NVIDIA H100 80GB HBM3"));
    let (_, recent) = get(&format!("{base}/api/recent?limit=100000")).await;
    assert_eq!(recent.as_array().unwrap().len(), 500, "recent is capped");
    let (_, recent) = get(&format!("{base}/api/recent")).await;
    assert_eq!(recent.as_array().unwrap().len(), 50, "Python's default");
    assert!(recent[0]["timestamp"].as_i64() >= recent[1]["timestamp"].as_i64());
    let node_id = recent[0]["node_id"].as_str().unwrap();
    let (_, mine) = get(&format!("{base}/api/node/{node_id}/experiment")).await;
    assert!(mine.as_array().unwrap().iter().all(|r| r["node_id"] == node_id));
    let (_, ancestors) = get(&format!("{base}/api/experiment/{best}/ancestor")).await;
    let chain = ancestors.as_array().unwrap();
    assert_eq!(chain[0]["id"], best, "self first");
    assert_eq!(chain.last().unwrap()["parent"], Value::Null, "down to the baseline");
    for pair in chain.windows(2) {
        assert_eq!(pair[0]["parent"], pair[1]["id"]);
    }
    let parent = chain[1]["id"].as_str().unwrap();
    let (_, children) = get(&format!("{base}/api/experiment/{parent}/children")).await;
    assert!(children.as_array().unwrap().iter().any(|c| c["id"] == best));
    let (_, one) = get(&format!("{base}/api/experiment/{best}")).await;
    assert_eq!(one["verification"]["verified"], false);
    assert_eq!(one["on_frontier"], true);
    // A peer's record: nobody here measured it.
    assert_eq!(one["measured_by"], Value::Null);
    DagStore::open(&served.store_path).unwrap().set_measured_by(best, MeasuredBy::TrainPy).unwrap();
    let (_, one) = get(&format!("{base}/api/experiment/{best}")).await;
    assert_eq!(one["measured_by"], "train.py");

    // Progress: per class, strictly improving.
    let (_, progress) = get(&format!("{base}/api/progress")).await;
    for series in progress.as_array().unwrap() {
        let points: Vec<f64> =
            series["points"].as_array().unwrap().iter().map(|p| p["val_bpb"].as_f64().unwrap()).collect();
        assert!(points.windows(2).all(|w| w[1] < w[0]), "{series}");
    }
    // The leaderboard knows every publisher.
    let (_, board) = get(&format!("{base}/api/leaderboard")).await;
    let published: u64 = board.as_array().unwrap().iter().map(|r| r["experiments_published"].as_u64().unwrap()).sum();
    assert_eq!(published, 1_200);
}

#[tokio::test(flavor = "multi_thread")]
async fn search_matches_what_python_matches() {
    let identity = Identity::from_seed([3; 32]);
    let mut a = spore_tests::records::record(1);
    a.description = "Set MATRIX_LR higher".into();
    let mut b = spore_tests::records::record(2);
    b.gpu_model = "NVIDIA H100 80GB HBM3".into();
    let lines = vec![sign(&identity, a), sign(&identity, b)];
    let served = serve(&lines).await;
    let base = &served.base;
    let search = |q: &str| {
        let url = format!("{base}/api/search?q={}", q);
        async move { get(&url).await }
    };
    assert_eq!(search("m").await.1, serde_json::json!([]), "under two characters");
    assert_eq!(search("matrix_lr").await.1.as_array().unwrap().len(), 1, "description, any case");
    assert_eq!(search("h100").await.1.as_array().unwrap().len(), 1, "GPU model, any case");
    let id = id_of(&lines[0]);
    assert_eq!(search(&id[..6]).await.1[0]["id"], id.as_str(), "id prefix");
    assert_eq!(search(&id[..6].to_uppercase()).await.1.as_array().unwrap().len(), 0, "the prefix is case-sensitive");
    assert_eq!(search(&identity.node_id()[..10]).await.1.as_array().unwrap().len(), 2, "node id prefix");
    assert_eq!(search("%25").await.1.as_array().unwrap().len(), 0, "no LIKE wildcards");
    let (status, body) = search(&"x".repeat(201)).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("200 bytes"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_nothing_else() {
    let identity = Identity::from_seed([4; 32]);
    let mut orphan = spore_tests::records::record(1);
    orphan.parent = Some("ab".repeat(32));
    orphan.depth = JsonNumber::from(5);
    let lines = vec![sign(&identity, orphan)];
    let served = serve(&lines).await;
    let base = &served.base;

    // Not found is 404 with Python's body; a malformed CID is 400.
    let missing = "cd".repeat(32);
    assert_eq!(
        get(&format!("{base}/api/experiment/{missing}")).await,
        (404, serde_json::json!({"error": "not found"}))
    );
    let (status, body) = get(&format!("{base}/api/experiment/not-a-cid")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("CID"));
    assert_eq!(get(&format!("{base}/api/experiment/{}", "AB".repeat(32))).await.0, 400, "uppercase is not a CID");
    assert_eq!(get(&format!("{base}/api/node/xyz/experiment")).await.0, 400);
    assert_eq!(get(&format!("{base}/api/graph?mode=everything")).await.0, 400);
    assert_eq!(get(&format!("{base}/api/graph?limit=-1")).await.0, 400);
    assert_eq!(get(&format!("{base}/api/nothing-here")).await.0, 404);

    // The orphan is shown as one, with an edge to its missing parent.
    let orphan_id = id_of(&lines[0]);
    let (_, one) = get(&format!("{base}/api/experiment/{orphan_id}")).await;
    assert_eq!(one["orphan"], true);
    let (_, graph) = get(&format!("{base}/api/graph")).await;
    assert_eq!(graph["edge"][0]["source"], "ab".repeat(32));
    let (_, chain) = get(&format!("{base}/api/experiment/{orphan_id}/ancestor")).await;
    assert_eq!(chain.as_array().unwrap().len(), 1, "the lineage stops at the missing parent");

    // Artifacts: only by CID, never a path; stored ones are served, big ones refused.
    let artifacts = ArtifactStore::new(served.store_path.parent().unwrap().parent().unwrap());
    let code = artifacts.put(b"print('train')\n").unwrap();
    let (status, body) = get(&format!("{base}/api/artifact/{code}")).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("print('train')\n")));
    let big = artifacts.put(&vec![b'x'; (1 << 20) + 1]).unwrap();
    assert_eq!(get(&format!("{base}/api/artifact/{big}")).await.0, 413);
    for path in ["..%2F..%2Fidentity%2Fprivate_key", "../../identity/private_key", "%2e%2e", &missing] {
        let response = reqwest::get(format!("{base}/api/artifact/{path}")).await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(matches!(status, 400 | 404), "{path}: {status}");
        assert!(!text.contains(&identity.seed_hex()), "{path} leaked a key");
    }

    // Read-only, with the security headers everywhere, and no DNS rebinding.
    let client = reqwest::Client::new();
    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response = client.request(method.clone(), format!("{base}/api/stat")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 405, "{method}");
    }
    let response = client.get(format!("{base}/api/stat")).header("host", "attacker.example").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 421);
    for path in ["/", "/api/stat", "/api/nothing-here", "/assets/missing.js"] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        let csp = response.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let (status, doc) = get(&format!("{base}/api/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/graph"].is_object() && doc["paths"]["/ws"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_pushes_each_newly_stored_record_in_python_s_message() {
    let identity = Identity::from_seed([5; 32]);
    let served = serve(&[sign(&identity, spore_tests::records::record(1))]).await;
    let url = served.base.replace("http://", "ws://") + "/ws";
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // Clients may talk; the server reads and ignores it.
    socket.send(tokio_tungstenite::tungstenite::Message::text("hello")).await.unwrap();
    let (_, stat) = get(&format!("{}/api/stat", served.base)).await;
    assert_eq!(stat["ws_client"], 1);

    let mut next = spore_tests::records::record(2);
    next.status = Status::Discard;
    next.description = "<img src=x onerror=alert(1)>".into();
    let line = sign(&identity, next);
    store(std::slice::from_ref(&line), &served.store_path);
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap().unwrap().unwrap();
    let event: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
    assert_eq!(event["event"], "experiment");
    assert_eq!(event["data"]["id"], id_of(&line).as_str());
    assert_eq!(
        event["data"]["description"], "<img src=x onerror=alert(1)>",
        "data as signed; the page renders it as text"
    );
    assert_eq!(event["data"]["status"], "discard");

    // The old record is not replayed: only what is stored after the connection opened.
    let quiet = tokio::time::timeout(Duration::from_millis(400), socket.next()).await;
    assert!(quiet.is_err(), "unexpected message {quiet:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_frontier_is_scoped_by_task_and_the_tasks_are_listed() {
    let identity = Identity::from_seed([12; 32]);
    let record = |n: i64, parent: Option<&str>, task: Option<&str>, val_bpb: f64| {
        let mut r = spore_tests::records::record(n);
        r.parent = parent.map(str::to_string);
        r.depth = JsonNumber::from(i64::from(parent.is_some()));
        r.val_bpb = JsonNumber::Float(val_bpb);
        if let Some(task) = task {
            r.task_id = Some(task.to_string());
            r.version = JsonNumber::from(2);
        }
        sign(&identity, r)
    };
    let manifest = spore_spec::TaskManifest::signed(&identity, "scoped", 300, 1_773_000_000);
    let legacy_root = record(1, None, None, 1.2);
    let legacy_child = record(2, Some(&id_of(&legacy_root)), None, 1.1);
    let task_root = record(3, None, Some(&manifest.task_id), 0.9);
    let served = serve(&[legacy_root.clone(), legacy_child.clone(), task_root.clone()]).await;
    DagStore::open(&served.store_path).unwrap().insert_task(&manifest, 0, false).unwrap();
    let idle = spore_spec::TaskManifest::signed(&identity, "idle", 60, 1_773_000_001);
    DagStore::open(&served.store_path).unwrap().insert_task(&idle, 0, false).unwrap();
    let base = &served.base;

    let (status, tasks) = get(&format!("{base}/api/task")).await;
    assert_eq!(status, 200);
    let summary: Vec<(&str, &str, &str, u64)> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let (id, name, source) =
                (t["task_id"].as_str().unwrap(), t["name"].as_str().unwrap(), t["source"].as_str());
            (id, name, source.unwrap(), t["frontier_size"].as_u64().unwrap())
        })
        .collect();
    let legacy_name = format!("legacy-{}", &id_of(&legacy_root)[..8]);
    let legacy_id = id_of(&legacy_root);
    assert_eq!(
        summary,
        [
            (manifest.task_id.as_str(), "scoped", "manifest", 1),
            (legacy_id.as_str(), legacy_name.as_str(), "legacy", 1),
            (idle.task_id.as_str(), "idle", "manifest", 0),
        ]
    );
    let ids = |rows: &Value| {
        rows.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect::<Vec<String>>()
    };
    let (_, all) = get(&format!("{base}/api/frontier")).await;
    assert_eq!(ids(&all), vec![id_of(&task_root), id_of(&legacy_child)]);
    let (_, legacy) = get(&format!("{base}/api/frontier?task={legacy_id}")).await;
    assert_eq!(ids(&legacy), vec![id_of(&legacy_child)]);
    let (_, scoped) = get(&format!("{base}/api/frontier?task={}&class=CPU", manifest.task_id)).await;
    assert_eq!(ids(&scoped), vec![id_of(&task_root)]);
    let (_, none) = get(&format!("{base}/api/frontier?task={}", idle.task_id)).await;
    assert_eq!(ids(&none), Vec::<String>::new());
}

//! `spore graph`, `spore status` and `spore version` as a user runs them, on a small DAG made
//! with `spore record sign` and `spore record import`: the tree in the Python CLI's format
//! (children in timestamp order, `--depth`), the recent-activity table, the version, and the
//! default data directory initialised on first use.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::Path;
use std::process::{Command, Output};

fn spore(args: &[&str], stdin: &[u8]) -> Output {
    spore_tests::bins::run_with_stdin(std::path::Path::new(env!("CARGO_BIN_EXE_spore")), args, stdin)
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Signs one record (with `signer`'s key) and imports it into `node`; returns its id.
fn add(dir: &Path, parent: Option<&str>, status: &str, val_bpb: &str, description: &str, timestamp: u64) -> String {
    let parent = parent.map(|p| format!("\"{p}\"")).unwrap_or_else(|| "null".into());
    let fields = format!(
        "{{\"parent\":{parent},\"depth\":0,\"code_cid\":\"{timestamp:064x}\",\"diff\":\"\",\"dataset_cid\":\"d\",\
         \"prepare_cid\":\"\",\"time_budget\":300,\"val_bpb\":{val_bpb},\"peak_vram_mb\":0.0,\"num_steps\":1,\
         \"num_params\":1,\"status\":\"{status}\",\"description\":\"{description}\",\"hypothesis\":\"\",\
         \"agent_model\":\"t\",\"gpu_model\":\"cpu\",\"cuda_version\":\"none\",\"torch_version\":\"2\",\
         \"timestamp\":{timestamp}}}\n"
    );
    let signer = dir.join("signer");
    let signed = stdout(&spore(&["record", "sign", "--data-dir", signer.to_str().unwrap()], fields.as_bytes()));
    let node = dir.join("node");
    stdout(&spore(&["record", "import", "--data-dir", node.to_str().unwrap()], signed.as_bytes()));
    let id = signed.split("\"id\":\"").nth(1).unwrap();
    id[..64].to_string()
}

#[test]
fn graph_prints_the_python_tree_and_status_the_recent_activity() {
    let dir = tempfile::tempdir().unwrap();
    let root = add(dir.path(), None, "keep", "1.5", "baseline", 1_773_000_000);
    // Imported out of time order: the tree orders children by timestamp, as Python does.
    let wider = add(dir.path(), Some(&root), "discard", "1.6", "wider", 1_773_000_020);
    let lower = add(dir.path(), Some(&root), "keep", "1.4", "lower lr", 1_773_000_010);
    let long = "a description much longer than the forty characters the tree keeps";
    let crashed = add(dir.path(), Some(&lower), "crash", "0.0", long, 1_773_000_030);
    let node = dir.path().join("node");
    let data_dir = node.to_str().unwrap();
    let s = |id: &str| id[..8].to_string();

    let tree = stdout(&spore(&["graph", "--data-dir", data_dir], b""));
    let expected = format!(
        "└─ [+] {} val_bpb=1.500000 | baseline\n   \
         ├─ [+] {} val_bpb=1.400000 | lower lr\n   \
         │  └─ [!] {} val_bpb=0.000000 | {}\n   \
         └─ [x] {} val_bpb=1.600000 | wider\n",
        s(&root),
        s(&lower),
        s(&crashed),
        &long[..40],
        s(&wider)
    );
    assert_eq!(tree, expected);
    let shallow = stdout(&spore(&["graph", "--depth", "2", "--data-dir", data_dir], b""));
    assert_eq!(shallow.lines().count(), 3, "two levels: {shallow}");
    assert!(!shallow.contains(&s(&crashed)));

    let status = stdout(&spore(&["status", "--data-dir", data_dir], b""));
    let recent: Vec<&str> = status.lines().skip_while(|l| *l != "recent").skip(2).collect();
    assert_eq!(recent.len(), 4, "{status}");
    assert!(recent[0].contains(&crashed[..12]) && recent[0].contains("crash"), "newest first: {status}");
    assert!(recent[3].contains(&root[..12]) && recent[3].contains("1.500000") && recent[3].contains("baseline"));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&spore(&["status", "--json", "--data-dir", data_dir], b""))).unwrap();
    let ids: Vec<&str> = json["recent"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [crashed.as_str(), wider.as_str(), lower.as_str(), root.as_str()]);
    assert_eq!(json["recent"][0]["description"], long);
}

#[test]
fn version_names_the_package_version() {
    let out = stdout(&spore(&["version"], b""));
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn the_default_data_dir_is_initialised_on_first_use_and_an_explicit_one_never() {
    let home = tempfile::tempdir().unwrap();
    let run =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_spore")).args(args).env("HOME", home.path()).output().unwrap();
    let first = run(&["status"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stderr).contains("initialised a new node"));
    let node_id = std::fs::read_to_string(home.path().join(".spore/identity/node_id")).unwrap();
    assert!(String::from_utf8_lossy(&first.stdout).contains(node_id.trim()));
    // Once only: the same identity after, and nothing said.
    let second = run(&["graph"]);
    assert!(second.status.success() && !String::from_utf8_lossy(&second.stderr).contains("initialised"));
    assert_eq!(std::fs::read_to_string(home.path().join(".spore/identity/node_id")).unwrap(), node_id);
    // A mistyped --data-dir is refused, not made.
    let typo = home.path().join(".spor");
    let refused = run(&["status", "--data-dir", typo.to_str().unwrap()]);
    assert!(!refused.status.success() && !typo.exists());
}

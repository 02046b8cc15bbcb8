#![allow(clippy::unwrap_used)]
//! The climbmix shards, offline: a local server in the dataset's URL scheme serves small parquet
//! shards the test makes (real text), and fails as networks do — errors, a download cut off
//! halfway, a shard that is not what the host says it is. Fetches resume, retry and keep only
//! checked shards; two nodes on one machine share one copy; export and import carry the shards
//! to an air-gapped machine and refuse damaged ones; a node researches the climbmix task.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use spore_agent::data::fetch::{FetchOptions, fetch};
use spore_agent::data::{Cache, VAL_SHARD, sha256_file, shard_name};
use spore_tests::bins::workspace_bin;
use spore_tests::python::workspace_python;
use spore_tests::shard_server::{Faults, ShardServer};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

/// `train` training shards and the validation shard, made by `tests/python/climbmix_shards.py`.
fn make_shards(dir: &Path, train: u32) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/climbmix_shards.py");
    let out = Command::new(workspace_python()).arg(script).arg(dir).arg(train.to_string()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn cache_in(dir: &Path) -> Cache {
    Cache { data_root: dir.join("data"), val_root: dir.join("data-val") }
}

fn options(server: &ShardServer, shards: u32) -> FetchOptions {
    let mut options = FetchOptions::new(&server.base_url(), shards);
    options.backoff = Duration::from_millis(20);
    options.attempts = 4;
    options.stall = Duration::from_secs(20);
    options
}

fn leftovers(cache: &Cache) -> Vec<PathBuf> {
    [cache.dir_of(0), cache.dir_of(VAL_SHARD)]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect()
}

fn spore(args: &[&str], cache: &Cache) -> Output {
    Command::new(SPORE)
        .args(args)
        .env("SPORE_DATA_CACHE", &cache.data_root)
        .env("SPORE_VAL_CACHE", &cache.val_root)
        .env_remove("SPORE_DATA_MIRROR")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_resumes_a_cut_download_retries_errors_and_keeps_checked_shards_once() {
    let source = tempfile::tempdir().unwrap();
    make_shards(source.path(), 2);
    let faults = Faults {
        fail_first: [("shard_00000.parquet".to_string(), 2)].into(),
        truncate_first: ["shard_00001.parquet".to_string()].into(),
        ..Faults::default()
    };
    let server = ShardServer::start(source.path().to_path_buf(), faults);
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());

    let report = fetch(&cache, &options(&server, 2)).await.unwrap();
    assert_eq!(report.fetched, vec![0, 1, VAL_SHARD]);
    for index in [0, 1, VAL_SHARD] {
        let name = shard_name(index);
        assert_eq!(std::fs::read(cache.path_of(index)).unwrap(), std::fs::read(source.path().join(&name)).unwrap());
        let digest = sha256_file(&source.path().join(&name)).unwrap();
        assert_eq!(cache.recorded(index).unwrap(), Some(digest), "{name} is in SHA256SUMS");
    }
    // The validation shard lives apart from the training shards.
    assert!(cache.path_of(VAL_SHARD).starts_with(dir.path().join("data-val")));
    assert!(!dir.path().join("data/climbmix-400b-shuffle").join(shard_name(VAL_SHARD)).exists());
    let requests = server.requests();
    let of =
        |name: &str| requests.iter().filter(|r| r.name == name).map(|r| (r.range_start, r.status)).collect::<Vec<_>>();
    assert_eq!(of("shard_00000.parquet"), vec![(None, 500), (None, 500), (None, 200)]);
    let half = std::fs::metadata(source.path().join("shard_00001.parquet")).unwrap().len() / 2;
    assert_eq!(
        of("shard_00001.parquet"),
        vec![(None, 200), (Some(half), 206)],
        "the cut download resumed where it stopped"
    );
    assert!(leftovers(&cache).is_empty());

    // Fetched once: a second fetch asks the server nothing.
    let again = fetch(&cache, &options(&server, 2)).await.unwrap();
    assert_eq!((again.fetched.len(), again.present.len()), (0, 3));
    assert_eq!(server.requests().len(), requests.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shard_that_is_not_what_the_host_publishes_on_its_redirect_is_never_kept_and_a_missing_one_is_not_retried() {
    let source = tempfile::tempdir().unwrap();
    make_shards(source.path(), 2);
    // As Hugging Face answers: a redirect that publishes the digest, the file from a store that
    // does not.
    let faults =
        Faults { wrong_digest: ["shard_00001.parquet".to_string()].into(), redirect: true, ..Faults::default() };
    let server = ShardServer::start(source.path().to_path_buf(), faults);
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());

    // Three training shards wanted, two exist: shard_00002 is a 404.
    let error = format!("{:#}", fetch(&cache, &options(&server, 3)).await.unwrap_err());
    assert!(error.contains("2 of the shards could not be fetched"), "{error}");
    assert!(error.contains("shard_00001.parquet") && error.contains("the server publishes"), "{error}");
    assert!(error.contains("shard_00002.parquet") && error.contains("404"), "{error}");
    assert!(cache.path_of(0).is_file() && cache.path_of(VAL_SHARD).is_file());
    assert!(!cache.path_of(1).exists(), "the shard that failed its check is not kept");
    assert!(leftovers(&cache).is_empty());
    let requests = server.requests();
    let tries = |status| requests.iter().filter(|r| r.name == "shard_00001.parquet" && r.status == status).count();
    assert_eq!((tries(302), tries(200)), (4, 4), "tried four times, each through the redirect");
    assert_eq!(requests.iter().filter(|r| r.name == "shard_00002.parquet").count(), 1, "a 404 is not retried");
    assert_eq!(cache.train_shards(), 1);
}

#[test]
fn a_mirror_that_sends_more_than_a_shard_may_hold_is_cut_off_and_not_retried() {
    let source = tempfile::tempdir().unwrap();
    make_shards(source.path(), 2);
    let faults = Faults {
        endless: ["shard_00000.parquet".to_string()].into(),
        oversize_announced: ["shard_00001.parquet".to_string()].into(),
        ..Faults::default()
    };
    let server = ShardServer::start(source.path().to_path_buf(), faults);
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let limit_mb = 2;
    assert!(std::fs::metadata(source.path().join(shard_name(VAL_SHARD))).unwrap().len() < limit_mb << 20);

    let out = spore(
        &["data", "fetch", "--shards", "2", "--data-mirror", &server.base_url(), "--data-max-shard-mb", "2"],
        &cache,
    );
    let output = text(&out);
    assert!(!out.status.success(), "{output}");
    assert!(output.contains("2 of the shards could not be fetched"), "{output}");
    assert!(output.contains("shard_00000.parquet") && output.contains("sent more than the limit"), "{output}");
    assert!(output.contains("shard_00001.parquet") && output.contains("announces 1099511627776 bytes"), "{output}");
    // The endless answer was cut off near the limit (what it sent beyond is in socket buffers).
    let sent = server.sent("shard_00000.parquet");
    assert!(sent > limit_mb << 20 && sent < 64 << 20, "the server sent {sent} bytes");
    for index in [0, 1] {
        assert!(!cache.path_of(index).exists(), "{} is not kept", shard_name(index));
        let tries = server.requests().iter().filter(|r| r.name == shard_name(index)).count();
        assert_eq!(tries, 1, "{} is not retried", shard_name(index));
    }
    assert!(leftovers(&cache).is_empty(), "nothing of the refused downloads stays on disk");
    assert!(cache.path_of(VAL_SHARD).is_file(), "a shard within the limit is fetched");
}

#[test]
fn two_nodes_fetching_at_once_share_one_copy() {
    let source = tempfile::tempdir().unwrap();
    make_shards(source.path(), 2);
    let faults = Faults { delay: Duration::from_millis(400), ..Faults::default() };
    let server = ShardServer::start(source.path().to_path_buf(), faults);
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let start = || {
        Command::new(SPORE)
            .args(["data", "fetch", "--shards", "2", "--data-mirror", &server.base_url()])
            .env("SPORE_DATA_CACHE", &cache.data_root)
            .env("SPORE_VAL_CACHE", &cache.val_root)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (start(), start());
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    for index in [0, 1, VAL_SHARD] {
        let name = shard_name(index);
        let downloads = server.requests().iter().filter(|r| r.name == name && r.status == 200).count();
        assert_eq!(downloads, 1, "{name} was downloaded once for both nodes");
        assert_eq!(std::fs::read(cache.path_of(index)).unwrap(), std::fs::read(source.path().join(&name)).unwrap());
    }
    let status = spore(&["data", "status"], &cache);
    assert!(text(&status).contains("training shards: 2"), "{}", text(&status));
}

#[tokio::test(flavor = "multi_thread")]
async fn export_and_import_carry_the_shards_to_an_air_gapped_machine_and_refuse_damaged_ones() {
    let source = tempfile::tempdir().unwrap();
    make_shards(source.path(), 2);
    let server = ShardServer::start(source.path().to_path_buf(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let online = cache_in(&dir.path().join("online"));
    fetch(&online, &options(&server, 2)).await.unwrap();

    let carried = dir.path().join("usb");
    let out = spore(&["data", "export", carried.to_str().unwrap()], &online);
    assert!(out.status.success(), "{}", text(&out));
    let sums = std::fs::read_to_string(carried.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 3, "{sums}");

    // An air-gapped machine: no mirror at all, the shards come from the carried directory.
    let offline = cache_in(&dir.path().join("offline"));
    let out = spore(&["data", "import", carried.to_str().unwrap()], &offline);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("imported 3 shards"), "{}", text(&out));
    for index in [0, 1, VAL_SHARD] {
        assert_eq!(std::fs::read(offline.path_of(index)).unwrap(), std::fs::read(online.path_of(index)).unwrap());
    }
    let again = spore(&["data", "import", carried.to_str().unwrap()], &offline);
    assert!(
        text(&again).contains("imported 0 shards") && text(&again).contains("3 already present"),
        "{}",
        text(&again)
    );

    // A byte changed on the way: that shard is refused, the others come in.
    let damaged = dir.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for entry in std::fs::read_dir(&carried).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, damaged.join(path.file_name().unwrap())).unwrap();
    }
    let target = damaged.join("shard_00001.parquet");
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&target, bytes).unwrap();
    let third = cache_in(&dir.path().join("third"));
    let out = spore(&["data", "import", damaged.to_str().unwrap()], &third);
    assert!(!out.status.success());
    assert!(text(&out).contains("shard_00001.parquet: its SHA-256 is"), "{}", text(&out));
    assert!(third.path_of(0).is_file() && third.path_of(VAL_SHARD).is_file() && !third.path_of(1).exists());

    // The exported directory is a mirror as it stands.
    let mirror = ShardServer::start(carried.clone(), Faults::default());
    let fourth = cache_in(&dir.path().join("fourth"));
    let out = spore(&["data", "fetch", "--shards", "2", "--data-mirror", &mirror.base_url()], &fourth);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fourth.train_shards(), 2);
}

/// `spore run --genesis --dataset climbmix` for one experiment, fetching two training shards
/// from `server`; with `workspace`, its `train.py` is the one trained. Returns the node's log,
/// its records and the experiment's run log.
fn research(dir: &Path, server: &ShardServer, workspace: Option<&Path>) -> (String, Vec<Value>, String) {
    let cache = cache_in(dir);
    let data = dir.join("node");
    let mut command = Command::new(SPORE);
    command
        .args(["run", "--genesis", "--time-budget", "5", "--max-experiments", "1", "--dataset", "climbmix"])
        .args(["--data-shards", "2", "--data-mirror", &server.base_url()])
        .arg("--data-dir")
        .arg(&data)
        .args(["--no-explorer", "--no-bootstrap", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0"])
        .args(["--metrics-port", "0", "--python"])
        .arg(workspace_python())
        .env("SPORE_EVAL", workspace_bin("spore-eval", "spore-eval"))
        .env("SPORE_DATA_CACHE", &cache.data_root)
        .env("SPORE_VAL_CACHE", &cache.val_root)
        .env("RUST_LOG", "info");
    if let Some(workspace) = workspace {
        command.arg("--workspace").arg(workspace);
    }
    let out = command.output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let export = Command::new(SPORE).args(["record", "export", "--data-dir"]).arg(&data).output().unwrap();
    let records: Vec<Value> =
        String::from_utf8(export.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let runs: Vec<PathBuf> = std::fs::read_dir(data.join("run")).unwrap().map(|e| e.unwrap().path()).collect();
    let run_log: String =
        runs.iter().map(|run| std::fs::read_to_string(run.join("run.log")).unwrap_or_default()).collect();
    (log, records, run_log)
}

#[test]
fn a_node_researches_the_climbmix_task_from_a_mirror() {
    let source = tempfile::tempdir().unwrap();
    make_shards(source.path(), 2);
    let server = ShardServer::start(source.path().to_path_buf(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let (log, records, run_log) = research(dir.path(), &server, None);
    assert_eq!(cache.train_shards(), 2, "the node fetched the shards it was told to");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cache.data_root.join("climbmix-v1-s2/manifest.json")).unwrap()).unwrap();
    assert_eq!((manifest["vocab_size"].as_i64(), manifest["bos"].as_i64()), (Some(8192), Some(8188)));
    assert_eq!(records.len(), 1, "{log}");
    let baseline = &records[0];
    assert_eq!(baseline["dataset_cid"], manifest["dataset_cid"], "{baseline}");
    assert_eq!(baseline["status"], "keep", "{baseline}");
    let val_bpb = baseline["val_bpb"].as_f64().unwrap();
    assert!(val_bpb > 0.5 && val_bpb < 20.0, "{baseline}");
    // Measured by the evaluator on the packed validation rows, with the tokenizer's byte table.
    let bytes: i64 = run_log
        .split("[spore] evaluator: val_bpb ")
        .nth(1)
        .and_then(|rest| rest.split('(').nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no evaluator line in:\n{run_log}"));
    // 512 rows of 256 targets: a byte-level count would be at most 131,072; BPE tokens stand
    // for several bytes each.
    assert!(bytes > 2 * 131_072, "the evaluator weighed targets by the token-byte table: {bytes} bytes");
}

/// What a hostile `train.py` tries before training, knowing the node's paths: read the
/// validation shard and the packed validation rows, list the validation cache, and rewrite the
/// token-byte table the evaluator weighs targets by and a training shard. One line per try.
const CLIMBMIX_PROBE: &str = r#"
import glob, prepare
_VAL_ROOT = "@VAL_ROOT@"
_TRAIN_SHARD = "@DATA_ROOT@/climbmix-400b-shuffle/shard_00000.parquet"
for _name, _try in (("shard", lambda: open(_VAL_ROOT + "/climbmix-400b-shuffle/shard_06542.parquet", "rb").read()),
                    ("rows", lambda: prepare.load_tokens("val"))):
    try:
        print("VAL_READ", _name, len(_try()))
    except OSError as e:
        print("VAL_HIDDEN", _name, type(e).__name__)
print("VAL_FILES", len(glob.glob(_VAL_ROOT + "/**/*", recursive=True)))
for _name, _path in (("token_bytes", str(prepare.DATA_DIR / "token_bytes.bin")), ("train_shard", _TRAIN_SHARD)):
    try:
        with open(_path, "r+b") as _f:
            _f.write(b"\x00\x00")
        print("WROTE", _name)
    except OSError as e:
        print("NOT_WRITABLE", _name, type(e).__name__)
"#;

#[test]
fn a_hostile_train_py_reads_no_climbmix_validation_data_and_alters_no_shard_or_byte_table() {
    let source = tempfile::tempdir().unwrap();
    make_shards(source.path(), 2);
    let server = ShardServer::start(source.path().to_path_buf(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    let probe = CLIMBMIX_PROBE
        .replace("@VAL_ROOT@", cache.val_root.to_str().unwrap())
        .replace("@DATA_ROOT@", cache.data_root.to_str().unwrap());
    let train_py = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workspace/train.py"))
        .unwrap()
        .replace("\ndef main():\n", &format!("{probe}\n\ndef main():\n"));
    assert!(train_py.contains("VAL_HIDDEN"));
    std::fs::write(workspace.join("train.py"), train_py).unwrap();

    let (log, records, run_log) = research(dir.path(), &server, Some(&workspace));
    for line in
        ["VAL_HIDDEN shard", "VAL_HIDDEN rows", "VAL_FILES 0", "NOT_WRITABLE token_bytes", "NOT_WRITABLE train_shard"]
    {
        assert!(run_log.contains(line), "{line} missing from the run log:\n{run_log}");
    }
    assert!(!run_log.contains("VAL_READ") && !run_log.contains("WROTE"), "{run_log}");
    // Outside the jail, everything is as prepared, and the model was measured on the real rows.
    for index in [0, VAL_SHARD] {
        let name = shard_name(index);
        assert_eq!(std::fs::read(cache.path_of(index)).unwrap(), std::fs::read(source.path().join(&name)).unwrap());
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cache.data_root.join("climbmix-v1-s2/manifest.json")).unwrap()).unwrap();
    let table = std::fs::read(cache.data_root.join("climbmix-v1-s2/token_bytes.bin")).unwrap();
    assert_eq!(sha256_hex(&table), manifest["token_bytes_sha256"].as_str().unwrap());
    assert_eq!(records.len(), 1, "{log}");
    assert!(run_log.contains("[spore] evaluator: val_bpb "), "{run_log}");
    assert!(records[0]["val_bpb"].as_f64().unwrap() > 0.5, "{}", records[0]);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

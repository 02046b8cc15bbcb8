//! The climbmix task's data for tests: small shards in the dataset's layout (standard-library
//! source as documents, `python/climbmix_shards.py`), and a lab's data volume prepared from them
//! once with `spore data prepare`, laid out as a SporeNode's `spec.data` claim holds it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::bins::workspace_bin;
use crate::python::workspace_python;

/// The dataset's shard directory, under a data cache.
pub const SHARDS: &str = "climbmix-400b-shuffle";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Panics with the process's output unless it succeeded; returns that output.
pub fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

/// Two training shards under the data cache `cache`, the validation shard under `<cache>-val`.
pub fn shards_in(cache: &Path) {
    let made = tempfile::tempdir().expect("a temporary directory");
    ok(&Command::new(workspace_python())
        .arg(repo("tests/python/climbmix_shards.py"))
        .arg(made.path())
        .arg("2")
        .output()
        .expect("run climbmix_shards.py"));
    let train = cache.join(SHARDS);
    let val = PathBuf::from(format!("{}-val", cache.display())).join(SHARDS);
    std::fs::create_dir_all(&train).expect("create the shard directory");
    std::fs::create_dir_all(&val).expect("create the validation shard directory");
    for name in ["shard_00000.parquet", "shard_00001.parquet"] {
        std::fs::copy(made.path().join(name), train.join(name)).expect("copy a shard");
    }
    std::fs::copy(made.path().join("shard_06542.parquet"), val.join("shard_06542.parquet"))
        .expect("copy the validation shard");
}

/// Every file under `dir` with its contents' SHA-256, sorted: to show nothing was written there.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).expect("read a directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let digest = format!("{:x}", Sha256::digest(std::fs::read(&path).expect("read a file")));
                files.push((path, digest));
            }
        }
    }
    files.sort();
    files
}

/// `spore` with the data caches given (and nothing else of the environment's), on the climbmix
/// task and the CPU profile.
pub fn spore(args: &[&str], data: &Path, val: &Path) -> Output {
    Command::new(workspace_bin("spore-agent", "spore"))
        .args(args)
        .env("SPORE_DATA_CACHE", data)
        .env("SPORE_VAL_CACHE", val)
        .env("SPORE_DATASET", "climbmix")
        .env("SPORE_PROFILE", "cpu")
        .env("SPORE_PYTHON", workspace_python())
        .env("SPORE_EVAL", workspace_bin("spore-eval", "spore-eval"))
        .output()
        .expect("run spore")
}

/// A lab's data volume as README's "In a cluster" fills it: `volume/data` with the training
/// shards and `volume/data-val` with the validation shard (each with its `SHA256SUMS`, as `spore
/// data fetch` leaves them), then `spore data prepare --profile cpu` once. Readable by anyone
/// (the pods run as an unprivileged user).
pub fn prepared_volume(volume: &Path) {
    let (data, data_val) = (volume.join("data"), volume.join("data-val"));
    shards_in(&data);
    for sub in [&data, &data_val] {
        let shards = sub.join(SHARDS);
        let sums: String = snapshot(&shards)
            .iter()
            .map(|(path, digest)| format!("{digest}  {}\n", path.file_name().unwrap_or_default().to_string_lossy()))
            .collect();
        std::fs::write(shards.join("SHA256SUMS"), sums).expect("write SHA256SUMS");
    }
    ok(&spore(&["data", "prepare", "--profile", "cpu"], &data, &data_val));
    ok(&Command::new("chmod").args(["-R", "a+rX"]).arg(volume).output().expect("run chmod"));
}

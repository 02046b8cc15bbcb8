//! The climbmix shards on this machine: where they live, which are there, and their digests.
//!
//! Training shards (`shard_00000.parquet`, …) live under `<SPORE_DATA_CACHE>/climbmix-400b-shuffle/`,
//! the pinned validation shard (`shard_06542.parquet`, as autoresearch pins it) under
//! `<SPORE_VAL_CACHE>/climbmix-400b-shuffle/`: apart, because a candidate's `train.py` may read
//! the training cache and must never read the validation data. Every node and pod of the
//! machine shares the one copy: a shard appears only whole (written beside, checked, renamed),
//! and its SHA-256 is appended to the directory's `SHA256SUMS` (the list `spore data export`
//! and `import` check against). `workspace/climbmix.py` reads these shards; it never downloads.

pub mod fetch;
pub mod transfer;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The dataset's name: its directory in the cache and in the public URL.
pub const DATASET: &str = "climbmix-400b-shuffle";
/// The pinned validation shard (the last one).
pub const VAL_SHARD: u32 = 6542;
/// Training shards fetched unless told otherwise (autoresearch's default).
pub const DEFAULT_SHARDS: u32 = 10;
/// Where the shards are published; `--data-mirror` / `SPORE_DATA_MIRROR` replace it.
pub const DEFAULT_MIRROR: &str = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main";
/// The list of verified shards in each shard directory.
pub const SUMS: &str = "SHA256SUMS";

/// `shard_NNNNN.parquet`.
pub fn shard_name(index: u32) -> String {
    format!("shard_{index:05}.parquet")
}

/// The data caches of this machine (the same variables `prepare.py` reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// `SPORE_DATA_CACHE` (default `~/.cache/spore/data`).
    pub data_root: PathBuf,
    /// `SPORE_VAL_CACHE` (default: the data cache's path + `-val`).
    pub val_root: PathBuf,
}

impl Cache {
    /// From the environment, as `prepare.py` resolves it.
    pub fn from_env() -> Cache {
        let data_root =
            std::env::var_os("SPORE_DATA_CACHE").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
                std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache/spore/data")
            });
        let val_root = std::env::var_os("SPORE_VAL_CACHE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("{}-val", data_root.display())));
        Cache { data_root, val_root }
    }

    /// The directory shard `index` belongs in.
    pub fn dir_of(&self, index: u32) -> PathBuf {
        let root = if index == VAL_SHARD { &self.val_root } else { &self.data_root };
        root.join(DATASET)
    }

    pub fn path_of(&self, index: u32) -> PathBuf {
        self.dir_of(index).join(shard_name(index))
    }

    /// Training shards present from `shard_00000` on, up to the first one missing (the ones
    /// `prepare.py` trains on).
    pub fn train_shards(&self) -> u32 {
        (0..VAL_SHARD).take_while(|&i| self.path_of(i).is_file()).count() as u32
    }

    pub fn has_val(&self) -> bool {
        self.path_of(VAL_SHARD).is_file()
    }

    /// The shards a node with `shards` training shards needs: `0..shards` and the validation one.
    pub fn wanted(shards: u32) -> Vec<u32> {
        (0..shards.min(VAL_SHARD)).chain(std::iter::once(VAL_SHARD)).collect()
    }

    /// The digests recorded for the shards of `dir` (file name → SHA-256).
    pub fn sums(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
        let path = dir.join(SUMS);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        Ok(parse_sums(&text))
    }

    /// The recorded digest of shard `index`, if any.
    pub fn recorded(&self, index: u32) -> anyhow::Result<Option<String>> {
        Ok(Cache::sums(&self.dir_of(index))?.remove(&shard_name(index)))
    }

    /// Records `digest` for `file` in `dir`'s list (one `write` of one line: concurrent writers
    /// append whole lines; a later line for the same file wins).
    pub fn record(dir: &Path, file: &str, digest: &str) -> anyhow::Result<()> {
        let path = dir.join(SUMS);
        let mut list = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        list.write_all(format!("{digest}  {file}\n").as_bytes()).with_context(|| format!("write {}", path.display()))
    }
}

/// `sha256sum`'s format: `<hex>  <name>` per line; malformed lines are ignored.
pub fn parse_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (digest, name) = line.split_once("  ")?;
            let name = name.trim();
            (is_sha256(digest) && !name.is_empty() && !name.contains(".."))
                .then(|| (name.to_string(), digest.to_string()))
        })
        .collect()
}

pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// SHA-256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut digest = Sha256::new();
    std::io::copy(&mut file, &mut digest)?;
    Ok(hex::encode(digest.finalize()))
}

/// A parquet file starts and ends with `PAR1`: a cut-off or mangled download does not.
pub fn looks_like_parquet(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() < 12 {
        return Ok(false);
    }
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    file.read_exact(&mut head)?;
    file.seek(SeekFrom::End(-4))?;
    file.read_exact(&mut tail)?;
    Ok(&head == b"PAR1" && &tail == b"PAR1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_keeps_the_validation_shard_apart() {
        let cache = Cache { data_root: "/c/data".into(), val_root: "/c/data-val".into() };
        assert_eq!(cache.path_of(3), PathBuf::from("/c/data/climbmix-400b-shuffle/shard_00003.parquet"));
        assert_eq!(cache.path_of(VAL_SHARD), PathBuf::from("/c/data-val/climbmix-400b-shuffle/shard_06542.parquet"));
        assert_eq!(Cache::wanted(2), vec![0, 1, VAL_SHARD]);
    }

    #[test]
    fn sums_parse_sha256sum_lines_and_ignore_the_rest() {
        let good = "a".repeat(64);
        let text = format!("{good}  shard_00000.parquet\nnonsense\n{}  x\n{good}  ../escape\n", "b".repeat(63));
        let sums = parse_sums(&text);
        assert_eq!(sums.len(), 1);
        assert_eq!(sums["shard_00000.parquet"], good);
    }
}

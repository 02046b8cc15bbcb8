//! `spore data export DIR` / `spore data import DIR`: the shards of a machine with internet carried
//! to one without. DIR is flat — `shard_NNNNN.parquet` files (the validation shard among them)
//! and a `SHA256SUMS` list — so it is also a mirror as it stands: served over HTTP (any static
//! file server), its URL is a `--data-mirror`.
//!
//! Nothing unchecked crosses: export re-reads every shard against the digest recorded when it
//! was fetched (a shard that rotted on disk is not passed on), import copies each file beside
//! its place in the cache while hashing it and keeps it only when the digest is the list's and
//! the file is parquet.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::{Cache, SUMS, VAL_SHARD, looks_like_parquet, parse_sums, sha256_file, shard_name};

/// What a transfer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransferReport {
    /// Files copied.
    pub copied: Vec<String>,
    /// Files already in place with the same digest.
    pub unchanged: Vec<String>,
}

/// Copies the cache's training shards (`0..` up to the first gap) and its validation shard to
/// `dir`, with `SHA256SUMS`.
pub fn export(cache: &Cache, dir: &Path) -> anyhow::Result<TransferReport> {
    let mut indices: Vec<u32> = (0..cache.train_shards()).collect();
    if cache.has_val() {
        indices.push(VAL_SHARD);
    }
    if indices.is_empty() {
        bail!("no climbmix shards under {} to export (fetch them with `spore data fetch`)", cache.dir_of(0).display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let existing = parse_sums(&std::fs::read_to_string(dir.join(SUMS)).unwrap_or_default());
    let mut report = TransferReport::default();
    let mut sums = BTreeMap::new();
    for index in indices {
        let name = shard_name(index);
        let source = cache.path_of(index);
        let digest = sha256_file(&source).with_context(|| format!("read {}", source.display()))?;
        if let Some(recorded) = cache.recorded(index)?
            && recorded != digest
        {
            bail!(
                "{} has SHA-256 {digest}, but {recorded} when it was fetched: the cache's copy is damaged \
                 (delete it and fetch it again)",
                source.display()
            );
        }
        let target = dir.join(&name);
        if existing.get(&name) == Some(&digest) && target.is_file() {
            report.unchanged.push(name.clone());
        } else {
            copy_checked(&source, &target, &digest)?;
            report.copied.push(name.clone());
        }
        sums.insert(name, digest);
    }
    write_sums(dir, &sums)?;
    Ok(report)
}

/// Copies the shards `dir/SHA256SUMS` lists into the cache, each checked against the list.
/// Files that fail the check are not kept; the error names them after the others are in.
pub fn import(cache: &Cache, dir: &Path) -> anyhow::Result<TransferReport> {
    let list = dir.join(SUMS);
    let text = std::fs::read_to_string(&list)
        .with_context(|| format!("read {} (a directory written by `spore data export`)", list.display()))?;
    let sums = parse_sums(&text);
    let shards: Vec<(u32, String)> =
        sums.iter().filter_map(|(name, digest)| Some((index_of(name)?, digest.clone()))).collect();
    if shards.is_empty() {
        bail!("{} lists no climbmix shards", list.display());
    }
    let mut report = TransferReport::default();
    let mut refused = Vec::new();
    for (index, digest) in shards {
        let name = shard_name(index);
        let target = cache.path_of(index);
        if target.is_file() && cache.recorded(index)?.as_deref() == Some(digest.as_str()) {
            report.unchanged.push(name);
            continue;
        }
        std::fs::create_dir_all(cache.dir_of(index))
            .with_context(|| format!("create {}", cache.dir_of(index).display()))?;
        match copy_checked(&dir.join(&name), &target, &digest) {
            Ok(()) => {
                Cache::record(&cache.dir_of(index), &name, &digest)?;
                report.copied.push(name);
            }
            Err(e) => refused.push(format!("{name}: {e:#}")),
        }
    }
    if !refused.is_empty() {
        bail!("{} shards were not imported:\n  {}", refused.len(), refused.join("\n  "));
    }
    Ok(report)
}

/// `shard_NNNNN.parquet` → NNNNN (nothing else is a shard).
fn index_of(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("shard_")?.strip_suffix(".parquet")?;
    (digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// Copies `source` to a temporary file beside `target` while hashing it; renames it into place
/// only when its SHA-256 is `digest` and it is parquet.
fn copy_checked(source: &Path, target: &Path, digest: &str) -> anyhow::Result<()> {
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("shard");
    let tmp = target.with_file_name(format!(".{name}.copy-{}", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut input = std::fs::File::open(source).with_context(|| format!("open {}", source.display()))?;
        let output = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let mut hashing = HashingWriter { inner: output, digest: Sha256::new() };
        std::io::copy(&mut input, &mut hashing).with_context(|| format!("copy {}", source.display()))?;
        hashing.inner.sync_all().with_context(|| format!("write {}", tmp.display()))?;
        let actual = hex::encode(hashing.digest.finalize());
        if actual != digest {
            bail!("its SHA-256 is {actual}, the list says {digest}");
        }
        if !looks_like_parquet(&tmp)? {
            bail!("it is not a parquet file");
        }
        std::fs::rename(&tmp, target).with_context(|| format!("rename {} to {}", tmp.display(), target.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_sums(dir: &Path, sums: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let text: String = sums.iter().map(|(name, digest)| format!("{digest}  {name}\n")).collect();
    let tmp = dir.join(format!(".{SUMS}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(SUMS)).with_context(|| format!("write {}", dir.join(SUMS).display()))
}

struct HashingWriter {
    inner: std::fs::File,
    digest: Sha256,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shard_names_are_shards() {
        assert_eq!(index_of("shard_06542.parquet"), Some(6542));
        assert_eq!(index_of("shard_1.parquet"), None);
        assert_eq!(index_of("../shard_00001.parquet"), None);
        assert_eq!(index_of("SHA256SUMS"), None);
    }
}

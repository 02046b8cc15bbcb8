//! `spore data fetch`: the climbmix shards from the public dataset (or a lab's mirror of it),
//! several at a time, each resumed where a broken download stopped (`Range`), retried with
//! backoff, and checked before it is kept: the byte count the server announced, the SHA-256 the
//! server publishes for it (Hugging Face's `X-Linked-Etag`, or an `ETag` that is a SHA-256),
//! and parquet's `PAR1` marks at both ends. A shard is downloaded beside its final name and
//! renamed when whole; a lock per shard makes a second node or pod on the machine wait for the
//! first one's copy instead of fetching it again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, HeaderMap, LOCATION, RANGE};
use tokio::io::AsyncWriteExt;

use super::{Cache, is_sha256, looks_like_parquet, sha256_file, shard_name};

/// Redirects followed before a try fails.
const MAX_REDIRECTS: u32 = 5;

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The directory URL the shards are under (`…/resolve/main`).
    pub base_url: String,
    /// Training shards wanted (`shard_00000` on); the validation shard always comes too.
    pub shards: u32,
    /// Downloads at once.
    pub jobs: usize,
    /// Tries per shard before giving up on it.
    pub attempts: u32,
    /// Wait after the first failed try; doubled after each.
    pub backoff: Duration,
    /// A download that delivers nothing for this long is a failed try.
    pub stall: Duration,
    /// The most bytes one shard may have: a server that announces or sends more is refused and
    /// not retried, so a hostile or broken mirror cannot fill the disk.
    pub max_bytes: u64,
}

/// [`FetchOptions::max_bytes`] by default.
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 1 << 30;

impl FetchOptions {
    pub fn new(base_url: &str, shards: u32) -> FetchOptions {
        FetchOptions {
            base_url: base_url.trim_end_matches('/').to_string(),
            shards,
            jobs: 4,
            attempts: 5,
            backoff: Duration::from_secs(2),
            stall: Duration::from_secs(60),
            max_bytes: DEFAULT_MAX_SHARD_BYTES,
        }
    }
}

/// What a fetch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// Shards downloaded now.
    pub fetched: Vec<u32>,
    /// Shards that were already there (or that another process fetched meanwhile).
    pub present: Vec<u32>,
    /// Bytes received (resumed downloads count only what came now).
    pub bytes: u64,
}

enum Outcome {
    Fetched(u64),
    Present,
}

/// Fetches every shard of [`Cache::wanted`] that the cache lacks. A shard that cannot be fetched
/// does not stop the others; the error names each one that failed and why.
pub async fn fetch(cache: &Cache, options: &FetchOptions) -> anyhow::Result<FetchReport> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .user_agent(concat!("spore/", env!("CARGO_PKG_VERSION")))
        // Redirects are followed by hand: the host publishes the digest on the redirect.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("HTTP client")?;
    let wanted = Cache::wanted(options.shards);
    let results: Vec<(u32, anyhow::Result<Outcome>)> = futures_util::stream::iter(wanted)
        .map(|index| {
            let client = client.clone();
            async move { (index, fetch_shard(&client, cache, options, index).await) }
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await;
    let mut report = FetchReport::default();
    let mut failures = Vec::new();
    for (index, result) in results {
        match result {
            Ok(Outcome::Fetched(bytes)) => {
                report.fetched.push(index);
                report.bytes += bytes;
            }
            Ok(Outcome::Present) => report.present.push(index),
            Err(e) => failures.push(format!("{}: {e:#}", shard_name(index))),
        }
    }
    report.fetched.sort_unstable();
    report.present.sort_unstable();
    if !failures.is_empty() {
        failures.sort();
        bail!("{} of the shards could not be fetched:\n  {}", failures.len(), failures.join("\n  "));
    }
    Ok(report)
}

async fn fetch_shard(
    client: &reqwest::Client,
    cache: &Cache,
    options: &FetchOptions,
    index: u32,
) -> anyhow::Result<Outcome> {
    let dir = cache.dir_of(index);
    let name = shard_name(index);
    let target = dir.join(&name);
    if target.is_file() {
        return Ok(Outcome::Present);
    }
    tokio::fs::create_dir_all(&dir).await.with_context(|| format!("create {}", dir.display()))?;
    let _lock = lock(dir.join(format!(".{name}.lock"))).await?;
    if target.is_file() {
        return Ok(Outcome::Present);
    }
    let url = format!("{}/{name}", options.base_url);
    let part = dir.join(format!("{name}.part"));
    let mut received = 0u64;
    let mut last_error = anyhow!("no try was made");
    for attempt in 0..options.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(options.backoff * 2u32.saturating_pow(attempt - 1)).await;
        }
        match download(client, &url, &part, options, &mut received).await {
            Ok(digest) => {
                let check = check_part(&part, digest.as_deref()).await;
                match check {
                    Ok(digest) => {
                        tokio::fs::rename(&part, &target)
                            .await
                            .with_context(|| format!("rename {} to {}", part.display(), target.display()))?;
                        Cache::record(&dir, &name, &digest)?;
                        return Ok(Outcome::Fetched(received));
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&part).await;
                        last_error = e;
                    }
                }
            }
            Err(Try::Fatal(e)) => return Err(e),
            Err(Try::Again(e)) => last_error = e,
        }
        tracing::warn!(shard = %name, attempt = attempt + 1, error = %format!("{last_error:#}"), "shard download failed");
    }
    Err(last_error.context(format!("{} tries", options.attempts.max(1))))
}

/// Why a try failed: worth another, or not.
enum Try {
    Again(anyhow::Error),
    Fatal(anyhow::Error),
}

/// Holds an exclusive lock on `path` (created) until dropped; waits for another holder.
async fn lock(path: PathBuf) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow!("lock {}: {e}", path.display()))
    })
    .await
    .context("lock task")?
}

/// One try: continues `part` from its length (a `Range` request) or starts it over; returns the
/// SHA-256 the server publishes for the whole file, if it does.
async fn download(
    client: &reqwest::Client,
    url: &str,
    part: &Path,
    options: &FetchOptions,
    received: &mut u64,
) -> Result<Option<String>, Try> {
    let (stall, max_bytes) = (options.stall, options.max_bytes);
    let again = |e: anyhow::Error| Try::Again(e);
    let offset = tokio::fs::metadata(part).await.map(|m| m.len()).unwrap_or(0);
    // The dataset's host answers with a redirect to its file store, and publishes the file's
    // SHA-256 on that redirect (`X-Linked-Etag`); the store's own answer may carry none.
    let mut here = url.to_string();
    let mut linked = None;
    let mut hops = 0;
    let mut response = loop {
        let mut request = client.get(&here);
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let response = tokio::time::timeout(stall, request.send())
            .await
            .map_err(|_| again(anyhow!("no answer from {here} within {} s", stall.as_secs())))?
            .map_err(|e| again(anyhow!("GET {here}: {e}")))?;
        if !response.status().is_redirection() {
            break response;
        }
        linked = linked.or_else(|| published_sha256(response.headers()));
        let next = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| response.url().join(l).ok())
            .ok_or_else(|| again(anyhow!("{here} redirected nowhere")))?;
        hops += 1;
        if hops > MAX_REDIRECTS {
            return Err(again(anyhow!("{url}: more than {MAX_REDIRECTS} redirects")));
        }
        here = next.to_string();
    };
    let status = response.status();
    let (start, total) = match status {
        StatusCode::OK => (0, response.content_length()),
        StatusCode::PARTIAL_CONTENT => match content_range(response.headers()) {
            Some((start, total)) if start == offset => (offset, total),
            _ => {
                let _ = tokio::fs::remove_file(part).await;
                return Err(again(anyhow!("{url} answered a range that does not continue the download")));
            }
        },
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let _ = tokio::fs::remove_file(part).await;
            return Err(again(anyhow!("{url} refused to resume at byte {offset}")));
        }
        StatusCode::NOT_FOUND | StatusCode::GONE | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
            return Err(Try::Fatal(anyhow!("{url}: {status} (is the mirror's URL right?)")));
        }
        _ => return Err(again(anyhow!("{url}: {status}"))),
    };
    if let Some(total) = total.or(response.content_length().map(|rest| start + rest))
        && total > max_bytes
    {
        let _ = tokio::fs::remove_file(part).await;
        return Err(Try::Fatal(anyhow!("{url} announces {total} bytes, over the limit of {max_bytes} for a shard")));
    }
    let digest = linked.or_else(|| published_sha256(response.headers()));
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(part)
        .await
        .map_err(|e| Try::Fatal(anyhow!("open {}: {e}", part.display())))?;
    let mut length = start;
    loop {
        let chunk = tokio::time::timeout(stall, response.chunk())
            .await
            .map_err(|_| again(anyhow!("{url} sent nothing for {} s", stall.as_secs())))?
            .map_err(|e| again(anyhow!("{url} broke off after {length} bytes: {e}")))?;
        let Some(chunk) = chunk else { break };
        if length + chunk.len() as u64 > max_bytes {
            drop(file);
            let _ = tokio::fs::remove_file(part).await;
            return Err(Try::Fatal(anyhow!("{url} sent more than the limit of {max_bytes} bytes for a shard")));
        }
        file.write_all(&chunk).await.map_err(|e| Try::Fatal(anyhow!("write {}: {e}", part.display())))?;
        length += chunk.len() as u64;
        *received += chunk.len() as u64;
    }
    file.flush().await.map_err(|e| Try::Fatal(anyhow!("write {}: {e}", part.display())))?;
    drop(file);
    match total {
        Some(total) if length < total => Err(again(anyhow!("{url} ended after {length} of {total} bytes"))),
        Some(total) if length > total => {
            let _ = tokio::fs::remove_file(part).await;
            Err(again(anyhow!("{url} sent {length} bytes, announced {total}")))
        }
        _ => Ok(digest),
    }
}

/// A finished download is kept only if it is what the server said it is: its published SHA-256
/// when there is one, and a parquet file in any case. Returns its SHA-256.
async fn check_part(part: &Path, published: Option<&str>) -> anyhow::Result<String> {
    let path = part.to_path_buf();
    let (digest, parquet) = tokio::task::spawn_blocking(move || -> std::io::Result<(String, bool)> {
        Ok((sha256_file(&path)?, looks_like_parquet(&path)?))
    })
    .await
    .context("checksum task")?
    .with_context(|| format!("read {}", part.display()))?;
    if let Some(published) = published
        && published != digest
    {
        bail!("its SHA-256 is {digest}, the server publishes {published}");
    }
    if !parquet {
        bail!("what arrived is not a parquet file (no PAR1 marks)");
    }
    Ok(digest)
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL if known).
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// The SHA-256 the server publishes: `X-Linked-Etag` (Hugging Face, for files kept in LFS) or an
/// `ETag` that is one.
fn published_sha256(headers: &HeaderMap) -> Option<String> {
    ["x-linked-etag", ETAG.as_str()].into_iter().find_map(|name| {
        let value = headers.get(name)?.to_str().ok()?;
        let value = value.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase();
        is_sha256(&value).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn headers_give_the_range_and_the_published_digest() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 100-199/200"));
        assert_eq!(content_range(&headers), Some((100, Some(200))));
        headers.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 5-9/*"));
        assert_eq!(content_range(&headers), Some((5, None)));
        let digest = "ab".repeat(32);
        headers.insert(ETAG, HeaderValue::from_str(&format!("\"{}\"", digest.to_uppercase())).unwrap());
        assert_eq!(published_sha256(&headers), Some(digest.clone()));
        headers.insert(ETAG, HeaderValue::from_static("\"5d41402abc4b2a76b9719d911017c592\""));
        assert_eq!(published_sha256(&headers), None, "an MD5 ETag is no SHA-256");
        headers.insert("x-linked-etag", HeaderValue::from_str(&format!("\"{digest}\"")).unwrap());
        assert_eq!(published_sha256(&headers), Some(digest));
    }
}

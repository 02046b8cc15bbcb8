//! A local HTTP server in the climbmix dataset's URL scheme
//! (`/datasets/karpathy/climbmix-400b-shuffle/resolve/main/shard_NNNNN.parquet`) over a directory
//! of shards, answering as the public host does (`Content-Length`, `Range` → 206, the SHA-256
//! in `X-Linked-Etag`), with faults on request: answer 500 a number of times, cut a download off
//! halfway, or publish a wrong digest. It records every request.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// The dataset's path on the public host.
pub const DATASET_PATH: &str = "/datasets/karpathy/climbmix-400b-shuffle/resolve/main";

/// What goes wrong, by shard file name.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Answer 500 to the first N requests for the shard.
    pub fail_first: BTreeMap<String, u32>,
    /// Send the first full download of the shard only halfway, then close the connection.
    pub truncate_first: BTreeSet<String>,
    /// Publish a digest the shard does not have.
    pub wrong_digest: BTreeSet<String>,
    /// Send the shard with no announced length, then its bytes again and again until the
    /// client hangs up (at most [`ENDLESS_CAP`]): a mirror that would fill the disk.
    pub endless: BTreeSet<String>,
    /// Announce a length of a terabyte for the shard.
    pub oversize_announced: BTreeSet<String>,
    /// Wait this long before sending a body (downloads that overlap in time).
    pub delay: std::time::Duration,
    /// Answer as Hugging Face does: a redirect to the file store (`/cdn/<name>`) that carries
    /// the digest, then the file from there without it.
    pub redirect: bool,
}

/// The most an endless answer sends before the server gives up on the client hanging up.
pub const ENDLESS_CAP: u64 = 1 << 30;

/// One request: the file asked for, the `Range` start if any, the status answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub range_start: Option<u64>,
    pub status: u16,
}

#[derive(Debug)]
struct State {
    faults: Faults,
    log: Vec<Request>,
    /// Bytes of body sent, by shard file name.
    sent: BTreeMap<String, u64>,
}

/// The running server (it stops with the test process).
#[derive(Debug, Clone)]
pub struct ShardServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl ShardServer {
    /// Serves the `shard_*.parquet` files of `dir`.
    pub fn start(dir: PathBuf, faults: Faults) -> ShardServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the shard server");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State { faults, log: Vec::new(), sent: BTreeMap::new() }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (dir, state) = (dir.clone(), shared.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &dir, &state);
                });
            }
        });
        ShardServer { port, state }
    }

    /// The `--data-mirror` URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}{DATASET_PATH}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().expect("state").log.clone()
    }

    /// Bytes of body the server managed to send for shard file `name`.
    pub fn sent(&self, name: &str) -> u64 {
        self.state.lock().expect("state").sent.get(name).copied().unwrap_or(0)
    }
}

fn serve(stream: TcpStream, dir: &std::path::Path, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range_start = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range_start = value.trim().strip_prefix("bytes=").and_then(|r| r.trim_end_matches('-').parse::<u64>().ok());
        }
    }
    let (name, from_store) = match (path.strip_prefix(&format!("{DATASET_PATH}/")), path.strip_prefix("/cdn/")) {
        (Some(name), _) => (name.to_string(), false),
        (None, Some(name)) => (name.to_string(), true),
        _ => (String::new(), false),
    };
    let body =
        (name.starts_with("shard_") && !name.contains('/')).then(|| std::fs::read(dir.join(&name)).ok()).flatten();
    let (status, truncate, wrong, delay, redirect, endless, oversize) = {
        let mut state = state.lock().expect("state");
        let status = match &body {
            None => 404,
            Some(_) if state.faults.redirect && !from_store => 302,
            Some(_) => match state.faults.fail_first.get_mut(&name) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    500
                }
                _ => match range_start {
                    Some(start) if start >= body.as_ref().map_or(0, |b| b.len() as u64) => 416,
                    Some(_) => 206,
                    None => 200,
                },
            },
        };
        let truncate = status == 200 && state.faults.truncate_first.remove(&name);
        let wrong = state.faults.wrong_digest.contains(&name);
        state.log.push(Request { name: name.clone(), range_start, status });
        let endless = status == 200 && state.faults.endless.contains(&name);
        let oversize = status == 200 && state.faults.oversize_announced.contains(&name);
        (status, truncate, wrong, state.faults.delay, state.faults.redirect, endless, oversize)
    };
    std::thread::sleep(delay);
    let published = |body: &[u8]| if wrong { "0".repeat(64) } else { hex(&Sha256::digest(body)) };
    if status == 302 {
        let digest = body.as_deref().map(published).unwrap_or_default();
        write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: /cdn/{name}\r\nX-Linked-Etag: \"{digest}\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    let Some(body) = body.filter(|_| status == 200 || status == 206) else {
        let reason = match status {
            404 => "Not Found",
            416 => "Range Not Satisfiable",
            _ => "Internal Server Error",
        };
        write!(stream, "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    };
    // Behind a redirect the file store publishes no digest (the redirect did).
    let linked = if redirect { String::new() } else { format!("X-Linked-Etag: \"{}\"\r\n", published(&body)) };
    if endless {
        stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
        let mut sent = 0u64;
        while sent < ENDLESS_CAP && stream.write_all(&body).is_ok() {
            sent += body.len() as u64;
            *state.lock().expect("state").sent.entry(name.clone()).or_default() = sent;
        }
        return Ok(());
    }
    if oversize {
        write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 1u64 << 40)?;
        stream.write_all(&body)?;
        *state.lock().expect("state").sent.entry(name.clone()).or_default() = body.len() as u64;
        return Ok(());
    }
    let start = if status == 206 { range_start.unwrap_or(0) as usize } else { 0 };
    let part = &body[start..];
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{linked}Connection: close\r\n",
        if status == 200 { "OK" } else { "Partial Content" },
        part.len()
    );
    if status == 206 {
        head.push_str(&format!("Content-Range: bytes {start}-{}/{}\r\n", body.len() - 1, body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let sent = if truncate { &part[..part.len() / 2] } else { part };
    stream.write_all(sent)?;
    stream.flush()?;
    if truncate {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

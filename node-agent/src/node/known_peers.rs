//! `<data-dir>/known_peer`: one `host:port` per line, as the Python peer keeps it. Appended
//! when we connect to a peer ourselves; read at start.

use std::io::Write;
use std::path::Path;

use crate::protocol::parse_address;

const FILE: &str = "known_peer";

/// Valid addresses in the file (blank and malformed lines skipped).
pub fn load(data_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(data_dir.join(FILE)).unwrap_or_default();
    let mut peers: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if parse_address(line).is_some() && !peers.iter().any(|p| p == line) {
            peers.push(line.to_string());
        }
    }
    peers
}

/// Appends `address` unless it is there already.
pub fn remember(data_dir: &Path, address: &str) {
    if load(data_dir).iter().any(|p| p == address) {
        return;
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join(FILE))
        .and_then(|mut f| writeln!(f, "{address}"));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot update known_peer");
    }
}

//! `<data-dir>/known_peer`: one `host:port` per line, as the Python peer keeps it. Appended
//! when we connect to a peer ourselves, up to [`MAX_KNOWN`] lines; read at start, where its
//! peers are dialed once each (never redialed as configured peers are).

use std::io::Write;
use std::path::Path;

use crate::protocol::parse_address;

const FILE: &str = "known_peer";
/// Addresses kept: a peer that makes us dial many addresses cannot grow the file without end.
pub const MAX_KNOWN: usize = 256;

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

/// Appends `address` unless it is there already or the file is full.
pub fn remember(data_dir: &Path, address: &str) {
    let known = load(data_dir);
    if known.len() >= MAX_KNOWN || known.iter().any(|p| p == address) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_each_address_once_and_at_most_max_known() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..2 {
            for i in 0..(MAX_KNOWN + 50) {
                remember(dir.path(), &format!("10.0.{}.{}:7470", i / 256, i % 256));
            }
            assert_eq!(load(dir.path()).len(), MAX_KNOWN, "round {round}");
        }
        remember(dir.path(), "not an address");
        assert_eq!(std::fs::read_to_string(dir.path().join(FILE)).unwrap().lines().count(), MAX_KNOWN);
    }
}

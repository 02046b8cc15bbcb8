//! `<data_dir>/config.toml`, the node's settings, with the Python peer's keys (`host`, `port`,
//! `data_dir`, `peer`, and 0.5.0's `task_id`). Written with a real TOML library into the data
//! directory the command was given (Python always writes `~/.spore/config.toml`). `spore run`
//! uses the file's `host`, `port`, `peer` and `task_id` unless flags say otherwise (Python
//! ignores the file's port).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFileConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub data_dir: String,
    #[serde(default)]
    pub peer: Vec<String>,
    /// The task the research works in (`spore task use`; 0.5.0's key); empty: chosen by activity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task_id: String,
}

fn default_host() -> String {
    "0.0.0.0".into()
}

fn default_port() -> u16 {
    7470
}

impl NodeFileConfig {
    pub fn default_for(data_dir: &Path) -> Self {
        NodeFileConfig {
            host: default_host(),
            port: default_port(),
            data_dir: absolute(data_dir),
            peer: Vec::new(),
            task_id: String::new(),
        }
    }
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("config.toml")
}

/// The data directory's config, or the defaults when it has none.
pub fn load(data_dir: &Path) -> anyhow::Result<NodeFileConfig> {
    let path = path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not a valid config", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeFileConfig::default_for(data_dir)),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

pub fn save(data_dir: &Path, config: &NodeFileConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let path = path(data_dir);
    let tmp = data_dir.join(".config.toml.tmp");
    std::fs::write(&tmp, toml::to_string(config)?).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_python_file_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        // What Python 0.1.2 writes (the peer list as literal strings).
        std::fs::write(
            path(dir.path()),
            "host = \"0.0.0.0\"\nport = 7471\ndata_dir = \"/x\"\npeer = ['1.2.3.4:7470']\n",
        )
        .unwrap();
        let mut config = load(dir.path()).unwrap();
        assert_eq!(config.port, 7471);
        assert_eq!(config.peer, ["1.2.3.4:7470"]);
        config.peer.push("b\"q:1".into());
        save(dir.path(), &config).unwrap();
        assert_eq!(load(dir.path()).unwrap(), config);
        assert_eq!(load(&dir.path().join("none")).unwrap().port, 7470);
        std::fs::write(path(dir.path()), "port = \"x\"").unwrap();
        assert!(load(dir.path()).is_err());
        // 0.5.0's file names the active task.
        std::fs::write(path(dir.path()), "port = 7470\ntask_id = \"abc\"\n").unwrap();
        assert_eq!(load(dir.path()).unwrap().task_id, "abc");
    }
}

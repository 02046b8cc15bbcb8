//! Content-addressed artifacts (code and diffs) under `<data_dir>/artifact/ab/cd/<cid>`, the
//! layout of the Python peer. A CID is the SHA-256 of the bytes, 64 lowercase hex characters,
//! and is checked before it touches the filesystem (Python joins whatever string it is given).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("{0:?} is not a CID (64 lowercase hex characters)")]
    BadCid(String),
    #[error("artifact {cid}: {source}")]
    Io { cid: String, source: std::io::Error },
    #[error("artifact {0} is corrupt: its bytes do not hash to its CID")]
    Corrupt(String),
}

/// The artifact store of a data directory.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

/// The CID of some bytes.
pub fn cid_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub use spore_spec::cid::is_cid;

impl ArtifactStore {
    pub fn new(data_dir: &Path) -> Self {
        ArtifactStore { root: data_dir.join("artifact") }
    }

    fn path(&self, cid: &str) -> Result<PathBuf, ArtifactError> {
        if !is_cid(cid) {
            return Err(ArtifactError::BadCid(cid.to_string()));
        }
        Ok(self.root.join(&cid[0..2]).join(&cid[2..4]).join(cid))
    }

    /// Stores `bytes` (once) and returns their CID.
    pub fn put(&self, bytes: &[u8]) -> Result<String, ArtifactError> {
        let cid = cid_of(bytes);
        let path = self.path(&cid)?;
        if path.exists() {
            return Ok(cid);
        }
        let io = |source| ArtifactError::Io { cid: cid.clone(), source };
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(io)?;
        // Written whole and on disk before it gets its name, so a crash never leaves a torn
        // artifact under a CID.
        let tmp = dir.join(format!(".{cid}.tmp-{}", std::process::id()));
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut file, bytes).and_then(|()| file.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(cid)
    }

    /// The bytes of every artifact stored (files under `ab/cd/`), unreadable entries skipped.
    pub fn size_bytes(&self) -> u64 {
        fn dirs(path: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
            std::fs::read_dir(path).into_iter().flatten().flatten()
        }
        let mut total = 0;
        for first in dirs(&self.root).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            for second in dirs(&first.path()).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                total += dirs(&second.path()).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum::<u64>();
            }
        }
        total
    }

    /// Whether a file for `cid` is stored (not checked: [`ArtifactStore::get`] checks).
    pub fn contains(&self, cid: &str) -> bool {
        self.path(cid).is_ok_and(|path| path.is_file())
    }

    /// The bytes of `cid`, checked against it; `None` when absent.
    pub fn get(&self, cid: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        let path = self.path(cid)?;
        match std::fs::read(&path) {
            Ok(bytes) if cid_of(&bytes) == cid => Ok(Some(bytes)),
            Ok(_) => Err(ArtifactError::Corrupt(cid.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ArtifactError::Io { cid: cid.to_string(), source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_content_and_refuses_bad_cids() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path());
        let cid = store.put(b"print('hi')\n").unwrap();
        assert_eq!(cid, cid_of(b"print('hi')\n"));
        assert!(dir.path().join("artifact").join(&cid[..2]).join(&cid[2..4]).join(&cid).is_file());
        assert_eq!(store.put(b"print('hi')\n").unwrap(), cid);
        assert_eq!(store.get(&cid).unwrap().unwrap(), b"print('hi')\n");
        assert!(store.get(&"0".repeat(64)).unwrap().is_none());
        for bad in ["../../etc/passwd", "ABCD", &"A".repeat(64), &format!("{}/", "a".repeat(63))] {
            assert!(matches!(store.get(bad), Err(ArtifactError::BadCid(_))), "{bad}");
        }
        // A file whose bytes no longer match its name is reported, not served.
        let path = dir.path().join("artifact").join(&cid[..2]).join(&cid[2..4]).join(&cid);
        std::fs::write(path, b"tampered").unwrap();
        assert!(matches!(store.get(&cid), Err(ArtifactError::Corrupt(_))));
    }
}

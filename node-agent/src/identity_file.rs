//! The node's key on disk, in the Python peer's layout: `<data_dir>/identity/private_key` (the
//! Ed25519 seed, 64 hex characters, no newline) and `<data_dir>/identity/node_id` (the public
//! key, same format). Unlike Python, the directory is created 0700 and the key 0600, and the key
//! is written to a temporary file and renamed so a crash never leaves half a key behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use spore_spec::Identity;
use spore_spec::identity::IdentityError;

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} does not hold a valid key: {source}")]
    Invalid { path: PathBuf, source: IdentityError },
}

/// Path of the private key under a data directory.
pub fn private_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("identity").join("private_key")
}

/// Loads the identity from `data_dir`, creating one if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<Identity, IdentityFileError> {
    let key_path = private_key_path(data_dir);
    match fs::read_to_string(&key_path) {
        Ok(text) => {
            Identity::from_seed_hex(&text).map_err(|source| IdentityFileError::Invalid { path: key_path, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = Identity::generate();
            write_identity(data_dir, &identity)?;
            Ok(identity)
        }
        Err(source) => Err(IdentityFileError::Read { path: key_path, source }),
    }
}

/// Writes both identity files (replacing any existing ones).
pub fn write_identity(data_dir: &Path, identity: &Identity) -> Result<(), IdentityFileError> {
    let dir = data_dir.join("identity");
    create_private_dir(&dir).map_err(|source| IdentityFileError::Write { path: dir.clone(), source })?;
    write_atomically(&private_key_path(data_dir), identity.seed_hex().as_bytes(), 0o600)?;
    write_atomically(&dir.join("node_id"), identity.node_id().as_bytes(), 0o644)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityFileError> {
    let tmp = path.with_extension("tmp");
    let wrap = |source| IdentityFileError::Write { path: path.to_path_buf(), source };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(wrap)?;
    file.write_all(contents).map_err(wrap)?;
    file.sync_all().map_err(wrap)?;
    fs::rename(&tmp, path).map_err(wrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_key_once_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(first.node_id(), again.node_id());
        let key_text = fs::read_to_string(private_key_path(dir.path())).unwrap();
        assert_eq!(key_text.len(), 64, "Python format: 64 hex characters, no newline");
        let node_id = fs::read_to_string(dir.path().join("identity/node_id")).unwrap();
        assert_eq!(node_id, first.node_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(private_key_path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn reads_a_python_written_key_with_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("identity")).unwrap();
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n";
        fs::write(private_key_path(dir.path()), seed).unwrap();
        let id = load_or_create(dir.path()).unwrap();
        assert_eq!(id.node_id(), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    }

    #[test]
    fn a_corrupt_key_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("identity")).unwrap();
        fs::write(private_key_path(dir.path()), "not a key").unwrap();
        assert!(matches!(load_or_create(dir.path()), Err(IdentityFileError::Invalid { .. })));
    }
}

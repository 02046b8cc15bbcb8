//! The real Python reference peer (`sporemesh` 0.1.2 + PyNaCl) for differential tests.
//!
//! `scripts/python-ref.sh` installs it into a virtualenv under `$HOME/.cache/spore`; tests find
//! the interpreter through `SPORE_PYREF_PYTHON` or that default path, and fail with a clear
//! message (never skip) when it is missing.

use std::path::PathBuf;

/// The virtualenv's interpreter.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("SPORE_PYREF_PYTHON") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/spore/pyref/bin/python")
}

/// Panics with instructions when the reference peer is not installed.
pub fn require_python() -> PathBuf {
    let python = python();
    assert!(
        python.exists(),
        "the Python reference peer is not installed at {}; run scripts/python-ref.sh (scripts/test does)",
        python.display()
    );
    python
}

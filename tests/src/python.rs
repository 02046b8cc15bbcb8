//! The real Python reference peer (`sporemesh` 0.1.2 + PyNaCl) for differential tests, and later
//! releases of it beside.
//!
//! `scripts/python-ref.sh [VERSION]` installs each into a virtualenv under `$HOME/.cache/spore`;
//! tests find the interpreter through `SPORE_PYREF_PYTHON` (0.1.2) or
//! `SPORE_PYREF_PYTHON_0_5_0` (and so on), else that default path, and fail with a clear message
//! (never skip) when it is missing.

use std::path::{Path, PathBuf};

/// The virtualenv's interpreter.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("SPORE_PYREF_PYTHON") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/spore/pyref/bin/python")
}

/// The interpreter of the virtualenv with `sporemesh` `version`.
pub fn python_of(version: &str) -> PathBuf {
    if version == "0.1.2" {
        return python();
    }
    if let Some(path) = std::env::var_os(format!("SPORE_PYREF_PYTHON_{}", version.replace('.', "_"))) {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(format!(".cache/spore/pyref-{version}/bin/python"))
}

/// [`python_of`], panicking with instructions when it is not installed.
pub fn require_python_of(version: &str) -> PathBuf {
    let python = python_of(version);
    assert!(
        python.exists(),
        "sporemesh {version} is not installed at {}; run scripts/python-ref.sh {version} (scripts/test does)",
        python.display()
    );
    python
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

/// Absolute path of one of our Python scripts under `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python").join(name)
}

/// Runs `reference_records.py generate COUNT SEED` and returns its JSON lines.
pub fn generate_reference_records(count: usize, seed: u64) -> Vec<String> {
    generate_reference_records_with(&require_python(), count, seed)
}

/// [`generate_reference_records`] under another interpreter (another release).
pub fn generate_reference_records_with(python: &Path, count: usize, seed: u64) -> Vec<String> {
    let output = std::process::Command::new(python)
        .arg(script("reference_records.py"))
        .args(["generate", &count.to_string(), &seed.to_string()])
        .output()
        .expect("run the Python reference generator");
    assert!(output.status.success(), "generator failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("generator output is UTF-8").lines().map(str::to_owned).collect()
}

/// Feeds wire payloads (one JSON object per line) to `reference_records.py verify` and returns
/// Python's verdict lines.
pub fn python_verdicts(payload_lines: &[String]) -> Vec<String> {
    python_verdicts_with(&require_python(), payload_lines)
}

/// [`python_verdicts`] under another interpreter (another release).
pub fn python_verdicts_with(python: &Path, payload_lines: &[String]) -> Vec<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(python)
        .arg(script("reference_records.py"))
        .arg("verify")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the Python reference verifier");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = payload_lines.join("\n");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("verifier output");
    writer.join().expect("writer thread").expect("write to verifier");
    assert!(output.status.success(), "verifier failed");
    String::from_utf8(output.stdout).expect("UTF-8").lines().map(str::to_owned).collect()
}

/// The interpreter with torch that runs the training workload: `SPORE_WORKSPACE_PYTHON`, else
/// the virtualenv `scripts/workspace-venv.sh` installs (installing it when missing).
pub fn workspace_python() -> PathBuf {
    if let Some(path) = std::env::var_os("SPORE_WORKSPACE_PYTHON") {
        return PathBuf::from(path);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/workspace-venv.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run scripts/workspace-venv.sh");
    assert!(output.status.success(), "scripts/workspace-venv.sh failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    PathBuf::from(stdout.lines().last().expect("the script prints the interpreter").trim())
}

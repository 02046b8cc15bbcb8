//! The workspace's binaries for tests of another package (an operator test that runs `spore`):
//! found beside the test executable in the target directory, built with cargo when missing.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/<name>`, building `package`'s binary first when it is not there.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("the test runs from target/<profile>/deps");
    let bin = profile_dir.join(name);
    if !bin.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", package, "--bin", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p {package} --bin {name} failed");
    }
    bin
}

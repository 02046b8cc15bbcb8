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

/// Runs `bin` with `args`, `stdin` written on a thread of its own (a large input cannot
/// deadlock against a full stdout pipe), and returns its output.
pub fn run_with_stdin(bin: &std::path::Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let output = child.wait_with_output().expect("wait for the output");
    writer.join().expect("the stdin writer").expect("write stdin");
    output
}

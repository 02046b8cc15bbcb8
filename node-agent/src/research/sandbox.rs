//! [`Sandbox`]: runs a program where chosen directories cannot be read and others cannot be
//! written, without network. Linux namespaces through util-linux `unshare` (an unprivileged user
//! namespace with its own mount and network namespaces): each hidden directory gets an empty
//! read-only tmpfs mounted over it, each read-only directory a read-only bind mount of itself.
//! The host's mounts are untouched, `/proc/<pid>/root` of processes outside stays closed (no
//! ptrace rights across the user namespace), and the program keeps its PID, so the caller's
//! process-group handling works as before.
//!
//! Where the OS refuses user namespaces, [`Sandbox::available`] is false and callers run the
//! program directly (and say so): the data is then only kept out of the program's environment.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Mounts over the hidden and read-only paths given as arguments, then runs the rest.
const SCRIPT: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do mount -t tmpfs -o size=4k,mode=0555 spore-hidden "$1" || { echo "spore sandbox: cannot hide $1" >&2; exit 125; }; shift; n=$((n-1)); done
n=$1; shift
while [ "$n" -gt 0 ]; do { mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"; } || { echo "spore sandbox: cannot make $1 read-only" >&2; exit 125; }; shift; n=$((n-1)); done
exec "$@""#;

/// Arguments of `unshare`: a user namespace mapping the caller to itself, mounts and network.
const UNSHARE: [&str; 5] = ["--user", "--map-current-user", "--mount", "--net", "--"];

/// What the sandboxed program may not see or change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Directories that appear empty.
    pub hidden: Vec<PathBuf>,
    /// Directories that cannot be written.
    pub read_only: Vec<PathBuf>,
}

impl Sandbox {
    /// Whether this machine lets an unprivileged process create the namespaces (checked once).
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::process::Command::new("unshare")
                .args(UNSHARE)
                .arg("true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// A command that runs `program` inside the sandbox; add its arguments as usual. Paths
    /// that do not exist are skipped (there is nothing to hide or protect).
    pub fn command(&self, program: &Path) -> tokio::process::Command {
        let existing = |paths: &[PathBuf]| -> Vec<PathBuf> { paths.iter().filter(|p| p.is_dir()).cloned().collect() };
        let hidden = existing(&self.hidden);
        let read_only = existing(&self.read_only);
        let mut command = tokio::process::Command::new("unshare");
        command.args(UNSHARE).args(["sh", "-c", SCRIPT, "sh"]);
        command.arg(hidden.len().to_string()).args(&hidden);
        command.arg(read_only.len().to_string()).args(&read_only);
        command.arg(program);
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hides_protects_and_cuts_the_network() {
        if !Sandbox::available() {
            // Shown in the test output; the integration tests assert availability where CI runs.
            eprintln!("user namespaces are not available here");
            return;
        }
        let root = std::env::temp_dir().join(format!("spore-sandbox-{}", std::process::id()));
        let (secret, data) = (root.join("secret"), root.join("data"));
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(secret.join("val.bin"), "x").unwrap();
        std::fs::write(data.join("train.bin"), "y").unwrap();
        let sandbox = Sandbox { hidden: vec![secret.clone()], read_only: vec![data.clone()] };
        let script = format!(
            "test -e {s}/val.bin && echo SEEN; cat {d}/train.bin; echo; touch {d}/new 2>/dev/null && echo WROTE; \
             grep -c : /proc/net/dev",
            s = secret.display(),
            d = data.display()
        );
        let out = sandbox.command(Path::new("/bin/sh")).args(["-c", &script]).output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        assert!(!stdout.contains("SEEN") && !stdout.contains("WROTE"), "{stdout}");
        // train.bin is readable; only the loopback interface exists.
        assert_eq!(stdout.lines().collect::<Vec<_>>(), ["y", "1"], "{stdout}");
        // Outside, nothing changed.
        assert!(secret.join("val.bin").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}

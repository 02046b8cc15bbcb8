//! The project's container images (built by `scripts/images.sh`), unpacked and run under `runc`
//! with a pod's security context: the image's user (65532), a read-only root, no capabilities,
//! no new privileges, its own PID, IPC, UTS, mount and (unless asked for the host's) network
//! namespaces, and only the mounts a test gives (as the kubelet gives volumes).
//!
//! `scripts/test` builds the images and names them in the file `SPORE_IMAGES` points at (lines
//! `NAME REFERENCE LAYOUT`); without it, the list of the last `scripts/images.sh build --profile
//! dev` is used.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// One image: its name (`spore-trainer`), reference and OCI layout.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub reference: String,
    pub layout: PathBuf,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root")).join(".cache/spore")
}

/// The images the suite was given.
pub fn built_images() -> anyhow::Result<Vec<Image>> {
    let list = std::env::var_os("SPORE_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("images/latest-dev.txt"));
    let text = std::fs::read_to_string(&list).with_context(|| {
        format!("no image list at {} (scripts/test builds the images: scripts/images.sh build)", list.display())
    })?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            [name, reference, layout] => {
                Ok(Image { name: name.into(), reference: reference.into(), layout: layout.into() })
            }
            _ => bail!("bad line in {}: {line}", list.display()),
        })
        .collect()
}

/// An image of the test cluster itself, built by `scripts/images.sh COMMAND` (`pause`, the pod
/// sandbox; `coredns`, the cluster DNS).
pub fn infrastructure_image(command: &str) -> anyhow::Result<Image> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/images.sh");
    let out = Command::new("bash").arg(&script).arg(command).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("{} {command} failed", script.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().last().unwrap_or_default().split_whitespace().collect::<Vec<_>>()[..] {
        [name, reference, layout] => {
            Ok(Image { name: name.into(), reference: reference.into(), layout: layout.into() })
        }
        _ => bail!("{} {command} printed {text:?}", script.display()),
    }
}

/// The image called `name`.
pub fn image(name: &str) -> Image {
    let images = built_images().expect("the built images");
    images.into_iter().find(|i| i.name == name).unwrap_or_else(|| panic!("no image {name} was built"))
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum").arg(path).output().context("run sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(format!("sha256:{}", text.split_whitespace().next().unwrap_or_default()))
}

impl Image {
    fn blob(&self, digest: &str) -> PathBuf {
        self.layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
    }

    /// Reads a blob, refusing one whose content does not match its digest.
    fn verified_blob(&self, digest: &str) -> anyhow::Result<PathBuf> {
        let path = self.blob(digest);
        let actual = sha256_file(&path)?;
        if actual != digest {
            bail!("{}: digest {actual}, expected {digest}", path.display());
        }
        Ok(path)
    }

    /// The manifest the index names for this image's reference.
    pub fn manifest(&self) -> anyhow::Result<(String, Value)> {
        let index = read_json(&self.layout.join("index.json"))?;
        let entry = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"]["io.containerd.image.name"] == self.reference.as_str())
            .with_context(|| format!("{} does not name {}", self.layout.display(), self.reference))?;
        let digest = entry["digest"].as_str().context("manifest digest")?.to_string();
        Ok((digest.clone(), read_json(&self.verified_blob(&digest)?)?))
    }

    /// The image's runtime config (`Entrypoint`, `Env`, `User`, ...).
    pub fn config(&self) -> anyhow::Result<Value> {
        let (_, manifest) = self.manifest()?;
        let digest = manifest["config"]["digest"].as_str().context("config digest")?;
        Ok(read_json(&self.verified_blob(digest)?)?["config"].clone())
    }

    /// The image's root file system, unpacked once per manifest digest (every layer checked
    /// against its digest) and shared read-only by the containers of the tests.
    pub fn rootfs(&self) -> anyhow::Result<PathBuf> {
        let (digest, manifest) = self.manifest()?;
        let dir = cache_dir().join("bundles").join(digest.trim_start_matches("sha256:"));
        let rootfs = dir.join("rootfs");
        if dir.join(".complete").exists() {
            return Ok(rootfs);
        }
        // One unpacker per image at a time (tests of one image run in parallel).
        std::fs::create_dir_all(cache_dir().join("bundles"))?;
        let lock = std::fs::File::create(dir.with_extension("lock"))?;
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", dir.display()))?;
        if dir.join(".complete").exists() {
            return Ok(rootfs);
        }
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("rootfs"))?;
        for layer in manifest["layers"].as_array().context("layers")? {
            let media = layer["mediaType"].as_str().unwrap_or_default();
            if !media.ends_with("+zstd") {
                bail!("unexpected layer type {media}");
            }
            let blob = self.verified_blob(layer["digest"].as_str().context("layer digest")?)?;
            let status = Command::new("sh")
                .arg("-c")
                .arg("zstd -dc \"$1\" | tar -x --numeric-owner -C \"$2\"")
                .args(["unpack", &blob.display().to_string(), &tmp.join("rootfs").display().to_string()])
                .status()?;
            if !status.success() {
                bail!("unpacking {} failed", blob.display());
            }
        }
        std::fs::write(tmp.join(".complete"), "")?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)?;
        Ok(rootfs)
    }
}

/// A bind mount into the container.
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// What to run: the image's entrypoint and environment unless replaced, as the image's user.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Replaces the image's Entrypoint + Cmd when given (a pod's `command`).
    pub command: Option<Vec<String>>,
    /// Replaces the image's Cmd (a pod's `args`).
    pub args: Option<Vec<String>>,
    /// Added to the image's environment.
    pub env: Vec<(String, String)>,
    pub binds: Vec<Bind>,
    /// Size-limited tmpfs mounts (an emptyDir with `medium: Memory`).
    pub tmpfs: Vec<String>,
    /// Share the host's network namespace (for a test that connects on loopback).
    pub host_network: bool,
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect()
}

/// The container's `config.json`: the pod's security context applied to the image.
pub fn runtime_spec(image: &Image, run: &Run) -> anyhow::Result<Value> {
    let config = image.config()?;
    let (uid, gid) = match config["User"].as_str().unwrap_or_default().split_once(':') {
        Some((u, g)) => (u.parse::<u32>()?, g.parse::<u32>()?),
        None => bail!("{} names no numeric user:group ({})", image.name, config["User"]),
    };
    let args = match &run.command {
        Some(command) => [command.clone(), run.args.clone().unwrap_or_default()].concat(),
        None => [strings(&config["Entrypoint"]), run.args.clone().unwrap_or_else(|| strings(&config["Cmd"]))].concat(),
    };
    let mut env = strings(&config["Env"]);
    env.extend(run.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for path in &run.tmpfs {
        mounts.push(json!({"destination": path, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777", "size=1g"]}));
    }
    for bind in &run.binds {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        if bind.read_only {
            options.push("ro");
        }
        mounts.push(json!({"destination": bind.destination, "type": "bind",
                           "source": bind.source, "options": options}));
    }
    let mut namespaces =
        vec![json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"}), json!({"type": "mount"})];
    if !run.host_network {
        namespaces.push(json!({"type": "network"}));
    }
    let none: Vec<String> = Vec::new();
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env,
            "cwd": config["WorkingDir"].as_str().filter(|d| !d.is_empty()).unwrap_or("/"),
            "capabilities": {"bounding": none, "effective": none, "permitted": none, "inheritable": none, "ambient": none},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}],
            "noNewPrivileges": true
        },
        "root": {"path": image.rootfs()?, "readonly": true},
        "hostname": "spore-image-test",
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    }))
}

const RUNC_ROOT: &str = "/run/spore-tests-runc";

fn runc() -> Command {
    let mut command = Command::new("runc");
    command.args(["--root", RUNC_ROOT]);
    command
}

/// A container under runc; killed and deleted when dropped.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    bundle: tempfile::TempDir,
    child: Option<Child>,
}

impl Container {
    fn prepare(image: &Image, run: &Run) -> anyhow::Result<Container> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!("spore-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let bundle = tempfile::tempdir()?;
        let spec = runtime_spec(image, run)?;
        std::fs::write(bundle.path().join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
        Ok(Container { id, bundle, child: None })
    }

    fn command(&self) -> Command {
        let mut command = runc();
        command.arg("run").arg("--bundle").arg(self.bundle.path()).arg(&self.id);
        command
    }

    /// Runs to the end: the container's exit status and output.
    pub fn run(image: &Image, run: &Run) -> anyhow::Result<Output> {
        let container = Container::prepare(image, run)?;
        let output = container.command().stdin(Stdio::null()).output().context("run runc")?;
        Ok(output)
    }

    /// Starts it in the background, its output to `log`.
    pub fn start(image: &Image, run: &Run, log: &Path) -> anyhow::Result<Container> {
        let mut container = Container::prepare(image, run)?;
        let out = std::fs::File::create(log)?;
        let child = container
            .command()
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("run runc")?;
        container.child = Some(child);
        Ok(container)
    }

    /// The host PID of the container's first process, once it runs.
    pub fn pid(&self) -> Option<u32> {
        let out = runc().arg("state").arg(&self.id).output().ok()?;
        let state: Value = serde_json::from_slice(&out.stdout).ok()?;
        (state["status"] == "running").then(|| state["pid"].as_u64()).flatten().map(|p| p as u32)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = runc().args(["kill", &self.id, "KILL"]).output();
        if let Some(child) = self.child.as_mut() {
            let _ = child.wait();
        }
        let _ = runc().args(["delete", "--force", &self.id]).output();
    }
}

/// The `Uid`, `CapEff`, `NoNewPrivs` (...) lines of `/proc/PID/status`.
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

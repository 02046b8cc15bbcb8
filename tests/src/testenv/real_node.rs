//! A real node beside the fake ones: Debian's containerd (CRI) with runc and the CNI plugins,
//! and a kubelet built from the same Kubernetes version as the apiserver. Pods scheduled there
//! run as real containers from the project's images, imported into containerd (no registry is
//! reachable). Steer a pod there with the node label [`NODE_LABEL`]`=true`.
//!
//! The node's address is the gateway of a bridge this environment creates ([`BRIDGE`],
//! [`NODE_IP`]): a kubelet refuses a loopback node IP, and pods reach the host there. Nothing
//! else leaves the machine. One real node runs on a machine at a time (the bridge and subnet
//! are fixed): [`lock`] waits for the previous one to go.
//!
//! Needs root, cgroup v1 or v2, and Debian's `containerd`, `runc` and `containernetworking-plugins`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::TestEnvError;
use super::ports::free_port;
use super::process::ServiceSpec;

/// The node's name and the label that marks it.
pub const NODE_NAME: &str = "spore-real-node";
pub const NODE_LABEL: &str = "sporemesh.io/real-node";
/// The bridge the pods' interfaces join, its address (the node's InternalIP) and subnet.
pub const BRIDGE: &str = "spore-cni0";
pub const NODE_IP: &str = "10.89.0.1";
pub const POD_SUBNET: &str = "10.89.0.0/24";
/// The cluster DNS Service's address (in the apiserver's service range, 10.0.0.0/24).
pub const CLUSTER_DNS_IP: &str = "10.0.0.10";
/// Where Debian's CNI plugins live.
const CNI_BIN_DIR: &str = "/usr/lib/cni";
const LOCK_PATH: &str = "/run/spore-real-node.lock";

/// containerd's root (its content store and unpacked snapshots) lives here between runs, so a
/// warm run imports nothing: the training image alone is 2.6 GB packed, 5.6 GB unpacked.
pub fn cache_root() -> PathBuf {
    std::env::var_os("SPORE_REAL_NODE_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"))
            .join(".cache/spore/real-node")
    })
}

/// What `down` needs to undo.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealNodeState {
    pub dir: PathBuf,
    /// containerd's root, from [`cache_root`].
    pub root: PathBuf,
    pub socket: PathBuf,
    /// Network namespaces that existed before the node started (the rest are its pods').
    pub netns_before: Vec<String>,
    /// Its `--cleanup` removes the rules kube-proxy wrote.
    pub kube_proxy: PathBuf,
}

/// Holds the machine's one real node slot while alive.
#[derive(Debug)]
pub struct NodeLock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// Waits until no other real node runs on this machine, then holds the slot.
pub fn lock() -> Result<NodeLock, TestEnvError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .map_err(|e| TestEnvError::io(format!("open {LOCK_PATH}"), e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map(NodeLock)
        .map_err(|(_, e)| TestEnvError::Setup(format!("lock {LOCK_PATH}: {e}")))
}

/// Refuses clearly where the node cannot run.
pub fn check_host() -> Result<(), TestEnvError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(TestEnvError::Setup("a real node needs root (containerd, the kubelet, a bridge)".into()));
    }
    for (path, package) in [
        ("/usr/bin/containerd", "containerd"),
        ("/usr/bin/ctr", "containerd"),
        ("/usr/sbin/runc", "runc"),
        ("/usr/lib/cni/bridge", "containernetworking-plugins"),
        ("/usr/lib/cni/host-local", "containernetworking-plugins"),
        ("/usr/lib/cni/loopback", "containernetworking-plugins"),
    ] {
        if !Path::new(path).exists() {
            return Err(TestEnvError::Setup(format!("{path} is missing: apt-get install {package}")));
        }
    }
    Ok(())
}

fn run(program: &str, args: &[&str]) -> Result<String, TestEnvError> {
    let out = Command::new(program).args(args).output().map_err(|e| TestEnvError::io(format!("run {program}"), e))?;
    if !out.status.success() {
        return Err(TestEnvError::Setup(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write(path: &Path, text: &str) -> Result<(), TestEnvError> {
    std::fs::write(path, text).map_err(|e| TestEnvError::io(format!("write {}", path.display()), e))
}

fn netns_names() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Creates the bridge with the node's address (a leftover one of a killed run is replaced).
pub fn create_bridge() -> Result<(), TestEnvError> {
    let _ = run("ip", &["link", "delete", BRIDGE]);
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run("ip", &["addr", "add", &format!("{NODE_IP}/24"), "dev", BRIDGE])?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    Ok(())
}

/// Writes the configuration of containerd, CNI and the kubelet under `dir`, creates the bridge,
/// and returns the state and the two services (containerd first).
pub fn prepare(
    dir: &Path,
    bin: &Path,
    kubeconfig: &Path,
    ca_cert: &Path,
    sandbox_image: &str,
) -> Result<(RealNodeState, Vec<ServiceSpec>), TestEnvError> {
    check_host()?;
    let d = |sub: &str| dir.join(sub);
    for sub in ["containerd", "cni/net.d", "cni/ipam", "kubelet", "kubelet-pki"] {
        std::fs::create_dir_all(d(sub)).map_err(|e| TestEnvError::io(format!("create {sub}"), e))?;
    }
    let socket = d("containerd/containerd.sock");
    let root = cache_root().join("containerd");
    std::fs::create_dir_all(&root).map_err(|e| TestEnvError::io(format!("create {}", root.display()), e))?;
    let containerd_metrics = free_port()?;
    write(
        &d("containerd/config.toml"),
        &format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[metrics]
  address = "127.0.0.1:{containerd_metrics}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The machine forbids lowering oom_score_adj; without this runc cannot start a container.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = root.display(),
            state = d("containerd/state").display(),
            socket = socket.display(),
            cni = d("cni/net.d").display(),
            opt = d("containerd/opt").display(),
        ),
    )?;
    write(
        &d("cni/net.d/10-spore-test.conflist"),
        &serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "spore-test",
            "plugins": [{
                "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": false, "hairpinMode": true,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": d("cni/ipam")}
            }]
        })
        .to_string(),
    )?;
    let (kubelet_port, healthz_port) = (free_port()?, free_port()?);
    write(
        &d("kubelet/config.yaml"),
        &format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             failCgroupV1: false\ncgroupDriver: cgroupfs\ncgroupsPerQOS: false\nenforceNodeAllocatable: []\n\
             localStorageCapacityIsolation: false\nfailSwapOn: false\n\
             containerRuntimeEndpoint: unix://{socket}\nresolvConf: \"\"\n\
             address: {NODE_IP}\nport: {kubelet_port}\nreadOnlyPort: 0\n\
             healthzBindAddress: 127.0.0.1\nhealthzPort: {healthz_port}\n\
             authentication: {{anonymous: {{enabled: false}}, webhook: {{enabled: true}}, x509: {{clientCAFile: {ca}}}}}\n\
             authorization: {{mode: Webhook}}\n\
             # The machine's disk is shared with everything else: never evict the tests' pods.\n\
             evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}}\n\
             imageGCHighThresholdPercent: 100\nserializeImagePulls: false\n\
             clusterDNS: [{CLUSTER_DNS_IP}]\nclusterDomain: cluster.local\n",
            socket = socket.display(),
            ca = ca_cert.display(),
        ),
    )?;
    let netns_before = netns_names();
    let state = RealNodeState {
        dir: dir.to_path_buf(),
        root,
        socket: socket.clone(),
        netns_before,
        kube_proxy: bin.join("kube-proxy"),
    };
    let (proxy_metrics, proxy_healthz) = (free_port()?, free_port()?);
    let services = vec![
        ServiceSpec {
            name: "containerd".into(),
            argv: vec!["containerd".into(), "--config".into(), d("containerd/config.toml").display().to_string()],
            env: Vec::new(),
            log: dir.join("../logs/containerd.log"),
            run_as: None,
            port: containerd_metrics,
        },
        ServiceSpec {
            name: "kubelet".into(),
            argv: vec![
                bin.join("kubelet").display().to_string(),
                format!("--config={}", d("kubelet/config.yaml").display()),
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--root-dir={}", d("kubelet").display()),
                format!("--cert-dir={}", d("kubelet-pki").display()),
                format!("--node-ip={NODE_IP}"),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-labels={NODE_LABEL}=true"),
                "--v=1".into(),
            ],
            env: Vec::new(),
            log: dir.join("../logs/kubelet.log"),
            run_as: None,
            port: healthz_port,
        },
        // Services for the node's pods (the operator reaches the apiserver through `kubernetes`);
        // traffic to a Service is masqueraded, so a pod answering a pod on the same bridge
        // answers through the node.
        ServiceSpec {
            name: "kube-proxy".into(),
            argv: vec![
                bin.join("kube-proxy").display().to_string(),
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--hostname-override={NODE_NAME}"),
                "--proxy-mode=iptables".into(),
                format!("--cluster-cidr={POD_SUBNET}"),
                "--masquerade-all".into(),
                "--conntrack-max-per-core=0".into(),
                format!("--metrics-bind-address=127.0.0.1:{proxy_metrics}"),
                format!("--healthz-bind-address=127.0.0.1:{proxy_healthz}"),
                "--v=1".into(),
            ],
            env: Vec::new(),
            log: dir.join("../logs/kube-proxy.log"),
            run_as: None,
            port: proxy_healthz,
        },
    ];
    Ok((state, services))
}

fn ctr(socket: &Path) -> Command {
    let mut command = Command::new("ctr");
    command.arg("--address").arg(socket).args(["--namespace", "k8s.io"]);
    command
}

/// The node's images as containerd lists them: (reference, manifest digest).
fn present(socket: &Path) -> Result<Vec<(String, String)>, TestEnvError> {
    let out = ctr(socket).args(["images", "list"]).output().map_err(|e| TestEnvError::io("run ctr images list", e))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((fields.first()?.to_string(), fields.get(2)?.to_string()))
        })
        .collect())
}

/// Makes the node hold exactly `images` (reference, manifest digest, OCI layout): imports those
/// it lacks, and deletes every other image so that containerd collects its content and
/// snapshots (the disk holds one generation of the project's images).
pub fn sync_images(socket: &Path, images: &[(String, String, PathBuf)]) -> Result<(), TestEnvError> {
    let have = present(socket)?;
    for (reference, digest, layout) in images {
        if !have.iter().any(|(r, d)| r == reference && d == digest) {
            import(socket, layout)?;
        }
    }
    let stale: Vec<String> = present(socket)?
        .into_iter()
        .filter(|(reference, digest)| {
            !images.iter().any(|(r, d, _)| r == reference || (reference.starts_with("sha256:") && d == digest))
        })
        .map(|(reference, _)| reference)
        .collect();
    if !stale.is_empty() {
        let out = ctr(socket)
            .args(["images", "rm", "--sync"])
            .args(&stale)
            .output()
            .map_err(|e| TestEnvError::io("run ctr images rm", e))?;
        if !out.status.success() {
            return Err(TestEnvError::Setup(format!("ctr images rm: {}", String::from_utf8_lossy(&out.stderr))));
        }
    }
    Ok(())
}

/// Imports an OCI image layout into the node's containerd (the kubelet then finds it present).
fn import(socket: &Path, layout: &Path) -> Result<(), TestEnvError> {
    let mut tar = Command::new("tar")
        .arg("--create")
        .arg("--file=-")
        .arg("--directory")
        .arg(layout)
        .arg(".")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| TestEnvError::io("run tar", e))?;
    let stdout = tar.stdout.take().ok_or_else(|| TestEnvError::Setup("tar has no stdout".into()))?;
    let out = ctr(socket)
        .args(["images", "import", "-"])
        .stdin(stdout)
        .output()
        .map_err(|e| TestEnvError::io("run ctr images import", e))?;
    let tar_ok = tar.wait().map(|s| s.success()).unwrap_or(false);
    if !out.status.success() || !tar_ok {
        return Err(TestEnvError::Setup(format!(
            "importing {} failed: {}",
            layout.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Kills every container and pod sandbox of the node (the kubelet stopped first, so none comes
/// back).
pub fn kill_containers(state: &RealNodeState) {
    let Ok(out) = ctr(&state.socket).args(["tasks", "list", "--quiet"]).output() else { return };
    for id in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
        let _ = ctr(&state.socket).args(["tasks", "kill", "--signal", "SIGKILL", id]).output();
    }
    for _ in 0..50 {
        let left = ctr(&state.socket).args(["tasks", "list", "--quiet"]).output();
        if left.map(|o| o.stdout.iter().all(u8::is_ascii_whitespace)).unwrap_or(true) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// After containerd stopped: ends its shims, unmounts what it and the kubelet mounted, removes
/// the pods' network namespaces and the bridge.
pub fn clean_up(state: &RealNodeState) {
    let socket = state.socket.display().to_string();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim") && cmdline.contains(&socket) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (dir, root) = (state.dir.display().to_string(), state.root.display().to_string());
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&dir) || point.starts_with(&root) || point.starts_with("/run/netns/cni-"))
        .collect();
    ours.reverse();
    for point in ours {
        if point.starts_with("/run/netns/") && state.netns_before.iter().any(|n| point.ends_with(n.as_str())) {
            continue;
        }
        let _ = Command::new("umount").args(["--lazy", point]).output();
    }
    for name in netns_names() {
        if name.starts_with("cni-") && !state.netns_before.contains(&name) {
            let _ = std::fs::remove_file(Path::new("/run/netns").join(name));
        }
    }
    let _ = Command::new(&state.kube_proxy).args(["--cleanup", "--proxy-mode=iptables"]).output();
    remove_kube_chains();
    delete_bridge();
}

/// Deletes the node's bridge.
pub fn delete_bridge() {
    let _ = run("ip", &["link", "delete", BRIDGE]);
}

/// Removes the firewall chains the kubelet and kube-proxy leave (`KUBE-FIREWALL`, canaries,
/// hints) and the rules that jump to them.
fn remove_kube_chains() {
    for program in ["iptables", "ip6tables"] {
        for table in ["mangle", "nat", "filter"] {
            let Ok(out) = Command::new(program).args(["-t", table, "-S"]).output() else { continue };
            let rules = String::from_utf8_lossy(&out.stdout).into_owned();
            for line in rules.lines().filter(|l| l.starts_with("-A ") && l.contains("-j KUBE-")) {
                // The shell splits the rule as iptables printed it (comments are quoted).
                let delete = format!("{program} -t {table} -D {}", &line[3..]);
                let _ = Command::new("sh").args(["-c", &delete]).output();
            }
            let chains: Vec<&str> =
                rules.lines().filter_map(|l| l.strip_prefix("-N ")).filter(|c| c.starts_with("KUBE-")).collect();
            for flag in ["-F", "-X"] {
                for chain in &chains {
                    let _ = Command::new(program).args(["-t", table, flag, chain]).output();
                }
            }
        }
    }
}

/// CoreDNS for the cluster (`*.svc.cluster.local` from the API; nothing forwarded off the
/// machine), on the real node, as `kube-dns` at [`CLUSTER_DNS_IP`].
pub fn dns_manifest(image: &str) -> String {
    include_str!("../../support/coredns.yaml").replace("IMAGE", image).replace("CLUSTER_DNS_IP", CLUSTER_DNS_IP)
}

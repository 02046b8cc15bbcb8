//! A real single-node Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok (fake nodes and pod lifecycles), built from
//! Go modules by `scripts/k8s-bins.sh`. Fake GPU nodes look like a real GPU cluster's: each
//! advertises `nvidia.com/gpu`, carries the GPU product label and the `nvidia.com/gpu` taint.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::TestEnvError;
use super::pki::{ClientCert, Pki};
use super::ports::free_port;
use super::process::{Service, ServiceSpec, wait_for_port};
use super::real_node;

/// Our kwok stages (pod completion driven by test annotations); kwok's defaults are added.
const OUR_STAGES: &str = include_str!("../../support/kwok/stages.yaml");

/// kwok's own stages we use, relative to the stage directory in the bin cache.
const KWOK_DEFAULT_STAGES: [&str; 4] = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-delete.yaml",
];

/// GPUs per fake GPU node.
pub const GPUS_PER_NODE: u32 = 4;
/// The product label value of the fake GPUs.
pub const GPU_PRODUCT: &str = "NVIDIA-H100-80GB-HBM3";
/// The normalised GPU class of the fake GPUs (label `sporemesh.io/gpu-class`).
pub const GPU_CLASS: &str = "H100";

/// Locates the control-plane binaries: `$K8S_TEST_BIN`, else the cache of `scripts/k8s-bins.sh`
/// (building it if needed).
pub fn bin_dir() -> Result<PathBuf, TestEnvError> {
    if let Some(dir) = std::env::var_os("K8S_TEST_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/k8s-bins.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("ensure")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| TestEnvError::io(format!("run {}", script.display()), e))?;
    if !output.status.success() {
        return Err(TestEnvError::Setup("scripts/k8s-bins.sh ensure failed".into()));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(PathBuf::from(stdout.lines().last().unwrap_or_default().trim()))
}

/// Writes a kubeconfig for `user` authenticated by `cert`.
pub fn write_kubeconfig(
    path: &Path,
    api_port: u16,
    ca_pem: &str,
    user: &str,
    cert: &ClientCert,
) -> Result<(), TestEnvError> {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: spore-test\npreferences: {{}}\n\
         clusters:\n- name: spore-test\n  cluster:\n    server: https://127.0.0.1:{api_port}\n    certificate-authority-data: {}\n\
         contexts:\n- name: spore-test\n  context:\n    cluster: spore-test\n    user: {user}\n    namespace: default\n\
         users:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem.as_bytes()),
        b64(cert.cert_pem.as_bytes()),
        b64(cert.key_pem.as_bytes()),
    );
    std::fs::write(path, text).map_err(|e| TestEnvError::io(format!("write {}", path.display()), e))
}

/// The service specs of a control plane in `dir`, on fresh ports.
pub fn control_plane_services(
    dir: &Path,
    bin: &Path,
    pki: &Pki,
    admin_kubeconfig: &Path,
    real_node: bool,
) -> Result<(Vec<ServiceSpec>, u16), TestEnvError> {
    let (etcd, peer, api, kcm, scheduler, kwok) =
        (free_port()?, free_port()?, free_port()?, free_port()?, free_port()?, free_port()?);
    let b = |name: &str| bin.join(name).to_string_lossy().into_owned();
    let p = |path: &Path| path.to_string_lossy().into_owned();
    let d = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let kubeconfig = p(admin_kubeconfig);
    let log = |name: &str| dir.join("logs").join(format!("{name}.log"));
    let spec = |name: &str, port: u16, argv: Vec<String>| ServiceSpec {
        name: name.into(),
        argv,
        env: Vec::new(),
        log: log(name),
        run_as: None,
        port,
    };
    let kwok_config = dir.join("kwok.yaml");
    write_kwok_config(&kwok_config, bin)?;
    // The apiserver's client certificate for kubelets (`kubectl logs`, `exec` on a real node).
    let kubelet_client = pki.client_cert("kube-apiserver-kubelet-client", Some("system:masters"))?;
    let (kubelet_client_cert, kubelet_client_key) =
        (dir.join("pki/kubelet-client.crt"), dir.join("pki/kubelet-client.key"));
    std::fs::write(&kubelet_client_cert, &kubelet_client.cert_pem)
        .map_err(|e| TestEnvError::io("write kubelet client cert", e))?;
    std::fs::write(&kubelet_client_key, &kubelet_client.key_pem)
        .map_err(|e| TestEnvError::io("write kubelet client key", e))?;
    let services = vec![
        spec(
            "etcd",
            etcd,
            vec![
                b("etcd"),
                "--name=default".into(),
                format!("--data-dir={}", d("etcd")),
                format!("--listen-client-urls=http://127.0.0.1:{etcd}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster=default=http://127.0.0.1:{peer}"),
                "--unsafe-no-fsync=true".into(),
                "--auto-compaction-retention=1".into(),
                "--quota-backend-bytes=2147483648".into(),
                "--log-level=warn".into(),
            ],
        ),
        spec(
            "apiserver",
            api,
            vec![
                b("kube-apiserver"),
                format!("--etcd-servers=http://127.0.0.1:{etcd}"),
                // With a real node, its pods reach the apiserver through the `kubernetes` Service,
                // whose endpoint is the advertised address: the node's bridge.
                format!("--bind-address={}", if real_node { "0.0.0.0" } else { "127.0.0.1" }),
                format!("--advertise-address={}", if real_node { real_node::NODE_IP } else { "127.0.0.1" }),
                format!("--secure-port={api}"),
                format!("--cert-dir={}", d("apiserver-certs")),
                format!("--tls-cert-file={}", p(&pki.serving_cert)),
                format!("--tls-private-key-file={}", p(&pki.serving_key)),
                format!("--client-ca-file={}", p(&pki.ca_cert)),
                format!("--service-account-issuer=https://127.0.0.1:{api}"),
                format!("--service-account-key-file={}", p(&pki.sa_pub)),
                format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--authorization-mode=RBAC".into(),
                "--allow-privileged=true".into(),
                // Namespaces need no default ServiceAccount before their first pod (kwok pods use no token).
                // Fake nodes run no pod that talks to the apiserver; a real node's pods get their
                // service-account tokens.
                format!("--disable-admission-plugins={}", if real_node { "" } else { "ServiceAccount" }),
                // `kubectl logs` of a real node's pods: its InternalIP, not its name through DNS.
                "--kubelet-preferred-address-types=InternalIP".into(),
                format!("--kubelet-client-certificate={}", p(&kubelet_client_cert)),
                format!("--kubelet-client-key={}", p(&kubelet_client_key)),
                "--v=1".into(),
            ],
        ),
        spec(
            "controller-manager",
            kcm,
            vec![
                b("kube-controller-manager"),
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={kcm}"),
                "--leader-elect=false".into(),
                "--controllers=*".into(),
                format!("--root-ca-file={}", p(&pki.ca_cert)),
                format!("--service-account-private-key-file={}", p(&pki.sa_key)),
                "--v=1".into(),
            ],
        ),
        spec(
            "scheduler",
            scheduler,
            vec![
                b("kube-scheduler"),
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={scheduler}"),
                "--leader-elect=false".into(),
                "--v=1".into(),
            ],
        ),
        spec(
            "kwok",
            kwok,
            vec![
                b("kwok"),
                format!("--kubeconfig={kubeconfig}"),
                format!("--config={}", p(&kwok_config)),
                "--manage-all-nodes=false".into(),
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
                "--cidr=10.244.0.0/16".into(),
                "--node-ip=10.255.0.1".into(),
                "--node-lease-duration-seconds=40".into(),
                format!("--server-address=127.0.0.1:{kwok}"),
            ],
        ),
    ];
    Ok((services, api))
}

fn write_kwok_config(path: &Path, bin: &Path) -> Result<(), TestEnvError> {
    let mut text = String::from(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n  \
         enablePodsOnNodeSyncStreamWatch: true\n  nodeLeaseParallelism: 4\n  podPlayStageParallelism: 4\n  \
         nodePlayStageParallelism: 4\n  podsOnNodeSyncParallelism: 4\n",
    );
    for stage in KWOK_DEFAULT_STAGES {
        let stage_path = bin.join("kwok-stages").join(stage);
        let yaml = std::fs::read_to_string(&stage_path)
            .map_err(|e| TestEnvError::io(format!("read kwok stage {}", stage_path.display()), e))?;
        text.push_str("---\n");
        text.push_str(&yaml);
    }
    text.push_str("---\n");
    text.push_str(OUR_STAGES);
    std::fs::write(path, text).map_err(|e| TestEnvError::io("write kwok config", e))
}

/// Starts the services in order, waiting for each to listen (and the apiserver to be ready).
pub fn start_control_plane(services: &mut [Service], kubectl: &Kubectl) -> Result<(), TestEnvError> {
    for service in services.iter_mut() {
        service.start()?;
        // Checked after the port answers too: a service that lost its port to another process exits.
        if !wait_for_port(service.spec.port, Duration::from_secs(60)) || !service.is_running() {
            return Err(TestEnvError::Startup { service: service.spec.name.clone(), log: service.log_tail(20) });
        }
        if service.spec.name == "apiserver" {
            kubectl.wait_ready(Duration::from_secs(90)).map_err(|e| TestEnvError::Startup {
                service: "apiserver".into(),
                log: format!("{e}\n{}", service.log_tail(20)),
            })?;
        }
    }
    Ok(())
}

/// YAML for `gpus` GPUs on fake nodes of [`GPUS_PER_NODE`], plus one CPU-only node.
pub fn fake_nodes_yaml(gpus: u32) -> String {
    let mut docs = Vec::new();
    let mut left = gpus;
    let mut index = 0;
    while left > 0 {
        let here = left.min(GPUS_PER_NODE);
        docs.push(format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: sim-gpu-{index}\n  \
             annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}}\n  \
             labels: {{kubernetes.io/hostname: sim-gpu-{index}, kubernetes.io/os: linux, kubernetes.io/arch: amd64, \
             type: kwok, nvidia.com/gpu.present: \"true\", nvidia.com/gpu.product: {GPU_PRODUCT}, \
             nvidia.com/gpu.count: \"{here}\", sporemesh.io/gpu-class: {GPU_CLASS}}}\n\
             spec:\n  taints: [{{key: nvidia.com/gpu, value: present, effect: NoSchedule}}]\n\
             status:\n  capacity: {{cpu: \"64\", memory: 512Gi, ephemeral-storage: 2Ti, pods: \"110\", nvidia.com/gpu: \"{here}\"}}\n  \
             allocatable: {{cpu: \"64\", memory: 512Gi, ephemeral-storage: 2Ti, pods: \"110\", nvidia.com/gpu: \"{here}\"}}\n"
        ));
        left -= here;
        index += 1;
    }
    docs.push(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: sim-cpu-0\n  \
         annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}\n  \
         labels: {kubernetes.io/hostname: sim-cpu-0, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}\n\
         status:\n  capacity: {cpu: \"64\", memory: 512Gi, ephemeral-storage: 2Ti, pods: \"110\"}\n  \
         allocatable: {cpu: \"64\", memory: 512Gi, ephemeral-storage: 2Ti, pods: \"110\"}\n"
            .to_string(),
    );
    docs.join("---\n")
}

/// `kubectl` with a fixed kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    /// Runs kubectl; returns stdout, or an error with stderr.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, TestEnvError> {
        use std::io::Write;
        let mut child = Command::new(&self.binary)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TestEnvError::io("run kubectl", e))?;
        if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
            pipe.write_all(input.as_bytes()).map_err(|e| TestEnvError::io("write to kubectl", e))?;
        }
        let output = child.wait_with_output().map_err(|e| TestEnvError::io("wait for kubectl", e))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(TestEnvError::Kubectl {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// Waits for the apiserver's `/readyz`.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), TestEnvError> {
        self.poll(timeout, "apiserver /readyz", || Ok(self.run(&["get", "--raw=/readyz"], None)?.trim() == "ok"))
    }

    /// Polls `check` every 200 ms until it is true.
    pub fn poll(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut() -> Result<bool, TestEnvError>,
    ) -> Result<(), TestEnvError> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match check() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(TestEnvError::Timeout { what: what.into(), last })
    }
}

/// Creates the fake nodes for `gpus` GPUs.
pub fn create_nodes(kubectl: &Kubectl, gpus: u32) -> Result<(), TestEnvError> {
    kubectl.run(&["apply", "-f", "-"], Some(&fake_nodes_yaml(gpus))).map(drop)
}

/// Waits until every fake node is Ready and schedulable (the controller-manager has removed the
/// not-ready taint); a timeout says what was last seen.
pub fn wait_nodes_ready(kubectl: &Kubectl, gpus: u32, timeout: Duration) -> Result<(), TestEnvError> {
    let expected = gpus.div_ceil(GPUS_PER_NODE) as usize + 1;
    let mut observed = String::new();
    let waited = kubectl.poll(timeout, "fake nodes Ready and untainted", || {
        let ready = kubectl.run(
            &[
                "get",
                "nodes",
                "-o",
                r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}"#,
            ],
            None,
        )?;
        let taints = kubectl.run(&["get", "nodes", "-o", "jsonpath={.items[*].spec.taints[*].key}"], None)?;
        let ready_count = ready.split_whitespace().filter(|s| *s == "True").count();
        observed = format!("Ready: [{}], taints: [{}]", ready.trim(), taints.trim());
        Ok(ready_count == expected && !taints.contains("node.kubernetes.io/not-ready"))
    });
    waited.map_err(|e| match e {
        TestEnvError::Timeout { what, last } => TestEnvError::Timeout { what, last: format!("{last} {observed}") },
        other => other,
    })
}

//! Tests against a real Kubernetes control plane (etcd, apiserver, controller-manager, scheduler,
//! kwok fake GPU nodes) started once for this test binary, and against a real PostgreSQL.
//! Each test works in its own namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use spore_tests::testenv::kubernetes::Kubectl;
use spore_tests::testenv::{TestEnv, TestEnvOptions};

type TestResult = Result<(), Failed>;

/// What every test gets: admin kubectl, helm and the repository root.
struct Cluster {
    kubectl: Kubectl,
    restricted: Kubectl,
    helm: PathBuf,
    dir: PathBuf,
    root: PathBuf,
}

impl Cluster {
    fn run(&self, args: &[&str]) -> Result<String, Failed> {
        self.kubectl.run(args, None).map_err(|e| e.to_string().into())
    }

    fn apply(&self, namespace: &str, yaml: &str) -> Result<String, Failed> {
        self.kubectl.run(&["apply", "-n", namespace, "-f", "-"], Some(yaml)).map_err(|e| e.to_string().into())
    }

    /// Applies `yaml` and returns the apiserver's refusal (the test fails if it is accepted).
    fn refused(&self, namespace: &str, yaml: &str) -> Result<String, Failed> {
        match self.kubectl.run(&["apply", "-n", namespace, "-f", "-"], Some(yaml)) {
            Ok(out) => Err(format!("accepted but should be refused: {out}").into()),
            Err(e) => Ok(e.to_string()),
        }
    }

    fn namespace(&self, name: &str) -> Result<(), Failed> {
        self.run(&["create", "namespace", name]).map(|_| ())
    }

    fn helm(&self, args: &[&str]) -> Result<String, Failed> {
        let output = Command::new(&self.helm)
            .args(args)
            .env("KUBECONFIG", &self.kubectl.kubeconfig)
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .output()
            .map_err(|e| format!("run helm: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!("helm {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr)).into())
        }
    }

    fn path(&self, relative: &str) -> String {
        self.root.join(relative).to_string_lossy().into_owned()
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> Result<bool, Failed>) -> TestResult {
        let deadline = std::time::Instant::now() + timeout;
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            match check() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = format!("{e:?}"),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("timed out waiting for {what} ({last})").into())
    }
}

const EXPERIMENT: &str = r#"
apiVersion: sporemesh.io/v1alpha1
kind: Experiment
metadata:
  name: NAME
spec:
  node: lab-node
  parentCid: 5d6b502b909b5d719cd077dfadd95cf7b69b9989694ffabe99bd72f2ccfeef15
  code:
    diff: "-LR = 0.04\n+LR = 0.05\n"
  description: raise the learning rate
  timeBudgetSeconds: 300
"#;

fn experiment(name: &str) -> String {
    EXPERIMENT.replace("NAME", name)
}

fn crds_are_established(c: &Cluster) -> TestResult {
    for crd in ["sporenodes.sporemesh.io", "experiments.sporemesh.io"] {
        let status =
            c.run(&["get", "crd", crd, "-o", r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#])?;
        assert_eq!(status, "True", "{crd} not Established");
    }
    let names = c.run(&["api-resources", "--api-group=sporemesh.io", "-o", "name"])?;
    assert!(names.contains("experiments.sporemesh.io") && names.contains("sporenodes.sporemesh.io"));
    let in_category = c.run(&["get", "spore", "-A", "-o", "name"]);
    assert!(in_category.is_ok(), "`kubectl get spore` must work: {in_category:?}");
    Ok(())
}

fn bad_experiment_specs_are_refused_with_clear_messages(c: &Cluster) -> TestResult {
    let ns = "bad-specs";
    c.namespace(ns)?;
    let base = experiment("bad");
    // (text in a valid spec, replaced by, what the refusal must say)
    let cases = [
        ("parentCid: 5d6b", "parentCid: 5D6B", "spec.parentCid"),
        ("timeBudgetSeconds: 300", "timeBudgetSeconds: 0", "spec.timeBudgetSeconds"),
        ("timeBudgetSeconds: 300", "timeBudgetSeconds: 86401", "spec.timeBudgetSeconds"),
        ("timeBudgetSeconds: 300", "timeBudgetSeconds: soon", "spec.timeBudgetSeconds"),
        ("  description:", "  colour: red\n  description:", "unknown field \"spec.colour\""),
        ("    diff:", "    inline: \"print(1)\"\n    diff:", "set exactly one of inline, configMapRef, diff"),
        ("  description:", "  purpose: verify\n  description:", "verifyCid is required when purpose is verify"),
        ("  node: lab-node\n", "", "spec.node: Required value"),
    ];
    for (from, to, expected) in cases {
        let yaml = base.replace(from, to);
        let refusal = c.refused(ns, &yaml)?;
        assert!(refusal.contains(expected), "refusal should mention {expected:?}, got: {refusal}");
    }
    Ok(())
}

fn experiment_spec_is_immutable(c: &Cluster) -> TestResult {
    let ns = "immutable";
    c.namespace(ns)?;
    c.apply(ns, &experiment("fixed"))?;
    let refusal = c.refused(ns, &experiment("fixed").replace("raise the learning rate", "something else"))?;
    assert!(refusal.contains("Experiment spec is immutable"), "{refusal}");
    let patch = c.kubectl.run(
        &["patch", "-n", ns, "experiment", "fixed", "--type=merge", "-p", r#"{"spec":{"timeBudgetSeconds":60}}"#],
        None,
    );
    assert!(patch.is_err_and(|e| e.to_string().contains("immutable")));
    // Status is not spec: the operator can still write it.
    c.run(&[
        "patch",
        "-n",
        ns,
        "experiment",
        "fixed",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Queued"}}"#,
    ])?;
    Ok(())
}

fn kubectl_get_experiments_reads_as_a_research_log(c: &Cluster) -> TestResult {
    let ns = "research-log";
    c.namespace(ns)?;
    c.apply(ns, &experiment("lr-0-05"))?;
    let status = r#"{"status":{"phase":"Succeeded","message":"training finished","metrics":{"valBpb":0.9931,"numSteps":953,"numParams":50331648,"peakVramMb":45060.2},
        "parentValBpb":0.9979,"deltaValBpb":-0.0048,"decision":"keep","gpuClass":"H100",
        "publishedCid":"433ed9532e8fbcf47eb69a9ad6a81b82774963aee33ac63b9b70303a0b14c457","publishedCidShort":"433ed9532e8f"}}"#;
    c.run(&["patch", "-n", ns, "experiment", "lr-0-05", "--subresource=status", "--type=merge", "-p", status])?;
    let table = c.run(&["get", "experiments", "-n", ns])?;
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "NODE", "PHASE", "VAL_BPB", "Δ", "DECISION", "GPU", "CID", "AGE"] {
        assert!(header.contains(column), "missing column {column}: {header}");
    }
    let row = table.lines().nth(1).unwrap_or_default();
    for value in ["lr-0-05", "lab-node", "Succeeded", "0.9931", "-0.0048", "keep", "H100", "433ed9532e8f"] {
        assert!(row.contains(value), "missing {value}: {row}");
    }
    let wide = c.run(&["get", "exp", "-n", ns, "-o", "wide"])?;
    assert!(wide.contains("raise the learning rate"), "wide output shows the description: {wide}");
    assert!(wide.contains("MESSAGE") && wide.contains("training finished"), "and the status message: {wide}");
    Ok(())
}

fn chart_examples_pass_server_side_dry_run(c: &Cluster) -> TestResult {
    let ns = "examples";
    c.namespace(ns)?;
    let out = c.run(&["apply", "-n", ns, "--dry-run=server", "-f", &c.path("charts/spore/examples")])?;
    assert!(out.contains("sporenode.sporemesh.io/lab-node created (server dry run)"), "{out}");
    assert!(out.contains("experiment.sporemesh.io/baseline created (server dry run)"), "{out}");
    assert!(out.contains("configmap/spore-baseline created (server dry run)"), "{out}");
    Ok(())
}

fn chart_lints_and_renders_against_the_real_api(c: &Cluster) -> TestResult {
    let chart = c.path("charts/spore");
    c.helm(&["lint", "--strict", &chart])?;
    let plain = c.helm(&["template", "spore", &chart])?;
    assert!(!plain.contains("SPORE_MIRROR_DATABASE_URL"), "no mirror unless enabled");
    // Its own release name: the cluster-scoped objects must not meet the installed release's.
    let rendered = c.helm(&[
        "template",
        "spore-render",
        &chart,
        "--namespace",
        "spore-render",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "mirror.enabled=true",
    ])?;
    // The mirror's database URL comes from the lab's Secret, and its policy lets it reach the
    // agents' gRPC port and Postgres.
    assert!(
        rendered.contains("name: SPORE_MIRROR_DATABASE_URL")
            && rendered.contains("name: \"spore-mirror-db\"\n                  key: \"url\""),
        "{rendered}"
    );
    assert!(rendered.contains("- port: 7471") && rendered.contains("- port: 5432"), "{rendered}");
    for kind in
        ["kind: Deployment", "kind: ClusterRole", "kind: ServiceAccount", "kind: NetworkPolicy", "kind: Service"]
    {
        assert!(rendered.contains(kind), "chart renders no {kind}");
    }
    assert!(!rendered.contains("\"*\""), "RBAC must not use wildcards");
    assert!(rendered.contains("readOnlyRootFilesystem: true") && rendered.contains("runAsNonRoot: true"));
    c.namespace("spore-render")?;
    c.kubectl
        .run(&["apply", "--dry-run=server", "-n", "spore-render", "-f", "-"], Some(&rendered))
        .map_err(|e| e.to_string())?;
    let refusal = c.helm(&["template", "spore", &chart, "--set", "replicaCount=0"]).err().map(|e| format!("{e:?}"));
    assert!(refusal.is_some_and(|e| e.contains("replicaCount")), "values.schema.json must refuse replicaCount=0");
    // As a subchart it gets Helm's `global` values: the schema takes them.
    c.helm(&["template", "spore", &chart, "--set", "global.imageRegistry=registry.lab.example"])?;
    Ok(())
}

fn helm_install_waits_for_a_running_operator(c: &Cluster) -> TestResult {
    let chart = c.path("charts/spore");
    let out = c.helm(&[
        "install",
        "spore",
        &chart,
        "--namespace",
        "spore-system",
        "--create-namespace",
        "--wait",
        "--timeout",
        "2m",
    ])?;
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(out.contains("kubectl get sporenodes,experiments"), "NOTES.txt is shown: {out}");
    let available = c.run(&[
        "get",
        "deployment",
        "-n",
        "spore-system",
        "spore",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#,
    ])?;
    assert_eq!(available, "True");
    let node = c.run(&["get", "pods", "-n", "spore-system", "-o", "jsonpath={.items[0].spec.nodeName}"])?;
    assert_eq!(node, "sim-cpu-0", "the operator needs no GPU and tolerates no GPU taint");
    Ok(())
}

fn gpu_pods_are_placed_by_the_real_scheduler(c: &Cluster) -> TestResult {
    let ns = "gpu-placement";
    c.namespace(ns)?;
    let pod = |name: &str, gpus: u32| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]\n  \
             containers: [{{name: train, image: spore:test, resources: {{limits: {{nvidia.com/gpu: \"{gpus}\"}}}}}}]\n"
        )
    };
    c.apply(ns, &pod("one-gpu", 1))?;
    c.apply(ns, &pod("five-gpus", 5))?;
    c.apply(
        ns,
        &pod("no-toleration", 1)
            .replace("  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n", ""),
    )?;
    c.wait_for("one-gpu Running", Duration::from_secs(60), || {
        Ok(c.run(&["get", "pod", "-n", ns, "one-gpu", "-o", "jsonpath={.status.phase}"])? == "Running")
    })?;
    let node = c.run(&["get", "pod", "-n", ns, "one-gpu", "-o", "jsonpath={.spec.nodeName}"])?;
    assert!(node.starts_with("sim-gpu-"), "bound to {node}");
    for name in ["five-gpus", "no-toleration"] {
        c.wait_for("FailedScheduling", Duration::from_secs(30), || {
            let reason = c.run(&[
                "get",
                "pod",
                "-n",
                ns,
                name,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason}"#,
            ])?;
            Ok(reason == "Unschedulable")
        })?;
        assert_eq!(c.run(&["get", "pod", "-n", ns, name, "-o", "jsonpath={.status.phase}"])?, "Pending");
    }
    let message = c.run(&[
        "get",
        "pod",
        "-n",
        ns,
        "five-gpus",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#,
    ])?;
    assert!(message.contains("Insufficient nvidia.com/gpu"), "{message}");
    Ok(())
}

fn pods_end_as_their_annotations_say(c: &Cluster) -> TestResult {
    let ns = "pod-lifecycle";
    c.namespace(ns)?;
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crashes\n  annotations: {sim.sporemesh.io/exit-code: \"3\", sim.sporemesh.io/run-for: 2s, sim.sporemesh.io/message: out of memory}\n\
                spec:\n  nodeSelector: {kubernetes.io/hostname: sim-cpu-0}\n  containers: [{name: train, image: spore:test}]\n---\n\
                apiVersion: v1\nkind: Pod\nmetadata:\n  name: succeeds\n  annotations: {sim.sporemesh.io/exit-code: \"0\", sim.sporemesh.io/message: '{\"val_bpb\": 0.99}'}\n\
                spec:\n  nodeSelector: {kubernetes.io/hostname: sim-cpu-0}\n  containers: [{name: train, image: spore:test}]\n---\n\
                apiVersion: v1\nkind: Pod\nmetadata: {name: keeps-running}\n\
                spec:\n  nodeSelector: {kubernetes.io/hostname: sim-cpu-0}\n  containers: [{name: train, image: spore:test}]\n---\n\
                apiVersion: batch/v1\nkind: Job\nmetadata: {name: job}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      \
                nodeSelector: {kubernetes.io/hostname: sim-cpu-0}\n      containers: [{name: c, image: spore:test}]\n";
    c.apply(ns, yaml)?;
    let phase = |name: &str| c.run(&["get", "pod", "-n", ns, name, "-o", "jsonpath={.status.phase}"]);
    c.wait_for("crashes Failed", Duration::from_secs(60), || Ok(phase("crashes")? == "Failed"))?;
    let terminated = c.run(&["get", "pod", "-n", ns, "crashes", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}/{.status.containerStatuses[0].state.terminated.message}"])?;
    assert_eq!(terminated, "3/out of memory");
    c.wait_for("succeeds Succeeded", Duration::from_secs(60), || Ok(phase("succeeds")? == "Succeeded"))?;
    let message = c.run(&[
        "get",
        "pod",
        "-n",
        ns,
        "succeeds",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.terminated.message}",
    ])?;
    assert_eq!(message, r#"{"val_bpb": 0.99}"#);
    c.wait_for("job Complete", Duration::from_secs(60), || {
        Ok(c.run(&[
            "get",
            "job",
            "-n",
            ns,
            "job",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Complete")].status}"#,
        ])? == "True")
    })?;
    assert_eq!(phase("keeps-running")?, "Running", "pods without the annotation keep running");
    Ok(())
}

fn restricted_user_gets_only_what_rbac_grants(c: &Cluster) -> TestResult {
    let ns = "rbac";
    c.namespace(ns)?;
    let denied = c.restricted.run(&["get", "experiments", "-n", ns], None);
    assert!(denied.is_err_and(|e| e.to_string().contains("forbidden")));
    c.run(&["create", "role", "read-experiments", "-n", ns, "--verb=get,list", "--resource=experiments.sporemesh.io"])?;
    c.run(&[
        "create",
        "rolebinding",
        "read-experiments",
        "-n",
        ns,
        "--role=read-experiments",
        "--user=spore-restricted",
    ])?;
    c.wait_for("RBAC to apply", Duration::from_secs(10), || {
        Ok(c.restricted.run(&["get", "experiments", "-n", ns], None).is_ok())
    })?;
    let write = c.restricted.run(&["apply", "-n", ns, "-f", "-"], Some(&experiment("nope")));
    assert!(write.is_err_and(|e| e.to_string().contains("forbidden")), "the grant is read-only");
    Ok(())
}

fn services_can_be_stopped_and_restarted_for_fault_tests(_: &Cluster) -> TestResult {
    let dir = std::env::temp_dir().join(format!("spore-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = TestEnvOptions::new(&dir);
    options.kubernetes = true;
    options.gpus = 4;
    options.postgres = true;
    let mut env = TestEnv::up(&options).map_err(|e| e.to_string())?;
    let psql = spore_tests::testenv::postgres::bin_dir().map_err(|e| e.to_string())?.join("psql");
    let url = env.database_url().unwrap().to_string();
    let query = |sql: &str| Command::new(&psql).args([url.as_str(), "-tAc", sql]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&query("select 40 + 2").stdout).trim(), "42");
    env.stop_service("postgres").map_err(|e| e.to_string())?;
    assert!(!query("select 1").status.success(), "postgres is down");
    env.start_service("postgres").map_err(|e| e.to_string())?;
    assert_eq!(String::from_utf8_lossy(&query("select 1").stdout).trim(), "1");

    let kubectl = env.kubectl().map_err(|e| e.to_string())?;
    kubectl.run(&["create", "namespace", "survives"], None).map_err(|e| e.to_string())?;
    env.stop_service("apiserver").map_err(|e| e.to_string())?;
    assert!(kubectl.run(&["get", "namespaces"], None).is_err(), "apiserver is down");
    env.start_service("apiserver").map_err(|e| e.to_string())?;
    let namespaces = kubectl.run(&["get", "namespaces"], None).map_err(|e| e.to_string())?;
    assert!(namespaces.contains("survives"), "etcd kept the data across the apiserver restart");
    let env_sh = std::fs::read_to_string(dir.join("env.sh")).unwrap();
    assert!(env_sh.contains("KUBECONFIG=") && env_sh.contains("DATABASE_URL=") && env_sh.contains("PATH="));
    env.down();
    assert!(env.status().iter().all(|(_, running, _)| !running));
    drop(env);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let dir = std::env::temp_dir().join(format!("spore-cluster-tests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = TestEnvOptions::new(&dir);
    options.kubernetes = true;
    let started = std::time::Instant::now();
    let env = TestEnv::up(&options).unwrap_or_else(|e| panic!("test control plane: {e}"));
    eprintln!("control plane ready in {:.1} s", started.elapsed().as_secs_f64());
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["apply", "-f", &root.join("crds").to_string_lossy()], None).unwrap();
    kubectl
        .run(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/sporenodes.sporemesh.io",
                "crd/experiments.sporemesh.io",
            ],
            None,
        )
        .unwrap();
    let restricted =
        Kubectl { binary: kubectl.binary.clone(), kubeconfig: env.restricted_kubeconfig().unwrap().to_path_buf() };
    let cluster = Arc::new(Cluster { kubectl, restricted, helm: env.bin("helm").unwrap(), dir: dir.clone(), root });

    type TestFn = fn(&Cluster) -> TestResult;
    let tests: Vec<(&str, TestFn)> = vec![
        ("crds_are_established", crds_are_established),
        ("bad_experiment_specs_are_refused_with_clear_messages", bad_experiment_specs_are_refused_with_clear_messages),
        ("experiment_spec_is_immutable", experiment_spec_is_immutable),
        ("kubectl_get_experiments_reads_as_a_research_log", kubectl_get_experiments_reads_as_a_research_log),
        ("chart_examples_pass_server_side_dry_run", chart_examples_pass_server_side_dry_run),
        ("chart_lints_and_renders_against_the_real_api", chart_lints_and_renders_against_the_real_api),
        ("helm_install_waits_for_a_running_operator", helm_install_waits_for_a_running_operator),
        ("gpu_pods_are_placed_by_the_real_scheduler", gpu_pods_are_placed_by_the_real_scheduler),
        ("pods_end_as_their_annotations_say", pods_end_as_their_annotations_say),
        ("restricted_user_gets_only_what_rbac_grants", restricted_user_gets_only_what_rbac_grants),
        (
            "services_can_be_stopped_and_restarted_for_fault_tests",
            services_can_be_stopped_and_restarted_for_fault_tests,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            let cluster = Arc::clone(&cluster);
            Trial::test(name, move || test(&cluster))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(env);
    let _ = std::fs::remove_dir_all(&dir);
    conclusion.exit();
}

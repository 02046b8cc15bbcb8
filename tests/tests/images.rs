//! The container images `scripts/images.sh` builds, run under runc with the security context
//! of the pods that use them: non-root (the image's 65532), a read-only root, no capabilities,
//! no new privileges. The operator and agent entrypoints start; the agent serves a peer from a
//! writable volume; the training image trains, exports and evaluates a CPU-profile model in the
//! two steps of the operator's training pod.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Uid, chown};
use serde_json::Value;
use spore_tests::oci::{Bind, Container, Image, Run, image, proc_status};
use spore_tests::testenv::ports::free_port;
use spore_tests::wire::Client;

const NONROOT: u32 = 65532;

/// A directory the container's user owns (an emptyDir or a claim with `fsGroup`).
fn volume(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    chown(path, Some(Uid::from_raw(NONROOT)), Some(Gid::from_raw(NONROOT))).unwrap();
    path.to_path_buf()
}

fn bind(source: &Path, destination: &str, read_only: bool) -> Bind {
    Bind { source: source.to_path_buf(), destination: destination.into(), read_only }
}

fn output_text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn args(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| s.to_string()).collect())
}

#[test]
fn every_image_runs_its_entrypoint_as_non_root_on_a_read_only_root() {
    for (name, usage) in [("spore-operator", "run"), ("spore", "run"), ("spore-trainer", "--phase")] {
        let image = image(name);
        let config = image.config().unwrap();
        assert_eq!(config["User"], "65532:65532", "{name} runs as nonroot");
        assert!(
            config["Labels"]["org.opencontainers.image.version"].as_str().is_some_and(|v| image.reference.ends_with(v)),
            "{name}: {config}"
        );
        // The image's own command line (Entrypoint + --help), as the restricted pod runs it.
        let out = Container::run(&image, &Run { args: args(&["--help"]), ..Run::default() }).unwrap();
        let text = output_text(&out);
        assert!(out.status.success(), "{name}: {text}");
        assert!(text.contains(usage), "{name}: {text}");
    }
    // What runs there cannot write to the image, not even where its modes would let it (/tmp).
    let trainer = image("spore-trainer");
    let out = Container::run(
        &trainer,
        &Run { command: args(&["python3", "-c", "open('/tmp/planted.py', 'w')"]), ..Run::default() },
    )
    .unwrap();
    assert!(!out.status.success() && output_text(&out).contains("Read-only file system"), "{}", output_text(&out));
}

#[test]
fn the_agent_image_serves_peers_from_its_volume_with_no_capabilities() {
    let image = image("spore");
    let dir = tempfile::tempdir().unwrap();
    let data = volume(&dir.path().join("data"));
    let port = free_port().unwrap();
    // The StatefulSet's command line, on the host's loopback.
    let run = Run {
        command: args(&["spore"]),
        args: Some(
            ["run", "--port", &port.to_string(), "--host", "127.0.0.1", "--data-dir", "/data", "--no-bootstrap"]
                .into_iter()
                .chain(["--no-train", "--no-explorer"])
                .map(String::from)
                .collect(),
        ),
        binds: vec![bind(&data, "/data", false)],
        host_network: true,
        ..Run::default()
    };
    let log = dir.path().join("agent.log");
    let agent = Container::start(&image, &run, &log).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let rtt = loop {
        if let Some(rtt) = Client::connect(port).ok().and_then(|mut c| c.ping(Duration::from_secs(2))) {
            break rtt;
        }
        assert!(Instant::now() < deadline, "the agent never answered: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(rtt < Duration::from_secs(2));
    let pid = agent.pid().expect("the container runs");
    assert_eq!(proc_status(pid, "Uid").unwrap(), "65532\t65532\t65532\t65532");
    assert_eq!(proc_status(pid, "CapEff").unwrap(), "0000000000000000");
    assert_eq!(proc_status(pid, "CapBnd").unwrap(), "0000000000000000");
    assert_eq!(proc_status(pid, "NoNewPrivs").unwrap(), "1");
    // It keeps its identity and store on the volume, the only place it can write.
    let written: Vec<String> =
        std::fs::read_dir(&data).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(written.iter().any(|n| n.contains("identity") || n.contains("key")), "{written:?}");
}

/// One step of the training pod (`spore exec` with the operator's arguments): exit code,
/// termination message, log.
fn pod_step(
    image: &Image,
    phase_args: &[&str],
    env_cache: &str,
    binds: Vec<Bind>,
    dir: &Path,
) -> (i32, String, String) {
    let message = dir.join(format!("termination-{}", phase_args[1]));
    std::fs::write(&message, "").unwrap();
    chown(&message, Some(Uid::from_raw(NONROOT)), None).unwrap();
    let mut step_args = vec!["--budget-seconds", "3", "--margin-seconds", "120"];
    step_args.extend_from_slice(phase_args);
    step_args.extend(["--work-dir", "/scratch"]);
    let mut binds = binds;
    binds.push(bind(&message, "/dev/termination-log", false));
    let run = Run {
        command: args(&["spore", "exec"]),
        args: args(&step_args),
        env: vec![("SPORE_DATA_CACHE".into(), env_cache.into()), ("SPORE_PROFILE".into(), "cpu".into())],
        binds,
        tmpfs: vec!["/tmp".into()],
        ..Run::default()
    };
    let out = Container::run(image, &run).unwrap();
    (out.status.code().unwrap_or(-1), std::fs::read_to_string(&message).unwrap(), output_text(&out))
}

#[test]
fn the_training_image_trains_and_evaluates_a_cpu_model_in_the_pods_two_steps() {
    let image = image("spore-trainer");
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("candidate");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../workspace/train.py"), code.join("train.py")).unwrap();
    let scratch = volume(&dir.path().join("scratch"));
    let validation = volume(&dir.path().join("validation"));

    let (rc, message, log) = pod_step(
        &image,
        &["--phase", "train", "--code-dir", "/spore/candidate", "--unsandboxed"],
        "/scratch/data",
        vec![bind(&code, "/spore/candidate", true), bind(&scratch, "/scratch", false)],
        dir.path(),
    );
    assert_eq!(rc, 0, "{message}\n{log}");
    let trained: Value = serde_json::from_str(&message).unwrap();
    assert!(trained["num_steps"].as_i64().unwrap() > 0 && trained.get("val_bpb").is_none(), "{trained}");
    assert!(trained["torch_version"].as_str().is_some_and(|v| v.starts_with("2.")), "{trained}");
    assert!(scratch.join("out/model.pt").is_file());

    let (rc, message, log) = pod_step(
        &image,
        &["--phase", "evaluate", "--eval-harness-dir", "/validation/harness"],
        "/validation/data",
        vec![bind(&scratch, "/scratch", false), bind(&validation, "/validation", false)],
        dir.path(),
    );
    assert_eq!(rc, 0, "{message}\n{log}");
    assert!(log.contains("[spore] evaluator: val_bpb"), "spore-eval measured it: {log}");
    let measured: Value = serde_json::from_str(&message).unwrap();
    assert!(measured["val_bpb"].as_f64().unwrap() > 1.0, "{measured}");
    assert_eq!(measured["num_steps"], trained["num_steps"]);
}

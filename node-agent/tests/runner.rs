#![allow(clippy::unwrap_used)]
//! The local runner against real child processes (plain `python3`, no torch needed): deadlines
//! kill silent hangs with their whole process group, crashes explain themselves, fake early
//! metrics are not results, and resource scaling never gives an invalid batch.

use std::path::Path;
use std::time::Duration;

use spore_agent::research::executor::{Executor, RunAbout, RunSpec};
use spore_agent::research::local::{LocalExecutor, Measure};

fn executor(dir: &Path, margin: Duration) -> LocalExecutor {
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("prepare.py"), "VALUE = 7\n").unwrap();
    std::fs::write(workspace.join("train.py"), "raise SystemExit('the workspace copy must never run')\n").unwrap();
    LocalExecutor {
        python: "python3".into(),
        workspace,
        runs_dir: dir.join("run"),
        margin,
        env: Vec::new(),
        show_progress: false,
        measure: Measure::Reported,
        jail: None,
    }
}

fn spec(label: &str, code: &str, budget: u64) -> RunSpec {
    RunSpec { label: label.into(), code: code.into(), time_budget: budget, resource: 100, about: RunAbout::default() }
}

const SUMMARY: &str = "print('---')\nprint('val_bpb:          1.234567')\nprint('training_seconds: 1.0')\n\
    print('total_seconds:    1.5')\nprint('peak_vram_mb:     0.0')\nprint('mfu_percent:      0.00')\n\
    print('total_tokens_M:   0.1')\nprint('num_steps:        42')\nprint('num_params_M:     0.9')\n\
    print('depth:            4')\n";

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

#[tokio::test]
async fn a_successful_run_uses_its_own_code_and_harness_and_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(dir.path(), Duration::from_secs(30));
    let code = format!(
        "import os, prepare\nassert prepare.VALUE == 7\nprint('budget', os.environ['SPORE_TIME_BUDGET'], \
         'resource', os.environ['SPORE_RESOURCE'])\nprint('\\rstep 00001 (50.0%) | loss: 2.0 | remaining: 1s', end='')\nprint()\n{SUMMARY}"
    );
    let outcome = ex.run(&spec("ok-run", &code, 7)).await.unwrap();
    assert!(outcome.success(), "{:?}", outcome.error);
    // No evaluator: the metric is the printed one.
    assert_eq!(outcome.val_bpb, Some(1.234567));
    let summary = outcome.summary.unwrap();
    assert_eq!((summary.reported_val_bpb, summary.num_steps, summary.num_params), (Some(1.234567), 42, 900_000));
    let log = std::fs::read_to_string(&outcome.log).unwrap();
    assert!(log.contains("budget 7 resource 100"), "{log}");
    assert!(log.contains("step 00001 (50.0%)\n") || log.contains("step 00001 (50.0%) | loss"), "{log}");
    assert_eq!(std::fs::read_to_string(dir.path().join("run/ok-run/train.py")).unwrap(), code);
}

#[tokio::test]
async fn a_silent_hang_is_killed_at_the_deadline_with_its_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(dir.path(), Duration::from_secs(1));
    let pid_file = dir.path().join("grandchild.pid");
    let code = format!(
        "import subprocess, time\np = subprocess.Popen(['sleep', '1000'])\nopen({:?}, 'w').write(str(p.pid))\n\
         time.sleep(1000)\n",
        pid_file.display().to_string()
    );
    let started = std::time::Instant::now();
    let outcome = ex.run(&spec("hang", &code, 1)).await.unwrap();
    let took = started.elapsed();
    assert!(!outcome.success());
    let error = outcome.error.unwrap();
    assert!(error.starts_with("killed at the deadline"), "{error}");
    assert!(took < Duration::from_secs(15), "the deadline is 2 s; the run took {took:?}");
    let grandchild: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(grandchild) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(grandchild), "the hung run's child {grandchild} survived");
}

#[tokio::test]
async fn a_crash_gives_the_tail_of_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(dir.path(), Duration::from_secs(30));
    let code = "import sys\nfor i in range(50):\n    print('line', i)\nraise RuntimeError('CUDA out of memory')\n";
    let outcome = ex.run(&spec("crash", code, 5)).await.unwrap();
    assert!(!outcome.success());
    assert_eq!(outcome.exit_code, Some(1));
    let error = outcome.error.unwrap();
    assert!(error.starts_with("train.py exited with code 1"), "{error}");
    assert!(error.contains("RuntimeError: CUDA out of memory"), "{error}");
    assert!(error.contains("line 49") && !error.contains("line 10\n"), "only the tail: {error}");
}

#[tokio::test]
async fn a_fake_early_val_bpb_is_not_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(dir.path(), Duration::from_secs(30));
    // A fake metric, then a crash: no result.
    let outcome =
        ex.run(&spec("fake-then-crash", "print('val_bpb: 0.000001')\nraise SystemExit(3)\n", 5)).await.unwrap();
    assert!(!outcome.success());
    assert_eq!(outcome.exit_code, Some(3));
    // A fake metric and a clean exit without the block: no result either.
    let outcome = ex.run(&spec("fake-only", "print('val_bpb:          0.000001')\n", 5)).await.unwrap();
    assert!(!outcome.success());
    assert!(outcome.error.unwrap().contains("no summary block"));
    // A fake metric before the real block: the block wins.
    let code = format!("print('val_bpb:          0.000001')\n{SUMMARY}");
    let outcome = ex.run(&spec("fake-then-real", &code, 5)).await.unwrap();
    assert_eq!(outcome.val_bpb, Some(1.234567));
}

#[tokio::test]
async fn signals_and_bad_labels_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(dir.path(), Duration::from_secs(30));
    let outcome =
        ex.run(&spec("killed", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", 5)).await.unwrap();
    let error = outcome.error.unwrap();
    assert!(error.starts_with("terminated by signal 9 (SIGKILL)"), "{error}");
    assert!(ex.run(&spec("../escape", "print(1)", 5)).await.is_err());
    let mut missing = ex.clone();
    missing.python = dir.path().join("no-such-python");
    let error = missing.run(&spec("no-python", "print(1)", 5)).await.unwrap_err().to_string();
    assert!(error.contains("cannot start"), "{error}");
}

#[test]
fn resource_scaling_gives_a_valid_batch_at_every_percentage() {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../workspace");
    let check = "from batching import device_batch_size, resource_percent\n\
        for rows in (1, 16, 32, 48, 256):\n\
        \x20   for full in (1, 4, 8, 16, 32, 38, 64, 128, 512):\n\
        \x20       for p in range(1, 101):\n\
        \x20           b = device_batch_size(full, p, rows)\n\
        \x20           assert 1 <= b <= rows and rows % b == 0 and b <= max(1, full * p // 100), (rows, full, p, b)\n\
        assert device_batch_size(128, 30, 256) == 32\n\
        assert device_batch_size(16, 100, 16) == 16\n\
        for raw, want in (('30', 30), ('0', 1), ('250', 100), ('x', 100), (' 7 ', 7)):\n\
        \x20   assert resource_percent({'SPORE_RESOURCE': raw}) == want, raw\n\
        assert resource_percent({}) == 100\n\
        print('ok')\n";
    let out = std::process::Command::new("python3").args(["-c", check]).current_dir(workspace).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

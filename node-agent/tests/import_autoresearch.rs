//! `spore import autoresearch`: an autoresearch-shaped repository, built here with real git
//! commits and a `results.tsv` (a kept line, a discard and a crash reset away as autoresearch does,
//! and a row whose commit was pruned), imported into exactly the DAG autoresearch's lineage says;
//! again, nothing new; `--dry-run` stores nothing.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use spore_spec::{ExperimentRecord, Status, cid_of, verify_record};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn git(repo: &Path, args: &[&str], time: i64) -> String {
    let date = format!("{time} +0000");
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=autoresearch", "-c", "user.email=agent@example.org", "-c", "commit.gpgsign=false"])
        .args(args)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Commits `train.py` with `lr` and returns the short commit id.
fn commit(repo: &Path, lr: &str, message: &str, time: i64) -> String {
    std::fs::write(repo.join("train.py"), format!("LR = {lr}\nprint('val_bpb:', 1.0)\n")).unwrap();
    git(repo, &["add", "train.py", "prepare.py"], time);
    git(repo, &["commit", "-q", "-m", message], time);
    git(repo, &["rev-parse", "--short=7", "HEAD"], time)
}

fn spore(args: &[&str], data_dir: &Path) -> (bool, String, String) {
    let out = Command::new(SPORE).args(args).arg("--data-dir").arg(data_dir).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_autoresearch_run_becomes_the_dag_its_lineage_says_once() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("autoresearch");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "autoresearch/dec6"], 0);
    std::fs::write(repo.join("prepare.py"), "print('prepare')\n").unwrap();
    let t0 = 1_773_000_000;
    let baseline = commit(&repo, "0.04", "baseline", t0);
    let kept = commit(&repo, "0.05", "raise LR", t0 + 600);
    // A discard and a crash: committed, run, then reset away (their objects stay).
    let discarded = commit(&repo, "0.5", "much higher LR", t0 + 1200);
    git(&repo, &["reset", "-q", "--hard", &kept], t0 + 1200);
    let crashed = commit(&repo, "nan", "LR as NaN", t0 + 1800);
    git(&repo, &["reset", "-q", "--hard", &kept], t0 + 1800);
    let last = commit(&repo, "0.06", "LR 0.06", t0 + 2400);
    let tsv = format!(
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n\
         {baseline}\t0.997900\t44.0\tkeep\tbaseline\n\
         {kept}\t0.993200\t44.2\tkeep\traise LR\n\
         {discarded}\t1.005000\t44.0\tdiscard\tmuch higher LR\n\
         {crashed}\t0.000000\t0.0\tcrash\tLR as NaN\n\
         0badc0d\t0.990000\t44.0\tdiscard\tpruned by git gc\n\
         {last}\t0.991000\t44.1\tkeep\tLR 0.06\n"
    );
    std::fs::write(repo.join("results.tsv"), tsv).unwrap();
    let data = tmp.path().join("node");
    let repo_arg = repo.to_str().unwrap();

    // A results.tsv outside a repository: one clear error, nothing stored.
    let loose = tmp.path().join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    std::fs::copy(repo.join("results.tsv"), loose.join("results.tsv")).unwrap();
    let (ok, _, err) = spore(&["import", "autoresearch", loose.to_str().unwrap()], &data);
    assert!(!ok && err.contains("is not a git repository"), "{err}");

    let (ok, out, err) = spore(&["import", "autoresearch", repo_arg, "--dry-run"], &data);
    assert!(ok, "{err}");
    assert!(out.contains("would import 5 records, skip 1"), "{out}");
    assert!(err.contains("0badc0d: the commit is not in the repository"), "{err}");
    let (_, exported, _) = spore(&["record", "export"], &data);
    assert!(exported.trim().is_empty(), "a dry run stored {exported}");

    let (ok, out, err) = spore(&["import", "autoresearch", repo_arg, "--gpu-model", "NVIDIA H100 80GB HBM3"], &data);
    assert!(ok, "{err}");
    assert!(out.contains("imported 5, already stored 0, skipped 1"), "{out}");
    let (_, exported, _) = spore(&["record", "export"], &data);
    let records: HashMap<String, ExperimentRecord> =
        exported.lines().map(|l| ExperimentRecord::from_json(l).unwrap()).map(|r| (r.description.clone(), r)).collect();
    assert_eq!(records.len(), 5);
    let id = |d: &str| records[d].id.clone();
    assert_eq!(records["baseline"].parent, None);
    assert_eq!(records["raise LR"].parent, Some(id("baseline")));
    for child in ["much higher LR", "LR as NaN", "LR 0.06"] {
        assert_eq!(records[child].parent, Some(id("raise LR")), "{child} hangs under the kept commit it was tried on");
        assert_eq!(records[child].depth.as_i64(), Some(2));
    }
    assert_eq!(records["much higher LR"].status, Status::Discard);
    assert_eq!(records["LR as NaN"].status, Status::Crash);
    assert_eq!(records["LR 0.06"].status, Status::Keep);
    let node_id = &records["baseline"].node_id;
    for (name, r) in &records {
        assert!(verify_record(r).is_ok(), "{name}");
        assert_eq!(&r.node_id, node_id);
        assert_eq!(r.gpu_model, "NVIDIA_H100_80GB_HBM3");
        assert_eq!(r.dataset_cid, "climbmix-400b-shuffle");
        assert_eq!(r.prepare_cid, cid_of(b"print('prepare')\n"));
    }
    // Code is the commit's train.py, stored as the artifact; the diff is from the parent's.
    let code = "LR = 0.06\nprint('val_bpb:', 1.0)\n".to_string();
    assert_eq!(records["LR 0.06"].code_cid, cid_of(code.as_bytes()));
    let artifacts = spore_agent::research::artifacts::ArtifactStore::new(&data);
    assert_eq!(artifacts.get(&records["LR 0.06"].code_cid).unwrap().as_deref(), Some(code.as_bytes()));
    assert!(records["LR 0.06"].diff.contains("-LR = 0.05\n+LR = 0.06"), "{}", records["LR 0.06"].diff);
    assert_eq!(records["baseline"].diff, "");
    assert_eq!(records["LR 0.06"].timestamp.as_i64(), Some(t0 + 2400));

    let (ok, out, err) = spore(&["import", "autoresearch", repo_arg, "--gpu-model", "NVIDIA H100 80GB HBM3"], &data);
    assert!(ok, "{err}");
    assert!(out.contains("imported 0, already stored 5, skipped 1"), "a re-import is idempotent: {out}");
}

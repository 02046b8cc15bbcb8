//! The research loop: select a parent, propose a change, train, judge, sign, publish.
//!
//! * Parents are frontier records of one task ([`task_scope`]) comparable with this node's runs —
//!   same GPU class, harness, data and time budget — whose code this node has. The
//!   loop asks peers for the code of the frontier records it lacks (a joining node waits a
//!   little for it rather than running a baseline of its own).
//! * The child is always built from the **parent's** code, checked out by `code_cid` (Python
//!   edits whatever its workspace holds, so `parent`, `diff` and code disagree).
//! * Judging: a successful run is `keep` iff it beats the parent by more than the node's
//!   measured noise ([`noise`](super::noise): `t(0.95, ν)·√2·σ`, or `--keep-margin`; ties
//!   discard); a failed run is a `crash` (its log tail is logged; the record has `val_bpb` 0.0).
//! * Before the first child in a setting whose noise is not known (or only older than a week),
//!   the loop re-measures the best parent's code until it is: unpublished runs, alone on the
//!   device, that do not count as experiments. Every successful run of this node is a
//!   measurement too (the same code run twice is a repeat).
//! * Code and diff are stored as separate artifacts; the record is signed and handed to the
//!   node, which stores and gossips it.
//! * A baseline (the workspace's `train.py`, no parent) runs when nothing comparable exists or
//!   `--genesis` asks for it; a failed baseline ends the loop with an error, as in Python.
//! * In a cluster the executor's side publishes (the node's cluster publisher signs each
//!   finished Experiment): the loop counts those records, and learns from them what the
//!   workspace description lacked (the data's CID, the GPU) before any run had reported it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use spore_spec::{ExperimentRecord, Identity, JsonNumber, Status, ValidationPolicy, validate};
use tokio_util::sync::CancellationToken;

use super::artifacts::ArtifactStore;
use super::diff::unified_diff;
use super::executor::{Executor, GpuLock, Published, RunAbout, RunOutcome, RunSpec};
use super::noise::{Margin, NoiseKey, SharedNoise, lock};
use super::parent::{Candidate, GraphStats, select_parent};
use super::parent_code::Asked;
use super::prompt::{ProposalContext, id8};
use super::proposer::{Proposal, ProposeError, Proposer};
use super::task_scope::{self, ActiveTask};
use super::workspace::Workspace;
use crate::node::{NodeHandle, unix_now};
use crate::record_tools::signed_line;
use crate::store::{DagStore, MeasuredBy, StoredRecord};

/// Consecutive proposer failures tolerated before the loop gives up.
const MAX_PROPOSER_FAILURES: u32 = 5;

/// Re-measurements in a row at most (three runs of a peer's record suffice); the count starts
/// again after each child, so an estimate that goes stale in a long run is measured again.
const MAX_REMEASURES: u64 = 4;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct ResearchConfig {
    pub measured_by: MeasuredBy, // how runs are measured (kept beside the records published)
    pub time_budget: u64,
    pub resource: u8,
    /// Stop after this many experiments (the baseline counts).
    pub max_experiments: Option<u64>,
    /// Run a baseline first even when the graph has comparable records.
    pub genesis: bool,
    /// How long to wait for peers' records before deciding that a baseline is needed.
    pub sync_wait: Duration,
    /// Pause after a failed proposal.
    pub retry_pause: Duration,
    /// Children in flight at once (1 on one machine; a cluster's SporeNode may run more).
    pub parallel: usize,
    /// The task to work in (`--task`); `None`: the most active one ([`task_scope`]).
    pub task: Option<ActiveTask>,
}

/// The loop and everything it uses.
#[derive(Debug)]
pub struct Research<E: Executor> {
    pub config: ResearchConfig,
    pub workspace: Workspace,
    pub executor: E,
    pub proposer: Proposer,
    pub identity: Identity,
    pub artifacts: ArtifactStore,
    pub store_path: PathBuf,
    pub node: NodeHandle,
    /// Held while training, shared with the verifier.
    pub gpu: GpuLock,
    /// The node's run-to-run noise (shared with the verifier and the cluster publisher).
    pub noise: SharedNoise,
}

/// What a finished loop did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResearchReport {
    pub experiments: u64,
    pub keeps: u64,
    pub discards: u64,
    pub crashes: u64,
    /// Unpublished re-runs of a parent's code that measured the noise.
    pub remeasures: u64,
}

impl<E: Executor> Research<E> {
    /// Same GPU class, harness, data and budget as `target`. A GPU class or data CID not known
    /// yet (a cluster whose runs have not reported them) matches any.
    fn comparable(&self, target: &Workspace, r: &ExperimentRecord) -> bool {
        let matches = |ours: &str, theirs: &str| ours.is_empty() || ours == theirs;
        matches(&target.machine.gpu_class, &spore_spec::gpu_class(&r.gpu_model))
            && r.prepare_cid == target.prepare_cid
            && matches(&target.dataset_cid, &r.dataset_cid)
            && r.time_budget.as_i64() == Some(self.config.time_budget as i64)
    }

    /// The frontier comparable with `target` in the loop's task, best first.
    pub(super) fn frontier(&self, target: &Workspace, store: &DagStore) -> anyhow::Result<Vec<ExperimentRecord>> {
        let class = &target.machine.gpu_class;
        let task = self.config.task.as_ref().map(|t| t.id.as_str());
        let entries = if class.is_empty() {
            store.frontier_in(task, None, 1000)?
        } else {
            store.frontier_of_class_in(task, class, 1000)?
        };
        let comparable = entries
            .into_iter()
            .filter_map(|e| ExperimentRecord::from_json(&e.payload).ok().map(|r| (e.task, r)))
            .filter(|(_, r)| self.comparable(target, r))
            .collect();
        task_scope::scope(store, task, comparable)
    }

    /// The code of a record, if this node has it.
    pub(super) fn code_of(&self, record: &ExperimentRecord) -> Option<String> {
        let bytes = self.artifacts.get(&record.code_cid).ok()??;
        String::from_utf8(bytes).ok()
    }

    /// Runs until `max_experiments`, shutdown, or a fatal error, with up to `parallel` children
    /// in flight (a baseline always runs alone).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<ResearchReport> {
        let store = DagStore::open(&self.store_path)?;
        let mut report = ResearchReport::default();
        let mut asked = Asked::new();
        if !self.config.genesis {
            self.wait_for_sync(&store, &mut asked, &shutdown).await?;
        }
        // What runs are compared with; a cluster's runs fill in what was not known.
        let mut target = self.workspace.clone();
        let mut need_baseline = self.config.genesis;
        let mut ran_baseline = false;
        let mut exhausted: HashSet<String> = HashSet::new();
        let mut failures = 0u32;
        let mut started = 0u64;
        let mut remeasure_failed = false;
        let mut remeasures_in_a_row = 0u64;
        let mut stopping = false;
        let mut in_flight = FuturesUnordered::new();
        loop {
            // Start runs while there is room.
            while !stopping && in_flight.len() < self.config.parallel.max(1) {
                if shutdown.is_cancelled() || self.config.max_experiments.is_some_and(|max| started >= max) {
                    stopping = true;
                    break;
                }
                let frontier = self.frontier(&target, &store)?;
                // Parents need their code here; records of other nodes get it with code fetching.
                self.ask_code(&frontier, &mut asked).await?;
                let with_code: Vec<&ExperimentRecord> = frontier.iter().filter(|r| self.code_of(r).is_some()).collect();
                if need_baseline || (with_code.is_empty() && !ran_baseline) {
                    if !in_flight.is_empty() {
                        break;
                    }
                    need_baseline = false;
                    ran_baseline = true;
                    started += 1;
                    match self.baseline(&store, &mut target, &shutdown).await? {
                        Some(status) => report.count(status),
                        None => stopping = true,
                    }
                    continue;
                }
                // Children are judged against the noise: measure it first when it is not known.
                let unmeasured = with_code.first().is_some_and(|best| {
                    lock(&self.noise).margin(&NoiseKey::of(best), unix_now()) == Margin::Unmeasured
                });
                if let Some(best) = with_code.first().copied()
                    && unmeasured
                    && !remeasure_failed
                    && remeasures_in_a_row < MAX_REMEASURES
                {
                    if !in_flight.is_empty() {
                        break;
                    }
                    report.remeasures += 1;
                    remeasures_in_a_row += 1;
                    match self.remeasure(best, remeasures_in_a_row, &shutdown).await? {
                        Some(measured) => remeasure_failed = !measured,
                        None => stopping = true,
                    }
                    continue;
                }
                let candidates: Vec<Candidate> = with_code
                    .into_iter()
                    .filter(|r| !exhausted.contains(&r.id))
                    .map(|r| Ok(Candidate { record: r.clone(), children: store.children(&r.id)?.len() }))
                    .collect::<anyhow::Result<_>>()?;
                if candidates.is_empty() {
                    // Runs in flight may still give new parents.
                    if in_flight.is_empty() {
                        tracing::info!("no parent left that this node can build on; stopping");
                        stopping = true;
                    }
                    break;
                }
                let stats = GraphStats { total: store.total()?, recent: store.recent(20)? };
                let Some((chosen, strategy)) = select_parent(&candidates, &stats, &mut rand::rng()) else {
                    stopping = true;
                    break;
                };
                let parent = chosen.record.clone();
                let parent_code = self.code_of(&parent).context("the parent's code vanished")?;
                let ctx = self.context(&store, &target, &parent, parent_code, &frontier, stats.total)?;
                tracing::info!(parent = id8(&parent.id), ?strategy, val_bpb = parent.val_bpb.as_f64(), "proposing");
                let proposal = tokio::select! {
                    _ = shutdown.cancelled() => {
                        stopping = true;
                        break;
                    }
                    proposal = self.proposer.propose(&ctx) => proposal,
                };
                match proposal {
                    Ok(proposal) => {
                        failures = 0;
                        remeasures_in_a_row = 0;
                        started += 1;
                        in_flight.push(self.child(parent, ctx.parent_code, proposal, &shutdown));
                    }
                    Err(ProposeError::Exhausted(reason)) => {
                        tracing::info!(parent = id8(&parent.id), "{reason}");
                        exhausted.insert(parent.id.clone());
                    }
                    Err(e) if e.is_fatal() => return Err(e.into()),
                    Err(e) => {
                        failures += 1;
                        if failures >= MAX_PROPOSER_FAILURES {
                            bail!("the proposer failed {failures} times in a row; last: {e}");
                        }
                        tracing::warn!("proposal failed: {e}");
                        tokio::select! {
                            _ = shutdown.cancelled() => stopping = true,
                            _ = tokio::time::sleep(self.config.retry_pause) => {}
                        }
                    }
                }
            }
            // Wait for a run to end (dropping those in flight on shutdown ends their processes).
            let Some(finished) = in_flight.next().await else {
                if stopping {
                    break;
                }
                continue;
            };
            match finished? {
                Some(Finished::Local(status)) => report.count(status),
                Some(Finished::Published(published)) => report.count(self.adopt(&store, &mut target, &published)?),
                None => stopping = true,
            }
        }
        Ok(report)
    }

    /// Trains a child of `parent`, judges and publishes it (unless the executor's side did);
    /// `None` on shutdown.
    async fn child(
        &self,
        parent: ExperimentRecord,
        parent_code: String,
        proposal: Proposal,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Finished>> {
        let label = format!("exp-{}-{}", unix_now(), id8(&parent.id));
        let about = RunAbout {
            parent: Some(parent.id.clone()),
            description: proposal.description.clone(),
            hypothesis: proposal.hypothesis.clone(),
            agent_model: self.proposer.agent_model(),
            remeasure: false,
        };
        let Some(outcome) = self.train(&label, &proposal.code, about, shutdown).await? else { return Ok(None) };
        if let Some(published) = outcome.published {
            return Ok(Some(Finished::Published(published)));
        }
        let margin = lock(&self.noise).margin(&NoiseKey::of(&parent), unix_now());
        let parent_val = parent.val_bpb.as_f64();
        let status = match outcome.val_bpb {
            _ if !outcome.success() => Status::Crash,
            Some(v) if margin.keeps(v, parent_val) => Status::Keep,
            Some(v) => {
                if v < parent_val {
                    tracing::info!(
                        parent = id8(&parent.id),
                        gain = parent_val - v,
                        margin = margin.value(),
                        "better than the parent, but within the noise: discard"
                    );
                }
                Status::Discard
            }
            None => Status::Discard,
        };
        let draft = Draft {
            parent: Some(&parent),
            code: &proposal.code,
            diff: unified_diff(&parent_code, &proposal.code),
            status,
            description: proposal.description,
            hypothesis: proposal.hypothesis,
            agent_model: self.proposer.agent_model(),
        };
        self.publish(draft, &outcome).await?;
        Ok(Some(Finished::Local(status)))
    }

    /// Runs and publishes a baseline; `None` on shutdown.
    async fn baseline(
        &self,
        store: &DagStore,
        target: &mut Workspace,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Status>> {
        let code = self.workspace.baseline_code()?;
        tracing::info!("running the baseline (the workspace's train.py)");
        let about = RunAbout {
            parent: None,
            description: "baseline".into(),
            hypothesis: String::new(),
            agent_model: "baseline".into(),
            remeasure: false,
        };
        let label = format!("baseline-{}", unix_now());
        let Some(outcome) = self.train(&label, &code, about.clone(), shutdown).await? else {
            return Ok(None);
        };
        let status = if let Some(published) = &outcome.published {
            self.adopt(store, target, published)?
        } else {
            let status = if outcome.success() { Status::Keep } else { Status::Crash };
            let draft = Draft {
                parent: None,
                code: &code,
                diff: String::new(),
                status,
                description: about.description,
                hypothesis: about.hypothesis,
                agent_model: about.agent_model,
            };
            self.publish(draft, &outcome).await?;
            status
        };
        if status == Status::Crash {
            bail!(
                "the baseline failed, so there is nothing to improve on: {}\n(full log: {})",
                outcome.error.unwrap_or_default(),
                outcome.log
            );
        }
        Ok(Some(status))
    }

    /// Runs `parent`'s code again, unpublished, and adds the result to the noise book: `Some(false)`
    /// when the run failed (the loop then stops re-measuring), `None` on shutdown.
    async fn remeasure(
        &self,
        parent: &ExperimentRecord,
        n: u64,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<bool>> {
        let code = self.code_of(parent).context("the parent's code vanished")?;
        let key = NoiseKey::of(parent);
        tracing::info!(
            parent = id8(&parent.id),
            class = %key.gpu_class,
            "the noise of this setting is not measured yet: running the parent's code again"
        );
        let about = RunAbout {
            parent: Some(parent.id.clone()),
            description: "re-measure".into(),
            hypothesis: String::new(),
            agent_model: String::new(),
            remeasure: true,
        };
        let label = format!("remeasure{n}-{}-{}", unix_now(), id8(&parent.id));
        let Some(outcome) = self.train(&label, &code, about, shutdown).await? else { return Ok(None) };
        let Some(value) = outcome.val_bpb.filter(|_| outcome.success()) else {
            tracing::warn!(
                parent = id8(&parent.id),
                error = outcome.error.as_deref().unwrap_or("no metric"),
                log = %outcome.log,
                "re-measuring failed; children are judged without a noise margin until it works"
            );
            return Ok(Some(false));
        };
        let mut book = lock(&self.noise);
        book.add(&key, &parent.code_cid, value, unix_now());
        let (estimate, dof) = book.partial(&key, unix_now());
        match estimate {
            Some(e) => tracing::info!(
                measured = value,
                sigma = e.sigma,
                dof = e.dof,
                margin = e.margin(),
                "noise measured: a child must beat its parent by more than the margin"
            ),
            None => tracing::info!(measured = value, dof, "re-measured; the noise needs more runs"),
        }
        Ok(Some(true))
    }

    /// A run the executor's side published: its status, and what it tells about `target`.
    fn adopt(&self, store: &DagStore, target: &mut Workspace, published: &Published) -> anyhow::Result<Status> {
        let record = store
            .record(&published.cid)?
            .with_context(|| format!("record {} was published but is not in the store", id8(&published.cid)))?;
        if record.status != Status::Crash && record.prepare_cid == target.prepare_cid {
            if target.dataset_cid.is_empty() {
                target.dataset_cid = record.dataset_cid.clone();
            }
            if target.machine.gpu_class.is_empty() {
                target.machine.gpu_class = spore_spec::gpu_class(&record.gpu_model);
                target.machine.gpu_model = record.gpu_model.clone();
            }
        }
        if record.status != Status::Crash {
            lock(&self.noise).add(&NoiseKey::of(&record), &record.code_cid, record.val_bpb.as_f64(), unix_now());
        }
        tracing::info!(id = id8(&record.id), status = %record.status, val_bpb = record.val_bpb.as_f64(), "{}", record.description);
        Ok(record.status)
    }

    async fn train(
        &self,
        label: &str,
        code: &str,
        about: RunAbout,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<RunOutcome>> {
        let spec = RunSpec {
            label: label.to_string(),
            code: code.to_string(),
            time_budget: self.config.time_budget,
            resource: self.config.resource,
            about,
        };
        // Runs elsewhere (a cluster's GPUs) do not take this machine's device.
        let _device = if self.executor.uses_local_device() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                device = self.gpu.lock() => Some(device),
            }
        } else {
            None
        };
        tokio::select! {
            // Dropping the run kills its process group.
            _ = shutdown.cancelled() => Ok(None),
            outcome = self.executor.run(&spec) => Ok(Some(outcome?)),
        }
    }

    fn context(
        &self,
        store: &DagStore,
        target: &Workspace,
        parent: &ExperimentRecord,
        parent_code: String,
        frontier: &[ExperimentRecord],
        total: u64,
    ) -> anyhow::Result<ProposalContext> {
        let improvements =
            store.lineage(&parent.id, 50)?.into_iter().filter(|r| r.status == Status::Keep).take(10).collect();
        let mut branches = Vec::new();
        for other in frontier.iter().filter(|r| r.id != parent.id) {
            for r in store.lineage(&other.id, 3)? {
                if r.id == parent.id {
                    break;
                }
                if r.status == Status::Keep && branches.len() < 10 {
                    branches.push(r);
                }
            }
        }
        Ok(ProposalContext {
            parent: parent.clone(),
            parent_code,
            improvements,
            siblings: store.children(&parent.id)?,
            branches,
            frontier: frontier.iter().take(5).cloned().collect(),
            total_experiments: total,
            best_val_bpb: frontier.first().map(|r| r.val_bpb.as_f64()),
            profile: target.machine.profile.clone(),
            time_budget: self.config.time_budget,
        })
    }

    /// Stores the code and diff, signs the record, and hands it to the node.
    async fn publish(&self, draft: Draft<'_>, outcome: &RunOutcome) -> anyhow::Result<()> {
        let code_cid = self.artifacts.put(draft.code.as_bytes())?;
        if !draft.diff.is_empty() {
            self.artifacts.put(draft.diff.as_bytes())?;
        }
        let summary = outcome.summary.unwrap_or_default();
        let crashed = draft.status == Status::Crash;
        let machine = &self.workspace.machine;
        let task_id = task_scope::task_to_sign(draft.parent, self.config.task.as_ref());
        let version = if task_id.is_some() { 2 } else { 1 };
        let mut record = ExperimentRecord {
            parent: draft.parent.map(|p| p.id.clone()),
            depth: JsonNumber::from(draft.parent.and_then(|p| p.depth.as_i64()).map_or(0, |d| d + 1)),
            code_cid,
            diff: draft.diff,
            dataset_cid: self.workspace.dataset_cid.clone(),
            prepare_cid: self.workspace.prepare_cid.clone(),
            time_budget: JsonNumber::from(self.config.time_budget as i64),
            val_bpb: JsonNumber::from(if crashed { 0.0 } else { outcome.val_bpb.unwrap_or(0.0) }),
            peak_vram_mb: JsonNumber::from(summary.peak_vram_mb),
            num_steps: JsonNumber::from(summary.num_steps),
            num_params: JsonNumber::from(summary.num_params),
            status: draft.status,
            description: draft.description,
            hypothesis: draft.hypothesis,
            agent_model: draft.agent_model,
            gpu_model: machine.gpu_model.clone(),
            cuda_version: machine.cuda_version.clone(),
            torch_version: machine.torch_version.clone(),
            node_id: String::new(),
            task_id,
            timestamp: JsonNumber::from(unix_now()),
            signature: String::new(),
            id: String::new(),
            version: JsonNumber::from(version),
        };
        self.identity.sign_record(&mut record);
        let flags = validate(&record, &ValidationPolicy::default(), unix_now())
            .map_err(|e| anyhow::anyhow!("refusing to publish an invalid record: {e}"))?;
        let payload = signed_line(&record);
        if !crashed {
            lock(&self.noise).add(&NoiseKey::of(&record), &record.code_cid, record.val_bpb.as_f64(), unix_now());
        }
        match (&outcome.error, crashed) {
            (Some(error), true) => tracing::warn!(
                id = id8(&record.id),
                log = %outcome.log,
                "crash: {}\n{error}",
                record.description
            ),
            _ => tracing::info!(
                id = id8(&record.id),
                status = %record.status,
                val_bpb = outcome.val_bpb,
                steps = summary.num_steps,
                "{}",
                record.description
            ),
        }
        if !crashed {
            DagStore::open(&self.store_path)?.set_measured_by(&record.id, self.config.measured_by)?;
        }
        self.node.publish(StoredRecord { record, payload, flags, received_at: unix_now() }).await
    }
}

/// How a child run ended.
enum Finished {
    /// Judged and published by the loop.
    Local(Status),
    /// Published by the executor's side; the loop reads the record.
    Published(Published),
}

/// A record before signing.
struct Draft<'a> {
    parent: Option<&'a ExperimentRecord>,
    code: &'a str,
    diff: String,
    status: Status,
    description: String,
    hypothesis: String,
    agent_model: String,
}

impl ResearchReport {
    fn count(&mut self, status: Status) {
        self.experiments += 1;
        match status {
            Status::Keep => self.keeps += 1,
            Status::Discard => self.discards += 1,
            Status::Crash => self.crashes += 1,
        }
    }
}

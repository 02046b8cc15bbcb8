//! The node's verifier: re-runs a sample of incoming records, challenges what does not
//! reproduce, answers other nodes' challenges with its own re-runs, and decides every dispute
//! itself from the signed events in its store. A node that cannot re-run (no training, or
//! self-reported metrics) still judges: every node holding the evidence takes a false record
//! off its frontier and keeps the reputation table.
//!
//! It polls the store (records by local sequence, control events by row), so it needs nothing
//! from the gossip driver but [`NodeHandle::publish_control`] and [`NodeHandle::fetch_code`].
//! Re-runs go through the node's executor in their own working directory (`<data>/verify/`),
//! one at a time, holding the GPU lock the research loop also holds while it trains: a check
//! never runs beside an experiment on the same device. A record's code comes from the
//! artifact store, fetched from peers by `code_cid` when missing (checked against its SHA-256
//! on arrival). Only records of this node's GPU class, harness and data are eligible. Votes in
//! a dispute count only from nodes with standing ([`Standing`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::Rng;
use spore_spec::{ControlEvent, ControlKind, ExperimentRecord, Identity, Status, gpu_class};
use tokio_util::sync::CancellationToken;

use super::dispute::{Claim, DisputeError, Verdict, resolve};
use super::reputation::Reputation;
use super::sampling::{Candidate, should_spot_check, spot_check_rate};
use super::standing::Standing;
use super::tolerance::{MAX_WIDENING, table_tolerance, tolerance};
use crate::node::{NodeHandle, unix_now};
use crate::research::artifacts::ArtifactStore;
use crate::research::executor::{Executor, GpuLock, RunAbout, RunSpec};
use crate::research::noise::{NoiseKey, SharedNoise, lock};
use crate::research::prompt::id8;
use crate::research::workspace::Workspace;
use crate::store::DagStore;

/// How the verifier behaves.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Base spot-check rate (Python's 0.05; 1.0 re-runs every eligible record).
    pub spot_check_rate: f64,
    /// After this, a dispute is decided with the responses it has (at least one).
    pub challenge_timeout: Duration,
    /// Responses that decide a dispute before the timeout.
    pub quorum: usize,
    /// How long to wait for a record's code from peers.
    pub code_timeout: Duration,
    pub resource: u8,
    pub poll: Duration,
    /// Verifiers the lab trusts: their votes count in every dispute ([`Standing`]).
    pub trusted_verifiers: Vec<String>,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            spot_check_rate: super::sampling::BASE_RATE,
            challenge_timeout: Duration::from_secs(1800),
            quorum: 3,
            code_timeout: Duration::from_secs(60),
            resource: 100,
            poll: Duration::from_secs(1),
            trusted_verifiers: Vec::new(),
        }
    }
}

/// What a node needs to re-run records.
#[derive(Debug)]
pub struct Rerun<E: Executor> {
    /// Runs in its own directory, never the research loop's.
    pub executor: E,
    /// This node's harness, data and machine: what a re-run here can confirm.
    pub workspace: Workspace,
}

/// The verifier and what it uses.
#[derive(Debug)]
pub struct Verifier<E: Executor> {
    pub config: VerifierConfig,
    /// `None`: this node judges but does not re-run.
    pub rerun: Option<Rerun<E>>,
    pub gpu: GpuLock,
    pub identity: Identity,
    pub node: NodeHandle,
    pub store_path: PathBuf,
    pub artifacts: ArtifactStore,
    /// Where the reputation table is written (JSON) for `spore status`.
    pub reputation_path: PathBuf,
    /// The node's run-to-run noise: re-runs of plausible claims add to it, and it widens the band.
    pub noise: SharedNoise,
}

enum Job {
    SpotCheck(ExperimentRecord),
    Respond { record: ExperimentRecord, challenger: String },
}

/// Loop state.
struct State {
    record_cursor: i64,
    control_cursor: i64,
    /// Each record's re-run on this node (None: it did not run), so one run serves a
    /// spot-check and any number of challenges.
    measured: HashMap<String, Option<f64>>,
    jobs: VecDeque<Job>,
    /// Open disputes (experiment, challenger) and when they were opened.
    open: HashMap<(String, String), Instant>,
    decided: HashSet<(String, String)>,
    reputation: Reputation,
    /// Who may vote in disputes.
    standing: Standing,
}

impl<E: Executor> Verifier<E> {
    fn me(&self) -> String {
        self.identity.node_id()
    }

    /// A re-run here can confirm or refute this record.
    fn eligible(&self, record: &ExperimentRecord) -> bool {
        let Some(rerun) = &self.rerun else { return false };
        let workspace = &rerun.workspace;
        record.node_id != self.me()
            && record.status != Status::Crash
            && gpu_class(&record.gpu_model) == workspace.machine.gpu_class
            && record.prepare_cid == workspace.prepare_cid
            && record.dataset_cid == workspace.dataset_cid
            && record.time_budget.as_i64().is_some_and(|b| (1..=86_400).contains(&b))
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut store = DagStore::open(&self.store_path)?;
        let mut state = State {
            // Records held before the start were judged before; events are replayed.
            record_cursor: store.last_seq()?,
            control_cursor: 0,
            measured: HashMap::new(),
            jobs: VecDeque::new(),
            open: HashMap::new(),
            decided: HashSet::new(),
            reputation: Reputation::default(),
            standing: Standing::new(&self.me(), self.config.trusted_verifiers.iter().cloned()),
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.config.poll) => {}
            }
            if self.rerun.is_some() {
                self.poll_records(&store, &mut state)?;
            }
            self.poll_controls(&store, &mut state)?;
            self.decide(&mut store, &mut state)?;
            if let Some(job) = state.jobs.pop_front() {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    done = self.work(job, &mut state) => done?,
                }
                self.decide(&mut store, &mut state)?;
            }
        }
    }

    fn poll_records(&self, store: &DagStore, state: &mut State) -> anyhow::Result<()> {
        for (seq, id, payload) in store.records_after_seq(state.record_cursor, 1000)? {
            state.record_cursor = seq;
            let Ok(record) = ExperimentRecord::from_json(&payload) else { continue };
            let Some(rerun) = self.rerun.as_ref().filter(|_| self.eligible(&record)) else { continue };
            let my_class = &rerun.workspace.machine.gpu_class;
            let best = store.frontier(Some(&record.gpu_model), 1)?.into_iter().next();
            let candidate = Candidate {
                publisher: &record.node_id,
                gpu_class: my_class,
                val_bpb: record.val_bpb.as_f64(),
                crashed: false,
                would_lead: best.is_some_and(|b| b.id == id),
            };
            let score = state.reputation.score(&record.node_id, unix_now());
            let rate = spot_check_rate(&candidate, &self.me(), my_class, score, self.config.spot_check_rate);
            if should_spot_check(rate, rand::rng().random::<f64>()) {
                tracing::info!(id = id8(&id), publisher = id8(&record.node_id), rate, "spot-check queued");
                state.jobs.push_back(Job::SpotCheck(record));
            }
        }
        Ok(())
    }

    fn poll_controls(&self, store: &DagStore, state: &mut State) -> anyhow::Result<()> {
        let me = self.me();
        for (rowid, event) in store.controls_after(state.control_cursor, 1000)? {
            state.control_cursor = rowid;
            let experiment = event.experiment_id().to_string();
            match event.kind {
                ControlKind::Challenge => {
                    let key = (experiment.clone(), event.actor().to_string());
                    if state.decided.contains(&key) {
                        continue;
                    }
                    state.open.entry(key).or_insert_with(Instant::now);
                    let responded = format!("challenge_response:{experiment}:{}:{me}", event.actor());
                    if event.actor() != me
                        && !store.has_control(&responded)?
                        && let Some(record) = store.record(&experiment)?.filter(|r| self.eligible(r))
                    {
                        // Answers first: a dispute waits on them, and a record this node
                        // re-ran already is answered without another run.
                        let challenger = event.actor().to_string();
                        state.jobs.push_front(Job::Respond { record, challenger });
                    }
                }
                ControlKind::Verification => {
                    if let Some(record) = store.record(&experiment)? {
                        let keep = record.status == Status::Keep;
                        // At the event's own (signed, never future) time: a restart replays
                        // the store, and old events must decay as they did before it.
                        let at = event.timestamp.min(unix_now());
                        // The record says whose work it is, whatever the event claims.
                        state.standing.confirmed(event.actor(), &record.node_id, at);
                        // Only a verifier with standing vouches for anyone's reputation.
                        if state.standing.eligible(event.actor(), at) {
                            state.reputation.verified(&experiment, &record.node_id, event.actor(), keep, false, at);
                            self.save_reputation(state);
                        }
                    }
                }
                // Responses are read when deciding; a dispute's say-so decides nothing.
                ControlKind::ChallengeResponse | ControlKind::Dispute => {}
            }
        }
        Ok(())
    }

    /// Decides every open dispute that has its quorum, or has timed out with any response.
    fn decide(&self, store: &mut DagStore, state: &mut State) -> anyhow::Result<()> {
        let keys: Vec<(String, String)> = state.open.keys().cloned().collect();
        for key in keys {
            let (experiment, challenger) = &key;
            // After the timeout any response decides; with none, the dispute is given up at
            // four times the timeout (a challenge nobody can answer proves nothing).
            let age = state.open.get(&key).map_or(Duration::ZERO, Instant::elapsed);
            let timed_out = age >= self.config.challenge_timeout;
            let abandoned = age >= self.config.challenge_timeout * 4;
            let Some(record) = store.record(experiment)? else {
                if abandoned {
                    state.open.remove(&key);
                }
                continue;
            };
            let events = store.controls_for(experiment)?;
            let Some(challenge) =
                events.iter().find(|e| e.kind == ControlKind::Challenge && e.actor() == challenger.as_str())
            else {
                continue;
            };
            let responses: Vec<ControlEvent> =
                events.iter().filter(|e| e.kind == ControlKind::ChallengeResponse).cloned().collect();
            let class = gpu_class(&record.gpu_model);
            let claim = Claim {
                experiment_id: experiment,
                publisher: &record.node_id,
                gpu_class: &class,
                val_bpb: record.val_bpb.as_f64(),
            };
            let quorum = if timed_out { 1 } else { self.config.quorum };
            let (standing, started) = (&state.standing, challenge.timestamp);
            let eligible = |id: &str| standing.eligible(id, started);
            match resolve(&claim, challenge, &responses, eligible, table_tolerance(&class), quorum) {
                Ok(resolution) => {
                    state.open.remove(&key);
                    state.decided.insert(key.clone());
                    let at = events.iter().map(|e| e.timestamp).max().unwrap_or(i64::MAX).min(unix_now());
                    state.reputation.resolved(experiment, &record.node_id, &resolution, at);
                    self.save_reputation(state);
                    if resolution.verdict == Verdict::Rejected
                        && store.reject(experiment, resolution.ground_truth, unix_now())?
                    {
                        tracing::warn!(
                            id = id8(experiment),
                            publisher = id8(&record.node_id),
                            claimed = record.val_bpb.as_f64(),
                            ground_truth = resolution.ground_truth,
                            "record rejected: it does not reproduce"
                        );
                    } else if resolution.verdict == Verdict::Upheld {
                        tracing::info!(
                            id = id8(experiment),
                            challenger = id8(challenger),
                            "challenge failed: the claim stands"
                        );
                    }
                }
                Err(DisputeError::NoQuorum { .. }) if !abandoned => {}
                Err(e) => {
                    tracing::info!(id = id8(experiment), challenger = id8(challenger), "dispute dropped: {e}");
                    state.open.remove(&key);
                    state.decided.insert(key.clone());
                }
            }
        }
        Ok(())
    }

    async fn work(&self, job: Job, state: &mut State) -> anyhow::Result<()> {
        let (record, challenger) = match job {
            Job::SpotCheck(record) => (record, None),
            Job::Respond { record, challenger } => (record, Some(challenger)),
        };
        let Some(rerun) = &self.rerun else { return Ok(()) };
        let Some(value) = self.measure(rerun, &record, state).await? else { return Ok(()) };
        let class = gpu_class(&record.gpu_model);
        let claimed = record.val_bpb.as_f64();
        // A re-run near the claim is a sample of this node's noise; a far one is not.
        let key = NoiseKey::of(&record);
        let sigma = {
            let mut noise = lock(&self.noise);
            if (value - claimed).abs() <= MAX_WIDENING * table_tolerance(&class) {
                noise.add_pair(&key, &format!("verify:{}", record.id), claimed, value, unix_now());
            }
            noise.estimate(&key, unix_now()).map(|e| e.sigma)
        };
        let gpu = &rerun.workspace.machine.gpu_model;
        let event = match challenger {
            Some(challenger) => ControlEvent::response(&self.identity, &record.id, &challenger, value, gpu, unix_now()),
            None if (value - claimed).abs() <= tolerance(&class, sigma) => {
                tracing::info!(id = id8(&record.id), claimed = record.val_bpb.as_f64(), measured = value, "verified");
                ControlEvent::verification(&self.identity, &record.id, &record.node_id, value, gpu, unix_now())
            }
            None => {
                tracing::warn!(
                    id = id8(&record.id),
                    claimed = record.val_bpb.as_f64(),
                    measured = value,
                    "challenging"
                );
                ControlEvent::challenge(&self.identity, &record.id, value, gpu, unix_now())
            }
        };
        self.node.publish_control(event).await
    }

    /// This node's re-run of `record` (cached); `None` when its code cannot be had or the
    /// run fails — nothing is claimed from a run that did not happen.
    async fn measure(
        &self,
        rerun: &Rerun<E>,
        record: &ExperimentRecord,
        state: &mut State,
    ) -> anyhow::Result<Option<f64>> {
        if let Some(value) = state.measured.get(&record.id) {
            return Ok(*value);
        }
        let Some(code) = self.code(&record.code_cid).await? else {
            tracing::info!(id = id8(&record.id), code = id8(&record.code_cid), "no peer sent the code; not re-run");
            return Ok(None);
        };
        let spec = RunSpec {
            label: format!("verify-{}", id8(&record.id)),
            code,
            time_budget: record.time_budget.as_i64().unwrap_or(0).max(1) as u64,
            resource: self.config.resource,
            // A re-run of this record: in a cluster, an unpublished `purpose: verify` Experiment.
            about: RunAbout {
                parent: Some(record.id.clone()),
                description: format!("re-run of {}", id8(&record.id)),
                agent_model: "verifier".into(),
                remeasure: true,
                ..RunAbout::default()
            },
        };
        let outcome = if rerun.executor.uses_local_device() {
            let _device = self.gpu.lock().await;
            rerun.executor.run(&spec).await?
        } else {
            rerun.executor.run(&spec).await?
        };
        let value = outcome.success().then_some(outcome.val_bpb).flatten();
        if value.is_none() {
            tracing::info!(id = id8(&record.id), error = ?outcome.error, "re-run failed");
        }
        state.measured.insert(record.id.clone(), value);
        Ok(value)
    }

    async fn code(&self, code_cid: &str) -> anyhow::Result<Option<String>> {
        let deadline = Instant::now() + self.config.code_timeout;
        let mut asked = false;
        loop {
            if let Ok(Some(bytes)) = self.artifacts.get(code_cid) {
                return Ok(String::from_utf8(bytes).ok());
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            if !asked {
                self.node.fetch_code(code_cid.to_string()).await?;
                asked = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn save_reputation(&self, state: &State) {
        let table: serde_json::Map<String, serde_json::Value> =
            state.reputation.table(unix_now()).into_iter().map(|(id, score)| (id, serde_json::json!(score))).collect();
        let tmp = self.reputation_path.with_extension("json.tmp");
        let written = std::fs::write(&tmp, serde_json::Value::Object(table).to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.reputation_path));
        if let Err(e) = written {
            tracing::warn!(error = %e, "writing the reputation table failed");
        }
    }
}

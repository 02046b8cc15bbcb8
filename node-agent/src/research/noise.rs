//! The node's run-to-run noise, and the keep rule built on it.
//!
//! A run's `val_bpb` is one draw: the time budget is wall time, so the same `train.py` on the
//! same machine trains a different number of steps each time. The node keeps every repeated
//! measurement of one code it made itself — repeated baselines (calibration runs), the same
//! code proposed again, and re-runs of honest-looking claims by its verifier — grouped by what
//! was measured, per comparable setting ([`NoiseKey`]: GPU class, harness, time budget; the
//! profile follows from the class). σ is the pooled standard deviation of those groups, with
//! ν = Σ(nᵢ − 1) degrees of freedom, from the measurements of the last [`MAX_AGE_SECS`].
//!
//! **The keep rule.** A child is kept only when it beats its parent by more than
//! `t(0.95, ν) · √2 · σ`: a one-sided test at 95 % confidence that the child's expected
//! `val_bpb` is below the parent's, each measured once with the same σ (Student's t, since σ is
//! itself estimated from ν degrees of freedom). Until ν ≥ [`MIN_DOF`] there is no estimate and
//! the research loop re-measures before it judges; `--keep-margin` replaces the margin outright.
//!
//! The book is `<data_dir>/noise.json`, rewritten atomically after each measurement, so the
//! estimate survives a restart; `spore status` and the explorer read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use spore_spec::ExperimentRecord;

/// The file in the data directory.
pub const FILE: &str = "noise.json";
/// Measurements older than this are not used: the machine, its load and its drivers change.
pub const MAX_AGE_SECS: i64 = 7 * 24 * 3600;
/// Degrees of freedom below which there is no estimate (3 runs of one code give 2).
pub const MIN_DOF: u32 = 2;
/// Values kept per measured code, and groups kept in all (oldest dropped first).
const MAX_VALUES: usize = 16;
const MAX_GROUPS: usize = 512;

/// Measurements that are comparable with each other.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NoiseKey {
    pub gpu_class: String,
    pub prepare_cid: String,
    pub time_budget: i64,
}

impl NoiseKey {
    /// The setting a record was measured in.
    pub fn of(record: &ExperimentRecord) -> NoiseKey {
        NoiseKey {
            gpu_class: spore_spec::gpu_class(&record.gpu_model),
            prepare_cid: record.prepare_cid.clone(),
            time_budget: record.time_budget.as_i64().unwrap_or(0),
        }
    }
}

/// Repeated measurements of one thing (a code CID, or a verified claim and its re-run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    key: NoiseKey,
    what: String,
    values: Vec<f64>,
    /// Unix time of the newest value.
    at: i64,
}

/// σ and how much it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub sigma: f64,
    /// Degrees of freedom: Σ(nᵢ − 1) over the groups.
    pub dof: u32,
    /// Measurements in groups of two or more.
    pub runs: u32,
    /// Unix time of the newest measurement.
    pub updated: i64,
}

impl Estimate {
    /// The keep margin: `t(0.95, ν) · √2 · σ`.
    pub fn margin(&self) -> f64 {
        t95(self.dof) * std::f64::consts::SQRT_2 * self.sigma
    }
}

/// The one-sided 95 % quantile of Student's t with `dof` degrees of freedom.
pub fn t95(dof: u32) -> f64 {
    const TABLE: [(u32, f64); 19] = [
        (1, 6.314),
        (2, 2.920),
        (3, 2.353),
        (4, 2.132),
        (5, 2.015),
        (6, 1.943),
        (7, 1.895),
        (8, 1.860),
        (9, 1.833),
        (10, 1.812),
        (12, 1.782),
        (15, 1.753),
        (20, 1.725),
        (25, 1.708),
        (30, 1.697),
        (40, 1.684),
        (60, 1.671),
        (120, 1.658),
        (u32::MAX, 1.645),
    ];
    // The entry at or below `dof`: a little conservative between the table's rows.
    TABLE.iter().rev().find(|(d, _)| *d <= dof.max(1)).map_or(TABLE[0].1, |(_, t)| *t)
}

/// The measurements, and the override, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    groups: Vec<Group>,
    /// `--keep-margin` of the node that wrote the book last (shown by `spore status`).
    #[serde(default)]
    keep_margin: Option<f64>,
}

/// The node's measurements of its own noise.
#[derive(Debug, Default)]
pub struct NoiseBook {
    path: Option<PathBuf>,
    stored: Stored,
}

/// Shared by the research loop, the verifier and the cluster publisher.
pub type SharedNoise = Arc<Mutex<NoiseBook>>;

/// How the margin of a decision was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Margin {
    /// `--keep-margin`.
    Fixed(f64),
    /// From the measured noise.
    Measured(Estimate),
    /// No estimate yet: a child must merely beat its parent.
    Unmeasured,
}

impl Margin {
    pub fn value(&self) -> f64 {
        match self {
            Margin::Fixed(m) => *m,
            Margin::Measured(e) => e.margin(),
            Margin::Unmeasured => 0.0,
        }
    }

    /// Keep iff `child` beats `parent` by more than the margin (ties discard).
    pub fn keeps(&self, child: f64, parent: f64) -> bool {
        child < parent - self.value()
    }
}

impl NoiseBook {
    /// The book in `data_dir` (empty when there is none). A book that cannot be read is set
    /// aside as `noise.json.bad` with a warning: the node measures again rather than trusting it.
    pub fn open(data_dir: &Path) -> NoiseBook {
        let path = data_dir.join(FILE);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Stored>(&bytes) {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "the noise book is unreadable; measuring again");
                    let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                    Stored::default()
                }
            },
            Err(_) => Stored::default(),
        };
        NoiseBook { path: Some(path), stored }
    }

    /// The book in `data_dir` as it is, for readers (`spore status`, the explorer): never
    /// written, and an unreadable one reads as empty.
    pub fn read(data_dir: &Path) -> NoiseBook {
        let stored = std::fs::read(data_dir.join(FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        NoiseBook { path: None, stored }
    }

    /// Shared, with `keep_margin` recorded for `spore status`.
    pub fn shared(data_dir: &Path, keep_margin: Option<f64>) -> SharedNoise {
        let mut book = NoiseBook::open(data_dir);
        if book.stored.keep_margin != keep_margin {
            book.stored.keep_margin = keep_margin;
            book.save();
        }
        Arc::new(Mutex::new(book))
    }

    pub fn keep_margin(&self) -> Option<f64> {
        self.stored.keep_margin
    }

    /// Adds one measurement of `what` (a code CID) in `key`'s setting.
    pub fn add(&mut self, key: &NoiseKey, what: &str, value: f64, now: i64) {
        if !(value.is_finite() && value > 0.0) {
            return;
        }
        let groups = &mut self.stored.groups;
        match groups.iter_mut().find(|g| &g.key == key && g.what == what) {
            Some(group) => {
                group.values.push(value);
                if group.values.len() > MAX_VALUES {
                    group.values.remove(0);
                }
                group.at = now;
            }
            None => groups.push(Group { key: key.clone(), what: what.to_string(), values: vec![value], at: now }),
        }
        if groups.len() > MAX_GROUPS {
            groups.sort_by_key(|g| std::cmp::Reverse(g.at));
            groups.truncate(MAX_GROUPS);
        }
        self.save();
    }

    /// A pair of measurements of one thing (a claim and this node's re-run of it).
    pub fn add_pair(&mut self, key: &NoiseKey, what: &str, a: f64, b: f64, now: i64) {
        if [a, b].iter().all(|v| v.is_finite() && *v > 0.0) {
            self.stored.groups.retain(|g| !(&g.key == key && g.what == what));
            self.add(key, what, a, now);
            self.add(key, what, b, now);
        }
    }

    /// Measurements of `what` in `key`'s setting that are recent enough to count.
    pub fn measured(&self, key: &NoiseKey, what: &str, now: i64) -> usize {
        self.recent(key, now).filter(|g| g.what == what).map(|g| g.values.len()).sum()
    }

    fn recent<'a>(&'a self, key: &'a NoiseKey, now: i64) -> impl Iterator<Item = &'a Group> + 'a {
        self.stored.groups.iter().filter(move |g| &g.key == key && g.at.saturating_add(MAX_AGE_SECS) >= now)
    }

    /// The pooled estimate for `key`, if there are at least [`MIN_DOF`] degrees of freedom,
    /// together with the degrees of freedom there are.
    pub fn partial(&self, key: &NoiseKey, now: i64) -> (Option<Estimate>, u32) {
        let (mut squares, mut dof, mut runs, mut updated) = (0.0, 0u32, 0u32, 0i64);
        for group in self.recent(key, now).filter(|g| g.values.len() >= 2) {
            let n = group.values.len();
            let mean = group.values.iter().sum::<f64>() / n as f64;
            squares += group.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
            dof += (n - 1) as u32;
            runs += n as u32;
            updated = updated.max(group.at);
        }
        let estimate =
            (dof >= MIN_DOF).then(|| Estimate { sigma: (squares / f64::from(dof)).sqrt(), dof, runs, updated });
        (estimate, dof)
    }

    pub fn estimate(&self, key: &NoiseKey, now: i64) -> Option<Estimate> {
        self.partial(key, now).0
    }

    /// The margin a child measured in `key`'s setting must beat its parent by.
    pub fn margin(&self, key: &NoiseKey, now: i64) -> Margin {
        match (self.stored.keep_margin, self.estimate(key, now)) {
            (Some(fixed), _) => Margin::Fixed(fixed),
            (None, Some(estimate)) => Margin::Measured(estimate),
            (None, None) => Margin::Unmeasured,
        }
    }

    /// Every setting with measurements, for `spore status` and the explorer.
    pub fn report(&self, now: i64) -> serde_json::Value {
        let keys: BTreeMap<&NoiseKey, ()> = self.stored.groups.iter().map(|g| (&g.key, ())).collect();
        let settings: Vec<serde_json::Value> = keys
            .into_keys()
            .map(|key| {
                let (estimate, dof) = self.partial(key, now);
                serde_json::json!({
                    "gpu_class": key.gpu_class,
                    "prepare_cid": key.prepare_cid,
                    "time_budget": key.time_budget,
                    "dof": dof,
                    "sigma": estimate.map(|e| e.sigma),
                    "runs": estimate.map(|e| e.runs),
                    "updated": estimate.map(|e| e.updated),
                    "margin": match self.stored.keep_margin {
                        Some(fixed) => Some(fixed),
                        None => estimate.map(|e| e.margin()),
                    },
                })
            })
            .collect();
        serde_json::json!({
            "rule": "keep iff child < parent - margin; margin = t(0.95, dof) * sqrt(2) * sigma",
            "keep_margin": self.stored.keep_margin,
            "settings": settings,
        })
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("json.tmp");
        let written = serde_json::to_vec(&self.stored)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "writing the noise book failed");
        }
    }
}

/// Locks the shared book; a panic elsewhere while it was held leaves it usable.
pub fn lock(noise: &SharedNoise) -> std::sync::MutexGuard<'_, NoiseBook> {
    noise.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NoiseKey {
        NoiseKey { gpu_class: "cpu".into(), prepare_cid: "p".repeat(64), time_budget: 20 }
    }

    #[test]
    fn three_runs_of_one_code_make_an_estimate_and_the_margin_is_a_t_test() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = NoiseBook::open(dir.path());
        book.add(&key(), "code-a", 2.00, 100);
        book.add(&key(), "code-b", 1.50, 100);
        assert_eq!(book.margin(&key(), 100), Margin::Unmeasured, "single runs say nothing about noise");
        book.add(&key(), "code-a", 2.02, 101);
        assert_eq!(book.partial(&key(), 101), (None, 1));
        book.add(&key(), "code-a", 1.98, 102);
        let estimate = book.estimate(&key(), 102).unwrap();
        assert!((estimate.sigma - 0.02).abs() < 1e-12, "{estimate:?}");
        assert_eq!((estimate.dof, estimate.runs, estimate.updated), (2, 3, 102));
        let margin = book.margin(&key(), 102);
        assert!((margin.value() - 2.920 * std::f64::consts::SQRT_2 * 0.02).abs() < 1e-12);
        assert!(!margin.keeps(1.95, 2.0), "a gain of 0.05 is inside the noise");
        assert!(margin.keeps(1.80, 2.0));
        // Another code's pair pools with the first: ν = 3.
        book.add_pair(&key(), "verify:x", 3.0, 3.01, 103);
        let pooled = book.estimate(&key(), 103).unwrap();
        let expected = ((0.0008 + 0.00005) / 3.0f64).sqrt();
        assert!((pooled.sigma - expected).abs() < 1e-12, "{pooled:?}");
        assert_eq!(pooled.dof, 3);
        // Another setting is not this one.
        let other = NoiseKey { time_budget: 300, ..key() };
        assert_eq!(book.estimate(&other, 103), None);
    }

    #[test]
    fn the_estimate_survives_a_restart_and_goes_stale() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = NoiseBook::open(dir.path());
        for v in [1.0, 1.01, 0.99] {
            book.add(&key(), "code", v, 1000);
        }
        let before = book.estimate(&key(), 1000).unwrap();
        let again = NoiseBook::open(dir.path());
        assert_eq!(again.estimate(&key(), 1000), Some(before));
        assert_eq!(again.estimate(&key(), 1000 + MAX_AGE_SECS), Some(before));
        assert_eq!(again.estimate(&key(), 1001 + MAX_AGE_SECS), None, "a week-old estimate is measured again");
    }

    #[test]
    fn a_fixed_margin_wins_and_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let shared = NoiseBook::shared(dir.path(), Some(0.01));
        assert_eq!(lock(&shared).margin(&key(), 0), Margin::Fixed(0.01));
        assert!(!Margin::Fixed(0.01).keeps(0.995, 1.0));
        assert!(!Margin::Unmeasured.keeps(1.0, 1.0), "ties discard");
        assert!(Margin::Unmeasured.keeps(0.999, 1.0));
        assert_eq!(NoiseBook::open(dir.path()).keep_margin(), Some(0.01));
        assert_eq!(NoiseBook::shared(dir.path(), None).lock().unwrap().keep_margin(), None);
    }

    #[test]
    fn a_corrupt_book_is_set_aside_and_bad_values_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{\"groups\": 7").unwrap();
        let mut book = NoiseBook::open(dir.path());
        assert!(dir.path().join("noise.json.bad").exists());
        for v in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            book.add(&key(), "code", v, 1);
        }
        assert_eq!(book.measured(&key(), "code", 1), 0);
        assert_eq!(book.report(1)["settings"], serde_json::json!([]));
    }

    #[test]
    fn t_quantiles_fall_towards_the_normal() {
        assert_eq!(t95(0), 6.314);
        assert_eq!(t95(2), 2.920);
        assert_eq!(t95(11), 1.812, "between rows the smaller ν: conservative");
        assert_eq!(t95(1_000_000), 1.658);
        assert_eq!(t95(u32::MAX), 1.645);
    }
}

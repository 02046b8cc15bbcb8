//! Tolerance bands: the absolute `val_bpb` difference within which a re-run confirms a claim.
//!
//! Python 0.1.2 keys its table by raw strings that real device names never match, so the
//! default always applied; 0.3.x normalised names but missed the `NVIDIA ` prefix. Here the key
//! is the GPU class. The table decides disputes (every node must reach the same verdict), and a
//! node that measured its own run-to-run spread — σ from repeated runs of the same code, or from
//! its re-runs of honest-looking claims (each difference counts as √2 σ) — challenges only beyond
//! 3σ when that is wider: no node publishes a challenge its own noise cannot support. The
//! widening is capped at 5× the table, so claims that are a little off cannot talk a node into
//! tolerating anything.

/// The table of Python 0.3.x (§15.4), keyed by GPU class.
const TABLE: [(&str, f64); 6] = [
    ("H100", 0.0015),
    ("A100", 0.0015),
    ("RTX_5090", 0.002),
    ("RTX_4090", 0.002),
    ("RTX_3090", 0.003),
    ("RTX_3060", 0.003),
];

/// Every class not in the table.
pub const DEFAULT_TOLERANCE: f64 = 0.002;

/// The table's band for a GPU class.
pub fn table_tolerance(gpu_class: &str) -> f64 {
    TABLE.iter().find(|(class, _)| *class == gpu_class).map_or(DEFAULT_TOLERANCE, |(_, t)| *t)
}

/// Repeated measurements of the same code on one class: the node's own noise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoiseModel {
    samples: Vec<f64>,
    /// Differences of two independent measurements of the same code, divided by √2.
    deviations: Vec<f64>,
}

/// How far measured noise may widen the table's band.
pub const MAX_WIDENING: f64 = 5.0;

impl NoiseModel {
    pub fn record(&mut self, val_bpb: f64) {
        if val_bpb.is_finite() && val_bpb > 0.0 {
            self.samples.push(val_bpb);
        }
    }

    /// A re-run `measured` of a claim `claimed` (both of the same code).
    pub fn record_pair(&mut self, measured: f64, claimed: f64) {
        let deviation = (measured - claimed) / std::f64::consts::SQRT_2;
        if deviation.is_finite() {
            self.deviations.push(deviation);
        }
    }

    /// σ, once there are at least 3 repeated measurements or 3 pairs (the larger estimate).
    pub fn sigma(&self) -> Option<f64> {
        let n = self.samples.len();
        let from_samples = (n >= 3).then(|| {
            let mean = self.samples.iter().sum::<f64>() / n as f64;
            (self.samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        let m = self.deviations.len();
        let from_pairs = (m >= 3).then(|| (self.deviations.iter().map(|d| d * d).sum::<f64>() / m as f64).sqrt());
        match (from_samples, from_pairs) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The band beyond which this node challenges: the table's, or 3σ of the measured noise
    /// when wider, at most [`MAX_WIDENING`] times the table.
    pub fn tolerance(&self, gpu_class: &str) -> f64 {
        let table = table_tolerance(gpu_class);
        self.sigma().map_or(table, |sigma| (3.0 * sigma).clamp(table, MAX_WIDENING * table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_device_names_reach_their_band_through_the_class() {
        // Python 0.1.2 gave NVIDIA_H100_80GB_HBM3 the default 0.002; its class is H100.
        assert_eq!(table_tolerance(&spore_spec::gpu_class("NVIDIA_H100_80GB_HBM3")), 0.0015);
        assert_eq!(table_tolerance(&spore_spec::gpu_class("NVIDIA GeForce RTX 3090")), 0.003);
        assert_eq!(table_tolerance("CPU"), DEFAULT_TOLERANCE);
    }

    #[test]
    fn measured_noise_widens_the_band_never_narrows_it() {
        let mut noise = NoiseModel::default();
        noise.record(1.0);
        noise.record(1.001);
        assert_eq!(noise.tolerance("H100"), 0.0015, "two samples are no estimate");
        noise.record(0.999);
        let sigma = noise.sigma().unwrap();
        assert!((sigma - 0.001).abs() < 1e-12);
        assert!((noise.tolerance("H100") - 0.003).abs() < 1e-12);
        let mut quiet = NoiseModel::default();
        for _ in 0..5 {
            quiet.record(1.0);
        }
        assert_eq!(quiet.tolerance("RTX_3090"), 0.003);
        quiet.record(f64::NAN);
        assert_eq!(quiet.sigma(), Some(0.0));
    }

    #[test]
    fn pairs_of_runs_estimate_sigma_and_widening_is_capped() {
        let mut noise = NoiseModel::default();
        for (measured, claimed) in [(1.003, 1.0), (0.997, 1.0), (1.0, 1.003)] {
            noise.record_pair(measured, claimed);
        }
        let sigma = noise.sigma().unwrap();
        assert!((sigma - 0.003 / std::f64::consts::SQRT_2).abs() < 1e-9, "{sigma}");
        assert!((noise.tolerance("H100") - 3.0 * sigma).abs() < 1e-9);
        for _ in 0..10 {
            noise.record_pair(2.0, 1.0);
        }
        assert_eq!(noise.tolerance("H100"), MAX_WIDENING * 0.0015, "capped");
    }
}

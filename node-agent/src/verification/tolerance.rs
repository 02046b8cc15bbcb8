//! Tolerance bands: the absolute `val_bpb` difference within which a re-run confirms a claim.
//!
//! Python 0.1.2 keys its table by raw strings that real device names never match, so the
//! default always applied; 0.3.x normalised names but missed the `NVIDIA ` prefix. Here the key
//! is the GPU class, and a node that measured its own class's run-to-run spread (σ of repeated
//! baselines) widens the band to 3σ when that is wider: no node publishes a verdict its own
//! noise cannot support.

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
}

impl NoiseModel {
    pub fn record(&mut self, val_bpb: f64) {
        if val_bpb.is_finite() && val_bpb > 0.0 {
            self.samples.push(val_bpb);
        }
    }

    /// The sample standard deviation, once there are at least 3 measurements.
    pub fn sigma(&self) -> Option<f64> {
        let n = self.samples.len();
        if n < 3 {
            return None;
        }
        let mean = self.samples.iter().sum::<f64>() / n as f64;
        let var = self.samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Some(var.sqrt())
    }

    /// The band for `gpu_class`: the table's, or 3σ of the measured noise when wider.
    pub fn tolerance(&self, gpu_class: &str) -> f64 {
        let table = table_tolerance(gpu_class);
        self.sigma().map_or(table, |sigma| table.max(3.0 * sigma))
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
        noise.record(1.01);
        assert_eq!(noise.tolerance("H100"), 0.0015, "two samples are no estimate");
        noise.record(0.99);
        let sigma = noise.sigma().unwrap();
        assert!((sigma - 0.01).abs() < 1e-12);
        assert!((noise.tolerance("H100") - 0.03).abs() < 1e-12);
        let mut quiet = NoiseModel::default();
        for _ in 0..5 {
            quiet.record(1.0);
        }
        assert_eq!(quiet.tolerance("RTX_3090"), 0.003);
        quiet.record(f64::NAN);
        assert_eq!(quiet.sigma(), Some(0.0));
    }
}

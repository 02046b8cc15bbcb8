//! Tolerance bands: the absolute `val_bpb` difference within which a re-run confirms a claim.
//!
//! Python 0.1.2 keys its table by raw strings that real device names never match, so the
//! default always applied; 0.3.x normalised names but missed the `NVIDIA ` prefix. Here the key
//! is the GPU class. The table decides disputes (every node must reach the same verdict), and a
//! node that measured its own run-to-run spread — σ from repeated runs of the same code, or from
//! its re-runs of honest-looking claims (each pair pooled with the rest, in the node's noise book)
//! — challenges only beyond 3σ when that is wider: no node publishes a challenge its own noise cannot support. The
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

/// How far measured noise may widen the table's band.
pub const MAX_WIDENING: f64 = 5.0;

/// The band beyond which this node challenges: the table's, or 3σ of the noise it measured
/// ([`noise`](crate::research::noise)) when wider, at most [`MAX_WIDENING`] times the table.
pub fn tolerance(gpu_class: &str, sigma: Option<f64>) -> f64 {
    let table = table_tolerance(gpu_class);
    sigma.filter(|s| s.is_finite()).map_or(table, |sigma| (3.0 * sigma).clamp(table, MAX_WIDENING * table))
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
    fn measured_noise_widens_the_band_never_narrows_it_and_is_capped() {
        assert_eq!(tolerance("H100", None), 0.0015, "no estimate: the table");
        assert!((tolerance("H100", Some(0.001)) - 0.003).abs() < 1e-12);
        assert_eq!(tolerance("RTX_3090", Some(0.0)), 0.003);
        assert_eq!(tolerance("H100", Some(1.0)), MAX_WIDENING * 0.0015, "capped");
        assert_eq!(tolerance("H100", Some(f64::NAN)), 0.0015);
    }
}

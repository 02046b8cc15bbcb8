//! The GPU probe: the one place a node learns what it trains on. libtorch (through tch) says
//! whether CUDA or MPS is usable and how many devices there are; `nvidia-smi` gives the product
//! name, memory and driver; [`spore_spec::gpu_class`] normalises the name. `torch_version` is the
//! torch this binary links against and `cuda_version` the CUDA runtime libtorch uses (`none`
//! without a CUDA device) — Python 0.1.2 writes `unknown` for the latter.

use std::process::Command;

use serde::Serialize;

/// What the node records about its machine.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Probe {
    pub torch_version: String,
    pub cuda_version: String,
    pub cuda_available: bool,
    pub device_count: i64,
    pub mps_available: bool,
    /// As Python records it: the device name with spaces as `_`, `apple-mps`, or `cpu`.
    pub gpu_model: String,
    pub gpu_class: String,
    /// The device name as the driver prints it, when there is one.
    pub gpu_name: Option<String>,
    pub gpu_memory_mb: Option<u64>,
    pub driver_version: Option<String>,
    /// Which hyperparameter block of `train.py` runs: `gpu` with CUDA, `cpu` otherwise.
    pub profile: String,
}

/// One row of `nvidia-smi --query-gpu=name,memory.total,driver_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmiGpu {
    pub name: String,
    pub memory_mb: Option<u64>,
    pub driver_version: String,
}

/// Probes this machine.
pub fn probe() -> Probe {
    let cuda_available = tch::Cuda::is_available();
    let device_count = if cuda_available { tch::Cuda::device_count() } else { 0 };
    let mps_available = tch::utils::has_mps();
    let smi = if cuda_available { nvidia_smi() } else { None };
    let cuda_version = if cuda_available { format_cudart(tch::utils::version_cudart()) } else { "none".into() };
    let gpu_name = smi.as_ref().map(|g| g.name.clone());
    let gpu_model = match (&gpu_name, cuda_available, mps_available) {
        (Some(name), _, _) => name.replace(' ', "_"),
        (None, true, _) => "cuda".into(),
        (None, false, true) => "apple-mps".into(),
        (None, false, false) => "cpu".into(),
    };
    Probe {
        torch_version: env!("SPORE_TORCH_VERSION").to_string(),
        cuda_version,
        cuda_available,
        device_count,
        mps_available,
        gpu_class: spore_spec::gpu_class(&gpu_model),
        gpu_model,
        gpu_name,
        gpu_memory_mb: smi.as_ref().and_then(|g| g.memory_mb),
        driver_version: smi.map(|g| g.driver_version),
        profile: if cuda_available { "gpu" } else { "cpu" }.into(),
    }
}

fn nvidia_smi() -> Option<SmiGpu> {
    let output = Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_smi(&String::from_utf8_lossy(&output.stdout))
}

/// The first GPU of `nvidia-smi`'s CSV (`NVIDIA H100 80GB HBM3, 81559, 550.54.15`).
pub fn parse_smi(csv: &str) -> Option<SmiGpu> {
    let line = csv.lines().find(|l| !l.trim().is_empty())?;
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [name, memory, driver] = fields.as_slice() else { return None };
    if name.is_empty() {
        return None;
    }
    Some(SmiGpu { name: name.to_string(), memory_mb: memory.parse().ok(), driver_version: driver.to_string() })
}

/// `12080` (CUDA's encoding: major × 1000 + minor × 10) → `12.8`.
pub fn format_cudart(version: i64) -> String {
    if version <= 0 { "unknown".into() } else { format!("{}.{}", version / 1000, (version % 1000) / 10) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_csv() {
        let gpu = parse_smi("NVIDIA H100 80GB HBM3, 81559, 550.54.15\nNVIDIA H100 80GB HBM3, 81559, 550.54.15\n");
        assert_eq!(
            gpu,
            Some(SmiGpu {
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_mb: Some(81559),
                driver_version: "550.54.15".into()
            })
        );
        assert_eq!(parse_smi("NVIDIA A10G, [N/A], 535.1\n").and_then(|g| g.memory_mb), None);
        assert_eq!(parse_smi(""), None);
        assert_eq!(parse_smi("garbage"), None);
    }

    #[test]
    fn formats_the_cuda_runtime_version() {
        assert_eq!(format_cudart(12080), "12.8");
        assert_eq!(format_cudart(13000), "13.0");
        assert_eq!(format_cudart(0), "unknown");
    }

    #[test]
    fn this_machine_probes_consistently() {
        let p = probe();
        assert!(p.torch_version.starts_with("2."), "{}", p.torch_version);
        assert_eq!(p.profile == "gpu", p.cuda_available);
        assert_eq!(p.gpu_class, spore_spec::gpu_class(&p.gpu_model));
        if !p.cuda_available {
            assert_eq!(p.cuda_version, "none");
            assert_eq!(p.device_count, 0);
        }
    }
}

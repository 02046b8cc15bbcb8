//! The GPU class: the one normalisation of a device name that every comparison uses (frontier
//! per class, tolerance table, spot-check eligibility, the evaluator's probe).
//!
//! Python 0.1.2 compares raw strings (`NVIDIA_H100_80GB_HBM3` never matches its own tolerance
//! key `H100-SXM5-80GB`). Here a name, as a driver prints it or as a record carries it (spaces
//! as `_`), maps to a short stable class: the model number for data-centre parts (`H100`,
//! `A100`, `L40S`), the family and number for workstation and consumer cards (`RTX_4090`,
//! `RTX_A6000`, `GTX_1080_TI`), `APPLE_MPS` for Apple silicon and `CPU` when there is no GPU.
//! Memory size, form factor and vendor prefixes are dropped: they do not change a 5-minute
//! run's result beyond the tolerance.

/// Words that name a vendor, a product line or a form factor, never the chip.
const NOISE: [&str; 12] =
    ["NVIDIA", "GEFORCE", "TESLA", "QUADRO", "AMD", "RADEON", "INSTINCT", "PCIE", "SXM", "SXM4", "SXM5", "NVL"];

/// Consumer and workstation families whose number follows as its own word.
const FAMILIES: [&str; 4] = ["RTX", "GTX", "TITAN", "RX"];

/// The GPU class of a device name (`NVIDIA H100 80GB HBM3` → `H100`).
pub fn gpu_class(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper.is_empty() || upper == "CPU" || upper == "NONE" {
        return "CPU".into();
    }
    if upper.contains("APPLE") || upper.contains("MPS") {
        return "APPLE_MPS".into();
    }
    let words: Vec<&str> = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !NOISE.contains(w) && !is_memory(w))
        .collect();
    if let Some(at) = words.iter().position(|w| FAMILIES.contains(w)) {
        return words[at..].join("_");
    }
    // Data-centre parts: the first word that is letters then digits (H100, A100, L40S, GH200).
    if let Some(chip) = words.iter().find(|w| is_model_number(w)) {
        return (*chip).to_string();
    }
    if words.is_empty() { "UNKNOWN".into() } else { words.join("_") }
}

/// `80GB`, `24G`, `HBM3`, `HBM2E`: memory, not the chip.
fn is_memory(word: &str) -> bool {
    let digits_then = |suffix: &str| {
        word.strip_suffix(suffix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    digits_then("GB") || digits_then("G") || word.starts_with("HBM")
}

fn is_model_number(word: &str) -> bool {
    let letters = word.bytes().take_while(u8::is_ascii_alphabetic).count();
    (1..=2).contains(&letters) && word[letters..].bytes().next().is_some_and(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::gpu_class;

    #[test]
    fn names_as_drivers_and_records_spell_them() {
        for (name, class) in [
            ("NVIDIA H100 80GB HBM3", "H100"),
            ("NVIDIA_H100_80GB_HBM3", "H100"),
            ("NVIDIA H100 PCIe", "H100"),
            ("H100-SXM5-80GB", "H100"),
            ("NVIDIA H200", "H200"),
            ("NVIDIA GH200 480GB", "GH200"),
            ("NVIDIA A100-SXM4-80GB", "A100"),
            ("A100-SXM4-80GB", "A100"),
            ("NVIDIA L40S", "L40S"),
            ("Tesla T4", "T4"),
            ("NVIDIA A10G", "A10G"),
            ("NVIDIA GeForce RTX 4090", "RTX_4090"),
            ("NVIDIA_GeForce_RTX_4090", "RTX_4090"),
            ("RTX_4090", "RTX_4090"),
            ("NVIDIA GeForce RTX 3090 Ti", "RTX_3090_TI"),
            ("NVIDIA RTX A6000", "RTX_A6000"),
            ("NVIDIA GeForce GTX 1080 Ti", "GTX_1080_TI"),
            ("apple-mps", "APPLE_MPS"),
            ("Apple M2 Max", "APPLE_MPS"),
            ("cpu", "CPU"),
            ("", "CPU"),
            ("none", "CPU"),
            ("NVIDIA", "UNKNOWN"),
        ] {
            assert_eq!(gpu_class(name), class, "{name}");
        }
    }
}

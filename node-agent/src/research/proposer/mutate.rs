//! The built-in proposer: no LLM and no key. It changes one hyperparameter constant of the
//! profile block that runs on this machine (`# @profile cpu` … `# @end` in `train.py`), with
//! rules that keep the model valid (the width stays a multiple of the head size, the batch a
//! power of two), and remembers what was already tried from a parent through the descriptions
//! of the parent's children (`set NAME from OLD to NEW`), so it never repeats itself there.
//! The choice is seeded by the parent's CID and the number of its children: reproducible.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use spore_spec::number::python_float_repr;

use super::{Proposal, ProposeError};
use crate::research::prompt::ProposalContext;

/// The `agent_model` of records this proposer makes.
pub const AGENT_MODEL: &str = "spore-mutator";

/// A numeric constant of the profile block.
#[derive(Debug, Clone, PartialEq)]
struct Constant {
    line: usize,
    name: String,
    value: f64,
    is_int: bool,
    /// Written as `2**k`.
    power_of_two: bool,
}

fn parse_value(text: &str) -> Option<(f64, bool, bool)> {
    let text = text.split('#').next()?.trim();
    if let Some((base, exp)) = text.split_once("**") {
        let (base, exp): (i64, u32) = (base.trim().parse().ok()?, exp.trim().parse().ok()?);
        return Some(((base as f64).powi(exp as i32), true, base == 2));
    }
    if let Ok(i) = text.replace('_', "").parse::<i64>() {
        return Some((i as f64, true, false));
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite()).map(|x| (x, false, false))
}

/// The constants between `# @profile <profile>` and `# @end`.
fn constants(code: &str, profile: &str) -> Vec<Constant> {
    let mut inside = false;
    let mut out = Vec::new();
    for (line, text) in code.lines().enumerate() {
        let trimmed = text.trim();
        if let Some(name) = trimmed.strip_prefix("# @profile") {
            inside = name.trim() == profile;
            continue;
        }
        if trimmed == "# @end" {
            inside = false;
            continue;
        }
        if !inside || text.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, value)) = text.split_once('=') else { continue };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            continue;
        }
        if let Some((value, is_int, power_of_two)) = parse_value(value) {
            out.push(Constant { line, name: name.to_string(), value, is_int, power_of_two });
        }
    }
    out
}

/// Four significant digits, written as Python would.
fn float_literal(x: f64) -> String {
    let rounded: f64 = format!("{x:.3e}").parse().unwrap_or(x);
    python_float_repr(rounded)
}

fn literal(constant: &Constant, value: f64) -> String {
    if constant.power_of_two {
        format!("2**{}", value.log2().round() as i64)
    } else if constant.is_int {
        format!("{}", value.round() as i64)
    } else {
        float_literal(value)
    }
}

/// The values a constant may take next, with the reason for each.
fn candidates(constant: &Constant, all: &[Constant]) -> Vec<(f64, &'static str)> {
    let name = constant.name.as_str();
    let v = constant.value;
    let suffix = |s: &str| name == s || name.ends_with(&format!("_{s}"));
    let others = |list: &[f64], why: &'static str| -> Vec<(f64, &'static str)> {
        list.iter().filter(|x| (**x - v).abs() > 1e-12).map(|x| (*x, why)).collect()
    };
    if suffix("LR") {
        return vec![
            (v * 2.0, "a larger step converges faster within the time budget"),
            (v * 1.4, "a somewhat larger step converges faster within the time budget"),
            (v * 0.7, "a smaller step is more stable"),
            (v * 0.5, "a smaller step is more stable"),
        ];
    }
    if suffix("WEIGHT_DECAY") {
        return others(&[0.0, 0.01, 0.05, 0.1], "regularisation changes how well the model generalises");
    }
    if suffix("WARMUP_RATIO") {
        return others(&[0.0, 0.02, 0.05, 0.1], "warm-up trades early progress for stability");
    }
    if suffix("WARMDOWN_RATIO") {
        return others(&[0.2, 0.3, 0.5, 0.7, 0.9], "the length of the final decay affects the end loss");
    }
    if suffix("LOGIT_SOFTCAP") {
        return others(&[10.0, 15.0, 20.0, 30.0], "the logit cap bounds the confidence of predictions");
    }
    if suffix("MLP_RATIO") {
        return others(&[2.0, 3.0, 4.0, 6.0], "MLP width trades capacity for speed");
    }
    if suffix("DEPTH") {
        return [(v + 1.0, "a deeper model has more capacity"), (v - 1.0, "a shallower model trains more steps")]
            .into_iter()
            .filter(|(x, _)| (1.0..=32.0).contains(x))
            .collect();
    }
    if suffix("MODEL_DIM") {
        let head = all.iter().find(|c| c.name.ends_with("HEAD_DIM")).map(|c| c.value).unwrap_or(1.0);
        return [(v * 2.0, "a wider model has more capacity"), (v / 2.0, "a narrower model trains more steps")]
            .into_iter()
            .filter(|(x, _)| *x >= head && (x / head).fract() == 0.0)
            .collect();
    }
    if suffix("TOTAL_BATCH_TOKENS") {
        return [(v * 2.0, "larger batches give less noisy steps"), (v / 2.0, "smaller batches give more steps")]
            .into_iter()
            .filter(|(x, _)| *x >= 1024.0)
            .collect();
    }
    if suffix("HEAD_DIM") || suffix("FULL_DEVICE_BATCH") || constant.is_int {
        // Coupled to other constants or to memory: not changed on its own.
        return Vec::new();
    }
    vec![(v * 2.0, "a larger value may help"), (v * 0.5, "a smaller value may help")]
}

/// What earlier children of this parent changed: `(name, new literal)`.
fn already_tried(ctx: &ProposalContext) -> HashSet<(String, String)> {
    ctx.siblings
        .iter()
        .filter_map(|r| {
            let rest = r.description.strip_prefix("set ")?;
            let (name, rest) = rest.split_once(" from ")?;
            let (_, new) = rest.split_once(" to ")?;
            Some((name.to_string(), new.to_string()))
        })
        .collect()
}

fn seed(parent_id: &str, attempt: usize) -> u64 {
    // FNV-1a: stable across platforms and releases.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parent_id.bytes().chain((attempt as u64).to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// One mutation of the parent's code.
pub fn propose(ctx: &ProposalContext) -> Result<Proposal, ProposeError> {
    let all = constants(&ctx.parent_code, &ctx.profile);
    if all.is_empty() {
        return Err(ProposeError::Exhausted(format!(
            "train.py has no `# @profile {}` block of constants to change",
            ctx.profile
        )));
    }
    let tried = already_tried(ctx);
    let mut options: Vec<(&Constant, String, &'static str)> = Vec::new();
    for constant in &all {
        for (value, why) in candidates(constant, &all) {
            let new = literal(constant, value);
            let old = literal(constant, constant.value);
            if new != old && !tried.contains(&(constant.name.clone(), new.clone())) {
                options.push((constant, new, why));
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(seed(&ctx.parent.id, ctx.siblings.len()));
    let Some((constant, new, why)) = options.choose(&mut rng) else {
        return Err(ProposeError::Exhausted("every mutation of this parent has been tried".into()));
    };
    let old = literal(constant, constant.value);
    let mut lines: Vec<String> = ctx.parent_code.lines().map(str::to_string).collect();
    let comment = lines[constant.line].split_once('#').map(|(_, c)| format!("  #{c}")).unwrap_or_default();
    lines[constant.line] = format!("{} = {new}{comment}", constant.name);
    let mut code = lines.join("\n");
    code.push('\n');
    Ok(Proposal {
        code,
        description: format!("set {} from {old} to {new}", constant.name),
        hypothesis: format!("{why}."),
    })
}

#[cfg(test)]
mod tests {
    use spore_spec::{ExperimentRecord, Status};

    use super::*;

    const CODE: &str = "import torch\n# @profile gpu\nDEPTH = 8\nMATRIX_LR = 0.02\n# @end\n# @profile cpu\n\
        CPU_DEPTH = 4\nCPU_MODEL_DIM = 128\nCPU_HEAD_DIM = 32\nCPU_TOTAL_BATCH_TOKENS = 2**12\n\
        CPU_MATRIX_LR = 0.003  # AdamW\nCPU_FULL_DEVICE_BATCH = 16\n# @end\nprint('val_bpb')\n";

    fn ctx(siblings: Vec<ExperimentRecord>) -> ProposalContext {
        let parent = crate::research::test_support::record(&"ab".repeat(32), 1.0, Status::Keep, "");
        ProposalContext {
            parent,
            parent_code: CODE.into(),
            improvements: vec![],
            siblings,
            branches: vec![],
            frontier: vec![],
            total_experiments: 1,
            best_val_bpb: None,
            profile: "cpu".into(),
            time_budget: 20,
        }
    }

    #[test]
    fn reads_only_the_running_profile() {
        let names: Vec<String> = constants(CODE, "cpu").into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "CPU_DEPTH",
                "CPU_MODEL_DIM",
                "CPU_HEAD_DIM",
                "CPU_TOTAL_BATCH_TOKENS",
                "CPU_MATRIX_LR",
                "CPU_FULL_DEVICE_BATCH"
            ]
        );
        let gpu: Vec<String> = constants(CODE, "gpu").into_iter().map(|c| c.name).collect();
        assert_eq!(gpu, ["DEPTH", "MATRIX_LR"]);
    }

    #[test]
    fn changes_exactly_one_constant_and_is_reproducible() {
        let a = propose(&ctx(vec![])).unwrap();
        let b = propose(&ctx(vec![])).unwrap();
        assert_eq!(a, b);
        let changed: Vec<(&str, &str)> = CODE.lines().zip(a.code.lines()).filter(|(x, y)| x != y).collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert!(changed[0].0.starts_with("CPU_"), "only the cpu block changes: {changed:?}");
        assert!(a.description.starts_with("set CPU_"));
        assert!(!a.hypothesis.is_empty());
    }

    #[test]
    fn never_repeats_what_was_tried_from_the_parent_and_says_when_done() {
        let mut siblings: Vec<ExperimentRecord> = Vec::new();
        let mut seen = HashSet::new();
        loop {
            match propose(&ctx(siblings.clone())) {
                Ok(p) => {
                    assert!(seen.insert(p.description.clone()), "repeated {}", p.description);
                    let mut child = ctx(vec![]).parent;
                    child.description = p.description;
                    child.status = Status::Discard;
                    siblings.push(child);
                }
                Err(ProposeError::Exhausted(_)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // 4 LR values, depth ±1, width ×2 and ÷2, batch ×2 and ÷2.
        assert_eq!(seen.len(), 10, "{seen:?}");
        assert!(seen.contains("set CPU_MATRIX_LR from 0.003 to 0.0021"));
        assert!(seen.contains("set CPU_TOTAL_BATCH_TOKENS from 2**12 to 2**13"));
        assert!(!seen.iter().any(|d| d.contains("HEAD_DIM") || d.contains("FULL_DEVICE_BATCH")));
    }

    #[test]
    fn keeps_comments() {
        let c = ctx(vec![]);
        for attempt in 0..30 {
            let mut c = c.clone();
            c.siblings = vec![c.parent.clone(); attempt];
            let p = propose(&c).unwrap();
            if p.description.starts_with("set CPU_MATRIX_LR") {
                assert!(p.code.lines().any(|l| l.starts_with("CPU_MATRIX_LR = ") && l.ends_with("  # AdamW")));
                return;
            }
        }
        panic!("the LR was never chosen in 30 attempts");
    }
}

//! The context of a proposal and the prompts sent to an LLM, after the Python peer's agent
//! (§8.3 of the reference facts): the parent's state, what worked along its lineage, what failed
//! from it, what was already tried from it, insights from other branches, the frontier, and the
//! parent's code. Python's system prompt asks for the full file but its user prompt says "diff";
//! ours asks for the full file in both.

use spore_spec::{ExperimentRecord, Status};

/// Everything a proposer may look at.
#[derive(Debug, Clone)]
pub struct ProposalContext {
    pub parent: ExperimentRecord,
    /// The parent's complete `train.py`.
    pub parent_code: String,
    /// Keeps along the parent's lineage, parent first.
    pub improvements: Vec<ExperimentRecord>,
    /// Every child of the parent (any status), oldest first.
    pub siblings: Vec<ExperimentRecord>,
    /// Other frontier records with their lineage keeps: `(frontier record, keeps)`.
    pub branches: Vec<ExperimentRecord>,
    pub frontier: Vec<ExperimentRecord>,
    pub total_experiments: u64,
    pub best_val_bpb: Option<f64>,
    /// `gpu` or `cpu`: the hyperparameter block of `train.py` that runs here.
    pub profile: String,
    pub time_budget: u64,
}

/// The first 8 characters of a CID, as logs and prompts show it.
pub(crate) fn id8(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The system prompt.
pub fn system_prompt(time_budget: u64) -> String {
    format!(
        "You are an autonomous ML researcher. Your goal is to minimise val_bpb (validation bits per byte) by \
         editing train.py, the only file you may change. prepare.py (data, tokenizer, evaluation) is read-only. \
         Every run trains for a fixed budget of {time_budget} seconds, so faster convergence wins. Do not add \
         dependencies. Prefer simplicity: a removal that keeps quality is a win. Architecture, optimizer, \
         hyperparameters and batch size are all fair game.\n\n\
         Reply with exactly this shape:\n\
         Description: <one sentence: what you changed>\n\
         Hypothesis: <one sentence: why it should lower val_bpb>\n\
         ```python\n<the complete modified train.py>\n```"
    )
}

/// The user prompt: Markdown sections, empty ones left out.
pub fn user_prompt(ctx: &ProposalContext) -> String {
    let mut sections: Vec<String> = Vec::new();
    let parent_val = ctx.parent.val_bpb.as_f64();
    let mut state = format!(
        "## Current State\nParent val_bpb: {parent_val:.6}\nParent depth: {}\nTotal experiments: {}\n\
         Hardware profile: {}\nTime budget: {} s",
        ctx.parent.depth, ctx.total_experiments, ctx.profile, ctx.time_budget
    );
    if let Some(best) = ctx.best_val_bpb {
        state.push_str(&format!("\nBest val_bpb: {best:.6}"));
    }
    sections.push(state);
    let improvements: Vec<String> = ctx
        .improvements
        .iter()
        .take(5)
        .map(|r| {
            let delta = parent_val - r.val_bpb.as_f64();
            format!("- {} (val_bpb={:.6}, delta={delta:+.6})", r.description, r.val_bpb.as_f64())
        })
        .collect();
    if !improvements.is_empty() {
        sections.push(format!("## Recent Improvements (what worked)\n{}", improvements.join("\n")));
    }
    let failures: Vec<String> = ctx
        .siblings
        .iter()
        .filter(|r| r.status != Status::Keep)
        .take(5)
        .map(|r| format!("- [{}] {} (val_bpb={:.6})", r.status.as_str(), r.description, r.val_bpb.as_f64()))
        .collect();
    if !failures.is_empty() {
        sections.push(format!("## Recent Failures (what didn't work)\n{}", failures.join("\n")));
    }
    if !ctx.siblings.is_empty() {
        let tried: Vec<String> =
            ctx.siblings.iter().take(10).map(|r| format!("- [{}] {}", r.status.as_str(), r.description)).collect();
        sections.push(format!(
            "## Already Tried from This Parent ({} experiments)\n{}",
            ctx.siblings.len(),
            tried.join("\n")
        ));
    }
    let branches: Vec<String> = ctx
        .branches
        .iter()
        .take(10)
        .map(|r| format!("Branch {}: {} (val_bpb={:.6})", id8(&r.id), r.description, r.val_bpb.as_f64()))
        .collect();
    if !branches.is_empty() {
        sections.push(format!("## Insights from Other Branches\n{}", branches.join("\n")));
    }
    let frontier: Vec<String> = ctx
        .frontier
        .iter()
        .take(5)
        .map(|r| format!("  {}: val_bpb={:.6}, depth={}, gpu={}", id8(&r.id), r.val_bpb.as_f64(), r.depth, r.gpu_model))
        .collect();
    if !frontier.is_empty() {
        sections.push(format!("## Network Frontier\n{}", frontier.join("\n")));
    }
    sections.push(format!("## Current train.py\n```python\n{}\n```", ctx.parent_code.trim_end()));
    sections.push(
        "## Task\nPropose ONE modification to train.py that lowers val_bpb within the time budget. Give the \
         Description and Hypothesis lines, then the complete modified train.py in a ```python block."
            .to_string(),
    );
    sections.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::research::test_support::record;

    #[test]
    fn sections_in_order_and_empty_ones_left_out() {
        let parent = record("aaaaaaaa11", 1.5, Status::Keep, "parent");
        let mut ctx = ProposalContext {
            parent: parent.clone(),
            parent_code: "print('train')\n".into(),
            improvements: vec![],
            siblings: vec![],
            branches: vec![],
            frontier: vec![],
            total_experiments: 3,
            best_val_bpb: None,
            profile: "cpu".into(),
            time_budget: 20,
        };
        let prompt = user_prompt(&ctx);
        assert!(prompt.starts_with("## Current State\nParent val_bpb: 1.500000\nParent depth: 2\n"));
        assert!(!prompt.contains("## Recent Failures"));
        assert!(prompt.contains("## Current train.py\n```python\nprint('train')\n```\n\n## Task\n"));

        ctx.siblings = vec![record("bbbbbbbb22", 1.6, Status::Discard, "lr up"), record("c", 0.0, Status::Crash, "x")];
        ctx.improvements = vec![record("dddddddd", 1.4, Status::Keep, "deeper")];
        ctx.frontier = vec![parent];
        ctx.best_val_bpb = Some(1.4);
        let prompt = user_prompt(&ctx);
        let order = [
            "## Current State",
            "## Recent Improvements",
            "## Recent Failures",
            "## Already Tried from This Parent (2 experiments)",
            "## Network Frontier",
            "## Current train.py",
            "## Task",
        ];
        let positions: Vec<usize> = order.iter().map(|s| prompt.find(s).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{prompt}");
        assert!(prompt.contains("- deeper (val_bpb=1.400000, delta=+0.100000)"));
        assert!(prompt.contains("- [discard] lr up (val_bpb=1.600000)"));
        assert!(prompt.contains("  aaaaaaaa: val_bpb=1.500000, depth=2, gpu=cpu"));
        assert!(prompt.contains("Best val_bpb: 1.400000"));
    }
}

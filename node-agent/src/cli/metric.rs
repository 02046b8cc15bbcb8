//! Where a run's `val_bpb` comes from, shared by `spore run` and `spore exec`: the trusted
//! evaluator (`spore-eval`, default) or, as in Python, the value `train.py` prints.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};
use spore_agent::research::evaluator::{Evaluator, find_program};
use spore_agent::research::jail::Jail;
use spore_agent::research::local::Measure;
use spore_agent::research::workspace::{Contract, Workspace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    /// Measure the exported model with spore-eval on a validation split train.py cannot read.
    Evaluator,
    /// Trust the val_bpb that train.py prints (Python 0.1.2's behaviour; anyone can fake it).
    Reported,
}

#[derive(Debug, Args)]
pub struct MetricArgs {
    /// Where val_bpb comes from.
    #[arg(long, value_enum, default_value_t = Metric::Evaluator)]
    metric: Metric,
    /// The evaluator binary (default: spore-eval beside spore, else on PATH).
    #[arg(long, env = "SPORE_EVAL")]
    evaluator: Option<PathBuf>,
}

impl MetricArgs {
    /// The evaluator to probe the machine with, when the metric is measured.
    pub fn program(&self) -> Option<PathBuf> {
        (self.metric == Metric::Evaluator).then(|| find_program(self.evaluator.as_deref()))
    }

    /// How runs in `workspace` are measured; the evaluator runs in `jail` (the one `train.py`
    /// runs in: the model it loads comes from there).
    pub fn measure(&self, workspace: &Workspace, timeout: Duration, jail: Option<Jail>) -> anyhow::Result<Measure> {
        let Some(program) = self.program() else {
            tracing::warn!("--metric reported: records carry the val_bpb that train.py prints, unverified");
            return Ok(Measure::Reported);
        };
        if workspace.contract == Contract::Seed {
            tracing::warn!(
                "the workspace follows the seed's contract: records carry the val_bpb that train.py prints, \
                 unverified (as in Python)"
            );
            return Ok(Measure::Reported);
        }
        let Some(plan) = workspace.eval.clone() else {
            bail!("the workspace's prepare.py printed no evaluation plan");
        };
        if jail.is_none() {
            tracing::warn!("--unsandboxed: the model is measured by an evaluator that runs without the jail");
        }
        Ok(Measure::Evaluator(Box::new(Evaluator { program, plan, jail, timeout })))
    }
}

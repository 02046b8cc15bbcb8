//! Research: the runner, the research loop and the proposers — what `spore run` does besides
//! gossip. [`workspace`] holds the harness and baseline, [`local`] runs `train.py` through the
//! [`executor::Executor`] trait (in a [`jail`]), [`summary`] reads its result, [`evaluator`]
//! measures the exported model, [`parent`] and [`prompt`] decide
//! what to build on and what to ask, [`proposer`] produces the change, [`research_loop`] judges
//! (against the node's measured [`noise`]), signs and publishes, storing code and diffs in
//! [`artifacts`].

pub mod artifacts;
pub mod diff;
pub mod evaluator;
pub mod executor;
pub mod jail;
pub mod local;
pub mod noise;
pub mod parent;
mod parent_code;
pub mod patch;
pub mod progress;
pub mod prompt;
pub mod proposer;
pub mod research_loop;
pub mod summary;
pub mod task_scope;
#[cfg(test)]
mod test_support;
pub mod workspace;

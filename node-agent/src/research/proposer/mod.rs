//! Proposers: where the next `train.py` comes from. The built-in [`mutate`] proposer needs no
//! account and is the default; [`llm`] asks a configured LLM provider ([`config`]).

pub mod config;
pub mod llm;
pub mod mutate;
pub mod reply;

use thiserror::Error;

use super::prompt::ProposalContext;

/// A proposed child of a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The complete `train.py`.
    pub code: String,
    pub description: String,
    pub hypothesis: String,
}

#[derive(Debug, Error)]
pub enum ProposeError {
    /// The provider refused the key: nothing will work until it is changed.
    #[error("{0}")]
    Auth(String),
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot reach the LLM: {0}")]
    Connection(String),
    #[error("unusable reply: {0}")]
    Malformed(String),
    /// Nothing left to try from this parent.
    #[error("{0}")]
    Exhausted(String),
}

impl ProposeError {
    /// Errors after which asking again cannot help.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ProposeError::Auth(_))
    }
}

/// The proposer a node uses.
#[derive(Debug, Clone)]
pub enum Proposer {
    Mutator,
    Llm(Box<llm::LlmProposer>),
}

impl Proposer {
    /// The `agent_model` of the records it makes.
    pub fn agent_model(&self) -> String {
        match self {
            Proposer::Mutator => mutate::AGENT_MODEL.to_string(),
            Proposer::Llm(llm) => llm.agent_model(),
        }
    }

    pub async fn propose(&self, ctx: &ProposalContext) -> Result<Proposal, ProposeError> {
        match self {
            Proposer::Mutator => mutate::propose(ctx),
            Proposer::Llm(llm) => llm.propose(ctx).await,
        }
    }
}

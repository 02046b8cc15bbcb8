//! Verification that a dishonest node cannot game, as pure rules (no sockets, clocks or
//! randomness of their own), so a simulation and the node share them:
//!
//! * [`tolerance`]: how far a re-run may land from a claim, per GPU class
//!   ([`spore_spec::gpu_class`]), widened by the noise a node measured on its own class;
//! * [`sampling`]: which incoming records a node re-runs;
//! * [`dispute`]: a challenge's verdict, recomputed by anyone from the signed events;
//! * [`reputation`]: research reputation, each event counted once, decaying over time;
//! * [`standing`]: whose votes count in a dispute (anchors, and work they confirmed);
//! * [`service`]: the node's verifier, which applies them to the records and events it holds.

pub mod dispute;
pub mod reputation;
pub mod sampling;
pub mod service;
pub mod standing;
pub mod tolerance;

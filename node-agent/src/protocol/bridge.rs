//! The bridge between a lab and the public mesh (`spore run --public-peer`): connections we
//! dial to a configured public peer are *public*, every other connection belongs to the lab.
//! Inside the lab records flow freely; across the bridge they pass the export and import
//! policies and per-peer limits:
//!
//! * export `none` (nothing leaves the lab), `own` (records this lab produced: everything not
//!   imported from a public peer), `all`;
//! * import `all`, `frontier` (only `keep` records — the only ones that can be on a frontier;
//!   the kept lineage comes with them, so imported frontier records have their ancestors, and
//!   the public mesh's discards and crashes stay out), `none`;
//! * at most `records_per_second` records (burst: ten seconds' worth) and `max_record_bytes`
//!   per record from each public peer; the excess is dropped, never punished.
//!
//! Public peers learn no lab addresses (their `pex_request` gets an empty list), their own PEX
//! answers are ignored (the bridge talks to the peers it was given, nobody else), and lab peers
//! are never told public addresses. What was imported is remembered in the store, so `own`
//! holds across restarts and for sync answers.

use std::str::FromStr;

use spore_spec::{ExperimentRecord, Status};

use super::refusal::RecordRefusal;
use super::{PeerId, Protocol};

/// Which records go to public peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    None,
    Own,
    All,
}

/// Which public records come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    All,
    Frontier,
    None,
}

impl FromStr for Export {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(Export::None),
            "own" => Ok(Export::Own),
            "all" => Ok(Export::All),
            _ => Err(format!("{text:?}: the export policy is none, own or all")),
        }
    }
}

impl FromStr for Import {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(Import::All),
            "frontier" => Ok(Import::Frontier),
            "none" => Ok(Import::None),
            _ => Err(format!("{text:?}: the import policy is all, frontier or none")),
        }
    }
}

/// The bridge's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgePolicy {
    /// `host:port` of each public peer, as dialed.
    pub public_peers: Vec<String>,
    pub export: Export,
    pub import: Import,
    /// Records accepted per second from one public peer.
    pub records_per_second: f64,
    /// Largest record (its JSON payload) accepted from a public peer.
    pub max_record_bytes: usize,
}

impl Default for BridgePolicy {
    fn default() -> Self {
        BridgePolicy {
            public_peers: Vec::new(),
            export: Export::Own,
            import: Import::All,
            records_per_second: 100.0,
            max_record_bytes: 256 * 1024,
        }
    }
}

impl Protocol {
    /// Whether `peer` is a public peer of the bridge.
    pub(super) fn is_public(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.public)
    }

    fn bridge_import(&self) -> Import {
        self.config.bridge.as_ref().map_or(Import::All, |b| b.import)
    }

    fn bridge_export(&self) -> Export {
        self.config.bridge.as_ref().map_or(Export::All, |b| b.export)
    }

    /// Whether we ask `peer` for records at all (syncs, orphans' parents, code).
    pub(super) fn may_ask(&self, peer: PeerId) -> bool {
        !self.is_public(peer) || self.bridge_import() != Import::None
    }

    /// Whether anything at all goes to `peer` (control events, code).
    pub(super) fn may_tell(&self, peer: PeerId) -> bool {
        !self.is_public(peer) || self.bridge_export() != Export::None
    }

    /// Whether a record goes to `peer`; `imported` says it came from a public peer.
    pub(super) fn may_export(&self, peer: PeerId, imported: bool) -> bool {
        if !self.is_public(peer) {
            return true;
        }
        match self.bridge_export() {
            Export::None => false,
            Export::Own => !imported,
            Export::All => true,
        }
    }

    /// Whether a record from `peer` comes in, charging the peer's record budget. A refusal is
    /// policy, not misbehaviour: it is counted and dropped.
    pub(super) fn may_import(&mut self, peer: PeerId, record: &ExperimentRecord, payload_bytes: usize) -> bool {
        let Some(bridge) = self.config.bridge.as_ref() else { return true };
        let now = self.now;
        let Some(state) = self.peers.get_mut(&peer).filter(|p| p.public) else { return true };
        let allowed = match bridge.import {
            Import::All => true,
            Import::Frontier => record.status == Status::Keep,
            Import::None => false,
        };
        let refusal = if !allowed {
            RecordRefusal::ImportPolicy
        } else if payload_bytes > bridge.max_record_bytes {
            RecordRefusal::TooLarge
        } else if !state.imports.take(1.0, now) {
            RecordRefusal::RateLimited
        } else {
            return true;
        };
        self.stats.records_not_imported += 1;
        self.stats.refuse_record(refusal);
        false
    }
}

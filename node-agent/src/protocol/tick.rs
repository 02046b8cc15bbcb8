//! The clock's tick: the store probe and quota, due dials, the hello wait of Python peers,
//! resyncs, keepalive and idle timeouts, orphan fetches, and the expiry of bans, stalled syncs,
//! code waits and wanted ids.

use super::*;

impl Protocol {
    pub(super) fn on_tick(&mut self) -> Result<(), StoreError> {
        self.probe_store();
        self.check_quota();
        let now = self.now;
        // Redial and PEX-learned dials that are due.
        let outbound = self.peers.values().filter(|p| matches!(p.direction, Direction::Outbound { .. })).count();
        let mut budget = self.config.max_outbound.saturating_sub(outbound);
        let due: Vec<String> = self
            .dial_book
            .iter()
            .filter(|(_, t)| !t.connected && t.next_attempt <= now)
            .map(|(a, _)| a.clone())
            .collect();
        for address in due {
            let Some(target) = self.dial_book.get_mut(&address) else { continue };
            if !target.persistent && budget == 0 {
                continue;
            }
            budget = budget.saturating_sub(1);
            target.connected = true; // until the driver reports the outcome
            target.next_attempt = now + target.backoff;
            self.actions.push(Action::Dial { address });
        }
        // Peers that never said hello get the 0.1.2 full sync once the wait is over.
        let hello_wait = self.config.hello_wait.as_millis() as Millis;
        let waiting: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                matches!(p.direction, Direction::Outbound { .. })
                    && p.sync_requested_at.is_none()
                    && now.saturating_sub(p.connected_at) >= hello_wait
            })
            .map(|(id, _)| *id)
            .filter(|id| self.may_ask(*id))
            .collect();
        // While ingest is paused nothing is asked for: it could not be stored.
        let paused = self.ingest_paused();
        for peer in waiting.into_iter().filter(|_| !paused) {
            self.request_sync(peer)?;
        }
        // Python peers, either way, are asked what tells their release (see `releases.rs`).
        let python: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.closing && !p.release_probed && p.hello.is_none() && now.saturating_sub(p.connected_at) >= hello_wait
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in python {
            self.probe_release(peer)?;
        }
        // Anti-entropy with our own peers: a cheap cursor sync now and then catches whatever a
        // dropped connection lost in flight.
        let resync = self.config.resync_interval.as_millis() as Millis;
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                !p.closing
                    && p.has_capability("sync-seq")
                    && p.sync_requested_at.is_some_and(|at| now.saturating_sub(at) >= resync)
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in stale.into_iter().filter(|_| !paused) {
            self.request_sync(peer)?;
        }
        // Keepalive.
        let ping = self.config.ping_interval;
        let idle = self.config.idle_timeout;
        let mut to_ping = Vec::new();
        let mut to_drop = Vec::new();
        for (id, state) in &self.peers {
            if state.silent_for(now) >= idle {
                to_drop.push(*id);
            } else if state.silent_for(now) >= ping
                && now.saturating_sub(state.last_ping_sent) >= ping.as_millis() as Millis
            {
                to_ping.push(*id);
            }
        }
        for peer in to_ping {
            if let Some(state) = self.peers.get_mut(&peer) {
                state.last_ping_sent = now;
            }
            self.send(peer, &Message::Ping);
        }
        for peer in to_drop {
            self.disconnect(peer, "idle timeout");
        }
        if !paused
            && now.saturating_sub(self.last_orphan_fetch) >= self.config.orphan_fetch_interval.as_millis() as Millis
        {
            self.last_orphan_fetch = now;
            self.fetch_missing_parents(None)?;
        }
        self.banned.retain(|_, until| *until > now);
        self.end_stalled_syncs()?;
        let code_wait = self.config.code_wait.as_millis() as Millis;
        self.code_wanted.retain(|_, asked| now.saturating_sub(*asked) < code_wait);
        self.expire_wanted();
        self.ask_deferred();
        self.flush()
    }
}

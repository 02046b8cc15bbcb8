//! Peer tables an attacker cannot grow or steer: one address holds a few inbound slots, PEX
//! from a public peer never points inward, the learned part of the dial book is bounded, and
//! slow readers cannot hold the sync slots.

use std::net::SocketAddr;

use super::*;

fn connect_from(core: &mut Protocol, peer: PeerId, remote: SocketAddr, direction: Direction) -> Vec<Action> {
    core.handle(Event::Connected { peer, remote, direction }, 1_000, 0)
}

#[test]
fn one_address_holds_a_few_inbound_slots_but_loopback_is_exempt() {
    let mut core = core(ProtocolConfig { max_inbound_per_ip: 3, ..ProtocolConfig::default() });
    let attacker = |port| SocketAddr::from(([203, 0, 113, 50], port));
    for peer in 1..=3 {
        assert!(!disconnected(&connect_from(&mut core, peer, attacker(50_000 + peer as u16), Direction::Inbound)));
    }
    let refused = connect_from(&mut core, 4, attacker(50_004), Direction::Inbound);
    assert!(disconnected(&refused), "a fourth connection from one address is refused");
    // Another address still gets in, and so does loopback (local tools), however many.
    let other = SocketAddr::from(([198, 51, 100, 1], 7000));
    assert!(!disconnected(&connect_from(&mut core, 5, other, Direction::Inbound)));
    for peer in 6..=12 {
        let local = SocketAddr::from(([127, 0, 0, 1], 40_000 + peer as u16));
        assert!(!disconnected(&connect_from(&mut core, peer, local, Direction::Inbound)));
    }
}

#[test]
fn a_public_peer_cannot_steer_dials_inward_and_learned_addresses_are_bounded() {
    let mut core = core(ProtocolConfig { max_dial_book: 5, max_outbound: 64, ..ProtocolConfig::default() });
    let public = SocketAddr::from(([100, 128, 0, 7], 7470));
    connect_from(&mut core, 1, public, Direction::Outbound { dialed: "100.128.0.7:7470".into() });
    let mut offered: Vec<String> =
        ["127.0.0.1:22", "10.0.0.1:7470", "169.254.169.254:80", "internal.lab:7470"].map(String::from).to_vec();
    offered.extend((1..=20).map(|i| format!("100.129.0.{i}:7470")));
    on(&mut core, 1, frame(&Message::PexResponse { peer: offered }));
    let dialed = dials(&core.handle(Event::Tick, 2_000, 0));
    assert_eq!(dialed.len(), 5, "the learned part of the dial book is bounded: {dialed:?}");
    assert!(dialed.iter().all(|a| a.starts_with("100.129.0.")), "only global addresses: {dialed:?}");
}

#[test]
fn a_full_house_makes_room_for_a_less_represented_network() {
    let mut core = core(ProtocolConfig { max_inbound: 3, ..ProtocolConfig::default() });
    for (peer, last) in [(1, 1), (2, 2), (3, 3)] {
        connect_from(&mut core, peer, SocketAddr::from(([100, 128, 0, last], 40_000)), Direction::Inbound);
    }
    // Peer 2 has been useful: it gave us a record.
    on(&mut core, 2, frame(&Message::Experiment(Box::new(record(1)))));
    // A newcomer from another network: the crowded network's least useful, youngest peer goes.
    let actions = connect_from(&mut core, 4, SocketAddr::from(([100, 200, 0, 1], 40_000)), Direction::Inbound);
    let closed: Vec<PeerId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Disconnect { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![3], "{actions:?}");
    // One more from the crowded network is refused: its network already holds the most.
    let refused = connect_from(&mut core, 5, SocketAddr::from(([100, 128, 0, 9], 40_000)), Direction::Inbound);
    assert!(refused.iter().any(|a| matches!(a, Action::Disconnect { peer: 5, .. })), "{refused:?}");
    assert!(!refused.iter().any(|a| matches!(a, Action::Disconnect { peer: 1 | 2 | 4, .. })));
}

#[test]
fn one_network_cannot_fill_the_dial_book_against_the_others() {
    // Both outbound slots taken: learned addresses wait in the book.
    let mut core = core(ProtocolConfig { max_dial_book: 6, max_outbound: 2, ..ProtocolConfig::default() });
    let flooder = SocketAddr::from(([100, 128, 0, 7], 7470));
    let honest = SocketAddr::from(([100, 200, 0, 9], 7470));
    connect_from(&mut core, 1, flooder, Direction::Outbound { dialed: "100.128.0.7:7470".into() });
    connect_from(&mut core, 2, honest, Direction::Outbound { dialed: "100.200.0.9:7470".into() });
    let waiting = |core: &Protocol, prefix: &str| {
        core.dial_book.iter().filter(|(a, t)| !t.persistent && a.starts_with(prefix)).count()
    };
    let offer =
        |prefix: &str, n: usize| Message::PexResponse { peer: (1..=n).map(|i| format!("{prefix}{i}:7470")).collect() };
    on(&mut core, 1, frame(&offer("100.129.0.", 20)));
    assert_eq!(waiting(&core, "100.129.0."), 6, "the flood fills an empty book");
    // The honest peer's addresses get in, each pushing out one of the flood's...
    on(&mut core, 2, frame(&offer("100.201.0.", 3)));
    assert_eq!((waiting(&core, "100.129.0."), waiting(&core, "100.201.0.")), (3, 3));
    // ...and more of the flood cannot push them out again (the answer is its own new request).
    core.peers.get_mut(&1).unwrap().pex_asked = true;
    on(&mut core, 1, frame(&offer("100.129.1.", 5)));
    assert_eq!(waiting(&core, "100.201.0."), 3, "the honest share stays");
    assert_eq!(waiting(&core, "100.129."), 3);
}

#[test]
fn readers_that_stall_lose_their_sync_slot_to_the_next_in_line() {
    let config = ProtocolConfig { sync_batch: 1, max_concurrent_sync_serves: 1, ..ProtocolConfig::default() };
    let mut core = core(config);
    connect(&mut core, 9, Direction::Inbound);
    for n in 0..3 {
        on(&mut core, 9, frame(&Message::Experiment(Box::new(record(n)))));
    }
    connect(&mut core, 1, Direction::Inbound);
    connect(&mut core, 2, Direction::Inbound);
    let request = Message::SyncRequest { since: JsonNumber::from(0), after_seq: None };
    let first = on(&mut core, 1, frame(&request));
    assert_eq!(sent_to(&first).iter().filter(|(p, t)| *p == 1 && t == "experiment").count(), 1);
    // The only slot is taken: the second asker waits.
    assert!(sent_to(&on(&mut core, 2, frame(&request))).iter().all(|(_, t)| t != "experiment"));
    // The first never reads its page: after the stall limit it is dropped, the second served.
    let later = core.handle(Event::Tick, 1_000 + 31_000, 1_773_100_000);
    assert!(later.iter().any(|a| matches!(a, Action::Disconnect { peer: 1, .. })), "{later:?}");
    assert!(sent_to(&later).iter().any(|(p, t)| *p == 2 && t == "experiment"), "{later:?}");
    assert_eq!(core.stats().syncs_stalled, 1);
}

//! Unit tests of the protocol core, event by event.

use std::net::SocketAddr;

use bytes::Bytes;
use spore_spec::{ExperimentRecord, Identity, JsonNumber, Message};

use super::{Action, Direction, Event, PeerId, Protocol, ProtocolConfig};
use crate::store::DagStore;

mod announce;
mod answers;
mod auth;
mod control_caps;
mod control_sync;
mod peer_tables;
mod store_pause;
mod tasks;

fn core(config: ProtocolConfig) -> Protocol {
    Protocol::new(config, Identity::from_seed([1; 32]), 7470, DagStore::open_in_memory().unwrap())
}

fn remote(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn record(n: i64) -> ExperimentRecord {
    let mut r = spore_tests::records::record(n);
    r.num_steps = JsonNumber::from(n);
    Identity::from_seed([2; 32]).sign_record(&mut r);
    r
}

fn frame(message: &Message) -> Event {
    Event::Frame { peer: 0, body: Bytes::from(message.encode_body()) }
}

fn on(core: &mut Protocol, peer: PeerId, event: Event) -> Vec<Action> {
    let event = match event {
        Event::Frame { body, .. } => Event::Frame { peer, body },
        other => other,
    };
    let mut actions = core.handle(event, 1_000, 1_773_100_000);
    actions.extend(core.handle(Event::Idle, 1_000, 1_773_100_000));
    actions
}

fn connect(core: &mut Protocol, peer: PeerId, direction: Direction) {
    core.handle(Event::Connected { peer, remote: remote(40_000 + peer as u16), direction }, 1_000, 0);
}

fn sent_to(actions: &[Action]) -> Vec<(PeerId, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { peer, body } => Some((*peer, Message::decode(body).unwrap().message_type().to_string())),
            _ => None,
        })
        .collect()
}

/// A `hello` from node id `node` repeated, with these capabilities.
fn hello_with(node: u8, capabilities: &[&str]) -> Message {
    Message::Hello {
        node_id: format!("{node:02x}").repeat(32),
        listen_port: 7470,
        capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        agent: "spore-rs".into(),
        nonce: None,
    }
}

/// The addresses the core asked the driver to dial.
fn dials(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dial { address } => Some(address.clone()),
            _ => None,
        })
        .collect()
}

fn disconnected(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Disconnect { .. }))
}

#[test]
fn a_new_record_is_stored_then_relayed_to_every_peer_but_its_source() {
    let mut core = core(ProtocolConfig::default());
    for peer in 1..=3 {
        connect(&mut core, peer, Direction::Inbound);
    }
    let actions = on(&mut core, 1, frame(&Message::Experiment(Box::new(record(1)))));
    assert_eq!(sent_to(&actions), vec![(2, "experiment".into()), (3, "experiment".into())]);
    assert_eq!(core.store().counts().unwrap().total, 1);
    let again = on(&mut core, 2, frame(&Message::Experiment(Box::new(record(1)))));
    assert!(sent_to(&again).is_empty(), "a duplicate is not relayed");
    assert_eq!(core.stats().records_duplicate, 1);
}

/// The messages sent to `peer`, decoded.
fn messages_to(actions: &[Action], to: PeerId) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { peer, body } if *peer == to => Message::decode(body).ok(),
            _ => None,
        })
        .collect()
}

/// The records sent to `peer`.
fn records_sent_to(actions: &[Action], to: PeerId) -> Vec<ExperimentRecord> {
    messages_to(actions, to)
        .into_iter()
        .filter_map(|m| match m {
            Message::Experiment(record) => Some(*record),
            _ => None,
        })
        .collect()
}

#[test]
fn records_with_task_ids_are_kept_and_a_0_1_2_peer_gets_only_what_it_can_take() {
    let mut core = core(ProtocolConfig::default());
    for peer in 1..=3 {
        connect(&mut core, peer, Direction::Inbound);
    }
    // Peer 2 is one of our nodes, which take task ids; peer 3 may be a 0.1.2 node.
    on(&mut core, 2, frame(&hello_with(2, &["task_id"])));
    let task = |n: i64, version: i64| {
        let mut r = record(n);
        r.task_id = Some("7".repeat(64));
        r.version = JsonNumber::from(version);
        Identity::from_seed([2; 32]).sign_record(&mut r);
        r
    };
    let (stamped, signed) = (task(1, 1), task(2, 2));
    let first = on(&mut core, 1, frame(&Message::Experiment(Box::new(stamped.clone()))));
    assert_eq!(records_sent_to(&first, 2), std::slice::from_ref(&stamped), "as it came");
    let older = records_sent_to(&first, 3);
    assert_eq!((older.len(), older[0].task_id.clone(), older[0].id.clone()), (1, None, stamped.id.clone()));
    let second = on(&mut core, 1, frame(&Message::Experiment(Box::new(signed.clone()))));
    assert_eq!(records_sent_to(&second, 2), std::slice::from_ref(&signed));
    assert!(records_sent_to(&second, 3).is_empty(), "its CID needs the task id");
    assert_eq!(core.stats().withheld_task_records, 1);
    assert_eq!((core.stats().records_accepted, core.stats().records_rejected), (2, 0));
    assert!(core.peers().all(|(_, p)| p.misbehaviour == 0));
    // Asked for it by id, the 0.1.2 peer gets the version-1 record without the task id too.
    let asked = on(&mut core, 3, frame(&Message::GetRecords { ids: vec![stamped.id.clone(), signed.id.clone()] }));
    let answered = records_sent_to(&asked, 3);
    assert_eq!((answered.len(), answered[0].task_id.clone()), (1, None));
}

#[test]
fn forged_records_cost_points_until_the_peer_is_dropped() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    let mut forged = record(1);
    forged.val_bpb = JsonNumber::Float(0.5);
    let mut dropped_at = None;
    for i in 1..=10 {
        forged.num_steps = JsonNumber::from(i);
        let actions = on(&mut core, 1, frame(&Message::Experiment(Box::new(forged.clone()))));
        if disconnected(&actions) {
            dropped_at = Some(i);
            break;
        }
    }
    assert_eq!(dropped_at, Some(5), "20 points each, ban score 100");
    assert_eq!(core.store().counts().unwrap().total, 0);
}

#[test]
fn garbage_ends_the_connection_at_once() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    let actions = on(&mut core, 1, Event::Frame { peer: 1, body: Bytes::from_static(b"not json") });
    assert!(disconnected(&actions));
    let after = on(&mut core, 1, frame(&Message::Ping));
    assert!(sent_to(&after).is_empty(), "nothing more is answered on a closing connection");
    // Its address (not loopback) is refused for a while.
    core.handle(Event::Disconnected { peer: 1 }, 1_000, 0);
    let again =
        core.handle(Event::Connected { peer: 2, remote: remote(50_000), direction: Direction::Inbound }, 2_000, 0);
    assert!(disconnected(&again), "a discouraged address is turned away");
}

#[test]
fn pex_advertises_only_addresses_that_can_be_dialed() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound); // never says hello: its port is ephemeral
    connect(&mut core, 2, Direction::Outbound { dialed: "peer.example:7470".into() });
    connect(&mut core, 3, Direction::Inbound);
    let hello = Message::Hello {
        node_id: "ab".repeat(32),
        listen_port: 9000,
        capabilities: vec![],
        agent: "x".into(),
        nonce: None,
    };
    on(&mut core, 3, frame(&hello));
    let actions = on(&mut core, 1, frame(&Message::PexRequest));
    let Some(Action::Send { body, .. }) = actions.iter().find(|a| matches!(a, Action::Send { peer: 1, .. })) else {
        panic!("no pex_response")
    };
    let Message::PexResponse { peer } = Message::decode(body).unwrap() else { panic!("not a pex_response") };
    assert_eq!(peer, vec!["peer.example:7470".to_string(), "10.0.0.1:9000".to_string()]);
}

#[test]
fn sync_requests_fit_the_peer_and_answers_follow_the_drain() {
    let config = ProtocolConfig { sync_batch: 2, ..ProtocolConfig::default() };
    let mut core = core(config);
    for n in 0..5 {
        let r = record(n);
        let mut payload = Vec::new();
        r.write_wire_payload(&mut payload);
        let stored = crate::store::StoredRecord {
            record: r,
            payload: String::from_utf8(payload).unwrap(),
            flags: vec![],
            received_at: 0,
        };
        core.handle(Event::Publish(Box::new(stored)), 0, 1_773_100_000);
    }
    // A 0.1.2 peer we dialed says no hello: after the wait it is asked for everything.
    connect(&mut core, 1, Direction::Outbound { dialed: "10.0.0.1:7470".into() });
    let actions = core.handle(Event::Tick, 1_600, 1_773_100_000);
    let request = actions.iter().find_map(|a| match a {
        Action::Send { peer: 1, body } => Message::decode(body).ok().filter(|m| m.message_type() == "sync_request"),
        _ => None,
    });
    assert_eq!(request, Some(Message::SyncRequest { since: JsonNumber::from(0), after_seq: None }));

    // Its own request is answered two records at a time, each page after the previous drained.
    let request = Message::SyncRequest { since: JsonNumber::from(0), after_seq: None };
    let first = on(&mut core, 1, frame(&request));
    assert_eq!(sent_to(&first).iter().filter(|(_, t)| t == "experiment").count(), 2);
    let second = on(&mut core, 1, Event::Drained { peer: 1, written: u64::MAX, bytes: u64::MAX });
    assert_eq!(sent_to(&second).iter().filter(|(_, t)| t == "experiment").count(), 2);
    let third = on(&mut core, 1, Event::Drained { peer: 1, written: u64::MAX, bytes: u64::MAX });
    assert_eq!(sent_to(&third).iter().filter(|(_, t)| t == "experiment").count(), 1);
    let last = on(&mut core, 1, Event::Drained { peer: 1, written: u64::MAX, bytes: u64::MAX });
    let end = last.iter().find_map(|a| match a {
        Action::Send { body, .. } => Message::decode(body).ok(),
        _ => None,
    });
    assert_eq!(end, Some(Message::SyncResponse { since: JsonNumber::from(0), count: 5, last_seq: Some(5) }));

    // A peer of ours is asked only for what it stored after the cursor it gave us.
    connect(&mut core, 2, Direction::Outbound { dialed: "10.0.0.2:7470".into() });
    let hello = hello_with(0xcd, &["sync-seq"]);
    core.store().set_sync_cursor(&"cd".repeat(32), 42).unwrap();
    let actions = on(&mut core, 2, frame(&hello));
    let request = actions.iter().find_map(|a| match a {
        Action::Send { peer: 2, body } => Message::decode(body).ok().filter(|m| m.message_type() == "sync_request"),
        _ => None,
    });
    assert_eq!(request, Some(Message::SyncRequest { since: JsonNumber::from(0), after_seq: Some(42) }));
}

#[test]
fn connecting_to_ourselves_is_detected() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Outbound { dialed: "10.0.0.9:7470".into() });
    let hello = Message::Hello {
        node_id: core.node_id().to_string(),
        listen_port: 7470,
        capabilities: vec![],
        agent: "x".into(),
        nonce: None,
    };
    assert!(disconnected(&on(&mut core, 1, frame(&hello))));
}

#[test]
fn peers_of_ours_are_asked_again_after_the_resync_interval() {
    let config = ProtocolConfig::default();
    let resync = config.resync_interval.as_millis() as u64;
    let mut core = core(config);
    connect(&mut core, 1, Direction::Inbound);
    let hello = hello_with(0xef, &["sync-seq"]);
    let asks = |actions: &[Action]| sent_to(actions).iter().filter(|(_, t)| t == "sync_request").count();
    assert_eq!(asks(&on(&mut core, 1, frame(&hello))), 1, "an inbound peer of ours is asked too");
    let early = core.handle(Event::Tick, 1_000 + resync - 1, 1_773_100_000);
    assert_eq!(asks(&early), 0);
    let due = core.handle(Event::Tick, 1_000 + resync, 1_773_100_000);
    assert_eq!(asks(&due), 1, "anti-entropy: asked again for what it stored since");
}

#[test]
fn removing_a_dial_target_closes_its_connection_and_stops_redials() {
    let mut core = core(ProtocolConfig::default());
    core.add_dial_target("10.0.0.5:7470", true);
    connect(&mut core, 1, Direction::Outbound { dialed: "10.0.0.5:7470".into() });
    connect(&mut core, 2, Direction::Outbound { dialed: "10.0.0.6:7470".into() });
    core.handle(Event::Idle, 1_000, 0);
    assert!(core.remove_dial_target("10.0.0.5:7470"));
    let actions = core.take_actions();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(matches!(&actions[0], Action::Disconnect { peer: 1, .. }));
    // Closed and forgotten: no dial to it however long we wait, and a second removal is a no-op.
    core.handle(Event::Disconnected { peer: 1 }, 1_000, 0);
    let later = core.handle(Event::Tick, 10_000_000, 0);
    assert!(!later.iter().any(|a| matches!(a, Action::Dial { address } if address == "10.0.0.5:7470")), "{later:?}");
    assert!(!core.remove_dial_target("10.0.0.5:7470"));
    assert!(!core.remove_dial_target("10.0.0.7:7470"));
}

#[test]
fn events_in_0_3_10_s_native_form_are_taken_and_each_peer_gets_the_form_it_reads() {
    use spore_spec::ControlEvent;
    let mut core = core(ProtocolConfig::default());
    for peer in 1..=3 {
        connect(&mut core, peer, Direction::Inbound);
    }
    let challenger = Identity::from_seed([3; 32]);
    let (exp, other) = ("e".repeat(64), "f".repeat(64));
    // Peer 1 is a Python 0.3.10+ node: its challenge (the payload is the envelope) is stored,
    // not punished, and relayed in our form to the others.
    let native = ControlEvent::challenge(&challenger, &exp, 1.2, "H100", 1_773_100_000);
    let actions = on(&mut core, 1, frame(&Message::Control(Box::new(native.clone()))));
    assert_eq!(sent_to(&actions), vec![(2, "challenge".into()), (3, "challenge".into())]);
    assert_eq!(core.store().controls_for(&exp).unwrap(), vec![native]);
    assert!(core.peers().all(|(_, p)| p.misbehaviour == 0));
    // An event from elsewhere reaches peer 1 in its own form, and peer 3 in ours.
    let verification = ControlEvent::verification(&challenger, &other, &"p".repeat(64), 1.0, "H100", 7);
    let actions = on(&mut core, 2, frame(&Message::Signed(Box::new(verification))));
    let mut forms: Vec<(PeerId, bool)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { peer, body } => Some((*peer, matches!(Message::decode(body), Ok(Message::Control(_))))),
            _ => None,
        })
        .collect();
    forms.sort_unstable();
    assert_eq!(forms, vec![(1, true), (3, false)]);
}

#[test]
fn signed_control_events_are_stored_once_and_relayed_forgeries_punished_hints_ignored() {
    use spore_spec::ControlEvent;
    use spore_spec::message::DisputeOutcome;
    let mut core = core(ProtocolConfig::default());
    for peer in 1..=3 {
        connect(&mut core, peer, Direction::Inbound);
    }
    let challenger = Identity::from_seed([3; 32]);
    let exp = "e".repeat(64);
    let challenge = ControlEvent::challenge(&challenger, &exp, 1.2, "H100", 1_773_100_000);
    let actions = on(&mut core, 1, frame(&Message::Signed(Box::new(challenge.clone()))));
    assert_eq!(sent_to(&actions), vec![(2, "challenge".into()), (3, "challenge".into())]);
    assert_eq!(core.store().controls_for(&exp).unwrap(), vec![challenge.clone()]);
    // The same event again, and a second challenge by the same actor: stored once, not relayed.
    assert!(sent_to(&on(&mut core, 2, frame(&Message::Signed(Box::new(challenge.clone()))))).is_empty());
    let second = ControlEvent::challenge(&challenger, &exp, 1.3, "H100", 1_773_100_001);
    assert!(sent_to(&on(&mut core, 2, frame(&Message::Signed(Box::new(second))))).is_empty());
    assert_eq!(core.store().control_count().unwrap(), 1);
    assert_eq!(core.stats().controls_duplicate, 2);

    // A forgery (the number changed after signing) is dropped and costs the sender.
    let mut forged = ControlEvent::response(&challenger, &exp, &challenger.node_id(), 1.0, "H100", 5);
    forged.payload.iter_mut().find(|(k, _)| k == "verifier_id").unwrap().1 =
        spore_spec::json::Value::String(Identity::from_seed([4; 32]).node_id());
    let actions = on(&mut core, 3, frame(&Message::Signed(Box::new(forged))));
    assert!(sent_to(&actions).is_empty());
    assert_eq!(core.stats().controls_rejected, 1);
    assert!(core.peers().any(|(p, s)| *p == 3 && s.misbehaviour > 0));

    // An unsigned 0.1.2 dispute: no store, no relay, no punishment.
    let hint = Message::Dispute {
        experiment_id: exp.clone(),
        challenger_id: challenger.node_id(),
        challenger_bpb: JsonNumber::from(9.0),
        outcome: DisputeOutcome::Rejected,
        ground_truth_bpb: JsonNumber::from(9.0),
        verifier_count: JsonNumber::from(3),
    };
    assert!(sent_to(&on(&mut core, 1, frame(&hint))).is_empty());
    assert_eq!((core.store().control_count().unwrap(), core.stats().control_hints), (1, 1));
    assert!(core.peers().any(|(p, s)| *p == 1 && s.misbehaviour == 0));

    // This node's own event goes to every peer.
    let own = ControlEvent::response(&Identity::from_seed([1; 32]), &exp, &challenger.node_id(), 1.0, "H100", 6);
    let actions = core.handle(Event::PublishControl(Box::new(own)), 1_000, 1_773_100_000);
    assert_eq!(sent_to(&actions).len(), 3);
}

#[test]
fn code_is_served_when_present_and_stored_only_when_it_hashes_to_its_cid() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use crate::research::artifacts::{ArtifactStore, cid_of};
    let dir = tempfile::tempdir().unwrap();
    let (mine, theirs) = (dir.path().join("a"), dir.path().join("b"));
    let mut core = core(ProtocolConfig::default()).with_artifacts(ArtifactStore::new(&mine));
    for peer in 1..=2 {
        connect(&mut core, peer, Direction::Inbound);
    }
    let code = b"print('train')\n";
    let cid = cid_of(code);
    // Asking while absent: the request goes to every peer; nobody answers "no".
    let asked = core.handle(Event::FetchCode(cid.clone()), 1_000, 0);
    assert_eq!(sent_to(&asked), vec![(1, "code_request".into()), (2, "code_request".into())]);
    assert!(sent_to(&on(&mut core, 1, frame(&Message::CodeRequest { code_cid: cid.clone() }))).is_empty());

    // Code that is not what its CID says: refused, and the sender pays.
    let lie = Message::CodeResponse { code_cid: cid.clone(), code: STANDARD.encode(b"print('evil')\n") };
    on(&mut core, 2, frame(&lie));
    assert!(!ArtifactStore::new(&mine).contains(&cid));
    assert!(core.peers().any(|(p, s)| *p == 2 && s.misbehaviour > 0));
    // The real code is stored, then served to whoever asks.
    on(&mut core, 1, frame(&Message::CodeResponse { code_cid: cid.clone(), code: STANDARD.encode(code) }));
    assert_eq!(ArtifactStore::new(&mine).get(&cid).unwrap().unwrap(), code);
    assert_eq!(core.stats().code_fetched, 1);
    let served = on(&mut core, 2, frame(&Message::CodeRequest { code_cid: cid.clone() }));
    let Some(Action::Send { body, .. }) = served.first() else { panic!("no answer") };
    let Message::CodeResponse { code: sent, .. } = Message::decode(body).unwrap() else { panic!("not code") };
    assert_eq!(STANDARD.decode(sent).unwrap(), code);
    // Another store, another node: nothing served without the artifact.
    let mut other = self::core(ProtocolConfig::default()).with_artifacts(ArtifactStore::new(&theirs));
    connect(&mut other, 1, Direction::Inbound);
    assert!(sent_to(&on(&mut other, 1, frame(&Message::CodeRequest { code_cid: cid }))).is_empty());
}

fn bridge(export: super::Export, import: super::Import) -> Protocol {
    let config = ProtocolConfig {
        bridge: Some(super::BridgePolicy {
            public_peers: vec!["198.51.100.7:7470".into()],
            export,
            import,
            records_per_second: 2.0,
            ..Default::default()
        }),
        ..ProtocolConfig::default()
    };
    let mut core = core(config);
    connect(&mut core, 1, Direction::Outbound { dialed: "198.51.100.7:7470".into() });
    connect(&mut core, 2, Direction::Inbound);
    core
}

#[test]
fn a_closed_bridge_lets_nothing_out_and_nothing_in() {
    let mut core = bridge(super::Export::None, super::Import::None);
    // A lab record reaches lab peers only.
    let actions = on(&mut core, 2, frame(&Message::Experiment(Box::new(record(1)))));
    assert!(sent_to(&actions).is_empty(), "not to the public peer: {actions:?}");
    // A public record is dropped without punishing its sender.
    let actions = on(&mut core, 1, frame(&Message::Experiment(Box::new(record(2)))));
    assert!(!disconnected(&actions));
    assert_eq!((core.store().counts().unwrap().total, core.stats().records_not_imported), (1, 1));
    // A public sync request gets only the end marker.
    let actions = on(&mut core, 1, frame(&Message::SyncRequest { since: JsonNumber::from(0), after_seq: None }));
    assert_eq!(sent_to(&actions), vec![(1, "sync_response".into())]);
}

#[test]
fn no_addresses_cross_the_bridge_and_public_peers_are_rate_limited() {
    let mut core = bridge(super::Export::All, super::Import::All);
    let to_public = on(&mut core, 1, frame(&Message::PexRequest));
    assert!(
        to_public.iter().any(|a| matches!(a, Action::Send { body, .. }
            if matches!(Message::decode(body).unwrap(), Message::PexResponse { ref peer } if peer.is_empty()))),
        "{to_public:?}"
    );
    let to_lab = on(&mut core, 2, frame(&Message::PexRequest));
    assert!(
        !format!("{to_lab:?}").contains("198.51.100.7"),
        "the lab is not told the public peer's address: {to_lab:?}"
    );
    on(&mut core, 1, frame(&Message::PexResponse { peer: vec!["203.0.113.9:7470".into()] }));
    let later = core.handle(Event::Tick, 5_000, 1_773_100_000);
    assert!(!format!("{later:?}").contains("203.0.113.9"), "public PEX is ignored: {later:?}");
    // Burst of 20 (10 s at 2/s), then the rest is dropped.
    for n in 0..30 {
        on(&mut core, 1, frame(&Message::Experiment(Box::new(record(100 + n)))));
    }
    assert_eq!(core.store().counts().unwrap().total, 20);
    assert_eq!(core.stats().records_not_imported, 10);
}

#[test]
fn finished_syncs_are_counted_for_the_metrics() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    let served = on(&mut core, 1, frame(&Message::SyncRequest { since: JsonNumber::from(0), after_seq: Some(0) }));
    assert_eq!(sent_to(&served).last().map(|(_, t)| t.as_str()), Some("sync_response"));
    assert_eq!(core.stats().syncs_served, 1);
    connect(&mut core, 2, Direction::Outbound { dialed: "10.0.0.2:7470".into() });
    let hello = hello_with(0xcd, &["sync-seq"]);
    let asked = on(&mut core, 2, frame(&hello));
    assert!(sent_to(&asked).contains(&(2, "sync_request".into())));
    on(&mut core, 2, frame(&Message::SyncResponse { since: JsonNumber::from(0), count: 0, last_seq: Some(0) }));
    assert_eq!(core.stats().syncs_received, 1);
}

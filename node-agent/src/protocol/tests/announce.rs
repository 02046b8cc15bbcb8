//! Lazy push: `have`, `get_records` on request, the next announcer, the bounds.

use bytes::Bytes;
use spore_spec::Message;

use super::{connect, core, disconnected, frame, hello_with, on, record, sent_to};
use crate::protocol::{Action, Direction, Event, PeerId, ProtocolConfig};

fn ids_in(actions: &[Action], peer: PeerId, message_type: &str) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { peer: to, body } if *to == peer => Message::decode(body).ok(),
            _ => None,
        })
        .filter(|m| m.message_type() == message_type)
        .flat_map(|m| match m {
            Message::Have { ids } | Message::GetRecords { ids } => ids,
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn peers_that_ask_for_announcements_get_ids_and_the_others_get_records() {
    let mut core = core(ProtocolConfig::default());
    for peer in 1..=3 {
        connect(&mut core, peer, Direction::Inbound);
    }
    on(&mut core, 2, frame(&hello_with(2, &["sync-seq", "announce"])));
    on(&mut core, 3, frame(&hello_with(3, &["sync-seq"])));
    let r = record(1);
    let actions = on(&mut core, 1, frame(&Message::Experiment(Box::new(r.clone()))));
    assert_eq!(ids_in(&actions, 2, "have"), vec![r.id.clone()]);
    assert!(!sent_to(&actions).contains(&(2, "experiment".into())), "no record to an announce peer");
    assert!(sent_to(&actions).contains(&(3, "experiment".into())), "a peer without the capability gets it");
    assert!(sent_to(&actions).iter().all(|(p, _)| *p != 1), "nothing back to the source");
    // It asks; the record goes out.
    let served = on(&mut core, 2, frame(&Message::GetRecords { ids: vec![r.id.clone()] }));
    assert_eq!(sent_to(&served), vec![(2, "experiment".into())]);
    assert_eq!(core.stats().announce.ids_announced, 1);
}

#[test]
fn an_announced_record_is_asked_for_once_and_from_the_next_announcer_when_the_first_is_silent() {
    let config = ProtocolConfig::default();
    let timeout = config.announce_timeout.as_millis() as u64;
    let mut core = core(config);
    for peer in 1..=3 {
        connect(&mut core, peer, Direction::Inbound);
        on(&mut core, peer, frame(&hello_with(peer as u8, &["sync-seq", "get_records", "announce"])));
    }
    let (wanted, stored) = (record(1), record(2));
    on(&mut core, 3, frame(&Message::Experiment(Box::new(stored.clone()))));
    let have = Message::Have { ids: vec![wanted.id.clone(), stored.id.clone()] };
    let first = on(&mut core, 1, frame(&have));
    assert_eq!(ids_in(&first, 1, "get_records"), vec![wanted.id.clone()], "only the id we lack");
    assert!(ids_in(&on(&mut core, 2, frame(&have)), 2, "get_records").is_empty(), "asked once");
    assert_eq!(core.wanted_count(), 1);

    // Peer 1 never answers: at the deadline peer 2, which announced it too, is asked.
    let early = core.handle(Event::Tick, 1_000 + timeout - 1, 1_773_100_000);
    assert!(ids_in(&early, 2, "get_records").is_empty());
    let due = core.handle(Event::Tick, 1_000 + timeout, 1_773_100_000);
    assert_eq!(ids_in(&due, 2, "get_records"), vec![wanted.id.clone()]);
    assert_eq!(core.stats().announce.retries, 1);

    // It answers: stored, relayed as `have` to the peers that did not send it, nothing wanted.
    let actions = core.handle(
        Event::Frame { peer: 2, body: Bytes::from(Message::Experiment(Box::new(wanted.clone())).encode_body()) },
        1_000 + timeout + 1,
        1_773_100_000,
    );
    assert!(actions.is_empty(), "batched until idle");
    let flushed = core.handle(Event::Idle, 1_000 + timeout + 1, 1_773_100_000);
    assert_eq!(ids_in(&flushed, 1, "have"), vec![wanted.id.clone()]);
    assert_eq!(ids_in(&flushed, 3, "have"), vec![wanted.id.clone()]);
    assert_eq!(core.wanted_count(), 0);
    assert_eq!(core.store().counts().unwrap().total, 2);
    let later = core.handle(Event::Tick, 1_000 + 3 * timeout, 1_773_100_000);
    assert!(sent_to(&later).iter().all(|(_, t)| t != "get_records"), "nothing is asked again");
}

#[test]
fn an_id_nobody_sends_is_given_up_and_the_wanted_map_is_bounded() {
    let config = ProtocolConfig { max_wanted: 2, ..ProtocolConfig::default() };
    let timeout = config.announce_timeout.as_millis() as u64;
    let mut core = core(config);
    connect(&mut core, 1, Direction::Inbound);
    on(&mut core, 1, frame(&hello_with(1, &["announce"])));
    let ids: Vec<String> = (0..3).map(|n| format!("{n:064x}")).collect();
    let mut malformed = ids.clone();
    malformed.push(String::new());
    malformed.push("f".repeat(200));
    malformed.push("F".repeat(64));
    let asked = ids_in(&on(&mut core, 1, frame(&Message::Have { ids: malformed })), 1, "get_records");
    assert_eq!(asked, ids[..2].to_vec(), "two fit; what is no CID is not asked for");
    assert_eq!(core.stats().announce.overflow, 1);
    core.handle(Event::Tick, 1_000 + timeout, 1_773_100_000);
    assert_eq!(core.wanted_count(), 0, "no other announcer: given up until the next sync");
    assert_eq!(core.stats().announce.abandoned, 2);
    assert!(!disconnected(&on(&mut core, 1, frame(&Message::Have { ids: vec!["x".into(); 1000] }))));
}

#[test]
fn asks_beyond_a_peers_bound_wait_in_its_queue_and_go_out_as_records_come_in() {
    let config = ProtocolConfig::default();
    let (timeout, limit) = (config.announce_timeout.as_millis() as u64, config.max_asks_per_peer);
    let mut core = core(config);
    connect(&mut core, 1, Direction::Inbound);
    connect(&mut core, 2, Direction::Inbound);
    let fake = |n: usize| format!("{n:064x}");
    let r = record(1);
    let ids: Vec<String> = std::iter::once(r.id.clone()).chain((0..limit + 99).map(fake)).collect();
    let mut asked = 0;
    for chunk in ids.chunks(256) {
        asked += ids_in(&on(&mut core, 1, frame(&Message::Have { ids: chunk.to_vec() })), 1, "get_records").len();
    }
    assert_eq!(asked, limit, "no more than the bound is asked of one peer at a time");
    assert_eq!(core.stats().announce.deferred, 100);
    assert_eq!(core.wanted_count(), limit + 100);
    // Another peer is not held up by it.
    let other = vec![fake(limit + 500)];
    assert_eq!(ids_in(&on(&mut core, 2, frame(&Message::Have { ids: other.clone() })), 2, "get_records"), other);
    // A record peer 1 sends frees one ask: the first queued id goes out.
    let freed = on(&mut core, 1, frame(&Message::Experiment(Box::new(r))));
    assert_eq!(ids_in(&freed, 1, "get_records"), vec![fake(limit - 1)]);
    // Peer 1 never sends the rest: at the deadline, with nobody else announcing them, they are
    // given up; queued ones too.
    core.handle(Event::Tick, 1_000 + timeout, 1_773_100_000);
    assert_eq!(core.wanted_count(), 0);
    assert_eq!(core.stats().announce.abandoned, (limit + 100) as u64, "peer 1's remaining ones and peer 2's");
    assert_eq!(core.stats().announce.overflow, 0);
}

#[test]
fn a_peer_whose_queue_is_full_is_not_listened_to() {
    let config = ProtocolConfig { max_wanted: 1 << 20, ..ProtocolConfig::default() };
    let bound = config.max_asks_per_peer + config.max_deferred_per_peer;
    let mut core = core(config);
    connect(&mut core, 1, Direction::Inbound);
    let ids: Vec<String> = (0..bound + 10).map(|n| format!("{n:064x}")).collect();
    for chunk in ids.chunks(256) {
        on(&mut core, 1, frame(&Message::Have { ids: chunk.to_vec() }));
    }
    assert_eq!(core.wanted_count(), bound);
    assert_eq!(core.stats().announce.overflow, 10);
}

#[test]
fn have_and_get_records_cost_a_fraction_of_a_message_token_by_size() {
    let tokens = |message: &Message| {
        let body = message.encode_body();
        crate::protocol::message_tokens(Message::peek_type(&body).as_deref(), body.len())
    };
    assert_eq!(tokens(&Message::Experiment(Box::new(record(1)))), 0.0, "records: only the byte budget");
    assert_eq!(tokens(&Message::Ping), 1.0);
    let one = tokens(&Message::Have { ids: vec![record(1).id] });
    assert!(one > 1.0 / 16.0 && one < 0.07, "one id: about a sixteenth ({one})");
    let full = Message::GetRecords { ids: vec![record(1).id; 256] };
    let cost = tokens(&full);
    assert!(cost > 1.0 && cost < 1.2, "256 ids: a little over one ({cost})");
}

//! Python's control and task sync, served: the stored events after `since` in the form the asker
//! reads, then the end marker; an empty task answer so a 0.5.0 peer does not wait for it. And
//! asked: a Python peer is sent both requests once, and what it was not sent because it might
//! be a 0.1.2 node goes to it once it shows a newer release.

use spore_spec::ControlEvent;
use spore_spec::json::Value;

use super::*;

fn request(message_type: &str, since: i64) -> Message {
    let payload = Value::Object(vec![("since".into(), Value::Number(JsonNumber::from(since)))]);
    Message::Unknown { message_type: message_type.into(), payload }
}

#[test]
fn a_control_sync_gets_the_events_after_since_then_the_end_marker() {
    let mut core = core(ProtocolConfig::default());
    for peer in 1..=3 {
        connect(&mut core, peer, Direction::Inbound);
    }
    // Peer 2 is one of ours (it said hello); peer 3 is a Python node of some release.
    on(&mut core, 2, frame(&hello_with(2, &[])));
    let challenger = Identity::from_seed([3; 32]);
    let events: Vec<ControlEvent> = (0..3)
        .map(|n| ControlEvent::challenge(&challenger, &format!("{n}").repeat(64), 1.2, "H100", 1_773_000_000 + n))
        .collect();
    for event in &events {
        on(&mut core, 1, frame(&Message::Signed(Box::new(event.clone()))));
    }
    // Our peer gets our form, after `since` only, then `{since, count}`.
    let answer = messages_to(&on(&mut core, 2, frame(&request("control_sync_request", 1_773_000_000))), 2);
    assert_eq!(answer.len(), 3, "{answer:?}");
    assert!(matches!(&answer[0], Message::Signed(e) if **e == events[1]));
    assert!(matches!(&answer[1], Message::Signed(e) if **e == events[2]));
    let Message::Unknown { message_type, payload } = &answer[2] else { panic!("no end marker: {answer:?}") };
    assert_eq!(message_type, "control_sync_response");
    assert_eq!(payload.get("count"), Some(&Value::Number(JsonNumber::from(2))));
    assert_eq!(payload.get("since"), Some(&Value::Number(JsonNumber::from(1_773_000_000))));
    // Asked again at once: dropped, not punished.
    assert!(messages_to(&on(&mut core, 2, frame(&request("control_sync_request", 0))), 2).is_empty());
    assert!(core.peers().all(|(_, p)| p.misbehaviour == 0));
    // A Python peer asks from 0.2.8 on, and those the mesh runs read only the native form.
    let python = messages_to(&on(&mut core, 3, frame(&request("control_sync_request", 0))), 3);
    assert_eq!(python.len(), 4, "{python:?}");
    assert!(python[..3].iter().all(|m| matches!(m, Message::Control(_))), "{python:?}");
    // A 0.5.0 peer asks for tasks: an empty answer, and from then on it gets native events.
    let tasks = messages_to(&on(&mut core, 1, frame(&request("task_sync_request", 0))), 1);
    assert!(matches!(&tasks[..], [Message::Unknown { message_type, .. }] if message_type == "task_sync_response"));
    let native = messages_to(&on(&mut core, 1, frame(&request("control_sync_request", 0))), 1);
    assert_eq!(native.len(), 4, "{native:?}");
    assert!(native[..3].iter().all(|m| matches!(m, Message::Control(_))), "{native:?}");
}

#[test]
fn a_native_peer_gets_native_events_in_its_control_sync() {
    let mut core = core(ProtocolConfig::default());
    for peer in 1..=2 {
        connect(&mut core, peer, Direction::Inbound);
    }
    let challenger = Identity::from_seed([3; 32]);
    let event = ControlEvent::challenge(&challenger, &"e".repeat(64), 1.2, "H100", 1_773_000_000);
    on(&mut core, 1, frame(&Message::Control(Box::new(event.clone()))));
    let answer = messages_to(&on(&mut core, 1, frame(&request("control_sync_request", 0))), 1);
    assert!(matches!(&answer[..], [Message::Control(e), Message::Unknown { .. }] if **e == event), "{answer:?}");
}

#[test]
fn a_python_peer_is_asked_once_for_its_tasks_and_events_after_the_hello_wait() {
    let config = ProtocolConfig::default();
    let wait = config.hello_wait.as_millis() as u64;
    let mut core = core(config);
    connect(&mut core, 1, Direction::Outbound { dialed: "10.0.0.1:7470".into() });
    connect(&mut core, 2, Direction::Inbound);
    connect(&mut core, 3, Direction::Inbound);
    on(&mut core, 3, frame(&hello_with(3, &[])));
    let probes = |actions: &[Action], peer: PeerId| -> Vec<String> {
        sent_to(actions)
            .into_iter()
            .filter(|(p, t)| *p == peer && t.ends_with("sync_request"))
            .map(|(_, t)| t)
            .collect()
    };
    let early = core.handle(Event::Tick, 1_000 + wait - 1, 1_773_100_000);
    assert!(probes(&early, 1).is_empty() && probes(&early, 2).is_empty());
    let due = core.handle(Event::Tick, 1_000 + wait, 1_773_100_000);
    for peer in [1, 2] {
        let mut asked = probes(&due, peer);
        asked.retain(|t| t != "sync_request");
        assert_eq!(asked, ["task_sync_request", "control_sync_request"], "peer {peer}");
    }
    assert!(probes(&due, 3).is_empty(), "our peer said hello");
    let later = core.handle(Event::Tick, 1_000 + 10 * wait, 1_773_100_000);
    assert!(probes(&later, 1).iter().chain(&probes(&later, 2)).all(|t| t == "sync_request"), "asked once");
}

#[test]
fn what_a_python_peer_was_not_sent_goes_to_it_once_it_shows_a_newer_release() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    connect(&mut core, 2, Direction::Inbound);
    let mut signed = record(1);
    signed.task_id = Some("7".repeat(64));
    signed.version = JsonNumber::from(2);
    Identity::from_seed([2; 32]).sign_record(&mut signed);
    let relayed = on(&mut core, 1, frame(&Message::Experiment(Box::new(signed.clone()))));
    assert!(records_sent_to(&relayed, 2).is_empty(), "peer 2 may be a 0.1.2 node");
    // It answers a task sync: 0.5.0 or later. The record goes to it now, and once only.
    let shown = on(&mut core, 2, frame(&request("task_sync_response", 0)));
    assert_eq!(records_sent_to(&shown, 2), [signed.clone()]);
    let again = on(&mut core, 2, frame(&request("task_sync_response", 0)));
    assert!(records_sent_to(&again, 2).is_empty());
    assert!(core.peers().all(|(_, p)| p.misbehaviour == 0));
}

/// Our nodes catch up by the server's rows, whatever the events' timestamps, and a proven peer's
/// `last_rowid` becomes the cursor of the next request.
#[test]
fn our_nodes_catch_up_on_control_events_by_row_and_keep_a_proven_peer_s_cursor() {
    use spore_spec::handshake::{AUTH_CAPABILITY, sign_auth};

    let mut server = core(ProtocolConfig::default());
    connect(&mut server, 1, Direction::Inbound);
    connect(&mut server, 2, Direction::Inbound);
    on(&mut server, 2, frame(&hello_with(2, &["sync-seq", "control-seq"])));
    let challenger = Identity::from_seed([3; 32]);
    // Signed with timestamps going back in time: a timestamp cursor would miss the later ones.
    let events: Vec<ControlEvent> = (0..3)
        .map(|n| ControlEvent::challenge(&challenger, &format!("{n}").repeat(64), 1.2, "H100", 1_773_000_000 - n))
        .collect();
    for event in &events {
        on(&mut server, 1, frame(&Message::Signed(Box::new(event.clone()))));
    }
    let by_row = Value::Object(vec![
        ("since".into(), Value::Number(JsonNumber::from(0))),
        ("after_rowid".into(), Value::Number(JsonNumber::from(1))),
    ]);
    let answer = messages_to(
        &on(&mut server, 2, frame(&Message::Unknown { message_type: "control_sync_request".into(), payload: by_row })),
        2,
    );
    assert!(
        matches!(&answer[..], [Message::Signed(a), Message::Signed(b), Message::Unknown { .. }]
        if **a == events[1] && **b == events[2]),
        "{answer:?}"
    );
    let Message::Unknown { payload, .. } = &answer[2] else { unreachable!() };
    assert_eq!(payload.get("last_rowid"), Some(&Value::Number(JsonNumber::from(3))));

    // The asker: a peer of ours that proves its key is asked from our cursor for it.
    let mut asker = core(ProtocolConfig::default());
    let peer_node = Identity::from_seed([21; 32]);
    let connected =
        asker.handle(Event::Connected { peer: 1, remote: remote(40_001), direction: Direction::Inbound }, 1_000, 0);
    let nonce = messages_to(&connected, 1)
        .into_iter()
        .find_map(|m| match m {
            Message::Hello { nonce, .. } => nonce,
            _ => None,
        })
        .unwrap();
    let hello = Message::Hello {
        node_id: peer_node.node_id(),
        listen_port: 7470,
        capabilities: ["sync-seq", AUTH_CAPABILITY, "control-seq"].iter().map(|c| c.to_string()).collect(),
        agent: "spore-rs".into(),
        nonce: Some("their-nonce".into()),
    };
    let hello_sent = on(&mut asker, 1, frame(&hello));
    on(&mut asker, 1, frame(&Message::Auth { signature: sign_auth(&peer_node, &nonce, 7470) }));
    let after_rowid = |actions: &[Action]| {
        messages_to(actions, 1).into_iter().find_map(|m| match m {
            Message::Unknown { message_type, payload } if message_type == "control_sync_request" => {
                payload.get("after_rowid").cloned()
            }
            _ => None,
        })
    };
    assert_eq!(after_rowid(&hello_sent), Some(Value::Number(JsonNumber::from(0))), "{hello_sent:?}");
    on(
        &mut asker,
        1,
        frame(&Message::Unknown { message_type: "control_sync_response".into(), payload: payload.clone() }),
    );
    let later = ProtocolConfig::default().resync_interval.as_millis() as u64 + 2_000;
    let resync = asker.handle(Event::Tick, later, 1_773_100_000);
    assert_eq!(after_rowid(&resync), Some(Value::Number(JsonNumber::from(3))), "{resync:?}");
}

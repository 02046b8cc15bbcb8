//! Task manifests: verified, stored once, relayed only to peers that read them, served in a
//! task sync; a forgery punished, what Python would fail on dropped unpunished.

use spore_spec::TaskManifest;
use spore_spec::json::Value;

use super::*;

fn task(manifest: &TaskManifest) -> Message {
    Message::Unknown { message_type: "task".into(), payload: manifest.to_value() }
}

fn tasks_sent_to(actions: &[Action], to: PeerId) -> Vec<TaskManifest> {
    messages_to(actions, to)
        .into_iter()
        .filter_map(|m| match m {
            Message::Unknown { message_type, payload } if message_type == "task" => {
                TaskManifest::from_value(&payload).ok()
            }
            _ => None,
        })
        .collect()
}

fn with(manifest: &TaskManifest, key: &str, value: Value) -> Message {
    let Value::Object(mut entries) = manifest.to_value() else { unreachable!() };
    entries.retain(|(k, _)| k != key);
    entries.push((key.into(), value));
    Message::Unknown { message_type: "task".into(), payload: Value::Object(entries) }
}

#[test]
fn a_manifest_is_stored_once_and_relayed_only_to_peers_that_read_tasks() {
    let mut core = core(ProtocolConfig::default());
    for peer in 1..=4 {
        connect(&mut core, peer, Direction::Inbound);
    }
    // 2 is ours, 3 showed a newer release, 4 may be a 0.1.2 node.
    on(&mut core, 2, frame(&hello_with(2, &["task_id"])));
    on(
        &mut core,
        3,
        frame(&Message::Unknown { message_type: "task_sync_response".into(), payload: Value::Object(vec![]) }),
    );
    let manifest = TaskManifest::signed(&Identity::from_seed([6; 32]), "a task", 300, 1_773_000_000);
    let first = on(&mut core, 1, frame(&task(&manifest)));
    assert_eq!(tasks_sent_to(&first, 2), std::slice::from_ref(&manifest));
    assert_eq!(tasks_sent_to(&first, 3), std::slice::from_ref(&manifest));
    assert!(tasks_sent_to(&first, 4).is_empty());
    assert_eq!((core.store().task_count().unwrap(), core.stats().tasks_accepted), (1, 1));
    // Again: stored already, relayed no more.
    let again = on(&mut core, 3, frame(&task(&manifest)));
    assert!((1..=4).all(|p| tasks_sent_to(&again, p).is_empty()));
    assert!(core.peers().all(|(_, p)| p.misbehaviour == 0));
}

#[test]
fn a_forged_manifest_is_punished_and_one_python_would_fail_on_is_dropped() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    connect(&mut core, 2, Direction::Inbound);
    on(&mut core, 2, frame(&hello_with(2, &["task_id"])));
    let manifest = TaskManifest::signed(&Identity::from_seed([6; 32]), "a task", 300, 1_773_000_000);
    let unknown_key = on(&mut core, 1, frame(&with(&manifest, "priority", Value::Number(JsonNumber::from(1)))));
    assert!(tasks_sent_to(&unknown_key, 2).is_empty());
    assert_eq!(core.peers().find(|(id, _)| **id == 1).map(|(_, p)| p.misbehaviour), Some(0));
    let forged = on(&mut core, 1, frame(&with(&manifest, "time_budget", Value::Number(JsonNumber::from(30)))));
    assert!(tasks_sent_to(&forged, 2).is_empty());
    assert!(core.peers().find(|(id, _)| **id == 1).is_some_and(|(_, p)| p.misbehaviour > 0));
    assert_eq!((core.store().task_count().unwrap(), core.stats().tasks_rejected), (0, 2));
}

#[test]
fn a_task_sync_gets_the_manifests_after_since_then_the_end_marker() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    connect(&mut core, 2, Direction::Inbound);
    let creator = Identity::from_seed([6; 32]);
    let manifests: Vec<TaskManifest> =
        (0..3).map(|n| TaskManifest::signed(&creator, &format!("task {n}"), 300, 1_773_000_000 + n)).collect();
    for manifest in &manifests {
        on(&mut core, 1, frame(&task(manifest)));
    }
    let since = Value::Object(vec![("since".into(), Value::Number(JsonNumber::from(1_773_000_000)))]);
    let asked = on(&mut core, 2, frame(&Message::Unknown { message_type: "task_sync_request".into(), payload: since }));
    assert_eq!(tasks_sent_to(&asked, 2), manifests[1..]);
    let answer = messages_to(&asked, 2);
    let Some(Message::Unknown { message_type, payload }) = answer.last() else { panic!("{answer:?}") };
    assert_eq!(message_type, "task_sync_response");
    assert_eq!(payload.get("count"), Some(&Value::Number(JsonNumber::from(2))));
}

#[test]
fn our_nodes_ask_each_other_for_every_manifest_once_per_connection() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    connect(&mut core, 2, Direction::Inbound);
    let asks = |actions: &[Action], to: PeerId| {
        messages_to(actions, to)
            .into_iter()
            .filter_map(|m| match m {
                Message::Unknown { message_type, payload } if message_type == "task_sync_request" => Some(payload),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // Ours: asked from the start, with the record sync.
    let ours = on(&mut core, 1, frame(&hello_with(1, &["sync-seq", "task_id"])));
    assert_eq!(asks(&ours, 1), vec![Value::Object(vec![("since".into(), Value::Number(JsonNumber::from(0)))])]);
    // A node that does not take task ids is not asked.
    let older = on(&mut core, 2, frame(&hello_with(2, &["sync-seq"])));
    assert!(asks(&older, 2).is_empty());
    // The resync asks for records again, not for every manifest: later ones come relayed.
    let resync = ProtocolConfig::default().resync_interval.as_millis() as u64;
    let later = core.handle(Event::Tick, 1_000 + resync, 1_773_100_000);
    assert!(sent_to(&later).iter().any(|(p, t)| *p == 1 && t == "sync_request"), "the record resync");
    assert!(asks(&later, 1).is_empty());
}

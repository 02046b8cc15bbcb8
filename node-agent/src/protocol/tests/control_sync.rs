//! Python's control and task sync, served: the stored events after `since` in the form the asker
//! reads, then the end marker; an empty task answer so a 0.5.0 peer does not wait for it.

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
    for peer in 1..=2 {
        connect(&mut core, peer, Direction::Inbound);
    }
    let challenger = Identity::from_seed([3; 32]);
    let events: Vec<ControlEvent> = (0..3)
        .map(|n| ControlEvent::challenge(&challenger, &format!("{n}").repeat(64), 1.2, "H100", 1_773_000_000 + n))
        .collect();
    for event in &events {
        on(&mut core, 1, frame(&Message::Signed(Box::new(event.clone()))));
    }
    // A peer we know nothing of gets our form, after `since` only, then `{since, count}`.
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

//! Identities between our nodes are proved, not claimed: an impersonator cannot lock out the
//! node it names, a forged proof ends its connection, and only a proven node moves its cursor.

use spore_spec::handshake::{AUTH_CAPABILITY, sign_auth};

use super::*;

/// Connects `peer` and returns the nonce our `hello` asked it to sign.
fn connect_for_nonce(core: &mut Protocol, peer: PeerId, direction: Direction) -> String {
    let actions = core.handle(Event::Connected { peer, remote: remote(40_000 + peer as u16), direction }, 1_000, 0);
    actions
        .iter()
        .find_map(|a| match a {
            Action::Send { peer: to, body } if *to == peer => match Message::decode(body).ok()? {
                Message::Hello { nonce, .. } => nonce,
                _ => None,
            },
            _ => None,
        })
        .expect("our hello carries a nonce")
}

fn claim(node: &Identity, proves: bool) -> Message {
    let capabilities = if proves { vec!["sync-seq".to_string(), AUTH_CAPABILITY.to_string()] } else { vec![] };
    Message::Hello {
        node_id: node.node_id(),
        listen_port: 7470,
        capabilities,
        agent: "spore-rs".into(),
        nonce: proves.then(|| "their-nonce".to_string()),
    }
}

fn closed(actions: &[Action], peer: PeerId) -> bool {
    actions.iter().any(|a| matches!(a, Action::Disconnect { peer: p, .. } if *p == peer))
}

#[test]
fn an_impersonator_who_came_first_is_evicted_when_the_real_node_proves_its_key() {
    let mut core = core(ProtocolConfig::default());
    let honest = Identity::from_seed([21; 32]);
    connect(&mut core, 1, Direction::Inbound);
    assert!(!closed(&on(&mut core, 1, frame(&claim(&honest, false))), 1), "a bare claim is taken for now");
    let nonce = connect_for_nonce(&mut core, 2, Direction::Inbound);
    let hello = on(&mut core, 2, frame(&claim(&honest, true)));
    assert!(!closed(&hello, 2), "the real node is not refused for the earlier claim");
    assert!(sent_to(&hello).contains(&(2, "auth".to_string())), "we prove our own key in turn");
    let proof = Message::Auth { signature: sign_auth(&honest, &nonce, 7470) };
    let proved = on(&mut core, 2, frame(&proof));
    assert!(closed(&proved, 1) && !closed(&proved, 2), "{proved:?}");
    assert_eq!(core.stats().peers_authenticated, 1);
    // A later bare claim to the same node is refused.
    connect(&mut core, 3, Direction::Inbound);
    assert!(closed(&on(&mut core, 3, frame(&claim(&honest, false))), 3));
}

#[test]
fn a_proof_by_another_key_or_of_another_nonce_ends_the_connection() {
    let mut core = core(ProtocolConfig::default());
    let honest = Identity::from_seed([21; 32]);
    // Both connect before either is judged (a forgery also bans the address it came from).
    let first = connect_for_nonce(&mut core, 1, Direction::Inbound);
    let second = connect_for_nonce(&mut core, 2, Direction::Inbound);
    assert_ne!(first, second, "every connection gets its own nonce");
    on(&mut core, 1, frame(&claim(&honest, true)));
    on(&mut core, 2, frame(&claim(&honest, true)));
    let forged = Message::Auth { signature: sign_auth(&Identity::from_seed([22; 32]), &first, 7470) };
    assert!(closed(&on(&mut core, 1, frame(&forged)), 1));
    // A proof made for another connection's nonce (a replay) fails the same way.
    let replay = Message::Auth { signature: sign_auth(&honest, &first, 7470) };
    assert!(closed(&on(&mut core, 2, frame(&replay)), 2));
    assert_eq!((core.stats().auth_failed, core.stats().peers_authenticated), (2, 0));
}

#[test]
fn only_a_proven_node_moves_its_sync_cursor() {
    let mut core = core(ProtocolConfig::default());
    let honest = Identity::from_seed([21; 32]);
    let end = Message::SyncResponse { since: JsonNumber::from(0), count: 0, last_seq: Some(77) };
    // We dialed the claimed address, but the peer there proves nothing.
    connect(&mut core, 1, Direction::Outbound { dialed: "10.0.0.1:7470".into() });
    on(&mut core, 1, frame(&claim(&honest, false)));
    core.handle(Event::Tick, 2_000, 0);
    on(&mut core, 1, frame(&end));
    assert_eq!(core.store().sync_cursor(&honest.node_id()).unwrap(), None);
    on(&mut core, 1, Event::Disconnected { peer: 1 });
    // The real node proves its key: its cursor is kept.
    let nonce = connect_for_nonce(&mut core, 2, Direction::Outbound { dialed: "10.0.0.1:7470".into() });
    on(&mut core, 2, frame(&claim(&honest, true)));
    on(&mut core, 2, frame(&Message::Auth { signature: sign_auth(&honest, &nonce, 7470) }));
    on(&mut core, 2, frame(&end));
    assert_eq!(core.store().sync_cursor(&honest.node_id()).unwrap(), Some(77));
}

//! A store that is busy (another connection holds its write lock) or past its quota pauses
//! ingest; the core goes on, this node's own records wait and are stored when it resumes, and a
//! record refused meanwhile is taken when offered again.

use spore_spec::{ExperimentRecord, Identity, Message};

use super::{connect, frame, on, record};
use crate::protocol::{Direction, Event, PauseCause, Protocol, ProtocolConfig, refusal::RecordRefusal};
use crate::store::{DagStore, StoredRecord};

fn own(n: i64) -> StoredRecord {
    let mut r = spore_tests::records::record(n);
    Identity::from_seed([1; 32]).sign_record(&mut r);
    let mut payload = Vec::new();
    r.write_wire_payload(&mut payload);
    StoredRecord { record: r, payload: String::from_utf8(payload).unwrap(), flags: vec![], received_at: 0 }
}

fn experiment(r: &ExperimentRecord) -> Event {
    frame(&Message::Experiment(Box::new(r.clone())))
}

fn refused_for_pause(core: &Protocol) -> u64 {
    core.stats().records_refused[RecordRefusal::StorePaused as usize]
}

#[test]
fn a_busy_store_pauses_ingest_and_what_waited_is_stored_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut core = Protocol::new(
        ProtocolConfig::default(),
        Identity::from_seed([1; 32]),
        7470,
        DagStore::open_writer(&path).unwrap(),
    );
    connect(&mut core, 1, Direction::Inbound);

    // Another process holds the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let first = record(1);
    on(&mut core, 1, experiment(&first));
    let pause = core.store_pause().expect("paused after the write timed out").clone();
    assert_eq!(pause.cause, PauseCause::Busy, "{pause:?}");
    assert_eq!(refused_for_pause(&core), 1);

    // While paused: our own record waits (without touching the store), a peer's is refused.
    let started = std::time::Instant::now();
    core.handle(Event::Publish(Box::new(own(2))), 1_500, 1_773_100_000);
    on(&mut core, 1, experiment(&record(3)));
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "no busy wait while paused");
    assert_eq!(core.own_waiting(), 1);
    assert_eq!(refused_for_pause(&core), 2);

    // A probe while the lock is still held keeps the pause.
    core.handle(Event::Tick, 3_100, 1_773_100_000);
    assert!(core.store_pause().is_some());

    // The lock goes; the next probe resumes and stores what waited.
    other.execute_batch("ROLLBACK").unwrap();
    core.handle(Event::Tick, 5_200, 1_773_100_001);
    assert!(core.store_pause().is_none(), "resumed");
    assert_eq!(core.own_waiting(), 0);
    assert!(core.store().contains(&own(2).record.id).unwrap(), "our record was not lost");

    // The record refused during the pause is taken when offered again.
    on(&mut core, 1, experiment(&first));
    assert!(core.store().contains(&first.id).unwrap());
    assert_eq!(core.stats().store_pauses, 1);
}

#[test]
fn past_its_quota_the_store_refuses_peers_but_takes_our_own() {
    let store = DagStore::open_in_memory().unwrap();
    let quota = store.size_bytes().unwrap();
    let config = ProtocolConfig { store_quota_bytes: Some(quota), ..ProtocolConfig::default() };
    let mut core = Protocol::new(config, Identity::from_seed([1; 32]), 7470, store);
    connect(&mut core, 1, Direction::Inbound);

    // The quota is looked at on each tick.
    core.handle(Event::Tick, 900, 1_773_100_000);
    on(&mut core, 1, experiment(&record(1)));
    assert_eq!(core.store_pause().map(|p| p.cause), Some(PauseCause::Quota));
    assert!(!core.store().contains(&record(1).id).unwrap());
    on(&mut core, 1, experiment(&record(2)));
    assert_eq!(refused_for_pause(&core), 2);

    core.handle(Event::Publish(Box::new(own(3))), 1_000, 1_773_100_000);
    assert!(core.store().contains(&own(3).record.id).unwrap(), "our own record goes in past the quota");
    assert_eq!(core.own_waiting(), 0);

    // Still over the quota: the probe keeps the pause.
    core.handle(Event::Tick, 9_000, 1_773_100_000);
    assert_eq!(core.store_pause().map(|p| p.cause), Some(PauseCause::Quota));
}

//! Answers cost the asker, and answers nobody asked for are never read: `get_records`
//! de-duplicated, CID-checked and capped by queued bytes; `pex_response` and `code_response`
//! only after our request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::protocol::refusal::MessageDrop;
use crate::research::artifacts::{ArtifactStore, cid_of};

fn tick(core: &mut Protocol, now: u64) -> Vec<Action> {
    core.handle(Event::Tick, now, 1_773_100_000)
}

#[test]
fn get_records_answers_each_stored_id_once_and_ignores_what_is_no_cid() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    connect(&mut core, 2, Direction::Inbound);
    let r = record(1);
    on(&mut core, 1, frame(&Message::Experiment(Box::new(r.clone()))));
    let mut ids = vec![r.id.clone(); 200];
    ids.extend(["x".repeat(64), r.id.to_uppercase(), String::new(), "0".repeat(64)]);
    let answered = on(&mut core, 2, frame(&Message::GetRecords { ids }));
    assert_eq!(sent_to(&answered), vec![(2, "experiment".into())], "one answer for 200 copies of one id");
}

#[test]
fn answers_stop_at_the_askers_queued_bytes_and_resume_as_it_reads() {
    let config = ProtocolConfig { max_answer_bytes_per_peer: 3 * 1024, ..ProtocolConfig::default() };
    let mut core = core(config);
    connect(&mut core, 1, Direction::Inbound);
    let records: Vec<ExperimentRecord> = (10..30).map(record).collect();
    for r in &records {
        on(&mut core, 1, frame(&Message::Experiment(Box::new(r.clone()))));
    }
    connect(&mut core, 2, Direction::Inbound);
    let size = Message::Experiment(Box::new(records[0].clone())).encode_body().len();
    let hello_bytes = core.peers().find(|(p, _)| **p == 2).unwrap().1.queued_bytes() as usize;
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let first = on(&mut core, 2, frame(&Message::GetRecords { ids: ids.clone() }));
    let answered = sent_to(&first).len();
    assert_eq!(answered, (3 * 1024 - hello_bytes) / size, "as many as fit in the cap");
    assert!(answered < 20);
    assert_eq!(core.stats().messages_dropped_by[MessageDrop::AnswerRefused as usize], 1);
    // Nothing more while the peer has not read what it has.
    assert!(sent_to(&on(&mut core, 2, frame(&Message::GetRecords { ids: ids.clone() }))).is_empty());
    // Once the writer reports everything written, it is answered again.
    let state = core.peers().find(|(p, _)| **p == 2).unwrap().1;
    let (written, bytes) = (state.enqueued, state.enqueued_bytes);
    core.handle(Event::Drained { peer: 2, written, bytes }, 1_000, 0);
    assert_eq!(sent_to(&on(&mut core, 2, frame(&Message::GetRecords { ids }))).len(), 3 * 1024 / size);
}

#[test]
fn a_pex_response_is_read_only_after_our_request() {
    let mut core = core(ProtocolConfig::default());
    connect(&mut core, 1, Direction::Inbound);
    let offer = Message::PexResponse { peer: vec!["198.51.100.20:7470".into()] };
    on(&mut core, 1, frame(&offer));
    assert!(dials(&tick(&mut core, 2_000)).is_empty(), "an unasked address is not dialed");
    assert_eq!(core.stats().messages_dropped_by[MessageDrop::Unsolicited as usize], 1);
    // A peer we dialed was asked: its answer counts, once.
    connect(&mut core, 2, Direction::Outbound { dialed: "198.51.100.10:7470".into() });
    on(&mut core, 2, frame(&offer));
    assert_eq!(dials(&tick(&mut core, 3_000)), vec!["198.51.100.20:7470".to_string()]);
    let second = Message::PexResponse { peer: vec!["198.51.100.21:7470".into()] };
    on(&mut core, 2, frame(&second));
    assert!(dials(&tick(&mut core, 4_000)).is_empty(), "a second answer to one request is not read");
}

#[test]
fn code_nobody_asked_for_is_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut core = core(ProtocolConfig::default()).with_artifacts(ArtifactStore::new(dir.path()));
    connect(&mut core, 1, Direction::Inbound);
    let code = b"import os\nos.system('evil')\n";
    let cid = cid_of(code);
    let push = Message::CodeResponse { code_cid: cid.clone(), code: STANDARD.encode(code) };
    on(&mut core, 1, frame(&push));
    assert!(!ArtifactStore::new(dir.path()).contains(&cid), "pushed code is not stored");
    // Asked for another CID: a push of this one is still refused.
    core.handle(Event::FetchCode(cid_of(b"other")), 1_000, 0);
    on(&mut core, 1, frame(&push));
    assert!(!ArtifactStore::new(dir.path()).contains(&cid));
    assert_eq!(core.stats().messages_dropped_by[MessageDrop::Unsolicited as usize], 2);
    // Asked for: stored; a second copy after that is not wanted any more.
    core.handle(Event::FetchCode(cid.clone()), 1_000, 0);
    on(&mut core, 1, frame(&push));
    assert!(ArtifactStore::new(dir.path()).contains(&cid));
    assert_eq!(core.stats().code_fetched, 1);
}

#[test]
fn fetched_code_past_the_artifact_quota_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = ArtifactStore::new(dir.path());
    let ours = artifacts.put(&[b'#'; 600]).unwrap();
    // 1,000 bytes allowed, 600 of them used by this node's own code.
    let config = ProtocolConfig { artifact_quota_bytes: Some(1_000), ..ProtocolConfig::default() };
    let mut core = core(config).with_artifacts(artifacts);
    connect(&mut core, 1, Direction::Inbound);
    let small = b"print('small')\n".to_vec();
    let large = [b'x'; 500].to_vec();
    for code in [&large, &small] {
        core.handle(Event::FetchCode(cid_of(code)), 1_000, 0);
        on(&mut core, 1, frame(&Message::CodeResponse { code_cid: cid_of(code), code: STANDARD.encode(code) }));
    }
    let stored = ArtifactStore::new(dir.path());
    assert!(!stored.contains(&cid_of(&large)), "600 + 500 bytes is past the quota");
    assert!(stored.contains(&cid_of(&small)), "600 + 15 bytes fits");
    assert!(stored.contains(&ours));
    assert_eq!((core.stats().code_over_quota, core.stats().code_fetched), (1, 1));
}

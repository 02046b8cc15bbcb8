#![allow(clippy::unwrap_used)]
//! A lean backfill between a real `spore` agent and a real PostgreSQL: a backlog larger than
//! the table is written with the secondary indexes dropped, and the table ends with exactly the
//! indexes it had (a lab's own included); a mirror killed mid-backfill leaves them deferred, and
//! another mirror builds them again, but not while a live backfill holds the lock.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use spore_spec::Identity;
use spore_tests::bins::workspace_bin;
use spore_tests::nodes::SporeNode;
use spore_tests::testenv::{TestEnv, TestEnvOptions};

struct Mirror(Child);

impl Mirror {
    fn start(agent_port: u16, url: &str, log: &Path, token: &Path, lean_min: u32, batch: u32) -> Mirror {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(workspace_bin("spore-operator", "spore-operator"))
            .args(["mirror", "--agent", &format!("http://127.0.0.1:{agent_port}"), "--database-url", url])
            .args(["--batch", &batch.to_string(), "--max-backoff-seconds", "1", "--metrics-address", "127.0.0.1:0"])
            .args(["--lean-backfill-min", &lean_min.to_string()])
            .arg("--agent-token-file")
            .arg(token)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Mirror(child)
    }

    fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A connection to the test's database.
struct Db {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Db {
    fn connect(url: &str) -> Db {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client
        });
        Db { runtime, client }
    }

    fn i64(&self, sql: &str) -> Option<i64> {
        self.runtime.block_on(self.client.query_one(sql, &[])).ok().map(|row| row.get(0))
    }

    fn execute(&self, sql: &str) {
        self.runtime.block_on(self.client.batch_execute(sql)).unwrap();
    }

    /// Every index of `experiments`: (name, definition). An index the mirror drops while this
    /// reads the catalog has no definition (NULL) and is not counted.
    fn indexes(&self) -> Vec<(String, String)> {
        let sql = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'experiments' ORDER BY indexname";
        let rows = self.runtime.block_on(self.client.query(sql, &[])).unwrap();
        rows.iter().filter_map(|r| Some((r.get(0), r.get::<_, Option<String>>(1)?))).collect()
    }
}

fn wait_for(db: &Db, what: &str, log: &Path, mut done: impl FnMut(&Db) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(db) {
        assert!(Instant::now() < deadline, "{what}; mirror log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn push(node: &SporeNode, identity: &Identity, from: i64, to: i64) {
    for start in (from..to).step_by(10_000) {
        let end = (start + 10_000).min(to);
        node.push_records(identity, start..end, end as u64);
    }
}

const ALL_VALID: &str =
    "SELECT count(*) FILTER (WHERE NOT indisvalid) FROM pg_index WHERE indrelid = 'experiments'::regclass";

#[test]
fn a_backlog_is_written_without_secondary_indexes_which_come_back_as_they_were_even_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = TestEnvOptions::new(tmp.path().join("env"));
    options.postgres = true;
    let env = TestEnv::up(&options).expect("PostgreSQL");
    let url = env.database_url().unwrap().to_string();
    let spore = workspace_bin("spore-agent", "spore");
    let token = tmp.path().join("token");
    std::fs::write(&token, "mirror-token").unwrap();
    let extra = ["--grpc-token-file".to_string(), token.display().to_string()];
    let port = spore_tests::nodes::free_port().unwrap();
    let node = SporeNode::start_with_args(&spore, &tmp.path().join("agent"), port, &[], &extra);
    let log = tmp.path().join("mirror.log");
    let identity = Identity::generate();

    // A first mirror of an empty agent makes the schema; the lab adds an index of its own.
    let mut mirror = Mirror::start(node.grpc_port, &url, &log, &token, 1_000, 200);
    let db = Db::connect(&url);
    wait_for(&db, "the schema is made", &log, |db| db.i64("SELECT count(*) FROM mirror_deferred_indexes").is_some());
    mirror.kill9();
    db.execute("CREATE INDEX lab_description ON experiments (description)");
    let before = db.indexes();
    assert_eq!(before.len(), 8, "the primary key, six secondary indexes and the lab's: {before:?}");

    // 20,000 records waiting: written with the primary key as the only index, then all built.
    push(&node, &identity, 0, 20_000);
    let mut fewest = usize::MAX;
    let mirror = Mirror::start(node.grpc_port, &url, &log, &token, 1_000, 200);
    wait_for(&db, "the backlog is written and the indexes are back", &log, |db| {
        let n = db.indexes().len();
        fewest = fewest.min(n);
        db.i64("SELECT count(*) FROM experiments") == Some(20_000) && n == before.len()
    });
    assert_eq!(fewest, 1, "while the backlog was written only the primary key was kept");
    assert_eq!(db.indexes(), before, "the same indexes, defined the same way");
    assert_eq!(db.i64(ALL_VALID), Some(0));
    assert_eq!(db.i64("SELECT count(*) FROM mirror_deferred_indexes"), Some(0));
    assert_eq!(db.i64("SELECT sum(records)::bigint FROM nodes"), Some(20_000));
    drop(mirror);

    // 30,000 more (more than the table holds): the backfill is killed while it holds the indexes.
    push(&node, &identity, 20_000, 50_000);
    db.execute("ANALYZE experiments");
    let mut mirror = Mirror::start(node.grpc_port, &url, &log, &token, 1_000, 100);
    wait_for(&db, "a second lean backfill", &log, |db| {
        db.i64("SELECT count(*) FROM mirror_deferred_indexes").is_some_and(|n| n > 0)
    });
    mirror.kill9();
    let written = db.i64("SELECT count(*) FROM experiments").unwrap();
    assert!(written < 50_000, "killed mid-backfill ({written} rows)");
    assert_eq!(db.i64("SELECT count(*) FROM mirror_deferred_indexes"), Some(7), "the dead mirror left them deferred");

    // Another session holds the backfill lock: a mirror that never backfills leanly writes the
    // rest and leaves the indexes to it.
    let holder = Db::connect(&url);
    let lock = spore_operator::mirror::lean::LOCK;
    assert_eq!(holder.i64(&format!("SELECT pg_try_advisory_lock({lock})::int::bigint")), Some(1));
    let _mirror = Mirror::start(node.grpc_port, &url, &log, &token, 0, 500);
    wait_for(&db, "the rest is written", &log, |db| db.i64("SELECT count(*) FROM experiments") == Some(50_000));
    std::thread::sleep(spore_operator::mirror::lean::REPAIR_EVERY + Duration::from_secs(2));
    assert_eq!(db.indexes().len(), 1, "nothing built while a live backfill holds the lock");
    // The lock's holder goes away: the mirror builds them within its repair interval.
    drop(holder);
    wait_for(&db, "the indexes a dead backfill left are built", &log, |db| db.indexes().len() == before.len());
    wait_for(&db, "the deferred list is empty", &log, |db| {
        db.i64("SELECT count(*) FROM mirror_deferred_indexes") == Some(0)
    });
    assert_eq!(db.indexes(), before);
    assert_eq!(db.i64(ALL_VALID), Some(0));
    assert_eq!(db.i64("SELECT count(DISTINCT id) FROM experiments"), Some(50_000));
    assert_eq!(db.i64("SELECT sum(records)::bigint FROM nodes"), Some(50_000), "exactly once");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("indexes a dead mirror's backfill had deferred were built again"), "{text}");
    assert_eq!(text.matches("secondary indexes deferred").count(), 2, "{text}");
    drop(env);
}

//! The store's schema. `CREATE ... IF NOT EXISTS` on every open, like the Python peer, so an
//! older file is upgraded in place and a fresh one is created.

/// WAL lets the CLI read while the node writes; NORMAL sync in WAL mode loses at most the last
/// transactions on power loss, never consistency (and a crash of the process loses nothing).
pub const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;";

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS record (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT, -- local arrival order (sync cursor)
    id          TEXT NOT NULL UNIQUE,              -- CID
    parent      TEXT,
    node_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    val_bpb     REAL NOT NULL,
    gpu_model   TEXT NOT NULL,
    depth       INTEGER,                           -- NULL when not a 64-bit integer
    depth_key   INTEGER NOT NULL,                  -- depth for ordering (huge/odd depths last)
    timestamp   INTEGER,
    ts_key      INTEGER NOT NULL,
    trusted     INTEGER NOT NULL,                  -- no validation flag, depth agrees with parent
    on_frontier INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    payload     TEXT NOT NULL,                     -- the signed JSON exactly as received
    task        TEXT NOT NULL DEFAULT '',          -- its task (namespace.rs); '' until known
    task_signed INTEGER NOT NULL DEFAULT 0         -- 1 when the record's signature covers it
);
CREATE INDEX IF NOT EXISTS record_parent ON record(parent);
CREATE INDEX IF NOT EXISTS record_node ON record(node_id);
CREATE INDEX IF NOT EXISTS record_sync ON record(depth_key, ts_key, seq);
CREATE INDEX IF NOT EXISTS record_frontier ON record(gpu_model, val_bpb) WHERE on_frontier = 1;
CREATE INDEX IF NOT EXISTS record_frontier_all ON record(val_bpb) WHERE on_frontier = 1;
CREATE TABLE IF NOT EXISTS control_event (
    event_id      TEXT PRIMARY KEY,                -- <type>:<experiment>:<actor…>: one per actor
    id            TEXT NOT NULL,                   -- SHA-256 of the signed envelope
    kind          TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    actor         TEXT NOT NULL,
    timestamp     INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    envelope      TEXT NOT NULL                    -- the verified envelope, compact JSON
);
CREATE INDEX IF NOT EXISTS control_event_experiment ON control_event(experiment_id);
CREATE INDEX IF NOT EXISTS control_event_actor ON control_event(actor);
CREATE TABLE IF NOT EXISTS task_manifest (
    task_id     TEXT PRIMARY KEY,                  -- SHA-256 of the signed manifest
    created_by  TEXT NOT NULL,
    timestamp   INTEGER NOT NULL,                  -- the creator's
    received_at INTEGER NOT NULL,
    imported    INTEGER NOT NULL,                  -- 1 when it came in over the bridge
    manifest    TEXT NOT NULL                      -- the verified manifest as it came, compact JSON
);
CREATE INDEX IF NOT EXISTS task_manifest_timestamp ON task_manifest(timestamp);
CREATE INDEX IF NOT EXISTS task_manifest_creator ON task_manifest(created_by);
CREATE TABLE IF NOT EXISTS measured (
    id TEXT PRIMARY KEY,                           -- a record this node published
    by TEXT NOT NULL                               -- `evaluator` or `train.py` (measurement.rs)
);
CREATE TABLE IF NOT EXISTS rejected (
    id           TEXT PRIMARY KEY,                 -- a record a dispute found false
    ground_truth REAL NOT NULL,
    decided_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS imported (
    id TEXT PRIMARY KEY                            -- a record that came in over the bridge
);
CREATE TABLE IF NOT EXISTS sync_cursor (
    peer_node_id TEXT PRIMARY KEY,
    last_seq     INTEGER NOT NULL
);
";

/// Indexes on the task columns: created after [`SCHEMA`] and the migration that adds the columns
/// to a store written before tasks.
pub const TASK_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS record_task ON record(task, ts_key);
CREATE INDEX IF NOT EXISTS record_frontier_task ON record(task, val_bpb) WHERE on_frontier = 1;
";

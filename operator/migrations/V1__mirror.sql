-- The DAG mirror: every record a node-agent stores, exactly once, with the cursor per agent.

CREATE TABLE experiments (
    id           text PRIMARY KEY,              -- the record's CID
    parent       text,
    node_id      text NOT NULL,
    status       text NOT NULL,                 -- keep | discard | crash
    val_bpb      double precision NOT NULL,
    gpu_model    text NOT NULL,
    gpu_class    text NOT NULL,                 -- the GPU class the frontier is kept per
    depth        bigint,
    "timestamp"  bigint,
    description  text NOT NULL,
    record       jsonb,                         -- NULL when Postgres cannot hold the JSON (NaN, \u0000)
    payload      text NOT NULL,                 -- the signed JSON exactly as the agent stored it
    source_agent text NOT NULL,                 -- the node id of the agent it came from
    source_seq   bigint NOT NULL,
    mirrored_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiments_parent ON experiments (parent);
CREATE INDEX experiments_node ON experiments (node_id);
CREATE INDEX experiments_status ON experiments (status);
CREATE INDEX experiments_val_bpb ON experiments (val_bpb);
CREATE INDEX experiments_gpu_class ON experiments (gpu_class, val_bpb);
CREATE INDEX experiments_timestamp ON experiments ("timestamp");

CREATE TABLE nodes (
    node_id    text PRIMARY KEY,
    records    bigint NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mirror_cursors (
    agent      text PRIMARY KEY,                -- the agent's node id
    last_seq   bigint NOT NULL,                 -- the agent's sequence number mirrored last
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The frontier as the protocol defines it: keeps with no keep child that is strictly better.
CREATE VIEW frontier AS
SELECT e.*
FROM experiments e
WHERE e.status = 'keep'
  AND NOT EXISTS (SELECT 1 FROM experiments c
                  WHERE c.parent = e.id AND c.status = 'keep' AND c.val_bpb < e.val_bpb);

CREATE VIEW best_per_gpu_class AS
SELECT DISTINCT ON (gpu_class) *
FROM frontier
ORDER BY gpu_class, val_bpb, id;

-- A record and its ancestors, self first (distance 0), until a root or a missing parent.
CREATE FUNCTION lineage(cid text)
RETURNS TABLE (distance integer, id text, parent text, status text, val_bpb double precision, description text)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain(distance, id, parent) AS (
        SELECT 0, e.id, e.parent FROM experiments e WHERE e.id = cid
        UNION ALL
        SELECT c.distance + 1, e.id, e.parent FROM experiments e JOIN chain c ON e.id = c.parent
    )
    SELECT c.distance, c.id, c.parent, e.status, e.val_bpb, e.description
    FROM chain c JOIN experiments e ON e.id = c.id
    ORDER BY c.distance
$$;

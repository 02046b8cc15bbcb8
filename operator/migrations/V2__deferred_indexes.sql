-- Secondary indexes of `experiments` that a mirror dropped for a lean backfill, with the exact
-- definition to build them again (a mirror that dies mid-backfill leaves them here; any mirror
-- that finds rows here and no backfill holding the advisory lock builds them again).
CREATE TABLE mirror_deferred_indexes (
    name        text PRIMARY KEY,               -- the index, as `regclass` prints it
    definition  text NOT NULL,                  -- `pg_get_indexdef`: the statement that builds it
    deferred_at timestamptz NOT NULL DEFAULT now()
);

#!/usr/bin/env bash
# What PostgreSQL alone can write into the mirror's `experiments` table on this machine: N rows
# (default 1,000,000) of ~1 KB signed-record-shaped JSON, made inside Postgres, inserted in
# batches of 5,000 into a fresh copy of the schema (the same seven indexes, the payload parsed to
# jsonb, synchronous_commit off) — no agent, no gRPC, no mirror. No end-to-end mirror can beat
# this rate on the same machine; compare it with benches/mirror-backfill.sh.
#
#   benches/mirror-floor.sh [N]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
n=${1:-1000000}
batch=5000
cargo build --locked -p spore-tests --bin spore-testenv 2>/dev/null
work=$(mktemp -d)
chmod 755 "$work"   # PostgreSQL runs as its own user
cleanup() {
  "$CARGO_TARGET_DIR/debug/spore-testenv" down --dir "$work/env" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$CARGO_TARGET_DIR/debug/spore-testenv" up --dir "$work/env" --postgres >/dev/null
# shellcheck disable=SC1091
source "$work/env/env.sh"
psql=$(ls /usr/lib/postgresql/*/bin/psql | head -n 1)
sql() { "$psql" "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 "$@"; }

sql -f operator/migrations/V1__mirror.sql
# The rows, made once into an unindexed table: the timed part only writes them.
sql <<SQL
CREATE UNLOGGED TABLE source AS
SELECT lpad(to_hex(i), 64, '0') AS id, i AS seq,
       format('{"agent_model":"bench","code_cid":"%s","cuda_version":"none","dataset_cid":"d","depth":0,'
              '"description":"record %s, a change to the learning-rate schedule","diff":"","gpu_model":"cpu",'
              '"hypothesis":"a longer warmup lets the larger rate settle","id":"%s","node_id":"%s",'
              '"num_params":50331648,"num_steps":953,"parent":null,"peak_vram_mb":45060.2,"prepare_cid":"",'
              '"signature":"%s","status":"keep","time_budget":300,"timestamp":%s,"torch_version":"2.13.0",'
              '"val_bpb":%s,"version":1}',
              md5(i::text) || md5((i + 1)::text), i, lpad(to_hex(i), 64, '0'), repeat('ab', 32),
              repeat(md5(i::text), 4), 1773000000 + i, 1.0 + i / 1e7) AS payload
FROM generate_series(1, $n) AS i;
CREATE INDEX ON source (seq);
ANALYZE source;
SQL
start=$(date +%s.%N)
for ((from = 1; from <= n; from += batch)); do
  echo "INSERT INTO experiments (id, parent, node_id, status, val_bpb, gpu_model, gpu_class, depth, \"timestamp\",
          description, record, payload, source_agent, source_seq)
        SELECT id, NULL, repeat('ab', 32), 'keep', 1.0 + seq / 1e7, 'cpu', 'cpu', 0, 1773000000 + seq,
               'record', payload::jsonb, payload, 'bench', seq
        FROM source WHERE seq >= $from AND seq < $((from + batch));"
done | sql -c "SET synchronous_commit = off" -f -
end=$(date +%s.%N)
bytes=$(sql -c "SELECT avg(length(payload))::int FROM source")
awk -v n="$n" -v s="$start" -v e="$end" -v b="$bytes" 'BEGIN {
  printf "PostgreSQL alone: %d rows of %d bytes into experiments (7 indexes, jsonb) in %.1f s = %.0f rows/s\n",
         n, b, e - s, n / (e - s) }'

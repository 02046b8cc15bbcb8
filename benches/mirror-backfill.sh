#!/usr/bin/env bash
# The Postgres mirror end to end: N records (default 1,000,000) already in an agent's store are
# backfilled into a real PostgreSQL by `spore-operator mirror` (rows/s, from the mirror's start
# until Postgres holds them all), then records arrive at 1,000/s by gossip for 20 s and the
# mirror's lag is sampled from its /metrics. Last, the same rows are written by Postgres alone
# (the floor no mirror can beat on this machine).
#
#   benches/mirror-backfill.sh [N]        (MIRROR_BATCH=K: K records per transaction, default 5,000;
#                                          MIRROR_LEAN_MIN=M: --lean-backfill-min, 0 = indexes kept;
#                                          MIRROR_STORE_CACHE=DIR: the signed store kept for later runs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
n=${1:-1000000}
live=20000
cargo build --release --locked -p spore-agent -p spore-operator -p spore-tests --bins 2>/dev/null
bin=$CARGO_TARGET_DIR/release
work=$(mktemp -d)
chmod 755 "$work"   # PostgreSQL runs as its own user
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$bin/spore-testenv" down --dir "$work/env" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# MIRROR_STORE_CACHE=DIR keeps the signed store there and starts later runs of the same N from a
# copy of it (the store takes minutes to sign and import; the figures after it do not depend on it).
cache=${MIRROR_STORE_CACHE:-}
if [ -n "$cache" ] && [ -f "$cache/complete-$n" ]; then
  cp -r "$cache/agent" "$work/agent"
  cp "$cache/live.jsonl" "$work/live.jsonl"
  import_note="copied from $cache"
else
python3 - "$n" "$live" > "$work/fields.jsonl" <<'PY'
import sys
n, live = int(sys.argv[1]), int(sys.argv[2])
for i in range(n + live):
    print('{"parent":null,"depth":0,"code_cid":"%064x","diff":"","dataset_cid":"d","prepare_cid":"",'
          '"time_budget":300,"val_bpb":%s,"peak_vram_mb":0.0,"num_steps":1,"num_params":1,"status":"keep",'
          '"description":"r%d","hypothesis":"","agent_model":"bench","gpu_model":"cpu","cuda_version":"none",'
          '"torch_version":"2","timestamp":%d}' % (i, repr(1.0 + i / 1e7), i, 1773000000 + i))
PY
"$bin/spore" record sign --data-dir "$work/signer" "$work/fields.jsonl" > "$work/signed.jsonl"
head -n "$n" "$work/signed.jsonl" > "$work/backfill.jsonl"
tail -n "$live" "$work/signed.jsonl" > "$work/live.jsonl"
import_start=$(date +%s.%N)
"$bin/spore" record import --data-dir "$work/agent" "$work/backfill.jsonl" >/dev/null
import_end=$(date +%s.%N)
import_note=$(awk -v s="$import_start" -v e="$import_end" 'BEGIN { printf "spore record import: %.1f s", e - s }')
if [ -n "$cache" ]; then
  rm -rf "$cache" && mkdir -p "$cache"
  cp -r "$work/agent" "$cache/agent" && cp "$work/live.jsonl" "$cache/live.jsonl" && touch "$cache/complete-$n"
fi
fi

"$bin/spore-testenv" up --dir "$work/env" --postgres >/dev/null
# shellcheck disable=SC1091
source "$work/env/env.sh"
psql=$(ls /usr/lib/postgresql/*/bin/psql | head -n 1)
count() { "$psql" "$DATABASE_URL" -Atc "SELECT count(*) FROM experiments" 2>/dev/null || echo 0; }
# Progress is read from the mirror's cursor, which moves in the same transaction as its rows: one
# row, where a `count(*)` every 0.2 s scans the whole growing table (in parallel workers) and
# takes cores from the mirror it measures. The agent's store gives the sequence number to reach.
cursor() { "$psql" "$DATABASE_URL" -Atc "SELECT coalesce(max(last_seq), 0) FROM mirror_cursors" 2>/dev/null || echo 0; }
last_seq() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT max(seq) FROM record").fetchone()[0])' "$work/agent/db/dag.sqlite"; }
backfill_seq=$(last_seq)

gossip=$(free_port); grpc=$(free_port); metrics=$(free_port)
"$bin/spore" run --no-train --no-explorer --no-bootstrap --host 127.0.0.1 --port "$gossip" --grpc-port "$grpc" \
  --metrics-port 0 --data-dir "$work/agent" 2>"$work/agent.log" &
pids+=($!)
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $grpc))" 2>/dev/null; do sleep 0.1; done

start=$(date +%s.%N)
RUST_LOG=${RUST_LOG:-info} "$bin/spore-operator" mirror --agent "http://127.0.0.1:$grpc" --database-url "$DATABASE_URL" \
  --metrics-address "127.0.0.1:$metrics" ${MIRROR_BATCH:+--batch "$MIRROR_BATCH"} ${MIRROR_LEAN_MIN:+--lean-backfill-min "$MIRROR_LEAN_MIN"} >"$work/mirror.log" 2>&1 &
mirror_log="$work/mirror.log"
pids+=($!)
until [ "$(cursor)" -ge "$backfill_seq" ]; do sleep 0.2; done
rows_end=$(date +%s.%N)
# CPU seconds so far of the agent, the mirror and every PostgreSQL process on the machine (run the
# bench with no other PostgreSQL busy).
cpu_note=$(printf 'postgres %s s, agent %s s, mirror %s s' "$(ps -C postgres -o times= | awk '{ s += $1 } END { print s }')" \
  "$(ps -p "${pids[0]}" -o times= | tr -d ' ')" "$(ps -p "${pids[1]}" -o times= | tr -d ' ')")
# A lean backfill (the default above 100,000 records) has finished when its deferred indexes are
# built again: the table is only then what it was.
deferred() { "$psql" "$DATABASE_URL" -Atc "SELECT count(*) FROM mirror_deferred_indexes" 2>/dev/null || echo 1; }
until [ "$(deferred)" -eq 0 ]; do sleep 0.2; done
end=$(date +%s.%N)
indexes=$("$psql" "$DATABASE_URL" -Atc "SELECT count(*) FROM pg_indexes WHERE tablename = 'experiments'")
[ "$indexes" -eq 7 ] || { echo "the table has $indexes indexes, not 7" >&2; exit 1; }
[ "$(count)" -eq "$n" ] || { echo "the mirror's cursor reached $backfill_seq, but Postgres holds $(count) of $n rows" >&2; exit 1; }
[ -n "${KEEP_MIRROR_LOG:-}" ] && cp "$mirror_log" "$KEEP_MIRROR_LOG"

python3 benches/mirror_push.py 127.0.0.1 "$gossip" 1000 "$work/live.jsonl" &
pusher=$!
samples=()
while kill -0 "$pusher" 2>/dev/null; do
  lag=$(python3 - "$metrics" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1]).read().decode()
print(next(l.split()[-1] for l in text.splitlines() if l.startswith("spore_mirror_lag_records{")))
PY
)
  samples+=("$lag")
  sleep 0.5
done
until [ "$(count)" -ge $((n + live)) ]; do sleep 0.2; done

awk -v n="$n" -v s="$start" -v e="$end" -v re="$rows_end" -v note="$import_note" 'BEGIN {
  printf "records in the agent store:  %d (%s)\n", n, note
  printf "backfill into Postgres:      %.1f s = %.0f rows/s end to end, its 7 indexes included (rows written after %.1f s)\n", e - s, n / (e - s), re - s }'
echo "CPU time when the rows were written: $cpu_note"
printf '%s\n' "${samples[@]}" | sort -n | awk -v live="$live" '{ a[NR] = $1; sum += $1 }
  END { printf "live at 1,000 records/s:     %d records mirrored; lag (records, sampled every 0.5 s by the mirror'"'"'s 2 s poll) median %d, max %d, mean %.0f\n", live, a[int((NR + 1) / 2)], a[NR], sum / NR }'

# The floor: what Postgres alone takes to write the same rows into a copy of the table (same
# indexes, the payload parsed to jsonb again), with no agent, gRPC or mirror in the way. The
# end-to-end rate cannot beat this on the same machine.
kill "${pids[@]}" 2>/dev/null || true
floor_start=$(date +%s.%N)
"$psql" "$DATABASE_URL" -q <<'SQL'
SET synchronous_commit = off;
CREATE TABLE floor_copy (LIKE experiments INCLUDING DEFAULTS INCLUDING INDEXES);
INSERT INTO floor_copy (id, parent, node_id, status, val_bpb, gpu_model, gpu_class, depth, "timestamp",
                        description, record, payload, source_agent, source_seq)
SELECT id, parent, node_id, status, val_bpb, gpu_model, gpu_class, depth, "timestamp", description,
       payload::jsonb, payload, source_agent, source_seq
FROM experiments;
SQL
floor_end=$(date +%s.%N)
awk -v n="$((n + live))" -v s="$floor_start" -v e="$floor_end" -v b="$n" -v bs="$start" -v be="$end" 'BEGIN {
  printf "Postgres alone (INSERT … SELECT of the same rows into a copy): %.1f s = %.0f rows/s\n", e - s, n / (e - s)
  printf "backfill rate / Postgres alone: %.0f %%\n", 100 * (b / (be - bs)) / (n / (e - s)) }'

#!/usr/bin/env bash
# The explorer at scale: a node whose store holds N records (default 100,000, a generated
# research DAG), its page loaded in Debian's Chromium; then records gossiped into the node at
# a fixed rate while the page watches the live feed. See node-agent/web/e2e/bench.mjs.
#
#   benches/explorer.sh [--records N] [--rate R] [--seconds S] [--loads L]
#
# (The Python explorer is not run beside it: it loads D3 from a CDN, which this machine cannot
# reach, and needs FastAPI, which the reference peer's --no-deps install leaves out.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
records=100000 rate=100 seconds=30 loads=5
while [ $# -gt 0 ]; do
  case "$1" in
    --records) records=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --loads) loads=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --locked -p spore-agent --bin spore -p spore-tests --bin spore-seed >&2
bin=$CARGO_TARGET_DIR/release
work=$(mktemp -d)
node_pid=
trap '[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; rm -rf "$work"' EXIT

"$bin/spore-seed" --records "$records" --nodes 16 --seed 1 >"$work/store.jsonl"
"$bin/spore-seed" --records "$((rate * seconds))" --nodes 4 --seed 2 >"$work/feed.jsonl"
start=$(date +%s%N)
"$bin/spore" record import "$work/store.jsonl" --data-dir "$work/node" >&2
echo "seeded $records records in $(( ($(date +%s%N) - start) / 1000000 )) ms"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gossip=$(port) web=$(port)
"$bin/spore" run --no-train --no-bootstrap --no-grpc --no-metrics --host 127.0.0.1 --port "$gossip" \
  --web-port "$web" --data-dir "$work/node" 2>"$work/node.log" &
node_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$web/api/stat" >/dev/null 2>&1 && break
  sleep 0.1
done
node node-agent/web/e2e/bench.mjs --url "http://127.0.0.1:$web/" --gossip "127.0.0.1:$gossip" \
  --records "$work/feed.jsonl" --rate "$rate" --seconds "$seconds" --loads "$loads"

#!/usr/bin/env bash
# Whole-node benchmarks, ours beside the Python reference in one run: ingest, sync, propagation
# along a line of nodes, peak RSS. See benches/node_bench.py.
#
#   benches/compare-node.sh [--records N] [--line-nodes K] [--line-records M] [--rust-only]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
python=$(scripts/python-ref.sh | tail -n 1)
cargo build --release --locked -p spore-agent --bin spore >&2
"$python" benches/node_bench.py --spore "$CARGO_TARGET_DIR/release/spore" "$@"

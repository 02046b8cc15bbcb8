#!/usr/bin/env bash
# The yield benchmark (issue: does the mesh find better train.py than one node alone?): N nodes
# sharing a frontier over gossip against N isolated nodes, the same compute each, on the CPU
# profile with the built-in mutator; each configuration's best is re-measured. See
# benches/yield.py for the method.
#
#   benches/yield.sh [--nodes 2] [--experiments 6] [--budget 20] [--repeats 2] [--remeasure 3]
#                    [--llm-from DATA_DIR]   (an LLM proposer configured there with `spore set`)
#
# About 40 minutes with the defaults on 2 cores. Run it on an otherwise idle machine: the time
# budget is wall time, so anything else running changes every figure.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
# shellcheck source=scripts/torch-env.sh
source scripts/torch-env.sh
# The dev build: the figures are the training's (Python and libtorch), not the node's.
cargo build --locked -p spore-agent --bin spore -p spore-eval --bin spore-eval >&2
python3 benches/yield.py --spore "$CARGO_TARGET_DIR/debug/spore" \
  --spore-eval "$CARGO_TARGET_DIR/debug/spore-eval" --python "$SPORE_WORKSPACE_PYTHON" "$@"

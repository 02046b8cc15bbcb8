#!/usr/bin/env bash
# The main job: a local Spore node doing real research — the built-in workspace (a small GPT on
# an offline corpus on CPU, the full-size profile on CUDA), the built-in mutator unless an LLM
# is configured with `spore set`, results signed, stored and gossiped.
#
#   scripts/research.sh                      spore run --genesis (a new research graph)
#   scripts/research.sh [spore run options]  e.g. --peer HOST:7470 --time-budget 60 --max-experiments 10
#
# Installs torch into $HOME/.cache/spore/workspace-venv (once) and builds spore and the trusted
# evaluator spore-eval (tch, linked against that torch) in release mode.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
# The jail every train.py runs in (bubblewrap); without it spore run refuses to train.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null ||
      { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }
  else
    echo "research: bubblewrap is missing; run: sudo apt-get install bubblewrap" >&2
    exit 1
  fi
fi
# shellcheck source=scripts/torch-env.sh
source scripts/torch-env.sh
cargo build --release --locked -p spore-agent --bin spore -p spore-eval --bin spore-eval
[ "$#" -eq 0 ] && set -- --genesis
exec "$CARGO_TARGET_DIR/release/spore" run --python "$SPORE_WORKSPACE_PYTHON" "$@"

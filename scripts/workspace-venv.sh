#!/usr/bin/env bash
# Installs the training workload's Python environment (workspace/requirements.txt: torch, and climbmix's pyarrow, rustbpe, tiktoken) into a
# virtualenv under $HOME/.cache/spore/workspace-venv, once per requirements file. Prints the
# interpreter's path on the last line. Rebuildable from scratch: delete the directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requirements="$root/workspace/requirements.txt"
venv=${SPORE_WORKSPACE_VENV:-$HOME/.cache/spore/workspace-venv}
key=$(sha256sum "$requirements" | cut -c1-16)
marker="$venv/.complete-$key"

if [ ! -f "$marker" ]; then
  # On a fresh machine the cache directory does not exist yet; df needs it.
  mkdir -p "$(dirname "$venv")"
  # One install at a time: a second caller (a developer's test beside CI) waits for the first
  # one's venv instead of deleting it half made.
  exec 9>"$venv.lock"
  flock 9
fi
if [ ! -f "$marker" ]; then
  free_kb=$(df -Pk "$(dirname "$venv")" | awk 'NR==2 {print $4}')
  if [ -n "$free_kb" ] && [ "$free_kb" -lt 8000000 ]; then
    echo "workspace-venv: need about 8 GB free under $(dirname "$venv") for torch" >&2
    exit 1
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  "$venv/bin/python" -c "import torch; torch.ones(1)" >&2
  touch "$marker"
fi
echo "$venv/bin/python"

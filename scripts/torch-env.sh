# Sourced (not run) by the build and test scripts: the workspace's torch, installed once under
# $HOME/.cache/spore/workspace-venv, serves both the training workload (SPORE_WORKSPACE_PYTHON)
# and the evaluator's build: tch's torch-sys finds libtorch through `python3` on PATH
# (LIBTORCH_USE_PYTORCH=1), and spore-eval keeps that lib directory as its rpath.
SPORE_WORKSPACE_PYTHON=$("$(dirname "${BASH_SOURCE[0]}")/workspace-venv.sh" | tail -n 1) || {
  echo "torch-env: installing the workspace's torch failed (scripts/workspace-venv.sh)" >&2
  return 1
}
export SPORE_WORKSPACE_PYTHON
export LIBTORCH_USE_PYTORCH=1
PATH="$(dirname "$SPORE_WORKSPACE_PYTHON"):$PATH"
export PATH

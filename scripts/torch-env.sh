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
# Once, in front, however often this is sourced: build scripts that watch PATH (torch-sys, cc)
# would otherwise rebuild whenever .ci/run and scripts/test, which both source this, build.
venv_bin=$(dirname "$SPORE_WORKSPACE_PYTHON")
PATH=":$PATH:"
PATH=${PATH//:$venv_bin:/:}
PATH=${PATH#:}
PATH="$venv_bin:${PATH%:}"
export PATH
unset venv_bin

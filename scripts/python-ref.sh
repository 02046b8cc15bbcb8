#!/usr/bin/env bash
# Installs the real Python reference peer (sporemesh 0.1.2, or the VERSION given, + PyNaCl) into a
# virtualenv under $HOME/.cache/spore/pyref (pyref-VERSION for another version), once. Prints the
# interpreter's path on the last line.
#
#   scripts/python-ref.sh [VERSION]
#
# --no-deps keeps torch and the web stack out: the tests need only the protocol modules.
# PyNaCl's runtime needs cffi, which --no-deps would otherwise leave out. From 0.3 on, the node
# module (spore.node) imports the runner, which imports rich: it comes with its own dependencies.
set -euo pipefail

version=${1:-0.1.2}
if [ "$version" = 0.1.2 ]; then
  venv=${SPORE_PYREF_VENV:-$HOME/.cache/spore/pyref}
else
  venv=$HOME/.cache/spore/pyref-$version
fi
# The recipe's number: a virtualenv made by an older recipe is made again.
marker="$venv/.complete-sporemesh-$version-recipe2"

if [ ! -f "$marker" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-warn-conflicts --no-deps "sporemesh==$version" pynacl
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-warn-conflicts cffi
  if [ "$version" != 0.1.2 ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-warn-conflicts rich
    "$venv/bin/python" -c "import spore.node"
  fi
  "$venv/bin/python" -c "import spore.record, spore.gossip, nacl.signing"
  touch "$marker"
fi
echo "$venv/bin/python"

#!/usr/bin/env bash
# How fast the operator takes in a burst of Experiments: 1,000 created at once on the test
# control plane (16 kwok GPUs), time until every one has a status (a pod, or Queued), reported
# as Experiments per second, with the apiserver requests the operator made per Experiment.
#
#   benches/operator-throughput.sh [COUNT] [GPU_ADMISSION]
#
# GPU_ADMISSION (default true) is the operator's --gpu-admission: with false, every Experiment
# gets a pod at once and the scheduler holds those that find no GPU.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
count=${1:-1000}
admission=${2:-true}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
export K8S_TEST_BIN
K8S_TEST_BIN=$(scripts/k8s-bins.sh ensure | tail -n 1)
cargo build --release --locked -p spore-tests --bin spore-testenv -p spore-operator --bin spore-operator >&2
bin=$CARGO_TARGET_DIR/release
dir=$(mktemp -d)
trap '"$bin/spore-testenv" down --dir "$dir" >/dev/null 2>&1; kill "$operator" 2>/dev/null; rm -rf "$dir"' EXIT
"$bin/spore-testenv" up --dir "$dir" --k8s --gpus 16 >&2
# shellcheck disable=SC1091
source "$dir/env.sh"
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/experiments.sporemesh.io >/dev/null
kubectl create namespace bench >/dev/null

# The operator's requests: everything on pods and SporeNodes, and status patches of Experiments
# (kubectl here only creates and lists Experiments).
requests() {
  kubectl get --raw /metrics | awk '/^apiserver_request_total\{/ && (/resource="pods"/ || /resource="sporenodes"/ || (/resource="experiments"/ && /verb="(PATCH|APPLY)"/)) { s += $NF } END { print s + 0 }'
}
"$bin/spore-operator" run --leader-election=false --gpu-admission="$admission" --metrics-address 127.0.0.1:0 --health-address 127.0.0.1:0 \
  >"$dir/operator.log" 2>&1 &
operator=$!
sleep 2
before=$(requests)

manifest=$dir/experiments.yaml
for i in $(seq 1 "$count"); do
  printf 'apiVersion: sporemesh.io/v1alpha1\nkind: Experiment\nmetadata: {name: e%05d}\nspec:\n  node: bench-node\n  code: {inline: "print(1)"}\n  gpu: {count: 1}\n---\n' "$i"
done >"$manifest"
start=$(date +%s.%N)
kubectl create -n bench -f "$manifest" >/dev/null
created=$(date +%s.%N)
while :; do
  done_count=$(kubectl get experiments -n bench -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c . || true)
  [ "$done_count" -ge "$count" ] && break
  sleep 0.5
done
end=$(date +%s.%N)
after=$(requests)
awk -v n="$count" -v s="$start" -v c="$created" -v e="$end" -v b="$before" -v a="$after" 'BEGIN {
  printf "%d Experiments with a status in %.1f s: %.1f Experiments/s, %.1f apiserver requests per Experiment\n", n, e - s, n / (e - s), (a - b) / n
  printf "(kubectl create alone: %.1f s = %.1f Experiments/s; the last status %.1f s after it returned)\n", c - s, n / (c - s), e - c
}'
kubectl get experiments -n bench -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | sort | uniq -c

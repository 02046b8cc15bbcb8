#!/usr/bin/env bash
# Runs the spore-spec criterion benchmarks and the same operations in the Python reference peer,
# in one run on this machine, and prints records/s side by side with the ratio.
#
#   benches/compare-spec.sh            (about 2 minutes on 2 cores)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
python=$(scripts/python-ref.sh | tail -n 1)

rust_out=$(cargo bench --locked -p spore-spec --bench spec -- --warm-up-time 1 --measurement-time 3 \
  --output-format bencher 2>/dev/null | grep '^test ')
py_out=$("$python" benches/reference_spec.py)

echo "$rust_out" >&2
printf '%-40s %14s %14s %8s\n' operation "rust rec/s" "python rec/s" ratio
while read -r _ name _ _ ns _; do
  ns=${ns//,/}
  per=1
  case "$name" in
    batch/*_64* | frame/*_64_frames) per=64 ;;
  esac
  rust_rate=$(awk -v ns="$ns" -v per="$per" 'BEGIN { printf "%.0f", per * 1e9 / ns }')
  key=${name#*/}
  case "$name" in batch/verify_records_64*) key=verify_cid_and_signature ;; esac
  py_rate=$(echo "$py_out" | awk -v k="$key" '$1 == k { printf "%.0f", $2 }')
  if [ -n "$py_rate" ]; then
    ratio=$(awk -v r="$rust_rate" -v p="$py_rate" 'BEGIN { printf "%.1fx", r / p }')
  else
    py_rate="-"; ratio="-"
  fi
  printf '%-40s %14s %14s %8s\n' "$name" "$rust_rate" "$py_rate" "$ratio"
done <<<"$rust_out"

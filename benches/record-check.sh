#!/usr/bin/env bash
# `spore record check` against the Python reference peer on the same file, in one run: 20,000
# signed records of about 2.5 KB from 8 publishers. Prints records/s of each and the ratio.
#
#   benches/record-check.sh [RECORDS]        (about a minute on 2 cores, after the release build)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/spore/target}
count=${1:-20000}
python=$(scripts/python-ref.sh | tail -n 1)
cargo build --release --locked -p spore-agent --bin spore >&2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$python" benches/record_check_reference.py generate "$dir/records.jsonl" "$count"
echo "records: $count, $(($(wc -c <"$dir/records.jsonl") / count)) bytes each, $(nproc) cores" >&2

read -r py_lines py_seconds py_ok < <("$python" benches/record_check_reference.py check "$dir/records.jsonl")
start=$(date +%s.%N)
"$CARGO_TARGET_DIR/release/spore" record check "$dir/records.jsonl" >"$dir/verdicts.jsonl"
end=$(date +%s.%N)
rust_ok=$(grep -c '"sig_ok":true,"error":null' "$dir/verdicts.jsonl" || true)
[ "$py_ok" = "$count" ] && [ "$rust_ok" = "$count" ] || { echo "verdicts differ: python $py_ok, rust $rust_ok of $count" >&2; exit 1; }
awk -v n="$py_lines" -v p="$py_seconds" -v s="$start" -v e="$end" 'BEGIN {
  r = e - s
  printf "%-22s %12s %12s\n", "", "records/s", "seconds"
  printf "%-22s %12.0f %12.2f\n", "python reference", n / p, p
  printf "%-22s %12.0f %12.2f\n", "spore record check", n / r, r
  printf "ratio %.1fx\n", p / r
}'

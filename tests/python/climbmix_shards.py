"""Writes small parquet shards in the climbmix dataset's layout (a `text` column, row groups) for
the tests: `python climbmix_shards.py OUT TRAIN_SHARDS [DOCS_PER_SHARD]` writes
OUT/shard_00000.parquet .. and the validation shard OUT/shard_06542.parquet. The documents are
source files of the Python standard library (real, varied text; the same on every machine with
the same Python), taken in path order.
"""

import sys
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

out = Path(sys.argv[1])
train_shards = int(sys.argv[2])
per_shard = int(sys.argv[3]) if len(sys.argv) > 3 else 300
root = Path(sysconfig.get_paths()["stdlib"])
docs = []
for path in sorted(root.rglob("*.py")):
    if "site-packages" in path.parts:
        continue
    text = path.read_text(encoding="utf-8", errors="replace")
    if 200 < len(text) < 40_000:
        docs.append(text)
needed = per_shard * (train_shards + 1)
if len(docs) < needed:
    raise SystemExit(f"only {len(docs)} documents, {needed} needed")
out.mkdir(parents=True, exist_ok=True)
names = [f"shard_{i:05d}.parquet" for i in range(train_shards)] + ["shard_06542.parquet"]
for i, name in enumerate(names):
    table = pa.table({"text": docs[i * per_shard : (i + 1) * per_shard]})
    pq.write_table(table, out / name, row_group_size=64)

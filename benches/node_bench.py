"""Whole-node benchmarks, ours and the Python reference side by side in one run.

  node_bench.py --spore PATH [--records N] [--line-nodes K] [--line-records M] [--rust-only]

Measures, for each implementation, on this machine and on disk (a temporary directory):
  ingest   N signed records sent over one TCP connection to a full node, until all are stored
  sync     a fresh node dialing that node, until it holds all N
  line     M records published at one end of a line of K nodes, until the far end holds them
and each node's peak RSS. Before each implementation's ingest and line runs, the disk writes the
previous ones left pending are written back (`os.sync()`) and each run's directories are removed
after it, so neither implementation pays for the other's writes. Prints a table with the ratios. Run it through
benches/compare-node.sh, which builds `spore` in release mode and finds the Python virtualenv.
"""

import argparse
import json
import os
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

from nacl.signing import SigningKey
from spore.record import ExperimentRecord, Status

HERE = os.path.dirname(os.path.abspath(__file__))
PY_NODE = os.path.join(HERE, "..", "tests", "python", "python_node.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_frames(count):
    sk = SigningKey(bytes([11]) * 32)
    node_id = sk.verify_key.encode().hex()
    frames = []
    for n in range(count):
        rec = ExperimentRecord(
            parent=None, depth=0, code_cid="%064x" % n, diff="-LR = 0.04\n+LR = 0.05\n" * 20,
            dataset_cid="climbmix-400b-shuffle", prepare_cid="", time_budget=300, val_bpb=1.0 - n * 1e-7,
            peak_vram_mb=45060.2, num_steps=953, num_params=50331648,
            status=Status.KEEP if n % 2 else Status.DISCARD, description="bench %d" % n, hypothesis="",
            agent_model="bench", gpu_model="NVIDIA_H100_80GB_HBM3", cuda_version="12.8", torch_version="2.9.0",
            node_id=node_id, timestamp=1773000000 + n,
        )
        rec.sign(sk)
        body = json.dumps({"type": "experiment", "payload": json.loads(rec.to_json())}, separators=(",", ":")).encode()
        frames.append(struct.pack(">I", len(body)) + body)
    return frames


class Node:
    """One node process of either implementation."""

    def __init__(self, kind, spore, data_dir, peers=()):
        self.kind, self.data_dir, self.port = kind, data_dir, free_port()
        os.makedirs(data_dir, exist_ok=True)
        log = open(os.path.join(data_dir, "bench.log"), "w")
        if kind == "rust":
            cmd = [spore, "run", "--no-train", "--no-explorer", "--no-bootstrap", "--host", "127.0.0.1",
                   "--port", str(self.port), "--no-grpc", "--no-metrics", "--data-dir", data_dir]
            for p in peers:
                cmd += ["--peer", p]
            self.db = os.path.join(data_dir, "db", "dag.sqlite")
            self.table = "record"
        else:
            cmd = [sys.executable, PY_NODE, "run", "--port", str(self.port), "--data-dir", data_dir]
            cmd += ["--genesis"] if not peers else sum([["--peer", p] for p in peers], [])
            self.db = os.path.join(data_dir, "db", "graph.sqlite")
            self.table = "experiment"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("%s node did not start" % kind)

    def address(self):
        return "127.0.0.1:%d" % self.port

    def has(self, n):
        """True once the store holds n rows. COUNT(*) reads the whole table (polled every 10 ms
        during a sync of 100,000 it took about half a core-second from the machine both nodes
        share); rowids are positive and distinct, so a largest rowid below n (an index lookup)
        already says "not yet"."""
        try:
            conn = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=1)
            top = conn.execute("SELECT max(rowid) FROM %s" % self.table).fetchone()[0] or 0
            reached = top >= n and conn.execute("SELECT COUNT(*) FROM %s" % self.table).fetchone()[0] >= n
            conn.close()
            return reached
        except sqlite3.Error:
            return False

    def wait_count(self, n, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.has(n):
                return True
            time.sleep(0.01)
        return False

    def peak_rss_mb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def ingest(node, frames):
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", node.port)) as s:
        s.sendall(b"".join(frames))
        ok = node.wait_count(len(frames))
    return time.perf_counter() - start if ok else float("nan")


def settle():
    """Writes back what the previous measurement left dirty, so that neither implementation pays
    for the other's disk writes (both get this before each of their measurements)."""
    os.sync()
    time.sleep(1)


def bench(kind, spore, frames, line_nodes, line_frames, root):
    result = {}
    settle()
    origin = Node(kind, spore, os.path.join(root, kind, "origin"))
    seconds = ingest(origin, frames)
    result["ingest_rate"] = len(frames) / seconds
    result["ingest_rss"] = origin.peak_rss_mb()
    start = time.perf_counter()
    fresh = Node(kind, spore, os.path.join(root, kind, "fresh"), peers=[origin.address()])
    ok = fresh.wait_count(len(frames))
    result["sync_seconds"] = time.perf_counter() - start if ok else float("nan")
    result["sync_rss"] = fresh.peak_rss_mb()
    fresh.stop()
    origin.stop()
    shutil.rmtree(os.path.join(root, kind))
    settle()

    line = [Node(kind, spore, os.path.join(root, kind, "line0"))]
    for i in range(1, line_nodes):
        line.append(Node(kind, spore, os.path.join(root, kind, "line%d" % i), peers=[line[-1].address()]))
    time.sleep(2)  # connections and (empty) syncs settle
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", line[0].port)) as s:
        s.sendall(b"".join(line_frames))
        ok = line[-1].wait_count(len(line_frames))
    result["line_seconds"] = time.perf_counter() - start if ok else float("nan")
    for node in line:
        node.stop()
    shutil.rmtree(os.path.join(root, kind))
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spore", required=True)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--line-nodes", type=int, default=10)
    parser.add_argument("--line-records", type=int, default=1000)
    parser.add_argument("--rust-only", action="store_true", help="measure only ours (no ratios)")
    args = parser.parse_args()
    frames = make_frames(args.records)
    line_frames = make_frames(args.line_records + args.records)[args.records:]
    root = tempfile.mkdtemp(prefix="spore-node-bench-", dir=os.environ.get("BENCH_DIR"))
    kinds = ("rust",) if args.rust_only else ("python", "rust")
    results = {kind: bench(kind, args.spore, frames, args.line_nodes, line_frames, root) for kind in kinds}
    shutil.rmtree(root)
    if args.rust_only:
        print(json.dumps(results["rust"], indent=1))
        return
    py, rs = results["python"], results["rust"]
    rows = [
        ("ingest %d records over 1 TCP connection (records/s)" % args.records, py["ingest_rate"], rs["ingest_rate"], rs["ingest_rate"] / py["ingest_rate"]),
        ("peak RSS during ingest (MB)", py["ingest_rss"], rs["ingest_rss"], py["ingest_rss"] / rs["ingest_rss"]),
        ("sync %d records to a fresh node (s)" % args.records, py["sync_seconds"], rs["sync_seconds"], py["sync_seconds"] / rs["sync_seconds"]),
        ("%d records along a line of %d nodes (s)" % (args.line_records, args.line_nodes), py["line_seconds"], rs["line_seconds"], py["line_seconds"] / rs["line_seconds"]),
    ]
    print("%-60s %12s %12s %10s" % ("measure", "python", "rust", "advantage"))
    for name, p, r, ratio in rows:
        print("%-60s %12.2f %12.2f %9.1fx" % (name, p, r, ratio))


if __name__ == "__main__":
    main()

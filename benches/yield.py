#!/usr/bin/env python3
"""Yield: does a shared frontier find better train.py per unit of compute than isolated nodes?

Both configurations spend the same compute: N `spore run` nodes started at once, each running E
experiments (`--max-experiments E`, its own baseline included), on the CPU profile with the
built-in mutator (or an LLM proposer when `spore set` configured one in --llm-from).

* shared: nodes 1.. dial node 0, so every node's records and code reach every other over
  gossip, and each node builds on the frontier they share.
* isolated: no node hears of the others.

Node i is pinned to CPU i (`taskset`; train.py trains on the CPUs it may use), so N nodes on
N cores do not slow each other down. The noise is measured once, before everything (each node's
baseline and its two re-runs, N nodes at once), and the merged `noise.json` is given to every
node, so no node spends runs re-measuring and every keep is judged by the same margin.
Spot-checks are off (`--spot-check-rate 0`): no run is spent on verification. Each
configuration's best record (its lowest claimed `val_bpb`) is then re-measured --remeasure
times, on one CPU each as the search ran, so the figure is not a lucky draw.

Run from benches/yield.sh, which builds the binaries and finds the workspace's torch.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="spore-yield-"))
        self.noise = None

    def node_args(self, data, port):
        a = self.args
        return [
            a.spore, "run", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port),
            "--grpc-port", "0", "--metrics-port", "0", "--no-explorer", "--no-bootstrap",
            "--python", a.python, "--time-budget", str(a.budget), "--spot-check-rate", "0",
        ]

    def prepare(self, data):
        data.mkdir(parents=True)
        if self.noise:
            shutil.copy(self.noise, data / "noise.json")
        if self.args.llm_from:
            shutil.copy(Path(self.args.llm_from) / "llm.toml", data / "llm.toml")

    def start(self, data, port, extra, log, cpu=0):
        """A node pinned to one CPU (`taskset`): its training runs there alone (train.py uses
        the CPUs it may run on), so N nodes on N cores do not slow each other down."""
        env = dict(os.environ, SPORE_EVAL=self.args.spore_eval, RUST_LOG="info")
        pin = ["taskset", "-c", str(cpu % os.cpu_count())]
        return subprocess.Popen(pin + self.node_args(data, port) + extra, stdout=subprocess.DEVNULL,
                                stderr=open(log, "w"), env=env)

    def export(self, data, check=True):
        """The node's records ([] while it has not made its identity yet, unless `check`)."""
        out = subprocess.run([self.args.spore, "record", "export", "--data-dir", str(data)],
                             capture_output=True, text=True, check=check)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []

    def wait(self, procs, what):
        for p in procs:
            if p.wait() != 0:
                sys.exit(f"yield: a node of {what} failed (exit {p.returncode}); logs in {self.root}")

    def calibrate(self):
        """N nodes at once (the load of the search), each a baseline, two re-runs of it and one
        child: their noise books, merged, are the book every node gets."""
        dirs = [self.root / "calibration" / f"node{i}" for i in range(self.args.nodes)]
        procs = []
        for i, d in enumerate(dirs):
            self.prepare(d)
            procs.append(self.start(d, free_port(), ["--genesis", "--max-experiments", "2"], d.with_suffix(".log"), i))
        self.wait(procs, "the calibration")
        groups = []
        for d in dirs:
            groups += json.loads((d / "noise.json").read_text())["groups"]
        self.noise = self.root / "noise.json"
        self.noise.write_text(json.dumps({"groups": groups, "keep_margin": None}))
        return [g["values"] for g in groups if len(g["values"]) > 1]

    def shared(self, tag):
        return self.nodes(tag, share=True)

    def isolated(self, tag):
        return self.nodes(tag, share=False)

    def nodes(self, tag, share):
        """N nodes started at once, each running its own baseline first; with `share`, nodes 1..
        dial node 0."""
        n, e = self.args.nodes, self.args.experiments
        dirs = [self.root / tag / f"node{i}" for i in range(n)]
        ports = [free_port() for _ in range(n)]
        procs = []
        for i, (d, port) in enumerate(zip(dirs, ports)):
            self.prepare(d)
            # `--genesis` also means "dial nobody" (Python's): the nodes that dial node 0 start
            # without it, find no record to build on yet, and run their own baseline too.
            extra = ["--max-experiments", str(e)]
            extra += ["--peer", f"127.0.0.1:{ports[0]}"] if share and i > 0 else ["--genesis"]
            procs.append(self.start(d, port, extra, d.with_suffix(".log"), i))
        self.wait(procs, tag)
        return dirs

    def code(self, dirs, cid):
        for d in dirs:
            path = d / "artifact" / cid[0:2] / cid[2:4] / cid
            if path.is_file():
                return path.read_text()
        sys.exit(f"yield: no node has the code {cid}")

    def remeasure(self, code, tag):
        """`val_bpb` of `code` measured --remeasure times as baselines, one per CPU at a time."""
        runs = []
        for i in range(self.args.remeasure):
            data = self.root / tag / f"remeasure{i}"
            ws = data / "ws"
            ws.mkdir(parents=True)
            for name in ("prepare.py", "batching.py", "requirements.txt"):
                shutil.copy(self.root / "calibration" / "node0" / "workspace" / name, ws / name)
            (ws / "train.py").write_text(code)
            runs.append((data, ["--genesis", "--max-experiments", "1", "--workspace", str(ws)]))
        values = []
        cpus = min(self.args.nodes, os.cpu_count())
        for batch in range(0, len(runs), cpus):
            procs = [self.start(data, free_port(), args, data.with_suffix(".log"), cpu)
                     for cpu, (data, args) in enumerate(runs[batch:batch + cpus])]
            self.wait(procs, f"a re-measurement of {tag}")
            for data, _ in runs[batch:batch + cpus]:
                [record] = self.export(data)
                if record["status"] == "crash":
                    sys.exit(f"yield: the re-measurement of {tag} crashed; see {data}.log")
                values.append(record["val_bpb"])
        return values


def spread(values):
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, sd


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spore", required=True)
    p.add_argument("--spore-eval", required=True)
    p.add_argument("--python", required=True)
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--experiments", type=int, default=6, help="per node, the baseline included")
    p.add_argument("--budget", type=int, default=20, help="seconds of training per run")
    p.add_argument("--repeats", type=int, default=2, help="each with fresh identities (the mutator's seeds)")
    p.add_argument("--remeasure", type=int, default=3)
    p.add_argument("--llm-from", help="a data directory whose llm.toml (`spore set`) every node uses")
    p.add_argument("--keep", action="store_true", help="keep the nodes' directories")
    a = p.parse_args()
    bench = Bench(a)
    started = time.time()
    print(f"yield: {a.nodes} nodes x {a.experiments} runs of {a.budget} s per configuration, "
          f"{a.repeats} repeats, best re-measured {a.remeasure}x; work in {bench.root}", file=sys.stderr)
    groups = bench.calibrate()
    values = [v for g in groups for v in g]
    base_mean, _ = spread(values)
    pooled = (sum(sum((v - statistics.fmean(g)) ** 2 for v in g) for g in groups)
              / sum(len(g) - 1 for g in groups)) ** 0.5
    base_sd = pooled
    print(f"baseline: {len(values)} runs on {len(groups)} nodes at once, val_bpb {base_mean:.4f}, "
          f"noise sd (pooled) {pooled:.4f}; this noise book is given to every node", flush=True)
    rows = {"shared": [], "isolated": []}
    print(f"{'repeat':>6}  {'config':8}  {'runs':>4}  {'keeps':>5}  {'cross':>5}  {'best claimed':>12}  "
          f"{'re-measured (mean ± sd)':>24}", flush=True)
    for r in range(a.repeats):
        for config in ("shared", "isolated"):
            tag = f"r{r}-{config}"
            dirs = getattr(bench, config)(tag)
            records = {}
            for d in dirs:
                for rec in bench.export(d):
                    records[rec["id"]] = rec
            keeps = [x for x in records.values() if x["status"] == "keep"]
            # Children built on a record another node published: what sharing bought.
            cross = sum(1 for x in records.values()
                        if x["parent"] in records and records[x["parent"]]["node_id"] != x["node_id"])
            best = min(keeps, key=lambda x: x["val_bpb"])
            values = bench.remeasure(bench.code(dirs, best["code_cid"]), tag)
            mean, sd = spread(values)
            rows[config].append(mean)
            print(f"{r:>6}  {config:8}  {len(records):>4}  {len(keeps):>5}  {cross:>5}  {best['val_bpb']:>12.4f}  "
                  f"{mean:>15.4f} ± {sd:.4f}", flush=True)
    print("summary (re-measured best, mean over repeats ± sd of the repeats; lower is better):")
    for config, means in rows.items():
        mean, sd = spread(means)
        print(f"  {config:8}  {mean:.4f} ± {sd:.4f}   gain over the baseline {base_mean - mean:+.4f}")
    shared, isolated = statistics.fmean(rows["shared"]), statistics.fmean(rows["isolated"])
    print(f"  shared - isolated: {shared - isolated:+.4f} bpb "
          f"(noise sd of one run {base_sd:.4f}); "
          f"{time.time() - started:.0f} s in all")
    if not a.keep:
        shutil.rmtree(bench.root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Two or more builds of `spore`, interleaved on the same input: for a change's effect, where the
machine's drift between minutes would swamp a comparison of separate runs.

  ab.py ingest N BIN...   ingest of N records over one TCP connection: rate and peak RSS
  ab.py line BIN...       1,000 records published at one end of a line of 10 nodes: time, and
                          the CPU all ten nodes used (from /proc)
  ab.py sync N BIN...     a fresh node syncing N records from a node that ingested them: time,
                          the fresh node's CPU by thread and the serving node's CPU (with
                          AB_BUSY=1 also the machine's busy share every 100 ms of the sync)

Three rounds; each round runs every build once, in the order given. Run with the Python
reference's virtualenv (benches/compare-node.sh prints how to find it: scripts/python-ref.sh).
"""

import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import node_bench as nb  # noqa: E402


def cpu_seconds(node):
    fields = open("/proc/%d/stat" % node.proc.pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest(spore, frames, root):
    node = nb.Node("rust", spore, os.path.join(root, "origin"))
    seconds = nb.ingest(node, frames)
    rss = node.peak_rss_mb()
    node.stop()
    return "%8.0f/s  peak RSS %.1f MB" % (len(frames) / seconds, rss)


def thread_seconds(node):
    """CPU seconds by thread name (threads of one name added up)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % node.proc.pid):
        stat = open("/proc/%d/task/%s/stat" % (node.proc.pid, tid)).read()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


class BusySampler(threading.Thread):
    """The whole machine's busy share (from /proc/stat) every 100 ms, while it runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.done = [], threading.Event()

    @staticmethod
    def totals():
        values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
        return sum(values), values[3] + values[4]

    def run(self):
        total, idle = self.totals()
        while not self.done.wait(0.1):
            now_total, now_idle = self.totals()
            self.samples.append(1 - (now_idle - idle) / max(1, now_total - total))
            total, idle = now_total, now_idle

    def stop(self):
        self.done.set()
        self.join()
        return " ".join("%.0f" % (100 * busy) for busy in self.samples)


def sync(spore, frames, root):
    origin = nb.Node("rust", spore, os.path.join(root, "origin"))
    nb.ingest(origin, frames)
    nb.settle()
    served_before = cpu_seconds(origin)
    sampler = BusySampler() if os.environ.get("AB_BUSY") else None
    if sampler:
        sampler.start()
    start = time.perf_counter()
    fresh = nb.Node("rust", spore, os.path.join(root, "fresh"), peers=[origin.address()])
    fresh.wait_count(len(frames))
    wall = time.perf_counter() - start
    if sampler:
        print("  busy %% every 100 ms: %s" % sampler.stop(), flush=True)
    threads = thread_seconds(fresh)
    served = cpu_seconds(origin) - served_before
    fresh.stop()
    origin.stop()
    by_thread = " ".join("%s %.2f" % (name, sec) for name, sec in sorted(threads.items()) if sec > 0)
    return "%.2f s  fresh CPU %.2f s (%s)  serving CPU %.2f s" % (wall, sum(threads.values()), by_thread, served)


def line(spore, frames, root):
    nodes = [nb.Node("rust", spore, os.path.join(root, "line0"))]
    for i in range(1, 10):
        nodes.append(nb.Node("rust", spore, os.path.join(root, "line%d" % i), peers=[nodes[-1].address()]))
    time.sleep(2)
    before = sum(cpu_seconds(n) for n in nodes)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", nodes[0].port)) as s:
        s.sendall(b"".join(frames))
        nodes[-1].wait_count(len(frames))
    wall = time.perf_counter() - start
    time.sleep(0.3)  # the last relays
    used = sum(cpu_seconds(n) for n in nodes) - before
    for node in nodes:
        node.stop()
    return "%.2f s  CPU of all nodes %.2f s" % (wall, used)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "ingest":
        frames, builds, run = nb.make_frames(int(args[0])), args[1:], ingest
    elif mode == "sync":
        frames, builds, run = nb.make_frames(int(args[0])), args[1:], sync
    elif mode == "line":
        frames, builds, run = nb.make_frames(1000), args, line
    else:
        sys.exit(__doc__)
    for _ in range(3):
        for spore in builds:
            nb.settle()
            root = tempfile.mkdtemp(prefix="spore-ab-", dir=os.environ.get("BENCH_DIR"))
            print("%-40s %s" % (spore, run(spore, frames, root)), flush=True)
            shutil.rmtree(root)


if __name__ == "__main__":
    main()

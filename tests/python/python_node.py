"""Runs a real sporemesh 0.1.2 node (spore.node.SporeNode) for interop tests.

  python_node.py run --port P --data-dir D [--peer H:P ...] [--genesis]
                     [--publish N] [--publish-delay S] [--seed HEX]
      Starts the node, prints "READY <port>" once listening, publishes N chained records after
      the delay, prints "PUBLISHED <n>", and runs until SIGTERM.
  python_node.py ids --data-dir D
      Prints the ids of every record in the node's graph, one per line.

Runs under the virtualenv that scripts/python-ref.sh creates.
"""

import argparse
import asyncio
import os
import signal
import sys

from nacl.signing import SigningKey

from spore.graph import ResearchGraph
from spore.node import NodeConfig, SporeNode
from spore.record import ExperimentRecord, Status


def record(parent, depth, n):
    return ExperimentRecord(
        parent=parent.id if parent else None,
        depth=depth,
        code_cid="%064x" % n,
        diff="" if parent is None else "-LR = 0.04\n+LR = %d\n" % n,
        dataset_cid="climbmix-400b-shuffle",
        prepare_cid="",
        time_budget=300,
        val_bpb=1.0 - n * 0.001,
        peak_vram_mb=45060.2,
        num_steps=953,
        num_params=50331648,
        status=Status.KEEP if n % 3 else Status.DISCARD,
        description="python record %d" % n,
        hypothesis="",
        agent_model="python-test",
        gpu_model="NVIDIA_H100_80GB_HBM3",
        cuda_version="12.8",
        torch_version="2.9.0",
        node_id="",
    )


async def run(args):
    os.makedirs(os.path.join(args.data_dir, "db"), exist_ok=True)
    config = NodeConfig(host=args.host, port=args.port, peer=args.peer, data_dir=args.data_dir)
    node = SporeNode(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await node.start(skip_peer=args.genesis)
    print("READY %d" % args.port, flush=True)
    if args.publish:
        await asyncio.sleep(args.publish_delay)
        parent = None
        for n in range(args.publish):
            rec = record(parent, 0 if parent is None else parent.depth + 1, n + args.offset)
            await node.publish_experiment(rec)
            if rec.status == Status.KEEP:
                parent = rec
        print("PUBLISHED %d" % args.publish, flush=True)
    await stop.wait()
    await node.stop()


def ids(args):
    graph = ResearchGraph(args.data_dir + "/db/graph.sqlite")
    for rec in graph.all_records():
        print(rec.id)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--data-dir", required=True)
    r.add_argument("--peer", action="append", default=[])
    r.add_argument("--genesis", action="store_true")
    r.add_argument("--publish", type=int, default=0)
    r.add_argument("--publish-delay", type=float, default=0.0)
    r.add_argument("--offset", type=int, default=0)
    i = sub.add_parser("ids")
    i.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    if args.command == "run":
        asyncio.run(run(args))
    else:
        ids(args)


if __name__ == "__main__":
    sys.exit(main())

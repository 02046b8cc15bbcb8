"""Runs a real sporemesh node (spore.node.SporeNode; 0.1.2, or a later release under its own
virtualenv) for interop tests.

  python_node.py run --port P --data-dir D [--peer H:P ...] [--genesis]
                     [--publish N] [--publish-delay S] [--offset N] [--verify N]
      Starts the node, prints "READY <port>" once listening, publishes N chained records after
      the delay, prints "PUBLISHED <n>", signs and broadcasts a verification event for N of its
      records (0.3.10 and later), and runs until SIGTERM.
  python_node.py ids --data-dir D
      Prints the ids of every record in the node's graph, one per line.
  python_node.py dump --data-dir D
      Prints every record in the node's graph as the release writes it (to_json), one per line,
      keys sorted.
  python_node.py controls --data-dir D
      Prints the event id of every signed control event the node stored (0.3.10 and later).
  python_node.py tasks --data-dir D
      Prints the id of every signed task manifest the node stored (0.5.0 and later).

Runs under the virtualenv that scripts/python-ref.sh creates.
"""

import argparse
import asyncio
import json
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
        if hasattr(node, "create_task"):
            # From 0.5.0 on, every record belongs to a task: publish one, as `spore task create` does.
            manifest = node.create_task(
                name="interop %d" % args.offset,
                description="records published by an interop test",
                task_type="ml_train",
                artifact_type="python_script",
                metric="val_bpb",
                goal="minimize",
                base_code_cid="%064x" % args.offset,
                prepare_cid="",
                dataset_cid="climbmix-400b-shuffle",
                time_budget=300,
            )
            await node.publish_task(manifest)
            print("TASK %s" % manifest.task_id, flush=True)
        parent = None
        for n in range(args.publish):
            rec = record(parent, 0 if parent is None else parent.depth + 1, n + args.offset)
            await node.publish_experiment(rec)
            # The first record is the root of the chain (a task has one root from 0.5.0 on).
            if rec.status == Status.KEEP or parent is None:
                parent = rec
        print("PUBLISHED %d" % args.publish, flush=True)
    if args.verify:
        # 0.3.10 and later: a signed `verification` event for each record, as the verifier
        # broadcasts it after a re-run that reproduced the claim.
        for rec in node.graph.all_records()[: args.verify]:
            payload = {
                "event_id": "verification:%s:%s" % (rec.id, node.node_id),
                "experiment_id": rec.id,
                "task_id": getattr(rec, "task_id", ""),
                "verified_node_id": rec.node_id,
                "verifier_id": node.node_id,
                "verifier_gpu": rec.gpu_model,
                "verifier_bpb": rec.val_bpb,
                "is_frontier": False,
            }
            await node.gossip.broadcast_verification(node.make_control_event("verification", payload))
        print("VERIFIED %d" % args.verify, flush=True)
    await stop.wait()
    await node.stop()


def ids(args):
    graph = ResearchGraph(args.data_dir + "/db/graph.sqlite")
    for rec in graph.all_records():
        print(rec.id)


def dump(args):
    graph = ResearchGraph(args.data_dir + "/db/graph.sqlite")
    for rec in graph.all_records():
        print(json.dumps(json.loads(rec.to_json()), sort_keys=True))


def controls(args):
    from spore.control_store import ControlStore

    store = ControlStore(args.data_dir + "/db/control.sqlite")
    for event in store.list_since(0):
        print(event.id)


def tasks(args):
    from spore.task_store import TaskStore

    store = TaskStore(args.data_dir + "/db/task.sqlite")
    for manifest in store.manifests():
        print(manifest.task_id)


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
    r.add_argument("--verify", type=int, default=0)
    for name in ("ids", "dump", "controls", "tasks"):
        sub.add_parser(name).add_argument("--data-dir", required=True)
    args = parser.parse_args()
    if args.command == "run":
        asyncio.run(run(args))
    elif args.command == "dump":
        dump(args)
    elif args.command == "controls":
        controls(args)
    elif args.command == "tasks":
        tasks(args)
    else:
        ids(args)


if __name__ == "__main__":
    sys.exit(main())

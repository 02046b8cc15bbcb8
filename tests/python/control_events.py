"""Signed control events as `sporemesh` 0.3.10 and later make and read them (0.5.0's
`control.py` and `gossip.py`): the payload of a `challenge`, `challenge_response`, `verification`
or `dispute` message *is* the signed envelope.

  control_events.py make N SEED   print N frame bodies (JSON lines), each a signed event as
                                  Python sends it, a third of them tampered, with Python's verdict
  control_events.py check         read frame bodies (one per line) and print, for each, whether
                                  Python's receiver (`GossipNode._parse_control_event`) keeps it

Runs under the virtualenv that `scripts/python-ref.sh 0.5.0` creates.
"""

import json
import random
import sys

from nacl.signing import SigningKey
from spore.control import SignedControlEvent

ACTOR = {"challenge": "challenger_id", "challenge_response": "verifier_id",
         "dispute": "challenger_id", "verification": "verifier_id"}


def hex64(rng):
    return "%064x" % rng.getrandbits(256)


def payload(rng, kind, actor):
    exp, task = hex64(rng), rng.choice(["", hex64(rng)])
    bpb = rng.choice([rng.uniform(0.8, 1.2), round(rng.uniform(0.8, 1.2), 4), 1e-05])
    gpu = rng.choice(["H100", "NVIDIA_H100_80GB_HBM3", "RTX_4090", "cpu", "naïve \"gpu\""])
    if kind == "challenge":
        return {"event_id": f"challenge:{exp}:{actor}", "experiment_id": exp, "task_id": task,
                "challenger_id": actor, "challenger_bpb": bpb, "challenger_gpu": gpu}
    if kind == "challenge_response":
        challenger = hex64(rng)
        return {"event_id": f"challenge_response:{exp}:{challenger}:{actor}", "experiment_id": exp,
                "task_id": task, "challenger_id": challenger, "verifier_id": actor, "verifier_bpb": bpb,
                "verifier_gpu": gpu}
    if kind == "verification":
        return {"event_id": f"verification:{exp}:{actor}", "experiment_id": exp, "task_id": task,
                "verified_node_id": hex64(rng), "verifier_id": actor, "verifier_gpu": gpu,
                "verifier_bpb": bpb, "is_frontier": rng.random() < 0.5}
    return {"event_id": f"dispute:{exp}:{actor}", "experiment_id": exp, "task_id": task,
            "original_node_id": hex64(rng), "challenger_id": actor, "challenger_bpb": bpb,
            "outcome": rng.choice(["upheld", "rejected"]), "ground_truth_bpb": bpb,
            "verifier_count": rng.randint(1, 5), "winner_verifier_ids": [hex64(rng)],
            "loser_verifier_ids": []}


def keeps(body):
    """What GossipNode._parse_control_event decides for a received message."""
    message = json.loads(body)
    msg_type, data = message.get("type"), message.get("payload")
    try:
        event = SignedControlEvent.from_json(data)
    except Exception:
        return False
    return (event.type == msg_type and event.verify_id() and event.verify_signature()
            and event.payload.get(ACTOR.get(msg_type, ""), "") == event.node_id)


def make(count, seed):
    rng = random.Random(seed)
    keys = [SigningKey(bytes(rng.getrandbits(8) for _ in range(32))) for _ in range(3)]
    for i in range(count):
        key = rng.choice(keys)
        node_id = key.verify_key.encode().hex()
        kind = rng.choice(list(ACTOR))
        event = SignedControlEvent(type=kind, payload=payload(rng, kind, node_id), node_id=node_id,
                                   timestamp=rng.randint(1_700_000_000, 1_790_000_000))
        event.sign(key)
        data = event.to_dict()
        if i % 3 == 2:
            mode = rng.randrange(3)
            if mode == 0:
                data["payload"][ACTOR[kind]] = hex64(rng)
            elif mode == 1:
                data["signature"] = "%0128x" % rng.getrandbits(512)
            else:
                data["timestamp"] += 1
        body = json.dumps({"type": kind, "payload": data}, separators=(",", ":"))
        print(json.dumps({"body": body, "keeps": keeps(body)}))


def check():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(keeps(line)))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(int(sys.argv[2]), int(sys.argv[3]))
    else:
        check()

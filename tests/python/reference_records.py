"""Differential oracle: random records made and judged by the real sporemesh code (0.1.2, or
0.5.0 and later, whose records carry `task_id`, signed when `version >= 2`).

  reference_records.py generate N SEED   print N JSON lines, each a random (often tampered)
                                         record with Python's canonical bytes, CID and verdicts
  reference_records.py floats N SEED     print N random doubles (as big-endian hex) and their
                                         Python JSON text
  reference_records.py verify            read wire payloads (one JSON object per line) and print
                                         Python's canonical bytes, CID and verdicts for each

Runs under the virtualenv that scripts/python-ref.sh creates.
"""

import dataclasses
import json
import random
import struct
import sys

from nacl.signing import SigningKey
from spore.record import ExperimentRecord, Status

# 0.5.0 and later: records carry a task id.
TASKS = any(f.name == "task_id" for f in dataclasses.fields(ExperimentRecord))

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:;/",
    "\"\\'<>&{}[]\n\r\t\b\f",
    "".join(chr(c) for c in range(0, 32)) + "\x7f",
    "éàüñçßøåπλΩж中文한국어",
    "\u2028\u2029\ufeff\u00a0\u200b\ufffd",
    "😀🧬🚀𝔘𐍈",
]


def rand_text(rng, max_len=80):
    n = rng.choice([0, 1, 5, 20, max_len, rng.randint(0, max_len)])
    pools = rng.sample(ALPHABETS, rng.randint(1, len(ALPHABETS)))
    pool = "".join(pools)
    return "".join(rng.choice(pool) for _ in range(n))


def rand_float(rng):
    kind = rng.randrange(8)
    if kind == 0:
        return rng.random()
    if kind == 1:
        return 10 ** rng.uniform(-30, 30)
    if kind == 2:
        return float(rng.randint(0, 10**6))
    if kind == 3:
        return rng.choice([0.0, -0.0, 5e-324, 1e16, 1e15, 1e-5, 1e-4, 0.1 + 0.2, 1.7976931348623157e308])
    if kind == 4:
        while True:
            x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if x == x and abs(x) != float("inf"):
                return x
    if kind == 5:
        return round(rng.uniform(0.8, 1.2), rng.randint(1, 12))
    if kind == 6:
        return -rng.uniform(0, 1e6)
    return rng.uniform(1000, 80000)


def rand_int(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randint(0, 10**9)
    if kind == 1:
        return rng.randint(-(2**70), 2**70)
    if kind == 2:
        return rng.choice([0, -1, 2**63 - 1, 2**63, 2**64 + 1, 2**53 + 1])
    return rng.randint(0, 100000)


def hex64(rng):
    return "%064x" % rng.getrandbits(256)


def random_fields(rng, node_id):
    floats = {k: rand_float(rng) for k in ("val_bpb", "peak_vram_mb")}
    ints = {k: rand_int(rng) for k in ("depth", "time_budget", "num_steps", "num_params")}
    if rng.random() < 0.1:
        floats["peak_vram_mb"] = rng.randint(0, 80000)  # an int where Python writes floats
    if rng.random() < 0.1:
        ints["depth"] = float(rng.randint(0, 50))  # a float where Python writes ints
    fields = dict(
        parent=rng.choice([None, "", hex64(rng)]),
        code_cid=hex64(rng),
        diff=rand_text(rng, rng.choice([80, 2000])),
        dataset_cid=rng.choice(["climbmix-400b-shuffle", hex64(rng)]),
        prepare_cid=rng.choice(["", hex64(rng)]),
        status=rng.choice(list(Status)),
        description=rand_text(rng),
        hypothesis=rand_text(rng),
        agent_model=rand_text(rng, 30),
        gpu_model=rand_text(rng, 30),
        cuda_version=rand_text(rng, 8),
        torch_version=rand_text(rng, 12),
        node_id=node_id,
        timestamp=rng.randint(0, 1_790_000_000),
        # 0.1.2 signs any version as given; from 0.5.0 on, 2 and later also sign `task_id`.
        version=rng.choice([1, 1, 1, 0]),
        **floats,
        **ints,
    )
    if TASKS:
        fields["task_id"] = rng.choice(["", hex64(rng), hex64(rng)])
        fields["version"] = rng.choice([1, 2, 2])
    return fields


def tamper(rng, payload, other_key):
    mode = rng.randrange(10)
    if mode == 0:
        payload["val_bpb"] = rand_float(rng)
    elif mode == 1:
        payload["description"] = payload["description"] + "x"
        payload["id"] = ExperimentRecord.from_json(dict(payload)).compute_cid()
    elif mode == 2:
        payload["signature"] = "%0128x" % rng.getrandbits(512)
    elif mode == 3:
        payload["node_id"] = other_key
        payload["id"] = ExperimentRecord.from_json(dict(payload)).compute_cid()
    elif mode == 4:
        payload["signature"] = payload["signature"].upper()
    elif mode == 5:
        payload["id"] = payload["id"].upper()
    elif mode == 6:
        payload["signature"] = payload["signature"][:-2]
    elif mode == 7:
        sig = payload["signature"]
        i = rng.randrange(len(sig))
        payload["signature"] = sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1 :]
    elif mode == 8:
        payload["num_steps"] = payload["num_steps"] + 1
    else:
        payload["node_id"] = payload["node_id"].upper()
    return mode


def verdict(payload):
    rec = ExperimentRecord.from_json(dict(payload))
    return {
        "canonical": rec.canonical_bytes().decode("ascii"),
        "cid": rec.compute_cid(),
        "verify_cid": rec.verify_cid(),
        "verify_signature": rec.verify_signature(),
    }


def generate(count, seed):
    rng = random.Random(seed)
    keys = [SigningKey(bytes(rng.getrandbits(8) for _ in range(32))) for _ in range(4)]
    for i in range(count):
        sk = rng.choice(keys)
        node_id = sk.verify_key.encode().hex()
        if rng.random() < 0.05:
            node_id = node_id.upper()
        rec = ExperimentRecord(**random_fields(rng, node_id))
        rec.sign(sk)
        payload = json.loads(rec.to_json())
        tampered = None
        if i % 3 == 2:
            other = rng.choice(keys).verify_key.encode().hex()
            tampered = tamper(rng, payload, other)
        if rng.random() < 0.05 and payload.get("version") == 1:
            del payload["version"]  # the dataclass default applies
        if TASKS and rng.random() < 0.2 and payload.get("version") == 1:
            del payload["task_id"]  # as a 0.1.2 node sends it
        body = json.dumps({"type": "experiment", "payload": payload}, separators=(",", ":"))
        relayed = json.loads(ExperimentRecord.from_json(dict(payload)).to_json())
        relay_body = json.dumps({"type": "experiment", "payload": relayed}, separators=(",", ":"))
        line = {"wire_body": body, "relay_body": relay_body, "tamper_mode": tampered, **verdict(payload)}
        print(json.dumps(line))


def floats(count, seed):
    """Random doubles (all bit patterns, plus short decimals and ties) with Python's repr."""
    rng = random.Random(seed)
    for i in range(count):
        if i % 3 == 0:
            x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        elif i % 3 == 1:
            x = float("%.*g" % (rng.randint(1, 17), rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)))
        else:
            x = rng.randint(1, 2**53) / 2 ** rng.randint(0, 60) * 10 ** rng.randint(-5, 20)
        if x != x or abs(x) == float("inf"):
            continue
        print(struct.pack(">d", x).hex(), json.dumps(x))


def verify():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(verdict(json.loads(line))))


if __name__ == "__main__":
    if sys.argv[1] == "floats":
        floats(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "generate":
        generate(int(sys.argv[2]), int(sys.argv[3]))
    else:
        verify()

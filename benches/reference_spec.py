"""The Python reference peer's record hot paths, timed on the same record as spec/benches/spec.rs.

Run with the reference virtualenv: benches/compare-spec.sh does. Prints one line per operation:
`<name> <records per second>`.
"""

import json
import time

from nacl.signing import SigningKey
from spore.record import ExperimentRecord, Status


def sample_record(sk, n):
    rec = ExperimentRecord(
        parent="5d6b502b909b5d719cd077dfadd95cf7b69b9989694ffabe99bd72f2ccfeef15",
        depth=3,
        code_cid="540e73a98ff829b1b89893599533ca021c15270e0268524eaa65c007892046e1",
        diff=(
            "--- a/train.py\n+++ b/train.py\n@@ -40,7 +40,7 @@\n-MATRIX_LR = 0.04\n+MATRIX_LR = 0.05\n "
            "-WARMDOWN_RATIO = 0.5\n+WARMDOWN_RATIO = 0.6\n"
        )
        * 5,
        dataset_cid="a19b0c7ccf1413dd388ac482c5e1dd23917c4baceb1ed56e0a15d7e9049e4e1d",
        prepare_cid="059223b88af92bee07fe770d5525d571e7eb97d0b00257e0996a1f0b20bf2c87",
        time_budget=300,
        val_bpb=0.997912 - n * 1e-6,
        peak_vram_mb=45060.2,
        num_steps=953,
        num_params=50331648,
        status=Status.KEEP,
        description="raise the matrix learning rate and lengthen warmdown",
        hypothesis="the baseline under-trains in five minutes",
        agent_model="claude-sonnet-4-5-20250929",
        gpu_model="NVIDIA_H100_80GB_HBM3",
        cuda_version="12.8",
        torch_version="2.9.0+cu128",
        node_id=sk.verify_key.encode().hex(),
        timestamp=1773072000 + n,
    )
    rec.sign(sk)
    return rec


def rate(fn, seconds=2.0):
    count, start = 0, time.perf_counter()
    while True:
        for _ in range(200):
            fn()
        count += 200
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def main():
    sk = SigningKey(bytes([7]) * 32)
    rec = sample_record(sk, 0)
    body = json.dumps({"type": "experiment", "payload": json.loads(rec.to_json())}, separators=(",", ":"))
    print("canonical_bytes", len(rec.canonical_bytes()))
    print("canonical_encode", rate(rec.canonical_bytes))
    print("cid", rate(rec.compute_cid))
    print("sign_and_cid", rate(lambda: rec.sign(sk)))
    print("verify_cid_and_signature", rate(lambda: rec.verify_cid() and rec.verify_signature()))

    def parse_and_verify():
        r = ExperimentRecord.from_json(json.loads(body)["payload"])
        return r.verify_cid() and r.verify_signature()

    print("parse_and_verify", rate(parse_and_verify))


if __name__ == "__main__":
    main()

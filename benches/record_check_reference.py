"""`spore record check`'s work in the Python reference peer: parse each line and verify its CID
and signature, as `spore.record.ExperimentRecord` does.

    record_check_reference.py generate FILE N   write N signed records (about 2.5 KB each, 8 publishers)
    record_check_reference.py check FILE        check every line; print `<lines> <seconds>`

Run with the reference virtualenv: benches/record-check.sh does.
"""

import json
import sys
import time

from nacl.signing import SigningKey
from spore.record import ExperimentRecord

from reference_spec import sample_record


def generate(path, count):
    keys = [SigningKey(bytes([n + 1]) * 32) for n in range(8)]
    with open(path, "w") as out:
        for n in range(count):
            rec = sample_record(keys[n % len(keys)], n)
            rec.diff = rec.diff * 2
            rec.sign(keys[n % len(keys)])
            out.write(json.dumps(json.loads(rec.to_json()), separators=(",", ":")) + "\n")


def check(path):
    start = time.perf_counter()
    lines = ok = 0
    with open(path) as f:
        for line in f:
            rec = ExperimentRecord.from_json(json.loads(line))
            ok += rec.verify_cid() and rec.verify_signature()
            lines += 1
    print(lines, time.perf_counter() - start, ok)


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], int(sys.argv[3]))
    else:
        check(sys.argv[2])

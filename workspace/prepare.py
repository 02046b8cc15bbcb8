"""The fixed harness of a Spore experiment: data, tokenizer, loader and the metric.

`train.py` is the file experiments change; this one never changes within a research graph (its
SHA-256 goes into every record as `prepare_cid`, the prepared data's digest as `dataset_cid`).

Data (`SPORE_DATASET`): `climbmix` is autoresearch's task (its shards, BPE tokenizer, pinned
validation shard and metric: climbmix.py), the GPU profile's default; `python-stdlib`, described
below, needs no network and is the CPU profile's default.

Corpus: the source files of the Python standard library of the interpreter that runs this file.
It exists on every machine with Python, needs no network, and is the same wherever the Python
version is the same (the version is part of the manifest, so records say which one they used).

Tokenizer: bytes. Token ids 0..255 are the bytes of a file, 256 (BOS) starts every file. A
byte-level vocabulary makes bits per byte a direct reading of the loss and needs no training.

Split: a file belongs to the validation split when the first byte of the SHA-256 of its path
relative to the library root is below 16 (about 1 file in 16), so the split never depends on
the order of files or on which other files exist. The validation tokens live in their own
directory (`SPORE_VAL_CACHE`, default: the data cache's path + `-val`), apart from the training
data: the node runs `train.py` where that directory cannot be read, and measures the exported
model itself with the trusted evaluator (`spore-eval`).

Contract: `train.py` trains, then calls `export_model(model)`, which saves the model as TorchScript
(`torch.jit.trace`, float32, on the device it trained on) to `SPORE_MODEL_PATH` (default
`model.pt`). `model(inputs)` takes token ids of shape (batch, MAX_SEQ_LEN) and returns logits of
shape (batch, MAX_SEQ_LEN, VOCAB_SIZE). A `val_bpb` that `train.py` prints is only a hint.

Metric: `evaluate_bpb` sums the cross-entropy in nats over the pinned validation tokens whose
target stands for bytes (BOS targets carry none and are excluded) and divides by ln 2 times the
number of those bytes (a byte per token here; climbmix's tokenizer has a table).

Usage: `python prepare.py` prepares the data (idempotent) and prints the manifest with an `eval`
block: what the evaluator must measure for the profile that runs (sequence length, token count,
vocabulary, BOS, the validation file and its SHA-256).
"""

import hashlib
import json
import math
import os
import sys
import sysconfig
import warnings
from array import array
from pathlib import Path

import torch

# ---------------------------------------------------------------------------------------------
# Constants of the harness

TIME_BUDGET = int(os.environ.get("SPORE_TIME_BUDGET", "300"))
CACHE_ROOT = Path(os.environ.get("SPORE_DATA_CACHE", Path.home() / ".cache" / "spore" / "data"))
VAL_ROOT = Path(os.environ.get("SPORE_VAL_CACHE") or f"{CACHE_ROOT}-val")

# The profile decides the sequence length and how many validation tokens are evaluated.
PROFILE = os.environ.get("SPORE_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
MAX_SEQ_LEN = 2048 if PROFILE == "gpu" else 256
EVAL_TOKENS = 40 * 524288 if PROFILE == "gpu" else 1 << 17

# The task's data: `climbmix` (autoresearch's, see climbmix.py; the GPU profile's default) or
# `python-stdlib` (offline; the CPU profile's default).
DATASET = os.environ.get("SPORE_DATASET") or ("climbmix" if PROFILE == "gpu" else "python-stdlib")
if DATASET == "climbmix":
    import climbmix

    VOCAB_SIZE = climbmix.VOCAB_SIZE
    BOS = climbmix.BOS
    CORPUS = climbmix.NAME
    _DEFAULT_DIR = CACHE_ROOT / climbmix.prepared_name(len(climbmix.train_shards(CACHE_ROOT)))
    VAL_NAME = f"val-{MAX_SEQ_LEN}.bin"
elif DATASET == "python-stdlib":
    VOCAB_SIZE = 257
    BOS = 256
    DATA_VERSION = 2
    CORPUS = f"python-stdlib-{sys.version_info.major}.{sys.version_info.minor}"
    _DEFAULT_DIR = CACHE_ROOT / f"{CORPUS}-v{DATA_VERSION}"
    VAL_NAME = "val.bin"
else:
    raise SystemExit(f"SPORE_DATASET={DATASET!r}: expected climbmix or python-stdlib")
# SPORE_DATA_DIR names the prepared data outright (where a sandbox shows only that directory).
DATA_DIR = Path(os.environ.get("SPORE_DATA_DIR") or _DEFAULT_DIR)
VAL_DIR = VAL_ROOT / DATA_DIR.name


# ---------------------------------------------------------------------------------------------
# Data preparation


def corpus_files():
    """(relative path, absolute path) of every standard-library source file, sorted by path."""
    root = Path(sysconfig.get_paths()["stdlib"]).resolve()
    files = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in ("site-packages", "dist-packages") or not path.is_file():
            continue
        files.append((rel, path))
    files.sort()
    return files


def is_validation(rel):
    return hashlib.sha256(rel.encode("utf-8")).digest()[0] < 16


def _val_present(manifest):
    path = VAL_DIR / "val.bin"
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == manifest["val_sha256"]


def _publish(tmp, final):
    try:
        tmp.rename(final)
    except OSError:
        # Another process finished first; its data is identical.
        for leftover in tmp.iterdir():
            leftover.unlink()
        tmp.rmdir()


def prepare(check_val=False):
    """Writes train.bin and manifest.json under DATA_DIR and val.bin under VAL_DIR (once);
    returns the manifest. `check_val` also rebuilds a missing or altered validation file."""
    if DATASET == "climbmix":
        return climbmix.prepare(DATA_DIR, VAL_DIR, CACHE_ROOT, VAL_ROOT, MAX_SEQ_LEN, EVAL_TOKENS, check_val)
    manifest_path = DATA_DIR / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if not check_val or _val_present(manifest):
            return manifest
    splits = {"train": array("H"), "val": array("H")}
    counts = {"train": 0, "val": 0}
    for rel, path in corpus_files():
        try:
            data = path.read_bytes()
        except OSError:
            continue
        split = "val" if is_validation(rel) else "train"
        splits[split].append(BOS)
        splits[split].extend(data)
        counts[split] += 1
    if sys.byteorder != "little":
        for tokens in splits.values():
            tokens.byteswap()
    manifest = {"corpus": CORPUS, "version": DATA_VERSION, "vocab_size": VOCAB_SIZE}
    raws = {split: tokens.tobytes() for split, tokens in splits.items()}
    for split, raw in raws.items():
        manifest[f"{split}_files"] = counts[split]
        manifest[f"{split}_tokens"] = len(splits[split])
        manifest[f"{split}_sha256"] = hashlib.sha256(raw).hexdigest()
    digest_input = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("ascii")
    manifest["dataset_cid"] = hashlib.sha256(digest_input).hexdigest()
    # The validation split first: the manifest's presence says that both are complete.
    for split, final in (("val", VAL_DIR), ("train", DATA_DIR)):
        if final.exists():
            for stale in final.iterdir():
                stale.unlink()
            final.rmdir()
        tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / f"{split}.bin").write_bytes(raws[split])
        if split == "train":
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _publish(tmp, final)
    return json.loads(manifest_path.read_text())


def load_tokens(split):
    prepare()
    raw = ((VAL_DIR / VAL_NAME) if split == "val" else (DATA_DIR / "train.bin")).read_bytes()
    return torch.frombuffer(bytearray(raw), dtype=torch.int16).to(torch.int32) & 0xFFFF


def token_byte_counts():
    """Bytes each token id stands for: 1 for a byte, 0 for BOS (python-stdlib); the tokenizer's
    table (climbmix)."""
    if DATASET == "climbmix":
        raw = (DATA_DIR / "token_bytes.bin").read_bytes()
        return torch.frombuffer(bytearray(raw), dtype=torch.int16).to(torch.int64) & 0xFFFF
    counts = torch.ones(VOCAB_SIZE, dtype=torch.int64)
    counts[BOS] = 0
    return counts


# ---------------------------------------------------------------------------------------------
# Loader and metric


def make_dataloader(batch_size, seq_len, device, split="train"):
    """Yields (inputs, targets, epoch) forever: random windows of seq_len + 1 tokens, seeded."""
    tokens = load_tokens(split)
    windows = (len(tokens) - 1) // seq_len
    if windows < batch_size:
        raise ValueError(f"the {split} split has {windows} windows, fewer than a batch of {batch_size}")
    epoch = 1
    while True:
        generator = torch.Generator().manual_seed(epoch)
        order = torch.randperm(windows, generator=generator)
        for start in range(0, windows - batch_size + 1, batch_size):
            offsets = order[start : start + batch_size] * seq_len
            rows = torch.stack([tokens[o : o + seq_len + 1] for o in offsets.tolist()])
            rows = rows.to(device=device, dtype=torch.long, non_blocking=True)
            yield rows[:, :-1], rows[:, 1:], epoch
        epoch += 1


@torch.no_grad()
def evaluate_bpb(model, batch_size, device=None):
    """Bits per byte of `model` on the validation split: the first EVAL_TOKENS cut into rows of
    MAX_SEQ_LEN (+1 for the targets) from the token stream (python-stdlib), or the packed rows of
    MAX_SEQ_LEN + 1 (climbmix). Nats summed over targets that stand for bytes, divided by ln 2
    times the bytes of the targets.

    `model(inputs)` must return logits of shape (batch, seq, VOCAB_SIZE).
    """
    device = device or next(model.parameters()).device
    tokens = load_tokens("val")
    counts = token_byte_counts()
    seq_len = MAX_SEQ_LEN
    packed = DATASET == "climbmix"
    stride = seq_len + 1 if packed else seq_len
    available = len(tokens) // stride if packed else (len(tokens) - 1) // seq_len
    rows = min(EVAL_TOKENS // seq_len, available)
    total_nats = 0.0
    total_bytes = 0
    for start in range(0, rows, batch_size):
        count = min(batch_size, rows - start)
        window = tokens[start * stride : (start + count) * stride + (0 if packed else 1)]
        inputs = torch.stack([window[i * stride : i * stride + seq_len] for i in range(count)])
        targets = torch.stack([window[i * stride + 1 : i * stride + seq_len + 1] for i in range(count)])
        inputs = inputs.to(device=device, dtype=torch.long)
        targets = targets.to(dtype=torch.long)
        logits = model(inputs).float().cpu()
        nats = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none"
        )
        weights = counts[targets.reshape(-1)]
        total_nats += nats[weights > 0].double().sum().item()
        total_bytes += int(weights.sum().item())
    return total_nats / (math.log(2) * total_bytes)


def export_model(model, path=None):
    """Saves `model` for the trusted evaluator: TorchScript traced in float32 on the device it
    trained on, at `path` or SPORE_MODEL_PATH (default `model.pt`). Returns the path."""
    path = Path(path or os.environ.get("SPORE_MODEL_PATH", "model.pt"))
    model = model.float().eval()
    example = torch.zeros(1, MAX_SEQ_LEN, dtype=torch.long, device=next(model.parameters()).device)
    with torch.no_grad(), warnings.catch_warnings():
        # torch 2.13 points from torch.jit to torch.export; libtorch still loads TorchScript.
        warnings.simplefilter("ignore")
        model(example)  # caches what the forward pass builds lazily
        traced = torch.jit.trace(model, example, check_trace=False)
        traced.save(str(path))
    return path


def eval_plan(manifest):
    """What the evaluator measures for this profile."""
    plan = {
        "profile": PROFILE,
        "dataset": DATASET,
        "seq_len": MAX_SEQ_LEN,
        "eval_tokens": EVAL_TOKENS,
        "vocab_size": VOCAB_SIZE,
        "bos": BOS,
        "val_path": str((VAL_DIR / VAL_NAME).resolve()),
        "val_root": str(VAL_ROOT.resolve()),
        "train_dir": str(DATA_DIR.resolve()),
    }
    if DATASET == "climbmix":
        plan["val_sha256"] = climbmix.val_digest(VAL_DIR, MAX_SEQ_LEN)
        plan["layout"] = "rows"
        plan["token_bytes_path"] = str((DATA_DIR / "token_bytes.bin").resolve())
        plan["token_bytes_sha256"] = manifest["token_bytes_sha256"]
    else:
        plan["val_sha256"] = manifest["val_sha256"]
    return plan


if __name__ == "__main__":
    manifest = prepare(check_val=True)
    print(json.dumps({**manifest, "eval": eval_plan(manifest)}, indent=2, sort_keys=True))

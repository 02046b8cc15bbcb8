"""The climbmix task: autoresearch's data, tokenizer and metric, prepared for Spore's evaluator.

Data: the parquet shards of `karpathy/climbmix-400b-shuffle` (a `text` column), which `spore data
fetch` downloads (checksummed, resumable, shared by every node and pod of the machine): training
shards `shard_00000 ...` under `<SPORE_DATA_CACHE>/climbmix-400b-shuffle/`, the validation shard,
pinned as autoresearch pins it (`shard_06542`, the last one), under `<SPORE_VAL_CACHE>/
climbmix-400b-shuffle/`: apart, so that the training process never sees it. This file never
touches the network.

Tokenizer: byte-level BPE trained as autoresearch trains it: `rustbpe` on the training shards'
documents (each cut to 10,000 characters, 10^9 characters at most), 8,192 tokens of which the last
four are the reserved special tokens, `<|reserved_0|>` (id 8188) starting every document, the
GPT-4 split pattern with numbers of at most two digits; encoded with `tiktoken` (as autoresearch
encodes). It is saved in tiktoken's file format (`tokenizer.tiktoken`) with its pattern in the
manifest; nothing is pickled.

Validation rows: autoresearch's validation loader, replayed once and written down (beside the
validation data, with their SHA-256; the manifest pins the validation shard's): documents of the
pinned shard, BOS first, packed best-fit into rows of `seq_len + 1` tokens (the largest document
that fits the rest of the row, else the shortest cropped), a buffer of 1,000 documents refilled 128
at a time, cycling the shard when it runs out; `eval_tokens // seq_len` rows. Every row is scored
as autoresearch scores its batches: inputs `row[:-1]`, targets `row[1:]`.

Metric: bits per byte with the token-byte table (`token_bytes.bin`, little-endian u16 per token id:
the UTF-8 length of the token, 0 for special tokens): nats summed over targets with bytes, divided
by ln 2 times the bytes of all targets. Same tokenizer, validation shard, packing and weights as
autoresearch: `val_bpb` is comparable with autoresearch's.
"""

import base64
import hashlib
import json
import os
import sys
from array import array
from pathlib import Path

NAME = "climbmix-400b-shuffle"
DATA_VERSION = 1
VOCAB_SIZE = 8192
SPECIAL_TOKENS = [f"<|reserved_{i}|>" for i in range(4)]
BOS = VOCAB_SIZE - len(SPECIAL_TOKENS)
VAL_SHARD = 6542
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
TOKENIZER_MAX_CHARS = 1_000_000_000
TOKENIZER_DOC_CAP = 10_000
PACK_BUFFER = 1000
ENCODE_BATCH = 128


def shard_name(index):
    return f"shard_{index:05d}.parquet"


def train_shards(cache_root):
    """The training shards present: shard_00000, shard_00001, ... up to the first one missing."""
    directory = Path(cache_root) / NAME
    shards = []
    while (directory / shard_name(len(shards))).is_file() and len(shards) < VAL_SHARD:
        shards.append(directory / shard_name(len(shards)))
    return shards


def val_shard(val_root):
    return Path(val_root) / NAME / shard_name(VAL_SHARD)


def prepared_name(shard_count):
    """The prepared data's directory name: the tokenizer depends on the training shards."""
    return f"climbmix-v{DATA_VERSION}-s{shard_count}"


def _documents(paths):
    import pyarrow.parquet as pq

    for path in paths:
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            yield from parquet.read_row_group(group, columns=["text"]).column("text").to_pylist()


def _tokenizer_text(paths):
    chars = 0
    for text in _documents(paths):
        doc = text[:TOKENIZER_DOC_CAP]
        chars += len(doc)
        yield doc
        if chars >= TOKENIZER_MAX_CHARS:
            return


def train_tokenizer(paths):
    """(tiktoken encoding, mergeable ranks) trained on the training shards."""
    import rustbpe
    import tiktoken

    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(_tokenizer_text(paths), VOCAB_SIZE - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
    ranks = {bytes(token): rank for token, rank in trainer.get_mergeable_ranks()}
    if len(ranks) != BOS:
        raise SystemExit(
            f"the training shards hold too little text for {VOCAB_SIZE} tokens ({len(ranks)} learned): "
            "fetch more with `spore data fetch --shards N`"
        )
    special = {name: BOS + i for i, name in enumerate(SPECIAL_TOKENS)}
    encoding = tiktoken.Encoding(
        name="spore-climbmix", pat_str=trainer.get_pattern(), mergeable_ranks=ranks, special_tokens=special
    )
    return encoding, ranks


def token_bytes(ranks):
    """UTF-8 length of every token (the bytes it stands for), 0 for the special tokens."""
    lengths = array("H", [0] * VOCAB_SIZE)
    for token, rank in ranks.items():
        lengths[rank] = len(token)
    return lengths


def _tiktoken_file(ranks):
    by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
    lines = (f"{base64.b64encode(token).decode('ascii')} {rank}" for token, rank in by_rank)
    return ("\n".join(lines) + "\n").encode("ascii")


def _encoded(encoding, texts):
    for row in encoding.encode_ordinary_batch(texts):
        row.insert(0, BOS)
        yield row


def _doc_batches(encoding, paths):
    """Tokenized documents of `paths`, 128 at a time, cycling forever (the validation loader's)."""
    while True:
        for batch in _batches(_documents(paths), ENCODE_BATCH):
            yield list(_encoded(encoding, batch))


def val_rows(encoding, path, seq_len, rows):
    """`rows` rows of seq_len + 1 tokens, packed best-fit as autoresearch's loader packs them."""
    capacity = seq_len + 1
    batches = _doc_batches(encoding, [path])
    buffer = []
    out = array("H")
    for _ in range(rows):
        pos = 0
        while pos < capacity:
            while len(buffer) < PACK_BUFFER:
                buffer.extend(next(batches))
            remaining = capacity - pos
            best, best_len = -1, 0
            for i, doc in enumerate(buffer):
                if best_len < len(doc) <= remaining:
                    best, best_len = i, len(doc)
            if best >= 0:
                doc = buffer.pop(best)
                out.extend(doc)
                pos += len(doc)
            else:
                shortest = min(range(len(buffer)), key=lambda i: len(buffer[i]))
                out.extend(buffer.pop(shortest)[:remaining])
                pos += remaining
    return out


def _little_endian(tokens):
    if tokens.itemsize != 2:
        raise ValueError("token arrays are 16-bit")
    if sys.byteorder != "little":
        tokens = array("H", tokens)
        tokens.byteswap()
    return tokens.tobytes()


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_encoding(data_dir):
    """The tokenizer a finished `data_dir` holds, back as a tiktoken encoding."""
    import tiktoken

    ranks = {}
    for line in (Path(data_dir) / "tokenizer.tiktoken").read_text().splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    special = {name: BOS + i for i, name in enumerate(SPECIAL_TOKENS)}
    return tiktoken.Encoding(name="spore-climbmix", pat_str=SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens=special)


def _write_atomic(path, data):
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.rename(path)


def val_digest(val_dir, seq_len):
    """SHA-256 of the validation rows for `seq_len` under `val_dir`; "" where there are none."""
    rows = Path(val_dir) / f"val-{seq_len}.bin"
    digest = rows.with_name(rows.name + ".sha256")
    return digest.read_text().strip() if rows.is_file() and digest.is_file() else ""


def _add_val(val_dir, val_root, seq_len, eval_tokens, encoding, manifest):
    """Writes the validation rows for `seq_len`, then their digest (its presence says the rows
    are whole), from the validation shard the manifest pins."""
    shard = val_shard(val_root)
    if _sha256_file(shard) != manifest["val_shard_sha256"]:
        raise SystemExit(f"{shard} is not the validation shard this data was prepared with (its SHA-256 differs)")
    rows = Path(val_dir) / f"val-{seq_len}.bin"
    raw = _little_endian(val_rows(encoding, shard, seq_len, eval_tokens // seq_len))
    rows.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(rows, raw)
    _write_atomic(rows.with_name(rows.name + ".sha256"), (hashlib.sha256(raw).hexdigest() + "\n").encode("ascii"))
    return manifest


def _batches(texts, size):
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_train(path, encoding, shards):
    """Every document of the training shards, BOS first, as one token stream; (tokens, SHA-256)."""
    digest = hashlib.sha256()
    tokens = 0
    with open(path, "wb") as out:
        for batch in _batches(_documents(shards), 1024):
            raw = _little_endian(array("H", [t for row in _encoded(encoding, batch) for t in row]))
            digest.update(raw)
            tokens += len(raw) // 2
            out.write(raw)
    return tokens, digest.hexdigest()


def prepare(data_dir, val_dir, cache_root, val_root, seq_len, eval_tokens, check_val=True):
    """Prepares train.bin, the tokenizer and the manifest under `data_dir` (once) and, with
    `check_val`, the validation rows for `seq_len` under `val_dir` (once per sequence length);
    returns the manifest.

    Prepared data may be read-only (a volume a lab prepared once, `spore data prepare`): nothing
    is written under `data_dir` then. Where the validation shard cannot be seen (a pod's training
    step) the manifest is all there is."""
    data_dir, val_dir = Path(data_dir), Path(val_dir)
    manifest_path = data_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if check_val and not val_digest(val_dir, seq_len) and val_shard(val_root).is_file():
            _add_val(val_dir, val_root, seq_len, eval_tokens, _load_encoding(data_dir), manifest)
        return manifest
    shards = train_shards(cache_root)
    validation = val_shard(val_root)
    if len(shards) < 1 or not validation.is_file():
        raise SystemExit(
            f"the climbmix shards are missing ({len(shards)} training shards under {Path(cache_root) / NAME}, "
            f"validation shard {'present' if validation.is_file() else 'missing'}): run `spore data fetch` "
            "(or `spore data import DIR` on an air-gapped machine)"
        )
    encoding, ranks = train_tokenizer(shards)
    tmp = data_dir.with_name(data_dir.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    train_tokens, train_sha256 = _write_train(tmp / "train.bin", encoding, shards)
    tokenizer = _tiktoken_file(ranks)
    (tmp / "tokenizer.tiktoken").write_bytes(tokenizer)
    lengths = _little_endian(token_bytes(ranks))
    (tmp / "token_bytes.bin").write_bytes(lengths)
    manifest = {
        "corpus": NAME,
        "version": DATA_VERSION,
        "vocab_size": VOCAB_SIZE,
        "bos": BOS,
        "pattern": SPLIT_PATTERN,
        "train_shards": len(shards),
        "train_tokens": train_tokens,
        "train_sha256": train_sha256,
        "val_shard_sha256": _sha256_file(validation),
        "tokenizer_sha256": hashlib.sha256(tokenizer).hexdigest(),
        "token_bytes_sha256": hashlib.sha256(lengths).hexdigest(),
    }
    digest_input = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("ascii")
    manifest["dataset_cid"] = hashlib.sha256(digest_input).hexdigest()
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    try:
        tmp.rename(data_dir)
    except OSError:
        # Another process finished first; its data is identical.
        for leftover in tmp.iterdir():
            leftover.unlink()
        tmp.rmdir()
    return _add_val(val_dir, val_root, seq_len, eval_tokens, encoding, json.loads(manifest_path.read_text()))

"""Spore's training workload: a small GPT trained for a fixed time budget.

This is the one file an experiment changes. The hyperparameters are the module constants of the
profile that runs (`gpu` when CUDA is present, `cpu` otherwise: on Apple's MPS when present, else
the CPU); everything else may change too.
The harness (`prepare.py`: data, loader, metric, time budget) is fixed. The run ends by exporting
the trained model (`export_model`), which the node's trusted evaluator measures on a validation
split this process cannot read, and with the summary block that the node parses:

    ---
    training_seconds: 20.1
    total_seconds:    23.4
    ...
"""

import gc
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from batching import device_batch_size, resource_percent
from prepare import MAX_SEQ_LEN, PROFILE, TIME_BUDGET, VOCAB_SIZE, export_model, make_dataloader

# ---------------------------------------------------------------------------------------------
# Hyperparameters

# @profile gpu
DEPTH = 8
MODEL_DIM = 512
HEAD_DIM = 128
MLP_RATIO = 4
TOTAL_BATCH_TOKENS = 2**19
FULL_DEVICE_BATCH = 64
MATRIX_LR = 0.02
EMBED_LR = 0.3
HEAD_LR = 0.004
WEIGHT_DECAY = 0.0
WARMUP_RATIO = 0.0
WARMDOWN_RATIO = 0.5
LOGIT_SOFTCAP = 15.0
# @end

# @profile cpu
CPU_DEPTH = 4
CPU_MODEL_DIM = 128
CPU_HEAD_DIM = 32
CPU_MLP_RATIO = 4
CPU_TOTAL_BATCH_TOKENS = 2**12
CPU_FULL_DEVICE_BATCH = 16
CPU_MATRIX_LR = 0.003
CPU_EMBED_LR = 0.01
CPU_HEAD_LR = 0.003
CPU_WEIGHT_DECAY = 0.0
CPU_WARMUP_RATIO = 0.0
CPU_WARMDOWN_RATIO = 0.5
CPU_LOGIT_SOFTCAP = 15.0
# @end

if PROFILE != "gpu":
    DEPTH, MODEL_DIM, HEAD_DIM, MLP_RATIO = CPU_DEPTH, CPU_MODEL_DIM, CPU_HEAD_DIM, CPU_MLP_RATIO
    TOTAL_BATCH_TOKENS, FULL_DEVICE_BATCH = CPU_TOTAL_BATCH_TOKENS, CPU_FULL_DEVICE_BATCH
    MATRIX_LR, EMBED_LR, HEAD_LR, WEIGHT_DECAY = CPU_MATRIX_LR, CPU_EMBED_LR, CPU_HEAD_LR, CPU_WEIGHT_DECAY
    WARMUP_RATIO, WARMDOWN_RATIO, LOGIT_SOFTCAP = CPU_WARMUP_RATIO, CPU_WARMDOWN_RATIO, CPU_LOGIT_SOFTCAP

SEQ_LEN = MAX_SEQ_LEN
# The first steps (compilation, allocator warm-up) do not use the budget; nothing compiles on CPU.
UNCOUNTED_STEPS = 10 if PROFILE == "gpu" else 1
H100_BF16_PEAK_FLOPS = 989.5e12

# ---------------------------------------------------------------------------------------------
# Model


def rms_norm(x):
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len, head_dim, device, base=10000.0):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def apply_rotary(x, cos, sin):
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos[:, : x.size(1)].to(x.dtype), sin[:, : x.size(1)].to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, head_dim):
        super().__init__()
        self.heads = dim // head_dim
        self.head_dim = head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).unbind(dim=2)
        q, k = rms_norm(apply_rotary(q, cos, sin)), rms_norm(apply_rotary(k, cos, sin))
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim, head_dim, mlp_ratio):
        super().__init__()
        self.attn = Attention(dim, head_dim)
        self.up = nn.Linear(dim, mlp_ratio * dim, bias=False)
        self.down = nn.Linear(mlp_ratio * dim, dim, bias=False)

    def forward(self, x, cos, sin):
        x = x + self.attn(rms_norm(x), cos, sin)
        return x + self.down(F.relu(self.up(rms_norm(x))).square())


class GPT(nn.Module):
    def __init__(self, vocab_size, depth, dim, head_dim, mlp_ratio, seq_len, softcap):
        super().__init__()
        self.softcap = softcap
        self.embed = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList(Block(dim, head_dim, mlp_ratio) for _ in range(depth))
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.seq_len, self.head_dim = seq_len, head_dim
        self.cos, self.sin = None, None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        nn.init.normal_(self.embed.weight, std=1.0)
        nn.init.normal_(self.head.weight, std=0.001)
        for block in self.blocks:
            for linear in (block.attn.qkv, block.up):
                bound = math.sqrt(3.0 / linear.in_features)
                nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(block.attn.proj.weight)
            nn.init.zeros_(block.down.weight)

    def forward(self, idx):
        if self.cos is None or self.cos.device != idx.device:
            self.cos, self.sin = rotary_tables(self.seq_len, self.head_dim, idx.device)
        x = rms_norm(self.embed(idx))
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        logits = self.head(rms_norm(x)).float()
        return self.softcap * torch.tanh(logits / self.softcap)


# ---------------------------------------------------------------------------------------------
# Training


def lr_multiplier(progress):
    if WARMUP_RATIO > 0 and progress < WARMUP_RATIO:
        return progress / WARMUP_RATIO
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    return max(0.0, (1.0 - progress) / WARMDOWN_RATIO)


def pick_device(profile=PROFILE):
    """CUDA → MPS → CPU: the `gpu` profile runs on CUDA; the small `cpu` profile on Apple's MPS
    where it is present (float32, no compile), else on the CPU's threads."""
    if profile == "gpu":
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def synchronize(device):
    """Waits for the device, so step times measure work, not queueing."""
    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def main():
    start = time.time()
    torch.manual_seed(42)
    device = pick_device()
    if device == "cpu":
        # The CPUs this process may run on (a cpuset, taskset), not all the machine has.
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(cpus or 1)
    torch.set_float32_matmul_precision("high")
    use_compile = device == "cuda" and os.environ.get("SPORE_DISABLE_COMPILE") != "1"
    autocast = torch.autocast(
        device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16, enabled=device == "cuda"
    )
    print(f"Device: {device} (compile {'enabled' if use_compile else 'disabled'}), profile {PROFILE}")

    model = GPT(VOCAB_SIZE, DEPTH, MODEL_DIM, HEAD_DIM, MLP_RATIO, SEQ_LEN, LOGIT_SOFTCAP).to(device)
    num_params = sum(p.numel() for p in model.parameters())
    print(f"Model config: depth={DEPTH} dim={MODEL_DIM} heads={MODEL_DIM // HEAD_DIM} seq={SEQ_LEN}")
    print(f"Parameter count: {num_params:,}")
    flops_per_token = 6 * num_params + 12 * DEPTH * MODEL_DIM * SEQ_LEN
    forward = torch.compile(model, dynamic=False) if use_compile else model

    rows_per_step = TOTAL_BATCH_TOKENS // SEQ_LEN
    percent = resource_percent()
    device_batch = device_batch_size(FULL_DEVICE_BATCH, percent, rows_per_step)
    grad_accum = rows_per_step // device_batch
    print(f"Resource scaling: {percent}% -> device batch {device_batch}, gradient accumulation steps: {grad_accum}")
    print(f"Time budget: {TIME_BUDGET}s")

    matrices = [p for block in model.blocks for p in block.parameters()]
    groups = [
        {"params": matrices, "lr": MATRIX_LR, "weight_decay": WEIGHT_DECAY},
        {"params": [model.embed.weight], "lr": EMBED_LR, "weight_decay": 0.0},
        {"params": [model.head.weight], "lr": HEAD_LR, "weight_decay": 0.0},
    ]
    for group in groups:
        group["initial_lr"] = group["lr"]
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.95), eps=1e-10, fused=device == "cuda")

    loader = make_dataloader(device_batch, SEQ_LEN, device)
    inputs, targets, epoch = next(loader)
    training_time = 0.0
    step = 0
    smooth_loss = 0.0
    gc.collect()
    gc.freeze()
    while True:
        synchronize(device)
        t0 = time.time()
        for _ in range(grad_accum):
            with autocast:
                logits = forward(inputs)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
            (loss / grad_accum).backward()
            inputs, targets, epoch = next(loader)
        progress = min(training_time / TIME_BUDGET, 1.0)
        multiplier = lr_multiplier(progress)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * multiplier
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if not math.isfinite(loss_value) or loss_value > 100:
            print("FAIL")
            raise SystemExit(1)
        synchronize(device)
        dt = time.time() - t0
        if step > UNCOUNTED_STEPS:
            training_time += dt
        smooth_loss = 0.9 * smooth_loss + 0.1 * loss_value
        debiased = smooth_loss / (1 - 0.9 ** (step + 1))
        tokens_per_second = int(TOTAL_BATCH_TOKENS / dt) if dt > 0 else 0
        mfu = 100 * flops_per_token * tokens_per_second / H100_BF16_PEAK_FLOPS if device == "cuda" else 0.0
        remaining = max(0, TIME_BUDGET - training_time)
        print(
            f"\rstep {step:05d} ({100 * progress:.1f}%) | loss: {debiased:.6f} | lrm: {multiplier:.2f} | "
            f"dt: {dt * 1000:.0f}ms | tok/sec: {tokens_per_second:,} | mfu: {mfu:.1f}% | epoch: {epoch} | "
            f"remaining: {remaining:.0f}s    ",
            end="",
            flush=True,
        )
        step += 1
        if step > UNCOUNTED_STEPS and training_time >= TIME_BUDGET:
            break
    print()

    # The evaluator runs on CUDA or the CPU: a model trained on MPS is exported from the CPU.
    export_model(model.to("cpu") if device == "mps" else model)
    total_tokens = step * TOTAL_BATCH_TOKENS
    peak_vram_mb = torch.cuda.max_memory_allocated() / 1024 / 1024 if device == "cuda" else 0.0
    mfu_percent = (
        100 * flops_per_token * total_tokens / training_time / H100_BF16_PEAK_FLOPS
        if device == "cuda" and training_time > 0
        else 0.0
    )
    print("---")
    print(f"training_seconds: {training_time:.1f}")
    print(f"total_seconds:    {time.time() - start:.1f}")
    print(f"peak_vram_mb:     {peak_vram_mb:.1f}")
    print(f"mfu_percent:      {mfu_percent:.2f}")
    print(f"total_tokens_M:   {total_tokens / 1e6:.1f}")
    print(f"num_steps:        {step}")
    print(f"num_params_M:     {num_params / 1e6:.1f}")
    print(f"depth:            {DEPTH}")


if __name__ == "__main__":
    main()

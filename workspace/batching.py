"""Resource scaling of the micro-batch (torch-free so it can be checked on its own).

`SPORE_RESOURCE` (1-100, percent of the device) scales the micro-batch a device would use at
full size. The result always divides the rows of one optimiser step, so gradient accumulation
stays exact and no percentage can produce an invalid batch.
"""

import os


def resource_percent(environ=os.environ):
    """The `SPORE_RESOURCE` percentage, clamped to 1..100 (100 when unset or not a number)."""
    try:
        value = int(str(environ.get("SPORE_RESOURCE", "100")).strip())
    except ValueError:
        return 100
    return min(100, max(1, value))


def device_batch_size(full_size, percent, rows_per_step):
    """The largest divisor of `rows_per_step` that is at most `percent`% of `full_size` (at least 1)."""
    if full_size < 1 or rows_per_step < 1:
        raise ValueError("full_size and rows_per_step must be positive")
    percent = min(100, max(1, int(percent)))
    target = max(1, min(rows_per_step, full_size * percent // 100))
    for size in range(target, 0, -1):
        if rows_per_step % size == 0:
            return size
    return 1

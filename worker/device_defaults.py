"""Batching defaults that fit the device: what the worker uses when the user leaves them unset.

Measured (docs/performance.md, 2 CPU cores, class-8 EfficientNet-B0 at 512x512): on a CPU with
LiteRT a bigger batch is *less* efficient per frame (batch 1: ~20 frames per CPU-second, 8 and 32:
~14), the interpreter's arena grows ~72 MB per frame of batch (RSS 2.6 GB at 32, ~500 MB at 4) and
warming batch 1..32 takes ~27 s instead of ~5 s. Batch 4 keeps the per-batch work of the worker
amortised at nearly batch 1's cost per frame. On a GPU a batch of 64 costs little more than a batch
of 1, so large batches are what keeps it busy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The settings this module may choose; any of them the user set (env var or argument) is kept.
CHOSEN_FIELDS = ("max_batch_size", "max_batch_wait_ms")


@dataclass(frozen=True)
class BatchingDefaults:
    """Batch size and wait for one (backend, device), and why."""

    max_batch_size: int
    max_batch_wait_ms: float
    reason: str

    def warmup_buckets(self) -> list[int]:
        """Batch shapes warmed at start: powers of two below max_batch_size, and max_batch_size itself."""
        sizes, n = [], 1
        while n < self.max_batch_size:
            sizes.append(n)
            n *= 2
        return sizes + [self.max_batch_size]


def device_defaults(backend: str, gpu: bool) -> BatchingDefaults:
    """The batching defaults for a resolved backend (tensorflow, litert, null) on a GPU host or not."""
    if backend == "tensorflow" and gpu:
        return BatchingDefaults(64, 20.0, "tensorflow on a GPU: large batches keep the GPU busy")
    if backend == "litert":
        return BatchingDefaults(4, 20.0, "litert on CPU: batch 1-4 judge the most frames per CPU-second, "
                                         "warm up in ~5 s and keep RSS near 500 MB (batch 32: 2.6 GB)")
    if backend == "tensorflow":
        return BatchingDefaults(8, 20.0, "tensorflow on CPU: frames per CPU-second are flat from batch 1 to 32, "
                                         "so a small batch bounds latency and memory")
    if backend == "null":
        return BatchingDefaults(32, 20.0, "null model (pipeline benchmark): batch size costs nothing")
    raise ValueError(f"no batching defaults for backend {backend!r} (expected tensorflow, litert or null)")


def apply_device_defaults(settings: Any, backend: str, gpu: bool) -> dict:
    """Set the batching fields the user left unset (not in settings.model_fields_set) to the device's defaults.

    Returns {"chosen": {field: value}, "kept": {field: value}, "reason": str, "warmup_buckets": [...]}
    for the start-up log line.
    """
    defaults = device_defaults(backend, gpu)
    user_set = set(settings.model_fields_set)
    chosen, kept = {}, {}
    for field in CHOSEN_FIELDS:
        if field in user_set:
            kept[field] = getattr(settings, field)
        else:
            chosen[field] = getattr(defaults, field)
            setattr(settings, field, chosen[field])
    return {"chosen": chosen, "kept": kept, "reason": defaults.reason,
            "warmup_buckets": settings.batch_buckets() if hasattr(settings, "batch_buckets")
            else defaults.warmup_buckets()}


def describe(applied: dict) -> str:
    """One log line: what was chosen for this device, and what the user's settings kept."""
    chosen = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in applied["chosen"].items())
    kept = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in applied["kept"].items())
    head = (f"batching for this device: {chosen} ({applied['reason']})" if chosen
            else f"batching as set by the user (the device's default: {applied['reason']})")
    return head + (f"; set by the user: {kept}" if kept else "") + f"; warm-up batch sizes {applied['warmup_buckets']}"

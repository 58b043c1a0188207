"""Which variant of a model version to serve: the exact one, or its cheaper `fast/` twin.

Training exports a fast variant (a lower working resolution, line_contracts.model) next to the
exact model and records whether its held-out metrics match the exact model's. On a CPU, where
every frame's convolutions are paid in CPU time, the fast variant is served when they match; on a
GPU (backend tensorflow) the exact one is, since the GPU is not the bottleneck there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from line_contracts.model import FAST_VARIANT_DIR, METADATA_FILE, TFLITE_FILE, VARIANTS
from line_runtime.model import ModelLoadError, read_metadata

REQUESTS = ("auto",) + VARIANTS


@dataclass(frozen=True)
class VariantChoice:
    """The folder to load, the variant's name, and why (for the start-up log)."""

    folder: Path
    variant: str
    reason: str


def choose_variant(version_dir: Path, requested: str, backend: str) -> VariantChoice:
    """Pick exact or fast for `backend` (already resolved); `requested` is auto, exact or fast."""
    if requested not in REQUESTS:
        raise ValueError(f"model variant must be one of {REQUESTS}, got {requested!r}")
    version_dir = Path(version_dir)
    meta = read_metadata(version_dir)
    fast = meta.variants.get("fast")
    folder = version_dir / FAST_VARIANT_DIR
    available = fast is not None and (folder / METADATA_FILE).is_file()
    if requested == "exact":
        return VariantChoice(version_dir, "exact", "WORKER_MODEL_VARIANT=exact")
    if requested == "fast":
        if not available:
            raise ModelLoadError(f"WORKER_MODEL_VARIANT=fast, but model {meta.name} v{meta.version} has no fast variant "
                                 f"({folder / METADATA_FILE} missing); set WORKER_MODEL_VARIANT=auto or exact, or retrain")
        return VariantChoice(folder, "fast", "WORKER_MODEL_VARIANT=fast")
    if not available:
        return VariantChoice(version_dir, "exact", "the model has no fast variant")
    if backend != "litert":
        return VariantChoice(version_dir, "exact", f"backend {backend}: the fast variant is for CPU (LiteRT) workers")
    if not (folder / TFLITE_FILE).is_file():  # its LiteRT conversion failed at export: no CPU twin to serve
        return VariantChoice(version_dir, "exact", "the fast variant has no LiteRT twin (model.tflite)")
    if not fast.get("matches_exact"):
        return VariantChoice(version_dir, "exact", "the fast variant's held-out metrics do not match the exact model's "
                                                   f"({fast.get('reason', 'no reason recorded')})")
    size = f"{fast.get('model_height')}x{fast.get('model_width')}"
    return VariantChoice(folder, "fast", f"LiteRT on CPU and the fast variant ({size} working size) matches the exact model "
                                         "on its held-out frames")

"""The fast variant: the same recipe at half the working size, with the extremes downscale.

Why this lever (docs/performance.md, "A cheaper frame"): the backbone's cost grows with the
working area, so half the side is about a quarter of the CPU time per frame. Averaging 2x2 blocks
alone loses faint one-pixel scratches (DAGM class 8 at 256 with area averaging: 1 of 30 held-out
defects missed); keeping each block's minimum and maximum as extra channels (training/frames.py)
keeps their contrast, at no extra backbone cost. Post-training quantization was measured too and
did not give 3x on XNNPACK.

The fast variant is trained on the same split as the exact model, after it, and only judged on the
same held-out frames: it ships inside the version (`fast/`) with `matches_exact` true only when it
is at least as good there. Workers choose it on CPU only then (line_runtime.variants).
"""

from __future__ import annotations

from typing import Any, Optional

from training.frames import MIN_SHORT_SIDE, SIDE_MULTIPLE

FAST_DOWNSCALE = "extremes"
FAST_MAX_MINUTES = 6.0  # measured 3 min of training for DAGM class 8 at 256 on 2 idle cores


def fast_size(model_size: tuple[int, int], crop: int, multiple: int = SIDE_MULTIPLE) -> Optional[tuple[int, int]]:
    """Half the working size (multiples of `multiple`, the backbone's stride), or None when too small for the recipe."""
    half = tuple(max(multiple, multiple * int(round(side / 2 / multiple))) for side in model_size)
    if min(half) < max(MIN_SHORT_SIDE, crop):  # a crop must fit; too few map cells below the short-side floor
        return None
    return half  # type: ignore[return-value]


def matches_exact(exact: Optional[dict[str, Any]], fast: Optional[dict[str, Any]]) -> tuple[bool, str]:
    """(True, why) when the fast variant's held-out metrics are at least the exact model's, each at its own threshold."""
    if not exact or not fast:
        return False, "no held-out part to compare them on"
    worse = []
    if fast["roc_auc"] < exact["roc_auc"]:
        worse.append(f"ROC-AUC {fast['roc_auc']:.4f} < {exact['roc_auc']:.4f}")
    if fast["recall"] < exact["recall"]:
        worse.append(f"recall {fast['recall']:.4f} < {exact['recall']:.4f}")
    if fast["false_positive_rate"] > exact["false_positive_rate"]:
        worse.append(f"false-positive rate {fast['false_positive_rate']:.4f} > {exact['false_positive_rate']:.4f}")
    if worse:
        return False, "held-out " + ", ".join(worse)
    return True, (f"held-out ROC-AUC {fast['roc_auc']:.4f}, recall {fast['recall']:.4f}, false-positive rate "
                  f"{fast['false_positive_rate']:.4f}: each at least as good as the exact model's")

"""The quality gate: is the model fit to deploy, judged on the held-out part only.

A model that fails is still written (the user keeps the run), but `train` says so loudly,
`metadata.json` records `fit_to_serve: false` with the reasons, and workers refuse it unless
explicitly allowed (line_runtime.model.check_fit_to_serve).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

from training.metrics import rate_interval


@dataclass(frozen=True)
class GateLimits:
    """Held-out limits at the stored threshold."""

    min_roc_auc: float = 0.9
    min_recall: float = 0.9
    max_false_positive_rate: float = 0.05


def judge(holdout: Optional[dict[str, Any]], limits: GateLimits) -> dict[str, Any]:
    """{"passed": bool, "reasons": [...], "limits": {...}, "values": {...}} for metadata.json."""
    reasons = []
    if holdout is None:
        reasons.append("no held-out part (split fraction 0): the model was never scored on unseen frames")
        values: dict[str, Any] = {}
    else:
        values = {k: holdout.get(k) for k in ("roc_auc", "recall", "false_positive_rate", "n_images", "n_defective")}
        auc, recall, fpr = (float(holdout.get(k, float("nan"))) for k in ("roc_auc", "recall", "false_positive_rate"))
        if not auc >= limits.min_roc_auc:  # written so that nan fails too
            reasons.append(f"held-out ROC-AUC {auc:.3f} < {limits.min_roc_auc:g}")
        if not recall >= limits.min_recall:
            reasons.append(f"held-out recall {recall:.3f} < {limits.min_recall:g} at the stored threshold")
        if not fpr <= limits.max_false_positive_rate:
            reasons.append(f"held-out false-positive rate {fpr:.3f} > {limits.max_false_positive_rate:g} at the stored threshold")
        values = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}
    return {"passed": not reasons, "reasons": reasons, "limits": asdict(limits), "values": values,
            "too_few_to_judge": _too_few(holdout, limits)}


def _too_few(holdout: Optional[dict[str, Any]], limits: GateLimits) -> list[str]:
    """Why a held-out part this small cannot show the limits were met, even by a perfect score.

    The gate still judges the point values (a plant with 25 defects must be able to deploy), but
    says that a pass on so few frames is weak evidence; the 95 % Wilson bounds of a perfect part
    are what it compares (training/metrics.py)."""
    if holdout is None:
        return []
    n_def = int(holdout.get("n_defective") or 0)
    n_ok = int(holdout.get("n_images") or 0) - n_def
    notes = []
    lowest = rate_interval(n_def, n_def)[0]
    if not lowest >= limits.min_recall:
        notes.append(f"only {n_def} defective frames held out: even with all of them caught, the true recall could be "
                     f"as low as {lowest:.2f} (95 %), under the limit {limits.min_recall:g}")
    highest = rate_interval(0, n_ok)[1]
    if not highest <= limits.max_false_positive_rate:
        notes.append(f"only {n_ok} ok frames held out: even with no false alarm, the true false-positive rate could be "
                     f"as high as {highest:.2f} (95 %), over the limit {limits.max_false_positive_rate:g}")
    return notes


def banner(gate: dict[str, Any]) -> list[str]:
    """The loud lines `train` prints when the gate fails."""
    weak = [f"quality gate: weak evidence: {note}; more images give a firmer verdict" for note in gate.get("too_few_to_judge", [])]
    if gate["passed"]:
        return ["quality gate: passed (" + ", ".join(f"{k} {v:.3f}" for k, v in gate["values"].items() if isinstance(v, float)) + ")", *weak]
    bar = "!" * 78
    return [bar, "MODEL NOT FIT TO DEPLOY: the held-out part failed the quality gate:",
            *(f"  - {r}" for r in gate["reasons"]),
            "  metadata.json says fit_to_serve=false; workers refuse it unless WORKER_ALLOW_UNFIT_MODEL=true.",
            "  The held-out frames it got wrong are listed above (training_report.json: holdout_errors); look at them first.",
            "  More or better-labelled images (or masks for some defects) usually help; see docs/training.md.", *weak, bar]

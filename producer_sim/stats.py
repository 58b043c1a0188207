"""Pure statistics for `watch`: percentiles and verdict-vs-truth scores. No I/O, no clocks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default); None if empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(values: Sequence[float]) -> dict[str, Optional[float]]:
    """count, p50, p95, p99, max and mean of a list of latencies."""
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


@dataclass
class Confusion:
    """Verdicts against ground truth; 'positive' means defect."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, predicted_defect: bool, truly_defect: bool) -> None:
        """Count one judged frame whose truth is known."""
        if predicted_defect and truly_defect:
            self.tp += 1
        elif predicted_defect:
            self.fp += 1
        elif truly_defect:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def total(self) -> int:
        """Frames counted."""
        return self.tp + self.fp + self.tn + self.fn

    def precision(self) -> Optional[float]:
        """tp / (tp + fp); None when nothing was called a defect."""
        return _ratio(self.tp, self.tp + self.fp)

    def recall(self) -> Optional[float]:
        """tp / (tp + fn); None when no frame truly had a defect."""
        return _ratio(self.tp, self.tp + self.fn)

    def accuracy(self) -> Optional[float]:
        """(tp + tn) / total; None when no frame carried truth."""
        return _ratio(self.tp + self.tn, self.total)

    def to_dict(self) -> dict:
        """Counts and the derived scores."""
        return {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn, "frames_with_truth": self.total,
                "precision": self.precision(), "recall": self.recall(), "accuracy": self.accuracy()}


def _ratio(num: int, den: int) -> Optional[float]:
    return num / den if den else None


@dataclass
class RateCounter:
    """Results and defects of one group (a line or a camera)."""

    results: int = 0
    defects: int = 0

    def add(self, is_defect: bool) -> None:
        """Count one result."""
        self.results += 1
        self.defects += int(is_defect)

    def to_dict(self) -> dict:
        """Counts and defect rate."""
        return {"results": self.results, "defects": self.defects,
                "defect_rate": _ratio(self.defects, self.results)}


@dataclass
class LocalisationScore:
    """Live localisation: of the frames judged defect that truly are and carry a truth box, how many
    have a strongest region (the event's first) overlapping that box.

    It can only cover frames the worker judged defect (it sends regions for those alone), so it
    matches `evaluate`'s `hit_rate_judged_defect`; and the truth is the mask's bounding box, a
    little looser than `evaluate`'s mask pixels.
    """

    judged: int = 0          # defect verdict, true defect, truth box sent
    without_regions: int = 0  # of those: the event has no regions (a model without a defect map)
    hits: int = 0

    def add(self, has_regions: bool, hit: bool) -> None:
        """Count one such frame."""
        self.judged += 1
        if not has_regions:
            self.without_regions += 1
        elif hit:
            self.hits += 1

    def hit_rate(self) -> Optional[float]:
        """Hits over the judged frames that carry regions (None before any)."""
        return _ratio(self.hits, self.judged - self.without_regions)

    def to_dict(self) -> dict:
        """The `localisation` block of the watch summary."""
        return {"frames_with_truth_box": self.judged, "with_regions": self.judged - self.without_regions,
                "hits": self.hits, "hit_rate": self.hit_rate()}

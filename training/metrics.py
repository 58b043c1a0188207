"""Binary classification metrics and the decision threshold rule (numpy only).

DAGM's cost counts a missed defect as 20 false alarms. `choose_threshold` minimises that cost
on validation scores (or reaches a target recall) and, among equally cheap thresholds, takes
the middle of the widest gap between scores, in logit space, so unseen frames have margin
on both sides.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

DAGM_FN_COST = 20.0
Z95 = 1.959964  # standard normal quantile of a two-sided 95 % interval


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) over all thresholds, starting at (0, 0)."""
    labels, scores = _check(labels, scores)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(y.sum(), 1)]
    fpr = np.r_[0.0, fps / max(len(y) - y.sum(), 1)]
    return fpr, tpr


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); nan with a single class."""
    labels, scores = _check(labels, scores)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels == 1].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recalls, precisions) over thresholds from the highest score down."""
    labels, scores = _check(labels, scores)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    precision = tps / (distinct + 1)
    recall = tps / max(y.sum(), 1)
    return np.r_[0.0, recall], np.r_[1.0, precision]


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the step PR curve); nan without defects."""
    labels, _ = _check(labels, scores)
    if labels.sum() == 0:
        return float("nan")
    recall, precision = pr_curve(labels, scores)
    return float(np.sum(np.diff(recall) * precision[1:]))


def at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Confusion counts and rates when score >= threshold means defect."""
    labels, scores = _check(labels, scores)
    predicted = scores >= threshold
    tp = int(np.sum(predicted & (labels == 1)))
    fp = int(np.sum(predicted & (labels == 0)))
    fn = int(np.sum(~predicted & (labels == 1)))
    tn = int(np.sum(~predicted & (labels == 0)))
    n_pos, n_neg = tp + fn, fp + tn
    return {
        "threshold": float(threshold),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "accuracy": (tp + tn) / max(len(labels), 1),
        "recall": tp / n_pos if n_pos else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "false_positive_rate": fp / n_neg if n_neg else float("nan"),
        "dagm_cost": DAGM_FN_COST * fn + fp,
    }


def errors_at(labels: np.ndarray, scores: np.ndarray, threshold: float, names: list[str]) -> dict:
    """The frames judged wrong at `threshold`, worst first: {"missed": [...], "false_alarms": [...]}.

    Each entry is {"file": name, "score": score}. A user whose model fails the quality gate
    looks at these first (a mislabelled image, a kind of defect with too few examples).
    """
    labels, scores = _check(labels, scores)
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names but {len(labels)} scores")
    missed = np.flatnonzero((labels == 1) & (scores < threshold))
    alarms = np.flatnonzero((labels == 0) & (scores >= threshold))
    return {"missed": [{"file": names[i], "score": float(scores[i])} for i in missed[np.argsort(scores[missed], kind="stable")]],
            "false_alarms": [{"file": names[i], "score": float(scores[i])} for i in alarms[np.argsort(-scores[alarms], kind="stable")]]}


def by_folder(labels: np.ndarray, scores: np.ndarray, threshold: float, names: list[str]) -> dict:
    """Frames judged right at `threshold`, per folder of `names` (`defect/dent/0042.jpg` -> `defect/dent`).

    {folder: {"frames": n, "right": k}}: defects caught in a defect folder, ok frames passed in an
    ok folder. With defects sorted into sub-folders by kind, this says which kind the model misses.
    """
    labels, scores = _check(labels, scores)
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names but {len(labels)} scores")
    right = (scores >= threshold) == (labels == 1)
    out: dict[str, dict[str, int]] = {}
    for name, ok in zip(names, right):
        folder = out.setdefault(name.rsplit("/", 1)[0] if "/" in name else ".", {"frames": 0, "right": 0})
        folder["frames"] += 1
        folder["right"] += int(ok)
    return dict(sorted(out.items()))


def folder_text(folders: dict[str, dict[str, int]]) -> str:
    """`by_folder` in one line: `defect/dent 18/20, defect/scratch 9/12, ok 178/180`."""
    return ", ".join(f"{name} {v['right']}/{v['frames']}" for name, v in folders.items())


def summary(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """All report metrics at one threshold."""
    labels, scores = _check(labels, scores)
    return {
        "roc_auc": roc_auc(labels, scores),
        "pr_auc": pr_auc(labels, scores),
        **at_threshold(labels, scores, threshold),
        "n_images": int(len(labels)),
        "n_defective": int(labels.sum()),
    }


def choose_threshold(labels: np.ndarray, scores: np.ndarray, target_recall: Optional[float] = None, fn_cost: float = DAGM_FN_COST,
                     max_fpr: Optional[float] = None) -> tuple[float, str]:
    """Threshold minimising fn_cost*FN + FP (or the highest one reaching target_recall), and its rule.

    `max_fpr` caps the false-positive rate: only thresholds within the cap compete (a display
    that cries wolf on every third frame is useless even when the 20:1 cost prefers it).
    """
    labels, scores = _check(labels, scores)
    if labels.min() == labels.max():
        raise ValueError("choosing a threshold needs validation frames of both classes")
    logits = np.log(np.clip(scores, 1e-7, 1 - 1e-7) / np.clip(1 - scores, 1e-7, 1))
    cuts = np.unique(logits)
    # candidate thresholds: midpoints between consecutive distinct scores, plus both ends
    candidates = np.r_[cuts[0] - 1.0, (cuts[:-1] + cuts[1:]) / 2, cuts[-1] + 1.0]
    gaps = np.r_[2.0, np.diff(cuts), 2.0]
    fn = np.array([np.sum((logits < c) & (labels == 1)) for c in candidates])
    fp = np.array([np.sum((logits >= c) & (labels == 0)) for c in candidates])
    if target_recall is not None:
        recall = 1 - fn / labels.sum()
        ok = recall >= target_recall
        cost = np.where(ok, fp, np.inf)
        rule = f"target recall >= {target_recall:g} on validation, fewest false alarms"
    else:
        cost = fn_cost * fn + fp
        rule = f"min DAGM cost on validation (missed defect = {fn_cost:g} false alarms)"
    if max_fpr is not None:
        # the top candidate (above every score) has FPR 0, so the cap always leaves one
        within = fp / max(int((labels == 0).sum()), 1) <= max_fpr + 1e-12
        if not np.isfinite(np.where(within, cost, np.inf).min()):  # recall target and cap conflict: the cap wins
            cost = fn_cost * fn + fp
        cost = np.where(within, cost, np.inf)
        rule += f", false-positive rate <= {max_fpr:g}"
    best = np.flatnonzero(cost == cost.min())
    pick = best[np.argmax(gaps[best])]
    return float(1 / (1 + np.exp(-candidates[pick]))), rule


def rate_interval(hits: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval of a rate seen as hits / n; [nan, nan] for n = 0.

    Wilson rather than the normal approximation: held-out parts are small, and their rates sit at
    or near 0 and 1 (40 of 40 defects caught), where the normal interval collapses to a point.
    """
    if n <= 0:
        return [float("nan"), float("nan")]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def roc_auc_interval(labels: np.ndarray, scores: np.ndarray, resamples: int = 1000, seed: int = 0) -> list[float]:
    """95 % percentile interval of ROC-AUC over bootstrap resamples of each class separately.

    Each resample redraws the defective and the ok frames with replacement (their counts fixed),
    so every resample has both classes. Computed as pair weights: AUC = w' K c / (P N), with K the
    pairwise win matrix (1 above, 1/2 tied) and w, c how often each frame was drawn.
    """
    labels, scores = _check(labels, scores)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return [float("nan"), float("nan")]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(pos), np.full(len(pos), 1 / len(pos)), size=resamples)
    c = rng.multinomial(len(neg), np.full(len(neg), 1 / len(neg)), size=resamples)
    aucs = np.einsum("bn,bn->b", w @ wins, c) / (len(pos) * len(neg))
    return [float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))]


def intervals(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """95 % intervals of the held-out ROC-AUC, recall and false-positive rate at `threshold`: how far
    the true values may lie from what a part of this size showed."""
    counts = at_threshold(labels, scores, threshold)
    return {"level": 0.95,
            "roc_auc": roc_auc_interval(labels, scores),
            "recall": rate_interval(counts["tp"], counts["tp"] + counts["fn"]),
            "false_positive_rate": rate_interval(counts["fp"], counts["fp"] + counts["tn"])}


def interval_text(iv: dict) -> str:
    """One log line's worth of `intervals`: "roc_auc 0.950-0.990  recall ...  false_positive_rate ..."."""
    return "  ".join(f"{key} {iv[key][0]:.3f}-{iv[key][1]:.3f}" for key in ("roc_auc", "recall", "false_positive_rate"))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.shape[0]} labels but {scores.shape[0]} scores")
    return labels, scores


def weighted_roc_auc(values: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> float:
    """ROC-AUC when value v[i] stands for positives[i] defect and negatives[i] clear items (ties half).

    Pixel-level scoring of a coarse map: each map cell is one value covering many frame pixels.
    """
    v, pos, neg = _grouped(values, positives, negatives)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg  # clear items strictly below each value
    return float(np.sum(pos * (below + 0.5 * neg)) / (n_pos * n_neg))


def weighted_average_precision(values: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> float:
    """Average precision (as `pr_auc`) of weighted values; nan without positives."""
    v, pos, neg = _grouped(values, positives, negatives)
    if pos.sum() == 0:
        return float("nan")
    tp, fp = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])  # highest value first
    recall = np.r_[0.0, tp / pos.sum()]
    precision = tp / np.maximum(tp + fp, 1e-12)
    return float(np.sum(np.diff(recall) * precision))


def _grouped(values: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values ascending, with their summed positive and negative weights."""
    values = np.asarray(values, np.float64).reshape(-1)
    positives = np.asarray(positives, np.float64).reshape(-1)
    negatives = np.asarray(negatives, np.float64).reshape(-1)
    if not values.shape == positives.shape == negatives.shape:
        raise ValueError(f"{values.shape[0]} values but {positives.shape[0]} positive and {negatives.shape[0]} negative weights")
    distinct, index = np.unique(values, return_inverse=True)
    return distinct, np.bincount(index, positives, len(distinct)), np.bincount(index, negatives, len(distinct))

"""`python -m training evaluate`: score a labelled data set with an exported model version.

Uses the same loader as the worker (line_runtime.model), so the numbers describe what the line
will do. Recall and false-positive rate are at the model's own stored threshold.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from line_runtime.model import ModelLoadError, latest_version, load_model
from surface_images.datasets import DatasetError, discover
from training import metrics
from training.frames import fit_to_frame

REQUIRED_KEYS = ("roc_auc", "pr_auc", "accuracy", "recall", "precision", "false_positive_rate", "threshold", "n_images", "n_defective")


def evaluate(
    model: Path,
    data: Path,
    split: Optional[str],
    report_dir: Path,
    backend: str = "auto",
    batch_size: int = 8,
    log: Callable[[str], None] = print,
    holdout_only: bool = False,
) -> dict:
    """Write report_dir/metrics.json and report.html; return the metrics."""
    version = latest_version(Path(model))
    if version is None:
        raise ModelLoadError(f"{model}: no model version with metadata.json; pass a version folder or a model base folder")
    loaded = load_model(version, backend=backend)
    meta = loaded.metadata
    items = [it for it in discover(Path(data), split) if it.label is not None]
    if holdout_only:
        items = _holdout_items(version, items)
    if not items:
        raise DatasetError(f"{data}: no labelled images (split={split!r}); evaluation needs labels")
    log(f"evaluating {meta.name} v{meta.version} ({loaded.backend}) on {len(items)} images from {data} split {split}")
    height, width = loaded.input_size
    scores, resized = [], 0
    started = time.monotonic()
    for start in range(0, len(items), batch_size):
        batch = []
        for it in items[start : start + batch_size]:
            image = it.read()
            if image.shape != (height, width):
                resized += 1
                image = fit_to_frame(image, (height, width))  # as training did: aspect kept, mirror-padded
            batch.append(image)
        scores.append(loaded.predict(np.stack(batch)[..., np.newaxis]))
    seconds = time.monotonic() - started
    scores_arr = np.concatenate(scores)
    labels = np.array([it.label for it in items], np.int64)
    result = metrics.summary(labels, scores_arr, meta.threshold)
    result.update({
        "model": {"name": meta.name, "version": meta.version, "backend": loaded.backend, "path": str(version)},
        "data": {"path": str(data), "split": split, "resized_frames": resized, "holdout_only": holdout_only},
        "seconds_per_frame": seconds / len(items),
        "wall_seconds": round(seconds, 2),
        "misclassified": [
            {"file": str(it.path), "label": int(it.label), "score": float(s)}
            for it, s in zip(items, scores_arr) if (s >= meta.threshold) != bool(it.label)
        ],
    })
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    (report_dir / "scores.csv").write_text(
        "file,label,score\n" + "".join(f"{it.path},{it.label},{s:.6f}\n" for it, s in zip(items, scores_arr))
    )
    from training.report import write_report

    write_report(report_dir, result, labels, scores_arr, items)
    log(
        f"roc_auc {result['roc_auc']:.4f}  pr_auc {result['pr_auc']:.4f}  accuracy {result['accuracy']:.4f}  "
        f"recall {result['recall']:.4f}  precision {result['precision']:.4f}  fpr {result['false_positive_rate']:.4f}  "
        f"threshold {meta.threshold:.4f}  n={len(items)} ({int(labels.sum())} defective)  {1000 * seconds / len(items):.0f} ms/frame"
    )
    log(f"report: {report_dir / 'report.html'}")
    return result


def _holdout_items(version: Path, items: list) -> list:
    """Keep only the frames the model's training run held out (listed in training_report.json)."""
    report = version / "training_report.json"
    if not report.is_file():
        raise ModelLoadError(f"{report} not found; --holdout needs a model exported by `python -m training train`")
    names = set(json.loads(report.read_text()).get("holdout_files", []))
    kept = [it for it in items if it.path.name in names]
    if len(kept) != len(names):
        raise DatasetError(f"--holdout: {len(names)} held-out files listed in {report}, {len(kept)} found in the data; pass the data it was trained on")
    return kept

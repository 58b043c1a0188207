"""End-to-end recipes: data -> split -> train -> threshold -> held-out metrics -> export.

`train_and_export` is what `python -m training train` and `quick-demo` run. The split is
stratified by label and fixed by seed: `train` fits weights, `validation` picks the epoch and
the threshold, `holdout` is scored once at the end and never used for any decision.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from training import metrics
from training.backbone import BackboneInfo
from training.export import export_version
from training.model import ModelConfig
from training.pipeline import ArraySet, stratified_split
from training.quality_gate import GateLimits, banner, judge
from training.train import TrainConfig, predict_scores, train


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one training run (all of it lands in metadata.json)."""

    name: str
    model: ModelConfig
    train: TrainConfig
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 0
    target_recall: Optional[float] = None
    max_fpr: Optional[float] = None  # cap on the validation false-positive rate when choosing the threshold
    gate: GateLimits = GateLimits()
    litert: bool = True


def train_and_export(
    recipe: Recipe,
    data: ArraySet,
    backbone: BackboneInfo,
    out_base: Path,
    input_size: tuple[int, int],
    data_summary: dict,
    version: Optional[int] = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train on data per `recipe`, choose the threshold on validation, export; return the version folder."""
    started = time.monotonic()
    parts = stratified_split(data.labels, recipe.split, recipe.split_seed)
    train_set, val_set = data.subset(parts[0]), data.subset(parts[1])
    holdout = data.subset(parts[2]) if len(parts) > 2 and len(parts[2]) else None
    log(
        f"split (stratified, seed {recipe.split_seed}): train {len(train_set)} ({int(train_set.labels.sum())} defective), "
        f"validation {len(val_set)} ({int(val_set.labels.sum())}), holdout {len(holdout) if holdout else 0}"
        f" ({int(holdout.labels.sum()) if holdout else 0})"
    )
    result = train(recipe.model, recipe.train, backbone, train_set, val_set, log)
    val_scores = predict_scores(result.scorer, val_set.images)
    threshold, rule = metrics.choose_threshold(val_set.labels, val_scores, recipe.target_recall, max_fpr=recipe.max_fpr)
    report = {"validation": metrics.summary(val_set.labels, val_scores, threshold)}
    if holdout is not None:
        # Scored once, after every choice is made: the honest estimate.
        hold_start = time.monotonic()
        hold_scores = predict_scores(result.scorer, holdout.images)
        report["holdout"] = metrics.summary(holdout.labels, hold_scores, threshold)
        report["holdout"]["seconds_per_frame"] = (time.monotonic() - hold_start) / max(len(holdout), 1)
        report["holdout_files"] = [Path(n).name for n in holdout.names]
    report["training"] = {"wall_seconds": round(time.monotonic() - started, 1), "train_loop_seconds": round(result.wall_seconds, 1),
                          "best_epoch": result.best_epoch, "stopped": result.stopped_because, "history": result.history}
    gate = judge(report.get("holdout"), recipe.gate)
    report["quality_gate"] = gate
    for part in ("validation", "holdout"):
        if part in report:
            m = report[part]
            log(f"{part}: roc_auc {m['roc_auc']:.4f}  recall {m['recall']:.4f}  fpr {m['false_positive_rate']:.4f}  "
                f"accuracy {m['accuracy']:.4f}  threshold {threshold:.4f}  (n={m['n_images']}, defective={m['n_defective']})")
    folder = export_version(
        result.scorer,
        out_base,
        name=recipe.name,
        version=version,
        input_size=input_size,
        model_size=(recipe.model.model_height, recipe.model.model_width),
        threshold=threshold,
        threshold_rule=rule,
        backbone=backbone.handle,
        architecture={**recipe.model.as_dict(), "backbone_variant": backbone.variant, "backbone_stride": backbone.output_stride,
                      "backbone_input_range": backbone.input_range, "backbone_weights": backbone.weights},
        training_data={**data_summary, "split": {"fractions": list(recipe.split), "seed": recipe.split_seed,
                                                 "train": len(train_set), "validation": len(val_set), "holdout": len(holdout) if holdout else 0},
                       "train_config": recipe.train.as_dict()},
        metrics={k: v for k, v in report.items() if k in ("validation", "holdout")} | {"wall_seconds": report["training"]["wall_seconds"]},
        extra_files={"training_report.json": json.dumps(report, indent=2, default=float)},
        litert=recipe.litert,
        fit_to_serve=gate["passed"],
        mapper=result.mapper,
        quality_gate=gate,
        log=log,
    )
    for line in banner(gate):
        log(line)
    log(f"exported {folder} in {time.monotonic() - started:.0f}s total")
    return folder


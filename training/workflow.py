"""End-to-end recipes: data -> split -> train -> threshold -> held-out metrics -> export.

`train_and_export` is what `python -m training train` and `quick-demo` run. The split is
stratified by label and fixed by seed: `train` fits weights, `validation` picks the epoch and
the threshold, `holdout` is scored once at the end and never used for any decision.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from line_contracts.model import FAST_VARIANT_DIR
from surface_images.datasets import report_names
from training import metrics
from training.backbone import BackboneInfo
from training.export import export_version, next_version
from training.model import ModelConfig
from training.pipeline import ArraySet, stratified_split
from training.quality_gate import GateLimits, banner, judge
from training.train import TrainConfig, predict_scores, train
from training.variants import matches_exact


class TrainingInterrupted(Exception):
    """A stop signal cut training short; the best epoch so far was judged and exported to `folder` all the same."""

    def __init__(self, signal_name: str, folder: Path):
        super().__init__(f"training was interrupted by {signal_name}; the best epoch so far was written to {folder}")
        self.signal_name, self.folder = signal_name, folder

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, the shell's convention for a command ended by a signal."""
        import signal

        return 128 + int(signal.Signals[self.signal_name])


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
    fast: Optional[tuple[Recipe, ArraySet]] = None,
) -> Path:
    """Train on data per `recipe`, choose the threshold on validation, export; return the version folder.

    `fast` (a recipe at a lower working size and the same frames prepared for it) adds the fast
    variant (training/variants.py): trained on the same split after the exact model, exported into
    the version's fast/ folder. If it fails, the exact model is written anyway, with a warning.
    """
    started = time.monotonic()
    parts = stratified_split(data.labels, recipe.split, recipe.split_seed)
    log(
        f"split (stratified, seed {recipe.split_seed}): train {len(parts[0])} ({int(data.labels[parts[0]].sum())} defective), "
        f"validation {len(parts[1])} ({int(data.labels[parts[1]].sum())}), holdout {len(parts[2]) if len(parts) > 2 else 0}"
        f" ({int(data.labels[parts[2]].sum()) if len(parts) > 2 else 0})"
    )
    exact = _fit(recipe, data, parts, backbone, log)
    out_base = Path(out_base)
    version = next_version(out_base) if version is None else int(version)
    variants: dict[str, Any] = {}
    variant_dirs: dict[str, Path] = {}
    warnings: list[str] = []
    interrupted = exact.result.interrupted
    if interrupted:
        warnings.append(f"training {exact.result.stopped_because}: this is the best epoch so far ({exact.result.best_epoch}), "
                        f"judged on the held-out part as usual" + ("; no fast variant was trained" if fast is not None else ""))
        if fast is not None:
            log("fast variant skipped: training was interrupted")
            fast = None
    if fast is not None:
        fast_recipe, fast_data = fast
        size = f"{fast_recipe.model.model_height}x{fast_recipe.model.model_width}"
        log(f"fast variant: the same split at working size {size}, {fast_recipe.model.downscale} downscale")
        try:
            trained = _fit(fast_recipe, fast_data, parts, backbone, log, label="fast variant ")
            if trained.result.interrupted:  # optional, and cut short: ship the exact model alone
                interrupted = trained.result.interrupted
                raise RuntimeError(f"its training was {trained.result.stopped_because}")
            fast_dir = _export(trained, out_base / f".fast-{os.getpid()}", version, input_size, data_summary, log, variant="fast")
            ok, why = matches_exact(exact.report.get("holdout"), trained.report.get("holdout"))
            variant_dirs["fast"] = fast_dir
            variants["fast"] = {"folder": FAST_VARIANT_DIR, "model_height": fast_recipe.model.model_height,
                                "model_width": fast_recipe.model.model_width, "downscale": fast_recipe.model.downscale,
                                "threshold": trained.threshold, "holdout": trained.report.get("holdout"),
                                "validation": trained.report["validation"], "matches_exact": ok, "reason": why,
                                "wall_seconds": trained.report["training"]["wall_seconds"]}
            log(f"fast variant {'matches' if ok else 'does NOT match'} the exact model: {why}"
                + ("" if ok else "; workers serve the exact model"))
        except Exception as exc:  # the exact model is trained: never lose it to the optional variant
            warnings.append(f"no fast variant: {type(exc).__name__}: {exc}")
            log(f"WARNING: the fast variant failed ({exc}); exporting the exact model without it")
            shutil.rmtree(out_base / f".fast-{os.getpid()}", ignore_errors=True)
    try:
        folder = _export(exact, out_base, version, input_size, data_summary, log, variants=variants, variant_dirs=variant_dirs,
                         warnings=warnings)
    finally:
        shutil.rmtree(out_base / f".fast-{os.getpid()}", ignore_errors=True)  # moved into the version, or failed
    for line in banner(exact.gate):
        log(line)
    log(f"exported {folder} in {time.monotonic() - started:.0f}s total")
    if interrupted:
        raise TrainingInterrupted(interrupted, folder)
    return folder


@dataclass
class _Trained:
    """One trained model with its threshold and report, ready to export."""

    recipe: Recipe
    result: Any
    threshold: float
    rule: str
    report: dict[str, Any]
    gate: dict[str, Any]
    sizes: dict[str, int]
    backbone: BackboneInfo


def _fit(recipe: Recipe, data: ArraySet, parts: list, backbone: BackboneInfo, log: Callable[[str], None], label: str = "") -> _Trained:
    """Train on parts[0], pick epoch and threshold on parts[1], score parts[2] once."""
    started = time.monotonic()
    train_set, val_set = data.subset(parts[0]), data.subset(parts[1])
    holdout = data.subset(parts[2]) if len(parts) > 2 and len(parts[2]) else None
    result = train(recipe.model, recipe.train, backbone, train_set, val_set, log)
    val_scores = predict_scores(result.scorer, val_set.images)
    threshold, rule = metrics.choose_threshold(val_set.labels, val_scores, recipe.target_recall, max_fpr=recipe.max_fpr)
    report: dict[str, Any] = {"validation": metrics.summary(val_set.labels, val_scores, threshold)}
    # Every frame's score, so a threshold rule or a metric can be studied again without the model.
    names = report_names(data.names)  # paths below the data folder: a bare file name may repeat across folders
    report["validation_files"] = [names[i] for i in parts[1]]
    report["validation_scores"] = [round(float(v), 6) for v in val_scores]
    if holdout is not None:
        # Scored once, after every choice is made: the honest estimate.
        hold_start = time.monotonic()
        hold_scores = predict_scores(result.scorer, holdout.images)
        report["holdout"] = metrics.summary(holdout.labels, hold_scores, threshold)
        report["holdout"]["seconds_per_frame"] = (time.monotonic() - hold_start) / max(len(holdout), 1)
        report["holdout"]["interval_95"] = metrics.intervals(holdout.labels, hold_scores, threshold)
        report["holdout_files"] = [names[i] for i in parts[2]]
        report["holdout_scores"] = [round(float(v), 6) for v in hold_scores]
        report["holdout_errors"] = metrics.errors_at(holdout.labels, hold_scores, threshold, report["holdout_files"])
        report["holdout_by_folder"] = metrics.by_folder(holdout.labels, hold_scores, threshold, report["holdout_files"])
    report["training"] = {"wall_seconds": round(time.monotonic() - started, 1), "train_loop_seconds": round(result.wall_seconds, 1),
                          "best_epoch": result.best_epoch, "stopped": result.stopped_because, "history": result.history}
    gate = judge(report.get("holdout"), recipe.gate)
    report["quality_gate"] = gate
    for part in ("validation", "holdout"):
        if part in report:
            m = report[part]
            log(f"{label}{part}: roc_auc {m['roc_auc']:.4f}  recall {m['recall']:.4f}  fpr {m['false_positive_rate']:.4f}  "
                f"accuracy {m['accuracy']:.4f}  threshold {threshold:.4f}  (n={m['n_images']}, defective={m['n_defective']})")
    if "holdout" in report:
        log(label + _interval_line(report["holdout"]))
    for line in _error_lines(report.get("holdout_errors"), label):
        log(line)
    if len(report.get("holdout_by_folder", {})) > 2:  # defects (or ok frames) sorted into sub-folders
        log(f"{label}holdout by folder (judged right / frames): {metrics.folder_text(report['holdout_by_folder'])}")
    sizes = {"train": len(train_set), "validation": len(val_set), "holdout": len(holdout) if holdout else 0}
    return _Trained(recipe, result, threshold, rule, report, gate, sizes, backbone)


def _interval_line(holdout: dict[str, Any]) -> str:
    """How far the held-out numbers may be from the truth, at this part's size."""
    return (f"holdout 95 % intervals ({holdout['n_defective']} defective, {holdout['n_images'] - holdout['n_defective']} ok "
            f"frames; a small part gives wide ones): {metrics.interval_text(holdout['interval_95'])}")


def _error_lines(errors: Optional[dict[str, list]], label: str = "", shown: int = 10) -> list[str]:
    """The held-out frames judged wrong at the stored threshold, worst first (all of them in training_report.json)."""
    lines = []
    for kind, words in (("missed", "defects missed"), ("false_alarms", "false alarms")):
        items = (errors or {}).get(kind, [])
        if items:
            listed = ", ".join(f"{e['file']} ({e['score']:.3f})" for e in items[:shown])
            more = f" and {len(items) - shown} more" if len(items) > shown else ""
            lines.append(f"{label}holdout {words}: {listed}{more}")
    return lines


def _export(trained: _Trained, out_base: Path, version: int, input_size: tuple[int, int], data_summary: dict,
            log: Callable[[str], None], variant: str = "exact", variants: Optional[dict] = None,
            variant_dirs: Optional[dict[str, Path]] = None, warnings: Optional[list[str]] = None) -> Path:
    """export_version of one trained model, with everything the recipe and its report say."""
    recipe, report, backbone_info = trained.recipe, trained.report, trained.backbone
    return export_version(
        trained.result.scorer,
        out_base,
        name=recipe.name,
        version=version,
        input_size=input_size,
        model_size=(recipe.model.model_height, recipe.model.model_width),
        threshold=trained.threshold,
        threshold_rule=trained.rule,
        backbone=backbone_info.handle,
        architecture={**recipe.model.as_dict(), "backbone_variant": backbone_info.variant, "backbone_stride": backbone_info.output_stride,
                      "backbone_input_range": backbone_info.input_range, "backbone_weights": backbone_info.weights},
        training_data={**data_summary, "split": {"fractions": list(recipe.split), "seed": recipe.split_seed, **trained.sizes},
                       "train_config": recipe.train.as_dict()},
        metrics={k: v for k, v in report.items() if k in ("validation", "holdout")} | {"wall_seconds": report["training"]["wall_seconds"]},
        extra_files={"training_report.json": json.dumps(report, indent=2, default=float)},
        litert=recipe.litert,
        fit_to_serve=trained.gate["passed"],
        mapper=trained.result.mapper,
        quality_gate=trained.gate,
        log=log,
        variant=variant,
        variants=variants,
        variant_dirs=variant_dirs,
        warnings=warnings,
    )

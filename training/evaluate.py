"""`python -m training evaluate`: score a labelled data set with an exported model version.

Uses the same loader as the worker (line_runtime.model), so the numbers describe what the line
will do. Recall and false-positive rate are at the model's own stored threshold.

Where the model has a defect map (training/localise.py), every frame also gets the regions the
worker would publish, and where the data has true masks the report says how well the strongest
region points at the defect (`localization_hit_rate`, per-pixel ROC-AUC and AP of the map). The
frame-level numbers never depend on the map: it is a separate pass over the same frames.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from line_runtime.framing import fit_to_frame, place, stretch_to_frame
from line_runtime.model import ModelLoadError, latest_version, load_model
from surface_images.datasets import DatasetError, discover, find_listed, report_names
from training import metrics
from training.frames import fit_truth_to_frame
from training.localise import LocalisationTally, try_load_defect_map

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
    localise: bool = True,
    region_level: Optional[float] = None,
    max_regions: int = 5,
    size_policy: str = "fit",
) -> dict:
    """Write report_dir/metrics.json and report.html; return the metrics.

    `size_policy`: how a frame of another size reaches the model input, as the worker's
    WORKER_SIZE_MISMATCH_POLICY does it (line_runtime/framing.py): `fit` (training's rule) or `resize`.
    """
    if size_policy not in ("fit", "resize"):
        raise ValueError(f"--size-policy must be fit or resize (the worker's policies that judge a frame), "
                         f"got {size_policy!r}")
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
    # The worker's path first: maps from the serving call that gives the scores (one pass, same backend);
    # older models only have the separate `defect_map` signature (a second pass, TensorFlow).
    in_serving = localise and getattr(loaded, "has_map", False)
    mapper = None if in_serving or not localise else try_load_defect_map(version)
    tally = LocalisationTally(region_level, max_regions) if in_serving or mapper is not None else None
    scores, resized, map_seconds = [], 0, 0.0
    started = time.monotonic()
    for start in range(0, len(items), batch_size):
        batch, masks, placements = [], [], []
        for it in items[start : start + batch_size]:
            image = it.read()
            mask = _mask(it, image.shape) if tally is not None and it.label == 1 else None
            placements.append(place(image.shape, (height, width), size_policy))
            if image.shape != (height, width):
                resized += 1
                if size_policy == "fit":  # as training did: aspect kept, mirror-padded
                    image = fit_to_frame(image, (height, width))
                    mask = None if mask is None else fit_truth_to_frame(mask, (height, width))
                else:
                    image = stretch_to_frame(image, (height, width))
                    mask = None if mask is None else np.where(stretch_to_frame(mask, (height, width)) > 0, 255, 0).astype(np.uint8)
            batch.append(image)
            masks.append(mask)
        frames = np.stack(batch)[..., np.newaxis]
        if in_serving:
            batch_scores, maps = loaded.judge(frames)
            scores.append(batch_scores)
        else:
            scores.append(loaded.predict(frames))
        if tally is not None:
            map_started = time.monotonic()
            for k, defect_map in enumerate(maps if in_serving else mapper(frames)):
                # the worker reads no region in a fitted frame's mirrored border (line_runtime.regions)
                on_frame = placements[k].cell_coverage(*np.shape(defect_map)) > 0
                tally.add(np.where(on_frame, defect_map, 0.0), int(items[start + k].label), masks[k], (height, width))
            map_seconds += time.monotonic() - map_started
    seconds = time.monotonic() - started - map_seconds
    scores_arr = np.concatenate(scores)
    labels = np.array([it.label for it in items], np.int64)
    result = metrics.summary(labels, scores_arr, meta.threshold)
    result["interval_95"] = metrics.intervals(labels, scores_arr, meta.threshold)
    result.update({
        "model": {"name": meta.name, "version": meta.version, "backend": loaded.backend, "path": str(version)},
        "data": {"path": str(data), "split": split, "resized_frames": resized, "size_policy": size_policy,
                 "holdout_only": holdout_only},
        "seconds_per_frame": seconds / len(items),
        "wall_seconds": round(seconds, 2),
    })
    # the same worst-first lists `train` stores for its held-out part (training.metrics.errors_at)
    names = [str(it.path) for it in items]
    errors = metrics.errors_at(labels, scores_arr, meta.threshold, names)
    result["misclassified"] = [{**e, "label": 1} for e in errors["missed"]] + [{**e, "label": 0} for e in errors["false_alarms"]]
    result["by_folder"] = metrics.by_folder(labels, scores_arr, meta.threshold, report_names(names))
    if tally is not None:
        located = tally.summary(labels, scores_arr >= meta.threshold, names)
        located["map_source"] = "serving signature (same pass as the score)" if in_serving else "defect_map signature (second pass)"
        located["seconds_per_frame"] = map_seconds / len(items)  # regions and truth checks; plus the second pass, if any
        result.update({"localization_hit_rate": located["hit_rate"], "pixel_roc_auc": located["pixel_roc_auc"],
                       "pixel_ap": located["pixel_ap"], "localisation": located})
    else:
        result.update({"localization_hit_rate": None, "pixel_roc_auc": None, "pixel_ap": None,
                       "localisation": {"note": "no defect map: the model has none" if localise else "not asked (--no-localisation)"}})
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    (report_dir / "scores.csv").write_text(
        "file,label,score\n" + "".join(f"{it.path},{it.label},{s:.6f}\n" for it, s in zip(items, scores_arr))
    )
    from training.report import write_report

    write_report(report_dir, result, labels, scores_arr, items, tally)
    log(
        f"roc_auc {result['roc_auc']:.4f}  pr_auc {result['pr_auc']:.4f}  accuracy {result['accuracy']:.4f}  "
        f"recall {result['recall']:.4f}  precision {result['precision']:.4f}  fpr {result['false_positive_rate']:.4f}  "
        f"threshold {meta.threshold:.4f}  n={len(items)} ({int(labels.sum())} defective)  {1000 * seconds / len(items):.0f} ms/frame"
    )
    log(f"95 % intervals at this data's size: {metrics.interval_text(result['interval_95'])}")
    if len(result["by_folder"]) > 2:  # defects (or ok frames) sorted into sub-folders
        log(f"by folder (judged right / frames): {metrics.folder_text(result['by_folder'])}")
    if result["localization_hit_rate"] is not None:
        loc = result["localisation"]
        log(f"localisation: strongest region on the defect in {loc['hits']}/{loc['defective_with_mask']} masked defective frames "
            f"(hit rate {loc['hit_rate']:.4f}; judged defect {loc['hit_rate_judged_defect']}); highest cell "
            f"{loc['peak_distance_px_median']:.0f} px from the defect (median), within one cell in {loc['peak_within_one_cell']:.0%}; pixel ROC-AUC "
            f"{loc['pixel_roc_auc']:.4f}  pixel AP {loc['pixel_ap']:.4f}  map {loc['map_size'][0]}x{loc['map_size'][1]}")
    log(f"report: {report_dir / 'report.html'}")
    return result


def _mask(item, shape: tuple[int, int]) -> Optional[np.ndarray]:
    """The frame's true defect mask at the image's size, or None when the data set has none for it."""
    if item.mask_path is None and item.ellipse is None:
        return None
    return item.read_mask(shape)


def _holdout_items(version: Path, items: list) -> list:
    """Keep only the frames the model's training run held out (listed in training_report.json)."""
    report = version / "training_report.json"
    if not report.is_file():
        raise ModelLoadError(f"{report} not found; --holdout needs a model exported by `python -m training train`")
    listed = json.loads(report.read_text()).get("holdout_files", [])
    kept, missing = find_listed(items, listed)
    if missing:
        raise DatasetError(f"--holdout: {len(listed)} held-out files listed in {report}, {len(missing)} not in the data "
                           f"(e.g. {missing[0]}); pass the data it was trained on")
    return kept

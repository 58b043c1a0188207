"""Cheaper LiteRT twins of an exported model, measured: CPU cost per frame and held-out quality of each.

    .venv/bin/python -m line_harness.bench.quantize MODEL_VERSION_DIR --data DATA_DIR [--out DIR] [--variants exact,fast]

`fast` is the version's own fast variant (its fast/ folder, trained at half the working size,
training/variants.py), judged at its own threshold; the others are conversions of the exact model.
From the version's SavedModel: float16 weights, dynamic-range int8 weights, and full-integer int8
(activations too, calibrated on frames of the training part). The held-out part is rebuilt the way
training made it (`training.pipeline.stratified_split` with the fractions and seed in metadata.json),
so the exact twin must reproduce the held-out metrics metadata.json records; each variant is then
judged on the same frames at the model's threshold (misses, false alarms, ROC-AUC) and timed alone
at batch 1 (frames per CPU-second, as line_harness/bench/ceiling.py). A measuring tool for issue 14
item 1: export (training/export.py) is where a chosen variant would be written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS = ("exact", "fast", "float16", "dynamic_int8", "full_int8")


def held_out_and_calibration(version_dir: Path, data: Path, calibration: int):
    """(held-out images, labels), calibration images from the training part; split as training made it."""
    from line_runtime.model import read_metadata
    from surface_images.datasets import discover
    from training.pipeline import load_images, stratified_split
    md = read_metadata(version_dir)
    split = md.training_data.get("split", {})
    items = discover(data, md.training_data.get("data_split"))
    arrays = load_images(items, (md.input_height, md.input_width))
    parts = stratified_split(arrays.labels, split.get("fractions", (0.6, 0.2, 0.2)), split.get("seed", 0))
    held = arrays.subset(parts[-1])
    rng = np.random.default_rng(0)
    cal = arrays.images[rng.choice(parts[0], size=min(calibration, len(parts[0])), replace=False)]
    return held.images, held.labels, cal


def convert(version_dir: Path, variant: str, calibration: np.ndarray) -> bytes:
    """model.tflite bytes of one variant ("exact": the exported twin as it is)."""
    from line_contracts.model import SAVED_MODEL_DIR, SIGNATURE_NAME, TFLITE_FILE
    if variant == "exact":
        return (version_dir / TFLITE_FILE).read_bytes()
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_saved_model(str(version_dir / SAVED_MODEL_DIR),
                                                         signature_keys=[SIGNATURE_NAME])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "full_int8":
        def representative():
            for image in calibration:
                yield [image[None, ..., None].astype(np.uint8)]
        converter.representative_dataset = representative
    return converter.convert()


def judge(variant_dir: Path, images: np.ndarray, labels: np.ndarray, threshold: float, seconds: float) -> dict:
    """Held-out metrics at the threshold and batch-1 cost of one variant folder."""
    from line_harness.bench.ceiling import measure
    from line_runtime.model import load_model
    from training.metrics import at_threshold, roc_auc
    model = load_model(variant_dir, backend="litert")
    scores = np.concatenate([model.predict(images[i:i + 1]) for i in range(len(images))])
    counts = at_threshold(labels, scores, threshold)
    cost = measure(model, 1, seconds, frames=images[:1, ..., None])
    return {"roc_auc": roc_auc(labels, scores), "misses": int(counts["fn"]), "false_alarms": int(counts["fp"]),
            "n": len(labels), "defective": int(labels.sum()), "frames_per_cpu_s": cost["frames_per_cpu_s"],
            "cpu_ms_per_frame": 1000 / cost["frames_per_cpu_s"] if cost["frames_per_cpu_s"] else None,
            "frames_per_s": cost["frames_per_s"], "bytes": (variant_dir / "model.tflite").stat().st_size,
            "scores": scores.tolist()}


def main(argv=None) -> int:
    """Convert, judge, print a table, write quantize.json."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="model version folder (or base folder: latest version)")
    p.add_argument("--data", type=Path, required=True, help="the data set the model was trained on")
    p.add_argument("--out", type=Path, default=Path("run/bench-quantize"))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--calibration", type=int, default=64, help="training frames for full-integer calibration")
    p.add_argument("--seconds", type=float, default=6.0, help="timing per variant (batch 1)")
    args = p.parse_args(argv)
    from line_contracts.model import FAST_VARIANT_DIR, METADATA_FILE
    from line_runtime.model import latest_version, read_metadata
    version_dir = latest_version(args.model)
    md = read_metadata(version_dir)
    images, labels, cal = held_out_and_calibration(version_dir, args.data, args.calibration)
    print(f"held-out part: {len(labels)} frames ({int(labels.sum())} defective); calibration {len(cal)}", flush=True)
    rows = {}
    for variant in args.variants.split(","):
        started = time.monotonic()
        if variant == "fast":  # trained, not converted: its own folder and threshold
            if not (version_dir / FAST_VARIANT_DIR / METADATA_FILE).is_file():
                print(f"fast          (none: {version_dir} has no fast variant)", flush=True)
                continue
            folder = version_dir / FAST_VARIANT_DIR
            row = rows[variant] = judge(folder, images, labels, read_metadata(folder).threshold, args.seconds)
        else:
            folder = args.out / variant
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(version_dir / METADATA_FILE, folder / METADATA_FILE)
            (folder / "model.tflite").write_bytes(convert(version_dir, variant, cal))
            row = rows[variant] = judge(folder, images, labels, md.threshold, args.seconds)
        row["convert_and_judge_s"] = time.monotonic() - started
        print(f"{variant:13s} {row['bytes'] / 1024:7.0f} KB  ROC-AUC {row['roc_auc']:.4f}  misses {row['misses']}  "
              f"false alarms {row['false_alarms']}  {row['cpu_ms_per_frame']:.1f} ms CPU/frame "
              f"({row['frames_per_cpu_s']:.1f} frames per CPU-second)", flush=True)
    exact = rows.get("exact")
    for variant, row in rows.items():
        if exact and variant != "exact":
            row["cpu_cost_vs_exact"] = row["cpu_ms_per_frame"] / exact["cpu_ms_per_frame"]
            row["max_score_diff_vs_exact"] = float(np.max(np.abs(np.array(row["scores"]) - np.array(exact["scores"]))))
            print(f"{variant:13s} CPU per frame {row['cpu_cost_vs_exact']:.2f} x exact ({1 / row['cpu_cost_vs_exact']:.1f}x cheaper), "
                  f"max score difference {row['max_score_diff_vs_exact']:.4f}")
    result = {"command": " ".join(sys.argv), "model": str(version_dir), "threshold": md.threshold,
              "metadata_holdout": md.metrics.get("holdout"), "load_average": os.getloadavg(), "variants": rows}
    (args.out / "quantize.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

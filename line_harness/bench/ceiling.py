"""The hardware ceiling: the exported model alone, frames already decoded in memory, tight loop.

    .venv/bin/python -m line_harness.bench.ceiling MODEL_VERSION_DIR [--backends litert,tensorflow]
        [--batches 1,8,32] [--seconds 8]

Uses the same loader the worker uses (line_runtime.model.load_model), so the numbers are the
limit the worker's inference step can reach on this machine; decoding, Kafka and publishing
are all left out on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def frames_for(model, batch: int, seed: int = 0) -> np.ndarray:
    """A batch of realistic decoded frames (synthetic textures) at the model's input size."""
    from surface_images.synthetic import SyntheticFrames
    height, width = model.input_size
    synth = SyntheticFrames(seed=seed, size=(height, width))
    return np.stack([synth.sample(i).image for i in range(batch)])[..., None]


def measure(model, batch: int, seconds: float, min_iterations: int = 3, frames: Optional[np.ndarray] = None) -> dict:
    """Frames/s and per-batch latency of model.predict at one batch size (on `frames` when given)."""
    frames = frames_for(model, batch) if frames is None else frames
    model.predict(frames)  # warm this exact shape
    times = []
    cpu0 = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(times) < min_iterations:
        start = time.perf_counter()
        model.predict(frames)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu0
    total = sum(times)
    # Frames per CPU-second does not depend on how many other processes share the cores, so it
    # compares runs on a busy machine where wall-clock rates do not.
    return {"batch": batch, "iterations": len(times), "frames_per_s": batch * len(times) / total,
            "batch_ms_mean": 1000 * total / len(times), "batch_ms_p50": 1000 * float(np.median(times)),
            "cpu_cores": cpu / total, "frames_per_cpu_s": batch * len(times) / cpu if cpu else None}


def ceiling(version_dir: Path, backends: list[str], batches: list[int], seconds: float) -> list[dict]:
    """One row per (backend, batch size)."""
    from line_runtime.model import load_model
    from line_runtime.variants import choose_variant
    rows = []
    for backend in backends:
        # the variant a worker with default settings serves on this backend (fast on LiteRT when it matches)
        choice = choose_variant(version_dir, "auto", backend)
        model = load_model(choice.folder, backend=backend)
        for batch in batches:
            row = measure(model, batch, seconds)
            row["backend"], row["variant"] = backend, choice.variant
            rows.append(row)
            print(f"ceiling {backend:10s} {choice.variant:5s} batch {batch:3d}: {row['frames_per_s']:8.1f} frames/s "
                  f"({row['batch_ms_mean']:.1f} ms/batch, {row['iterations']} iterations, "
                  f"{row['frames_per_cpu_s'] or 0:.1f} frames per CPU-second)", flush=True)
        del model
    return rows


def main(argv=None) -> int:
    """CLI: print the ceiling rows, and the JSON with --json."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="model version folder (or base folder: latest version)")
    p.add_argument("--backends", default="litert,tensorflow")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--seconds", type=float, default=8.0, help="measuring time per (backend, batch)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from line_runtime.model import latest_version
    version_dir = latest_version(args.model)
    if version_dir is None:
        p.error(f"{args.model} holds no model version (expected <dir>/<n>/metadata.json)")
    rows = ceiling(version_dir, args.backends.split(","), [int(b) for b in args.batches.split(",")], args.seconds)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training speed with and without TensorFlow's BFC CPU allocator, on this machine, one run after the other.

    .venv/bin/python -m line_harness.bench.training_speed [--data DIR] [--epochs 3] [--model-size 384x576]

`training/__init__.py` turns the BFC allocator on (TF_CPU_ALLOCATOR_USE_BFC=true): with plain malloc,
glibc maps every big activation afresh and the kernel faults it in page by page at each step. This
runs the real `train` command twice on the same data, once with each setting (`--no-litert`, no
quality gate, a fixed working size), and prints each run's seconds per epoch (the first epoch,
which traces the graph, left out), the share of CPU time spent in the kernel, and the ratio.
Without `--data` it trains on a generated set of 40 defective and 40 ok images of mixed sizes
(surface_images.make_set). Numbers: docs/training.md, "Training speed: the CPU allocator".
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from line_harness.paths import REPO

EPOCH_LINE = re.compile(r"epoch\s+(\d+)/\d+ .*?\s(\d+)s\s+elapsed")


def epoch_seconds(log: str) -> list[float]:
    """Seconds of each epoch, in order, from `train`'s log lines."""
    return [float(m.group(2)) for m in EPOCH_LINE.finditer(log)]


def run_train(data: Path, out: Path, epochs: int, model_size: str, use_bfc: bool) -> dict:
    """One `train` run in a child process; its epoch times and CPU split."""
    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true" if use_bfc else "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "training", "train", "--data", str(data), "--out", str(out), "--epochs", str(epochs),
                           "--model-size", model_size, "--no-litert", "--gate-min-auc", "0", "--gate-min-recall", "0",
                           "--gate-max-fpr", "1"], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"train failed (TF_CPU_ALLOCATOR_USE_BFC={env['TF_CPU_ALLOCATOR_USE_BFC']}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    epochs_s = epoch_seconds(done.stdout)
    if len(epochs_s) < 2:
        raise SystemExit(f"expected at least 2 epoch lines in train's log, found {len(epochs_s)}")
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    steady = epochs_s[1:]  # the first epoch traces the graph
    return {"bfc": use_bfc, "epoch_s": sum(steady) / len(steady), "epochs": epochs_s, "kernel_share": system / max(user + system, 1e-9),
            "wall_s": wall}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="defect/ + ok/ folders (default: a generated set of mixed sizes)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run, at least 2 (the first is left out)")
    parser.add_argument("--model-size", default="384x576", help="working size HxW, fixed so both runs do the same work")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs {args.epochs}: at least 2 (the first epoch traces the graph and is left out)")
    with tempfile.TemporaryDirectory(prefix="training-speed-") as tmp:
        data = args.data
        if data is None:
            from surface_images.make_set import write_set

            data = Path(tmp) / "set"
            write_set(data, "mixed", (100, 200), defective=40, ok=40, seed=6, largest=(400, 600))
        runs = []
        for use_bfc in (True, False):
            print(f"training {args.epochs} epochs on {data} with TF_CPU_ALLOCATOR_USE_BFC={str(use_bfc).lower()} ...", flush=True)
            runs.append(run_train(data, Path(tmp) / f"models-{use_bfc}", args.epochs, args.model_size, use_bfc))
    for r in runs:
        print(f"BFC allocator {'on ' if r['bfc'] else 'off'}: {r['epoch_s']:.1f} s per epoch after the first "
              f"(epochs {', '.join(f'{s:.0f}' for s in r['epochs'])} s), kernel {100 * r['kernel_share']:.0f} % of CPU time, "
              f"whole command {r['wall_s']:.0f} s")
    print(f"speed-up with the BFC allocator: {runs[1]['epoch_s'] / runs[0]['epoch_s']:.2f}x per epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())

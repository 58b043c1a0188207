"""`make bench-gpu`: the GPU numbers in one run, within 8 minutes on a machine with an NVIDIA GPU.

    .venv/bin/python -m line_harness.bench.gpu [--dry-run] [--model DIR] [--frames N] [--out DIR]

1 model alone  the exported model with TensorFlow at batch 1..256, three ways: float32, mixed precision
               (grappler's automatic float16 rewrite of the serving graph) and XLA (jit_compile); each
               way in a child process of its own, because both switches are process-wide
2 worker       the simulator pre-loads N 512x512 PNG frames at full speed into a local broker; one
               `python -m worker` (backend tensorflow, batching chosen for the device) drains them
3 pipeline     the null-model worker against decode-only on the same PNG frames (what the host side of
               one process can feed a GPU with; line_harness/bench/pipeline_ceiling.py)
Prints frames/s and worker / model-alone (float32 at the worker's batch size, and the best point).
--dry-run: the same path on CPU with tiny sizes (64x64 tiny model, batch 1..4, 80 frames), for checking.
Writes <out>/gpu-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from line_harness.paths import REPO

VARIANTS = ("float32", "mixed", "xla")


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", default=os.environ.get("BENCH_GPU_DRY") == "1",
                   help="CPU, tiny sizes: checks the path, measures nothing meaningful (also BENCH_GPU_DRY=1)")
    p.add_argument("--model", type=Path, default=None, help="model base folder (default: run/bench/models, the "
                   "512x512 demo model, trained when empty)")
    p.add_argument("--out", type=Path, default=REPO / "run" / "bench-gpu")
    p.add_argument("--frames", type=int, default=None, help="frames for the worker stage (default 4000; dry 80)")
    p.add_argument("--batches", default=None, help="model-alone batch sizes (default 1,8,32,64,128,256; dry 1,2,4)")
    p.add_argument("--seconds", type=float, default=None, help="measuring time per batch size (default 2; dry 0.3)")
    p.add_argument("--skip-pipeline", action="store_true", help="leave out stage 3")
    p.add_argument("--child-variant", choices=VARIANTS, help=argparse.SUPPRESS)  # stage 1's child processes
    args = p.parse_args(argv)
    dry = args.dry_run
    args.frames = args.frames or (80 if dry else 4000)
    args.batches = [int(b) for b in (args.batches or ("1,2,4" if dry else "1,8,32,64,128,256")).split(",")]
    args.seconds = args.seconds or (0.3 if dry else 2.0)
    return args


def _frames(height: int, width: int, batch: int) -> np.ndarray:
    """`batch` realistic frames; 16 distinct synthetic textures repeated (generating 256 costs more than judging)."""
    from surface_images.synthetic import SyntheticFrames
    synth = SyntheticFrames(seed=0, size=(height, width))
    distinct = np.stack([synth.sample(i).image for i in range(min(batch, 16))])
    return np.resize(distinct, (batch, height, width))[..., None]


def model_alone_child(version_dir: Path, variant: str, batches: list[int], seconds: float) -> list[dict]:
    """Measure one variant at every batch size in this process (see the module docstring)."""
    import tensorflow as tf

    from line_harness.bench.ceiling import measure
    from line_runtime.model import load_model
    if variant == "mixed":
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision": True})
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # do not take all GPU memory at once: the worker stage may share the GPU later
        tf.config.experimental.set_memory_growth(gpu, True)
    model = load_model(version_dir, backend="tensorflow", jit_compile=variant == "xla")
    height, width = model.input_size
    rows = []
    for batch in batches:
        frames = _frames(height, width, batch)
        first = time.perf_counter()
        model.predict(frames)  # trace (and compile, for XLA) this shape
        first_call_s = time.perf_counter() - first
        row = measure(model, batch, seconds, frames=frames)
        rows.append({**row, "variant": variant, "gpu": bool(gpus), "first_call_s": first_call_s})
    return rows


def model_alone(version_dir: Path, batches: list[int], seconds: float, deadline_s: float) -> list[dict]:
    """Every variant in a child process; a variant that fails or runs out of time is reported, not fatal."""
    rows = []
    for variant in VARIANTS:
        cmd = [sys.executable, "-m", "line_harness.bench.gpu", "--child-variant", variant, "--model", str(version_dir),
               "--batches", ",".join(map(str, batches)), "--seconds", str(seconds)]
        print(f"model alone, {variant}: batch {','.join(map(str, batches))}", flush=True)
        try:
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=deadline_s)
        except subprocess.TimeoutExpired:
            print(f"  {variant}: no result within {deadline_s:.0f} s (skipped)", flush=True)
            continue
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("[")]
        if done.returncode != 0 or not lines:
            print(f"  {variant} failed ({done.returncode}): {done.stderr.strip()[-800:]}", flush=True)
            continue
        for row in json.loads(lines[-1]):
            rows.append(row)
            print(f"  batch {row['batch']:4d}: {row['frames_per_s']:9.1f} frames/s, {row['batch_ms_mean']:7.2f} ms "
                  f"per batch (first call {row['first_call_s']:.1f} s)", flush=True)
    return rows


def worker_end_to_end(out: Path, model: Path, frames: int, dry: bool, skip_pipeline: bool) -> dict:
    """Stage 2 (and 3) against one local broker."""
    from line_harness.bench import stages
    from line_harness.bench.pipeline_ceiling import pipeline_ceiling
    from line_harness.kafka.session import broker_session
    from line_harness.kafka.topics import run_topics
    result: dict = {}
    with broker_session(out / f"kafka-{os.getpid()}") as broker:
        env = stages.Env(broker.kafka_env, broker.client_kwargs, model, out)
        topics = run_topics(env.client_kwargs, 6, "gpu")
        print(f"worker: the simulator pre-loads {frames} 512x512 PNG frames at full speed", flush=True)
        result["preload"] = stages.preload(env, topics["frames"], frames)
        result["worker"] = stages.run_worker_backlog(env, topics, frames, "gpu", model_backend="tensorflow")
        w = result["worker"]
        print(f"  {w['frames_per_s']:.1f} frames/s, batch mean {w['batch_mean']:.1f} (max {w['batch_max']}), "
              f"full batch {w['full_batch_inference_ms_p50']:.1f} ms, ready in {w['ready_s']:.1f} s, CPU "
              f"{w['cpu_cores'] or 0:.2f} cores", flush=True)
        if not skip_pipeline:
            # Decode threads: one per core (decode-only and each worker process); then one process per 4 cores.
            cores = os.cpu_count() or 2
            result["pipeline"] = pipeline_ceiling(env, 60 if dry else 1500, ["png"], cores,
                                                  (1, 2) if dry else (1, max(2, cores // 4)))
    return result


def summary(results: dict) -> str:
    """worker / model-alone at the worker's batch size (float32, as the worker runs it) and at the best point."""
    w = results.get("worker", {}).get("worker")
    rows = results.get("model_alone", [])
    lines = ["", f"bench-gpu ({'DRY RUN on CPU: sizes too small to mean anything' if results['dry_run'] else 'GPU'})"]
    for variant in VARIANTS:
        pts = [r for r in rows if r["variant"] == variant]
        if pts:
            lines.append(f"  model alone {variant:8s} " + "  ".join(f"b{r['batch']}: {r['frames_per_s']:.0f}" for r in pts))
    if w:
        lines.append(f"  worker: {w['frames_per_s']:.1f} frames/s (batch max {w['batch_max']})")
        same = [r for r in rows if r["variant"] == "float32" and r["batch"] >= w["batch_max"]]
        if same:
            ref = min(same, key=lambda r: r["batch"])
            results["worker_over_model_alone"] = w["frames_per_s"] / ref["frames_per_s"]
            lines.append(f"  worker / model alone (float32, batch {ref['batch']}): "
                         f"{results['worker_over_model_alone']:.2f}")
        if rows:
            best = max(rows, key=lambda r: r["frames_per_s"])
            lines.append(f"  worker / best model-alone point ({best['variant']}, batch {best['batch']}, "
                         f"{best['frames_per_s']:.0f} frames/s): {w['frames_per_s'] / best['frames_per_s']:.2f}")
    for p in results.get("worker", {}).get("pipeline", []):
        lines.append(f"  pipeline ceiling png (null model): worker {p['worker']['frames_per_s']:.0f} frames/s vs "
                     f"decode-only {p['decode_only']['frames_per_s']:.0f} on {p['decode_only']['threads']} threads "
                     f"({p['worker_over_decode']:.2f})")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Stages 1-3, the summary, gpu-results.json."""
    args = _args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child_variant:
        rows = model_alone_child(args.model, args.child_variant, args.batches, args.seconds)
        print(json.dumps(rows))
        return 0
    from line_harness.processes import exit_on_signals
    from line_runtime.model import latest_version
    exit_on_signals()
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # the CPU path even on a GPU host; children inherit it
        from training.tiny_model import build_tiny_model
        model = args.model or args.out / "dry-models"
        if latest_version(model) is None:
            build_tiny_model(model, version=1, input_size=(64, 64))
    else:
        from line_harness.bench.run import ensure_model
        model = ensure_model(args.model or REPO / "run" / "bench" / "models")
    results: dict = {"dry_run": args.dry_run, "command": " ".join(sys.argv), "model": str(latest_version(model)),
                     "load_average_at_start": os.getloadavg(), "gpu": _nvidia_smi()}
    results["model_alone"] = model_alone(latest_version(model), args.batches, args.seconds,
                                         deadline_s=120 if args.dry_run else 150)
    results["worker"] = worker_end_to_end(args.out, model, args.frames, args.dry_run, args.skip_pipeline)
    results["seconds"] = time.monotonic() - started
    text = summary(results)
    (args.out / "gpu-results.json").write_text(json.dumps(results, indent=2, default=str))
    print(text)
    print(f"  whole run {results['seconds']:.0f} s; written: {args.out / 'gpu-results.json'}")
    return 0


def _nvidia_smi() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


if __name__ == "__main__":
    sys.exit(main())

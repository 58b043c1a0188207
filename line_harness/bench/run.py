"""`deploy/bench.sh`: the performance benchmark, all stages in one run on one machine.

    python -m line_harness.bench.run [--quick] [--frames N] [--skip-sweep] [--model DIR] ...

1 ceiling   the exported model alone (LiteRT, TF SavedModel) at batch 1, 8, 32 and the worker's batch size
2 worker    one worker started cold on N pre-loaded 512x512 PNG frames in a 6-partition topic
3 naive     poll one, decode, predict alone, publish, commit (line_harness/bench/naive.py), same topic
4 latency   the simulator at 70% of the worker's capacity for 60 s; capture-to-publish p50/p95/p99
5 sweep     max_batch_size x max_batch_wait_ms: backlog throughput and latency at the same load
6 pipeline  the null-model worker against decode-only on PNG (line_harness/bench/pipeline_ceiling.py)

--pipeline-ceiling runs instead the null-model worker against decode-only work on PNG, JPEG and raw
512x512 frames (line_harness/bench/pipeline_ceiling.py) and writes run/bench/pipeline-ceiling.json.

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts its own local broker (stopped at the end).
Writes run/bench/results.json (and worker logs, py-spy profile) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

from line_harness.bench import pipeline_ceiling
from line_harness.bench.report import format_table, ratios
from line_harness.kafka.session import broker_session
from line_harness.kafka.topics import run_topics
from line_harness.paths import REPO
from line_harness.processes import exit_on_signals

DEFAULT_MODEL = REPO / "run" / "bench" / "models"


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model base folder (default: run/bench/models; "
                   "built with `python -m training quick-demo` at 512x512 when empty)")
    p.add_argument("--out", type=Path, default=REPO / "run" / "bench", help="folder for results.json and logs")
    p.add_argument("--frames", type=int, default=2000, help="frames pre-loaded for the worker stage")
    p.add_argument("--naive-frames", type=int, default=200)
    p.add_argument("--ceiling-seconds", type=float, default=8.0, help="measuring time per backend x batch")
    p.add_argument("--latency-seconds", type=float, default=60.0)
    p.add_argument("--load", type=float, default=0.7, help="latency load as a fraction of measured capacity")
    p.add_argument("--sweep-sizes", default="1,4,32")
    p.add_argument("--sweep-waits", default="5,20,50")
    p.add_argument("--sweep-frames", type=int, default=300, help="backlog per sweep point")
    p.add_argument("--sweep-seconds", type=float, default=20.0, help="live-load time per sweep point")
    p.add_argument("--max-batch-size", type=int, default=None, help="WORKER_MAX_BATCH_SIZE for the worker and "
                   "latency stages (default: the worker's default)")
    p.add_argument("--max-batch-wait-ms", type=float, default=None, help="WORKER_MAX_BATCH_WAIT_MS likewise")
    p.add_argument("--model-threads", type=int, default=None, help="WORKER_MODEL_THREADS likewise (default: the "
                   "worker's, every CPU it may use)")
    p.add_argument("--skip-sweep", action="store_true")
    p.add_argument("--skip-ceiling", action="store_true")
    p.add_argument("--skip-pipeline-ceiling", action="store_true", help="leave out the null-model pipeline "
                   "ceiling on PNG at the end of a full run")
    p.add_argument("--no-profile", action="store_true", help="do not run py-spy during the worker stage")
    p.add_argument("--pipeline-ceiling", action="store_true", help="only the pipeline's own ceiling: a null-model "
                   "worker against decode-only work, per encoding (line_harness/bench/pipeline_ceiling.py)")
    pipeline_ceiling.add_args(p)
    p.add_argument("--quick", action="store_true", help="~5 minutes: 240 frames, 2 s ceilings, 20 s latency, "
                   "a 2-point sweep (batch 4 and 32) with short runs")
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.naive_frames, args.ceiling_seconds = min(args.frames, 240), 40, 2.0
        args.latency_seconds, args.sweep_sizes, args.sweep_waits = 20.0, "4,32", "20"
        args.sweep_frames, args.sweep_seconds = 60, 10.0
    return args


def ensure_model(base: Path) -> Path:
    """The model base folder, training the 512x512 demo model (EfficientNet-B0 segdec) when it is empty."""
    from line_runtime.model import latest_version
    if latest_version(base) is None:
        import subprocess
        print(f"no model in {base}: building the 512x512 demo model (python -m training quick-demo, ~2 min)",
              flush=True)
        subprocess.run([sys.executable, "-m", "training", "quick-demo", "--out", str(base), "--frames", "48",
                        "--frame-size", "512", "--model-size", "512", "--epochs", "1", "--max-minutes", "1",
                        "--crop", "0", "--repeats", "1",  # whole frames, one pass: only its serving cost matters
                        "--backbone-variant", "stride8"],  # the production cut (the demo's own default is stride4)
                       cwd=REPO, check=True)
    return base


def main(argv=None) -> int:
    """Run the stages, print the table, write results.json."""
    args = _args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # for the children and the ceiling's TensorFlow
    exit_on_signals()
    if args.pipeline_ceiling:
        pipeline_ceiling.run(args, args.out)
        return 0
    from line_harness.bench import stages
    from line_harness.bench.ceiling import ceiling
    from line_runtime.model import latest_version
    args.out.mkdir(parents=True, exist_ok=True)
    model = ensure_model(args.model)
    version_dir = latest_version(model)
    results: dict = {"machine": _machine(), "command": " ".join(sys.argv), "model": str(version_dir),
                     "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": {
                         k: str(v) for k, v in vars(args).items()}}
    if not args.skip_ceiling:
        batches = sorted({1, 8, 32, _worker_batch(args, version_dir)})  # the worker's own batch size included
        results["ceiling"] = ceiling(version_dir, ["litert", "tensorflow"], batches, args.ceiling_seconds)
    with broker_session(args.out / f"kafka-{os.getpid()}") as broker:
        env = stages.Env(broker.kafka_env, broker.client_kwargs, model, args.out)
        _pipeline(args, env, results, stages)
        if not args.skip_pipeline_ceiling:
            results["pipeline_ceiling"] = pipeline_ceiling.pipeline_ceiling(
                env, min(args.pipeline_frames, 300) if args.quick else args.pipeline_frames, ["png"],
                args.decode_threads or _worker_default("decode_threads"),
                tuple(int(n) for n in args.processes.split(",")))
    results["ratios"] = ratios(results)
    results["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(format_table(results))
    print(f"\nwritten: {args.out / 'results.json'}")
    return 0


def _pipeline(args, env, results: dict, stages) -> None:
    topics = run_topics(env.client_kwargs, 6, "backlog")
    print(f"pre-loading {args.frames} 512x512 PNG frames into {topics['frames']} (6 partitions)", flush=True)
    results["preload"] = stages.preload(env, topics["frames"], args.frames)
    profile_s = 0 if args.no_profile else 30
    print("worker stage: one worker, cold start, default settings", flush=True)
    chosen = {k: v for k, v in (("max_batch_size", args.max_batch_size), ("max_batch_wait_ms", args.max_batch_wait_ms),
                                ("model_threads", args.model_threads)) if v is not None}
    worker = stages.run_worker_backlog(env, topics, args.frames, "backlog", profile_s=profile_s, **chosen)
    results["worker"] = worker
    print(f"  {worker['frames_per_s']:.1f} frames/s, backend {worker['backend']}, mean batch "
          f"{worker['batch_mean']:.1f}", flush=True)
    if profile_s:
        from line_harness.bench.profile_report import parse, summarise
        raw = env.out_dir / "profile-backlog.txt"
        results["profile"] = summarise(parse(raw)) if raw.exists() else None
    print(f"naive stage: {args.naive_frames} frames one at a time", flush=True)
    results["naive"] = stages.run_naive(env, topics["frames"], args.naive_frames, 120)
    print(f"  {results['naive']['frames_per_s']:.2f} frames/s", flush=True)
    capacity = worker["frames_per_s"]
    rate = round(args.load * capacity, 2)
    print(f"latency stage: {rate} frames/s ({args.load:.0%} of {capacity:.1f}) for {args.latency_seconds:.0f} s",
          flush=True)
    results["latency"] = stages.run_live(env, "latency", rate, args.latency_seconds, profile=profile_s > 0,
                                         **chosen)
    raw = env.out_dir / "profile-latency.txt"
    if raw.exists():
        from line_harness.bench.profile_report import parse, summarise
        results["profile_latency"] = summarise(parse(raw))
    print(f"  p50/p95/p99 {results['latency']['latency_ms']}", flush=True)
    if args.skip_sweep:
        return
    results["sweep"] = []
    for size in (int(x) for x in args.sweep_sizes.split(",")):
        for wait in (float(x) for x in args.sweep_waits.split(",")):
            name = f"sweep-b{size}-w{wait:g}-{uuid.uuid4().hex[:4]}"
            point = stages.run_live(env, name, rate, args.sweep_seconds, backlog=args.sweep_frames,
                                    max_batch_size=size, max_batch_wait_ms=wait)
            results["sweep"].append(point)
            print(f"  sweep size {size} wait {wait:g} ms: backlog {point['backlog_frames_per_s'] or 0:.1f} frames/s, "
                  f"p50/p99 {point['latency_ms'][50]}/{point['latency_ms'][99]} ms", flush=True)


def _worker_default(field: str):
    from worker.settings import WorkerSettings
    return WorkerSettings.model_fields[field].default


def _worker_batch(args, version_dir: Path) -> int:
    """The max_batch_size the worker stage will run with: the user's, else what the worker picks for this device."""
    if args.max_batch_size:
        return args.max_batch_size
    from line_runtime.model import gpu_visible, resolve_backend
    from worker.device_defaults import device_defaults
    return device_defaults(resolve_backend(version_dir), gpu_visible()).max_batch_size


def _machine() -> dict:
    gpu = os.path.exists("/dev/nvidia0")
    mem = next((ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), "0")
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(int(mem) / 2**20, 1), "gpu": gpu,
            "python": platform.python_version(), "load_average_at_start": os.getloadavg()}


if __name__ == "__main__":
    sys.exit(main())

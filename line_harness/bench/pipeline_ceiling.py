"""The pipeline's own ceiling: one worker with a model that costs nothing, against decoding alone.

    .venv/bin/python -m line_harness.bench.pipeline_ceiling [--frames 1500] [--encodings png,jpeg,raw]
    (also: python -m line_harness.bench.run --pipeline-ceiling ...)

Per encoding, in one run on the same cores: the simulator pre-loads N realistic 512x512 frames in a
6-partition topic; `decode-only` reads those same records into memory and decodes them with the
worker's own decode_frame on as many threads as the worker's decode pool; `worker` is one real
`python -m worker` with WORKER_MODEL_BACKEND=null (score 0, no model run) moving the same frames
from Kafka through decode to published results. worker / decode-only is the share of the decode
work the Python process around the model can deliver: what one process can feed a GPU with.
`--processes 1,2` (default) runs the worker once per count, as that many consumer processes in one pod
(worker/fleet.py), against the same decode-only number.
Writes <out>/pipeline-ceiling.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from line_harness.paths import REPO

ENCODINGS = ("png", "jpeg", "raw")


def write_null_model(base: Path, size: tuple[int, int] = (512, 512)) -> Path:
    """A model base folder holding only metadata.json: what the null backend needs."""
    from line_contracts.model import METADATA_FILE
    version = base / "1"
    version.mkdir(parents=True, exist_ok=True)
    (version / METADATA_FILE).write_text(json.dumps({
        "name": "null", "version": "1", "input_height": size[0], "input_width": size[1], "threshold": 0.5,
        "threshold_rule": "none: the null backend scores 0 (pipeline benchmark only)", "litert_twin": False}))
    return base


def read_records(client_kwargs: dict, topic: str, want: int, timeout_s: float = 120.0) -> list[tuple]:
    """(value, headers, key) of the first `want` records of a topic, in memory."""
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(topic, **client_kwargs, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20)
    out: list[tuple] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend((r.value, r.headers, r.key) for r in batch)
    finally:
        consumer.close()
    if len(out) < want:
        raise RuntimeError(f"only {len(out)} of {want} records of {topic} read in {timeout_s:.0f} s")
    return out[:want]


def decode_only(records: list[tuple], threads: int, size: tuple[int, int] = (512, 512)) -> dict:
    """Decode every record with the worker's decode_frame on `threads` threads: frames/s and CPU use."""
    from worker.decode import DecodedFrame, DecodeLimits, decode_frame
    from worker.settings import WorkerSettings
    defaults = {k: f.default for k, f in WorkerSettings.model_fields.items()}
    limits = DecodeLimits(defaults["max_frame_bytes"], defaults["max_frame_pixels"], size[0], size[1],
                          defaults["size_mismatch_policy"], defaults["max_jpeg_scans"])

    def one(record):
        return decode_frame(record[0], record[1], limits, record[2])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, records[: 2 * threads]))  # warm OpenCV's thread-local state
        cpu0, wall0 = time.process_time(), time.perf_counter()
        decoded = list(pool.map(one, records))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    bad = sum(not isinstance(d, DecodedFrame) for d in decoded)
    if bad:
        raise RuntimeError(f"{bad} of {len(records)} frames did not decode: {decoded[0]}")
    return {"frames": len(records), "threads": threads, "frames_per_s": len(records) / wall,
            "cpu_cores": cpu / wall, "frames_per_cpu_s": len(records) / cpu if cpu else None}


def _preload(env, encoding: str, frames: int, tag: str) -> tuple[dict, dict]:
    """Fresh topics holding `frames` frames of `encoding` (the same frames every time: seed 3)."""
    from line_harness.kafka.topics import run_topics
    from line_harness.simulator import run_sim, sim_run_args
    topics = run_topics(env.client_kwargs, 6, f"pipe-{encoding}{tag}")
    sim = run_sim(env.kafka_env, sim_run_args(topics["frames"], frames=frames, cameras=env.cameras, seed=3,
                                              extra=("--encoding", encoding)))
    return topics, sim


def measure_encoding(env, encoding: str, frames: int, decode_threads: int, null_model: Path,
                     processes: tuple[int, ...] = (1,), profile_s: float = 0.0, **settings) -> list[dict]:
    """Pre-load one encoding, then decode-only and the null-model worker (per process count) on the same frames."""
    from line_harness.bench import stages
    topics, sim = _preload(env, encoding, frames, "")
    records = read_records(env.client_kwargs, topics["frames"], frames)
    mean_bytes = sum(len(r[0]) for r in records) / len(records)
    decode = decode_only(records, decode_threads)
    del records
    worker_env = stages.Env(env.kafka_env, env.client_kwargs, null_model, env.out_dir, env.cameras)
    rows = []
    for i, count in enumerate(processes):
        if i:  # each worker run needs its own backlog and results topic
            topics, _ = _preload(env, encoding, frames, f"-p{count}")
        worker = stages.run_worker_backlog(worker_env, topics, frames, f"pipeline-{encoding}-p{count}",
                                           profile_s=profile_s, model_backend="null", decode_threads=decode_threads,
                                           processes=count, **settings)
        worker_per_cpu = worker["frames_per_s"] / worker["cpu_cores"] if worker.get("cpu_cores") else None
        rows.append({**cores_left(worker, decode), "encoding": encoding, "processes": count, "frames": frames,
                     "mean_frame_bytes": mean_bytes,
                     "sim_acked": sim.get("acked"), "decode_only": decode, "worker": worker,
                     "worker_frames_per_cpu_s": worker_per_cpu,
                     "worker_over_decode": worker["frames_per_s"] / decode["frames_per_s"],
                     "worker_over_decode_per_cpu": (worker_per_cpu / decode["frames_per_cpu_s"]
                                                    if worker_per_cpu and decode["frames_per_cpu_s"] else None)})
    return rows


def cores_left(worker: dict, decode: dict) -> dict:
    """What the rest of the machine took while the worker ran, and the ratio that leaves possible.

    The broker (and this benchmark's result reader) run on the same cores as the worker but not during
    decode-only. `bound_over_decode` is what a worker exactly as CPU-efficient as decode-only could reach
    on the cores they leave: (cores - others) x decode frames per CPU-second / decode frames per second.
    """
    busy, own = worker.get("machine_busy_cores"), worker.get("cpu_cores")
    cpus, per_cpu = os.cpu_count() or 1, decode.get("frames_per_cpu_s")
    if busy is None or own is None or not per_cpu:
        return {"other_cores": None, "bound_over_decode": None}
    others = max(busy - own, 0.0)
    return {"other_cores": others, "bound_over_decode": min((cpus - others) * per_cpu / decode["frames_per_s"], 1.0)}


def format_rows(rows: list[dict]) -> str:
    """The table printed at the end of a run."""
    lines = ["pipeline ceiling (null model; worker vs decode-only on the same cores, same run)",
             "  encoding  procs  KB/frame  decode-only f/s (f/CPU-s)  worker f/s (f/CPU-s, cores)  worker/decode  "
             "per CPU-s  others' cores  bound"]
    for r in rows:
        d, w = r["decode_only"], r["worker"]
        per_cpu = r["worker_over_decode_per_cpu"]
        lines.append(f"  {r['encoding']:8s}  {r.get('processes', 1):5d}  {r['mean_frame_bytes'] / 1024:8.0f}  "
                     f"{d['frames_per_s']:8.1f} "
                     f"({d['frames_per_cpu_s'] or 0:6.1f})          {w['frames_per_s']:8.1f} "
                     f"({r['worker_frames_per_cpu_s'] or 0:6.1f}, {w['cpu_cores'] or 0:.2f})       "
                     f"{r['worker_over_decode']:6.2f}     {'-' if per_cpu is None else format(per_cpu, '.2f'):>5s}"
                     f"      {_fmt(r.get('other_cores'))}         {_fmt(r.get('bound_over_decode'))}")
    lines.append("  others' cores: CPU the rest of the machine (broker, result reader) used while the worker ran; "
                 "bound: worker/decode a worker as CPU-efficient as decode-only could reach on the cores left")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "   -" if value is None else f"{value:4.2f}"


def pipeline_ceiling(env, frames: int, encodings, decode_threads: int, processes: tuple[int, ...] = (1,),
                     profile_s: float = 0.0, **settings) -> list[dict]:
    """One row per encoding and worker process count (see the module docstring)."""
    null_model = write_null_model(env.out_dir / "null-model")
    rows = []
    for encoding in encodings:
        print(f"pipeline ceiling {encoding}: pre-loading {frames} 512x512 frames, decode-only on {decode_threads} "
              f"threads, then the null-model worker", flush=True)
        for row in measure_encoding(env, encoding, frames, decode_threads, null_model, processes, profile_s,
                                    **settings):
            print(f"  decode-only {row['decode_only']['frames_per_s']:.1f} frames/s, worker ({row['processes']} "
                  f"process(es)) {row['worker']['frames_per_s']:.1f} frames/s: ratio {row['worker_over_decode']:.2f}",
                  flush=True)
            rows.append(row)
    return rows


def add_args(p: argparse.ArgumentParser) -> None:
    """The options of this mode (shared with `bench.run --pipeline-ceiling`)."""
    p.add_argument("--pipeline-frames", type=int, default=1500, help="frames per encoding")
    p.add_argument("--encodings", default=",".join(ENCODINGS), help="comma-separated: png,jpeg,raw")
    p.add_argument("--decode-threads", type=int, default=None, help="WORKER_DECODE_THREADS and the decode-only "
                   "threads (default: the worker's default)")
    p.add_argument("--profile-seconds", type=float, default=0.0, help="py-spy the worker this long once it is "
                   "ready (profile-pipeline-<encoding>-p<N>.txt; summarise with line_harness.bench.profile_report)")
    p.add_argument("--processes", default="1,2", help="comma-separated WORKER_PROCESSES values, one null-model "
                   "worker run each against the same decode-only number (CPU counted over all its processes)")


def run(args, out: Path) -> dict:
    """Start (or use) a broker, measure every encoding, write pipeline-ceiling.json, print the table."""
    from line_harness.bench.stages import Env
    from line_harness.kafka.session import broker_session
    from worker.settings import WorkerSettings
    threads = args.decode_threads or WorkerSettings.model_fields["decode_threads"].default
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(sys.argv), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    settings = {} if getattr(args, "max_batch_size", None) is None else {"max_batch_size": args.max_batch_size}
    processes = tuple(int(n) for n in str(getattr(args, "processes", "1")).split(","))
    with broker_session(out / f"kafka-pipe-{os.getpid()}") as broker:
        env = Env(broker.kafka_env, broker.client_kwargs, out / "null-model", out)
        result["rows"] = pipeline_ceiling(env, args.pipeline_frames, args.encodings.split(","), threads, processes,
                                          getattr(args, "profile_seconds", 0.0), **settings)
    result["load_average_at_end"] = os.getloadavg()
    (out / "pipeline-ceiling.json").write_text(json.dumps(result, indent=2, default=str))
    print(format_rows(result["rows"]))
    print(f"load average at start {result['load_average_at_start'][0]:.1f}, at end "
          f"{result['load_average_at_end'][0]:.1f}; written: {out / 'pipeline-ceiling.json'}")
    return result


def main(argv=None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "run" / "bench")
    p.add_argument("--max-batch-size", type=int, default=None)
    add_args(p)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(args, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

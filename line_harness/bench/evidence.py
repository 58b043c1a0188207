"""What keeping evidence costs the worker: CPU per frame and p99 latency with the evidence store on and off.

    .venv/bin/python -m line_harness.bench.evidence [--rate 10] [--seconds 60] [--repeats 2] [--defect-rate 0.05]
        [--model models/demo]

One run, one broker, one evidence store (SeaweedFS). The simulator streams 512x512 PNG frames live at
`--rate` frames/s to a fresh topic per worker run; the worker (tiny model, LiteRT, device defaults) runs
alternately without evidence (off) and with it (on: every defect and WORKER_EVIDENCE_SAMPLE_OK=0.01 of
the ok frames), in the order off, on, on, off, ... so load drifts on a shared machine hit both alike.
By default the model is the tiny one (training.tiny_model: nearly free, so evidence weighs most);
it is not trained for the simulator's defects, so its threshold is set (WORKER_THRESHOLD_OVERRIDE)
at the (1 - defect rate) quantile of its own scores on the same frames, scored offline first: the
worker then judges about `--defect-rate` of the frames defect, the demo's rate. With --model (e.g.
the demo's models/demo, `make demo-model`) the model judges with its own threshold the simulator's
frames with `--defect-rate` defects at the demo's defect scale 4. Per run: the worker process's CPU-seconds (/proc) between the first and the last live frame,
divided by the frames judged; capture-to-publish p50/p99 from the result events. Writes
<out>/evidence-cost.json and prints a table with the medians and the on/off ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from kafka import TopicPartition

from line_harness.paths import REPO
from worker.evidence import EvidenceWriter

SIZE = (512, 512)
CAMERAS = 4
POOL = 60   # distinct frames the simulator cycles through; the threshold is set on the same pool
SEED = 7
_TP = TopicPartition("frames", 0)


def _live_run(env, store, name: str, rate: float, seconds: float, threshold: float | None, evidence: bool,
              defect_rate: float) -> dict:
    from line_harness.bench.stages import ResourceSampler, start_worker, throughput_from
    from line_harness.kafka.topics import run_topics
    from line_harness.readers import OutcomeReader
    from line_harness.simulator import sim_run_args, start_sim
    from producer_sim.stats import percentile

    topics = run_topics(env.client_kwargs, 6, name)
    settings = {} if threshold is None else {"threshold_override": f"{threshold:.9f}"}
    if evidence:
        settings.update(evidence_endpoint=store.endpoint, evidence_bucket=store.bucket, evidence_sample_ok=0.01)
    reader = OutcomeReader(env.client_kwargs, topics)
    worker = start_worker(env, topics, name, **settings)
    sampler = ResourceSampler(worker.pid)
    try:
        worker.wait_ready(120)
        start = time.monotonic()
        sim = start_sim(env.kafka_env, sim_run_args(topics["frames"], duration_s=seconds, fps=rate / CAMERAS,
                                                    cameras=CAMERAS, seed=SEED, pool_size=POOL,
                                                    extra=("--defect-rate", str(defect_rate), "--defect-scale", "4")),
                        env.out_dir / f"sim-{name}.json")
        sim.wait(seconds + 180)
        sent = json.loads((env.out_dir / f"sim-{name}.json").read_text() or "{}").get("acked", 0)
        reader.wait_for(sent, timeout_s=300, progress_timeout_s=60)
        end = time.monotonic()
        defects = worker.metric("inspection_frames_judged_total", verdict="defect")
        written = worker.metric("inspection_evidence_written_total")
        missing = worker.metric("inspection_evidence_missing_total")
    finally:
        worker.stop(40)
        sampler.stop()
        reader.close()
    rows = reader.results
    lat = [r["latency_ms"] for r in rows]
    cpu = sampler.window(start, end)
    fps = throughput_from(rows)
    return {"config": "on" if evidence else "off", "judged": len(rows), "sent": sent, "frames_per_s": fps,
            "cpu_cores": cpu["cpu_cores"], "cpu_ms_per_frame": cpu["cpu_cores"] / fps * 1000.0 if fps else None,
            "latency_ms": {q: percentile(lat, q) for q in (50, 95, 99)},
            "defects": defects, "evidence_written": written,
            "evidence_missing": missing}


def _backlog_run(env, store, frames_topic: str, frames: int, name: str, threshold: float | None,
                 evidence: bool) -> dict:
    from line_harness.bench.stages import run_worker_backlog
    from line_harness.kafka.topics import run_topics

    topics = run_topics(env.client_kwargs, 1, name)
    topics["frames"] = frames_topic
    settings = {} if threshold is None else {"threshold_override": f"{threshold:.9f}"}
    if evidence:
        settings.update(evidence_endpoint=store.endpoint, evidence_bucket=store.bucket, evidence_sample_ok=0.01)
    row = run_worker_backlog(env, topics, frames, name, **settings)
    return {"config": "on" if evidence else "off", "mode": "backlog", "frames": frames,
            "frames_per_s": row["frames_per_s"], "cpu_cores": row["cpu_cores"],
            "cpu_ms_per_frame": row["cpu_cores"] / row["frames_per_s"] * 1000.0}


def breakdown(store, frames: int = 40) -> dict:
    """CPU-ms per kept defect frame inside one process: the whole writer, its overlay and its three PUTs."""
    import cv2
    from prometheus_client import CollectorRegistry

    import worker.evidence as evidence_module
    from line_contracts.events import Box, DefectRegion, Localisation
    from line_contracts.frame import Encoding
    from line_harness.frames import frame_headers
    from line_harness.processes import wait_until
    from worker.batching import WorkItem
    from worker.decode import DecodedFrame
    from worker.evidence_client import store_client
    from worker.metrics import EvidenceMetrics
    from worker.model import ServingModel
    from worker.results import RecordFactory
    from worker.settings import WorkerSettings

    settings = WorkerSettings(evidence_endpoint=store.endpoint, evidence_bucket=store.bucket)
    client = store_client(settings)  # what the worker's writer writes with
    spent = {"overlay": 0.0, "puts": 0.0}

    def timed(name, fn):
        def call(*a, **kw):
            t0 = time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.thread_time() - t0
        return call

    render = evidence_module.render_overlay
    evidence_module.render_overlay = timed("overlay", render)
    client.put_object = timed("puts", client.put_object)
    registry = CollectorRegistry()
    writer = EvidenceWriter(client, store.bucket, EvidenceMetrics(registry),
                            overlay_max_side=settings.evidence_overlay_max_side)
    writer.start()
    rng = np.random.default_rng(0)
    model = ServingModel(None, "m", "1", "litert", 0.5, *SIZE)
    factory = RecordFactory("results", "dlq", "bench", 1024)
    region = Localisation(map_height=64, map_width=64, regions=[
        DefectRegion(box=Box(x=240, y=160, width=48, height=48), peak=0.9, area_px=2304)])
    claims = []
    for i in range(frames):
        image = cv2.GaussianBlur(rng.integers(60, 200, SIZE, dtype=np.uint8), (5, 5), 0)
        frame = DecodedFrame(frame_headers(i, size=SIZE), image, 0.0)
        item = WorkItem(_TP, i, 1, None, b"", [], time.time_ns(), 0.0, None)
        event = factory.event(item, frame, 0.9, model, 0, 1.0, 1).model_copy(update={"localisation": region})
        defect_map = np.zeros((64, 64), np.float32)
        defect_map[20:26, 30:36] = 0.9
        claims.append((event, cv2.imencode(".png", image)[1].tobytes(), image, defect_map))
    try:
        t0 = os.times()
        for event, raw, image, defect_map in claims:
            writer.claim(event, raw, image, SIZE[0], SIZE[1], Encoding.PNG, defect_map)
        wait_until(lambda: registry.get_sample_value("inspection_evidence_written_total") == frames, 120, 0.01)
        t1 = os.times()
    finally:
        evidence_module.render_overlay = render
        writer.close(10)
    total = (t1.user + t1.system - t0.user - t0.system) * 1000.0 / frames
    return {"frames": frames, "cpu_ms_per_kept_frame": total, "overlay_ms": spent["overlay"] * 1000.0 / frames,
            "puts_ms": spent["puts"] * 1000.0 / frames}


def run(args) -> dict:
    """Threshold offline, then the interleaved live runs; JSON + a table."""
    from line_harness.bench.pipeline_ceiling import read_records
    from line_harness.bench.regions import build_models, offline_scores
    from line_harness.bench.stages import Env
    from line_harness.evidence_store.server import LocalObjectStore
    from line_harness.kafka.session import broker_session
    from line_harness.kafka.topics import run_topics
    from line_harness.simulator import run_sim, sim_run_args

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(["python -m line_harness.bench.evidence", *sys.argv[1:]]),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
              "load_average_at_start": os.getloadavg(), "rate": args.rate, "seconds": args.seconds, "runs": [],
              "backlog_runs": []}
    model = args.model or build_models(out / "regions-models", SIZE)["map"]
    result["model"] = str(model)
    store = LocalObjectStore(out / f"evidence-store-{os.getpid()}", die_with_parent=True)
    store.start(timeout_s=120)
    os.environ.update({k: v for k, v in store.client_env().items() if k.startswith("AWS_")})  # the workers' keys
    try:
        result["breakdown"] = breakdown(store)
        print(f"  in one process: {result['breakdown']['cpu_ms_per_kept_frame']:.1f} CPU-ms per kept defect frame "
              f"(overlay {result['breakdown']['overlay_ms']:.1f}, three PUTs {result['breakdown']['puts_ms']:.1f})",
              flush=True)
        with broker_session(out / f"kafka-evidence-{os.getpid()}") as broker:
            env = Env(broker.kafka_env, broker.client_kwargs, model, out, CAMERAS)
            threshold = None
            if args.model is None:
                pool = run_topics(env.client_kwargs, 1, "evidence-pool")["frames"]
                run_sim(env.kafka_env, sim_run_args(pool, frames=POOL * 4, cameras=CAMERAS, seed=SEED, pool_size=POOL,
                                                    extra=("--defect-rate", str(args.defect_rate), "--defect-scale", "4")))
                scores = offline_scores(read_records(env.client_kwargs, pool, POOL * 4), model, SIZE)
                threshold = float(np.quantile(scores, 1.0 - args.defect_rate))
            result["threshold"] = threshold
            if args.backlog:  # CPU per frame at full speed: no idle polling in the figure
                backlog = run_topics(env.client_kwargs, 6, "evidence-backlog")["frames"]
                run_sim(env.kafka_env, sim_run_args(backlog, frames=args.backlog, cameras=CAMERAS, seed=SEED + 1,
                                                    extra=("--defect-rate", str(args.defect_rate), "--defect-scale", "4")))
                for repeat in range(args.repeats):
                    for evidence in ((False, True) if repeat % 2 == 0 else (True, False)):
                        row = _backlog_run(env, store, backlog, args.backlog,
                                           f"evidence-backlog-{repeat}-{'on' if evidence else 'off'}", threshold, evidence)
                        row["repeat"] = repeat
                        result["backlog_runs"].append(row)
                        print(f"  backlog repeat {repeat} {row['config']:3s}: {row['cpu_ms_per_frame']:.2f} CPU-ms/frame, "
                              f"{row['frames_per_s']:.1f} frames/s", flush=True)
            for repeat in range(args.repeats if args.seconds > 0 else 0):
                for evidence in ((False, True) if repeat % 2 == 0 else (True, False)):
                    row = _live_run(env, store, f"evidence-{repeat}-{'on' if evidence else 'off'}", args.rate,
                                    args.seconds, threshold, evidence, args.defect_rate)
                    row["repeat"] = repeat
                    result["runs"].append(row)
                    print(f"  repeat {repeat} {row['config']:3s}: {row['cpu_ms_per_frame']:.2f} CPU-ms/frame, "
                          f"{row['frames_per_s']:.1f} frames/s, p99 {row['latency_ms'][99]:.0f} ms, defects "
                          f"{row['defects']}/{row['judged']}, evidence written {row['evidence_written']:.0f}",
                          flush=True)
    finally:
        store.stop(timeout_s=5)
    result["load_average_at_end"] = os.getloadavg()
    result["summary"] = summarise(result["runs"]) if result["runs"] else {}
    if result["backlog_runs"]:
        cpu = {c: statistics.median(r["cpu_ms_per_frame"] for r in result["backlog_runs"] if r["config"] == c)
               for c in ("off", "on")}
        result["summary"]["backlog_cpu_ms_per_frame"] = cpu
        result["summary"]["backlog_cpu_on_over_off"] = cpu["on"] / cpu["off"]
    (out / "evidence-cost.json").write_text(json.dumps(result, indent=2, default=str))
    print(format_summary(result))
    return result


def summarise(runs: list[dict]) -> dict:
    """Medians per config and the on/off ratio of CPU per frame, the difference of p99."""
    med = {c: {"cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in runs if r["config"] == c),
               "p99_ms": statistics.median(r["latency_ms"][99] for r in runs if r["config"] == c),
               "p50_ms": statistics.median(r["latency_ms"][50] for r in runs if r["config"] == c),
               "defect_share": statistics.fmean(r["defects"] / r["judged"] for r in runs if r["config"] == c)}
           for c in ("off", "on")}
    return {**med, "cpu_on_over_off": med["on"]["cpu_ms_per_frame"] / med["off"]["cpu_ms_per_frame"],
            "p99_on_minus_off_ms": med["on"]["p99_ms"] - med["off"]["p99_ms"]}


def format_summary(result: dict) -> str:
    """The table printed at the end."""
    s = result["summary"]
    lines = []
    if "backlog_cpu_on_over_off" in s:
        b = s["backlog_cpu_ms_per_frame"]
        lines.append(f"backlog ({len(result['backlog_runs']) // 2} runs each of {result['backlog_runs'][0]['frames']} "
                     f"frames at full speed): CPU-ms/frame off {b['off']:.2f}, on {b['on']:.2f}, on/off "
                     f"{s['backlog_cpu_on_over_off']:.3f}")
    if not result["runs"]:
        return "\n".join(lines)
    lines += [f"evidence cost, model {result['model']} ({result['rate']} frames/s of 512x512 PNG for {result['seconds']} s per run, median of "
             f"{len(result['runs']) // 2} runs each)",
             "  config  defects  CPU-ms/frame  p50 ms  p99 ms"]
    for c in ("off", "on"):
        lines.append(f"  {c:6s}  {s[c]['defect_share']:6.1%}  {s[c]['cpu_ms_per_frame']:12.2f}  {s[c]['p50_ms']:6.0f}  "
                     f"{s[c]['p99_ms']:6.0f}")
    lines.append(f"  CPU per frame on/off {s['cpu_on_over_off']:.3f}; p99 on - off {s['p99_on_minus_off_ms']:+.0f} ms")
    lines.append(f"load average at start {result['load_average_at_start'][0]:.1f}, at end "
                 f"{result['load_average_at_end'][0]:.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "run" / "bench")
    p.add_argument("--rate", type=float, default=10.0, help="frames/s offered (all cameras)")
    p.add_argument("--seconds", type=float, default=60.0, help="live stream per worker run")
    p.add_argument("--repeats", type=int, default=2, help="runs of each configuration")
    p.add_argument("--defect-rate", type=float, default=0.05, help="share of frames the worker judges defect")
    p.add_argument("--backlog", type=int, default=0, help="also this many pre-loaded frames judged at full speed "
                   "per run (CPU per frame without idle time); 0: live runs only")
    p.add_argument("--model", type=Path, default=None, help="a trained model base folder judging with its own "
                   "threshold (default: the tiny model, threshold set for --defect-rate)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

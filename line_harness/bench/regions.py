"""What defect regions cost the worker: CPU-seconds per frame with regions on, off, and without a map at all.

    .venv/bin/python -m line_harness.bench.regions [--frames 600] [--defect-rates 0.05,0.5] [--repeats 2]
        [--model-map DIR --model-no-map DIR] [--source-dir DIR --split Train]

One run, one broker; per defect rate one pre-loaded topic of 512x512 PNG frames from the simulator
(`--defect-rate`; synthetic textures, or a DAGM folder with --source-dir), and three worker
configurations on the same frames, interleaved so that load drifts on a shared machine hit them alike:

  no-map   the model exported WITHOUT a map output (what the worker ran before)
  off      the same weights exported WITH the defect map, WORKER_MAX_REGIONS=0 (no regions asked)
  on       the map model with regions at the defaults (WORKER_MAX_REGIONS=5, WORKER_REGION_LEVEL=0.5)

Default models: training.tiny_model exported both ways; it is not trained for the simulator's
defects, so its threshold is set (WORKER_THRESHOLD_OVERRIDE) at the (1 - rate) quantile of its own
scores on the frames, computed offline first. A trained model (--model-map, e.g. one re-exported by
training.reexport, and --model-no-map, its original export) judges with its own threshold. CPU is
the worker process's user + system seconds between ready and the last result, divided by the frames
judged. Writes <out>/regions-cost.json and prints a table.
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

from line_harness.paths import REPO

CONFIGS = ("no-map", "off", "on")


def build_models(out: Path, size: tuple[int, int]) -> dict[str, Path]:
    """The tiny model exported with (map) and without (no-map) its defect-map output."""
    from training.export import export_version
    from training.tiny_model import build_tiny_model, tiny_scorer
    out.mkdir(parents=True, exist_ok=True)
    with_map, without = out / "map", out / "no-map"
    if not (with_map / "1" / "metadata.json").is_file():
        build_tiny_model(with_map, version=1, input_size=size, name="tiny-map")
    if not (without / "1" / "metadata.json").is_file():
        export_version(tiny_scorer(), without, name="tiny-no-map", version=1, input_size=size, threshold=0.5,
                       log=lambda *_: None)
    return {"map": with_map, "no-map": without}


def offline_scores(records: list[tuple], model_dir: Path, size: tuple[int, int]) -> np.ndarray:
    """The model's scores of the pre-loaded frames (LiteRT, as the worker runs it)."""
    from line_runtime.model import load_model
    from worker.decode import DecodedFrame, DecodeLimits, decode_frame
    from worker.settings import WorkerSettings
    d = {k: f.default for k, f in WorkerSettings.model_fields.items()}
    limits = DecodeLimits(d["max_frame_bytes"], d["max_frame_pixels"], size[0], size[1], d["size_mismatch_policy"],
                          d["max_jpeg_scans"])
    model = load_model(model_dir / "1", backend="litert")
    images = []
    for value, headers, key in records:
        frame = decode_frame(value, headers, limits, key)
        if not isinstance(frame, DecodedFrame):
            raise RuntimeError(f"a pre-loaded frame did not decode: {frame}")
        images.append(frame.image)
    batch = np.stack(images)[..., None]
    return np.concatenate([model.predict(batch[i:i + 32]) for i in range(0, len(batch), 32)])


def measure(env, frames_topic: str, frames: int, config: str, models: dict[str, Path], threshold: float | None,
            tag: str) -> dict:
    """One cold worker on the pre-loaded frames: CPU-seconds per frame and frames/s."""
    from line_harness.bench import stages
    from line_harness.kafka.topics import run_topics
    topics = run_topics(env.client_kwargs, 1, f"regions-{tag}")
    topics["frames"] = frames_topic
    run_env = stages.Env(env.kafka_env, env.client_kwargs, models["no-map" if config == "no-map" else "map"],
                         env.out_dir, env.cameras)
    settings = {"max_regions": 0 if config == "off" else 5}
    if threshold is not None:
        settings["threshold_override"] = f"{threshold:.9f}"
    row = stages.run_worker_backlog(run_env, topics, frames, f"regions-{tag}", **settings)
    cpu_per_frame = row["cpu_cores"] / row["frames_per_s"] if row.get("cpu_cores") and row["frames_per_s"] else None
    events = _events(env.client_kwargs, topics["results"], frames)
    return {"config": config, "frames_per_s": row["frames_per_s"], "cpu_cores": row["cpu_cores"],
            "cpu_ms_per_frame": None if cpu_per_frame is None else cpu_per_frame * 1000.0,
            "defect_share": sum(e["verdict"] == "defect" for e in events) / max(1, len(events)),
            "with_regions": sum(bool(e.get("localisation")) for e in events),
            "mean_event_bytes": statistics.fmean(len(json.dumps(e, separators=(",", ":"))) for e in events)}


def _events(client_kwargs: dict, topic: str, want: int) -> list[dict]:
    from line_harness.readers import read_topic
    return read_topic(client_kwargs, topic, want, timeout_s=60)


def in_process(records: list[tuple], model_dir: Path, size: tuple[int, int], batch: int = 8, rounds: int = 3) -> dict:
    """CPU-ms per frame of what regions add, measured in this process without the worker's noise:
    the map read (judge with maps vs predict), and per defect frame find_regions + the larger event
    (built and serialised with vs without its localisation). Best of `rounds` (process CPU time)."""
    from line_contracts.events import DefectEvent, ModelRef, Timings, Verdict, frame_ref
    from line_runtime.model import load_model
    from line_runtime.regions import find_regions
    from worker.decode import DecodeLimits, decode_frame
    from worker.settings import WorkerSettings
    d = {k: f.default for k, f in WorkerSettings.model_fields.items()}
    limits = DecodeLimits(d["max_frame_bytes"], d["max_frame_pixels"], size[0], size[1], d["size_mismatch_policy"],
                          d["max_jpeg_scans"])
    decoded = [decode_frame(v, h, limits, k) for v, h, k in records]
    images = np.stack([f.image for f in decoded])[..., None]
    model = load_model(Path(model_dir) / "1", backend="litert")
    chunks = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
    model.judge(chunks[0])

    def cpu_ms(fn) -> float:
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            fn()
            best = min(best, time.process_time() - start)
        return best * 1000.0 / (len(chunks) * batch)

    maps = np.concatenate([model.judge(c)[1] for c in chunks])
    with_maps = cpu_ms(lambda: [model.judge(c) for c in chunks])
    scores_only = cpu_ms(lambda: [model.predict(c) for c in chunks])
    ref = ModelRef(name="m", version="1", backend="litert")
    timings = Timings(consumed_ns=1, inferred_ns=2, published_ns=3, capture_to_publish_ms=1.0, inference_ms=1.0, batch_size=8)

    def events(localise: bool) -> None:
        for i, frame in enumerate(decoded[:len(maps)]):
            h = frame.headers
            loc = find_regions(maps[i], h.height, h.width, 0.5, 5) if localise else None
            DefectEvent(event_id=f"t-0-{i}", frame=frame_ref("t", 0, i, h), verdict=Verdict.DEFECT, score=0.9,
                        threshold=0.5, model=ref, worker_id="w", timings=timings, localisation=loc).to_json_bytes()

    plain, regions = cpu_ms(lambda: events(False)), cpu_ms(lambda: events(True))
    return {"model_cpu_ms_per_frame_scores_only": scores_only, "model_cpu_ms_per_frame_with_maps": with_maps,
            "map_read_ms_per_frame": with_maps - scores_only, "event_ms_per_defect_frame_without_regions": plain,
            "regions_ms_per_defect_frame": regions - plain, "map_shape": list(maps.shape[1:])}


def run(args) -> dict:
    """Pre-load, score offline, then every (defect rate, repeat, config) worker run; JSON + a table."""
    from line_harness.bench.pipeline_ceiling import read_records
    from line_harness.bench.stages import Env
    from line_harness.kafka.session import broker_session
    from line_harness.kafka.topics import run_topics
    from line_harness.simulator import run_sim, sim_run_args
    size = (512, 512)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(["python -m line_harness.bench.regions", *sys.argv[1:]]),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
              "load_average_at_start": os.getloadavg(), "frames": args.frames, "runs": []}
    trained = args.model_map is not None
    models = ({"map": args.model_map, "no-map": args.model_no_map} if trained
              else build_models(out / "regions-models", size))
    result["models"] = {k: str(v) for k, v in models.items()}
    source = ("--source-dir", str(args.source_dir), "--split", args.split) if args.source_dir else ()
    with broker_session(out / f"kafka-regions-{os.getpid()}") as broker:
        env = Env(broker.kafka_env, broker.client_kwargs, models["map"], out)
        for rate in [float(r) for r in args.defect_rates.split(",")]:
            frames_topic = run_topics(env.client_kwargs, 6, f"regions-frames-{int(rate * 100)}")["frames"]
            run_sim(env.kafka_env, sim_run_args(frames_topic, frames=args.frames, cameras=env.cameras, seed=4,
                                                extra=("--defect-rate", str(rate), *source)))
            threshold = None
            if "in_process" not in result:
                result["in_process"] = in_process(read_records(env.client_kwargs, frames_topic, min(args.frames, 96)),
                                                  models["map"], size)
                print(f"  in process: {json.dumps(result['in_process'])}", flush=True)
            if not trained:
                scores = offline_scores(read_records(env.client_kwargs, frames_topic, args.frames), models["map"], size)
                threshold = float(np.quantile(scores, 1.0 - rate))
            for repeat in range(args.repeats):
                order = CONFIGS if repeat % 2 == 0 else tuple(reversed(CONFIGS))
                for config in order:
                    row = measure(env, frames_topic, args.frames, config, models, threshold,
                                  f"{int(rate * 100)}-{repeat}-{config}")
                    row.update(defect_rate=rate, repeat=repeat, threshold=threshold)
                    result["runs"].append(row)
                    print(f"  rate {rate:.0%} repeat {repeat} {config:6s}: {row['cpu_ms_per_frame']:.2f} CPU-ms/frame, "
                          f"{row['frames_per_s']:.1f} frames/s, defects {row['defect_share']:.1%}, "
                          f"with regions {row['with_regions']}", flush=True)
    result["load_average_at_end"] = os.getloadavg()
    result["summary"] = summarise(result["runs"])
    (out / "regions-cost.json").write_text(json.dumps(result, indent=2, default=str))
    print(format_summary(result))
    return result


def summarise(runs: list[dict]) -> list[dict]:
    """Per defect rate: median CPU-ms per frame of each config and the ratios on/off and on/no-map."""
    rows = []
    for rate in sorted({r["defect_rate"] for r in runs}):
        cpu = {c: statistics.median(r["cpu_ms_per_frame"] for r in runs if r["defect_rate"] == rate and r["config"] == c)
               for c in CONFIGS}
        share = statistics.fmean(r["defect_share"] for r in runs if r["defect_rate"] == rate)
        rows.append({"defect_rate": rate, "defect_share_seen": share, "cpu_ms_per_frame": cpu,
                     "on_over_off": cpu["on"] / cpu["off"], "on_over_no_map": cpu["on"] / cpu["no-map"]})
    return rows


def format_summary(result: dict) -> str:
    """The table printed at the end."""
    lines = [f"regions cost ({result['frames']} frames of 512x512 PNG per run, median of the repeats; CPU-ms per frame)",
             f"  models: {result['models']}",
             "  defect rate (seen)   no-map     off      on    on/off  on/no-map"]
    for r in result["summary"]:
        c = r["cpu_ms_per_frame"]
        lines.append(f"  {r['defect_rate']:5.0%} ({r['defect_share_seen']:5.1%})   {c['no-map']:6.2f}  {c['off']:6.2f}  "
                     f"{c['on']:6.2f}   {r['on_over_off']:5.3f}   {r['on_over_no_map']:5.3f}")
    ip = result.get("in_process")
    if ip:
        lines.append(f"  in process (best of 3): model {ip['model_cpu_ms_per_frame_scores_only']:.2f} CPU-ms/frame scores only, "
                     f"{ip['model_cpu_ms_per_frame_with_maps']:.2f} with maps; regions {ip['regions_ms_per_defect_frame']:.3f} "
                     f"CPU-ms per defect frame (event {ip['event_ms_per_defect_frame_without_regions']:.3f} without)")
    lines.append(f"load average at start {result['load_average_at_start'][0]:.1f}, at end "
                 f"{result['load_average_at_end'][0]:.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "run" / "bench")
    p.add_argument("--frames", type=int, default=600, help="frames pre-loaded; every worker run judges all of them")
    p.add_argument("--defect-rates", default="0.05,0.5", help="comma-separated shares of frames judged defect")
    p.add_argument("--repeats", type=int, default=2, help="runs of each configuration per defect rate")
    p.add_argument("--model-map", type=Path, default=None, help="trained model base folder WITH the map output "
                   "(default: the tiny model, built in <out>/regions-models)")
    p.add_argument("--model-no-map", type=Path, default=None, help="the same model exported without it")
    p.add_argument("--source-dir", type=Path, default=None, help="simulator image folder (DAGM layout); default: "
                   "synthetic textures")
    p.add_argument("--split", default="Train", help="DAGM split of --source-dir")
    args = p.parse_args(argv)
    if (args.model_map is None) != (args.model_no_map is None):
        p.error("give both --model-map and --model-no-map (the same weights with and without the map output), or neither")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

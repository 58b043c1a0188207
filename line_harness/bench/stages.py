"""The benchmark's stages against one broker: worker throughput, naive baseline, latency, sweep.

Each stage uses fresh topics (or a fresh consumer group on the shared backlog topic), the real
`python -m worker` and `python -m producer_sim`, and measures from the result events themselves.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from line_harness.kafka.topics import run_topics
from line_harness.paths import REPO
from line_harness.processes import cpu_seconds, machine_busy_seconds, rss_bytes
from line_harness.readers import OutcomeReader, event_ids
from line_harness.simulator import run_sim, sim_run_args, start_sim
from line_harness.worker_process import WorkerProcess
from producer_sim.stats import percentile

# The worker's own defaults, but no model-folder polling and a shutdown that drains what is in flight.
BENCH_WORKER_DEFAULTS = {"model_poll_interval_s": 0, "shutdown_grace_s": 20}


@dataclass
class Env:
    """What every stage needs: the broker's client settings and where to write logs."""

    kafka_env: dict[str, str]   # KAFKA_* variables for the broker
    client_kwargs: dict         # kafka-python kwargs for the broker
    model: Path                 # model base folder
    out_dir: Path
    cameras: int = 12


class ResourceSampler:
    """Samples a process's CPU seconds and RSS, and the whole machine's busy CPU seconds, every interval on a thread."""

    def __init__(self, pid: int, interval_s: float = 0.5):
        self.pid = pid
        self.samples: list[tuple[float, float, int, float]] = []  # (monotonic, cpu s, rss bytes, machine busy s)
        self._stop = threading.Event()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), cpu_seconds(self.pid), rss_bytes(self.pid),
                                     machine_busy_seconds()))
            except (OSError, IndexError, ValueError):
                return
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def window(self, start: float, end: float) -> dict:
        """CPU use (cores) and RSS between two monotonic times; `machine_busy_cores` counts every process."""
        inside = [s for s in self.samples if start <= s[0] <= end] or self.samples[-2:]
        if len(inside) < 2:
            return {"cpu_cores": None, "machine_busy_cores": None, "rss_mb_max": None}
        (t0, c0, _, m0), (t1, c1, _, m1) = inside[0], inside[-1]
        seconds = max(t1 - t0, 1e-9)
        return {"cpu_cores": (c1 - c0) / seconds, "machine_busy_cores": (m1 - m0) / seconds,
                "rss_mb_max": max(s[2] for s in inside) / 2**20, "rss_mb_end": inside[-1][2] / 2**20}


def preload(env: Env, topic: str, frames: int, seed: int = 0) -> dict:
    """Publish `frames` realistic 512x512 PNG frames as fast as possible (simulator, max rate)."""
    return run_sim(env.kafka_env, sim_run_args(topic, frames=frames, cameras=env.cameras, seed=seed))


def throughput_from(rows: list[dict]) -> Optional[float]:
    """Frames/s between the first and the last published result (worker clock)."""
    if len(rows) < 2:
        return None
    times = sorted(r["published_ns"] for r in rows)
    return (len(times) - 1) / ((times[-1] - times[0]) / 1e9)


def start_worker(env: Env, topics: dict, name: str, **settings) -> WorkerProcess:
    """A worker on the run's topics in a group of its own; log in worker-<name>.log."""
    return WorkerProcess(env.kafka_env, env.model, topics["frames"], topics["results"], topics["dlq"],
                         f"bench-{uuid.uuid4().hex[:8]}", env.out_dir / f"worker-{name}.log",
                         defaults=BENCH_WORKER_DEFAULTS, instance_id="bench-worker", **settings)


def run_worker_backlog(env: Env, topics: dict, frames: int, name: str, profile_s: float = 0.0,
                       **settings) -> dict:
    """Start one worker cold on a pre-loaded topic and measure it until every frame has a result."""
    reader = OutcomeReader(env.client_kwargs, topics)
    worker = start_worker(env, topics, name, **settings)
    sampler = ResourceSampler(worker.pid)
    spy = None
    try:
        ready_s = worker.wait_ready(120)
        if profile_s:
            spy = _start_profiler(worker.pid, profile_s, env.out_dir / f"profile-{name}")
        if not reader.wait_for(frames, timeout_s=3600, progress_timeout_s=120, alive=worker.running):
            raise RuntimeError(f"worker {name} (exit code {worker.proc.poll()}): only {sum(reader.counts())} of "
                               f"{frames} frames came back:\n" + worker.log_tail())
        end = time.monotonic()
        commits = worker.metric("inspection_commits_total")
    finally:
        if spy is not None:
            spy.wait(60)
        worker.stop(40)
        sampler.stop()
        reader.close()
    rows = reader.results
    res = sampler.window(worker.ready_mono or worker.started_mono, end)
    full = [r["inference_ms"] for r in rows if r["batch"] == max(r["batch"] for r in rows)]
    return {"frames": frames, "ready_s": ready_s, "frames_per_s": throughput_from(rows),
            "backend": rows[0]["backend"], "batch_mean": statistics.fmean(r["batch"] for r in rows),
            "batch_max": max(r["batch"] for r in rows), "full_batch_inference_ms_p50": statistics.median(full),
            "dead_letters": len(reader.dead), "commits": commits, **res,
            "settings": settings}


def run_naive(env: Env, frames_topic: str, frames: int, seconds: float) -> dict:
    """The naive one-at-a-time service (line_harness/bench/naive.py) on the same backlog and model."""
    results = f"naive-results-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "line_harness.bench.naive", "--model", str(env.model), "--frames-topic",
           frames_topic, "--results-topic", results, "--group", f"naive-{uuid.uuid4().hex[:8]}",
           "--frames", str(frames), "--seconds", str(seconds)]
    done = subprocess.run(cmd, cwd=REPO, env={**_base_env(), **env.kafka_env}, capture_output=True, text=True,
                          timeout=seconds + 300)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"naive baseline failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_live(env: Env, name: str, rate: float, seconds: float, backlog: int = 0, profile: bool = False,
             **settings) -> dict:
    """A worker on fresh topics (optionally with a backlog first), then the simulator at `rate` frames/s
    for `seconds`; capture-to-publish latency of the live frames, from the result events."""
    topics = run_topics(env.client_kwargs, 6, name)
    backlog_ids: set[str] = set()
    if backlog:
        preload(env, topics["frames"], backlog, seed=1)
        backlog_ids = event_ids(env.client_kwargs, topics["frames"])
    reader = OutcomeReader(env.client_kwargs, topics)
    worker = start_worker(env, topics, name, **settings)
    sampler = ResourceSampler(worker.pid)
    try:
        worker.wait_ready(120)
        backlog_tp = None
        if backlog:
            if not reader.wait_for(backlog, timeout_s=1800, progress_timeout_s=120, alive=worker.running):
                raise RuntimeError(f"{name}: backlog not judged:\n{worker.log_tail()}")
            backlog_tp = throughput_from(reader.results)
        fps = rate / env.cameras
        live_start = time.monotonic()
        spy = _start_profiler(worker.pid, seconds, env.out_dir / f"profile-{name}") if profile else None
        sim = start_sim(env.kafka_env, sim_run_args(topics["frames"], duration_s=seconds, fps=fps,
                                                    cameras=env.cameras, seed=2, pool_size=60),
                        env.out_dir / f"sim-{name}.json")
        sim.wait(seconds + 180)
        if spy is not None:
            spy.wait(60)
        summary = json.loads(Path(env.out_dir / f"sim-{name}.json").read_text() or "{}")
        sent = summary.get("acked", 0)
        reader.wait_for(backlog + sent, timeout_s=300, progress_timeout_s=60)
        live_end = time.monotonic()
    finally:
        worker.stop(40)
        sampler.stop()
        reader.close()
    live = [r for r in reader.results if r["id"] not in backlog_ids]
    lat = [r["latency_ms"] for r in live]
    inf = [r["inference_ms"] for r in live]
    return {"settings": settings, "offered_fps": rate, "seconds": seconds, "sent": sent, "judged": len(live),
            "backlog_frames_per_s": backlog_tp, "achieved_fps": throughput_from(live),
            "latency_ms": {q: percentile(lat, q) for q in (50, 95, 99)}, "latency_ms_max": max(lat, default=None),
            "batch_mean": statistics.fmean(r["batch"] for r in live) if live else None,
            "inference_ms_p50": statistics.median(inf) if inf else None,
            "inference_ms_p99": percentile(inf, 99), **sampler.window(live_start, live_end),
            "sim": {k: summary.get(k) for k in ("attempted", "acked", "lost", "achieved_rate", "behind_schedule_max_ms",
                                                "mean_frame_bytes")}}


def _base_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _start_profiler(pid: int, seconds: float, out: Path) -> Optional[subprocess.Popen]:
    """py-spy (from the venv) samples the worker without pausing it; raw collapsed stacks + SVG."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return None
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50",
                             "--nonblocking", "--format", "raw", "--output", str(out) + ".txt"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

"""The fault scenarios. Each drives real workers, the real simulator and the real broker, and
ends with accounting.account(): produced = judged + dead-lettered, zero lost.

All use the tiny model and small frames (fast); the soak uses them too, at 70% of the
capacity measured in the same run.
"""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from line_harness.chaos.accounting import account
from line_harness.kafka.topics import run_topics
from line_harness.processes import cpu_seconds, rss_bytes
from line_harness.readers import OutcomeReader, record_count
from line_harness.simulator import run_sim, sim_run_args, start_sim
from line_harness.worker_process import WorkerNotReady, WorkerProcess
from producer_sim.faults import ALL_KINDS, EXPECTED_REASON, FRAME_LEVEL_KINDS, make_bad_record

# The worker's own defaults, but no model-folder polling and a shutdown that drains what is in flight.
CHAOS_WORKER_DEFAULTS = {"model_poll_interval_s": 0, "shutdown_grace_s": 20}


@dataclass
class Ctx:
    """Broker (LocalKafka, or None when external: no broker restarts then), model and output folder."""

    kafka: object
    kafka_env: dict[str, str]
    client_kwargs: dict
    model: Path
    out_dir: Path
    frame_size: str = "64x64"
    cameras: int = 4
    seed: int = 0


def _worker(ctx: Ctx, topics: dict, group: str, name: str, **settings) -> WorkerProcess:
    """A worker named `name` in `group`, ready (/readyz); log in <name>.log."""
    worker = WorkerProcess(ctx.kafka_env, ctx.model, topics["frames"], topics["results"], topics["dlq"], group,
                           ctx.out_dir / f"{name}.log", defaults=CHAOS_WORKER_DEFAULTS, name=name, instance_id=name,
                           **settings)
    try:
        worker.wait_ready(120)
    except WorkerNotReady:
        worker.stop()
        raise
    return worker


def steady_rate(stamps_ns: list[int], trim: float = 0.1) -> float:
    """Events/s between the trim and 1-trim quantiles of their timestamps: leaves out the cold start and
    the tail, which on a short backlog would otherwise dominate the figure."""
    if len(stamps_ns) < 10:
        return 0.0
    ordered = sorted(stamps_ns)
    lo, hi = int(trim * (len(ordered) - 1)), int((1 - trim) * (len(ordered) - 1))
    span = (ordered[hi] - ordered[lo]) / 1e9
    return (hi - lo) / span if span > 0 else 0.0


def _stream(ctx: Ctx, topics: dict, fps_per_camera: float, name: str, **kw):
    """The simulator publishing steadily until interrupted (SIGINT flushes and prints the summary)."""
    args = sim_run_args(topics["frames"], fps=fps_per_camera, cameras=ctx.cameras, frame_size=ctx.frame_size,
                        seed=ctx.seed, pool_size=50, **kw)
    return start_sim(ctx.kafka_env, args, ctx.out_dir / f"sim-{name}.json")


def _end_stream(ctx: Ctx, sim, name: str) -> dict:
    if sim.poll() is None:
        sim.send_signal(signal.SIGINT)
    sim.wait(120)
    text = (ctx.out_dir / f"sim-{name}.json").read_text()
    return json.loads(text) if text.strip() else {}


def _finish(ctx: Ctx, topics: dict, last: WorkerProcess, group: str, exactly_once: bool = False,
            timeout_s: float = 180) -> dict:
    """Let the surviving worker judge everything, stop it, and run the check."""
    produced = record_count(ctx.client_kwargs, topics["frames"])
    reader = OutcomeReader(ctx.client_kwargs, topics)
    try:
        complete = reader.wait_for(produced, timeout_s=timeout_s, progress_timeout_s=60)
    finally:
        reader.close()
    code = last.stop(40)
    acc = account(ctx.client_kwargs, topics, exactly_once, group)
    return {"accounting": acc.to_dict(), "check": acc.line(), "drained": complete, "last_exit_code": code,
            "passed": acc.ok and complete}


def sigkill(ctx: Ctx, kills: int = 10, exactly_once: bool = False, fps: float = 25.0) -> dict:
    """SIGKILL the worker at random moments during a steady stream; restart it each time."""
    rng = random.Random(ctx.seed)
    guarantee = "exactly_once" if exactly_once else "at_least_once"
    topics, group = run_topics(ctx.client_kwargs, 3, "kill"), f"chaos-{uuid.uuid4().hex[:8]}"
    name = f"kill-{guarantee}"
    sim = _stream(ctx, topics, fps, name)
    moments = []
    try:
        for i in range(kills):
            w = _worker(ctx, topics, group, f"{name}-{i}", processing_guarantee=guarantee)
            pause = rng.uniform(0.5, 4.0)
            time.sleep(pause)
            w.kill()
            moments.append(round(pause, 2))
        last = _worker(ctx, topics, group, f"{name}-last", processing_guarantee=guarantee)
        time.sleep(3)
    finally:
        summary = _end_stream(ctx, sim, name)
    out = _finish(ctx, topics, last, group, exactly_once)
    return {"scenario": f"sigkill x{kills} ({guarantee})", "kill_after_ready_s": moments,
            "sim_lost": summary.get("lost"), **out}


def broker_restart(ctx: Ctx, before_s: float = 8.0, after_s: float = 8.0, fps: float = 25.0) -> dict:
    """Restart the broker (LocalKafka.restart: graceful stop, same ports and data) mid-stream."""
    if ctx.kafka is None:
        return {"scenario": "broker restart", "skipped": "external broker: cannot restart it", "passed": None}
    topics, group = run_topics(ctx.client_kwargs, 3, "restart"), f"chaos-{uuid.uuid4().hex[:8]}"
    w = _worker(ctx, topics, group, "restart-worker")
    sim = _stream(ctx, topics, fps, "restart")
    try:
        time.sleep(before_s)
        t0 = time.monotonic()
        ctx.kafka.restart(timeout_s=90)
        down_s = time.monotonic() - t0
        time.sleep(after_s)
    finally:
        summary = _end_stream(ctx, sim, "restart")
    out = _finish(ctx, topics, w, group)
    return {"scenario": "broker restart mid-stream", "restart_s": round(down_s, 1), "sim_lost": summary.get("lost"),
            "worker_survived": out["last_exit_code"] == 0, **out,
            "passed": out["passed"] and out["last_exit_code"] == 0}


def rebalance(ctx: Ctx, fps: float = 25.0, phase_s: float = 5.0) -> dict:
    """Two workers in one group: B joins mid-stream, A leaves (SIGTERM), C joins, B is SIGKILLed."""
    topics, group = run_topics(ctx.client_kwargs, 6, "rebal"), f"chaos-{uuid.uuid4().hex[:8]}"
    a = _worker(ctx, topics, group, "rebal-a")
    sim = _stream(ctx, topics, fps, "rebal")
    steps = []
    try:
        time.sleep(phase_s)
        b = _worker(ctx, topics, group, "rebal-b")
        steps.append("B joined")
        time.sleep(phase_s)
        a_code = a.stop(40)
        steps.append(f"A left (SIGTERM, exit {a_code})")
        c = _worker(ctx, topics, group, "rebal-c")
        steps.append("C joined")
        time.sleep(phase_s)
        b.kill()
        steps.append("B SIGKILLed")
        time.sleep(phase_s)
    finally:
        summary = _end_stream(ctx, sim, "rebal")
    out = _finish(ctx, topics, c, group)
    return {"scenario": "rebalance: join, leave, SIGKILL", "steps": steps, "a_exit_code": a_code,
            "sim_lost": summary.get("lost"), **out, "passed": out["passed"] and a_code == 0}


def _send_huge_keys(ctx: Ctx, topic: str, count: int) -> None:
    """`count` huge_key records (a 600 KB key: the one hostile kind the simulator's mix cannot send)."""
    import numpy as np
    from kafka import KafkaProducer

    from line_harness.frames import frame_headers, frame_image, png_bytes
    rng = np.random.default_rng(ctx.seed)
    producer = KafkaProducer(**ctx.client_kwargs, acks="all", max_request_size=4 << 20)
    try:
        for i in range(count):
            headers = frame_headers(i, ctx.cameras)
            key, value, kafka_headers = make_bad_record("huge_key", rng, headers, png_bytes(frame_image(i)))
            producer.send(topic, key=key, value=value, headers=kafka_headers)
        producer.flush(60)
    finally:
        producer.close(5)


def _backlog_run(ctx: Ctx, frames: int, corrupt_rate: float, name: str, frame_size: str = "",
                 huge_keys: int = 0) -> dict:
    topics, group = run_topics(ctx.client_kwargs, 6, name), f"chaos-{uuid.uuid4().hex[:8]}"
    # Every kind a frame can carry (the classic ones and the hostile ones of issue 11), not just the
    # simulator's default mix; huge_key records are sent alongside.
    kinds = ("--corrupt-kinds", ",".join(FRAME_LEVEL_KINDS)) if corrupt_rate else ()
    sim = run_sim(ctx.kafka_env, sim_run_args(topics["frames"], frames=frames, cameras=ctx.cameras,
                                              frame_size=frame_size or ctx.frame_size, seed=ctx.seed, pool_size=100,
                                              corrupt_rate=corrupt_rate, extra=kinds))
    if huge_keys:
        _send_huge_keys(ctx, topics["frames"], huge_keys)
        sim.setdefault("corrupt_by_kind", {})["huge_key"] = huge_keys
    total = frames + huge_keys
    reader = OutcomeReader(ctx.client_kwargs, topics)
    try:
        w = _worker(ctx, topics, group, f"{name}-worker")
        cpu0 = cpu_seconds(w.pid)
        done = reader.wait_for(total, timeout_s=600, progress_timeout_s=60, alive=w.running)
        cpu = cpu_seconds(w.pid) - cpu0 if w.running() else 0.0
        exited = not w.running()  # on its own: any exit before stop() is a failure
    finally:
        reader.close()
    stamps = sorted([r["published_ns"] for r in reader.results] + [d["dead_ns"] for d in reader.dead])
    rate = steady_rate(stamps)
    out = _finish(ctx, topics, w, group, timeout_s=30)
    # Frames per CPU-second of the worker: on a shared machine the wall-clock rate of a few-second
    # run swings with the neighbours' load; the CPU the worker spends per frame does not.
    good = out["accounting"]["judged"]
    return {"frames": total, "frames_per_s": rate, "frames_per_cpu_s": total / cpu if cpu > 0 else 0.0,
            "good_frames_per_cpu_s": good / cpu if cpu > 0 else 0.0,
            "worker_cpu_s": cpu, "drained_in_time": done,
            "bad_sent_by_kind": sim.get("corrupt_by_kind", {}), "worker_exited": exited, **out,
            "passed": out["passed"] and not exited and out["last_exit_code"] == 0}


def corrupt(ctx: Ctx, frames: int = 3000, rate: float = 0.05, frame_size: str = "128x128", huge_keys: int = 3) -> dict:
    """A full-speed backlog with `rate` bad frames of every kind in producer_sim.faults (huge_key: `huge_keys`
    records) vs the same without: throughput (frames per worker CPU-second) >= 80% of clean, the worker never
    exits, and every bad frame dead-lettered with the reason its kind calls for."""
    # 128x128 frames (resized to the tiny model's 64x64 by the worker): with 64x64 frames (4 KB) the
    # bad kinds of ~0.4-1 MB (huge PNG, over the byte limit) would be most of the bytes moved.
    clean = _backlog_run(ctx, frames, 0.0, "clean", frame_size)
    bad = _backlog_run(ctx, frames, rate, "corrupt", frame_size, huge_keys=huge_keys)
    expected: dict[str, int] = {}
    for kind, n in bad["bad_sent_by_kind"].items():
        reason = EXPECTED_REASON[kind].value
        expected[reason] = expected.get(reason, 0) + n
    got = bad["accounting"]["dead_by_reason"]
    missing = sorted(set(ALL_KINDS) - {k for k, n in bad["bad_sent_by_kind"].items() if n})  # the seeded draw missed
    wall = bad["frames_per_s"] / clean["frames_per_s"] if clean["frames_per_s"] else 0.0
    # Good frames judged per worker CPU-second with the bad ones mixed in, against all frames of the clean run.
    ratio = bad["good_frames_per_cpu_s"] / clean["frames_per_cpu_s"] if clean["frames_per_cpu_s"] else 0.0
    return {"scenario": f"{rate:.0%} corrupt frames at full speed", "clean": clean, "corrupt": bad,
            "check": f"clean: {clean['check']} | corrupt: {bad['check']}",
            "throughput_ratio": ratio, "wall_clock_ratio": wall,
            "expected_dead_by_reason": expected, "dead_by_reason": got,
            "kinds_sent": sorted(bad["bad_sent_by_kind"]), "kinds_missing": missing,
            "passed": (clean["passed"] and bad["passed"] and got == expected and ratio >= 0.8 and not missing
                       and clean["accounting"]["dead_lettered"] == 0
                       and not clean["worker_exited"] and not bad["worker_exited"])}


def soak(ctx: Ctx, minutes: float = 20.0, load: float = 0.7, capacity_frames: int = 3000,
         sample_s: float = 10.0, warmup_fraction: float = 0.15) -> dict:
    """Measure capacity on a backlog, then run at `load` of it for `minutes`, sampling the worker's RSS."""
    cap = _backlog_run(ctx, capacity_frames, 0.0, "soak-capacity")
    rate = load * cap["frames_per_s"]
    topics, group = run_topics(ctx.client_kwargs, 6, "soak"), f"chaos-{uuid.uuid4().hex[:8]}"
    w = _worker(ctx, topics, group, "soak-worker")
    sim = _stream(ctx, topics, rate / ctx.cameras, "soak", duration_s=minutes * 60)
    curve: list[tuple[float, float]] = []
    start = time.monotonic()
    try:
        while sim.poll() is None and time.monotonic() - start < minutes * 60 + 120:
            curve.append((round(time.monotonic() - start, 1), round(rss_bytes(w.pid) / 2**20, 1)))
            time.sleep(sample_s)
    finally:
        summary = _end_stream(ctx, sim, "soak")
    out = _finish(ctx, topics, w, group)
    after = [mb for t, mb in curve if t >= warmup_fraction * minutes * 60]
    growth = (max(after[-3:]) - after[0]) / after[0] if len(after) >= 4 else None
    return {"scenario": f"soak {minutes:g} min at {load:.0%} load", "capacity_frames_per_s": cap["frames_per_s"],
            "offered_frames_per_s": rate, "sim_achieved_rate": summary.get("achieved_rate"),
            "rss_mb_curve": curve, "rss_growth_after_warmup": growth, **out,
            "passed": out["passed"] and growth is not None and growth < 0.05}

"""Rebalance storm: workers join, leave (SIGTERM) and are SIGKILLed every few seconds for minutes
while the simulator streams frames; committed offsets are sampled every second.

Checked at the end, from everything on the results and dead-letter topics:
- no commit ran ahead of a result: at every sample, for every partition, each frame below the
  committed offset had its result or dead letter handed to the producer before the sample was
  taken (published_ns / dead_lettered_ns, the same host clock);
- 0 frames lost: every frame on the frames topic has a result or a dead letter;
- exactly-once (--exactly-once): 0 duplicate results (read with read_committed);
- every worker that was asked to leave exited 0.

    python -m line_harness.chaos.storm --minutes 10            # at-least-once
    python -m line_harness.chaos.storm --minutes 10 --exactly-once
    python -m line_harness.chaos.storm --minutes 1 --period-s 3  # a quick look

Writes <out>/storm-results.json (and the worker logs) and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from line_harness.chaos.run import build_model
from line_harness.kafka.session import broker_session
from line_harness.kafka.topics import run_topics
from line_harness.paths import REPO
from line_harness.processes import exit_on_signals
from line_harness.readers import committed_offsets, end_offsets, read_to_end
from line_harness.simulator import sim_run_args, start_sim
from line_harness.worker_process import WorkerProcess

WORKER_DEFAULTS = {"model_poll_interval_s": 0, "shutdown_grace_s": 20, "model_backend": "litert",
                   "max_batch_size": 16, "max_batch_wait_ms": 10}


class Storm:
    """One storm run: topics, a streaming simulator, a changing set of workers, a commit sampler."""

    def __init__(self, session, model: Path, out: Path, exactly_once: bool, seed: int):
        self.session = session
        self.model = model
        self.out = out
        self.eos = exactly_once
        self.rng = random.Random(seed)
        self.topics = run_topics(session.client_kwargs, 6, "storm")
        self.group = f"storm-{uuid.uuid4().hex[:8]}"
        self.live: list[WorkerProcess] = []
        self.leaving: list[tuple[str, threading.Thread, dict]] = []
        self.steps: list[str] = []
        self.samples: list[tuple[int, dict[int, int]]] = []  # (time_ns after the read, partition -> committed)
        self._stop = threading.Event()
        self._n = 0

    def start_worker(self, wait: bool = False) -> WorkerProcess:
        """A new member of the group (not waited for: joining mid-rebalance is the point)."""
        self._n += 1
        name = f"storm-w{self._n}"
        settings = {"processing_guarantee": "exactly_once"} if self.eos else {}
        w = WorkerProcess(self.session.kafka_env, self.model, self.topics["frames"], self.topics["results"],
                          self.topics["dlq"], self.group, self.out / f"{name}.log", defaults=WORKER_DEFAULTS,
                          name=name, instance_id=name, **settings)
        if wait:
            w.wait_ready(120)
        self.live.append(w)
        return w

    def _sample(self) -> None:
        kafka = self.session.client_kwargs
        while not self._stop.wait(1.0):
            try:
                committed = committed_offsets(kafka, self.topics["frames"], self.group)
            except Exception as exc:  # noqa: BLE001 - a missed sample is no failure; note it
                self.steps.append(f"sample failed: {exc!r}")
                continue
            self.samples.append((time.time_ns(), committed))

    def _act(self, max_workers: int) -> None:
        choices = ["join"] if len(self.live) < 2 else ["join", "leave", "kill"] if len(self.live) < max_workers \
            else ["leave", "kill"]
        action = self.rng.choice(choices)
        if action == "join":
            w = self.start_worker()
            self.steps.append(f"{time.strftime('%H:%M:%S')} {w.name} joins")
            return
        w = self.live.pop(self.rng.randrange(len(self.live)))
        if action == "kill":
            w.kill()
            self.steps.append(f"{time.strftime('%H:%M:%S')} {w.name} SIGKILLed")
        else:
            result: dict = {}
            thread = threading.Thread(target=lambda: result.update(code=w.stop(40)), daemon=True)
            thread.start()
            self.leaving.append((w.name, thread, result))
            self.steps.append(f"{time.strftime('%H:%M:%S')} {w.name} leaves (SIGTERM)")

    def run(self, minutes: float, period_s: float, fps: float, max_workers: int) -> dict:
        """The storm, then the drain (one worker left), then the checks."""
        self.start_worker(wait=True)
        sim = start_sim(self.session.kafka_env, sim_run_args(self.topics["frames"], duration_s=minutes * 60, fps=fps,
                                                             cameras=6, frame_size="64x64", pool_size=100),
                        self.out / "storm-sim.json")
        sampler = threading.Thread(target=self._sample, name="commit-sampler", daemon=True)
        sampler.start()
        deadline = time.monotonic() + minutes * 60
        try:
            while time.monotonic() < deadline:
                time.sleep(period_s * self.rng.uniform(0.5, 1.5))
                self._act(max_workers)
            sim.wait(minutes * 60 + 120)
            if not self.live:
                self.start_worker()
            drained = self._drain(timeout_s=300)
        finally:
            self._stop.set()
            sampler.join(10)
            for w in self.live:
                w.stop(40)
        return self._check(drained)

    def _drain(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        total = sum(end_offsets(self.session.client_kwargs, self.topics["frames"]).values())
        while time.monotonic() < deadline:
            committed = sum(committed_offsets(self.session.client_kwargs, self.topics["frames"], self.group).values())
            if committed >= total:
                return True
            time.sleep(2)
        return False

    def _check(self, drained: bool) -> dict:
        kafka = self.session.client_kwargs
        frames = end_offsets(kafka, self.topics["frames"])
        results = read_to_end(kafka, self.topics["results"], read_committed=self.eos)
        dead = read_to_end(kafka, self.topics["dlq"], read_committed=self.eos)
        first: dict[tuple[int, int], int] = {}  # (partition, offset) -> earliest hand-over to the producer
        for ev in results:
            key = (ev["frame"]["partition"], ev["frame"]["offset"])
            first[key] = min(first.get(key, ev["timings"]["published_ns"]), ev["timings"]["published_ns"])
        for rec in dead:
            key = (rec["source_partition"], rec["source_offset"])
            first[key] = min(first.get(key, rec["dead_lettered_ns"]), rec["dead_lettered_ns"])
        lost = [(p, o) for p, end in frames.items() for o in range(end) if (p, o) not in first]
        ahead = _commits_ahead(self.samples, frames, first)
        duplicates = sum(n - 1 for n in Counter(ev["event_id"] for ev in results).values() if n > 1)
        for _name, thread, _result in self.leaving:
            thread.join(45)
        exits = {name: result.get("code") for name, _thread, result in self.leaving}
        bad_exits = {name: code for name, code in exits.items() if code != 0}
        passed = drained and not lost and not ahead and not bad_exits and (duplicates == 0 or not self.eos)
        return {"scenario": f"rebalance storm ({'exactly-once' if self.eos else 'at-least-once'})",
                "frames": sum(frames.values()), "results": len(results), "dead_letters": len(dead),
                "lost": len(lost), "lost_examples": lost[:10], "commit_samples": len(self.samples),
                "commits_ahead_of_results": len(ahead), "ahead_examples": ahead[:10],
                "duplicate_results": duplicates, "leave_exit_codes": exits, "steps": self.steps,
                "drained": drained, "passed": passed}


def _commits_ahead(samples, frames: dict[int, int], first: dict) -> list[tuple]:
    """(sample time, partition, committed offset, offset without a result by then) for every bad sample."""
    out = []
    for p, end in frames.items():
        prefix_max = [0] * (end + 1)  # prefix_max[c]: latest first-publication among offsets < c
        for o in range(end):
            prefix_max[o + 1] = max(prefix_max[o], first.get((p, o), float("inf")))
        for t_ns, committed in samples:
            c = min(committed.get(p, 0), end)
            if prefix_max[c] > t_ns:
                culprit = next(o for o in range(c) if first.get((p, o), float("inf")) > t_ns)
                out.append((t_ns, p, committed.get(p, 0), culprit))
    return out


def main(argv=None) -> int:
    """CLI: one storm; results JSON in --out; exit 1 when a check fails."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the storm (default 10)")
    p.add_argument("--period-s", type=float, default=4.0, help="mean seconds between joins/leaves/kills")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second per camera (6 cameras)")
    p.add_argument("--max-workers", type=int, default=4)
    p.add_argument("--exactly-once", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "run" / "storm")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    exit_on_signals()
    args.out.mkdir(parents=True, exist_ok=True)
    model = build_model(args.out)
    with broker_session(args.out / f"kafka-{os.getpid()}") as session:
        storm = Storm(session, model, args.out, args.exactly_once, args.seed)
        result = storm.run(args.minutes, args.period_s, args.fps, args.max_workers)
    result["command"] = " ".join(["python -m line_harness.chaos.storm", *(sys.argv[1:] if argv is None else argv)])
    (args.out / "storm-results.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}, default=str))
    print(f"{len(result['steps'])} storm steps; {'PASS' if result['passed'] else 'FAIL'}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The rebalance storm: a group of workers churned for minutes while the simulator streams, with
the group's committed offsets sampled all along and checked against when each frame's outcome
(result or dead letter) was published.

Churn: 3 workers to start with, then every `step_s` (jittered) one of: a worker joins (at most
`max_workers`), a worker leaves (SIGTERM: clean shutdown, commit on revoke) or a worker is
SIGKILLed (no shutdown path at all); never below one live worker. New workers are not waited
for, so joins land mid-rebalance too.

The commit check ("no commit runs ahead of a result"). A sampler thread asks the broker for the
group's committed offsets every `sample_s` and stores (t_done, {partition: committed}), t_done
being the wall-clock time the answer arrived. The results and dead-letter topics are created with
message.timestamp.type=LogAppendTime, so every outcome record carries the time the broker
appended it (same host, same clock). After the run, for every frame (p, o) the earliest append
time over all its outcomes is `first[p][o]` (at-least-once may publish a frame twice; only the
first publication matters). A sample is sound when, for every partition,

    committed[p] <= the lowest offset o with first[p][o] > t_done (or with no outcome at all)

Why this is sound, with no false alarms: a correct worker commits offset c only after the broker
acknowledged an outcome of every frame below c, so each of those was appended before the commit,
and the commit happened before the sampler's answer arrived (t_done). Broker timestamps are
milliseconds rounded down, so t_done is rounded up. In exactly-once mode the outcomes are read
with read_committed and the offsets are committed inside the same transaction: the records are
appended before the transaction commits, and the offsets only become visible when it does.
What it can miss: a commit ahead of a result that the result catches up with between two
samples; `sample_s` (0.2 s by default, the worker commits every 0.5 s) keeps that window small.

Ends with the usual accounting (0 lost; in exactly-once mode 0 duplicates, read_committed) and
counts workers that exited without being told to (must be 0).
"""

from __future__ import annotations

import math
import random
import signal
import threading
import time
import uuid
from collections import Counter
from typing import Optional

from line_harness.chaos.scenarios import Ctx, _end_stream, _finish, _stream, _worker
from line_harness.kafka.topics import TopicSpec, create_topics, frames_topic_configs
from line_harness.worker_process import WorkerProcess

APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def storm_topics(client_kwargs: dict, partitions: int) -> dict[str, str]:
    """Frames/results/dlq topics of one storm; the outcome topics stamp records with the broker's append time."""
    suffix = f"storm-{uuid.uuid4().hex[:8]}"
    names = {"frames": f"frames-{suffix}", "results": f"results-{suffix}", "dlq": f"dlq-{suffix}"}
    create_topics(client_kwargs, [TopicSpec(names["frames"], partitions, frames_topic_configs(16 << 30)),
                                  TopicSpec(names["results"], partitions, dict(APPEND_TIME)),
                                  TopicSpec(names["dlq"], 1, {"max.message.bytes": str(4 << 20), **APPEND_TIME})])
    return names


class CommitSampler:
    """Reads a group's committed offsets on `topic` every `every_s` on a thread: `samples` of (t_done_ms, offsets)."""

    def __init__(self, client_kwargs: dict, group: str, topic: str, every_s: float = 0.2):
        from kafka import KafkaAdminClient
        self._admin = KafkaAdminClient(**client_kwargs)
        self._group, self._topic, self._every_s = group, topic, every_s
        self.samples: list[tuple[int, dict[int, int]]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                got = self._admin.list_group_offsets({self._group: None}).get(self._group, {})
            except Exception:  # noqa: BLE001 - a coordinator moving or busy: the next sample will do
                self.errors += 1
                continue
            t_done_ms = math.ceil(time.time() * 1000)
            offsets = {tp.partition: meta.offset for tp, meta in got.items()
                       if tp.topic == self._topic and meta.offset is not None and meta.offset >= 0}
            if offsets:
                self.samples.append((t_done_ms, offsets))

    def close(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(10)
        self._admin.close()


def first_publication(client_kwargs: dict, topics: dict[str, str], read_committed: bool) -> dict[int, dict[int, int]]:
    """partition -> offset -> earliest broker append time (ms) of a result or dead letter of that frame."""
    import json

    from kafka import KafkaConsumer, TopicPartition
    first: dict[int, dict[int, int]] = {}
    consumer = KafkaConsumer(**client_kwargs, group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed" if read_committed else "read_uncommitted",
                             max_partition_fetch_bytes=8 << 20)
    try:
        parts = [TopicPartition(t, p) for t in (topics["results"], topics["dlq"])
                 for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        idle_since = time.monotonic()
        while not all(consumer.position(tp) >= ends[tp] for tp in parts) and time.monotonic() - idle_since < 5:
            got = consumer.poll(timeout_ms=500, max_records=5000)
            if got:
                idle_since = time.monotonic()
            for records in got.values():
                for r in records:
                    _, part, offset = json.loads(r.value)["event_id"].rsplit("-", 2)
                    row = first.setdefault(int(part), {})
                    row[int(offset)] = min(row.get(int(offset), r.timestamp), r.timestamp)
    finally:
        consumer.close()
    return first


def commits_ahead(samples: list[tuple[int, dict[int, int]]], first: dict[int, dict[int, int]]) -> list[dict]:
    """Samples where a committed offset passes a frame whose outcome was not yet published (see the docstring)."""
    # latest[p][k]: the latest first-publication time among offsets 0..k-1 of partition p (inf: one has none).
    # A commit of c at t_done is sound iff latest[p][c] <= t_done; latest is non-decreasing in k.
    latest: dict[int, list[float]] = {}
    top = {}
    for _, offsets in samples:
        for part, committed in offsets.items():
            top[part] = max(top.get(part, 0), committed)
    for part, n in top.items():
        row, acc, out = first.get(part, {}), 0.0, [0.0]
        for o in range(n):
            acc = max(acc, row.get(o, math.inf))
            out.append(acc)
        latest[part] = out
    bad = []
    for t_done_ms, offsets in samples:
        for part, committed in offsets.items():
            if latest[part][committed] > t_done_ms:
                row = first.get(part, {})
                gap = next(o for o in range(committed) if row.get(o, math.inf) > t_done_ms)
                bad.append({"t_ms": t_done_ms, "partition": part, "committed": committed,
                            "lowest_unpublished": gap, "published_ms": row.get(gap)})
    return bad


def storm(ctx: Ctx, minutes: float = 10.0, exactly_once: bool = False, fps: float = 10.0, partitions: int = 6,
          step_s: float = 4.0, max_workers: int = 4, sample_s: float = 0.2, log=print) -> dict:
    """Joins, leaves and SIGKILLs every ~step_s for `minutes` under a steady stream; see the module docstring."""
    rng = random.Random(ctx.seed)
    guarantee = "exactly_once" if exactly_once else "at_least_once"
    topics, group = storm_topics(ctx.client_kwargs, partitions), f"storm-{uuid.uuid4().hex[:8]}"
    tag = "storm-eos" if exactly_once else "storm"
    serial = iter(range(10_000))

    def spawn() -> WorkerProcess:
        name = f"{tag}-{next(serial)}"
        return WorkerProcess(ctx.kafka_env, ctx.model, topics["frames"], topics["results"], topics["dlq"], group,
                             ctx.out_dir / f"{name}.log", defaults={"model_poll_interval_s": 0, "shutdown_grace_s": 20},
                             name=name, instance_id=name, processing_guarantee=guarantee)

    live = [_worker(ctx, topics, group, f"{tag}-first", processing_guarantee=guarantee)]
    live += [spawn() for _ in range(2)]
    gone: list[tuple[WorkerProcess, str]] = []  # (worker, how it was ended: leave or kill)
    actions: Counter = Counter()
    unexpected: list[dict] = []
    sampler = CommitSampler(ctx.client_kwargs, group, topics["frames"], sample_s)
    sim = _stream(ctx, topics, fps, tag)
    deadline = time.monotonic() + minutes * 60
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5 * step_s, 1.5 * step_s))
            for w in [w for w in live if not w.running()]:  # exited although nobody told it to
                live.remove(w)
                unexpected.append({"worker": w.name, "exit_code": w.proc.returncode, "log": str(w.log_path)})
            choices = (["join"] if len(live) < max_workers else []) + (["leave", "kill"] if len(live) > 1 else [])
            action = rng.choice(choices or ["join"])
            if action == "join":
                live.append(spawn())
            else:
                w = live.pop(rng.randrange(len(live)))
                if action == "leave" and w.get("/readyz")[0] != 200:
                    action = "leave-starting"  # SIGTERM before its handler is installed may end it with -15
                w.send(signal.SIGTERM if action.startswith("leave") else signal.SIGKILL)
                gone.append((w, action))
            actions[action] += 1
        summary = _end_stream(ctx, sim, tag)
        last = live.pop()  # finishes the stream: the others leave cleanly
        while live:
            w = live.pop()
            w.send(signal.SIGTERM)
            gone.append((w, "leave" if w.get("/readyz")[0] == 200 else "leave-starting"))
        live.append(last)
        last.wait_ready(180)
        out = _finish(ctx, topics, last, group, exactly_once, timeout_s=600)
    finally:
        if sim.poll() is None:
            sim.kill()
        sampler.close()
        for w in live:
            w.stop(30)
    leave_codes = Counter()
    for w, how in gone:
        code = w.stop(40)
        if how.startswith("leave"):
            leave_codes[code] += 1
            if code != 0 and not (how == "leave-starting" and code == -signal.SIGTERM):
                unexpected.append({"worker": w.name, "exit_code": code, "log": str(w.log_path), "on": "SIGTERM"})
    first = first_publication(ctx.client_kwargs, topics, exactly_once)
    ahead = commits_ahead(sampler.samples, first)
    log(f"   storm: {dict(actions)}, {len(sampler.samples)} commit samples ({sampler.errors} failed reads), "
        f"{len(ahead)} ahead of results, {len(unexpected)} unexpected exits")
    return {"scenario": f"rebalance storm {minutes:g} min ({guarantee})", "actions": dict(actions),
            "commit_samples": len(sampler.samples), "sample_errors": sampler.errors,
            "commits_ahead_of_results": len(ahead), "ahead_examples": ahead[:10],
            "unexpected_exits": unexpected, "leave_exit_codes": {str(k): v for k, v in leave_codes.items()},
            "sim_lost": summary.get("lost"), **out,
            "passed": out["passed"] and not ahead and not unexpected and len(sampler.samples) > 0}


def storm_line(result: dict) -> Optional[str]:
    """One summary line of a storm result for the run log."""
    if "actions" not in result:
        return None
    return (f"   {result['actions']}; {result['commit_samples']} commit samples, "
            f"{result['commits_ahead_of_results']} ahead of results; unexpected exits {len(result['unexpected_exits'])}")

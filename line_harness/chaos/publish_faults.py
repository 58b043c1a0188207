"""Publish-path faults: the worker's output topics refuse records, vanish, or the broker goes away for
longer than the producer's delivery timeout, while the simulator streams (5% bad frames, so dead
letters flow too). The worker must stay up, stop committing, raise `inspection_publish_failing`,
and resume with nothing lost once the cause is gone.

Phases, one worker (at-least-once), each `outage_s` long unless said otherwise:

1. `results-denied`: the results topic's max.message.bytes is set to 64, so the broker refuses
   every result (RecordTooLarge: not retriable; an ACL denial fails the same way, and a local
   broker has no authorizer to deny with). Restored afterwards.
2. `dlq-denied`: the same for the dead-letter topic.
3. `results-deleted`: the stream is paused (SIGSTOP), every frame so far is waited for and the
   outcomes read (they go with the topic), the results topic is deleted and the stream resumed;
   after `outage_s` the topic is created again if it is still missing. A broker with
   auto.create.topics.enable=true (Kafka's default, and the local broker's) lets the worker's
   producer re-create it at its first send, with the broker's default settings; the result says
   whether that happened.
4. `broker-away` (only with `broker_away_s`, local broker only): the broker is stopped for longer
   than the worker's delivery timeout (kafka-python's default, 120 s), then started again.

Checks: the worker never exits and exits 0 on SIGTERM at the end; the alert gauge is >= 1 during
each denied phase and 0 at the end; the committed offsets do not move in the second half of the
results-denied phase; no commit ahead of a result at any sample (the storm's check, see
rebalance_storm); every frame produced has a result or a dead letter at the end (it resumed), and
none without one was committed past (0 lost: an unpublished, uncommitted frame is a stall).
"""

from __future__ import annotations

import signal
import time
import uuid

from kafka.admin import ConfigResource, ConfigResourceType

from line_harness.chaos.rebalance_storm import (
    APPEND_TIME,
    CommitSampler,
    commits_ahead,
    first_publication,
    storm_topics,
)
from line_harness.chaos.scenarios import Ctx, _stream, _worker
from line_harness.kafka.topics import TopicSpec, create_topics
from line_harness.readers import committed_offsets, end_offsets

DENY_BYTES = "64"  # below any result or dead letter
DELIVERY_TIMEOUT_S = 120.0  # kafka-python's delivery_timeout_ms default; the worker does not change it


def _set_max_bytes(admin, topic: str, value) -> None:
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": value})])


def _merge(into: dict[int, dict[int, int]], more: dict[int, dict[int, int]]) -> None:
    for part, row in more.items():
        mine = into.setdefault(part, {})
        for off, t in row.items():
            mine[off] = min(mine.get(off, t), t)


def _outcomes(ctx: Ctx, topics: dict, before: dict) -> dict[int, dict[int, int]]:
    got = first_publication(ctx.client_kwargs, topics, read_committed=False)
    _merge(got, before)
    return got


def _missing(ctx: Ctx, topics: dict, outcomes: dict) -> list[tuple[int, int]]:
    return [(p, o) for p, end in end_offsets(ctx.client_kwargs, topics["frames"]).items() for o in range(end)
            if o not in outcomes.get(p, {})]


def _wait_all(ctx: Ctx, topics: dict, before: dict, timeout_s: float) -> tuple[dict, list]:
    """Until every frame has an outcome (or timeout): (first publications, frames still missing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = _outcomes(ctx, topics, before)
        missing = _missing(ctx, topics, got)
        if not missing or time.monotonic() > deadline:
            return got, missing
        time.sleep(2)


def _watch(worker, seconds: float, sampler: CommitSampler) -> dict:
    """Sample the alert gauge every second for `seconds`; note the committed offsets in the second half."""
    gauge, half, start = [], None, time.monotonic()
    while time.monotonic() - start < seconds:
        if half is None and time.monotonic() - start >= seconds / 2 and sampler.samples:
            half = sampler.samples[-1][1]
        try:
            gauge.append(worker.metric("inspection_publish_failing"))
        except RuntimeError:
            gauge.append(-1.0)
        time.sleep(1.0)
    last = sampler.samples[-1][1] if sampler.samples else None
    return {"gauge_max": max(gauge, default=0.0), "committed_mid": half, "committed_end": last,
            "frozen_second_half": half is not None and half == last, "alive": worker.running()}


def publish_faults(ctx: Ctx, outage_s: float = 20.0, broker_away_s: float = 0.0, fps: float = 10.0,
                   log=print) -> dict:
    """The phases of the module docstring; broker_away_s > 0 adds the broker-away phase (> 120 s to matter)."""
    from kafka import KafkaAdminClient
    topics, group = storm_topics(ctx.client_kwargs, 3), f"pubfault-{uuid.uuid4().hex[:8]}"
    w = _worker(ctx, topics, group, "publish-worker")
    sampler = CommitSampler(ctx.client_kwargs, group, topics["frames"], 0.2)
    sim = _stream(ctx, topics, fps, "publish", corrupt_rate=0.05)
    admin = KafkaAdminClient(**ctx.client_kwargs)
    phases: dict[str, dict] = {}
    before: dict[int, dict[int, int]] = {}  # outcomes read before the results topic was deleted
    try:
        time.sleep(outage_s / 2)
        for name, topic, restore in (("results-denied", topics["results"], ("DELETE", None)),
                                     ("dlq-denied", topics["dlq"], str(4 << 20))):
            _set_max_bytes(admin, topic, DENY_BYTES)
            phases[name] = _watch(w, outage_s, sampler)
            _set_max_bytes(admin, topic, restore)
            time.sleep(outage_s / 2)
            log(f"   {name}: {phases[name]}")
        sim.send_signal(signal.SIGSTOP)
        try:
            before, missing = _wait_all(ctx, topics, {}, 120)
            admin.delete_topics([topics["results"]])
            deleted_at = time.monotonic()
        finally:
            sim.send_signal(signal.SIGCONT)
        phase = _watch(w, outage_s, sampler)
        existing = admin.list_topics()
        phase["auto_created"] = topics["results"] in existing
        phase["missing_before_delete"] = len(missing)
        if topics["results"] not in existing:
            create_topics(ctx.client_kwargs, [TopicSpec(topics["results"], 3, dict(APPEND_TIME))])
        phase["seconds_missing_or_recreated"] = round(time.monotonic() - deleted_at, 1)
        phases["results-deleted"] = phase
        log(f"   results-deleted: {phase}")
        time.sleep(outage_s / 2)
        if broker_away_s and ctx.kafka is not None:
            admin.close()
            ctx.kafka.stop()
            phase = _watch(w, broker_away_s, sampler)
            ctx.kafka.start(timeout_s=120)
            admin = KafkaAdminClient(**ctx.client_kwargs)
            phase["longer_than_delivery_timeout"] = broker_away_s > DELIVERY_TIMEOUT_S
            phases["broker-away"] = phase
            log(f"   broker-away {broker_away_s:g}s: {phase}")
            time.sleep(outage_s / 2)
    finally:
        if sim.poll() is None:
            sim.send_signal(signal.SIGINT)
        sim.wait(120)
        admin.close()
    outcomes, missing = _wait_all(ctx, topics, before, 300)
    time.sleep(3)  # the last commit (every 0.5 s)
    gauge_end = w.metric("inspection_publish_failing") if w.running() else -1.0
    alive = w.running()
    code = w.stop(40)
    sampler.close()
    ahead = commits_ahead(sampler.samples, outcomes)
    committed = committed_offsets(ctx.client_kwargs, topics["frames"], group)
    ends = end_offsets(ctx.client_kwargs, topics["frames"])
    produced = sum(ends.values())
    # A frame with no outcome is a stall while the group has not committed past it, a loss once it has.
    lost = [(part, off) for part, off in missing if off < committed.get(part, 0)]
    checks = {
        "worker_stayed_up": alive and all(p["alive"] for p in phases.values()),
        "worker_exit_code_0": code == 0,
        "alert_raised": all(phases[n]["gauge_max"] >= 1 for n in ("results-denied", "dlq-denied")),
        "alert_cleared": gauge_end == 0,
        "stopped_committing": phases["results-denied"]["frozen_second_half"],
        "commits_ahead_of_results": len(ahead) == 0,
        "nothing_lost": not lost,
        "resumed_every_frame_published": not missing,
        "all_committed": committed == ends,
    }
    check = (f"produced {produced}, without outcome {len(missing)} (committed past: {len(lost)}), "
             f"commits ahead of results {len(ahead)}, "
             f"{len(sampler.samples)} commit samples; " + ", ".join(f"{k} {'ok' if v else 'FAILED'}"
                                                                    for k, v in checks.items()))
    return {"scenario": "publish-path faults" + (f" (+ broker away {broker_away_s:g} s)" if broker_away_s else ""),
            "phases": phases, "produced": produced, "unpublished": len(missing), "unpublished_examples": missing[:10],
            "lost": len(lost), "committed": committed, "end_offsets": ends,
            "commits_ahead_of_results": len(ahead), "ahead_examples": ahead[:10], "checks": checks,
            "worker_exit_code": code, "check": check, "passed": all(checks.values())}

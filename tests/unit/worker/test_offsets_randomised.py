"""A seeded random walk over polls, acks, revokes (some landing mid-registration), re-assignments
with and without adoption, rewinds and commits, driving the real ConsumerLoop and OffsetTracker.

Checked at every commit (periodic, forced and on revocation): no committed offset passes a frame
that has no result on the broker. 300 walks x 400 steps; the seed of a failing walk is in the message.
"""

from __future__ import annotations

import random

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from tests.unit.worker.fakes import FakeClock, FakeConsumer, FakeDecoder, FakePublisher, record
from worker.consumer import ConsumerLoop
from worker.halts import JudgingHalts
from worker.health import Health
from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.pipeline import Pipeline
from worker.settings import WorkerSettings

PARTS = [TopicPartition("frames", p) for p in range(3)]
LOG_END = 10_000  # the frames topic never runs dry during a walk


class LogConsumer(FakeConsumer):
    """Polls consecutive offsets from each partition's position; checks every commit it is asked for."""

    def __init__(self, rng: random.Random, published: set, committed: dict):
        super().__init__(assignment=())
        self._rng = rng
        self._published = published
        self.group_committed = committed  # what the broker holds per partition (any member's commits)

    def poll(self, timeout_ms=0, max_records=None):
        out = {}
        for tp in sorted(self._assignment - self._paused):
            if tp not in self.positions:
                self.positions[tp] = self.group_committed.get(tp, 0)
            n = self._rng.randint(0, 5)
            start = self.positions[tp]
            if n:
                out[tp] = [record(o, tp) for o in range(start, min(LOG_END, start + n))]
                self.positions[tp] = start + n
        return out

    def commit(self, offsets, timeout_ms=None):
        check_commit({tp: m.offset for tp, m in offsets.items()}, self._published)
        for tp, meta in offsets.items():
            self.group_committed[tp] = meta.offset
        super().commit(offsets, timeout_ms)


def check_commit(offsets: dict, published: set) -> None:
    """The invariant: every offset below a committed one has a result on the broker."""
    for tp, offset in offsets.items():
        missing = [o for o in range(offset) if (tp, o) not in published]
        assert not missing, f"commit {tp.partition}@{offset} passes unpublished frames {missing[:10]}"


def _walk(seed: int, steps: int = 400) -> None:
    rng = random.Random(seed)
    published: set = set()
    committed: dict = {}
    metrics = WorkerMetrics(CollectorRegistry())
    tracker = OffsetTracker()
    pipe = Pipeline(tracker, FakePublisher(tracker, ack=False), metrics, Health(metrics), JudgingHalts(metrics, 30))
    consumer = LogConsumer(rng, published, committed)
    pending_landing: list = []  # a rebalance callback to land mid-registration
    state = {"revoked": set()}

    def land(_n):
        if pending_landing and rng.random() < 0.3:
            pending_landing.pop()()

    clock = FakeClock()
    loop = ConsumerLoop(WorkerSettings(max_batch_size=64, max_queued_batches=1000), pipe, lambda: consumer,
                        FakeDecoder(before_submit=land), clock=clock)
    in_flight: list = []  # (tp, offset, generation)

    def revoke():
        """Eager protocol: every partition goes; the listener commits what revocation allows."""
        owned = consumer.assignment()
        offsets = loop.prepare_revoke(owned)
        check_commit(offsets, published)  # the listener commits these
        for tp, off in offsets.items():
            committed[tp] = off
        consumer.set_assignment(set())
        state["revoked"] = owned

    def assign(adopt_polls: int):
        """The new assignment: kafka-python keeps the position of a partition it had before the revoke."""
        new = set(rng.sample(PARTS, rng.randint(1, len(PARTS))))
        for tp in PARTS:
            if tp not in new or tp not in state["revoked"]:
                consumer.positions.pop(tp, None)  # fetched from the group's committed offset
            if tp not in new and rng.random() < 0.5:  # another member judges some frames meanwhile
                base = committed.get(tp, 0)
                done = rng.randint(0, 8)
                published.update((tp, o) for o in range(base, base + done))
                committed[tp] = base + done
        consumer.set_assignment(new)
        for _ in range(adopt_polls):  # polled before on_assigned runs on the IO thread
            loop.poll_once()
            collect()
        loop.on_assigned(new)
        state["revoked"] = set()

    def collect():
        while not pipe.items.empty():
            item = pipe.items.get_nowait()
            in_flight.append((item.source, item.offset, item.generation))

    consumer.set_assignment(PARTS)
    loop.on_assigned(set(PARTS))
    for _ in range(steps):
        op = rng.random()
        if op < 0.35:
            loop.poll_once()
            collect()
        elif op < 0.65 and in_flight:
            for _ in range(rng.randint(1, 6)):
                if not in_flight:
                    break
                tp, off, gen = in_flight.pop(rng.randrange(len(in_flight)))
                if rng.random() < 0.9:  # a stale generation's frame is sometimes still published
                    published.add((tp, off))
                    tracker.acknowledge(tp, off, gen)
        elif op < 0.75 and consumer.assignment() and not pending_landing:
            if rng.random() < 0.3:  # lands while the next poll's records are registered
                pending_landing.append(revoke)
            elif rng.random() < 0.3:  # revoke and the new assignment both land mid-registration
                pending_landing.append(lambda: (revoke(), assign(0)))
            else:
                revoke()
        elif op < 0.85 and not consumer.assignment() and not pending_landing:
            assign(rng.randint(0, 2))
        else:
            clock.advance(1.0)
            loop.commit(force=rng.random() < 0.5)


@pytest.mark.parametrize("block", range(6))
def test_no_commit_ever_passes_an_unpublished_frame(block):
    for seed in range(block * 50, block * 50 + 50):
        try:
            _walk(seed)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: {exc}") from None

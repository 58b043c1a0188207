"""The interleavings of issue 11 that committed past frames without a result, replayed with the real
ConsumerLoop and OffsetTracker against a fake consumer:

#5: frames adopted (polled before on_assigned ran) and then rewound must not let the commit jump
    past the re-polled frames;
#6: a revoke landing while the consumer thread registers its last poll must not re-create state
    for the lost partition, and nothing is committed for a partition outside the assignment.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tests.unit.worker.fakes import TP, FakeClock, FakeConsumer, FakeDecoder, FakePublisher, record
from worker.consumer import ConsumerLoop
from worker.halts import JudgingHalts
from worker.health import Health
from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.pipeline import Pipeline
from worker.settings import WorkerSettings


def _loop(decoder=None):
    metrics = WorkerMetrics(CollectorRegistry())
    tracker = OffsetTracker()
    pipe = Pipeline(tracker, FakePublisher(tracker, ack=False), metrics, Health(metrics), JudgingHalts(metrics, 30))
    consumer = FakeConsumer()
    loop = ConsumerLoop(WorkerSettings(max_batch_size=64), pipe, lambda: consumer, decoder or FakeDecoder(),
                        clock=FakeClock())
    return loop, consumer, pipe


def _drain(pipe) -> dict[int, int]:
    """offset -> generation of every queued WorkItem."""
    out = {}
    while not pipe.items.empty():
        item = pipe.items.get_nowait()
        out[item.offset] = item.generation
    return out


def test_5_adopted_then_rewound_frames_never_let_the_commit_pass_repolled_ones():
    loop, consumer, pipe = _loop()
    tracker = pipe.tracker
    loop.on_assigned({TP})
    consumer.polls = [{TP: [record(o) for o in range(100, 110)]}]
    loop.poll_once()
    first = _drain(pipe)
    for off in (100, 101, 102):
        tracker.acknowledge(TP, off, first[off])
    loop.commit(force=True)
    assert consumer.commits[-1] == {TP: 103}
    assert loop.prepare_revoke({TP}) == {}  # 103-109 in flight: dropped, to be redone
    consumer.set_assignment({TP})  # handed straight back; kafka-python keeps the position (110)
    consumer.polls = [{TP: [record(o) for o in range(110, 120)]}]
    loop.poll_once()  # adopted: polled before on_assigned runs
    adopted = _drain(pipe)
    loop.on_assigned({TP})
    assert consumer.seeks == [(TP, 103)]
    for off, gen in adopted.items():  # their results arrive after the rewind
        tracker.acknowledge(TP, off, gen)
    loop.commit(force=True)
    assert all(c[TP] <= 103 for c in consumer.commits), consumer.commits  # was 120 (103-109 unpublished)
    consumer.polls = [{TP: [record(o) for o in range(103, 120)]}]
    loop.poll_once()
    for off, gen in _drain(pipe).items():
        tracker.acknowledge(TP, off, gen)
    loop.commit(force=True)
    assert consumer.commits[-1] == {TP: 120}


def test_6_revoke_landing_while_the_last_poll_is_registered_commits_nothing_there():
    holder = {}

    def revoke_midway(n):
        if n == 2:  # the IO thread revokes right after the third of five records was registered
            holder["commit"] = holder["loop"].prepare_revoke({TP})
            holder["consumer"].set_assignment(set())

    loop, consumer, pipe = _loop(FakeDecoder(before_submit=revoke_midway))
    holder.update(loop=loop, consumer=consumer)
    loop.on_assigned({TP})
    consumer.polls = [{TP: [record(o) for o in range(200, 205)]}]
    assert loop.poll_once() == 3  # 203 and 204 refused: the partition was lost while registering them
    assert holder["commit"] == {} and TP not in pipe.tracker.tracked()
    for off, gen in _drain(pipe).items():
        pipe.tracker.acknowledge(TP, off, gen)
    consumer.polls = [{TP: [record(o) for o in range(205, 211)]}]  # records fetched before the revoke
    loop.poll_once()
    for off, gen in _drain(pipe).items():
        pipe.tracker.acknowledge(TP, off, gen)
    loop.commit(force=True)
    assert consumer.commits == []  # was 210 with 200-204 unpublished


def test_6_partition_handed_straight_back_mid_registration_is_rewound_to_the_refused_records():
    holder = {}

    def revoke_and_reassign(n):
        if n == 2:
            holder["loop"].prepare_revoke({TP})
            holder["consumer"].set_assignment({TP})
            holder["loop"].on_assigned({TP})

    loop, consumer, pipe = _loop(FakeDecoder(before_submit=revoke_and_reassign))
    holder.update(loop=loop, consumer=consumer)
    loop.on_assigned({TP})
    consumer.polls = [{TP: [record(o) for o in range(200, 205)]}]
    loop.poll_once()
    # on_assigned rewound to the registered-then-dropped 200; the refused 203-204 never move it forward
    assert consumer.seeks[0] == (TP, 200) and consumer.positions[TP] == 200

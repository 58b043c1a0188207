"""Both loops with fake Kafka clients and a fake model: what is polled is registered, queued and
counted; nothing is committed before the broker acknowledged it; consumption pauses when too much
is in flight; the inference loop turns a batch into results and dead letters."""

from __future__ import annotations

import json
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from line_contracts.events import DeadLetterReason
from tests.unit.worker.fakes import (
    TP,
    FakeClock,
    FakeConsumer,
    FakeDecoder,
    FakeModel,
    FakeProducer,
    FakePublisher,
    good_frame,
    record,
    work_item,
)
from worker.batching import END_OF_STREAM, Batcher
from worker.consumer import ConsumerLoop
from worker.decode import Rejected
from worker.halts import JudgingHalts
from worker.health import Health
from worker.inference import InferenceLoop
from worker.metrics import WorkerMetrics
from worker.model import ServingModel
from worker.offsets import OffsetTracker
from worker.pipeline import Pipeline
from worker.publish import AtLeastOncePublisher, OutRecord
from worker.results import RecordFactory
from worker.settings import WorkerSettings


def _pipeline(publisher_factory):
    metrics = WorkerMetrics(CollectorRegistry())
    tracker = OffsetTracker()
    return Pipeline(tracker, publisher_factory(tracker, metrics), metrics, Health(metrics), JudgingHalts(metrics, 30))


def test_consumer_loop_commits_only_acknowledged_frames_and_pauses_when_full():
    clock, consumer, producer = FakeClock(), FakeConsumer(), FakeProducer()
    pipe = _pipeline(lambda tracker, metrics: AtLeastOncePublisher(producer, tracker, metrics))
    settings = WorkerSettings(max_batch_size=2, max_queued_batches=1, commit_interval_s=0.5)
    loop = ConsumerLoop(settings, pipe, lambda: consumer, FakeDecoder(), clock=clock)
    loop.on_assigned({TP})
    consumer.polls = [{TP: [record(0), record(1)]}, {TP: [record(2)]}]
    assert loop.poll_once() == 2
    items = [pipe.items.get_nowait() for _ in range(2)]
    assert [i.offset for i in items] == [0, 1] and consumer.commits == []
    assert pipe.metrics.registry.get_sample_value("inspection_frames_consumed_total",
                                                  {"line": "line-1", "camera": "cam-0"}) == 1
    assert loop.poll_once() == 0 and consumer.paused() == {TP}  # 2 in flight = the cap
    pipe.publisher.publish([OutRecord("results", None, b"r", TP, i.offset, i.generation) for i in items])
    producer.ack(1)
    clock.advance(0.5)
    assert loop.poll_once() == 1  # 1 in flight = half the cap: resumed, polled frame 2
    assert consumer.commits == [] and not consumer.paused()  # frame 0 has no result on the broker yet
    producer.ack(0)
    clock.advance(0.5)
    loop.poll_once()
    assert consumer.commits == [{TP: 2}]  # frame 2 is still in flight


def test_consumer_loop_commits_at_most_every_interval():
    clock, consumer = FakeClock(), FakeConsumer()
    pipe = _pipeline(lambda tracker, metrics: FakePublisher(tracker))
    loop = ConsumerLoop(WorkerSettings(commit_interval_s=0.5), pipe, lambda: consumer, FakeDecoder(), clock=clock)
    loop.on_assigned({TP})
    for offset in range(3):
        consumer.polls = [{TP: [record(offset)]}]
        loop.poll_once()
        item = pipe.items.get_nowait()
        pipe.publisher.publish([OutRecord("results", None, b"r", TP, item.offset, item.generation)])
        clock.advance(0.2)
    loop.poll_once()
    assert consumer.commits == [{TP: 3}]  # one commit for three frames: the polls between were within 0.5 s


def _serving(model) -> ServingModel:
    return ServingModel(model, "fake", "7", "fake", 0.5, 64, 64)


def test_inference_loop_judges_good_frames_and_dead_letters_rejects():
    clock = FakeClock()
    pipe = _pipeline(lambda tracker, metrics: FakePublisher(tracker))
    pipe.tracker.assign([TP])
    gens = [pipe.tracker.register(TP, off) for off in range(3)]
    pipe.items.put(work_item(0, good_frame(0, fill=0), clock(), generation=gens[0]))
    pipe.items.put(work_item(1, Rejected(DeadLetterReason.TRUNCATED, "cut"), clock(), generation=gens[1]))
    pipe.items.put(work_item(2, good_frame(2, fill=255), clock(), generation=gens[2]))
    pipe.items.put(END_OF_STREAM)
    model = FakeModel()
    models = SimpleNamespace(current=_serving(model), take_update=lambda: None)
    loop = InferenceLoop(pipe, Batcher(pipe.items, 8, 10, clock=clock), models,
                         RecordFactory("results", "dlq", "w-1", 1024), [1, 2, 4, 8], "fit", pipe.halts)
    loop.run()
    assert loop.error is None and model.batches == [2]  # two good frames, padded to the 2-bucket
    by_topic = {}
    for rec in pipe.publisher.published:
        by_topic.setdefault(rec.topic, []).append(json.loads(rec.value))
    assert [(e["frame"]["frame_seq"], e["verdict"]) for e in by_topic["results"]] == [(0, "ok"), (2, "defect")]
    assert [(d["source_offset"], d["reason"]) for d in by_topic["dlq"]] == [(1, "truncated")]
    assert pipe.tracker.to_commit() == {TP: 3}
    get = pipe.metrics.registry.get_sample_value
    assert get("inspection_frames_dead_lettered_total", {"reason": "truncated"}) == 1
    assert get("inspection_frames_judged_total", {"line": "line-1", "camera": "cam-0", "verdict": "ok"}) == 1


def test_frames_of_a_partition_rewound_meanwhile_are_set_aside_and_counted_as_redone():
    clock = FakeClock()
    pipe = _pipeline(lambda tracker, metrics: FakePublisher(tracker))
    pipe.tracker.assign([TP])
    stale = [pipe.tracker.register(TP, off) for off in range(2)]
    pipe.tracker.rewind(TP)  # a rebalance handed the partition back: offsets 0-1 are polled again
    fresh = [pipe.tracker.register(TP, off) for off in range(2)]
    for off, gen in [(0, stale[0]), (1, stale[1]), (0, fresh[0]), (1, fresh[1])]:
        pipe.items.put(work_item(off, good_frame(off, fill=0), clock(), generation=gen))
    pipe.items.put(END_OF_STREAM)
    model = FakeModel()
    loop = InferenceLoop(pipe, Batcher(pipe.items, 8, 10, clock=clock),
                         SimpleNamespace(current=_serving(model), take_update=lambda: None),
                         RecordFactory("results", "dlq", "w-1", 1024), [1, 2, 4, 8], "fit", pipe.halts)
    loop.run()
    assert loop.error is None and model.batches == [2]  # only the current generation is judged
    assert [json.loads(r.value)["frame"]["frame_seq"] for r in pipe.publisher.published] == [0, 1]
    get = pipe.metrics.registry.get_sample_value
    assert get("inspection_frames_redone_total", {"reason": "rebalance"}) == 2
    assert get("inspection_frames_redone_total", {"reason": "halted"}) == 0


def test_a_record_the_client_cannot_read_is_dead_lettered_and_skipped():
    from kafka.errors import CorruptRecordError

    class Unreadable(FakeConsumer):
        def poll(self, timeout_ms=0, max_records=None):
            if self.positions.get(TP) == 5:
                raise CorruptRecordError("Found invalid record structure")
            return super().poll(timeout_ms, max_records)

    clock, consumer = FakeClock(), Unreadable()
    pipe = _pipeline(lambda tracker, metrics: FakePublisher(tracker))
    loop = ConsumerLoop(WorkerSettings(), pipe, lambda: consumer, FakeDecoder(), clock=clock)
    loop.on_assigned({TP})
    consumer.positions[TP] = 5
    consumer.polls = [{TP: [record(6), record(7)]}]
    assert loop.poll_once() == 0  # the poll raised: the worker goes on
    item = pipe.items.get_nowait()
    rejected = item.decoded.result()
    assert (item.offset, rejected.reason) == (5, DeadLetterReason.UNREADABLE_RECORD)
    assert consumer.seeks == [(TP, 6)]
    assert loop.poll_once() == 2  # and reads on behind it
    assert pipe.metrics.registry.get_sample_value("inspection_poll_errors_total") == 1


def test_joining_refreshes_the_topic_metadata_right_after_subscribing_and_survives_a_failed_refresh(caplog):
    """kafka-python's group leader re-joins right after its first assignment unless its view of the topic was
    refreshed after subscribe() (worker/consumer.py ConsumerLoop._join); the refresh failing must not stop the join."""
    import threading

    from kafka.errors import KafkaTimeoutError

    consumer = FakeConsumer()
    pipe = _pipeline(lambda tracker, metrics: AtLeastOncePublisher(FakeProducer(), tracker, metrics))
    loop = ConsumerLoop(WorkerSettings(), pipe, lambda: consumer, FakeDecoder(), clock=FakeClock())
    loop.subscribe(threading.Event())
    assert consumer.calls == ["subscribe", "topics"] and consumer.listener is not None

    def no_metadata():
        raise KafkaTimeoutError("metadata")

    refused = FakeConsumer()
    refused.topics = no_metadata
    loop = ConsumerLoop(WorkerSettings(), pipe, lambda: refused, FakeDecoder(), clock=FakeClock())
    loop.subscribe(threading.Event())
    assert refused.calls == ["subscribe"] and refused.listener is not None
    assert "could not refresh the topic metadata" in caplog.text

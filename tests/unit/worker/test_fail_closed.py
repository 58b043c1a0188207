"""Fail closed, and every output bounded: a failing model or a non-finite score halts the batch's
partitions (nothing published or committed, rewound, paused, retried later); dead letters always
fit the topic; metric labels from headers stay bounded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from line_contracts.events import DeadLetterReason, DeadLetterRecord
from tests.unit.worker.fakes import (
    TP,
    FakeClock,
    FakeConsumer,
    FakeDecoder,
    FakeModel,
    FakePublisher,
    good_frame,
    record,
)
from worker.batching import END_OF_STREAM, Batcher, WorkItem
from worker.consumer import ConsumerLoop
from worker.halts import JudgingHalts
from worker.health import Health
from worker.inference import InferenceLoop
from worker.metrics import OTHER, UNKNOWN, WorkerMetrics
from worker.model import ServingModel
from worker.offsets import OffsetTracker
from worker.pipeline import Pipeline
from worker.results import RecordFactory
from worker.settings import WorkerSettings


def _stack(model: FakeModel, clock: FakeClock):
    metrics = WorkerMetrics(CollectorRegistry())
    tracker = OffsetTracker()
    halts = JudgingHalts(metrics, retry_after_s=30, clock=clock)
    health = Health(metrics, clock=clock)
    health.alarms.append(halts.describe)
    pipe = Pipeline(tracker, FakePublisher(tracker), metrics, health, halts)
    consumer = FakeConsumer()
    loop = ConsumerLoop(WorkerSettings(), pipe, lambda: consumer, FakeDecoder(), clock=clock)
    models = SimpleNamespace(current=ServingModel(model, "fake", "1", "fake", 0.5, 64, 64), take_update=lambda: None)
    inference = InferenceLoop(pipe, Batcher(pipe.items, 8, 10, idle_wait_s=0.01, clock=clock), models,
                              RecordFactory("results", "dlq", "w", 1024), [1, 2, 4, 8], "fit", halts)
    return loop, consumer, inference, pipe, models


@pytest.mark.parametrize("model,kind", [(FakeModel(scores=[float("nan"), 0.2]), "non_finite"),
                                        (FakeModel(error=RuntimeError("CUDA error")), "error")])
def test_a_failing_model_halts_its_partitions_and_nothing_is_committed(model, kind):
    clock = FakeClock()
    loop, consumer, inference, pipe, models = _stack(model, clock)
    loop.on_assigned({TP})
    consumer.polls = [{TP: [record(10), record(11)]}]
    loop.poll_once()
    pipe.items.put(END_OF_STREAM)
    inference.run()
    assert inference.error is None and pipe.publisher.published == []  # no verdict, no dead letter
    assert pipe.metrics.registry.get_sample_value("inspection_model_failures_total", {"kind": kind}) == 1
    assert pipe.metrics.registry.get_sample_value("inspection_judging_halted_partitions") == 1
    ok, text = pipe.health.live()
    assert ok and "judging halted" in text and kind in text  # alarmed, but a restart would not help
    loop.poll_once()  # the consumer applies the halt
    assert consumer.seeks == [(TP, 10)] and TP in consumer.paused()
    loop.commit(force=True)
    assert consumer.commits == []
    clock.advance(30)
    loop.poll_once()
    assert TP not in consumer.paused() and pipe.metrics.registry.get_sample_value(
        "inspection_judging_halted_partitions") == 0


def test_a_new_model_version_retries_halted_partitions_at_once():
    clock = FakeClock()
    loop, consumer, inference, pipe, models = _stack(FakeModel(error=RuntimeError("bad")), clock)
    pipe.halts.halt({TP}, "error: bad")
    pipe.halts.model_replaced()
    assert pipe.halts.take_resumes() == {TP} and not pipe.halts.halted()


def _item(key, value, headers) -> WorkItem:
    return WorkItem(TopicPartition("frames", 0), 7, 1, key, value, headers, 0, 0.0, None)


def test_a_dead_letter_always_fits_the_topic():
    factory = RecordFactory("results", "dlq", "w", 512 * 1024, max_record_bytes=1_000_000)
    headers = [(f"x-pad-{i}", b"p" * 12_000) for i in range(100)] + [("n" * 5000, b"v")]
    rec = factory.dead_letter(_item(b"k" * 600_000, b"\x01" * 950_000, headers), DeadLetterReason.KEY_TOO_LARGE,
                              "e" * 100_000)
    assert len(rec.value) + len(rec.key) <= 1_000_000
    letter = DeadLetterRecord.model_validate_json(rec.value)
    assert letter.source_key_truncated and letter.source_key_size == 600_000
    assert letter.original_headers_truncated and letter.original_value_truncated
    assert letter.original_value_size == 950_000 and 0 < len(letter.original_value) < 950_000
    assert len(letter.error) == 2000 and len(rec.key) == 512


def test_a_small_dead_letter_keeps_everything():
    factory = RecordFactory("results", "dlq", "w", 512 * 1024)
    rec = factory.dead_letter(_item(b"cam-1", b"abc", [("camera_id", b"cam-1")]), DeadLetterReason.TRUNCATED, "cut")
    doc = json.loads(rec.value)
    assert not (doc["source_key_truncated"] or doc["original_headers_truncated"] or doc["original_value_truncated"])


def test_metric_labels_from_headers_stay_bounded():
    metrics = WorkerMetrics(CollectorRegistry(), max_label_values=3)
    seen = {metrics.line_camera("line-1", f"cam-{i}")[1] for i in range(200)}
    assert seen == {"cam-0", "cam-1", "cam-2", OTHER}
    assert metrics.line_camera("line 1\n", "cam-0") == (UNKNOWN, "cam-0")
    assert metrics.frame_labels([("line_id", b"\xff"), ("camera_id", b"x" * 500)]) == (UNKNOWN, UNKNOWN)


def test_the_score_is_never_clamped_into_a_verdict():
    clock = FakeClock()
    loop, consumer, inference, pipe, models = _stack(FakeModel(scores=[float("inf")]), clock)
    pipe.tracker.assign([TP])
    gen = pipe.tracker.register(TP, 0)
    from concurrent.futures import Future
    fut: Future = Future()
    fut.set_result(good_frame())
    pipe.items.put(WorkItem(TP, 0, gen, None, b"x", [], 0, clock(), fut))
    pipe.items.put(END_OF_STREAM)
    inference.run()
    assert pipe.publisher.published == [] and np.isinf(inference._models.current.model.scores[0])

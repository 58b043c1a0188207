"""Stand-ins for what the worker's loops talk to (Kafka clients, the model, the clock), so unit tests
can pin batching, offsets and publish->commit ordering without a broker or sleeps."""

from __future__ import annotations

import time
from collections import namedtuple
from concurrent.futures import Future
from typing import Optional

import cv2
import numpy as np
from kafka import TopicPartition

from line_harness.frames import frame_headers
from worker.batching import WorkItem
from worker.decode import DecodedFrame

TP = TopicPartition("frames", 0)
TP1 = TopicPartition("frames", 1)
Record = namedtuple("Record", "topic partition offset key value headers")


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class FakeSendFuture:
    """kafka-python's FutureRecordMetadata surface: callbacks fire when the test says the broker answered."""

    def __init__(self):
        self._ok, self._err = [], []

    def add_callback(self, fn, *args):
        self._ok.append((fn, args))
        return self

    def add_errback(self, fn, *args):
        self._err.append((fn, args))
        return self

    def succeed(self) -> None:
        """The broker acknowledged the record."""
        for fn, args in self._ok:
            fn(*args, None)

    def fail(self, exc: BaseException) -> None:
        """Delivery failed with `exc`."""
        for fn, args in self._err:
            fn(*args, exc)


class FakeProducer:
    """Records sends; acknowledges nothing until the test calls ack()/fail(); transactions are logged."""

    def __init__(self, fail_commits: int = 0):
        self.sent: list[tuple[str, Optional[bytes], bytes, FakeSendFuture]] = []
        self.calls: list[str] = []
        self._fail_commits = fail_commits

    def send(self, topic, value=None, key=None, headers=None):
        future = FakeSendFuture()
        self.sent.append((topic, key, value, future))
        self.calls.append(f"send {topic}")
        return future

    def ack(self, index: int) -> None:
        """The broker acknowledged the index-th sent record."""
        self.sent[index][3].succeed()

    def fail(self, index: int, exc: BaseException) -> None:
        """Delivery of the index-th sent record failed."""
        self.sent[index][3].fail(exc)

    def flush(self, timeout=None):
        self.calls.append("flush")

    def init_transactions(self):
        self.calls.append("init")

    def begin_transaction(self):
        self.calls.append("begin")

    def send_offsets_to_transaction(self, offsets, group_metadata):
        self.calls.append(f"offsets {sorted((tp.partition, o.offset) for tp, o in offsets.items())}")

    def commit_transaction(self):
        if self._fail_commits:
            self._fail_commits -= 1
            from kafka.errors import KafkaTimeoutError
            raise KafkaTimeoutError("commit timed out")
        self.calls.append("commit")

    def abort_transaction(self):
        self.calls.append("abort")


class FakeConsumer:
    """The KafkaConsumer surface the ConsumerLoop uses; `polls` is a list of {tp: [Record]} to hand out."""

    def __init__(self, assignment=(TP,)):
        self.polls: list[dict] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self._assignment = set(assignment)
        self._paused: set = set()
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.positions: dict[TopicPartition, int] = {}
        self.listener = None
        self.calls: list[str] = []  # subscribe / topics, in order

    def poll(self, timeout_ms=0, max_records=None):
        if not self.polls or (self._assignment and self._assignment <= self._paused):
            return {}
        polled = self.polls.pop(0)
        for tp, records in polled.items():
            self.positions[tp] = records[-1].offset + 1
        return polled

    def set_assignment(self, partitions) -> None:
        """What the group coordinator assigned (kafka-python makes it live before the callback runs)."""
        self._assignment = set(partitions)
        self._paused &= self._assignment

    def commit(self, offsets, timeout_ms=None):
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def assignment(self):
        return set(self._assignment)

    def paused(self):
        return set(self._paused)

    def pause(self, *tps):
        self._paused |= set(tps)

    def resume(self, *tps):
        self._paused -= set(tps)

    def partitions_for_topic(self, topic):
        return {0}

    def subscribe(self, topics, listener=None):
        self.listener = listener
        self.calls.append("subscribe")

    def topics(self):
        """A metadata round trip in kafka-python; the loop calls it right after subscribe()."""
        self.calls.append("topics")
        return {TP.topic}

    def group_metadata(self):
        return "group-metadata"

    def end_offsets(self, tps):
        return {tp: 0 for tp in tps}

    def position(self, tp, timeout_ms=None):
        return self.positions.get(tp)

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))
        self.positions[tp] = offset

    def close(self, autocommit=False):
        pass


class FakePublisher:
    """Publisher stand-in: keeps what it was given; the broker acknowledges at once when `ack` is set."""

    def __init__(self, tracker=None, ack: bool = True):
        self.published: list = []
        self.fatal = None
        self._tracker = tracker
        self._ack = ack

    def publish(self, records) -> None:
        self.published.extend(records)
        if self._ack and self._tracker is not None:
            for rec in records:
                self._tracker.acknowledge(rec.source, rec.offset, rec.generation)

    def flush(self, timeout_s: float) -> None:
        pass

    def check(self) -> None:
        pass

    def describe(self) -> str:
        return ""


class FakeDecoder:
    """DecodePool stand-in: every frame decodes at once to a blank 64x64 image (or what `results` says).

    `before_submit(n)` runs before the n-th submit: a test lands a rebalance callback there, the way
    kafka-python's IO thread can while the consumer thread registers a poll's records.
    """

    def __init__(self, results: Optional[dict[int, object]] = None, before_submit=None):
        self.results = results or {}
        self.submitted = 0
        self.before_submit = before_submit

    def submit(self, value, headers, key=None) -> Future:
        if self.before_submit is not None:
            self.before_submit(self.submitted)
        fut: Future = Future()
        fut.set_result(self.results.get(self.submitted, good_frame()))
        self.submitted += 1
        return fut


class FakeModel:
    """LoadedModel stand-in: the score of a frame is its mean pixel / 255, or it raises `error`.

    With `map_shape` (h', w') it has a defect map: the frame's pixels / 255 at the map's size.
    """

    def __init__(self, error: Optional[BaseException] = None, scores: Optional[list[float]] = None,
                 map_shape: Optional[tuple[int, int]] = None):
        self.error = error
        self.scores = scores
        self.map_shape = map_shape
        self.batches: list[int] = []
        self.map_requests: list[bool] = []

    def judge(self, batch: np.ndarray, want_maps: bool = True):
        self.map_requests.append(want_maps)
        scores = self.predict(batch)
        if not want_maps or self.map_shape is None:
            return scores, None
        h, w = self.map_shape
        return scores, np.stack([cv2.resize(f[..., 0], (w, h), interpolation=cv2.INTER_AREA) / 255.0 for f in batch])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        if self.error is not None:
            raise self.error
        if self.scores is not None:
            return np.array(self.scores[:len(batch)] + [0.0] * (len(batch) - len(self.scores)), np.float32)
        return batch.reshape(len(batch), -1).mean(axis=1) / 255.0


def good_frame(index: int = 0, fill: int = 0) -> DecodedFrame:
    """A decoded 64x64 frame with valid headers."""
    return DecodedFrame(frame_headers(index), np.full((64, 64), fill, np.uint8), 0.001)


def work_item(offset: int, result, polled: float, tp: TopicPartition = TP, generation: int = 1) -> WorkItem:
    """A polled frame whose decode already finished with `result`."""
    fut: Future = Future()
    fut.set_result(result)
    return WorkItem(tp, offset, generation, None, b"x", [], time.time_ns(), polled, fut)


def record(offset: int, tp: TopicPartition = TP, value: bytes = b"x", headers=None) -> Record:
    """A consumer record as kafka-python returns it (the fields the worker reads)."""
    return Record(tp.topic, tp.partition, offset, b"cam", value, headers or frame_headers(offset).to_kafka())

"""Getting result events and dead letters onto the broker, and only then marking frames done.

`Publisher` is what the loops rely on; two implementations:

At-least-once (`AtLeastOncePublisher`): an idempotent producer (acks=all) sends asynchronously;
the delivery callback acknowledges the source offset in the OffsetTracker, which is what the
consumer thread commits. A failed delivery is queued and re-sent (never skipped); a non-retriable
error is fatal: the worker stops without committing anything more.

Exactly-once (`worker.transactions.TransactionalPublisher`): one transaction per batch holds its
results, its dead letters and its source offsets.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# Result events are small; a dead letter carries at most dead_letter_max_value_bytes (base64) plus JSON.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Errors that may be marked non-retriable yet a later re-send can cure (the broker was away longer
# than delivery_timeout_ms, say).
_RETRIABLE_ANYWAY = (KafkaTimeoutError, KafkaConnectionError)


class FatalPublishError(RuntimeError):
    """The producer cannot deliver and retrying will not help; the worker must stop without committing."""


@dataclass
class OutRecord:
    """One record to publish for the source frame at (source, offset) of partition generation `generation`."""

    topic: str
    key: Optional[bytes]
    value: bytes
    source: TopicPartition
    offset: int
    generation: int


class Publisher(Protocol):
    """What the consumer and inference loops need from a publisher.

    Contract: a source offset is acknowledged in the OffsetTracker only after the broker has
    acknowledged the record(s) of that frame; nothing else marks a frame done.
    """

    fatal: Optional[BaseException]

    def publish(self, records: Sequence[OutRecord]) -> None:
        """Publish `records` (possibly none) and send again what failed earlier and is due."""

    def flush(self, timeout_s: float) -> None:
        """Wait until everything handed over is acknowledged, or the time is up; raise if delivery failed for good."""

    def check(self) -> None:
        """Raise FatalPublishError if delivery failed for good."""


def producer_kwargs(settings: WorkerSettings, transactional: bool) -> dict:
    """KafkaProducer arguments: idempotent, acks=all, plus a stable transactional id in exactly-once mode."""
    kw = settings.kafka_client_kwargs()
    kw.update(acks="all", enable_idempotence=True, linger_ms=5, max_request_size=MAX_REQUEST_BYTES,
              compression_type=None, client_id=f"{settings.instance_id}-producer")
    if transactional:
        # Stable per pod: a restarted pod fences its dead predecessor's open transaction.
        kw["transactional_id"] = f"{settings.group_id}-{settings.instance_id}"
    return kw


class AtLeastOncePublisher:
    """Asynchronous sends; delivery callbacks acknowledge offsets; failed deliveries are re-sent."""

    def __init__(self, producer: KafkaProducer, tracker: OffsetTracker, metrics: WorkerMetrics,
                 retry_backoff_s: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self._producer = producer
        self._tracker = tracker
        self._metrics = metrics
        self._backoff_s = retry_backoff_s
        self._clock = clock
        self._retry: "queue.Queue[tuple[float, OutRecord]]" = queue.Queue()
        self.fatal: Optional[BaseException] = None

    def publish(self, records: Sequence[OutRecord]) -> None:
        """Hand records to the producer (returns before the broker acknowledges them); re-send due failures."""
        self.check()
        for rec in records:
            self._send(rec)
        self._resend_due()

    def _send(self, rec: OutRecord) -> None:
        future = self._producer.send(rec.topic, value=rec.value, key=rec.key)
        future.add_callback(self._delivered, rec)
        future.add_errback(self._failed, rec)

    def _delivered(self, rec: OutRecord, _metadata) -> None:
        self._tracker.acknowledge(rec.source, rec.offset, rec.generation)

    def _failed(self, rec: OutRecord, exc: BaseException) -> None:
        # Runs on the producer's I/O thread: never send from here, hand it to the inference loop.
        if isinstance(exc, KafkaError) and not exc.retriable and not isinstance(exc, _RETRIABLE_ANYWAY):
            log.error("fatal delivery error for %s[%d]@%d -> %s: %r", rec.source.topic, rec.source.partition,
                      rec.offset, rec.topic, exc)
            self.fatal = exc
            return
        log.warning("delivery of %s[%d]@%d -> %s failed (%r); will retry", rec.source.topic, rec.source.partition,
                    rec.offset, rec.topic, exc)
        self._retry.put((self._clock() + self._backoff_s, rec))

    def _resend_due(self) -> None:
        now, later = self._clock(), []
        while True:
            try:
                due, rec = self._retry.get_nowait()
            except queue.Empty:
                break
            if due > now:
                later.append((due, rec))
            elif self._tracker.is_current(rec.source, rec.generation):
                self._metrics.publish_retries.inc()
                self._send(rec)
        for item in later:
            self._retry.put(item)

    def pending_retries(self) -> int:
        """Records waiting to be re-sent."""
        return self._retry.qsize()

    def check(self) -> None:
        """Raise FatalPublishError if a delivery failed for good."""
        if self.fatal is not None:
            raise FatalPublishError(f"producer cannot deliver: {self.fatal!r}")

    def flush(self, timeout_s: float) -> None:
        """Wait until everything sent (and re-sent) is acknowledged, or the time is up."""
        deadline = self._clock() + timeout_s
        while True:
            self._producer.flush(timeout=max(0.0, deadline - self._clock()))
            self.check()
            if self.pending_retries() == 0 or self._clock() >= deadline:
                return
            time.sleep(min(self._backoff_s, max(0.0, deadline - self._clock())))
            self._resend_due()

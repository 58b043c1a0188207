"""Getting result events and dead letters onto the broker, and only then marking frames done.

`Publisher` is what the loops rely on; two implementations:

At-least-once (`AtLeastOncePublisher`): an idempotent producer (acks=all) sends asynchronously;
the delivery callback acknowledges the source offset in the OffsetTracker, which is what the
consumer thread commits. A failed delivery, whatever the error (topic missing or denied, broker
away longer than the delivery timeout), is queued and re-sent with a growing back-off, never
skipped and never fatal: the worker stays up, commits stop at the first frame without a result,
back-pressure pauses consumption, `inspection_publish_failing` and /healthz say so, and everything
goes out when the cause is fixed.

Exactly-once (`worker.transactions.TransactionalPublisher`): one transaction per batch holds its
results, its dead letters and its source offsets.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

from kafka import KafkaProducer, TopicPartition

from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# Result events are small; a dead letter carries at most dead_letter_max_value_bytes (base64) plus JSON.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
_MAX_BACKOFF_S = 10.0
# send() blocks this long at most for metadata (a missing topic): the inference loop must keep ticking.
_MAX_BLOCK_MS = 5000


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

    @property
    def producer(self) -> KafkaProducer:
        """The producer in use (closed at shutdown)."""

    def publish(self, records: Sequence[OutRecord]) -> None:
        """Publish `records` (possibly none) and send again what failed earlier and is due."""

    def flush(self, timeout_s: float) -> None:
        """Wait until everything handed over is acknowledged, or the time is up; raise if delivery failed for good."""

    def check(self) -> None:
        """Raise FatalPublishError if delivery failed for good."""

    def describe(self) -> str:
        """One line for /healthz while deliveries fail (they are retried); empty when all is well."""


def producer_kwargs(settings: WorkerSettings, transactional: bool) -> dict:
    """KafkaProducer arguments: idempotent, acks=all, plus a stable transactional id in exactly-once mode."""
    kw = settings.kafka_client_kwargs()
    kw.update(acks="all", enable_idempotence=True, linger_ms=5, max_request_size=MAX_REQUEST_BYTES,
              compression_type=None, client_id=f"{settings.instance_id}-producer", max_block_ms=_MAX_BLOCK_MS,
              # a deleted output topic must not come back silently with the broker's defaults
              allow_auto_create_topics=False)
    if transactional:
        # Stable per pod: a restarted pod fences its dead predecessor's open transaction.
        kw["transactional_id"] = f"{settings.group_id}-{settings.instance_id}"
    return kw


class AtLeastOncePublisher:
    """Asynchronous sends; delivery callbacks acknowledge offsets; failed deliveries are re-sent until they succeed."""

    def __init__(self, producer: KafkaProducer, tracker: OffsetTracker, metrics: WorkerMetrics,
                 retry_backoff_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 new_producer: Optional[Callable[[], KafkaProducer]] = None, stalled_after_s: float = 120.0):
        self._producer = producer
        self._new_producer = new_producer
        self._next_renewal = 0.0
        self._stalled_after_s = stalled_after_s
        self._no_producer_id_since: Optional[float] = None
        self._renewals = 0
        self._tracker = tracker
        self._metrics = metrics
        self._backoff_s = retry_backoff_s
        self._clock = clock
        self._retry: "queue.Queue[tuple[float, OutRecord]]" = queue.Queue()
        self._lock = threading.Lock()
        # Records handed to the producer and not yet answered: a producer replaced while stuck never answers
        # for its records, so they are queued again from here (a late answer after that is harmless).
        self._in_flight: dict[int, OutRecord] = {}
        self._tokens = itertools.count()
        self._failing: dict[str, tuple[float, int, str]] = {}  # topic -> (since, failures in a row, last error)
        self.fatal: Optional[BaseException] = None  # never set: at-least-once retries every failure

    @property
    def producer(self) -> KafkaProducer:
        """The producer in use (replaced after a fatal producer error)."""
        return self._producer

    def publish(self, records: Sequence[OutRecord]) -> None:
        """Hand records to the producer (returns before the broker acknowledges them); re-send due failures."""
        self._renew_broken_producer()
        self._resend_due()
        failing = self._failing_topics()
        for rec in records:
            if rec.topic in failing:
                self._queue(rec)  # its topic fails: wait for the back-off before trying it again
        self._send_all([rec for rec in records if rec.topic not in failing])

    def _renew_broken_producer(self) -> None:
        # kafka-python's idempotent producer turns some broker answers (a record the topic refuses, say)
        # into a fatal state: every later send fails, even once the cause is fixed. Start a fresh one;
        # what the old one had not delivered fails over to the retry queue and is sent again.
        # A second way to break it: when a batch already sent expires (broker away past the delivery timeout),
        # the idempotent producer drops its producer id and never asks for a new one; it then neither delivers
        # nor fails (python -m line_harness.chaos.producer_stall reproduces it). Without an id for longer
        # than the delivery timeout means stuck, not starting up.
        manager = getattr(self._producer, "_transaction_manager", None)
        try:
            fatal = manager is not None and manager.has_fatal_error()
            has_id = manager is None or manager.has_producer_id()
        except Exception:  # noqa: BLE001 - private API, best effort
            fatal, has_id = False, True
        now = self._clock()
        if has_id:
            self._no_producer_id_since = None
        elif self._no_producer_id_since is None:
            self._no_producer_id_since = now
        stalled = self._no_producer_id_since is not None and now - self._no_producer_id_since > self._stalled_after_s
        if not (fatal or stalled) or self._new_producer is None or now < self._next_renewal:
            return
        self._renewals += 1  # a cause that persists breaks each new producer too: back off as for records
        self._next_renewal = now + min(_MAX_BACKOFF_S, self._backoff_s * 2 ** min(self._renewals, 8))
        log.error("the producer is %s; replacing it (undelivered records are sent again)",
                  "in a fatal state" if fatal else f"without a producer id for {self._stalled_after_s:.0f} s")
        self._no_producer_id_since = None
        old, self._producer = self._producer, self._new_producer()
        with self._lock:
            stranded, self._in_flight = list(self._in_flight.values()), {}
        for rec in stranded:
            self._queue(rec)
        try:
            old.close(timeout=0)
        except Exception as exc:  # noqa: BLE001 - it is abandoned anyway
            log.warning("closing the broken producer failed: %r", exc)

    def _send_all(self, records: Sequence[OutRecord]) -> None:
        blocked: set[str] = set()  # send() failed right away: do not block on it again for this topic now
        for rec in records:
            if rec.topic in blocked:
                self._queue(rec)
                continue
            token = next(self._tokens)
            with self._lock:
                self._in_flight[token] = rec
            try:
                future = self._producer.send(rec.topic, value=rec.value, key=rec.key)
            except Exception as exc:  # noqa: BLE001 - e.g. no metadata for a missing topic within max_block_ms
                self._failed(token, rec, exc)
                blocked.add(rec.topic)
                continue
            future.add_callback(self._delivered, token, rec)
            future.add_errback(self._failed, token, rec)

    def _failing_topics(self) -> set[str]:
        with self._lock:
            return set(self._failing)

    def _delivered(self, token: int, rec: OutRecord, _metadata) -> None:
        with self._lock:
            self._in_flight.pop(token, None)
            if self._failing.pop(rec.topic, None) is not None:
                self._renewals = 0
                log.warning("publishing to %s works again", rec.topic)
                self._metrics.publish_failing.set(len(self._failing))
        self._tracker.acknowledge(rec.source, rec.offset, rec.generation)

    def _failed(self, token: int, rec: OutRecord, exc: BaseException) -> None:
        # Runs on the producer's I/O thread (or in send()): never send from here, queue it for the loop.
        with self._lock:
            if self._in_flight.pop(token, None) is None:
                return  # already queued again when its producer was replaced
            since, count, _ = self._failing.get(rec.topic, (self._clock(), 0, ""))
            self._failing[rec.topic] = (since, count + 1, repr(exc)[:300])
            self._metrics.publish_failing.set(len(self._failing))
        if count == 0:
            log.error("delivery to %s failed (%r): retrying with back-off; frames stay uncommitted until it "
                      "works", rec.topic, exc)
        self._queue(rec)

    def _queue(self, rec: OutRecord) -> None:
        with self._lock:
            failures = self._failing.get(rec.topic, (0.0, 1, ""))[1]
        delay = min(_MAX_BACKOFF_S, self._backoff_s * 2 ** min(failures - 1, 8))
        self._retry.put((self._clock() + delay, rec))

    def _resend_due(self) -> None:
        now, due, later = self._clock(), [], []
        while True:
            try:
                at, rec = self._retry.get_nowait()
            except queue.Empty:
                break
            (later if at > now else due).append((at, rec))
        for item in later:
            self._retry.put(item)
        live = [rec for _, rec in due if self._tracker.is_current(rec.source, rec.generation)]
        if live:
            self._metrics.publish_retries.inc(len(live))
            self._send_all(live)

    def pending_retries(self) -> int:
        """Records waiting to be re-sent."""
        return self._retry.qsize()

    def describe(self) -> str:
        """One line for /healthz; empty while every topic takes records."""
        now = self._clock()
        with self._lock:
            if not self._failing:
                return ""
            parts = [f"{topic} for {now - since:.0f}s ({count} failures, last {err})"
                     for topic, (since, count, err) in sorted(self._failing.items())]
        return "publishing failing (frames kept uncommitted, retried): " + "; ".join(parts)

    def check(self) -> None:
        """Never raises: every failed delivery is retried (see the module docstring)."""

    def flush(self, timeout_s: float) -> None:
        """Wait until everything sent (and re-sent) is acknowledged, or the time is up."""
        deadline = self._clock() + timeout_s
        while True:
            self._producer.flush(timeout=max(0.0, deadline - self._clock()))
            if self.pending_retries() == 0 or self._clock() >= deadline:
                return
            time.sleep(min(self._backoff_s, max(0.0, deadline - self._clock())))
            self._resend_due()

"""Getting result events and dead letters onto the broker, and only then marking frames done.

At-least-once: an idempotent producer (acks=all) sends asynchronously; the delivery callback
acknowledges the source offset in the OffsetTracker, which is what the consumer thread commits.
A failed delivery is queued and re-sent by the inference loop (never skipped); a non-retriable
error is fatal: the worker stops without committing anything more.

Exactly-once: one transaction per batch holds its results, its dead letters and its source
offsets (send_offsets_to_transaction with the consumer's group metadata).
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Callable, Optional

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

# Result events are small; a dead letter carries at most dead_letter_max_value_bytes (base64) plus JSON.
_MAX_REQUEST_BYTES = 4 * 1024 * 1024
_RETRY_BACKOFF_S = 0.5
# A transaction is retried as a whole for this long (a broker restart takes ~10-30 s) before giving up.
_TXN_RETRY_WINDOW_S = 120.0
_TXN_MAX_BACKOFF_S = 2.0
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


def producer_kwargs(settings: WorkerSettings, transactional: bool) -> dict:
    """KafkaProducer arguments: idempotent, acks=all, plus a stable transactional id in exactly-once mode."""
    kw = settings.kafka_client_kwargs()
    kw.update(acks="all", enable_idempotence=True, linger_ms=5, max_request_size=_MAX_REQUEST_BYTES,
              compression_type=None, client_id=f"{settings.instance_id}-producer")
    if transactional:
        # Stable per pod: a restarted pod fences its dead predecessor's open transaction.
        kw["transactional_id"] = f"{settings.group_id}-{settings.instance_id}"
    return kw


class AtLeastOncePublisher:
    """Asynchronous sends; delivery callbacks acknowledge offsets; failed deliveries are re-sent."""

    def __init__(self, producer: KafkaProducer, tracker: OffsetTracker, metrics: WorkerMetrics):
        self._producer = producer
        self._tracker = tracker
        self._metrics = metrics
        self._retry: "queue.Queue[tuple[float, OutRecord]]" = queue.Queue()
        self.fatal: Optional[BaseException] = None

    def publish(self, records: list[OutRecord], group_metadata_fn: Callable[[], object] = None) -> None:
        """Hand a batch's records to the producer (returns before the broker acknowledges them)."""
        self.check()
        for rec in records:
            self._send(rec)
        self.resend_failed()

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
        self._retry.put((time.monotonic() + _RETRY_BACKOFF_S, rec))

    def resend_failed(self) -> None:
        """Re-send records whose delivery failed and whose back-off has passed."""
        now, later = time.monotonic(), []
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
        deadline = time.monotonic() + timeout_s
        while True:
            self._producer.flush(timeout=max(0.0, deadline - time.monotonic()))
            self.check()
            if self.pending_retries() == 0 or time.monotonic() >= deadline:
                return
            time.sleep(min(_RETRY_BACKOFF_S, max(0.0, deadline - time.monotonic())))
            self.resend_failed()


class TransactionalPublisher:
    """Exactly-once: each batch's records and source offsets are committed in one transaction."""

    def __init__(self, producer: KafkaProducer, tracker: OffsetTracker, metrics: WorkerMetrics):
        self._producer = producer
        self._tracker = tracker
        self._metrics = metrics
        self.fatal: Optional[BaseException] = None
        producer.init_transactions()

    def publish(self, records: list[OutRecord], group_metadata_fn: Callable[[], object]) -> None:
        """Publish `records` and commit their source offsets atomically; retried as a whole on abortable errors."""
        self.check()
        give_up = time.monotonic() + _TXN_RETRY_WINDOW_S
        attempt = 0
        while True:
            attempt += 1
            live = [r for r in records if self._tracker.is_current(r.source, r.generation)]
            if not live:
                return  # every partition of this batch was revoked: the new owner redoes it
            offsets: dict[TopicPartition, int] = {}
            for rec in live:
                offsets[rec.source] = max(offsets.get(rec.source, -1), rec.offset + 1)
            try:
                self._producer.begin_transaction()
                for rec in live:
                    self._producer.send(rec.topic, value=rec.value, key=rec.key)
                self._producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}, group_metadata_fn())
                self._producer.commit_transaction()
            except KafkaError as exc:
                self._abort(exc)
                if time.monotonic() >= give_up:
                    self.fatal = exc
                    raise FatalPublishError(f"transaction failed {attempt} times in "
                                            f"{_TXN_RETRY_WINDOW_S:.0f} s: {exc!r}") from exc
                self._metrics.publish_retries.inc(len(live))
                log.warning("transaction attempt %d failed (%r); aborted, retrying", attempt, exc)
                time.sleep(min(_TXN_MAX_BACKOFF_S, _RETRY_BACKOFF_S * attempt))
                continue
            for rec in live:
                self._tracker.acknowledge(rec.source, rec.offset, rec.generation)
            self._tracker.committed(offsets)
            self._metrics.commits.inc()
            return

    def _abort(self, exc: KafkaError) -> None:
        try:
            self._producer.abort_transaction()
        except KafkaError as abort_exc:  # fenced or fatal: this producer is done
            self.fatal = abort_exc
            raise FatalPublishError(f"cannot abort transaction after {exc!r}: {abort_exc!r}") from abort_exc

    def check(self) -> None:
        """Raise FatalPublishError if the producer is unusable."""
        if self.fatal is not None:
            raise FatalPublishError(f"transactional producer unusable: {self.fatal!r}")

    def resend_failed(self) -> None:
        """Nothing to do: a transaction is retried as a whole inside publish()."""

    def pending_retries(self) -> int:
        """Always 0 (see resend_failed)."""
        return 0

    def flush(self, timeout_s: float) -> None:
        """Transactions are committed synchronously; just let the producer drain."""
        self._producer.flush(timeout=timeout_s)

"""Exactly-once publishing: each batch's results, dead letters and source offsets in one Kafka
transaction (send_offsets_to_transaction with the consumer's group metadata, so a stale member
is fenced). An abortable failure aborts and retries the whole transaction."""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional, Sequence

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.publish import FatalPublishError, OutRecord

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 2.0


class TransactionalPublisher:
    """Exactly-once: implements worker.publish.Publisher; publish() returns once the transaction is committed."""

    def __init__(self, producer: KafkaProducer, tracker: OffsetTracker, metrics: WorkerMetrics,
                 group_metadata: Callable[[], object], retry_backoff_s: float = 0.5,
                 retry_window_s: float = 120.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self._producer = producer
        self._tracker = tracker
        self._metrics = metrics
        self._group_metadata = group_metadata  # the consumer's, read at commit time (it changes per rebalance)
        self._backoff_s = retry_backoff_s
        self._window_s = retry_window_s
        self._sleep = sleep
        self._clock = clock
        self.fatal: Optional[BaseException] = None
        self._failing: Optional[tuple[float, str]] = None  # (since, last error) while a transaction is retried
        producer.init_transactions()

    @property
    def producer(self) -> KafkaProducer:
        """The transactional producer."""
        return self._producer

    def publish(self, records: Sequence[OutRecord]) -> None:
        """Publish `records` and commit their source offsets atomically; retried as a whole on abortable errors.

        A failed attempt is retried here until it succeeds, so nothing is ever left to re-send later.
        """
        self.check()
        give_up = self._clock() + self._window_s
        attempt = 0
        while True:
            attempt += 1
            live = [r for r in records if self._tracker.is_current(r.source, r.generation)]
            if not live:
                return  # nothing to publish, or every partition of this batch was revoked
            offsets: dict[TopicPartition, int] = {}
            for rec in live:
                offsets[rec.source] = max(offsets.get(rec.source, -1), rec.offset + 1)
            try:
                self._producer.begin_transaction()
                for rec in live:
                    self._producer.send(rec.topic, value=rec.value, key=rec.key)
                self._producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}, self._group_metadata())
                self._producer.commit_transaction()
            except KafkaError as exc:
                if self._failing is None:
                    self._failing = (self._clock(), "")
                self._failing = (self._failing[0], repr(exc)[:300])
                self._abort(exc)
                if self._clock() >= give_up:
                    self.fatal = exc
                    raise FatalPublishError(f"transaction failed {attempt} times in {self._window_s:.0f} s "
                                            f"(WORKER_TRANSACTION_RETRY_WINDOW_S): {exc!r}") from exc
                self._metrics.publish_retries.inc(len(live))
                log.warning("transaction attempt %d failed (%r); aborted, retrying", attempt, exc)
                self._sleep(min(_MAX_BACKOFF_S, self._backoff_s * attempt))
                continue
            self._failing = None
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

    def describe(self) -> str:
        """One line for /healthz while a transaction is being retried; empty otherwise."""
        failing = self._failing
        if failing is None:
            return ""
        return f"transaction failing for {self._clock() - failing[0]:.0f}s (retried, last {failing[1]})"

    def flush(self, timeout_s: float) -> None:
        """Every transaction is committed inside publish(); this only lets the producer drain."""
        self._producer.flush(timeout=timeout_s)
        self.check()

"""Rebalances: the listener kafka-python calls on its IO thread, and where partitions must be sought
back to so that no frame dropped at a revoke is skipped.

kafka-python keeps the fetch position of a partition that is revoked and handed straight back:
frames dropped at the revoke would never be polled again, yet later offsets get committed (the
chaos suite's rebalance scenario lost frames this way). `Rewinds` remembers the lowest dropped
offset per partition and seeks there when the partition comes back, dropping whatever was adopted
from the old position meanwhile (it is polled again after the seek). Everything below the lowest
dropped offset has its result, so seeking there is always safe.
"""

from __future__ import annotations

import logging
import threading

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker

log = logging.getLogger(__name__)


class Rewinds:
    """Offsets to seek back to across a rebalance; shared by the consumer thread and the IO thread."""

    def __init__(self, tracker: OffsetTracker):
        self._tracker = tracker
        self._lock = threading.Lock()
        self._pending: dict = {}  # partition -> lowest offset dropped at its last revoke
        self._sought: dict = {}   # partition -> offset on_assigned sought it to during the current poll
        self._assigned_this_poll = False

    def poll_started(self) -> None:
        """(consumer thread) A new poll begins."""
        with self._lock:
            self._sought.clear()
            self._assigned_this_poll = False

    def dropped(self, offsets: dict) -> None:
        """(IO thread, at a revoke) Work from these offsets on was dropped."""
        with self._lock:
            for tp, offset in offsets.items():
                self._pending[tp] = min(self._pending.get(tp, offset), offset)

    def assigned(self, consumer: KafkaConsumer, assigned) -> None:
        """(IO thread) Seek partitions handed straight back to where their dropped work starts.

        seek() only sets local state (position() would block, which this IO-thread callback may not).
        """
        with self._lock:
            for tp in set(assigned) & set(self._pending):
                adopted = self._tracker.rewind(tp)
                target = self._pending[tp] if adopted is None else min(adopted, self._pending[tp])
                consumer.seek(tp, target)
                self._sought[tp] = target
                log.info("rewound %s[%d] to offset %d to redo frames dropped at the revoke", tp.topic,
                         tp.partition, target)
            self._pending.clear()
            self._assigned_this_poll = True

    def refused(self, consumer: KafkaConsumer, tp, offset: int) -> None:
        """(consumer thread) Records of `tp` from `offset` on were refused: it was revoked (or rewound)
        while they were registered, and the fetch position is already past them.

        If `tp` is assigned again, seek back now (not above where `assigned` sought it during this
        poll); if not, leave the offset for `assigned`, in case kafka-python hands the partition back
        with its old position.
        """
        with self._lock:
            if tp in consumer.assignment():
                target = min(offset, self._sought.get(tp, offset))
                self._tracker.rewind(tp)
                consumer.seek(tp, target)
                log.info("rewound %s[%d] to offset %d: its records were polled across a rebalance", tp.topic,
                         tp.partition, target)
            elif not self._assigned_this_poll:
                self._pending[tp] = min(self._pending.get(tp, offset), offset)
            # else: a new assignment without `tp` already came; kafka-python forgot its position

    def clear(self) -> None:
        """The consumer is replaced: a fresh one starts from the committed offsets."""
        with self._lock:
            self._pending.clear()
            self._sought.clear()


class RebalanceListener(AsyncConsumerRebalanceListener):
    """kafka-python 3 runs listeners on its IO thread: a sync listener must not commit (it would block
    the loop it waits for), so this one awaits the coordinator's commit coroutine instead."""

    def __init__(self, loop, consumer: KafkaConsumer, metrics: WorkerMetrics):
        self._loop = loop  # the ConsumerLoop: prepare_revoke(), on_assigned(), commit_timeout_ms
        self._consumer = consumer
        self._metrics = metrics

    async def on_partitions_revoked(self, revoked):
        offsets = self._loop.prepare_revoke(revoked)
        commit = getattr(getattr(self._consumer, "_coordinator", None), "_commit_offsets_sync_async", None)
        if not offsets or commit is None:
            return
        try:
            await commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()},
                         self._loop.commit_timeout_ms)
        except Exception as exc:  # the new owner redoes what was not committed: duplicates, never loss
            log.warning("commit on revocation failed: %r", exc)
            return
        self._metrics.commits.inc()
        log.info("committed %d partition offsets before revocation", len(offsets))

    async def on_partitions_assigned(self, assigned):
        self._loop.on_assigned(assigned)

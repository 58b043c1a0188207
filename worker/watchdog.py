"""Notices a consumer that stops getting frames while frames wait for it.

kafka-python 3.0 was seen (rarely, on a loaded machine) to stop returning records: a worker judged
64 frames and then nothing, with /healthz still green because its poll loop kept ticking. This
watchdog makes such a stall visible and recoverable: it logs the consumer's state (assignment,
pauses, positions against end offsets, group membership, the fetcher's buffers), nudges it
(resume every partition, re-seek each to its own position: nothing is skipped), and if that does
not help within STALL_AFTER_S it fails /healthz so that Kubernetes restarts the pod. Only the
consumer thread calls it (the consumer is not thread-safe).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from worker.health import Health
from worker.offsets import OffsetTracker

log = logging.getLogger(__name__)

# Defaults of WORKER_CONSUMER_NUDGE_AFTER_S / _REBUILD_AFTER_S / _STALL_AFTER_S. A healthy worker with
# frames waiting polls some within a second or two; a nudge does not cure kafka-python 3.0's rejoin
# hang (member stuck in REBALANCING with nothing assigned), so that one gets a fresh consumer.
NUDGE_AFTER_S = 15.0
REBUILD_AFTER_S = 30.0
STALL_AFTER_S = 60.0


class ConsumerWatchdog:
    """Tracks consumer progress; see the module docstring."""

    def __init__(self, consumer: KafkaConsumer, tracker: OffsetTracker, health: Health,
                 nudge_after_s: float = NUDGE_AFTER_S, stall_after_s: float = STALL_AFTER_S,
                 rebuild_after_s: float = REBUILD_AFTER_S, clock: Callable[[], float] = time.monotonic):
        self._consumer = consumer
        self._tracker = tracker
        self._health = health
        self._nudge_after_s = nudge_after_s
        self._stall_after_s = stall_after_s
        self._rebuild_after_s = rebuild_after_s
        self._clock = clock
        self._last_progress = clock()
        self._last_in_flight = 0
        self._next_nudge: Optional[float] = None

    def progress(self) -> None:
        """Frames were polled (or finished): whatever stall there was is over."""
        self._last_progress = self._clock()
        self._next_nudge = None
        if self._health.consumer_stall:
            log.info("consumer makes progress again")
            self._health.consumer_stall = ""

    def watch(self, consumer: KafkaConsumer) -> None:
        """Watch a replacement consumer; its (re)join is not a stall."""
        self._consumer = consumer
        self._next_nudge = None
        self._last_progress = self._clock()

    def check(self, lags: Optional[dict[TopicPartition, tuple[int, int]]]) -> bool:
        """After a lag refresh: `lags` maps each assigned partition to (position, end offset); None if unknown.

        Returns True when the consumer should be replaced: stuck outside a stable group membership
        for REBUILD_AFTER_S (the rejoin hang; nudging cannot help there).
        """
        in_flight = self._tracker.in_flight()
        finished = in_flight < self._last_in_flight
        self._last_in_flight = in_flight
        waiting = sum(max(0, end - pos) for pos, end in (lags or {}).values())
        member = self.member_state()
        if finished or (not waiting and member in ("STABLE", "")):
            self.progress()
            return False
        now = self._clock()
        silent = now - self._last_progress
        if silent < self._nudge_after_s:
            return False
        why = (f"no frames polled for {silent:.0f}s while {waiting} wait on the broker" if waiting
               else f"not a stable consumer-group member for {silent:.0f}s (state {member})")
        if self._next_nudge is None or now >= self._next_nudge:
            self._next_nudge = now + self._nudge_after_s
            log.warning("consumer stalled: %s; %s; nudging it (resume + re-seek)", why, self.describe(lags))
            self._nudge(lags or {})
        self._health.consumer_stall = f"consumer stalled: {why}" if silent >= self._stall_after_s else ""
        return silent >= self._rebuild_after_s and member not in ("STABLE", "")

    def member_state(self) -> str:
        """The group coordinator's member state (STABLE, REBALANCING, UNJOINED); '' if unknown."""
        state = getattr(getattr(self._consumer, "_coordinator", None), "state", None)  # private; '<stable>'
        return str(getattr(state, "name", state) or "").strip("<>").upper()

    def describe(self, lags) -> str:
        """One line of consumer state for the log: what a stall report needs."""
        c = self._consumer
        parts = [f"member {self.member_state() or '?'}", f"in flight {self._tracker.in_flight()}",
                 "assigned " + _names(c.assignment()), "paused " + _names(c.paused())]
        if lags:
            parts.append("position/end " + ", ".join(f"{tp.topic}[{tp.partition}] {pos}/{end}"
                                                      for tp, (pos, end) in sorted(lags.items())))
        fetcher = getattr(c, "_fetcher", None)
        try:  # private, read-only, best effort: where fetched data may be stuck
            parts.append("fetcher: pending-fetch nodes %s, queued %d, parked %s/%s" % (
                sorted(getattr(fetcher, "_nodes_with_pending_fetch_requests", ())),
                len(getattr(fetcher, "_completed_fetches", ())),
                _names(getattr(fetcher, "_paused_completed_fetches", {})),
                _names(getattr(fetcher, "_paused_partition_records", {}))))
        except Exception as exc:  # never let the report itself fail the loop
            parts.append(f"fetcher: {exc!r}")
        return "; ".join(parts)

    def _nudge(self, lags: dict) -> None:
        consumer = self._consumer
        try:
            held = consumer.paused() & set(lags)  # halted partitions (fail closed) are never in `lags`
            if held:  # back-pressure re-pauses if frames really are in flight
                consumer.resume(*held)
            release_parked(consumer)
            for tp, (position, _end) in lags.items():
                if tp in consumer.assignment():
                    consumer.seek(tp, position)  # same offset: nothing skipped, position re-validated
        except (KafkaError, ValueError, AssertionError) as exc:
            log.warning("could not nudge the consumer: %r", exc)


def release_parked(consumer: KafkaConsumer) -> None:
    """Work around a kafka-python 3.0 fetcher stall after pause/resume (consumer thread only).

    Records fetched for a partition that is then paused are parked; they are handed back only while
    the fetcher's `_next_partition_records` is None, yet a drained (empty, falsy) one stays there, and
    a partition with parked records is never fetched again: it stalls for good (seen after a halt
    rewound and paused a partition, and a resume). Clearing the drained slot lets the parked records
    be picked up (and dropped if a seek moved the position) and fetching go on.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None


def _names(partitions) -> str:
    return ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)) or "none"

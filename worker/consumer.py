"""The consumer loop: the ONLY thread that touches the KafkaConsumer (it is not thread-safe).

It polls, registers offsets, hands records to the decode pool and the pipeline queue, pauses its
partitions while too many frames are in flight, commits what is acknowledged (at-least-once),
refreshes the lag gauges, and handles rebalances.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Callable

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from line_contracts.events import DeadLetterReason
from worker import record_reader
from worker.batching import WorkItem
from worker.decode import Rejected
from worker.decode_pool import DecodePool
from worker.pipeline import Pipeline
from worker.rebalance import RebalanceListener, Rewinds
from worker.settings import WorkerSettings
from worker.watchdog import ConsumerWatchdog, release_parked

log = logging.getLogger(__name__)


def consumer_kwargs(settings: WorkerSettings) -> dict:
    """KafkaConsumer arguments: manual commits, start at the earliest frame for a new group."""
    kw = settings.kafka_client_kwargs()
    kw.update(group_id=settings.group_id, client_id=f"{settings.instance_id}-consumer", enable_auto_commit=False,
              auto_offset_reset="earliest", max_poll_records=settings.max_batch_size,
              # Frames are 0.1-1 MB: fetch several per partition per round trip.
              max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024,
              # kafka-python 3 defaults to a 45 s session: a SIGKILLed pod's partitions would sit
              # unjudged that long. Heartbeats run on their own thread, so 10 s is safe.
              session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
              isolation_level="read_committed" if settings.processing_guarantee == "exactly_once"
              else "read_uncommitted")
    return kw


class ConsumerLoop:
    """Polls frames into the pipeline until asked to stop."""

    def __init__(self, settings: WorkerSettings, pipeline: Pipeline, consumer_factory: Callable[[], KafkaConsumer],
                 decoder: DecodePool, clock: Callable[[], float] = time.monotonic):
        self._s = settings
        self._new_consumer = consumer_factory
        self._consumer = consumer = consumer_factory()
        self._items = pipeline.items
        self._decoder = decoder
        self._tracker = pipeline.tracker
        self._publisher = pipeline.publisher
        self._metrics = pipeline.metrics
        self._health = pipeline.health
        self._halts = pipeline.halts
        self._batch_lock = pipeline.batch_lock
        self._clock = clock
        self._eos = settings.processing_guarantee == "exactly_once"
        self._max_in_flight = settings.max_in_flight_frames()
        self._next_commit = 0.0
        self._next_lag = 0.0
        self._lag_labels: set[tuple[str, str]] = set()
        self.group_metadata = None
        self._rewinds = Rewinds(self._tracker)
        self.watchdog = ConsumerWatchdog(consumer, self._tracker, self._health, settings.consumer_nudge_after_s,
                                         settings.consumer_stall_after_s, settings.consumer_rebuild_after_s, clock)

    def subscribe(self, stop: threading.Event) -> None:
        """Wait until the frames topic exists, then join the group on it.

        Joining before the client knows the topic's partitions gives an empty first assignment and
        an immediate re-join, and kafka-python 3.0 was seen to hang in that re-join (1 start in ~5
        on a just-created topic); waiting for the metadata first avoids the sequence.
        """
        topic, warned = self._s.frames_topic, False
        while not stop.is_set() and not self._consumer.partitions_for_topic(topic):
            if not warned:
                log.warning("frames topic %s does not exist (yet): waiting for it (WORKER_FRAMES_TOPIC)", topic)
                warned = True
            stop.wait(1.0)
        self._join(self._consumer)
        self.watchdog.progress()  # the wait for the topic is not a stall

    def _join(self, consumer: KafkaConsumer) -> None:
        """Subscribe `consumer` to the frames topic, then settle its view of the topic before the first poll.

        kafka-python 3.0's group leader compares the topic's partitions at its first assignment with its
        view after the next metadata update, and that view is only refreshed by an update that lands
        after subscribe(): usually just after the first assignment. The leader then sees the topic
        "change" and re-joins the group 0.1-0.2 s after joining (10 starts in 11 on the local broker),
        and kafka-python was seen to hang in that re-join: no heartbeats, dropped from the group 10 s
        later, idle until the watchdog rebuilt the consumer. One metadata round trip after subscribe()
        updates the view first (0 re-joins in 11). The broker log says "Leader ... re-joining group during
        Stable" when it happens.
        """
        consumer.subscribe([self._s.frames_topic], listener=RebalanceListener(self, consumer, self._metrics))
        try:
            consumer.topics()  # a metadata update: the coordinator's view of the topic follows it
        except KafkaError as exc:  # the join goes ahead; at worst with the re-join described above
            log.warning("could not refresh the topic metadata before joining the group: %r", exc)

    @property
    def commit_timeout_ms(self) -> int:
        """How long one offset commit may take (WORKER_COMMIT_TIMEOUT_MS)."""
        return self._s.commit_timeout_ms

    @property
    def consumer(self) -> KafkaConsumer:
        """The consumer in use (replaced when it hangs in a rejoin)."""
        return self._consumer

    def _replace_consumer(self) -> None:
        """Swap a consumer stuck in a group rejoin for a fresh one; nothing is lost.

        kafka-python 3.0 was seen (under load) to revoke every partition right after a join and never
        finish the rejoin. A new consumer joins from the committed offsets; frames in flight are dropped
        (their results are discarded) and redone, so at worst some are judged twice (at-least-once).
        """
        try:
            fresh = self._new_consumer()
        except KafkaError as exc:  # broker away: keep the old one, try again at the next check
            log.warning("could not create a replacement consumer: %r", exc)
            return
        log.error("replacing the consumer: stuck outside the group (%s)", self.watchdog.describe(None))
        old = self._consumer
        with self._batch_lock:
            self._halts.forget(self._tracker.tracked())
            self._tracker.revoke(set(self._tracker.tracked()))
            self._rewinds.clear()
        self._health.partitions_assigned = False
        try:
            old.close(autocommit=False)
        except Exception as exc:  # it is being abandoned anyway
            log.warning("closing the stuck consumer failed: %r", exc)
        self._consumer = fresh
        self.watchdog.watch(fresh)
        self._metrics.paused.set(0)
        self._join(fresh)

    def poll_once(self) -> int:
        """One iteration: halts, back-pressure, poll, dispatch, commit, lag. Returns records polled."""
        self._apply_halts()
        self._backpressure()
        self._rewinds.poll_started()
        epoch = self._tracker.epoch()  # a revoke or rewind after this refuses the records of this poll
        try:
            polled = self._consumer.poll(timeout_ms=self._s.poll_timeout_ms, max_records=self._s.max_batch_size)
        except Exception as exc:  # noqa: BLE001 - a record the client cannot read must not stop the line
            polled = {}
            self._skip_unreadable(exc, epoch)
        count = self._dispatch(polled, epoch) if polled else 0
        if self._eos:
            self.group_metadata = self._consumer.group_metadata()
        else:
            self.commit(force=False)
        self._refresh_lag()
        self._health.beat("poll")
        return count

    def _dispatch(self, polled: dict, epoch: int) -> int:
        """Register each record and start its decode; records of a partition lost meanwhile are dropped."""
        now_ns, now_mono = time.time_ns(), self._clock()
        count = 0
        refused: dict = {}  # partition -> lowest offset refused (revoked or rewound during this poll)
        for tp, records in polled.items():
            for rec in records:
                generation = self._tracker.register(tp, rec.offset, epoch)
                if generation is None:
                    refused[tp] = min(refused.get(tp, rec.offset), rec.offset)
                    continue
                future = self._decoder.submit(rec.value, rec.headers, rec.key)
                self._items.put(WorkItem(tp, rec.offset, generation, rec.key, rec.value, rec.headers,
                                         now_ns, now_mono, future))
                self._metrics.frames_consumed.labels(*self._metrics.frame_labels(rec.headers)).inc()
                count += 1
        for tp, offset in refused.items():
            self._rewinds.refused(self._consumer, tp, offset)
        self.watchdog.progress()
        return count

    def _skip_unreadable(self, exc: Exception, epoch: int) -> None:
        """poll() raised: dead-letter the record it could not read (no bytes of it are readable) and seek past it."""
        self._metrics.poll_errors.inc()
        culprit = record_reader.unreadable_record(self._consumer)
        if culprit is None:
            log.error("poll failed and the record that caused it cannot be located; retrying: %r", exc)
            time.sleep(self._s.poll_timeout_ms / 1000.0)
            return
        tp, offset = culprit
        generation = self._tracker.register(tp, offset, epoch)
        if generation is not None:
            done: Future = Future()
            done.set_result(Rejected(DeadLetterReason.UNREADABLE_RECORD, f"the Kafka client could not read "
                                     f"this record: {exc!r}"[:1000]))
            self._items.put(WorkItem(tp, offset, generation, None, None, [], time.time_ns(), self._clock(), done))
        self._consumer.seek(tp, offset + 1)
        log.error("skipped unreadable record %s[%d]@%d (dead-lettered): %r", tp.topic, tp.partition, offset, exc)

    def _apply_halts(self) -> None:
        """Fail closed (worker/halts.py): rewind and pause newly halted partitions, resume those due a retry."""
        assigned = self._consumer.assignment()
        for tp in self._halts.take_rewinds() & assigned:
            lowest = self._tracker.rewind(tp)  # their queued frames are dropped; nothing of them is committed
            if lowest is not None:
                self._consumer.seek(tp, lowest)
            self._consumer.pause(tp)
            log.error("judging halted on %s[%d]: rewound to offset %s, paused", tp.topic, tp.partition, lowest)
        resume = self._halts.take_resumes() & assigned
        if resume:
            self._consumer.resume(*resume)
            release_parked(self._consumer)
            log.warning("retrying judging on %s", _names(resume))

    def _backpressure(self) -> None:
        in_flight = self._tracker.in_flight()
        paused = bool(self._consumer.paused())
        if in_flight >= self._max_in_flight:
            assigned = self._consumer.assignment()
            if assigned - self._consumer.paused():
                self._consumer.pause(*assigned)
            if not paused:
                self._metrics.paused.set(1)
                log.debug("paused consumption: %d frames in flight", in_flight)
        elif paused and in_flight <= self._max_in_flight // 2:
            held = self._consumer.paused() - self._halts.halted()
            if held:
                self._consumer.resume(*held)
                release_parked(self._consumer)
            self._metrics.paused.set(0)

    def commit(self, force: bool, partitions=None) -> None:
        """Commit every acknowledged offset (at-least-once); at most every commit_interval_s unless forced."""
        now = self._clock()
        if self._eos or (not force and now < self._next_commit):
            return
        self._next_commit = now + self._s.commit_interval_s
        self._publisher.check()  # never commit after a fatal publish error
        # Only partitions this consumer owns now: state re-created for a lost one must never be committed.
        owned = self._consumer.assignment()
        offsets = self._tracker.to_commit(owned if partitions is None else set(partitions) & owned)
        if not offsets:
            return
        try:
            self._consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()},
                                  timeout_ms=self._s.commit_timeout_ms)
        except KafkaError as exc:  # e.g. a rebalance is under way: the next commit (or the new owner) catches up
            log.warning("offset commit failed: %r", exc)
            return
        self._tracker.committed(offsets)
        self._metrics.commits.inc()

    def _refresh_lag(self) -> None:
        now = self._clock()
        if now < self._next_lag:
            return
        self._next_lag = now + self._s.lag_refresh_s
        assigned = self._consumer.assignment()
        labels: set[tuple[str, str]] = set()
        lags: dict = {}
        try:
            ends = self._consumer.end_offsets(list(assigned)) if assigned else {}
            for tp, end in ends.items():
                position = self._consumer.position(tp, timeout_ms=1000)
                if position is None:
                    continue
                label = (tp.topic, str(tp.partition))
                self._metrics.consumer_lag.labels(*label).set(max(0, end - position))
                labels.add(label)
                lags[tp] = (position, end)
        except KafkaError as exc:
            log.warning("consumer lag refresh failed: %r", exc)
            if self.watchdog.check(None):
                self._replace_consumer()
            return
        # Frames that wait while the output is blocked (alarmed by itself) or on a halted partition (paused
        # on purpose) are no consumer stall; the watchdog still checks the group membership.
        halted = self._halts.halted()
        watched = {} if self._publisher.describe() else {tp: v for tp, v in lags.items() if tp not in halted}
        if self.watchdog.check(watched):
            self._replace_consumer()
            return
        for gone in self._lag_labels - labels:
            self._metrics.consumer_lag.remove(*gone)
        self._lag_labels = labels

    def prepare_revoke(self, revoked) -> dict:
        """Before partitions go: let the batch in hand finish, flush, drop the rest; returns offsets to commit.

        Runs on kafka-python's IO thread (where rebalance listeners run), so it must not call
        blocking consumer APIs; the commit itself is awaited by the async listener.
        """
        revoked = set(revoked)
        offsets: dict = {}
        with self._batch_lock:
            if not self._eos and not self._publisher.describe():  # a failing output would only eat the time
                try:
                    self._publisher.flush(self._s.revoke_flush_s)
                    offsets = self._tracker.to_commit(revoked)
                except Exception as exc:  # the new owner redoes whatever was not committed
                    log.warning("could not flush before revocation: %r", exc)
            self._rewinds.dropped(self._tracker.revoke(revoked))
            self._halts.forget(revoked)
        log.info("partitions revoked: %s", _names(revoked))
        return offsets

    def on_assigned(self, assigned) -> None:
        """Track newly assigned partitions (fresh generation) and report readiness."""
        self._tracker.assign(assigned)
        self._rewinds.assigned(self._consumer, assigned)  # partitions handed straight back: see worker/rebalance.py
        self._health.partitions_assigned = bool(assigned)  # eager protocol: `assigned` is the whole assignment
        log.info("partitions assigned: %s", _names(assigned))


def _names(partitions) -> str:
    return ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)) or "none"

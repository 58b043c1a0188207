"""The consumer watchdog against a real broker: a consumer that gets no frames while frames wait is
reported (log line with its state), nudged back to life, and fails /healthz until it recovers."""

from __future__ import annotations

import logging
import time

import pytest
from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry

from line_harness.frames import produce_frames
from worker.health import Health
from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.watchdog import ConsumerWatchdog

pytestmark = pytest.mark.timeout(120)


def test_stalled_consumer_is_reported_nudged_and_unhealthy_until_it_polls(kafka_bootstrap, new_topic, new_group,
                                                                          caplog):
    topic = new_topic(2, "stall")
    produce_frames(kafka_bootstrap, topic, range(20))
    consumer = KafkaConsumer(bootstrap_servers=[kafka_bootstrap], group_id=new_group(), enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not consumer.poll(timeout_ms=200, max_records=1) and time.monotonic() < deadline:
            pass
        consumer.pause(*consumer.assignment())  # the stall: frames wait, nothing is fetched
        health = Health(WorkerMetrics(CollectorRegistry()))
        dog = ConsumerWatchdog(consumer, OffsetTracker(), health, nudge_after_s=0.3, stall_after_s=0.6)

        def lags():
            ends = consumer.end_offsets(list(consumer.assignment()))
            return {tp: (consumer.position(tp), end) for tp, end in ends.items()}

        dog.check(lags())
        assert health.live()[0] and consumer.paused()  # too early to act
        time.sleep(0.7)
        with caplog.at_level(logging.WARNING, logger="worker.watchdog"):
            dog.check(lags())
        assert "consumer stalled: no frames polled" in caplog.text and f"paused {topic}[0]" in caplog.text
        assert "position/end" in caplog.text and "member STABLE" in caplog.text
        ok, why = health.live()
        assert not ok and "consumer stalled" in why
        assert not consumer.paused()  # the nudge resumed it
        deadline = time.monotonic() + 30
        while not consumer.poll(timeout_ms=200) and time.monotonic() < deadline:
            pass
        dog.progress()  # what the consumer loop does when a poll returns frames
        assert health.live()[0]
    finally:
        consumer.close(autocommit=False)


def test_consumer_outside_the_group_too_long_is_marked_for_replacement(kafka_bootstrap, new_topic, new_group):
    """The rejoin hang (member never STABLE again) is not cured by a nudge: the watchdog asks for a
    fresh consumer, but only after rebuild_after_s and never for a stable member that is merely paused."""
    topic = new_topic(1, "rejoin")
    produce_frames(kafka_bootstrap, topic, range(5))
    stuck = KafkaConsumer(bootstrap_servers=[kafka_bootstrap], group_id=new_group(), enable_auto_commit=False)
    try:  # a consumer that never joins its group: the same state as the hang (not STABLE, nothing assigned)
        health = Health(WorkerMetrics(CollectorRegistry()))
        dog = ConsumerWatchdog(stuck, OffsetTracker(), health, nudge_after_s=0.2, stall_after_s=0.4,
                               rebuild_after_s=0.6)
        assert dog.member_state() not in ("STABLE", "")
        assert dog.check({}) is False  # too early
        time.sleep(0.3)
        assert dog.check({}) is False  # nudged, not yet replaced
        time.sleep(0.4)
        assert dog.check({}) is True
        dog.watch(stuck)  # a replacement's own join is not a stall
        assert dog.check({}) is False
    finally:
        stuck.close(autocommit=False)

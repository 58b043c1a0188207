"""Hostile input and a broken publish path against `python -m worker` on the real broker (issue 11).

Every hostile kind of producer_sim.faults (huge numbers, non-UTF-8 header names, huge keys and
headers, decode bombs, ids unfit for labels, wrong types) plus the classic bad kinds, mixed into a
stream: the worker never exits, every bad frame is dead-lettered with its own reason, every good
frame is judged, everything is committed. A results topic that refuses every result keeps the
worker up, alarmed and uncommitted, and nothing is lost once the topic is fixed.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from line_contracts.frame import frame_key
from line_harness.frames import frame_headers, frame_image, png_bytes
from line_harness.readers import committed_lag, read_topic
from line_harness.worker_process import WorkerProcess
from producer_sim.faults import ALL_KINDS, EXPECTED_REASON, make_bad_record

pytestmark = pytest.mark.timeout(300)


def _produce(bootstrap: str, topic: str, total: int, bad: dict[int, str]) -> None:
    """Good 64x64 PNG frames, with bad records of the given kinds at the given indices."""
    rng = np.random.default_rng(11)
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5, max_request_size=4 << 20)
    try:
        for i in range(total):
            headers = frame_headers(i)
            good = png_bytes(frame_image(i))
            if i in bad:
                key, value, kheaders = make_bad_record(bad[i], rng, headers, good)
            else:
                key, value, kheaders = frame_key(headers.camera_id), good, headers.to_kafka()
            producer.send(topic, value=value, key=key, headers=kheaders)
        producer.flush(60)
    finally:
        producer.close(5)


def _wait_committed(bootstrap, topic, group, timeout_s=60) -> int:
    deadline = time.monotonic() + timeout_s
    while (lag := committed_lag(bootstrap, topic, group)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return lag


def test_every_hostile_kind_is_dead_lettered_with_its_reason_and_the_worker_stays_up(
        kafka_bootstrap, new_topic, new_group, tmp_path, model_base):
    frames, results, dlq = new_topic(3, "frames"), new_topic(3, "results"), new_topic(1, "dlq")
    group = new_group()
    bad = {3 + 3 * i: kind for i, kind in enumerate(ALL_KINDS)}  # each between good neighbours
    total = 3 + 3 * len(bad) + 3
    _produce(kafka_bootstrap, frames, total, bad)
    worker = WorkerProcess(kafka_bootstrap, model_base, frames, results, dlq, group, tmp_path / "w.log")
    try:
        worker.wait_ready()
        events = read_topic(kafka_bootstrap, results, total - len(bad), timeout_s=90)
        letters = read_topic(kafka_bootstrap, dlq, len(bad), timeout_s=60)
        assert worker.proc.poll() is None, worker.log_tail()
        assert sorted(ev["frame"]["frame_seq"] for ev in events) == sorted(set(range(total)) - set(bad))
        by_offset = {(rec["source_partition"], rec["source_offset"]): rec for rec in letters}
        assert len(by_offset) == len(letters) == len(bad)
        got = Counter(rec["reason"] for rec in letters)
        assert got == Counter(EXPECTED_REASON[k].value for k in bad.values()), worker.log_tail()
        for rec in letters:
            assert rec["error"] and len(rec["error"]) <= 2000
        huge_key = [rec for rec in letters if rec["reason"] == "key_too_large"]
        assert huge_key[0]["source_key_truncated"] and huge_key[0]["source_key_size"] == 600_000
        assert _wait_committed(kafka_bootstrap, frames, group) == 0
        assert worker.metric_sum("inspection_frames_dead_lettered_total") == len(bad)
        labels = {s.labels.get("camera") for s in worker.samples() if s.name == "inspection_frames_consumed_total"}
        assert all(label is None or "\n" not in label for label in labels)  # the bad id never became a label
        assert worker.stop() == 0
    finally:
        print(f"--- worker log (last 60 lines)\n{worker.log_tail(60)}")
        worker.stop()


def _set_max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"max.message.bytes": str(value)})])
    finally:
        admin.close()


def test_a_results_topic_refusing_every_result_stalls_commits_alarms_and_loses_nothing(
        kafka_bootstrap, new_topic, new_group, tmp_path, model_base):
    frames, dlq = new_topic(2, "frames"), new_topic(1, "dlq")
    results = new_topic(2, "results", configs={"max.message.bytes": "100"})  # no result event fits
    group = new_group()
    n = 200
    _produce(kafka_bootstrap, frames, n, {})
    worker = WorkerProcess(kafka_bootstrap, model_base, frames, results, dlq, group, tmp_path / "w.log",
                           publish_retry_backoff_s=0.2)
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while worker.metric("inspection_publish_failing") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.metric("inspection_publish_failing") == 1, worker.log_tail()
        time.sleep(3)  # used to be: a non-retriable error, exit 1, restart, again
        assert worker.proc.poll() is None, worker.log_tail()
        status, body = worker.get("/healthz")
        assert status == 200 and "publishing failing" in body and results in body
        assert committed_lag(kafka_bootstrap, frames, group) == n  # nothing committed without a result
        _set_max_message_bytes(kafka_bootstrap, results, 1_048_588)  # the operator fixes the topic
        events = read_topic(kafka_bootstrap, results, 10**6, timeout_s=90,
                            until=lambda evs: len({ev["frame"]["frame_seq"] for ev in evs}) == n)
        assert {ev["frame"]["frame_seq"] for ev in events} == set(range(n))
        assert _wait_committed(kafka_bootstrap, frames, group) == 0
        assert worker.metric("inspection_publish_failing") == 0 and worker.get("/healthz") == (200, "2 loops alive\n")
        assert worker.stop() == 0
    finally:
        print(f"--- worker log (last 60 lines)\n{worker.log_tail(60)}")
        worker.stop()

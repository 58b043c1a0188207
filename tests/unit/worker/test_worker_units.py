"""Worker parts that need no broker: settings and CLI, decoding rules, offset tracking, batching, metrics."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from concurrent.futures import Future

import cv2
import numpy as np
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from line_contracts.events import DeadLetterReason
from line_contracts.frame import Encoding
from line_harness.frames import frame_headers, frame_image, png_bytes
from line_harness.paths import REPO
from producer_sim.faults import BAD_FRAME_KINDS, EXPECTED_REASON, make_bad_frame
from worker.batching import END_OF_STREAM, Batcher, WorkItem
from worker.decode import DecodedFrame, DecodeLimits, Rejected, decode_frame
from worker.http import Health
from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.settings import WorkerSettings

LIMITS = DecodeLimits(900_000, 4096 * 4096, 64, 64, resize_mismatched=True)
TP = TopicPartition("frames", 0)


def _run_cli(args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_help_lists_every_setting_and_no_secret():
    done = _run_cli(["--help"], WORKER_KAFKA_SASL_PASSWORD="hunter2-secret")
    assert done.returncode == 0
    for name in WorkerSettings.model_fields:
        assert f"WORKER_{name.upper()}" in done.stdout
    assert "hunter2-secret" not in done.stdout + done.stderr


@pytest.mark.parametrize("var,value", [("WORKER_MAX_BATCH_SIZE", "0"), ("WORKER_PROCESSING_GUARANTEE", "twice"),
                                       ("WORKER_SIZE_MISMATCH_POLICY", "crop")])
def test_bad_setting_exits_2_naming_the_variable(var, value):
    done = _run_cli([], **{var: value})
    assert done.returncode == 2
    assert var in done.stderr and value in done.stderr


def test_unreachable_kafka_exits_3_naming_the_setting():
    done = _run_cli([], WORKER_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", WORKER_KAFKA_CONNECT_TIMEOUT_S="2",
                    WORKER_METRICS_PORT="0", WORKER_MODEL_PATH="/nonexistent")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "WORKER_KAFKA_BOOTSTRAP_SERVERS" in done.stderr


def test_docs_list_every_setting():
    doc = (REPO / "docs" / "worker.md").read_text()
    missing = [f"WORKER_{n.upper()}" for n in WorkerSettings.model_fields if f"`WORKER_{n.upper()}`" not in doc]
    assert not missing, f"docs/worker.md lacks {missing}: regenerate its settings table"


def test_batch_buckets_are_powers_of_two_up_to_max():
    assert WorkerSettings(max_batch_size=24).batch_buckets() == [1, 2, 4, 8, 16, 24]
    assert WorkerSettings(max_batch_size=1).batch_buckets() == [1]


@pytest.mark.parametrize("kind", BAD_FRAME_KINDS)
def test_each_bad_frame_kind_is_rejected_with_its_reason(kind):
    value, headers = make_bad_frame(kind, np.random.default_rng(0), frame_headers(1), png_bytes(frame_image(1)))
    result = decode_frame(value, headers, LIMITS)
    assert isinstance(result, Rejected) and result.reason == EXPECTED_REASON[kind], result
    assert result.error


@pytest.mark.parametrize("encoding", [Encoding.PNG, Encoding.JPEG, Encoding.RAW])
def test_good_frames_decode_in_every_encoding(encoding):
    img = frame_image(2)
    value = {Encoding.PNG: png_bytes(img), Encoding.RAW: img.tobytes(),
             Encoding.JPEG: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()}[encoding]
    result = decode_frame(value, frame_headers(2, encoding=encoding).to_kafka(), LIMITS)
    assert isinstance(result, DecodedFrame) and result.image.shape == (64, 64)
    if encoding is not Encoding.JPEG:
        assert np.array_equal(result.image, img)


def test_size_mismatch_is_resized_or_rejected_by_policy():
    big = cv2.resize(frame_image(3), (128, 96))
    headers = frame_headers(3, size=(96, 128)).to_kafka()
    resized = decode_frame(png_bytes(big), headers, LIMITS)
    assert isinstance(resized, DecodedFrame) and resized.image.shape == (64, 64)
    strict = DecodeLimits(900_000, 4096 * 4096, 64, 64, resize_mismatched=False)
    rejected = decode_frame(png_bytes(big), headers, strict)
    assert isinstance(rejected, Rejected) and rejected.reason == DeadLetterReason.SIZE_MISMATCH
    assert "WORKER_SIZE_MISMATCH_POLICY" in rejected.error


def test_image_size_differing_from_headers_is_header_mismatch():
    result = decode_frame(png_bytes(frame_image(4)), frame_headers(4, size=(60, 64)).to_kafka(), LIMITS)
    assert isinstance(result, Rejected) and result.reason == DeadLetterReason.HEADER_MISMATCH


def test_offset_tracker_commits_only_below_the_first_unacknowledged():
    tracker = OffsetTracker()
    tracker.assign([TP])
    gens = [tracker.register(TP, off) for off in (10, 11, 12, 13)]
    tracker.acknowledge(TP, 11, gens[1])
    tracker.acknowledge(TP, 12, gens[2])
    assert tracker.to_commit() == {} and tracker.in_flight() == 4
    tracker.acknowledge(TP, 10, gens[0])
    assert tracker.to_commit() == {TP: 13} and tracker.in_flight() == 1
    tracker.committed({TP: 13})
    assert tracker.to_commit() == {}
    tracker.acknowledge(TP, 13, gens[3])
    assert tracker.to_commit() == {TP: 14}


def test_offset_tracker_ignores_acks_from_a_revoked_generation():
    tracker = OffsetTracker()
    tracker.assign([TP])
    old = tracker.register(TP, 5)
    tracker.revoke([TP])
    tracker.assign([TP])
    assert not tracker.is_current(TP, old)
    tracker.acknowledge(TP, 5, old)
    assert tracker.to_commit() == {} and tracker.in_flight() == 0


def _item(offset: int, result, polled: float) -> WorkItem:
    fut: Future = Future()
    fut.set_result(result)
    return WorkItem(TP, offset, 1, None, b"x", [], time.time_ns(), polled, fut)


def _good():
    return DecodedFrame(frame_headers(0), np.zeros((64, 64), np.uint8), 0.001)


def test_batch_closes_at_max_size():
    items: queue.Queue = queue.Queue()
    for off in range(10):
        items.put(_item(off, _good(), time.monotonic()))
    batcher = Batcher(items, max_batch_size=4, max_batch_wait_ms=10_000)
    assert [len(batcher.next_batch().frames) for _ in range(2)] == [4, 4]


def test_batch_closes_when_oldest_frame_waited_max_wait():
    items: queue.Queue = queue.Queue()
    items.put(_item(0, _good(), time.monotonic()))
    batcher = Batcher(items, max_batch_size=32, max_batch_wait_ms=50)
    t0 = time.monotonic()
    batch = batcher.next_batch()
    assert len(batch.frames) == 1 and 0.04 <= time.monotonic() - t0 < 0.5


def test_overdue_backlog_still_fills_the_batch_and_rejects_ride_along():
    items: queue.Queue = queue.Queue()
    long_ago = time.monotonic() - 5
    items.put(_item(0, Rejected(DeadLetterReason.EMPTY_VALUE, "empty"), long_ago))
    for off in range(1, 7):
        items.put(_item(off, _good(), long_ago))
    items.put(END_OF_STREAM)
    batcher = Batcher(items, max_batch_size=4, max_batch_wait_ms=10)
    first = batcher.next_batch()
    assert len(first.frames) == 4 and len(first.rejected) == 1
    second = batcher.next_batch()
    assert len(second.frames) == 2 and batcher.ended


def test_readiness_needs_model_and_partitions_and_sets_the_gauge():
    metrics = WorkerMetrics(CollectorRegistry())
    health = Health(metrics, stall_after_s=0.05)
    assert health.ready()[0] is False
    assert metrics.registry.get_sample_value("inspection_ready") == 0
    health.model_ready = health.partitions_assigned = True
    assert health.ready() == (True, "ready")
    assert metrics.registry.get_sample_value("inspection_ready") == 1
    health.beat("poll")
    assert health.live()[0]
    time.sleep(0.1)
    ok, why = health.live()
    assert not ok and "poll" in why

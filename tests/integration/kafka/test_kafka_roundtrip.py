"""Frames through the real broker: complete, byte-exact, in order per camera (the key)."""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import MessageSizeTooLargeError

from line_contracts.frame import Encoding, FrameHeaders, frame_key
from line_harness.kafka.topics import FRAMES_MAX_MESSAGE_BYTES, frames_topic_configs

N_FRAMES = 1000
WIDTH, HEIGHT = 500, 400  # raw mono8: 200,000 bytes per frame
CAMERAS = [f"cam-{i}" for i in range(6)]


def _digest(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=16).digest()


def _consume(kwargs: dict, topic: str, group: str, expected: int, timeout_s: float) -> list:
    """Poll until `expected` records arrived or the deadline passed; return them in arrival order."""
    consumer = KafkaConsumer(topic, **kwargs, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, max_partition_fetch_bytes=8 << 20, fetch_max_bytes=32 << 20)
    records, deadline = [], time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def test_thousand_200kb_frames_round_trip_complete_and_in_order_per_camera(kafka_client_kwargs, new_topic, new_group):
    topic = new_topic(partitions=3, name_prefix="frames")
    pool = np.random.default_rng(7).integers(0, 256, WIDTH * HEIGHT * 2, dtype=np.uint8).tobytes()
    producer = KafkaProducer(**kafka_client_kwargs, acks="all", linger_ms=5, batch_size=1 << 20,
                             max_request_size=FRAMES_MAX_MESSAGE_BYTES)
    sent: dict[tuple[str, int], bytes] = {}
    t0 = time.monotonic()
    for i in range(N_FRAMES):
        camera, seq = CAMERAS[i % len(CAMERAS)], i // len(CAMERAS)
        headers = FrameHeaders(camera_id=camera, line_id="line-1", frame_seq=seq, capture_time_ns=time.time_ns(),
                               encoding=Encoding.RAW, width=WIDTH, height=HEIGHT)
        start = (i * 7919) % (WIDTH * HEIGHT)  # a different window of the pool per frame
        value = pool[start:start + WIDTH * HEIGHT]
        producer.send(topic, key=frame_key(camera), value=value, headers=headers.to_kafka())
        sent[(camera, seq)] = _digest(value)
    producer.flush(timeout=120)
    producer.close()
    produced_s = time.monotonic() - t0

    records = _consume(kafka_client_kwargs, topic, new_group(), N_FRAMES, timeout_s=120)
    consumed_s = time.monotonic() - t0 - produced_s
    print(f"\n{N_FRAMES} x {WIDTH * HEIGHT // 1000} KB frames: produced in {produced_s:.1f} s, "
          f"consumed in {consumed_s:.1f} s")

    assert len(records) == N_FRAMES, f"read back {len(records)} of {N_FRAMES} frames"
    seqs_in_arrival_order: dict[str, list[int]] = defaultdict(list)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record in records:
        headers = FrameHeaders.from_kafka(record.headers)
        assert record.key == frame_key(headers.camera_id)
        assert _digest(record.value) == sent.pop((headers.camera_id, headers.frame_seq)), "frame bytes changed"
        seqs_in_arrival_order[headers.camera_id].append(headers.frame_seq)
        partitions_of[headers.camera_id].add(record.partition)
    assert not sent, f"frames never read back: {sorted(sent)[:5]}..."
    for camera, seqs in seqs_in_arrival_order.items():
        assert seqs == list(range(len(seqs))), f"{camera} frames out of order"
        assert len(partitions_of[camera]) == 1, f"{camera} spread over partitions {partitions_of[camera]}"
    assert len({p for ps in partitions_of.values() for p in ps}) > 1, "all cameras landed in one partition"


def test_3mb_frame_fits_the_frames_topic_but_not_a_default_producer(kafka_client_kwargs, new_topic, new_group):
    topic = new_topic(partitions=1, name_prefix="bigframes", configs=frames_topic_configs())
    value = np.random.default_rng(1).integers(0, 256, 3 * 1024 * 1024, dtype=np.uint8).tobytes()
    headers = FrameHeaders(camera_id="cam-big", line_id="line-1", frame_seq=0, capture_time_ns=time.time_ns(),
                           encoding=Encoding.RAW, width=2048, height=1536).to_kafka()

    default_producer = KafkaProducer(**kafka_client_kwargs)  # max_request_size 1 MiB: frames need more
    with pytest.raises(MessageSizeTooLargeError):
        default_producer.send(topic, key=b"cam-big", value=value, headers=headers).get(timeout=30)
    default_producer.close()

    producer = KafkaProducer(**kafka_client_kwargs, max_request_size=FRAMES_MAX_MESSAGE_BYTES)
    producer.send(topic, key=b"cam-big", value=value, headers=headers).get(timeout=30)
    producer.close()
    records = _consume(kafka_client_kwargs, topic, new_group(), 1, timeout_s=30)
    assert [r.value for r in records] == [value]

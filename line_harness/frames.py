"""Deterministic test frames and a producer for them: what the tests, bench and chaos runs put on a frames topic."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from line_contracts.frame import Encoding, FrameHeaders, frame_key

FRAME_SIZE = (64, 64)


def frame_image(index: int, size=FRAME_SIZE) -> np.ndarray:
    """Deterministic test frame: smooth noise; every third frame gets a bright spot (the tiny model flags spots)."""
    rng = np.random.default_rng(index)
    img = cv2.GaussianBlur(rng.integers(90, 160, size, dtype=np.uint8), (5, 5), 0)
    if index % 3 == 0:
        cv2.circle(img, (int(rng.integers(12, size[1] - 12)), int(rng.integers(12, size[0] - 12))), 4, 255, -1)
    return img


def frame_headers(index: int, cameras: int = 4, size=FRAME_SIZE, encoding: Encoding = Encoding.PNG,
                  truth: bool = True) -> FrameHeaders:
    """Headers of test frame `index` (camera = index % cameras)."""
    return FrameHeaders(camera_id=f"cam-{index % cameras}", line_id="line-1", frame_seq=index,
                        capture_time_ns=time.time_ns(), encoding=encoding, width=size[1], height=size[0],
                        truth_label=("defect" if index % 3 == 0 else "ok") if truth else None)


def png_bytes(img: np.ndarray) -> bytes:
    """PNG encoding of a mono8 image."""
    return cv2.imencode(".png", img)[1].tobytes()


@dataclass
class Produced:
    """What a test put on the frames topic."""

    count: int = 0
    images: dict[int, np.ndarray] = field(default_factory=dict)  # frame_seq -> image (good frames)
    bad: dict[int, str] = field(default_factory=dict)            # frame_seq -> bad-frame kind


def produce_frames(bootstrap: str, topic: str, indices, bad: Optional[dict[int, str]] = None,
                   produced: Optional[Produced] = None, cameras: int = 4) -> Produced:
    """Publish good PNG frames (and bad ones from producer_sim.faults at the given indices)."""
    from kafka import KafkaProducer

    from producer_sim.faults import make_bad_frame
    produced = produced or Produced()
    rng = np.random.default_rng(7)
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5, max_request_size=4 << 20)
    try:
        for i in indices:
            img, headers = frame_image(i), frame_headers(i, cameras)
            good = png_bytes(img)
            if bad and i in bad:
                value, kheaders = make_bad_frame(bad[i], rng, headers, good)
                produced.bad[i] = bad[i]
            else:
                value, kheaders = good, headers.to_kafka()
                produced.images[i] = img
            producer.send(topic, value=value, key=frame_key(headers.camera_id), headers=kheaders)
            produced.count += 1
        producer.flush(30)
    finally:
        producer.close(5)
    return produced

"""Regions through the real stack: `python -m worker` with the tiny model (its defect map output) on a real
broker; every frame with a drawn spot comes back judged defect with its strongest region on the spot.

The frames are 96x128 (non-square, so a transposed box would miss) and carry the simulator's truth box
header; the check is the one `producer_sim watch` makes: the event's strongest region overlaps
`frame.truth_box`.
"""

from __future__ import annotations

import time
from collections import Counter

import cv2
import numpy as np
import pytest
from kafka import KafkaProducer

from line_contracts.events import DefectEvent
from line_contracts.frame import Encoding, FrameHeaders, frame_key
from line_harness.frames import png_bytes
from line_harness.readers import read_topic
from line_harness.worker_process import WorkerProcess

pytestmark = pytest.mark.timeout(240)

SIZE = (96, 128)
FRAMES = 60


def _frame(index: int) -> tuple[np.ndarray, str | None]:
    """Smooth noise; every third frame a bright spot: (image, truth box 'x,y,w,h' or None)."""
    rng = np.random.default_rng(1000 + index)
    img = cv2.GaussianBlur(rng.integers(90, 160, SIZE, dtype=np.uint8), (5, 5), 0)
    if index % 3:
        return img, None
    centre = (int(rng.integers(10, SIZE[1] - 10)), int(rng.integers(10, SIZE[0] - 10)))
    mask = np.zeros(SIZE, np.uint8)
    cv2.circle(mask, centre, 4, 255, -1)
    img[mask > 0] = 255
    x, y, w, h = cv2.boundingRect(mask)
    return img, f"{x},{y},{w},{h}"


@pytest.fixture(scope="module")
def map_model(tmp_path_factory):
    from training.tiny_model import build_tiny_model

    base = tmp_path_factory.mktemp("models")
    build_tiny_model(base, version=1, input_size=SIZE)
    return base


def test_defect_events_carry_a_region_on_the_true_defect(kafka_bootstrap, new_topic, new_group, tmp_path, map_model):
    frames, results, dlq = new_topic(2, "frames"), new_topic(2, "results"), new_topic(1, "dlq")
    producer = KafkaProducer(bootstrap_servers=[kafka_bootstrap], acks="all", linger_ms=5)
    truth: dict[int, str | None] = {}
    try:
        for i in range(FRAMES):
            img, box = _frame(i)
            truth[i] = box
            headers = FrameHeaders(camera_id=f"cam-{i % 2}", line_id="line-1", frame_seq=i, capture_time_ns=time.time_ns(),
                                   encoding=Encoding.PNG, width=SIZE[1], height=SIZE[0],
                                   truth_label="defect" if box else "ok", truth_box=box)
            producer.send(frames, value=png_bytes(img), key=frame_key(headers.camera_id), headers=headers.to_kafka())
        producer.flush(30)
    finally:
        producer.close()
    worker = WorkerProcess(kafka_bootstrap, map_model, frames, results, dlq, new_group(), tmp_path / "worker.log")
    try:
        worker.wait_ready()
        events = [DefectEvent.model_validate(e) for e in read_topic(kafka_bootstrap, results, FRAMES, timeout_s=90)]
        assert sorted(e.frame.frame_seq for e in events) == list(range(FRAMES)), worker.log_tail()
        spots = [e for e in events if truth[e.frame.frame_seq]]
        assert len(spots) == FRAMES // 3
        for event in spots:
            assert event.verdict.value == "defect", event
            assert event.frame.truth_box is not None  # the header made it into the event
            loc = event.localisation
            assert loc is not None and loc.regions and len(loc.regions) <= 5
            assert (loc.map_height, loc.map_width) == (12, 16)  # one cell per 8x8 pixels
            for region in loc.regions:
                b = region.box
                assert b.x + b.width <= SIZE[1] and b.y + b.height <= SIZE[0], b  # camera pixels, in the frame
            assert loc.regions[0].box.overlaps(event.frame.truth_box), (event.frame.truth_box, loc.regions)
        for event in events:
            if event.verdict.value == "ok":
                assert event.localisation is None
        defects = [e for e in events if e.verdict.value == "defect"]
        time.sleep(0.5)
        cells = Counter()
        for e in defects:
            r = e.localisation.regions[0].box
            cx, cy = r.x + r.width / 2, r.y + r.height / 2
            cells[(str(min(3, int(cy * 4 / SIZE[0]))), str(min(3, int(cx * 4 / SIZE[1]))))] += 1
        for (row, col), n in cells.items():
            assert worker.metric("inspection_defect_regions_total", line="line-1", row=row, col=col) == n
        assert worker.metric_sum("inspection_defect_regions_total") == len(defects)
        assert worker.stop() == 0
    finally:
        worker.stop()
        print(f"--- worker log (last 60 lines)\n{worker.log_tail(60)}")

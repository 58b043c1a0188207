"""Evidence through the real stack: `python -m worker` (tiny model with its defect map) on a real broker,
writing to a real S3 server (SeaweedFS, the `evidence_store` fixture).

Every defect event carries its keys with status queued, and the three objects are there: the frame as
the camera sent it, an overlay PNG at the camera's size, and the event itself. Ok frames keep evidence
exactly when the hash sample says so. A second worker judging the same records again (a redelivery)
writes the same keys: the store holds one copy per frame, the later one.
"""

from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest
from kafka import KafkaProducer

from line_contracts.events import DefectEvent
from line_contracts.frame import Encoding, FrameHeaders, frame_key
from line_harness.frames import png_bytes
from line_harness.readers import read_topic
from line_harness.worker_process import WorkerProcess
from worker.evidence import sampled

pytestmark = pytest.mark.timeout(300)

SIZE = (96, 128)
FRAMES = 45
SAMPLE_OK = 0.2


def _frame(index: int) -> np.ndarray:
    """Smooth noise; every third frame a bright spot the tiny model judges defect."""
    rng = np.random.default_rng(2000 + index)
    img = cv2.GaussianBlur(rng.integers(90, 160, SIZE, dtype=np.uint8), (5, 5), 0)
    if index % 3 == 0:
        cv2.circle(img, (int(rng.integers(10, SIZE[1] - 10)), int(rng.integers(10, SIZE[0] - 10))), 4, 255, -1)
    return img


@pytest.fixture(scope="module")
def map_model(tmp_path_factory):
    from training.tiny_model import build_tiny_model

    base = tmp_path_factory.mktemp("models")
    build_tiny_model(base, version=1, input_size=SIZE)
    return base


def _judge_all(kafka_bootstrap, store, model, topics, group, log_path) -> tuple[list[DefectEvent], WorkerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")} | store.client_env("WORKER_")
    worker = WorkerProcess(kafka_bootstrap, model, *topics, group, log_path, env=env, evidence_sample_ok=SAMPLE_OK,
                           instance_id=log_path.stem)
    worker.wait_ready()
    events = [DefectEvent.model_validate(e) for e in read_topic(kafka_bootstrap, topics[1], FRAMES, timeout_s=90)]
    assert sorted(e.frame.frame_seq for e in events) == list(range(FRAMES)), worker.log_tail()
    return events, worker


def _object(store, key: str) -> tuple[bytes, str]:
    got = store.client().get_object(Bucket=store.bucket, Key=key)
    return got["Body"].read(), got["ContentType"]


def _wait_written(worker: WorkerProcess, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.metric("inspection_evidence_written_total") != count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.metric("inspection_evidence_written_total") == count, worker.log_tail()


def test_defect_evidence_is_kept_under_its_keys_and_a_redelivery_overwrites(
        kafka_bootstrap, new_topic, new_group, tmp_path, map_model, evidence_store):
    frames, results, dlq = new_topic(2, "frames"), new_topic(2, "results"), new_topic(1, "dlq")
    sent: dict[int, bytes] = {}
    producer = KafkaProducer(bootstrap_servers=[kafka_bootstrap], acks="all", linger_ms=5)
    try:
        for i in range(FRAMES):
            sent[i] = png_bytes(_frame(i))
            headers = FrameHeaders(camera_id=f"cam-{i % 2}", line_id="line-ev", frame_seq=i,
                                   capture_time_ns=time.time_ns(), encoding=Encoding.PNG, width=SIZE[1], height=SIZE[0])
            producer.send(frames, value=sent[i], key=frame_key(headers.camera_id), headers=headers.to_kafka())
        producer.flush(30)
    finally:
        producer.close()

    first, worker = _judge_all(kafka_bootstrap, evidence_store, map_model, (frames, results, dlq), new_group(),
                               tmp_path / "worker-a.log")
    try:
        defects = [e for e in first if e.verdict.value == "defect"]
        assert len(defects) >= FRAMES // 3, [e.score for e in first]
        kept = [e for e in first if e.evidence is not None]
        assert {e.event_id for e in kept} == {e.event_id for e in defects} | {
            e.event_id for e in first if e.verdict.value == "ok" and sampled(e.event_id, SAMPLE_OK)}
        assert len(kept) > len(defects)  # some ok frames were sampled too
        _wait_written(worker, len(kept))
        assert worker.metric_sum("inspection_evidence_missing_total") == 0
        for event in kept:
            ev = event.evidence
            assert ev.status.value == "queued" and ev.bucket == evidence_store.bucket and ev.reason is None
            assert ev.frame_key.startswith(f"line-ev/{event.frame.camera_id}/") and f"/{event.event_id}/" in ev.frame_key
            body, content_type = _object(evidence_store, ev.frame_key)
            assert body == sent[event.frame.frame_seq] and content_type == "image/png"
            overlay, content_type = _object(evidence_store, ev.overlay_key)
            picture = cv2.imdecode(np.frombuffer(overlay, np.uint8), cv2.IMREAD_COLOR)
            assert picture.shape == (*SIZE, 3) and content_type == "image/png"
            kept_event = json.loads(_object(evidence_store, ev.event_key)[0])
            assert kept_event == json.loads(event.to_json_bytes())
            if event.verdict.value == "defect":  # the strongest region is drawn in red on the overlay
                box = event.localisation.regions[0].box
                b, g, r = (int(v) for v in picture[box.y, box.x + box.width // 2])
                assert r > 200 and g < 80 and b < 80, (box, (b, g, r))
        assert worker.stop() == 0
    finally:
        worker.stop()

    # The same records judged again by another group: same event ids, same keys, one copy each.
    second, worker = _judge_all(kafka_bootstrap, evidence_store, map_model, (frames, new_topic(2, "results"), dlq),
                                new_group(), tmp_path / "worker-b.log")
    try:
        assert {e.worker_id for e in second} == {"worker-b"}
        again = {e.event_id: e.evidence for e in second if e.evidence is not None}
        assert {k: (v.frame_key, v.overlay_key, v.event_key) for k, v in again.items()} == {
            e.event_id: (e.evidence.frame_key, e.evidence.overlay_key, e.evidence.event_key) for e in kept}
        _wait_written(worker, len(kept))
        listed = evidence_store.client().list_objects_v2(Bucket=evidence_store.bucket, Prefix="line-ev/")
        assert listed["KeyCount"] == 3 * len(kept) and not listed.get("IsTruncated")
        for event in kept:
            assert json.loads(_object(evidence_store, event.evidence.event_key)[0])["worker_id"] == "worker-b"
        assert worker.stop() == 0
    finally:
        worker.stop()
        print(f"--- worker log (last 40 lines)\n{worker.log_tail(40)}")

"""The evidence writer's decisions (which frames, which keys, queued or missing and why) and its thread's
retry, drop and recovery, against an in-memory stand-in for the S3 client. The real store is exercised
by tests/integration/worker/test_evidence_store_client.py and test_worker_evidence.py."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from line_contracts.events import Box, DefectEvent, DefectRegion, Localisation
from line_contracts.frame import Encoding
from line_harness.frames import frame_headers, png_bytes
from line_harness.processes import wait_until
from line_runtime.framing import place
from tests.unit.worker.fakes import FakeClock, work_item
from worker.decode import DecodedFrame
from worker.evidence import EvidenceWriter, sampled
from worker.metrics import EvidenceMetrics
from worker.model import ServingModel
from worker.overlay import render_overlay
from worker.results import RecordFactory

THRESHOLD = 0.5


class FakeS3:
    """put_object / head_bucket into a dict; `down` makes every call raise like a refused connection."""

    def __init__(self):
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.down = False
        self.calls = 0
        self.lock = threading.Lock()

    def put_object(self, Bucket, Key, Body, ContentType):  # noqa: N803 - boto3's argument names
        with self.lock:
            self.calls += 1
            if self.down:
                raise ConnectionRefusedError("store down")
            self.objects[f"{Bucket}/{Key}"] = (bytes(Body), ContentType)

    def head_bucket(self, Bucket):  # noqa: N803
        if self.down:
            raise ConnectionRefusedError("store down")


def _event(offset: int, score: float, size=(64, 64)) -> tuple[DefectEvent, DecodedFrame, bytes]:
    image = np.full(size, 40, np.uint8)
    frame = DecodedFrame(frame_headers(offset, size=size), image, 0.001)
    model = ServingModel(None, "m", "1", "fake", THRESHOLD, 64, 64)
    _, event = RecordFactory("results", "dlq", "w-1", 1024).result(work_item(offset, frame, 0.0), frame, score, model,
                                                                   0, 1.0, 1)
    return event, frame, png_bytes(image)


def _writer(s3: FakeS3, **kw) -> tuple[EvidenceWriter, CollectorRegistry]:
    registry = CollectorRegistry()
    return EvidenceWriter(s3, "evidence", EvidenceMetrics(registry), **kw), registry


def _claim(writer: EvidenceWriter, offset: int, score: float) -> DefectEvent:
    event, frame, raw = _event(offset, score)
    return writer.claim(event, raw, frame.image, 64, 64, Encoding.PNG, np.zeros((8, 8), np.float32))


def _missing(registry, reason: str) -> float:
    return registry.get_sample_value("inspection_evidence_missing_total", {"reason": reason})


def test_a_defect_gets_keys_and_its_three_objects_are_written_the_event_last():
    s3 = FakeS3()
    writer, registry = _writer(s3)
    writer.start()
    event = _claim(writer, 7, 0.9)
    ev = event.evidence
    assert ev.status.value == "queued" and ev.bucket == "evidence" and ev.reason is None
    day = ev.frame_key.split("/")[2]
    assert ev.frame_key == f"line-1/cam-3/{day}/frames-0-7/frame.png"
    assert ev.overlay_key.endswith("/frames-0-7/overlay.png") and ev.event_key.endswith("/frames-0-7/event.json")
    assert wait_until(lambda: registry.get_sample_value("inspection_evidence_written_total") == 1, 10)
    kept = json.loads(s3.objects[f"evidence/{ev.event_key}"][0])
    assert kept == json.loads(event.to_json_bytes())  # the event as published, keys included
    assert s3.objects[f"evidence/{ev.frame_key}"][1] == "image/png"
    overlay = cv2.imdecode(np.frombuffer(s3.objects[f"evidence/{ev.overlay_key}"][0], np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape == (64, 64, 3)
    assert writer.close(5) == 0


def test_ok_frames_keep_evidence_only_when_sampled_and_the_choice_is_the_same_on_redelivery():
    writer, _ = _writer(FakeS3(), sample_ok=0.0)
    assert _claim(writer, 1, 0.1).evidence is None
    ids = [f"frames-{p}-{o}" for p in range(3) for o in range(4000)]
    chosen = [i for i in ids if sampled(i, 0.05)]
    assert 0.04 < len(chosen) / len(ids) < 0.06
    assert chosen == [i for i in ids if sampled(i, 0.05)]
    assert not any(sampled(i, 0.0) for i in ids) and all(sampled(i, 1.0) for i in ids)
    writer, _ = _writer(FakeS3(), sample_ok=1.0)
    assert _claim(writer, 1, 0.1).evidence.status.value == "queued"


def test_a_full_queue_marks_evidence_missing_without_waiting():
    writer, registry = _writer(FakeS3(), queue_size=2)  # not started: nothing drains the queue
    statuses = [_claim(writer, i, 0.9).evidence for i in range(4)]
    assert [e.status.value for e in statuses] == ["queued", "queued", "missing", "missing"]
    assert statuses[2].reason == "queue_full" and statuses[2].frame_key.endswith("/frame.png")
    assert _missing(registry, "queue_full") == 2
    assert registry.get_sample_value("inspection_evidence_queue_frames") == 2


def test_while_the_store_is_down_new_evidence_is_missing_and_queued_frames_are_written_after():
    s3 = FakeS3()
    writer, registry = _writer(s3, backoff_s=(0.01, 0.05))
    writer.start()
    s3.down = True
    before = _claim(writer, 1, 0.9)  # judged before the failure was seen: queued, retried
    assert before.evidence.status.value == "queued"
    assert wait_until(lambda: writer.store_down, 10)
    assert registry.get_sample_value("inspection_evidence_store_up") == 0
    during = _claim(writer, 2, 0.9)
    assert during.evidence.status.value == "missing" and during.evidence.reason == "store_down"
    s3.down = False
    assert wait_until(lambda: not writer.store_down, 10)
    assert wait_until(lambda: f"evidence/{before.evidence.event_key}" in s3.objects, 10)
    assert f"evidence/{during.evidence.event_key}" not in s3.objects
    assert _claim(writer, 3, 0.9).evidence.status.value == "queued"
    assert writer.close(5) == 0
    assert _missing(registry, "store_down") == 1 and _missing(registry, "write_failed") == 0


def test_the_store_coming_back_is_noticed_with_nothing_queued():
    s3 = FakeS3()
    writer, registry = _writer(s3, backoff_s=(0.01, 0.05))
    writer.mark_down("not reachable at start")
    writer.start()
    assert _claim(writer, 1, 0.9).evidence.reason == "store_down"
    assert wait_until(lambda: not writer.store_down, 10)  # the probe found it answering
    assert registry.get_sample_value("inspection_evidence_store_up") == 1
    writer.close(5)


def test_a_frame_failing_past_the_retry_window_is_dropped_and_counted():
    s3, clock = FakeS3(), FakeClock()
    s3.down = True
    writer, registry = _writer(s3, retry_s=60.0, backoff_s=(0.001, 0.002), clock=clock)
    writer.start()
    _claim(writer, 1, 0.9)
    assert wait_until(lambda: s3.calls >= 3, 10)  # retried while inside the window
    assert _missing(registry, "write_failed") == 0
    clock.advance(61.0)
    assert wait_until(lambda: _missing(registry, "write_failed") == 1, 10)
    writer.close(1)


def test_close_counts_what_could_not_be_written_in_time():
    s3 = FakeS3()
    s3.down = True
    writer, registry = _writer(s3, backoff_s=(0.01, 0.02))
    for i in range(3):  # queued before the thread runs: its first failure would mark later ones store_down
        _claim(writer, i, 0.9)
    writer.start()
    writer.close(0.2)
    assert _missing(registry, "shutdown") == 3


def test_the_overlay_shows_heat_where_the_map_is_high_and_boxes_at_camera_size():
    image = np.full((64, 64), 100, np.uint8)
    defect_map = np.zeros((8, 8), np.float32)
    defect_map[1, 5] = 1.0
    box = Box(x=80, y=12, width=16, height=12)  # camera pixels of a 96x128 frame
    loc = Localisation(map_height=8, map_width=8, regions=[DefectRegion(box=box, peak=1.0, area_px=192)])
    png = render_overlay(image, 96, 128, defect_map, loc)
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (96, 128, 3)
    b, g, r = (int(v) for v in picture[box.y, box.x + 4])
    assert r > 200 and g < 50 and b < 50  # the strongest region's box is red
    heat = picture[18, 88].astype(int)  # inside cell (1, 5): coloured, no longer grey
    assert np.ptp(heat) > 40
    assert np.ptp(picture[80, 10].astype(int)) == 0  # far from the map's peak the frame stays grey
    plain = cv2.imdecode(np.frombuffer(render_overlay(image, 64, 64, None, None), np.uint8), cv2.IMREAD_COLOR)
    assert (np.abs(plain.astype(int) - 100) <= 2).all()  # 64 grey steps: the two lowest bits go


def test_the_overlay_of_a_fitted_frame_shows_the_camera_frame_and_only_its_part_of_the_map():
    camera = np.full((32, 64), 100, np.uint8)           # fitted into a 64x64 input at rows 16..48
    defect_map = np.zeros((8, 8), np.float32)
    defect_map[0, 0] = 1.0                              # in the mirrored border: not the frame's
    defect_map[3, 5] = 1.0                              # input (44, 28) -> camera (44, 12)
    png = render_overlay(camera, 32, 64, defect_map, None, placement=place((32, 64), (64, 64), "fit"))
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (32, 64, 3)
    assert np.ptp(picture[12, 44].astype(int)) > 40     # the defect's heat, at its camera pixels
    assert np.ptp(picture[2, 2].astype(int)) == 0       # the border's heat is not drawn on the frame


def test_a_capped_overlay_is_area_downscaled_with_its_boxes_scaled():
    image = np.zeros((512, 768), np.uint8)
    image[:, 1::2] = 200  # a one-pixel stripe pattern: area-averaging makes it an even grey
    box = Box(x=400, y=200, width=80, height=40)  # camera pixels of the 512x768 frame
    loc = Localisation(map_height=8, map_width=8, regions=[DefectRegion(box=box, peak=1.0, area_px=3200)])
    png = render_overlay(image, 512, 768, None, loc, max_side=192)
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (128, 192, 3)  # long side 192, aspect kept
    assert abs(int(picture[10, 10, 0]) - 100) <= 4  # averaged, not sampled (a sample would be 0 or 200)
    b, g, r = (int(v) for v in picture[50, 110])  # the box's top edge, at a quarter of (400, 200)
    assert r > 200 and g < 50 and b < 50
    b, g, r = (int(v) for v in picture[59, 119])  # its bottom-right corner: (479, 239) / 4
    assert r > 200 and g < 50 and b < 50
    same = render_overlay(image[:64, :96], 64, 96, None, None, max_side=192)  # smaller than the cap: as it is
    assert cv2.imdecode(np.frombuffer(same, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (64, 96)


@pytest.mark.parametrize("value", ["s3.local:8333", "ftp://x"])
def test_an_endpoint_that_is_not_a_url_stops_the_start_naming_the_setting(monkeypatch, value):
    from line_runtime.settings import SettingsError, load_settings
    from worker.settings import WorkerSettings

    monkeypatch.setenv("WORKER_EVIDENCE_ENDPOINT", value)
    with pytest.raises(SettingsError, match="WORKER_EVIDENCE_ENDPOINT"):
        load_settings(WorkerSettings)


def test_an_endpoint_without_credentials_stops_the_start_naming_them(monkeypatch):
    from line_runtime.settings import SettingsError, load_settings
    from worker.settings import WorkerSettings

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKER_EVIDENCE_ENDPOINT", "http://127.0.0.1:8333")
    with pytest.raises(SettingsError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        load_settings(WorkerSettings)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    assert load_settings(WorkerSettings).evidence_endpoint == "http://127.0.0.1:8333"


def test_a_sampled_ok_frame_keeps_the_camera_png_as_its_overlay_and_a_defect_gets_the_heat():
    s3 = FakeS3()
    writer, registry = _writer(s3, sample_ok=1.0)
    writer.start()
    event, frame, raw = _event(4, 0.1)
    hot = np.ones((8, 8), np.float32)
    ok = writer.claim(event, raw, frame.image, 64, 64, Encoding.PNG, hot).evidence
    event, frame, raw = _event(5, 0.9)
    defect = writer.claim(event, raw, frame.image, 64, 64, Encoding.PNG, hot).evidence
    assert wait_until(lambda: registry.get_sample_value("inspection_evidence_written_total") == 2, 10)
    assert s3.objects[f"evidence/{ok.overlay_key}"][0] == s3.objects[f"evidence/{ok.frame_key}"][0]
    heat = cv2.imdecode(np.frombuffer(s3.objects[f"evidence/{defect.overlay_key}"][0], np.uint8), cv2.IMREAD_COLOR)
    assert np.ptp(heat[30, 30].astype(int)) > 40  # the whole map is hot: coloured, not grey
    writer.close(5)

"""Regions in the result event: a defect frame's event carries the boxes of its defect map in camera
pixels, an ok frame's none; the 4x4 region metric counts the strongest one; off means no maps asked."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from line_contracts.events import DefectEvent, Localisation
from line_harness.frames import frame_headers, png_bytes
from line_runtime.settings import SettingsError, load_settings
from tests.unit.worker.fakes import TP, FakeClock, FakeModel, FakePublisher, work_item
from worker.batching import END_OF_STREAM, Batcher
from worker.decode import DecodedFrame, DecodeLimits, decode_frame
from worker.halts import JudgingHalts
from worker.health import Health
from worker.inference import InferenceLoop
from worker.metrics import WorkerMetrics
from worker.model import ServingModel
from worker.offsets import OffsetTracker
from worker.pipeline import Pipeline
from worker.regions import RegionFinder
from worker.results import RecordFactory
from worker.settings import WorkerSettings

CAMERA = (96, 128)  # the camera's frame size (headers); the decoded image is at the model's 64x64


def _frame(index: int, spot: bool) -> DecodedFrame:
    image = np.zeros((64, 64), np.uint8)
    if spot:
        image[8:16, 40:48] = 255  # map cell (1, 5) of an 8x8 map
    return DecodedFrame(frame_headers(index, size=CAMERA), image, 0.001)


def _judge(model: FakeModel, frames: list[DecodedFrame], regions: RegionFinder | None, on_judged=None,
           size_policy: str = "resize"):
    """Run the inference loop over `frames`; returns (events as dicts, metrics registry)."""
    clock = FakeClock()
    metrics = WorkerMetrics(CollectorRegistry())
    tracker = OffsetTracker()
    pipe = Pipeline(tracker, FakePublisher(tracker), metrics, Health(metrics), JudgingHalts(metrics, 30))
    tracker.assign([TP])
    for offset, frame in enumerate(frames):
        pipe.items.put(work_item(offset, frame, clock(), generation=tracker.register(TP, offset)))
    pipe.items.put(END_OF_STREAM)
    # threshold 0.01: the spot frame (mean 64/4096 of 255) is a defect, the black one is ok
    models = SimpleNamespace(current=ServingModel(model, "fake", "1", "fake", 0.01, 64, 64), take_update=lambda: None)
    loop = InferenceLoop(pipe, Batcher(pipe.items, 8, 10, clock=clock), models,
                         RecordFactory("results", "dlq", "w-1", 1024), [1, 2, 4, 8], size_policy, pipe.halts,
                         regions=regions, on_judged=on_judged)
    loop.run()
    assert loop.error is None
    return [json.loads(r.value) for r in pipe.publisher.published if r.topic == "results"], metrics.registry


def test_a_defect_frame_carries_its_region_in_camera_pixels_and_an_ok_frame_none():
    model = FakeModel(map_shape=(8, 8))
    events, registry = _judge(model, [_frame(0, spot=True), _frame(1, spot=False)], RegionFinder(5, 0.5))
    defect, ok = events
    assert (defect["verdict"], ok["verdict"]) == ("defect", "ok")
    loc = Localisation.model_validate(defect["localisation"])
    assert (loc.map_height, loc.map_width) == (8, 8) and len(loc.regions) == 1
    region = loc.regions[0]
    # cell (1, 5) of 8x8 over a 96x128 camera frame: 12 x 16 pixels a cell
    assert (region.box.x, region.box.y, region.box.width, region.box.height) == (80, 12, 16, 12)
    assert region.peak == pytest.approx(1.0) and region.area_px == 12 * 16
    assert ok["localisation"] is None
    assert DefectEvent.model_validate(defect).localisation == loc  # the wire form reads back
    # box centre (88, 18) of 128x96 -> row 0, col 2 of the 4x4 grid
    get = registry.get_sample_value
    assert get("inspection_defect_regions_total", {"line": "line-1", "row": "0", "col": "2"}) == 1
    assert sum(s.value for m in registry.collect() if m.name == "inspection_defect_regions"
               for s in m.samples if s.name.endswith("_total")) == 1


def test_a_frame_fitted_into_the_model_input_gets_its_region_in_its_own_pixels_not_in_the_border():
    """The default policy pads a 32x64 frame into the 64x64 input with a mirrored border, which repeats the
    spot; the region is the spot in the camera's pixels, and the evidence hook gets the same placement."""
    camera = np.zeros((32, 64), np.uint8)
    camera[8:16, 40:48] = 255
    headers = frame_headers(0, size=camera.shape).to_kafka()
    frame = decode_frame(png_bytes(camera), headers, DecodeLimits(900_000, 4096 * 4096, 64, 64, "fit"))
    assert isinstance(frame, DecodedFrame) and frame.image[0:8, 40:48].min() == 255  # the mirror image
    # decoded for a 32x32 model, judged after a hot reload to 64x64: refitted from the camera's pixels
    stale = decode_frame(png_bytes(camera), headers, DecodeLimits(900_000, 4096 * 4096, 32, 32, "fit"))
    assert stale.image.shape == (32, 32) and np.array_equal(stale.camera_image, camera)
    placements = []

    def hook(event, item, frame, defect_map, placement):
        placements.append(placement)
        return event

    events, _ = _judge(FakeModel(map_shape=(8, 8)), [frame, stale], RegionFinder(5, 0.5), on_judged=hook,
                       size_policy="fit")
    for event in events:
        regions = Localisation.model_validate(event["localisation"]).regions
        assert [(r.box.x, r.box.y, r.box.width, r.box.height) for r in regions] == [(40, 8, 8, 8)]
    assert [(p.top, p.height) for p in placements] == [(16, 32), (16, 32)]


def test_regions_off_asks_the_model_for_no_maps_and_events_carry_none():
    model = FakeModel(map_shape=(8, 8))
    events, registry = _judge(model, [_frame(0, spot=True)], RegionFinder(0))
    assert events[0]["verdict"] == "defect" and events[0]["localisation"] is None
    assert model.map_requests == [False]
    assert registry.get_sample_value("inspection_defect_regions_total", {"line": "line-1", "row": "0", "col": "2"}) is None


def test_a_model_without_a_map_output_gives_defects_without_regions():
    events, _ = _judge(FakeModel(), [_frame(0, spot=True)], RegionFinder(5, 0.5))
    assert events[0]["verdict"] == "defect" and events[0]["localisation"] is None


def test_max_regions_caps_the_boxes_strongest_first():
    frame = _frame(0, spot=True)
    frame.image[40:48, 0:8] = 200  # a second, weaker spot: cell (5, 0)
    frame.image[56:64, 56:64] = 160  # a third, weaker still
    events, _ = _judge(FakeModel(map_shape=(8, 8)), [frame], RegionFinder(2, 0.5))
    peaks = [r["peak"] for r in events[0]["localisation"]["regions"]]
    assert len(peaks) == 2 and peaks == sorted(peaks, reverse=True) and peaks[0] == pytest.approx(1.0)


def test_the_judged_hook_sees_every_frame_with_its_map_and_may_amend_the_event():
    seen = []

    def hook(event, item, frame, defect_map, placement):
        seen.append((event.verdict.value, None if defect_map is None else defect_map.shape, item.offset))
        return event.model_copy(update={"worker_id": "amended"})

    events, _ = _judge(FakeModel(map_shape=(8, 8)), [_frame(0, spot=True), _frame(1, spot=False)],
                       RegionFinder(0), on_judged=hook)
    assert seen == [("defect", (8, 8), 0), ("ok", (8, 8), 1)]  # maps for the hook even with regions off
    assert [e["worker_id"] for e in events] == ["amended", "amended"]


@pytest.mark.parametrize("var,value", [("WORKER_MAX_REGIONS", "-1"), ("WORKER_MAX_REGIONS", "many"),
                                       ("WORKER_REGION_LEVEL", "1.5")])
def test_bad_region_settings_name_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings(WorkerSettings)
    assert var in str(err.value) and value in str(err.value)


def test_region_defaults():
    s = WorkerSettings()
    assert (s.max_regions, s.region_level) == (5, 0.5)

"""The numbers `watch` shows, computed on hand-made inputs with known answers (no Kafka)."""

from __future__ import annotations

import numpy as np
import pytest

from line_contracts.events import DeadLetterReason
from line_harness.sample_events import TRUTH_STREAM, make_dead_letter, make_event
from producer_sim.stats import Confusion, RateCounter, latency_summary, percentile
from producer_sim.watch_state import WatchState


def test_percentile_matches_numpy_linear_interpolation():
    rng = np.random.default_rng(1)
    values = rng.exponential(30.0, size=101).tolist()
    for q in (0, 1, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 50) == pytest.approx(55.0)
    assert percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 95) == pytest.approx(95.5)
    assert percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 99) == pytest.approx(99.1)
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_and_rates():
    s = latency_summary([5.0, 1.0, 3.0])
    assert s == {"count": 3, "p50": 3.0, "p95": pytest.approx(4.8), "p99": pytest.approx(4.96), "max": 5.0,
                 "mean": 3.0}
    assert latency_summary([])["p99"] is None
    r = RateCounter()
    for d in (True, False, False, False):
        r.add(d)
    assert r.to_dict() == {"results": 4, "defects": 1, "defect_rate": 0.25}


def test_confusion_scores_and_undefined_cases():
    c = Confusion()
    for verdict, truth in TRUTH_STREAM:
        c.add(verdict == "defect", truth == "defect")
    assert (c.tp, c.fp, c.tn, c.fn) == (3, 1, 4, 2)
    assert c.precision() == pytest.approx(0.75) and c.recall() == pytest.approx(0.6)
    assert c.accuracy() == pytest.approx(0.7)
    empty = Confusion()
    assert empty.precision() is None and empty.recall() is None and empty.accuracy() is None
    only_ok = Confusion(tn=5)
    assert only_ok.precision() is None and only_ok.recall() is None and only_ok.accuracy() == 1.0


def test_watch_state_on_a_known_stream():
    state = WatchState()
    base = 1_700_000_000_000_000_000
    for i, (verdict, truth) in enumerate(TRUTH_STREAM):
        camera = f"line-{1 + i % 2}-cam-{1 + i % 3}"
        event = make_event(i, verdict, truth, capture_ns=base, publish_ms=10.0 * (i + 1), line=camera[:6],
                           camera=camera)
        # received (i + 1) * 20 ms after capture
        assert state.add_result(event.to_json_bytes(), base + (i + 1) * 20_000_000) is not None
    state.add_result(make_event(10, "defect", None, capture_ns=base).to_json_bytes(), base)  # no truth
    assert state.add_result(make_event(0, "ok", None).to_json_bytes(), base) is None  # redelivery of offset 0
    assert state.add_result(b"{not json", base) is None
    state.add_dead_letter(make_dead_letter(100, DeadLetterReason.UNDECODABLE).to_json_bytes())
    state.add_dead_letter(make_dead_letter(101, DeadLetterReason.UNDECODABLE).to_json_bytes())
    state.add_dead_letter(make_dead_letter(101, DeadLetterReason.UNDECODABLE).to_json_bytes())  # redelivery
    state.add_dead_letter(make_dead_letter(102, DeadLetterReason.MISSING_HEADER).to_json_bytes())

    s = state.summary(elapsed_s=10.0)
    assert s["results"] == 11 and s["duplicates"] == 2 and s["unparseable"] == {"results": 1, "dead_letters": 0}
    assert s["defects"] == 5 and s["defect_rate"] == pytest.approx(5 / 11)
    pub = s["latency_ms"]["capture_to_publish"]
    assert pub["count"] == 11
    assert pub["p50"] == pytest.approx(percentile([10.0 * k for k in range(1, 11)] + [10.0], 50))
    recv = s["latency_ms"]["capture_to_receive"]
    assert recv["max"] == pytest.approx(200.0)
    assert recv["p99"] == pytest.approx(float(np.percentile([20.0 * k for k in range(1, 11)] + [0.0], 99)))
    t = s["truth"]
    assert (t["tp"], t["fp"], t["tn"], t["fn"], t["frames_with_truth"]) == (3, 1, 4, 2, 10)
    assert t["precision"] == pytest.approx(0.75) and t["recall"] == pytest.approx(0.6)
    assert t["accuracy"] == pytest.approx(0.7)
    assert s["dead_letters"] == 3 and s["dead_letters_by_reason"] == {"missing_header": 1, "undecodable": 2}
    assert s["frames_accounted"] == 14
    # frame i went to camera line-{1 + i%2}-cam-{1 + i%3}; frame 10 (defect) to line-1-cam-1
    assert s["by_line"]["line-1"]["results"] == 6 and s["by_line"]["line-2"]["results"] == 5
    assert sum(c["results"] for c in s["by_camera"].values()) == 11
    # line-2-cam-2 judged frames 1 (defect) and 7 (ok)
    assert s["by_camera"]["line-2-cam-2"] == {"results": 2, "defects": 1, "defect_rate": 0.5}


def located_event(i: int, verdict: str, truth: str | None, truth_box=None, strongest=None, second=None):
    """A schema-2 event: the frame's truth box and the worker's regions (strongest first), boxes as (x, y, w, h)."""
    from line_contracts.events import Box, DefectRegion, Localisation

    def box(xywh):
        return None if xywh is None else Box(x=xywh[0], y=xywh[1], width=xywh[2], height=xywh[3])

    event = make_event(i, verdict, truth)
    update = {"frame": event.frame.model_copy(update={"truth_box": box(truth_box)})}
    if strongest is not None:
        regions = [DefectRegion(box=box(b), peak=peak, area_px=b[2] * b[3])
                   for b, peak in ((strongest, 0.9), (second, 0.6)) if b is not None]
        update["localisation"] = Localisation(map_height=16, map_width=16, regions=regions)
    return event.model_copy(update=update)


def test_watch_state_scores_the_strongest_region_against_the_truth_box():
    state = WatchState()
    truth = (100, 100, 40, 20)
    stream = [
        located_event(0, "defect", "defect", truth, strongest=(120, 110, 32, 32)),                 # hit
        located_event(1, "defect", "defect", truth, strongest=(0, 0, 32, 32), second=(100, 100, 8, 8)),  # only the 2nd: miss
        located_event(2, "defect", "defect", truth, strongest=(139, 119, 5, 5)),                   # corner pixel: hit
        located_event(3, "defect", "defect", truth, strongest=(140, 100, 5, 5)),                   # just right of it: miss
        located_event(4, "defect", "defect", truth),                                               # no regions (no map)
        located_event(5, "defect", "ok", None, strongest=(0, 0, 8, 8)),                            # false alarm: not scored
        located_event(6, "ok", "defect", truth),                                                   # missed defect: not scored
        located_event(7, "defect", "defect", None, strongest=(0, 0, 8, 8)),                        # no truth box: not scored
    ]
    for event in stream:
        assert state.add_result(event.to_json_bytes(), 0) is not None
    loc = state.summary(1.0)["localisation"]
    assert loc == {"frames_with_truth_box": 5, "with_regions": 4, "hits": 2, "hit_rate": 0.5}
    assert WatchState().summary(1.0)["localisation"]["hit_rate"] is None


def test_watch_summary_text_names_the_localisation_hit_rate():
    from producer_sim.watch import format_watch_summary

    state = WatchState()
    state.add_result(located_event(0, "defect", "defect", (10, 10, 5, 5), strongest=(8, 8, 8, 8)).to_json_bytes(), 0)
    state.add_result(located_event(1, "defect", "defect", (10, 10, 5, 5)).to_json_bytes(), 0)
    s = state.summary(1.0)
    s.update(until=None, until_reached=None)
    text = format_watch_summary(s)
    assert "strongest region on the truth box 1/1 = 100.0%" in text and "1 events without regions" in text

"""Measured localisation: hit rate of the strongest region, pixel scores of the map, the report's overlays."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np
import pytest

from line_runtime.regions import find_regions
from training import metrics
from training.localise import LocalisationTally, cell_pixel_counts, frame_hit, mask_box, peak_distance


def test_weighted_pixel_scores_equal_the_scores_of_every_pixel():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 12, 300) / 12.0  # many ties, as a coarse map has
    labels = rng.integers(0, 2, 300)
    assert metrics.weighted_roc_auc(values, labels, 1 - labels) == pytest.approx(metrics.roc_auc(labels, values))
    assert metrics.weighted_average_precision(values, labels, 1 - labels) == pytest.approx(metrics.pr_auc(labels, values))
    # weights are pixel counts: one value standing for 3 positives is three positives of that value
    w = np.array([3.0, 0.0, 1.0]), np.array([1.0, 2.0, 0.0])
    expanded = metrics.roc_auc(np.array([1, 1, 1, 0, 0, 0, 1]), np.array([0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.5]))
    assert metrics.weighted_roc_auc(np.array([0.9, 0.2, 0.5]), *w) == pytest.approx(expanded)
    assert np.isnan(metrics.weighted_roc_auc(np.ones(2), np.zeros(2), np.ones(2)))


def test_cell_counts_are_the_map_upsampled_to_the_frame():
    rng = np.random.default_rng(0)
    cells = rng.random((5, 7)).astype(np.float32)
    mask = np.zeros((37, 51), np.uint8)
    cv2.ellipse(mask, (30, 20), (9, 5), 30, 0, 360, 255, -1)
    values, pos, neg = cell_pixel_counts(cells, mask)
    rows = np.arange(37) * 5 // 37
    cols = np.arange(51) * 7 // 51
    full = cells[rows][:, cols]  # each pixel takes its cell's value
    truth = (mask > 0).astype(int).ravel()
    assert pos.sum() == truth.sum() and pos.sum() + neg.sum() == mask.size
    assert metrics.weighted_roc_auc(values, pos, neg) == pytest.approx(metrics.roc_auc(truth, full.ravel()))


def test_the_strongest_region_hits_when_its_box_holds_a_mask_pixel():
    cells = np.zeros((8, 8), np.float32)
    cells[2, 5] = 0.9  # frame 80x80: cell (2, 5) is x 50..59, y 20..29
    cells[6, 1] = 0.6
    loc = find_regions(cells, 80, 80)
    mask = np.zeros((80, 80), np.uint8)
    mask[29, 59] = 255  # the corner pixel of the strongest box
    assert frame_hit(loc, mask) and mask_box(mask) == (59, 29, 1, 1)
    mask[:] = 0
    mask[60:70, 10:20] = 255  # only the second region lies on it: not a hit
    assert not frame_hit(loc, mask)


def test_peak_distance_is_zero_on_the_defect_and_counts_frame_pixels_to_it_elsewhere():
    mask = np.zeros((40, 80), np.uint8)
    mask[10:12, 40:50] = 255
    cells = np.zeros((4, 8), np.float32)
    cells[1, 4] = 1.0  # cell (1, 4): centre (15, 45) in the frame, 3.5 px below the mask's last row
    assert peak_distance(cells, mask) == pytest.approx(np.hypot(3.5, 0.5))  # to the pixel centre (11.5, 45.5)
    cells[:] = 0.0
    cells[1, 4], cells[0, 4] = 0.5, 0.9  # cell (0, 4): centre (5, 45), a map [h, w, 1] works too
    assert peak_distance(cells[..., None], mask) == pytest.approx(np.hypot(5.5, 0.5))
    mask[15, 45] = 255
    cells[1, 4] = 1.0
    assert peak_distance(cells, mask) == 0.0  # the centre pixel is a defect pixel
    cells[:] = 0.0
    cells[0:3, 0:3] = 1.0  # a saturated 3x3 block: its middle cell (1, 1), centre (15, 15), stands for it
    assert peak_distance(cells, mask) == pytest.approx(np.hypot(3.5, 25.5))  # to (11.5, 40.5), not from (5, 5)


def test_tally_counts_masked_defects_whatever_the_verdict_and_says_which_missed():
    tally = LocalisationTally(level=0.5, max_regions=3)
    on, off = np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)
    on[0, 0], off[3, 3] = 1.0, 1.0
    mask = np.zeros((40, 40), np.uint8)
    mask[2:6, 2:6] = 255  # top-left cell
    tally.add(on, 1, mask, (40, 40))      # hit
    tally.add(off, 1, mask, (40, 40))     # miss
    tally.add(on, 1, None, (40, 40))      # defect without a mask: not judged
    tally.add(off * 0.1, 0, None, (40, 40))  # ok frame: pixels all clear
    summary = tally.summary(np.array([1, 1, 1, 0]), np.array([True, False, True, False]), ["a", "b", "c", "d"])
    assert (summary["defective_with_mask"], summary["hits"], summary["hit_rate"]) == (2, 1, 0.5)
    assert (summary["judged_defect_with_mask"], summary["hit_rate_judged_defect"]) == (1, 1.0)
    assert summary["misses"] == ["b"] and summary["region_level"] == 0.5 and summary["map_size"] == [4, 4]
    assert summary["strongest_box_frame_share_median"] == pytest.approx(1 / 16)
    # the highest cell: on the defect (0 px), or in the far corner cell, (35, 35) to the mask's (5.5, 5.5) pixel centre
    assert summary["peak_distance_px_median"] == pytest.approx((0.0 + np.hypot(29.5, 29.5)) / 2)
    assert summary["peak_within_one_cell"] == 0.5
    assert 0.5 < summary["pixel_roc_auc"] < 1.0
    empty = LocalisationTally().summary(np.zeros(0), np.zeros(0, bool), [])
    assert empty["hit_rate"] is None and empty["pixel_roc_auc"] is None and empty["region_level"] == 0.5


def _mapped_model(base, size):
    """The tiny scorer plus a map that is high where a cell is darker than the frame: a real SavedModel."""
    import tf_keras as keras

    from training.export import export_version
    from training.tiny_model import tiny_scorer

    pixels = keras.Input((None, None, 1))
    cells = keras.layers.AveragePooling2D(8)(pixels)
    mean = keras.layers.GlobalAveragePooling2D(keepdims=True)(pixels)
    darker = keras.layers.Subtract()([mean, cells])
    mapped = keras.layers.Activation("sigmoid")(keras.layers.Rescaling(0.5, offset=-10.0)(darker))
    return export_version(tiny_scorer(), base, name="mapped", input_size=size, threshold=0.5, litert=False,
                          mapper=keras.Model(pixels, mapped), log=lambda _: None)


def test_evaluate_measures_localisation_on_a_masked_folder_set_and_draws_overlays(tmp_path):
    from training.evaluate import evaluate

    version = _mapped_model(tmp_path / "models", (64, 96))
    rng = np.random.default_rng(1)
    spots = [(8, 8), (40, 56), (16, 72), (48, 16)]
    for folder in ("defect", "ok", "masks"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    for i, (y, x) in enumerate(spots):
        frame = rng.normal(128, 3, (64, 96)).clip(0, 255).astype(np.uint8)
        frame[y : y + 8, x : x + 8] = 40  # a dark square filling one map cell
        cv2.imwrite(str(tmp_path / "data" / "defect" / f"d{i}.png"), frame)
        mask = np.zeros((64, 96), np.uint8)
        my, mx = (y, x) if i < 3 else (0, 88)  # the last mask is drawn elsewhere: that frame must miss
        mask[my : my + 8, mx : mx + 8] = 255
        cv2.imwrite(str(tmp_path / "data" / "masks" / f"d{i}.png"), mask)
        cv2.imwrite(str(tmp_path / "data" / "ok" / f"o{i}.png"), rng.normal(128, 3, (64, 96)).clip(0, 255).astype(np.uint8))
    result = evaluate(version, tmp_path / "data", None, tmp_path / "report", backend="tensorflow", log=lambda _: None)
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["localization_hit_rate"] == result["localization_hit_rate"] == 0.75
    assert saved["localisation"]["misses"] == [str(tmp_path / "data" / "defect" / "d3.png")]
    assert saved["localisation"]["map_size"] == [8, 12] and saved["localisation"]["defective_with_mask"] == 4
    assert 0.5 < saved["pixel_roc_auc"] <= 1.0 and 0.0 < saved["pixel_ap"] <= 1.0
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<h2>Localisation</h2>" in page and "strongest region OFF the defect" in page
    assert page.count('src="data:image/png;base64,') >= 2  # the miss and the correct sample, embedded
    # without the map the frame-level numbers are the same and localisation says why it is absent
    plain = evaluate(version, tmp_path / "data", None, tmp_path / "plain", backend="tensorflow", log=lambda _: None, localise=False)
    assert plain["localization_hit_rate"] is None and "not asked" in plain["localisation"]["note"]
    assert [plain[k] for k in ("tp", "fp", "fn", "tn", "roc_auc")] == [result[k] for k in ("tp", "fp", "fn", "tn", "roc_auc")]


def test_evaluate_brings_frames_of_another_size_to_the_model_as_the_worker_policy_does(tmp_path):
    """Frames of 32x96 for a 64x96 model: `fit` pads them with a mirrored border, which repeats the defect above
    it; the worker reads no region there, and neither does evaluate, so the strongest region is the defect's.
    `resize` stretches them instead; a policy that judges nothing is refused by name."""
    from training.evaluate import evaluate

    version = _mapped_model(tmp_path / "models", (64, 96))
    rng = np.random.default_rng(2)
    for folder in ("defect", "ok", "masks"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    for i in range(3):
        frame = rng.normal(128, 3, (32, 96)).clip(0, 255).astype(np.uint8)
        frame[8:16, 40:48] = 40  # fitted: input rows 24-32; its mirror image: rows 0-8, the map's first row
        cv2.imwrite(str(tmp_path / "data" / "defect" / f"d{i}.png"), frame)
        mask = np.zeros((32, 96), np.uint8)
        mask[8:16, 40:48] = 255
        cv2.imwrite(str(tmp_path / "data" / "masks" / f"d{i}.png"), mask)
        cv2.imwrite(str(tmp_path / "data" / "ok" / f"o{i}.png"), rng.normal(128, 3, (32, 96)).clip(0, 255).astype(np.uint8))
    fitted = evaluate(version, tmp_path / "data", None, tmp_path / "fit", backend="tensorflow", log=lambda _: None)
    assert fitted["data"]["size_policy"] == "fit" and fitted["data"]["resized_frames"] == 6
    assert fitted["localization_hit_rate"] == 1.0 and fitted["localisation"]["peak_distance_px_median"] == 0
    stretched = evaluate(version, tmp_path / "data", None, tmp_path / "resize", backend="tensorflow",
                         log=lambda _: None, size_policy="resize")
    assert stretched["data"]["size_policy"] == "resize" and stretched["localization_hit_rate"] == 1.0
    with pytest.raises(ValueError, match="--size-policy"):
        evaluate(version, tmp_path / "data", None, tmp_path / "x", log=lambda _: None, size_policy="reject")

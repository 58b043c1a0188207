"""Synthetic defects and masked data sets give the pool a truth box: the mask's bounding box in frame pixels."""

from __future__ import annotations

import numpy as np

from line_contracts.frame import Encoding, FrameHeaders, TruthLabel
from producer_sim.settings import SimSettings
from producer_sim.sources import box_of, build_pool
from surface_images.synthetic import SyntheticFrames


def test_box_of_a_mask_and_of_none():
    mask = np.zeros((20, 30), np.uint8)
    mask[4:9, 10:25] = 255
    assert box_of(mask) == "10,4,15,5"
    assert box_of(np.zeros((5, 5), np.uint8)) is None and box_of(None) is None


def test_synthetic_defects_carry_the_box_of_their_mask_and_ok_frames_none():
    settings = SimSettings(pool_size=30, defect_rate=0.5, seed=3, frame_width=128, frame_height=128)
    pool = build_pool(settings)
    gen = SyntheticFrames(seed=3, size=(128, 128), defect_rate=0.5)
    defects = 0
    for i, frame in enumerate(pool.frames):
        sample = gen.sample(i)
        if frame.truth is TruthLabel.DEFECT:
            defects += 1
            assert frame.truth_box == box_of(sample.mask)
            headers = FrameHeaders(camera_id="c", line_id="l", frame_seq=i, capture_time_ns=1, encoding=Encoding.PNG,
                                   width=128, height=128, truth_label=frame.truth, truth_box=frame.truth_box)
            x, y, w, h = headers.truth_xywh()
            assert np.all(sample.mask[y : y + h, x : x + w].any()) and x + w <= 128 and y + h <= 128
        else:
            assert frame.truth_box is None
    assert defects >= 5


def test_a_resized_frame_gets_its_box_resized_too(tmp_path):
    import cv2

    (tmp_path / "defect").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "ok").mkdir()
    cv2.imwrite(str(tmp_path / "defect" / "a.png"), np.full((100, 200), 120, np.uint8))
    mask = np.zeros((100, 200), np.uint8)
    mask[20:40, 100:140] = 255
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    cv2.imwrite(str(tmp_path / "ok" / "b.png"), np.full((100, 200), 120, np.uint8))
    pool = build_pool(SimSettings(source_dir=tmp_path, pool_size=2, frame_width=100, frame_height=50))
    boxes = {f.origin.rsplit("/", 1)[-1]: f.truth_box for f in pool.frames}
    assert boxes == {"a.png": "50,10,20,10", "b.png": None}

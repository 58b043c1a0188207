"""The synthetic frame generator: deterministic, labelled, DAGM-like, fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from surface_images.synthetic import DEFECTS, SyntheticFrames


def test_defect_scale_enlarges_defects_and_keeps_everything_else():
    plain, grown = SyntheticFrames(seed=3), SyntheticFrames(seed=3, defect_scale=4.0)
    areas = []
    for i in range(12):
        a, b = plain.sample(i), grown.sample(i)
        assert (a.label, a.kind, a.texture) == (b.label, b.kind, b.texture)
        if a.label == 0:
            assert np.array_equal(a.image, b.image)
        elif a.kind != "smudge":  # smudges are already large and are left alone
            areas.append(((a.mask > 0).sum(), (b.mask > 0).sum()))
    assert areas and all(big > small for small, big in areas)
    assert np.array_equal(SyntheticFrames(seed=3, defect_scale=1.0).sample(1).image, plain.sample(1).image)
    with pytest.raises(ValueError, match="defect_scale"):
        SyntheticFrames(defect_scale=0.5)


def test_same_seed_and_index_give_the_same_frame():
    a = SyntheticFrames(seed=4).sample(17)
    b = SyntheticFrames(seed=4).sample(17)
    c = SyntheticFrames(seed=5).sample(17)
    assert np.array_equal(a.image, b.image) and a.label == b.label and a.kind == b.kind
    assert not np.array_equal(a.image, c.image)


def test_labels_masks_and_kinds_are_consistent():
    frames = SyntheticFrames(seed=1, size=(256, 320), defect_rate=0.5)
    samples = frames.batch(0, 120)
    kinds = {s.kind for s in samples}
    assert set(DEFECTS) <= kinds and "ok" in kinds
    for s in samples:
        assert s.image.shape == (256, 320) and s.image.dtype == np.uint8
        assert s.mask.shape == (256, 320) and s.mask.dtype == np.uint8
        assert (s.label == 1) == (s.kind != "ok") == bool(s.mask.any())
    assert 0.35 < np.mean([s.label for s in samples]) < 0.65


def test_scratches_are_thin_and_visible():
    frames = SyntheticFrames(seed=2)
    scratches = [s for s in frames.batch(0, 80) if s.kind == "scratch"]
    assert scratches
    for s in scratches:
        # thin: the (dilated) mask covers well under 1% of a 512x512 frame
        assert 0 < (s.mask > 0).mean() < 0.01


def test_defect_rate_extremes_and_bad_arguments():
    assert all(s.label == 0 for s in SyntheticFrames(defect_rate=0.0).batch(0, 20))
    assert all(s.label == 1 for s in SyntheticFrames(defect_rate=1.0).batch(0, 20))
    with pytest.raises(ValueError, match="defect_rate"):
        SyntheticFrames(defect_rate=1.5)
    with pytest.raises(ValueError, match="size"):
        SyntheticFrames(size=(8, 8))


def test_fast_enough_for_the_simulator():
    frames = SyntheticFrames(seed=0)
    start = time.perf_counter()
    frames.batch(0, 100)
    assert 100 / (time.perf_counter() - start) > 40  # ~140/s measured on one busy core

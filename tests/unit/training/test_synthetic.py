"""Synthetic stains (`--synthetic-stains`, training/synthetic.py): a soft patch with an exact mask,
pasted only on ok frames outside the epoch's clean picks, trained as a defect with a known mask."""

from __future__ import annotations

import numpy as np
import pytest

from training.cli import build_parser
from training.pipeline import ArraySet, BatchSampler
from training.plan import make_plan
from training.synthetic import paste_stain


def _flat(shape=(64, 96), value=120.0) -> np.ndarray:
    return np.full(shape, value, np.float32)


def test_the_patch_shows_where_its_mask_says_and_nowhere_else_in_both_polarities():
    signs = set()
    for seed in range(20):
        frame = _flat()
        stained, mask = paste_stain(frame, np.random.default_rng(seed))
        assert mask.dtype == np.uint8 and mask.shape == frame.shape and mask.any()
        step = stained - frame
        inside, outside = step[mask > 0], step[mask == 0]
        assert np.abs(inside).min() >= 0.5 * np.abs(step).max() - 1e-3  # the mask is where the patch is at least half strength
        assert np.abs(inside).mean() > np.abs(outside).mean()
        assert np.abs(step).max() >= 0.8 * 6.0 - 1e-3  # a flat frame still gets a visible patch (MIN_STD)
        signs.add(float(np.sign(inside.mean())))
    assert signs == {-1.0, 1.0}


def test_extremes_channels_keep_their_order_and_pixels_stay_in_range():
    rng = np.random.default_rng(0)
    avg = rng.uniform(20, 235, (64, 64)).astype(np.float32)
    image = np.stack([avg, avg - 15, avg + 15], -1).clip(0, 255)
    for seed in range(10):
        stained, _ = paste_stain(image, np.random.default_rng(seed))
        assert stained.min() >= 0 and stained.max() <= 255
        assert (stained[..., 1] <= stained[..., 0] + 1e-4).all() and (stained[..., 0] <= stained[..., 2] + 1e-4).all()


def _data(n_def=10, n_ok=30) -> ArraySet:
    n = n_def + n_ok
    images = np.full((n, 64, 64), 120, np.uint8)
    labels = np.r_[np.ones(n_def), np.zeros(n_ok)].astype(np.int64)
    has_mask = np.r_[np.zeros(n_def, bool), np.ones(n_ok, bool)]  # image-level defects; ok frames: all clear
    return ArraySet(images, np.zeros((n, 64, 64), np.uint8), labels, [f"f{i}" for i in range(n)], has_mask)


def test_an_epoch_adds_stained_ok_frames_as_defects_with_their_masks():
    data = _data()
    sampler = BatchSampler(data, 4, 8, None, seed=1, balanced=True, synthetic_stains=0.5)
    batches = list(sampler.epoch())
    assert len(batches) == sampler.steps() == int(np.ceil((10 + 10 + 5) / 4))
    labels = np.concatenate([b[1] for b in batches])
    targets = np.concatenate([b[2] for b in batches])
    known = np.concatenate([b[3] for b in batches])
    pixels = np.concatenate([b[0] for b in batches])
    assert labels.sum() == 10 + 5 and len(labels) == 25
    stained = (labels == 1) & (known == 1)  # real defects here have no mask: the known-mask defects are the stains
    assert stained.sum() == 5
    assert all(targets[i].any() for i in np.flatnonzero(stained))
    assert not targets[labels == 0].any() and (known[labels == 0] == 1).all()
    flat_ok = np.abs(pixels[labels == 0] - pixels[labels == 0].mean(axis=(1, 2, 3), keepdims=True)).max()
    assert flat_ok < 1e-3  # clean ok frames stay clean (only brightness/contrast jitter of a flat frame)


def test_without_the_option_an_epoch_is_as_before():
    sampler = BatchSampler(_data(), 4, 8, None, seed=1, balanced=True)
    labels = np.concatenate([b[1] for b in sampler.epoch()])
    assert len(labels) == 20 and labels.sum() == 10
    with pytest.raises(ValueError, match="whole-frame recipe"):
        BatchSampler(_data(), 4, 8, 32, seed=1, balanced=True, synthetic_stains=0.5)


def test_the_plan_records_synthetic_stains_and_stops_on_a_bad_value_or_crops():
    parser = build_parser()
    labels, sizes = [1] * 30 + [0] * 30, [(200, 300)] * 60
    plan = make_plan(parser.parse_args(["train", "--data", "d", "--out", "o", "--synthetic-stains", "0.5"]), labels, sizes, masks=0)
    assert plan.synthetic_stains == 0.5 and any("synthetic stains" in line for line in plan.lines())
    assert make_plan(parser.parse_args(["train", "--data", "d", "--out", "o"]), labels, sizes, masks=0).synthetic_stains == 0.0
    with pytest.raises(ValueError, match="--synthetic-stains 3"):
        make_plan(parser.parse_args(["train", "--data", "d", "--out", "o", "--synthetic-stains", "3"]), labels, sizes, masks=0)
    with pytest.raises(ValueError, match="whole-frame recipe"):  # every defect has a mask: the crops recipe
        make_plan(parser.parse_args(["train", "--data", "d", "--out", "o", "--synthetic-stains", "0.5"]), labels, sizes, masks=30)

"""Training batches are standardised by their whole frame, as the model's own layer does at serving time.

The model standardises each frame it is given (mean 128, spread 40). Trained on crops, that layer
would see only the crop, whose mean and spread are not the frame's: a defect filling a crop is
toned down, a quiet patch of texture is blown up. So BatchSampler standardises by the whole frame
and the training model's layer passes its batches through (build_models `standardised_in_training`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import numpy as np
import pytest

from training.model import ModelConfig, build_models
from training.pipeline import ArraySet, BatchSampler


def _serving_standardised(frames: np.ndarray, small_backbone) -> np.ndarray:
    """Frames [N,h,w] as the scorer's standardising layer leaves them (inference mode)."""
    import tf_keras as keras

    _, scorer = build_models(ModelConfig(model_height=frames.shape[1], model_width=frames.shape[2]), small_backbone,
                             standardised_in_training=True)
    layer = scorer.get_layer("standardize")
    return keras.Model(scorer.input, layer.output)(frames[..., None].astype(np.float32), training=False).numpy()[..., 0]


def _windows(frame: np.ndarray, size: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(frame, (size, size)).reshape(-1, size, size)


def _matches_a_window(patch: np.ndarray, frame: np.ndarray) -> bool:
    """Whether `patch` is a window of `frame`, turned or mirrored (the sampler's flips), or of its negative."""
    windows = _windows(frame, patch.shape[0])
    for candidate in (patch, 256.0 - patch):  # a negative of a standardised frame is 256 minus it
        for turned in (candidate, candidate.T):
            for view in (turned, turned[::-1], turned[:, ::-1], turned[::-1, ::-1]):
                if np.abs(windows - view).max(axis=(1, 2)).min() < 1e-3:
                    return True
    return False


@pytest.mark.parametrize("augment", [False, True])
def test_a_crop_is_standardised_by_its_whole_frame(small_backbone, augment):
    rng = np.random.default_rng(4)
    # mid-grey noise (no clipping under the brightness changes) with a quiet half and a busy half,
    # so a crop's own mean and spread are far from the frame's
    frames = np.clip(rng.normal(125, 8, (3, 96, 128)), 60, 190)
    frames[:, :, 64:] = np.clip(rng.normal(125, 30, (3, 96, 64)), 60, 190)
    frames = frames.astype(np.uint8)
    masks = np.zeros_like(frames)
    masks[0, 40:48, 20:30] = 255
    data = ArraySet(frames, masks, np.array([1, 0, 0]), ["a", "b", "c"])
    served = _serving_standardised(frames, small_backbone)
    sampler = BatchSampler(data, 3, 8, 32, seed=5, augment=augment, invert=0.5 if augment else 0.0, repeats=4, standardize=True)
    seen = 0
    for pixels, _, _, _ in sampler.epoch():
        for crop in pixels[..., 0]:
            own = (crop - crop.mean()) / crop.std() * 40 + 128
            assert any(_matches_a_window(crop, frame) for frame in served)
            assert not any(_matches_a_window(own, frame) for frame in served)  # the crop's own statistics would differ
            seen += 1
    assert seen == 12


def test_whole_frames_are_standardised_exactly_as_the_model_does(small_backbone):
    rng = np.random.default_rng(9)
    frames = rng.integers(0, 256, (4, 48, 64)).astype(np.uint8)
    data = ArraySet(frames, np.zeros_like(frames), np.array([1, 0, 1, 0]), list("abcd"))
    as_is = np.concatenate([p for p, _, _, _ in BatchSampler(data, 2, 8, None, seed=2).epoch()])
    done = np.concatenate([p for p, _, _, _ in BatchSampler(data, 2, 8, None, seed=2, standardize=True).epoch()])
    # the same random draws either way; the sampler's standardising equals the layer's on the augmented frames
    expected = _serving_standardised(as_is[..., 0], small_backbone)
    np.testing.assert_allclose(done[..., 0], expected, atol=1e-3)


def test_the_training_model_passes_standardised_batches_through_and_the_scorer_does_not(small_backbone):
    import tf_keras as keras

    train_model, scorer = build_models(ModelConfig(model_height=32, model_width=32), small_backbone, standardised_in_training=True)
    probe = keras.Model(train_model.input, train_model.get_layer("standardize").output)
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_array_equal(probe(pixels, training=True).numpy(), pixels)
    served = probe(pixels, training=False).numpy()
    np.testing.assert_allclose(served.mean(axis=(1, 2, 3)), [128, 128], atol=1e-2)
    np.testing.assert_allclose(served.std(axis=(1, 2, 3)), [40, 40], rtol=1e-3)
    # without the flag (tests, re-export) the layer standardises in training too
    plain, _ = build_models(ModelConfig(model_height=32, model_width=32), small_backbone)
    plain_probe = keras.Model(plain.input, plain.get_layer("standardize").output)
    np.testing.assert_allclose(plain_probe(pixels, training=True).numpy(), served, atol=1e-3)

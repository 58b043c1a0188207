"""Synthetic stains: soft patches pasted on ok training frames, as extra defects with a known mask.

A plant's folders hold a few dozen examples of each large, faint defect (stains, uneven
coating), too few for a backbone trained from scratch to learn the kind in 20 minutes, while
its ok frames are plentiful. A soft patch of either polarity pasted on an ok frame is a
defect whose footprint is known exactly, so it trains the segmentation head with pixel
supervision (the mixed-supervision path) on the plant's own surface. Validation, the
threshold and the held-out part see only real frames, so the quality gate stays honest.

The patch is deliberately generic (an ellipse of random size, aspect, angle and softness,
contrast scaled to the frame's own texture), not a copy of any test set's defects.
"""

from __future__ import annotations

import cv2
import numpy as np

# Patch size as a fraction of the frame's short side, and contrast in units of the frame's
# standard deviation (at least MIN_STD grey levels, so flat frames get visible patches too).
AXIS_RANGE = (0.03, 0.15)
CONTRAST_RANGE = (0.8, 2.5)
MIN_STD = 6.0


def paste_stain(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image with a soft patch added, uint8 mask 255 where the patch is at least half strength).

    `image` is float [h, w] or [h, w, C] on 0..255; every channel gets the same patch, so the
    extremes downscale's channels keep minimum <= average <= maximum. Returns a new array.
    """
    h, w = image.shape[:2]
    short = min(h, w)
    axes = (max(2, int(rng.uniform(*AXIS_RANGE) * short)), max(2, int(rng.uniform(*AXIS_RANGE) * short)))
    centre = (int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.1, 0.9) * h))
    canvas = np.zeros((h, w), np.float32)
    cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(canvas, (0, 0), max(1.0, rng.uniform(0.15, 0.5) * min(axes)))
    alpha /= max(float(alpha.max()), 1e-6)
    grey = image[..., 0] if image.ndim == 3 else image
    contrast = rng.uniform(*CONTRAST_RANGE) * max(float(grey.std()), MIN_STD) * (1.0 if rng.random() < 0.5 else -1.0)
    patch = contrast * alpha
    out = image + (patch[..., np.newaxis] if image.ndim == 3 else patch)
    return np.clip(out, 0, 255).astype(np.float32), np.where(alpha >= 0.5, 255, 0).astype(np.uint8)

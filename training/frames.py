"""Frame geometry: the camera size of a data set, the working size inside the model, and the
one resize both training and serving use.

Rules (documented in docs/training.md, recorded in metadata.json `architecture`):

* **Camera size** = the most common image size in the training data (ties: the larger), when it
  holds at least half of the images. When no size does (every image its own size, as in sets
  cropped around parts), the most common size is an accident of a few coincidences, so the camera
  size is the 90th percentile of the heights x that of the widths instead: nine images in ten need
  no shrinking on either side (shrinking is what loses a thin defect; padding loses nothing), and
  a few giant images do not blow the frame up. Images of another size are fitted into it
  keeping their aspect ratio: shrunk (area) only when they do not fit, never enlarged, then padded
  by mirroring the surface (no stretching, no black bars that a model could learn as a cue).
  The rule is `line_runtime.framing.fit_to_frame`, so the worker's size policy `fit` applies the
  very same one to a live frame of another size.
* **Working size** = the camera size scaled by one factor `s` (aspect kept):
  `s = min(1, sqrt(max_pixels / (H*W)))`, enlarged so the short side is at least
  `MIN_SHORT_SIDE`, each side then rounded to a multiple of `SIDE_MULTIPLE` (aspect changes by
  under 4 pixels). `max_pixels` comes from the recipe's time budget (training/plan.py).
* **Resize** (`to_working_size`): integer part of the shrink as average pooling, the rest (and
  any enlargement) bilinear. Both are LiteRT builtins (`tf.image.resize(method="area")` is not),
  and training prepares its images with this very function, so the model never sees frames
  resized differently at serving time.
* **Downscale** `extremes` (optional, `--downscale extremes`): the shrink gives three channels
  instead of one, the block average, minimum and maximum. Averaging a 4x4 block dilutes a
  one-pixel scratch to a quarter of its contrast and hides it in the texture; its minimum (dark
  defects) or maximum (bright ones) keeps the full contrast, at the same working size and so the
  same backbone cost. The backbone takes three channels anyway (grey is otherwise copied to RGB).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from line_runtime.framing import fit_to_frame

MIN_SHORT_SIDE = 64  # below this the stride-8 feature map has too few cells to pool over
# Working sides are multiples of the backbone's stride, so that the defect map has exactly
# side/stride cells (EfficientNet's strided layers round odd sides down) and masks line up with it.
SIDE_MULTIPLE = 8
DOWNSCALES = ("area", "extremes")


def channels(downscale: str) -> int:
    """Channels of a working-size image: 1 (area average) or 3 (average, minimum, maximum)."""
    if downscale not in DOWNSCALES:
        raise ValueError(f"downscale must be one of {DOWNSCALES}, got {downscale!r}")
    return 3 if downscale == "extremes" else 1


def dominant_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """The most common (height, width) (ties: the larger frame) if it holds at least half of the images, else None."""
    if not sizes:
        raise ValueError("no image sizes to choose a camera size from")
    counts = Counter(tuple(s) for s in sizes)
    top = max(counts, key=lambda s: (counts[s], s[0] * s[1], s))
    return top if 2 * counts[top] >= len(sizes) else None  # type: ignore[return-value]


VARIED_SIZE_PERCENTILE = 90  # sizes vary: the camera size holds this share of the images on each side unshrunk


def camera_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The dominant size; when sizes vary (no size holds half the images), the 90th percentile of each side."""
    top = dominant_size(sizes)
    if top is not None:
        return top
    return tuple(int(np.percentile([s[i] for s in sizes], VARIED_SIZE_PERCENTILE, method="higher"))  # type: ignore[return-value]
                 for i in (0, 1))


def working_size(frame: tuple[int, int], max_pixels: int, multiple: int = SIDE_MULTIPLE) -> tuple[int, int]:
    """The size inside the model for frames of `frame` (height, width): same aspect, at most max_pixels.

    Sides are multiples of `multiple`, the backbone's output stride: on any other size the defect
    map's grid and the training targets' grid differ by a cell and training cannot start.
    """
    h, w = frame
    scale = min(1.0, float(np.sqrt(max_pixels / float(h * w))))
    scale = max(scale, MIN_SHORT_SIDE / float(min(h, w)))
    return tuple(max(multiple, multiple * int(round(side * scale / multiple))) for side in (h, w))  # type: ignore[return-value]


def fit_truth_to_frame(mask: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """A true defect mask (0/255) fitted as `fit_to_frame` fits its image, with the padding left clear.

    The image's mirrored border repeats the defect, but a region found there lies outside the camera
    frame, so scoring where a model points counts only the defect the frame really has. (Training
    mirrors masks with their images instead: there the copy is a defect the network does see.)
    """
    return np.where(fit_to_frame(mask, frame, pad="constant") > 0, 255, 0).astype(np.uint8)


def to_working_size(pixels: Any, model_size: tuple[int, int], downscale: str = "area") -> Any:
    """TensorFlow op: float [N, H, W, 1] frames -> [N, h, w, C] at the working size (LiteRT-safe); C from `channels`."""
    import tensorflow as tf

    height, width = int(pixels.shape[1]), int(pixels.shape[2])
    pool = (max(1, height // model_size[0]), max(1, width // model_size[1]))
    if channels(downscale) == 3:
        if pool == (1, 1):
            pixels = tf.concat([pixels, pixels, pixels], axis=-1)
        else:
            # min(x) = -max(-x): max pooling is a LiteRT builtin, min pooling is not.
            pixels = tf.concat([tf.nn.avg_pool2d(pixels, ksize=pool, strides=pool, padding="VALID"),
                                -tf.nn.max_pool2d(-pixels, ksize=pool, strides=pool, padding="VALID"),
                                tf.nn.max_pool2d(pixels, ksize=pool, strides=pool, padding="VALID")], axis=-1)
    elif pool != (1, 1):
        # Average pooling is exact area resizing for the whole-number part of a shrink.
        pixels = tf.nn.avg_pool2d(pixels, ksize=pool, strides=pool, padding="VALID")
    if (int(pixels.shape[1]), int(pixels.shape[2])) != tuple(model_size):
        pixels = tf.image.resize(pixels, model_size, method="bilinear")
    return pixels


PREPARE_BYTES = 64 * 2**20


def prepare(images: np.ndarray, model_size: tuple[int, int], batch: int = 32, downscale: str = "area") -> np.ndarray:
    """uint8 [N, H, W] camera frames -> [N, h, w] (area) or [N, h, w, 3] (extremes), via `to_working_size`.

    Frames already at the working size come back as they are (uint8). Resized ones come back as
    float32, the very values the exported model computes from the camera frame: rounding them to
    uint8 moved a held-out score by up to 0.06 (median 0.0005) on a varied-size set, so the
    threshold `train` chose and the held-out numbers it printed were for slightly different
    frames than the worker judges. Four bytes a pixel instead of one: 600 frames of 368x568 take
    0.5 GB.
    """
    if images.shape[1:3] == tuple(model_size) and channels(downscale) == 1:
        return images
    import tensorflow as tf

    # at most ~64 MB of float pixels per step: 32 frames of 5 MP would take 640 MB at a time
    batch = max(1, min(batch, PREPARE_BYTES // max(1, 4 * images.shape[1] * images.shape[2])))
    out = []
    for start in range(0, len(images), batch):
        chunk = tf.constant(images[start : start + batch, ..., None], tf.float32)
        resized = to_working_size(chunk, model_size, downscale).numpy()
        out.append(resized[..., 0] if channels(downscale) == 1 else resized)
    shape = (0, *model_size) + (() if channels(downscale) == 1 else (3,))
    return np.concatenate(out) if out else np.zeros(shape, np.float32)

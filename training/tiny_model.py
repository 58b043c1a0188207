"""A tiny, untrained but meaningful model for tests: blob detector exported like the real one.

Its score is a fixed centre-surround (difference of Gaussians) filter response: frames with a
bright or dark spot, blob or thick scratch score high, plain textures low. Its defect map is the
same decision at every pixel, its maximum taken over each MAP_CELL x MAP_CELL cell, so the map's
top cell sits on the spot that made the score. It goes through the same
`export_version` as the trained model, so tests exercise the real SavedModel, LiteRT (both
outputs) and metadata path in seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from training.export import export_version


def _dog_kernel(size: int, inner: float, outer: float) -> np.ndarray:
    """A zero-sum difference-of-Gaussians kernel (responds to spots, not to flat brightness)."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    r2 = ax[:, None] ** 2 + ax[None, :] ** 2
    g1 = np.exp(-r2 / (2 * inner**2))
    g2 = np.exp(-r2 / (2 * outer**2))
    kernel = g1 / g1.sum() - g2 / g2.sum()
    return (kernel / np.abs(kernel).sum()).astype(np.float32)


MAP_CELL = 8  # frame pixels per defect-map cell, each way
_WEIGHTS = np.array([12.0, 12.0, 1.0], np.float32)  # decision over (bright, dark, seeded) responses
_BIAS = -6.5


def tiny_scorer(seed: int = 0):
    """A tf_keras model: float 0..255 [N,h,w,1] -> [N,1] defect score from fixed DoG filters."""
    return tiny_models(seed)[0]


def tiny_models(seed: int = 0):
    """(scorer, mapper) sharing one graph: scorer -> [N,1]; mapper -> [N,ceil(h/8),ceil(w/8),1] in 0..1."""
    import tf_keras as keras

    dog = _dog_kernel(9, 1.5, 4.0)
    rng = np.random.default_rng(seed)
    # Bright-spot, dark-spot and one small seeded random filter (so `seed` changes the model).
    jitter = rng.normal(0, 0.002, (9, 9)).astype(np.float32)
    kernels = np.stack([dog, -dog, jitter], axis=-1)[:, :, np.newaxis, :]

    pixels = keras.Input((None, None, 1), name="pixels")
    centred = keras.layers.Rescaling(1.0 / 32.0, offset=-4.0)(pixels)
    # ReLU fused into the convolution: max-pooling a rectified response = rectifying its max (same score).
    rectified = keras.layers.Conv2D(3, 9, padding="valid", use_bias=False, activation="relu", name="dog")(centred)
    peak = keras.layers.GlobalMaxPooling2D()(rectified)
    decision = keras.layers.Dense(1, activation="sigmoid", name="decision")
    score = decision(peak)
    # The map: the decision's weighted sum at each pixel (a 1x1 convolution to one channel, so padding and
    # pooling stay cheap), its maximum per cell, then bias and sigmoid on the small map (both monotonic).
    # The valid convolution lost 4 pixels a side: padded back with 0 (= no response) so the cells tile
    # the whole frame.
    evidence = keras.layers.Conv2D(1, 1, use_bias=False, name="decision_sum")(rectified)
    pooled = keras.layers.MaxPooling2D(MAP_CELL, padding="same")(keras.layers.ZeroPadding2D(4)(evidence))
    cells = keras.layers.Activation("sigmoid")(keras.layers.Rescaling(1.0, offset=_BIAS)(pooled))
    model = keras.Model(pixels, score, name="tiny_blob_detector")
    mapper = keras.Model(pixels, cells, name="tiny_defect_map")
    model.get_layer("dog").set_weights([kernels])
    decision.set_weights([_WEIGHTS[:, None], np.array([_BIAS], np.float32)])
    mapper.get_layer("decision_sum").set_weights([_WEIGHTS.reshape(1, 1, 3, 1)])
    return model, mapper


def build_tiny_model(
    base: Path,
    version: int = 1,
    input_size: tuple[int, int] = (128, 128),
    threshold: float = 0.5,
    name: str = "tiny",
    seed: int = 0,
    fast: bool = False,
) -> Path:
    """Export the tiny model (SavedModel + model.tflite + metadata.json) to base/<version>/.

    `fast` adds a fast variant (fast/: the same filters at half the working size, threshold +0.05)
    recorded as matching the exact model, as `train` writes one (training/variants.py).
    """
    common = dict(name=name, version=version, input_size=tuple(input_size), backbone="none: fixed difference-of-Gaussians filters",
                  training_data={"images": 0, "note": "untrained; for tests and local smoke runs"})
    variants, variant_dirs = {}, {}
    if fast:
        half = (max(16, input_size[0] // 2), max(16, input_size[1] // 2))
        scorer, mapper = tiny_models(seed + 1)
        variant_dirs["fast"] = export_version(scorer, Path(base) / f".fast-{version}", threshold=round(threshold + 0.05, 6), model_size=half,
                                              threshold_rule="fixed (tiny test model)", architecture={"design": "tiny-dog", "seed": seed + 1},
                                              mapper=mapper, variant="fast", **common)
        variants["fast"] = {"folder": "fast", "model_height": half[0], "model_width": half[1], "downscale": "area",
                            "threshold": round(threshold + 0.05, 6), "matches_exact": True, "reason": "tiny test model: declared equal"}
    scorer, mapper = tiny_models(seed)
    try:
        return export_version(scorer, Path(base), threshold=threshold, threshold_rule="fixed (tiny test model)",
                              architecture={"design": "tiny-dog", "seed": seed}, mapper=mapper, variants=variants,
                              variant_dirs=variant_dirs, **common)
    finally:
        shutil.rmtree(Path(base) / f".fast-{version}", ignore_errors=True)

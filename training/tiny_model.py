"""A tiny, untrained but meaningful model for tests: blob detector exported like the real one.

Its score is a fixed centre-surround (difference of Gaussians) filter response: frames with a
bright or dark spot, blob or thick scratch score high, plain textures low. It goes through the
same `export_version` as the trained model, so tests exercise the real SavedModel, LiteRT and
metadata path in seconds.
"""

from __future__ import annotations

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


def tiny_scorer(seed: int = 0):
    """A tf_keras model: float 0..255 [N,h,w,1] -> [N,1] defect score from fixed DoG filters."""
    import tf_keras as keras

    dog = _dog_kernel(9, 1.5, 4.0)
    rng = np.random.default_rng(seed)
    # Bright-spot, dark-spot and one small seeded random filter (so `seed` changes the model).
    jitter = rng.normal(0, 0.002, (9, 9)).astype(np.float32)
    kernels = np.stack([dog, -dog, jitter], axis=-1)[:, :, np.newaxis, :]

    pixels = keras.Input((None, None, 1), name="pixels")
    centred = keras.layers.Rescaling(1.0 / 32.0, offset=-4.0)(pixels)
    response = keras.layers.Conv2D(3, 9, padding="valid", use_bias=False, name="dog")(centred)
    peak = keras.layers.GlobalMaxPooling2D()(keras.layers.ReLU()(response))
    score = keras.layers.Dense(1, activation="sigmoid", name="decision")(peak)
    model = keras.Model(pixels, score, name="tiny_blob_detector")
    model.get_layer("dog").set_weights([kernels])
    model.get_layer("decision").set_weights([np.array([[12.0], [12.0], [1.0]], np.float32), np.array([-6.5], np.float32)])
    return model


def build_tiny_model(
    base: Path,
    version: int = 1,
    input_size: tuple[int, int] = (128, 128),
    threshold: float = 0.5,
    name: str = "tiny",
    seed: int = 0,
) -> Path:
    """Export the tiny model (SavedModel + model.tflite + metadata.json) to base/<version>/."""
    return export_version(
        tiny_scorer(seed),
        Path(base),
        name=name,
        version=version,
        input_size=tuple(input_size),
        threshold=threshold,
        threshold_rule="fixed (tiny test model)",
        backbone="none: fixed difference-of-Gaussians filters",
        architecture={"design": "tiny-dog", "seed": seed},
        training_data={"images": 0, "note": "untrained; for tests and local smoke runs"},
    )

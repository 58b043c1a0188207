"""Where the defect is: the defect map an exported model saved beside its score.

Every segdec model (also one trained from image-level labels only: the multiple-instance loss
makes its top cell the evidence for the frame's score) exports a SavedModel signature
`defect_map`: uint8 frames [N, H, W, 1] -> float32 [N, h', w'] cell scores in 0..1, one cell
per `backbone_stride` pixels of the working size. `peak_in_frame` turns its top cell into frame pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from line_contracts.model import INPUT_KEY, SAVED_MODEL_DIR
from line_runtime.model import ModelLoadError, read_metadata
from training.export import DEFECT_MAP_KEY, DEFECT_MAP_SIGNATURE


def load_defect_map(version_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A callable: uint8 frames [N, H, W] or [N, H, W, 1] -> defect maps [N, h', w'] in 0..1."""
    import tensorflow as tf

    version_dir = Path(version_dir)
    loaded = tf.saved_model.load(str(version_dir / SAVED_MODEL_DIR))
    if DEFECT_MAP_SIGNATURE not in loaded.signatures:
        raise ModelLoadError(f"{version_dir} has no {DEFECT_MAP_SIGNATURE!r} signature (a tiny or global-design model); retrain to get one")
    signature = loaded.signatures[DEFECT_MAP_SIGNATURE]

    def run(frames: np.ndarray) -> np.ndarray:
        _ = loaded  # keep the restored variables alive with the function
        frames = np.asarray(frames, np.uint8)
        frames = frames[..., None] if frames.ndim == 3 else frames
        return signature(**{INPUT_KEY: tf.constant(frames)})[DEFECT_MAP_KEY].numpy()

    return run


def peak_in_frame(version_dir: Path, defect_map: np.ndarray) -> tuple[int, int]:
    """(row, column) in frame pixels of the centre of the map's highest cell."""
    meta = read_metadata(Path(version_dir))
    row, col = np.unravel_index(int(np.argmax(defect_map)), defect_map.shape)
    return (int((row + 0.5) * meta.input_height / defect_map.shape[0]), int((col + 0.5) * meta.input_width / defect_map.shape[1]))



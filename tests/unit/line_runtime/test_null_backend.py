"""The null backend: the LoadedModel API, from metadata.json alone, without running a model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from line_contracts.model import METADATA_FILE
from line_runtime.model import BACKENDS, ModelLoadError, load_model


def _metadata_only_version(base, size=(48, 64)):
    version = base / "7"
    version.mkdir(parents=True)
    (version / METADATA_FILE).write_text(json.dumps({"name": "null-test", "version": "7", "input_height": size[0],
                                                     "input_width": size[1], "threshold": 0.5}))
    return version


def test_null_backend_scores_every_frame_without_model_files(tmp_path):
    model = load_model(_metadata_only_version(tmp_path), backend="null")
    assert model.backend == "null" and "null" in BACKENDS
    assert model.input_size == (48, 64)
    model.warmup([1, 4])
    scores = model.predict(np.full((5, 48, 64, 1), 200, np.uint8))
    assert scores.shape == (5,) and scores.dtype == np.float32
    assert np.all(scores == 0.0)  # below any threshold: every frame is judged ok
    assert model.predict(np.zeros((0, 48, 64, 1), np.uint8)).shape == (0,)


def test_null_backend_checks_the_frame_shape_like_the_real_ones(tmp_path):
    model = load_model(_metadata_only_version(tmp_path), backend="null")
    with pytest.raises(ValueError, match="expects uint8 frames"):
        model.predict(np.zeros((2, 32, 32, 1), np.uint8))


def test_null_backend_still_needs_metadata(tmp_path):
    with pytest.raises(ModelLoadError, match="metadata.json"):
        load_model(tmp_path, backend="null")

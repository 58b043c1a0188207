"""Export round trip: the tiny model through SavedModel and LiteRT gives the same scores."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from line_contracts.model import METADATA_FILE, SAVED_MODEL_DIR, TFLITE_FILE
from line_runtime.model import ModelLoadError, latest_version, load_model
from surface_images.synthetic import SyntheticFrames
from training.export import ExportError, next_version
from training.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny_version(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("models"), version=3, input_size=(96, 128), threshold=0.4)


def _frames(count: int, size=(96, 128)) -> np.ndarray:
    samples = SyntheticFrames(seed=11, size=size).batch(0, count)
    return np.stack([s.image for s in samples])[..., np.newaxis]


def test_version_folder_follows_the_contract(tiny_version):
    assert tiny_version.name == "3"
    assert (tiny_version / SAVED_MODEL_DIR / "saved_model.pb").is_file()
    assert (tiny_version / TFLITE_FILE).stat().st_size > 0
    meta = json.loads((tiny_version / METADATA_FILE).read_text())
    assert (meta["input_height"], meta["input_width"], meta["threshold"]) == (96, 128, 0.4)
    assert meta["version"] == "3" and meta["name"] == "tiny"
    assert not any(p.name.startswith(".staging") for p in tiny_version.parent.iterdir())
    assert next_version(tiny_version.parent) == 4


def test_tensorflow_and_litert_agree_for_every_batch_size(tiny_version):
    frames = _frames(24)
    tf_model = load_model(tiny_version, backend="tensorflow")
    lite_model = load_model(tiny_version, backend="litert")
    assert (tf_model.backend, lite_model.backend) == ("tensorflow", "litert")
    lite_model.warmup([1, 8])
    for size in (1, 5, 24, 3):
        tf_scores = tf_model.predict(frames[:size])
        lite_scores = lite_model.predict(frames[:size])
        assert tf_scores.shape == (size,) and tf_scores.dtype == np.float32
        np.testing.assert_allclose(tf_scores, lite_scores, atol=1e-3)
    assert tf_model.predict(frames[:0]).shape == (0,)


def test_tiny_score_depends_on_the_image(tiny_version):
    model = load_model(tiny_version, backend="litert")
    flat = np.full((1, 96, 128, 1), 120, np.uint8)
    spot = flat.copy()
    spot[0, 40:47, 60:67, 0] = 40
    low, high = model.predict(np.concatenate([flat, spot]))
    assert low < 0.2 < 0.8 < high


def test_auto_backend_on_cpu_prefers_litert(tiny_version):
    assert load_model(tiny_version).backend == "litert"


def test_predict_rejects_wrong_shape_or_dtype(tiny_version):
    model = load_model(tiny_version, backend="litert")
    with pytest.raises(ValueError, match=r"\[N, 96, 128, 1\]"):
        model.predict(np.zeros((2, 64, 64, 1), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        model.predict(np.zeros((2, 96, 128, 1), np.float32))
    assert model.predict(np.zeros((2, 96, 128), np.uint8)).shape == (2,)


def test_latest_version_picks_highest_complete(tmp_path, tiny_version):
    assert latest_version(tmp_path / "missing") is None
    assert latest_version(tmp_path) is None
    (tmp_path / "7").mkdir()  # incomplete: no metadata.json
    (tmp_path / "notes").mkdir()
    for version in ("2", "10"):
        (tmp_path / version).mkdir()
        (tmp_path / version / METADATA_FILE).write_text("{}")
    assert latest_version(tmp_path) == tmp_path / "10"
    assert latest_version(tiny_version) == tiny_version


def test_load_errors_name_the_problem(tmp_path, tiny_version):
    with pytest.raises(ModelLoadError, match="metadata.json"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="backend"):
        load_model(tiny_version, backend="onnx")
    with pytest.raises(ExportError, match="already exists"):
        build_tiny_model(tiny_version.parent, version=3)

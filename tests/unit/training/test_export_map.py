"""The defect map as a second output of the serving signature: TensorFlow and LiteRT give the same
scores and maps from one call, on non-square frames; the backbone runs once; old exports give no map."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from line_contracts.model import MAP_OUTPUT_KEY, METADATA_FILE, OUTPUT_KEY, SAVED_MODEL_DIR, SIGNATURE_NAME, TFLITE_FILE
from line_runtime.model import load_model
from line_runtime.regions import find_regions
from training.export import ExportError, convert_to_litert, export_version, preflight
from training.tiny_model import build_tiny_model, tiny_scorer

FRAME = (48, 80)  # non-square: rows != columns catches a transposed map


def _spot_frames() -> np.ndarray:
    frames = np.full((3, *FRAME, 1), 120, np.uint8)
    frames[1, 30:37, 50:57, 0] = 30  # dark spot, centre (33, 53)
    frames[2, 5:12, 8:15, 0] = 250   # bright spot, centre (8, 11)
    return frames


def _two_head_models(shared: bool = True):
    """A segdec-shaped pair without the hub backbone: one stride-4 conv feeds a map head and the score.

    shared=False builds the mapper on its own Input (separate graphs): the export falls back to two calls.
    """
    import tf_keras as keras

    def heads(pixels):
        features = keras.layers.Conv2D(4, 5, strides=4, padding="same", activation="relu", name="features")(
            keras.layers.Rescaling(1 / 255.0)(pixels))
        seg_map = keras.layers.Conv2D(1, 1, activation="sigmoid", name="seg_map")(features)
        score = keras.layers.Dense(1, activation="sigmoid", name="score")(keras.layers.GlobalMaxPooling2D()(seg_map))
        return seg_map, score

    pixels = keras.Input((None, None, 1), name="pixels")
    seg_map, score = heads(pixels)
    scorer = keras.Model(pixels, score)
    if shared:
        return scorer, keras.Model(pixels, seg_map)
    other = keras.Input((None, None, 1), name="pixels2")
    return scorer, keras.Model(other, heads(other)[0])


@pytest.fixture(scope="module")
def tiny_map_version(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("models"), version=1, input_size=FRAME, threshold=0.5)


def test_tiny_model_exports_scores_and_map_that_agree_between_backends(tiny_map_version):
    meta = json.loads((tiny_map_version / METADATA_FILE).read_text())
    assert meta["architecture"]["defect_map_output"] is True and meta["litert_twin"] is True
    frames = _spot_frames()
    tf_model, lite_model = load_model(tiny_map_version, "tensorflow"), load_model(tiny_map_version, "litert")
    assert tf_model.has_map and lite_model.has_map
    tf_scores, tf_maps = tf_model.judge(frames)
    lite_scores, lite_maps = lite_model.judge(frames)
    assert tf_maps.shape == lite_maps.shape == (3, 6, 10) and tf_maps.dtype == np.float32  # ceil(48/8), ceil(80/8)
    np.testing.assert_allclose(tf_scores, lite_scores, atol=1e-4)
    np.testing.assert_allclose(tf_maps, lite_maps, atol=1e-4)
    np.testing.assert_allclose(tf_scores, tf_model.predict(frames), atol=1e-6)  # predict unchanged
    assert 0.0 <= tf_maps.min() and tf_maps.max() <= 1.0
    assert tf_maps[0].max() < 0.05  # a plain frame: no cell lights up, not even at the padded border
    assert tf_scores[0] < 0.5 < min(tf_scores[1], tf_scores[2])
    for index, (row, col) in ((1, (33, 53)), (2, (8, 11))):
        box = find_regions(lite_maps[index], *FRAME).regions[0].box
        assert box.x <= col < box.x + box.width and box.y <= row < box.y + box.height, (index, box)


def test_the_defect_map_signature_for_training_stays_and_matches_serving(tiny_map_version):
    from training.localise import load_defect_map

    frames = _spot_frames()
    np.testing.assert_allclose(load_defect_map(tiny_map_version)(frames), load_model(tiny_map_version, "tensorflow").judge(frames)[1],
                               atol=1e-6)


def test_a_two_head_model_runs_its_backbone_once_in_both_backends(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    scorer, mapper = _two_head_models(shared=True)
    version = export_version(scorer, tmp_path, name="two-head", input_size=FRAME, model_size=(64, 104), threshold=0.5,
                             mapper=mapper, log=lambda *_: None)
    ops = Interpreter(model_path=str(version / TFLITE_FILE))._get_ops_details()
    assert sum(op["op_name"] == "CONV_2D" for op in ops) == 2  # features + seg_map, once each
    frames = _spot_frames()
    (tf_scores, tf_maps), (lite_scores, lite_maps) = (load_model(version, b).judge(frames) for b in ("tensorflow", "litert"))
    assert tf_maps.shape == (3, 16, 26)  # working size 64x104 at stride 4
    np.testing.assert_allclose(tf_scores, lite_scores, atol=1e-4)
    np.testing.assert_allclose(tf_maps, lite_maps, atol=1e-4)


def test_separate_scorer_and_mapper_graphs_still_export_both_outputs(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    scorer, mapper = _two_head_models(shared=False)
    version = export_version(scorer, tmp_path, name="two-graphs", input_size=FRAME, threshold=0.5, mapper=mapper,
                             log=lambda *_: None)
    scores, maps = load_model(version, "litert").judge(_spot_frames())
    assert scores.shape == (3,) and maps.shape == (3, 12, 20)
    ops = Interpreter(model_path=str(version / TFLITE_FILE))._get_ops_details()
    assert sum(op["op_name"] == "CONV_2D" for op in ops) == 4  # two passes: why the joint model matters


def test_an_export_without_a_mapper_has_no_map_output_and_gives_none(tmp_path):
    version = export_version(tiny_scorer(), tmp_path, name="scores-only", input_size=FRAME, threshold=0.5,
                             log=lambda *_: None)
    assert json.loads((version / METADATA_FILE).read_text())["architecture"]["defect_map_output"] is False
    for backend in ("tensorflow", "litert"):
        model = load_model(version, backend)
        scores, maps = model.judge(_spot_frames())
        assert not model.has_map and maps is None and scores.shape == (3,)


def test_the_litert_twin_is_checked_for_the_map_output(tmp_path):
    export_version(tiny_scorer(), tmp_path, name="scores-only", input_size=FRAME, threshold=0.5, litert=False,
                   version=1, log=lambda *_: None)
    with pytest.raises(ExportError, match=MAP_OUTPUT_KEY):
        convert_to_litert(tmp_path / "1" / SAVED_MODEL_DIR, with_map=True)
    assert OUTPUT_KEY and SIGNATURE_NAME  # the contract names the check relies on


def test_preflight_converts_the_map_output_too(tmp_path):
    scorer, mapper = _two_head_models(shared=True)
    assert preflight(scorer, FRAME, (64, 104), tmp_path, mapper=mapper) > 0
    assert not list(tmp_path.iterdir())  # the untrained twin is removed

"""training.reexport: a segdec model exported before the map output gets it without training again;
same weights, same scores, and its map equals the old `defect_map` signature's."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from line_contracts.model import METADATA_FILE
from line_runtime.model import load_model
from training.export import export_version, serving_module
from training.localise import load_defect_map
from training.reexport import reexport
from training.tiny_model import tiny_scorer

FRAME = (48, 80)


def _old_style_export(tmp_path, design: str = "segdec"):
    """A segdec model (random weights) exported the old way: scores-only serving signature + `defect_map`."""
    import tensorflow as tf

    import training.export as export
    from training.backbone import build_backbone
    from training.model import ModelConfig, build_models, defect_mapper

    info = build_backbone(tmp_path / "b0", "stride4")
    config = ModelConfig(design=design, model_height=64, model_width=104)
    train_model, scorer = build_models(config, info)
    mapper = defect_mapper(train_model)

    def old_serving_module(scorer_, input_size, model_size, mapper_=None, downscale="area"):
        module = serving_module(scorer_, input_size, model_size, mapper_, downscale)  # has locate, but drop the map output
        height, width = input_size
        full = module.serve

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 1], tf.uint8, name="frames")])
        def scores_only(frames):
            return {"scores": full(frames)["scores"]}

        module.serve = scores_only
        return module

    original = export.serving_module
    export.serving_module = old_serving_module
    try:
        version = export_version(scorer, tmp_path / "old", name="old-segdec", version=1, input_size=FRAME,
                                 model_size=(64, 104), threshold=0.4, backbone=info.handle,
                                 architecture={**config.as_dict(), "backbone_variant": info.variant},
                                 mapper=mapper, litert=False, log=lambda *_: None)
    finally:
        export.serving_module = original
    return version


def test_an_old_segdec_export_gets_the_map_output_with_the_same_scores(tmp_path):
    old = _old_style_export(tmp_path)
    assert not load_model(old, "tensorflow").has_map  # the situation re-export is for
    new = reexport(old, tmp_path / "new", log=lambda *_: None)
    meta = json.loads((new / METADATA_FILE).read_text())
    assert meta["architecture"]["defect_map_output"] is True and meta["threshold"] == 0.4 and meta["litert_twin"]
    assert "reexported_from" in meta["training_data"]
    frames = np.random.default_rng(3).integers(60, 200, (3, *FRAME, 1), dtype=np.uint8)
    old_scores = load_model(old, "tensorflow").predict(frames)
    for backend in ("tensorflow", "litert"):
        scores, maps = load_model(new, backend).judge(frames)
        np.testing.assert_allclose(scores, old_scores, atol=1e-4)
        np.testing.assert_allclose(maps, load_defect_map(old)(frames), atol=1e-4)
        assert maps.shape == (3, 16, 26)  # working size 64x104 at stride 4


def test_a_model_without_a_map_design_is_refused(tmp_path):
    version = export_version(tiny_scorer(), tmp_path, name="tiny", version=1, input_size=FRAME, threshold=0.5, architecture={"design": "tiny-dog"},
                             litert=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="only segdec"):
        reexport(version, tmp_path / "new")

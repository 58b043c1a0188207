"""Extra inputs (training/model.py): the brightness context of the segmentation head (`--context
brightness`), sign-blind and lighting-blind where it should be, and the shading-removed channel of
the backbone (`--flatten`); a segdec model with either, with the decision head's extra stages
(`--decision-stages`) or with a coarse view (`--coarse-view`; both measured in
tests/unit/training/test_decision_head.py), exports and serves the same scores and maps on
TensorFlow and LiteRT at a non-square size."""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from line_runtime.model import load_model
from training.export import export_version
from training.frames import prepare
from training.model import (
    FLATTEN_WINDOW,
    ModelConfig,
    _brightness_context,
    _with_flattened,
    build_models,
    defect_mapper,
)
from training.plan import make_plan

STRIDE8 = argparse.Namespace(output_stride=8, variant="stride8", input_range="0-255")  # what build_models reads of a backbone
SIZE = (96, 168)  # non-square, a multiple of the stride, not of 4 x 4 (so the coarse view's frame is mirror-padded)


def _context_model(stride: int):
    import tf_keras as keras

    pixels = keras.Input((None, None, 1))
    return keras.Model(pixels, _brightness_context(pixels, stride))


def _disk(sign: float) -> np.ndarray:
    frame = np.full((1, *SIZE, 1), 128.0, np.float32)
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    frame[0, (yy - 40) ** 2 + (xx - 100) ** 2 < 15 ** 2, 0] += sign * 30.0
    return frame


def test_a_bright_stain_and_a_dark_one_look_alike_to_the_head_and_a_flat_frame_shows_nothing():
    model = _context_model(8)
    bright, dark = np.asarray(model(_disk(+1.0))), np.asarray(model(_disk(-1.0)))
    assert bright.shape == (1, SIZE[0] // 8, SIZE[1] // 8, 2)
    np.testing.assert_allclose(bright, dark, atol=1e-5)
    step_from_frame = bright[0, ..., 0]
    peak = np.unravel_index(np.argmax(step_from_frame), step_from_frame.shape)
    assert abs(peak[0] - 40 / 8) <= 1 and abs(peak[1] - 100 / 8) <= 1  # the disk's centre (40, 100), within a cell
    assert step_from_frame.max() > 0.5  # a 30-level step is 0.75 on the standardised scale
    flat = np.asarray(model(np.full((1, *SIZE, 1), 128.0, np.float32)))
    assert np.abs(flat).max() < 1e-6


def test_a_lighting_gradient_cancels_in_the_neighbourhood_channel():
    model = _context_model(8)
    ramp = np.tile(np.linspace(88, 168, SIZE[1], dtype=np.float32), (SIZE[0], 1))[None, ..., None]
    context = np.asarray(model(ramp))[0]
    inner = context[:, 4:-4]  # away from the borders, where the windows are cut off
    assert inner[..., 1].max() < 0.05  # |near - wide|: a linear ramp averages to the same value in both windows
    assert context[..., 0].max() > 0.5  # while |near - frame mean| sees the ramp's ends (the head gets both)


def test_the_flattened_channel_drops_the_shading_and_keeps_a_small_blob():
    import tensorflow as tf

    ramp = np.tile(np.linspace(60, 200, SIZE[1], dtype=np.float32), (SIZE[0], 1))
    shading = ramp + 25.0 * np.sin(np.mgrid[0:SIZE[0], 0:SIZE[1]][0] / 15.0)  # a slow ramp and slow waves
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    frame = (shading - 30.0 * ((yy - 40) ** 2 + (xx - 100) ** 2 < 6 ** 2))[None, ..., None].astype(np.float32)  # a dark blob, radius 6
    out = np.asarray(_with_flattened(tf.constant(frame)))[0]
    np.testing.assert_array_equal(out[..., 0], frame[0, ..., 0])
    np.testing.assert_array_equal(out[..., 2], frame[0, ..., 0])
    edge = FLATTEN_WINDOW // 2
    flat = out[edge:-edge, edge:-edge, 1]  # away from the borders, where the window is cut off
    yy, xx = np.mgrid[edge:SIZE[0] - edge, edge:SIZE[1] - edge]
    away = (yy - 40) ** 2 + (xx - 100) ** 2 > 30 ** 2
    assert np.abs(flat[away] - 128.0).max() < 12  # the 140-level ramp and the 50-level waves are gone
    assert out[40, 100, 1] < 128 - 30  # the blob's centre stays dark (a 30-level dip, doubled, less its share of the local mean)
    assert frame[0, 40, 100, 0] > frame[0, 40, 5, 0]  # while in the raw frame it is brighter than the dark end


@pytest.mark.parametrize("extra, layer, width", [({"context": "brightness"}, "with_context", 2), ({"flatten": True}, "flatten", 3),
                                                 ({"decision_stages": 2}, "dec_conv2", 32), ({"coarse_view": 4}, "scale_max_logits", 1)])
def test_segdec_with_an_extra_input_exports_and_both_backends_agree_on_scores_and_maps(tmp_path, small_backbone, extra, layer, width):
    config = ModelConfig(model_height=SIZE[0], model_width=SIZE[1], **extra)
    train_model, scorer = build_models(config, small_backbone)
    expected = small_backbone.channels + width if layer == "with_context" else width
    assert train_model.get_layer(layer).output.shape[-1] == expected
    folder = export_version(scorer, tmp_path, name="t", input_size=(120, 200), model_size=SIZE, threshold=0.5,
                            mapper=defect_mapper(train_model), architecture=config.as_dict())
    architecture = json.loads((folder / "metadata.json").read_text())["architecture"]
    assert {key: architecture[key] for key in extra} == extra
    frames = np.full((2, 120, 200), 140, np.uint8)
    frames[1, 30:70, 90:150] = 175  # a bright patch
    tf_model, lite_model = load_model(folder, backend="tensorflow"), load_model(folder, backend="litert")
    tf_scores, lite_scores = tf_model.predict(frames), lite_model.predict(frames)
    np.testing.assert_allclose(tf_scores, lite_scores, atol=1e-3)
    trained = np.asarray(scorer(prepare(frames, SIZE).astype(np.float32))).reshape(-1)
    np.testing.assert_allclose(tf_scores, trained, atol=2e-2)


def test_the_plan_records_the_context_and_rejects_an_unknown_one():
    from training.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--data", "d", "--out", "o", "--context", "brightness"])
    plan = make_plan(args, [1] * 30 + [0] * 30, [(200, 300)] * 60, masks=0)
    assert plan.context == "brightness" and "context" not in plan.chosen
    assert any("brightness step" in line for line in plan.lines())
    default = make_plan(parser.parse_args(["train", "--data", "d", "--out", "o"]), [1] * 30 + [0] * 30, [(200, 300)] * 60, masks=0)
    assert default.context == "none" and "context" in default.chosen
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--data", "d", "--out", "o", "--context", "glow"])
    with pytest.raises(ValueError, match="context must be one of"):
        build_models(ModelConfig(context="glow"), STRIDE8)


def _plan(*extra):
    """The plan for 30 defective and 30 ok 200x300 images without masks, given these train options."""
    from training.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", *extra])
    return make_plan(args, [1] * 30 + [0] * 30, [(200, 300)] * 60, masks=0)


def test_the_plan_flattens_by_default_with_the_grey_downscale_and_an_explicit_flatten_with_extremes_stops():
    default = _plan()
    assert default.flatten and "flatten" in default.chosen and any("shading removed" in line for line in default.lines())
    off = _plan("--no-flatten")
    assert not off.flatten and "flatten" not in off.chosen and not any("shading removed" in line for line in off.lines())
    given = _plan("--flatten")
    assert given.flatten and "flatten" not in given.chosen
    # the extremes downscale has three channels and no grey one: the default leaves flatten off, an explicit one stops
    extremes = _plan("--downscale", "extremes")
    assert not extremes.flatten and "flatten" in extremes.chosen
    with pytest.raises(ValueError, match="--flatten needs one grey channel"):
        _plan("--flatten", "--downscale", "extremes")
    with pytest.raises(ValueError, match="flatten needs one grey channel"):
        build_models(ModelConfig(flatten=True, downscale="extremes"), STRIDE8)


def _assert_the_plan_records(flag: str, value: int, line: str) -> None:
    """An option off (0) and chosen by rule by default; given, it is in the plan's lines and in metadata.json's plan."""
    name = flag.removeprefix("--")
    field = name.replace("-", "_")
    default = _plan()
    assert getattr(default, field) == 0 and name in default.chosen
    assert not any(line in text for text in default.lines())
    given = _plan(flag, str(value))
    assert getattr(given, field) == value and name not in given.chosen
    assert any(line in text for text in given.lines())
    assert given.as_dict()[field] == value  # metadata.json training_data.plan


def test_the_plan_records_the_decision_stages_and_stops_on_a_count_out_of_range():
    _assert_the_plan_records("--decision-stages", 2, "decision head widened by 2 pooling stages")
    for bad in ("4", "-1"):
        with pytest.raises(ValueError, match=f"--decision-stages {bad}: expected 0 to 3"):
            _plan("--decision-stages", bad)
    # quick-demo has no plan: the model itself refuses
    with pytest.raises(ValueError, match="decision stages must be 0 to 3, got 4"):
        build_models(ModelConfig(decision_stages=4), STRIDE8)


def test_the_whole_frame_plan_takes_the_coarse_view_by_rule_and_stops_on_a_factor_it_does_not_know():
    line = "also a 4x coarser view of each frame"
    default = _plan()  # whole frames (no masks), segdec, no context: on by rule
    assert default.coarse_view == 4 and "coarse-view" in default.chosen and any(line in text for text in default.lines())
    assert default.as_dict()["coarse_view"] == 4  # metadata.json training_data.plan
    off = _plan("--coarse-view", "0")
    assert off.coarse_view == 0 and "coarse-view" not in off.chosen and not any(line in text for text in off.lines())
    assert _plan("--coarse-view", "2").coarse_view == 2
    # where it cannot work or was not measured, the rule leaves it off instead of stopping the run
    from training.cli import build_parser

    crops = make_plan(build_parser().parse_args(["train", "--data", "d", "--out", "o"]), [1] * 30 + [0] * 30, [(200, 300)] * 60, masks=30)
    assert crops.recipe == "crops" and crops.coarse_view == 0 and "coarse-view" in crops.chosen
    assert _plan("--context", "brightness").coarse_view == 0
    assert _plan("--design", "global").coarse_view == 0
    with pytest.raises(ValueError, match="--coarse-view 3: expected a shrink factor of 2, 4"):
        _plan("--coarse-view", "3")
    with pytest.raises(ValueError, match="--coarse-view does not combine with --context brightness"):
        _plan("--coarse-view", "2", "--context", "brightness")
    # quick-demo has no plan: the model itself refuses
    with pytest.raises(ValueError, match=r"coarse view must be one of \(0, 2, 4\)"):
        build_models(ModelConfig(coarse_view=3), STRIDE8)
    with pytest.raises(ValueError, match="a coarse view needs design 'segdec'"):
        build_models(ModelConfig(coarse_view=4, design="global"), STRIDE8)

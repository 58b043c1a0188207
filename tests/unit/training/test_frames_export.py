"""Frame geometry rules and an export that never loses a model: non-integer scales, upscaling,
non-square frames, and a LiteRT conversion failure that still leaves a SavedModel."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from line_runtime.model import load_model
from training.export import ExportError, export_version, preflight
from training.frames import camera_size, dominant_size, fit_to_frame, fit_truth_to_frame, prepare, working_size
from training.tiny_model import tiny_scorer


def test_when_no_size_holds_half_the_images_the_camera_size_is_the_90th_percentile_of_each_side():
    varied = [(100, 200), (100, 200), (150, 500), (260, 300), (300, 590), (390, 410), (120, 230)]
    assert dominant_size(varied) is None  # 2 of 7 share a size: a coincidence, not a camera
    assert camera_size(varied) == (390, 590)  # 7 values: the 90th percentile is the largest observed one
    many = [(100 + i, 1000 - i) for i in range(100)] + [(5000, 5000)]  # one giant image does not set the frame
    assert camera_size(many) == (190, 991)
    assert camera_size([(100, 200), (101, 200)]) == (101, 200)  # 1 of 2 is half: the tie rule, not a median
    assert dominant_size([(64, 64)] * 3 + [(80, 90)] * 3 + [(50, 50)]) is None  # 3 of 7 is under half
    with pytest.raises(ValueError, match="no image sizes"):
        camera_size([])


def test_camera_size_is_the_most_common_and_working_size_keeps_the_aspect():
    assert camera_size([(200, 400), (200, 400), (120, 90)]) == (200, 400)
    assert camera_size([(100, 100), (200, 300)]) == (200, 300)  # tie: the larger
    assert working_size((240, 400), 512 * 512) == (240, 400)  # fits: native
    assert working_size((300, 500), 512 * 512) == (304, 496)  # sides on the stride grid (multiples of 8)
    h, w = working_size((1000, 2000), 500_000)
    assert h * w <= 500_000 * 1.02 and abs(w / h - 2.0) < 0.02 and h % 8 == 0 and w % 8 == 0
    assert working_size((40, 80), 512 * 512) == (64, 128)  # tiny frames are enlarged, aspect kept
    assert working_size((368, 569), 512 * 512, multiple=16) == (368, 576)  # a stride-16 backbone's grid


def test_fit_to_frame_never_stretches():
    tall = np.tile(np.arange(50, dtype=np.uint8)[:, None], (1, 20))  # 50x20
    fitted = fit_to_frame(tall, (25, 40))  # too tall: shrunk by 2, then mirror-padded sideways
    assert fitted.shape == (25, 40)
    centre = fitted[:, 15:25]
    assert np.array_equal(centre[:, 0], centre[:, -1])  # same column pattern: not stretched
    small = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(fit_to_frame(small, (5, 4))[1:4], small)  # smaller: padded, not enlarged


def test_a_true_mask_fits_like_its_frame_but_its_mirrored_copies_are_not_truth():
    mask = np.zeros((10, 20), np.uint8)
    mask[0:2, 3:6] = 255  # a defect at the top edge: mirror padding repeats it above
    image = np.where(mask > 0, 10, 200).astype(np.uint8)
    frame = (16, 20)
    fitted_image, truth = fit_to_frame(image, frame), fit_truth_to_frame(mask, frame)
    assert fitted_image.shape == truth.shape == frame
    assert (fitted_image[:3] == 10).any()  # the image's padding shows the defect again...
    assert not truth[:3].any() and truth[3:5, 3:6].all() and truth.sum() == mask.sum()  # ...its truth does not
    shrunk = fit_truth_to_frame(np.full((40, 20), 255, np.uint8), (10, 10))  # too tall: shrunk by 4 to 10x5, centred
    assert set(np.unique(shrunk)) == {0, 255} and shrunk[:, 2:7].all() and not shrunk[:, :2].any() and not shrunk[:, 7:].any()


@pytest.mark.parametrize("frame,model", [((90, 130), (60, 80)), ((40, 60), (64, 96)), ((128, 96), (64, 48)), ((100, 75), (100, 75))])
def test_export_agrees_with_training_resize_on_both_backends(tmp_path, frame, model):
    scorer = tiny_scorer()
    folder = export_version(scorer, tmp_path, name="t", input_size=frame, model_size=model, threshold=0.5)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["litert_twin"] is True and meta["architecture"]["model_height"] == model[0]
    rng = np.random.default_rng(0)
    frames = rng.integers(60, 200, (3, *frame), dtype=np.uint8)
    frames[0, 20:26, 20:26] = 10  # a dark spot
    tf_scores = load_model(folder, backend="tensorflow").predict(frames)
    lite_scores = load_model(folder, backend="litert").predict(frames)
    np.testing.assert_allclose(tf_scores, lite_scores, atol=1e-3)
    # what training saw: the same resize, applied once when the images were prepared, to the same values
    prepared = prepare(frames, model)
    assert prepared.dtype == (np.uint8 if frame == model else np.float32)
    trained = np.asarray(scorer(prepared[..., None].astype(np.float32))).reshape(-1)
    np.testing.assert_allclose(tf_scores, trained, rtol=1e-5, atol=1e-6)


def _area_resize_scorer():
    """A scorer with an op LiteRT has no builtin for (what lost a user's 7-minute run)."""
    import tensorflow as tf
    import tf_keras as keras

    pixels = keras.Input((None, None, 1))
    small = keras.layers.Lambda(lambda x: tf.image.resize(x, (8, 8), method="area"))(pixels)
    score = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(small))
    return keras.Model(pixels, score)


def test_litert_failure_keeps_the_saved_model_and_says_so(tmp_path):
    scorer = _area_resize_scorer()
    with pytest.raises(ExportError, match="LiteRT conversion"):
        preflight(scorer, (32, 48), (32, 48), tmp_path)
    assert not list(tmp_path.glob(".preflight-*"))
    warnings = []
    folder = export_version(scorer, tmp_path, name="t", input_size=(32, 48), threshold=0.5, log=warnings.append)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["litert_twin"] is False and "LiteRT" in meta["export_warnings"][0]
    assert not (folder / "model.tflite").exists() and (folder / "saved_model").is_dir()
    assert warnings and "written anyway" in warnings[0]
    loaded = load_model(folder)  # auto falls back to TensorFlow
    assert loaded.backend == "tensorflow" and loaded.predict(np.zeros((2, 32, 48), np.uint8)).shape == (2,)


def test_preflight_of_a_convertible_model_takes_seconds(tmp_path):
    assert preflight(tiny_scorer(), (90, 130), (60, 80), tmp_path) < 60


def test_extremes_downscale_keeps_a_one_pixel_scratch_that_area_averaging_dilutes():
    frames = np.full((1, 64, 96), 120, np.uint8)
    frames[0, :, 41] = 20  # a dark one-pixel scratch
    frames[0, 10, :] = 250  # a bright one
    area = prepare(frames, (16, 24))
    extremes = prepare(frames, (16, 24), downscale="extremes")
    assert area.shape == (1, 16, 24) and extremes.shape == (1, 16, 24, 3)
    np.testing.assert_array_equal(extremes[..., 0], area)  # channel 0 is the area average itself
    assert area[0, 5, 10] == 95  # 4x4 average: a quarter of the contrast left
    assert extremes[0, 5, 10, 1] == 20 and extremes[0, 2, 3, 2] == 250  # min / max keep it whole
    assert extremes[0, 5, 3, 1] == extremes[0, 5, 3, 2] == 120  # plain surface: all channels agree
    with pytest.raises(ValueError, match="downscale"):
        prepare(frames, (16, 24), downscale="median")


@pytest.mark.parametrize("frame,model", [((96, 128), (24, 32)), ((90, 130), (60, 80)), ((64, 48), (64, 48))])
def test_extremes_model_exports_and_serves_what_training_prepared(tmp_path, frame, model):
    import tf_keras as keras

    # a three-channel scorer: the decision reads the minimum channel, so a dark scratch must survive the export's resize
    pixels = keras.Input((None, None, 3))
    darkest = keras.layers.GlobalMaxPooling2D()(keras.layers.Lambda(lambda x: 255.0 - x[..., 1:2])(pixels))
    score = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(0.05),
                               bias_initializer=keras.initializers.Constant(-8.0))(darkest)
    scorer = keras.Model(pixels, score)
    folder = export_version(scorer, tmp_path, name="t", input_size=frame, model_size=model, threshold=0.5,
                            architecture={"downscale": "extremes"})
    assert json.loads((folder / "metadata.json").read_text())["architecture"]["downscale"] == "extremes"
    frames = np.full((2, *frame), 150, np.uint8)
    frames[1, :, 21] = 10  # one dark pixel column: only the minimum channel sees its full depth
    tf_scores = load_model(folder, backend="tensorflow").predict(frames)
    lite_scores = load_model(folder, backend="litert").predict(frames)
    np.testing.assert_allclose(tf_scores, lite_scores, atol=1e-3)
    trained = np.asarray(scorer(prepare(frames, model, downscale="extremes").astype(np.float32))).reshape(-1)
    np.testing.assert_allclose(tf_scores, trained, rtol=1e-5, atol=1e-6)
    assert tf_scores[0] < 0.2 and tf_scores[1] > 0.7  # (a non-integer shrink blends the rest bilinearly)


@pytest.mark.parametrize("downscale", ["area", "extremes"])
def test_preparing_in_chunks_gives_the_frames_of_one_big_stack(monkeypatch, downscale):
    """load_images fits and resizes a few frames at a time (peak memory); the pixels must be those of the whole stack at once."""
    from pathlib import Path

    from surface_images.datasets import LabeledImage
    from training import frames, pipeline

    rng = np.random.default_rng(3)
    sizes = [(90, 130), (70, 140), (90, 130), (100, 100), (60, 80), (90, 130), (95, 125)]
    decoded = [rng.integers(0, 256, s, dtype=np.uint8) for s in sizes]
    items = [LabeledImage(Path(f"/set/{'defect' if i % 2 else 'ok'}/{i}.png"), i % 2) for i in range(len(sizes))]
    frame, size = (90, 130), (64, 96)
    whole = prepare(np.stack([fit_to_frame(im, frame) for im in decoded]), size, downscale=downscale)
    monkeypatch.setattr(pipeline, "PREPARE_CHUNK", 3)  # chunks of 3, 3 and 1
    monkeypatch.setattr(frames, "PREPARE_BYTES", 2 * 4 * 90 * 130)  # and two frames per resize step inside prepare
    chunked = pipeline.load_images(items, size, frame, decoded, downscale=downscale)
    assert chunked.images.dtype == whole.dtype == np.float32
    np.testing.assert_array_equal(chunked.images, whole)
    assert chunked.masks.shape == (len(sizes), *size) and list(chunked.labels) == [i % 2 for i in range(len(sizes))]

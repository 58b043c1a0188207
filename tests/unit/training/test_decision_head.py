"""Wider views, measured by gradients. The decision head's extra stages (`--decision-stages`,
training/model.py `_widen`): each one widens the part of the frame a cell of the decision map (and
so the frame's score) looks at, while the defect map stays the same. The coarse view
(`--coarse-view`, `_coarse_view`): the defect map's cells also see the frame shrunk, so about
`factor` times as far, on the same grid. (The plan's choice, and exporting such models and serving
them on both backends: tests/unit/training/test_context.py.)"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from training.model import DECISION_STAGE_CHANNELS, ModelConfig, build_models

SIZE = (256, 384)  # wide enough for the widened view to be seen whole


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    from training.backbone import build_backbone

    return build_backbone(tmp_path_factory.mktemp("backbone") / "b0_stride8", "stride8")


def _view(backbone, layer: str, size: tuple[int, int] = SIZE, **config) -> tuple[int, int, tuple]:
    """Rows and columns of input pixels that the centre cell of `layer`'s map depends on, and the defect map's shape."""
    import tensorflow as tf
    import tf_keras as keras

    # without the per-frame standardisation, whose mean and contrast come from every pixel of the frame
    train_model, _ = build_models(ModelConfig(model_height=size[0], model_width=size[1], standardize=False, **config), backbone)
    probe = keras.Model(train_model.input, [train_model.get_layer(layer).output, train_model.get_layer("seg_map").output])
    frame = tf.constant(np.random.default_rng(0).uniform(60, 200, (1, *size, 1)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(frame)
        cells, seg_map = probe(frame, training=False)
        h, w = cells.shape[1] // 2, cells.shape[2] // 2
        centre = tf.reduce_sum(cells[0, h, w, :])
    # pixels with at least a thousandth of the strongest pull: the backbone's squeeze-and-excitation blocks reach
    # every pixel through a frame mean, far more weakly
    pull = np.abs(np.asarray(tape.gradient(centre, frame))[0, ..., 0])
    reach = pull >= 1e-3 * pull.max()
    rows, cols = np.nonzero(reach.any(axis=1))[0], np.nonzero(reach.any(axis=0))[0]
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1, tuple(seg_map.shape)


def test_two_stages_widen_the_decisions_view_and_leave_the_defect_map_alone(backbone):
    rows, cols, seg_shape = _view(backbone, "dec_conv")
    wide_rows, wide_cols, wide_seg_shape = _view(backbone, "dec_conv2", decision_stages=2)
    assert build_models(ModelConfig(decision_stages=2), backbone)[0].get_layer("dec_conv2").output.shape[-1] == DECISION_STAGE_CHANNELS
    assert wide_seg_shape == seg_shape == (1, SIZE[0] // 8, SIZE[1] // 8, 1)
    # about 115 pixels without stages (stride-8 backbone 67, then the 5x5 and 3x3 head convolutions); about 330 with two stages,
    # cut here by the frame's 256 rows
    assert 100 <= rows <= 130 and 100 <= cols <= 130, (rows, cols)
    assert wide_cols >= 2.5 * cols and wide_rows >= 2 * rows, (rows, cols, wide_rows, wide_cols)


def test_the_coarse_view_sees_four_times_as_far_on_the_same_grid(backbone):
    size = (264, 392)  # multiples of the stride but not of 4 x 8: the coarse frame is mirror-padded to whole cells
    rows, cols, seg_shape = _view(backbone, "seg_logits", size)
    coarse_rows, coarse_cols, coarse_seg_shape = _view(backbone, "coarse_logits_cut", size, coarse_view=4)
    assert coarse_seg_shape == seg_shape == (1, size[0] // 8, size[1] // 8, 1)
    # a defect-map cell sees about 100 pixels (the backbone's 67 and the head's 5x5 convolution); its coarse twin
    # about four times that, cut here by the frame's 264 rows
    assert 80 <= rows <= 130 and 80 <= cols <= 130, (rows, cols)
    assert coarse_cols >= 3 * cols and coarse_rows >= 2 * rows, (rows, cols, coarse_rows, coarse_cols)

"""The decision head's extra stages (`--decision-stages`, training/model.py `_widen`): each one widens
the part of the frame a cell of the decision map (and so the frame's score) looks at, while the
defect map stays the same. (The plan's choice, and exporting such a model and serving it on both
backends: tests/unit/training/test_context.py.)"""

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


def _view(backbone, stages: int) -> tuple[int, int, tuple]:
    """Rows and columns of input pixels that the centre cell of the decision map depends on, and the defect map's shape."""
    import tensorflow as tf
    import tf_keras as keras

    # without the per-frame standardisation, whose mean and contrast come from every pixel of the frame
    config = ModelConfig(model_height=SIZE[0], model_width=SIZE[1], standardize=False, decision_stages=stages)
    train_model, _ = build_models(config, backbone)
    layer = f"dec_conv{stages}" if stages else "dec_conv"
    probe = keras.Model(train_model.input, [train_model.get_layer(layer).output, train_model.get_layer("seg_logits").output])
    frame = tf.constant(np.random.default_rng(0).uniform(60, 200, (1, *SIZE, 1)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(frame)
        decision, seg_logits = probe(frame, training=False)
        h, w = decision.shape[1] // 2, decision.shape[2] // 2
        centre = tf.reduce_sum(decision[0, h, w, :])
    assert decision.shape[-1] == (DECISION_STAGE_CHANNELS if stages else 16)
    # pixels with at least a thousandth of the strongest pull: the backbone's squeeze-and-excitation blocks reach
    # every pixel through a frame mean, far more weakly
    pull = np.abs(np.asarray(tape.gradient(centre, frame))[0, ..., 0])
    reach = pull >= 1e-3 * pull.max()
    rows, cols = np.nonzero(reach.any(axis=1))[0], np.nonzero(reach.any(axis=0))[0]
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1, tuple(seg_logits.shape)


def test_two_stages_widen_the_decisions_view_and_leave_the_defect_map_alone(backbone):
    rows, cols, seg_shape = _view(backbone, 0)
    wide_rows, wide_cols, wide_seg_shape = _view(backbone, 2)
    assert wide_seg_shape == seg_shape == (1, SIZE[0] // 8, SIZE[1] // 8, 1)
    # about 115 pixels without stages (stride-8 backbone 67, then the 5x5 and 3x3 head convolutions); about 330 with two stages,
    # cut here by the frame's 256 rows
    assert 100 <= rows <= 130 and 100 <= cols <= 130, (rows, cols)
    assert wide_cols >= 2.5 * cols and wide_rows >= 2 * rows, (rows, cols, wide_rows, wide_cols)

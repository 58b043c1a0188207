"""`python -m training quick-demo`, the command `make demo` builds its model with, run small end to end.

Its defaults train on crops and serve whole frames; this checks that the command writes a model that
takes the camera's whole 512x512 frames, records the crops recipe it was trained with, and scores a
frame, without the two minutes of the real build.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from line_runtime.model import latest_version, load_model
from surface_images.synthetic import SyntheticFrames
from training.cli import build_parser, main


def test_quick_demo_defaults_are_the_crops_recipe_at_128():
    args = build_parser().parse_args(["quick-demo", "--out", "o"])
    assert (args.frames, args.epochs, args.crop, args.repeats) == (4800, 3, 64, 3)
    assert args.model_size == (128, 128) and args.backbone_variant == "stride4" and args.max_fpr == 0.0
    assert args.decision_stages == 2
    assert build_parser().parse_args(["quick-demo", "--out", "o", "--decision-stages", "0"]).decision_stages == 0


def test_quick_demo_trains_on_crops_and_exports_a_whole_frame_model(tmp_path):
    out = tmp_path / "demo"
    # the default recipe (crops of 64, three per frame) on 48 frames, one epoch
    assert main(["quick-demo", "--out", str(out), "--frames", "48", "--epochs", "1", "--max-minutes", "1"]) == 0
    version = latest_version(out)
    assert version is not None
    metadata = json.loads((version / "metadata.json").read_text())
    assert (metadata["input_height"], metadata["input_width"]) == (512, 512)
    assert (metadata["architecture"]["model_height"], metadata["architecture"]["model_width"]) == (128, 128)
    assert metadata["architecture"]["decision_stages"] == 2
    recipe = metadata["training_data"]["train_config"]
    assert (recipe["crop"], recipe["repeats"], recipe["epochs"]) == (64, 3, 1)
    assert metadata["training_data"]["images"] == 48
    frames = np.stack([s.image for s in SyntheticFrames(seed=5, defect_scale=4.0).batch(0, 3)])
    scores = load_model(version, backend="litert").predict(frames)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))

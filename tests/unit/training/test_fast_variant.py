"""The fast variant: its size rule, the held-out comparison, the export layout, and which one a worker serves."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np
import pytest

from line_contracts.model import FAST_VARIANT_DIR
from line_runtime.model import ModelLoadError, load_model
from line_runtime.variants import choose_variant
from training.export import export_version
from training.tiny_model import tiny_scorer
from training.variants import fast_size, matches_exact


def test_fast_size_halves_the_working_size_while_a_crop_still_fits():
    assert fast_size((512, 512), 128) == (256, 256)
    assert fast_size((240, 400), 0) == (120, 200)
    assert fast_size((200, 200), 128) is None  # a 128 crop would not fit in 96x96
    assert fast_size((100, 100), 0) is None  # under the 64-pixel short side


def test_matches_exact_needs_every_held_out_number_at_least_as_good():
    exact = {"roc_auc": 1.0, "recall": 1.0, "false_positive_rate": 0.0}
    assert matches_exact(exact, dict(exact))[0]
    worse = matches_exact(exact, {"roc_auc": 0.999, "recall": 0.967, "false_positive_rate": 0.0})
    assert not worse[0] and "recall 0.9670 < 1.0000" in worse[1] and "ROC-AUC" in worse[1]
    assert not matches_exact(exact, None)[0] and "no held-out" in matches_exact(None, exact)[1]


def _version_with_fast(tmp_path, matches: bool):
    fast = export_version(tiny_scorer(), tmp_path / ".fast", name="t", version=3, input_size=(64, 96), model_size=(32, 48),
                          threshold=0.4, variant="fast")
    summary = {"folder": FAST_VARIANT_DIR, "model_height": 32, "model_width": 48, "downscale": "area", "matches_exact": matches,
               "reason": "held-out recall 0.9 < 1.0" if not matches else "equal"}
    return export_version(tiny_scorer(), tmp_path / "models", name="t", version=3, input_size=(64, 96), threshold=0.5,
                          variants={"fast": summary}, variant_dirs={"fast": fast})


def test_export_moves_the_fast_variant_into_the_version_and_workers_choose_it_on_cpu_only_when_it_matches(tmp_path):
    version = _version_with_fast(tmp_path / "a", matches=True)
    meta = json.loads((version / "metadata.json").read_text())
    fast_meta = json.loads((version / "fast" / "metadata.json").read_text())
    assert meta["variant"] == "exact" and meta["variants"]["fast"]["matches_exact"] is True
    assert fast_meta["variant"] == "fast" and fast_meta["version"] == "3" and fast_meta["architecture"]["model_height"] == 32
    assert not (tmp_path / "a" / ".fast" / "3").exists()  # moved, not copied
    chosen = choose_variant(version, "auto", "litert")
    assert (chosen.variant, chosen.folder) == ("fast", version / "fast") and "32x48" in chosen.reason
    frames = np.full((2, 64, 96), 120, np.uint8)
    frames[1, 20:28, 40:48] = 10
    scores = load_model(chosen.folder, backend="litert").predict(frames)
    assert scores[1] > scores[0]  # a working model, not a placeholder
    assert choose_variant(version, "auto", "tensorflow").variant == "exact"  # GPU hosts: the exact one
    assert choose_variant(version, "exact", "litert").folder == version

    unmatched = _version_with_fast(tmp_path / "b", matches=False)
    refused = choose_variant(unmatched, "auto", "litert")
    assert refused.variant == "exact" and "recall 0.9 < 1.0" in refused.reason
    assert choose_variant(unmatched, "fast", "litert").variant == "fast"  # the operator may insist
    (version / "fast" / "model.tflite").unlink()  # a variant whose LiteRT conversion failed is not a CPU choice
    assert choose_variant(version, "auto", "litert").variant == "exact"


def test_asking_for_a_fast_variant_that_is_not_there_names_the_setting(tmp_path):
    version = export_version(tiny_scorer(), tmp_path, name="t", input_size=(64, 96), threshold=0.5)
    assert choose_variant(version, "auto", "litert").variant == "exact"
    with pytest.raises(ModelLoadError, match="WORKER_MODEL_VARIANT=fast"):
        choose_variant(version, "fast", "litert")
    with pytest.raises(ValueError, match="model variant"):
        choose_variant(version, "quick", "litert")


def test_train_with_masks_writes_a_fast_variant_judged_on_the_same_held_out_frames(tmp_path, capsys):
    from surface_images.synthetic import SyntheticFrames
    from training.backbone import build_backbone
    from training.cli import main

    for i, s in enumerate(SyntheticFrames(seed=4, size=(128, 128), defect_rate=0.5, defect_scale=3).batch(0, 60)):
        label = "defect" if s.label else "ok"
        (tmp_path / "set" / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "set" / label / f"{i:03d}.png"), s.image)
        if s.label:
            (tmp_path / "set" / "masks").mkdir(exist_ok=True)
            cv2.imwrite(str(tmp_path / "set" / "masks" / f"{i:03d}.png"), s.mask)
    backbone = build_backbone(tmp_path / "b0", "stride4")
    status = main(["train", "--data", str(tmp_path / "set"), "--out", str(tmp_path / "models"), "--backbone", backbone.handle,
                   "--crop", "64", "--repeats", "1", "--epochs", "2", "--gate-min-auc", "0"])
    out = capsys.readouterr().out
    assert status == 0
    assert "a fast variant at 64x64 (extremes downscale" in out and "fast variant holdout:" in out
    version = tmp_path / "models" / "1"
    meta = json.loads((version / "metadata.json").read_text())
    fast = meta["variants"]["fast"]
    assert (fast["model_height"], fast["downscale"]) == (64, "extremes") and isinstance(fast["matches_exact"], bool)
    assert fast["holdout"]["n_images"] == meta["metrics"]["holdout"]["n_images"]  # the same held-out frames
    fast_meta = json.loads((version / "fast" / "metadata.json").read_text())
    assert fast_meta["architecture"]["downscale"] == "extremes" and fast_meta["input_height"] == 128
    assert load_model(version / "fast", backend="litert").predict(np.zeros((1, 128, 128), np.uint8)).shape == (1,)
    assert not list((tmp_path / "models").glob(".fast-*"))  # no staging left behind


def test_the_plan_adds_a_fast_variant_to_the_crops_recipe_and_keeps_both_within_30_minutes():
    from training.cli import build_parser
    from training.plan import make_plan

    def plan(*extra, masks=100):
        args = build_parser().parse_args(["train", "--data", "d", "--out", "o", *extra])
        return make_plan(args, [1] * 100 + [0] * 200, [(512, 512)] * 300, masks=masks)

    masked = plan()
    assert masked.fast_size == (256, 256) and masked.max_minutes + 6 + 2 <= 30 and "fast-variant" in masked.chosen
    assert "a fast variant at 256x256 (extremes downscale" in "\n".join(masked.lines())
    assert plan("--no-fast-variant").fast_size is None and plan("--no-fast-variant").max_minutes == 25
    assert plan(masks=0).fast_size is None and "no fast variant" in "\n".join(plan(masks=0).lines())
    assert plan("--fast-variant", masks=0).fast_size == (256, 256)  # asked for: also for image-level labels


def test_a_failing_fast_variant_never_costs_the_trained_exact_model(tmp_path):
    from surface_images.synthetic import SyntheticFrames
    from training.backbone import build_backbone
    from training.model import ModelConfig
    from training.pipeline import load_synthetic
    from training.train import TrainConfig
    from training.workflow import Recipe, train_and_export

    data = load_synthetic(SyntheticFrames(seed=1, size=(64, 64), defect_scale=2), 0, 40, (64, 64))
    recipe = Recipe(name="t", model=ModelConfig(model_height=64, model_width=64), train=TrainConfig(epochs=1, crop=32, max_minutes=1))
    broken = data.subset(range(10))  # fewer frames than the split indexes: the variant's training fails
    lines = []
    folder = train_and_export(recipe, data, build_backbone(tmp_path / "b0", "stride4"), tmp_path / "models", (64, 64), {},
                              log=lines.append, fast=(recipe, broken))
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["variants"] == {} and meta["export_warnings"][0].startswith("no fast variant: IndexError")
    assert any(line.startswith("WARNING: the fast variant failed") for line in lines)
    assert not (folder / "fast").exists() and not list((tmp_path / "models").glob(".fast-*"))
    assert load_model(folder, backend="litert").predict(np.zeros((1, 64, 64), np.uint8)).shape == (1,)


def test_the_fast_variant_of_a_flattened_recipe_builds_without_flatten():
    """--flatten needs one grey channel; the fast variant's extremes downscale has three, so it goes without (else the run stops)."""
    import argparse
    from dataclasses import replace

    from training.commands import _fast_recipe, _recipe
    from training.model import build_models
    from training.variants import FAST_DOWNSCALE

    args = argparse.Namespace(design="segdec", frozen=False, standardize=True, seed=0, threads=2, fractions=(0.6, 0.2, 0.2), split_seed=0,
                              target_recall=None, max_fpr=0.02, litert=True, gate_min_auc=0.9, gate_min_recall=0.9, gate_max_fpr=0.05,
                              model_size=(128, 128), downscale="area", epochs=2, batch_size=8, learning_rate=1e-3, crop=64, repeats=1,
                              patience=2, max_minutes=1.0, schedule="step", flatten=True)
    exact = _recipe(args, "t")
    assert exact.model.flatten
    fast = _fast_recipe(exact, (64, 64))
    assert (fast.model.flatten, fast.model.downscale, fast.model.model_height) == (False, FAST_DOWNSCALE, 64)
    with pytest.raises(ValueError, match="flatten needs one grey channel"):  # what the fast variant would otherwise hit
        build_models(replace(fast.model, flatten=True), argparse.Namespace(output_stride=8, variant="stride8", input_range="0-255"))

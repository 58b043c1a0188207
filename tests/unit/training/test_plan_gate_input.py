"""The plan `train` prints, the quality gate and its refusal at load time, and bad input that
stops before any training time is spent."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse

import cv2
import numpy as np
import pytest

from line_contracts.model import ModelMetadata
from line_runtime.model import ModelLoadError, check_fit_to_serve, load_model
from surface_images.make_set import write_set
from training.cli import build_parser, main
from training.plan import make_plan
from training.quality_gate import GateLimits, banner, judge
from training.tiny_model import tiny_scorer


def _train_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", "--data", "d", "--out", "o", *extra])


def test_plan_chooses_whole_frames_for_image_level_labels_and_crops_with_masks():
    labels, sizes = [1] * 100 + [0] * 200, [(240, 400)] * 299 + [(300, 300)]
    plan = make_plan(_train_args(), labels, sizes, masks=0)
    assert (plan.recipe, plan.crop, plan.balanced, plan.frame, plan.model_size, plan.refitted) == ("whole frames", 0, True, (240, 400), (240, 400), 1)
    assert plan.mil_weight > 0 and "model-size" in plan.chosen
    text = "\n".join(plan.lines())
    assert "image-level" in text and "1 fitted into 240x400" in text and "min of training" in text
    masked = make_plan(_train_args(), labels, sizes, masks=100)
    assert (masked.recipe, masked.crop, masked.mil_weight) == ("crops", 128, 0.0)
    partial = make_plan(_train_args(), labels, sizes, masks=30)
    assert partial.recipe == "whole frames" and "30 of 100" in "\n".join(partial.lines())
    given = make_plan(_train_args("--model-size", "128x192", "--epochs", "3"), labels, sizes, masks=0)
    assert given.model_size == (128, 192) and given.epochs == 3 and "epochs" not in given.chosen


def test_a_set_of_varied_sizes_plans_on_the_90th_percentile_size_and_says_why(tmp_path, capsys):
    write_set(tmp_path / "set", "mixed", (40, 60), defective=20, ok=24, fmt="png", largest=(80, 140))
    assert main(["train", "--data", str(tmp_path / "set"), "--out", str(tmp_path / "out"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "no size holds half the images: camera size = 90th percentile of the heights x of the widths" in out
    shapes = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).shape for p in (tmp_path / "set").rglob("*.png")]
    frame = [int(np.percentile([s[i] for s in shapes], 90, method="higher")) for i in (0, 1)]
    assert f"{frame[0]}x{frame[1]} frames in" in out
    assert sum(h <= frame[0] and w <= frame[1] for h, w in shapes) >= 0.8 * len(shapes)  # most fit unshrunk
    plan = make_plan(_train_args(), [1] * 150 + [0] * 150, [(240, 400)] * 150 + [(300, 300)] * 150, masks=0)
    assert plan.frame == (240, 400) and "percentile" not in "\n".join(plan.lines())  # half is enough: a camera


def test_big_frames_get_a_smaller_working_size_with_the_same_aspect():
    plan = make_plan(_train_args(), [1] * 400 + [0] * 400, [(1000, 1500)] * 800, masks=0)
    h, w = plan.model_size
    assert h * w <= 512 * 512 * 1.03 and abs(w / h - 1.5) < 0.02


def test_the_working_size_sits_on_the_backbone_s_stride_grid():
    # 368x568 on a stride-16 backbone once crashed at the first training step: the defect map had
    # 35 columns, the targets 36
    labels, sizes = [1] * 200 + [0] * 400, [(368, 569)] * 600
    assert make_plan(_train_args(), labels, sizes, masks=0).model_size == (368, 568)  # stride 8
    wide = make_plan(_train_args("--backbone-variant", "stride16"), labels, sizes, masks=0)
    assert wide.model_size == (368, 576) and all(side % 16 == 0 for side in wide.model_size)
    fast = make_plan(_train_args("--backbone-variant", "stride16", "--fast-variant"), labels, sizes, masks=0)
    assert fast.fast_size == (192, 288)  # half of 368x576, on the same grid (184x288 would not be)
    # the global design pools the features: any size on the 8-pixel grid will do
    assert make_plan(_train_args("--design", "global", "--backbone-variant", "stride16"), labels, sizes, masks=0).model_size == (368, 568)


def test_a_given_backbone_sets_the_grid_and_is_named_in_the_plan(tmp_path):
    from training.backbone import BACKBONE_INFO

    labels, sizes = [1] * 200 + [0] * 400, [(368, 569)] * 600
    folder = tmp_path / "b16"  # what build-backbone writes beside the SavedModel; the plan reads only this
    folder.mkdir()
    (folder / BACKBONE_INFO).write_text(json.dumps({"handle": str(folder), "variant": "stride16", "output_stride": 16,
                                                    "channels": 112, "input_range": "0-255", "weights": "random"}))
    plan = make_plan(_train_args("--backbone", str(folder)), labels, sizes, masks=0)
    assert plan.model_size == (368, 576) and plan.variant == "stride16" and plan.backbone == str(folder)
    assert f"backbone    {folder} (given)" in "\n".join(plan.lines()) and "backbone-variant" not in plan.chosen
    assert "random init, built locally" in "\n".join(make_plan(_train_args(), labels, sizes, masks=0).lines())
    with pytest.raises(FileNotFoundError, match="neither a TF Hub URL nor a local SavedModel folder"):
        make_plan(_train_args("--backbone", str(tmp_path / "nope")), labels, sizes, masks=0)


def test_an_option_out_of_range_stops_the_plan_and_names_it():
    labels, sizes = [1] * 30 + [0] * 30, [(64, 96)] * 60
    for bad, message in ((("--ema", "1"), "--ema 1: expected the decay"), (("--invert", "1.5"), "--invert 1.5: expected a probability"),
                         (("--scale-jitter", "0.8"), "--scale-jitter 0.8: expected the largest zoom change"),
                         (("--mil-top-k", "0"), "--mil-top-k 0: expected the number of defect-map cells")):
        with pytest.raises(ValueError, match=message):
            make_plan(_train_args(*bad), labels, sizes, masks=0)


def test_threads_default_to_the_cpus_the_process_may_use(capsys):
    from line_runtime.cpus import available_cpus

    labels, sizes = [1] * 30 + [0] * 30, [(64, 96)] * 60
    plan = make_plan(_train_args(), labels, sizes, masks=0)
    assert plan.threads == available_cpus() and "threads" in plan.chosen
    assert f"min of training on {plan.threads} CPU thread" in "\n".join(plan.lines())
    assert "on 3 CPU threads" in "\n".join(make_plan(_train_args("--threads", "3"), labels, sizes, masks=0).lines())
    with pytest.raises(SystemExit):
        _train_args("--threads", "0")
    assert "--threads: expected at least 1, got '0'" in capsys.readouterr().err


def test_train_plan_prints_and_trains_nothing(tmp_path, capsys):
    write_set(tmp_path / "set", "blobs", (40, 72), defective=20, ok=24, fmt="png")
    assert main(["train", "--data", str(tmp_path / "set"), "--out", str(tmp_path / "out"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "plan:" in out and "44 images: 20 defective, 24 ok" in out and "40x72 frames in" in out and "by folder" not in out
    assert not (tmp_path / "out").exists()
    # defects sorted by kind into sub-folders: still the defect class, counted per folder
    (tmp_path / "set" / "defect" / "dent").mkdir()
    for image in sorted((tmp_path / "set" / "defect").glob("*.png"))[:8]:
        image.rename(tmp_path / "set" / "defect" / "dent" / image.name)
    assert main(["train", "--data", str(tmp_path / "set"), "--out", str(tmp_path / "out"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "44 images: 20 defective, 24 ok (by folder: defect 12, defect/dent 8, ok 24)" in out
    assert "(split" not in out  # plain class folders: no split folder was read
    # the same folders inside a split folder: the data line names the split that was read
    (tmp_path / "split" / "Train").mkdir(parents=True)
    (tmp_path / "set").rename(tmp_path / "split" / "Train" / "set")
    for folder in ("defect", "ok"):
        (tmp_path / "split" / "Train" / "set" / folder).rename(tmp_path / "split" / "Train" / folder)
    assert main(["train", "--data", str(tmp_path / "split"), "--out", str(tmp_path / "out"), "--plan"]) == 0
    assert f"data: {tmp_path / 'split'} (split Train): checked 44 images" in capsys.readouterr().out


def test_quality_gate_judges_the_held_out_part():
    good = {"roc_auc": 0.99, "recall": 0.97, "false_positive_rate": 0.01, "n_images": 100, "n_defective": 30}
    assert judge(good, GateLimits())["passed"]
    bad = judge({**good, "roc_auc": 0.58, "recall": 0.5}, GateLimits())
    assert not bad["passed"] and len(bad["reasons"]) == 2 and "ROC-AUC 0.580" in bad["reasons"][0]
    assert "NOT FIT TO DEPLOY" in "\n".join(banner(bad))
    assert not judge(None, GateLimits())["passed"]
    assert not judge({**good, "recall": float("nan")}, GateLimits())["passed"]


def test_a_held_out_part_too_small_to_show_the_limits_is_called_weak_evidence():
    perfect = {"roc_auc": 1.0, "recall": 1.0, "false_positive_rate": 0.0}
    small = judge({**perfect, "n_images": 12, "n_defective": 4}, GateLimits())
    assert small["passed"]  # a plant with few images can still deploy: the point values pass
    assert len(small["too_few_to_judge"]) == 2
    assert "only 4 defective frames held out" in small["too_few_to_judge"][0] and "as low as 0.51" in small["too_few_to_judge"][0]
    assert "only 8 ok frames held out" in small["too_few_to_judge"][1] and "as high as 0.32" in small["too_few_to_judge"][1]
    assert sum("weak evidence" in line for line in banner(small)) == 2
    # 40 of 40 caught bounds recall above 0.9, and 0 of 80 bounds the false-positive rate under 0.05
    assert judge({**perfect, "n_images": 120, "n_defective": 40}, GateLimits())["too_few_to_judge"] == []
    failed = judge({**perfect, "recall": 0.5, "n_images": 12, "n_defective": 4}, GateLimits())
    assert "NOT FIT TO DEPLOY" in "\n".join(banner(failed)) and sum("weak evidence" in line for line in banner(failed)) == 2


def test_rate_intervals_match_the_wilson_tables_and_auc_intervals_a_plain_bootstrap():
    from training.metrics import rate_interval, roc_auc, roc_auc_interval

    assert rate_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)  # Wilson 95 %, published tables
    assert rate_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)
    assert rate_interval(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)
    assert all(np.isnan(rate_interval(0, 0)))
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(40), np.zeros(80)].astype(int)
    scores = np.round(np.r_[rng.normal(2, 1, 40), rng.normal(0, 1, 80)], 1)  # rounded: ties count half
    lo, hi = roc_auc_interval(labels, scores)
    assert lo < roc_auc(labels, scores) < hi
    plain = []  # the textbook loop: redraw each class with replacement, score the AUC
    for _ in range(2000):
        pick = np.r_[rng.choice(40, 40), 40 + rng.choice(80, 80)]
        plain.append(roc_auc(labels[pick], scores[pick]))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(plain, [2.5, 97.5])), abs=0.01)
    assert roc_auc_interval(labels, np.r_[np.ones(40), np.zeros(80)]) == [1.0, 1.0]  # perfectly separated: no spread
    wide = roc_auc_interval(labels[::4], scores[::4])
    assert wide[1] - wide[0] > hi - lo  # a quarter of the frames, a wider interval


def test_the_held_out_errors_name_each_wrong_frame_worst_first():
    from training.metrics import at_threshold, errors_at

    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.2, 0.4, 0.1, 0.7, 0.95, 0.3])
    names = [f"f{i}.png" for i in range(7)]
    errors = errors_at(labels, scores, 0.5, names)
    assert [e["file"] for e in errors["missed"]] == ["f1.png", "f2.png"]  # lowest-scoring defect first
    assert [e["file"] for e in errors["false_alarms"]] == ["f5.png", "f4.png"]  # highest-scoring ok frame first
    counts = at_threshold(labels, scores, 0.5)
    assert (len(errors["missed"]), len(errors["false_alarms"])) == (counts["fn"], counts["fp"])
    assert errors_at(labels, scores, 0.0, names)["missed"] == [] and errors_at(labels, scores, 1.0, names)["false_alarms"] == []
    with pytest.raises(ValueError, match="6 names but 7 scores"):
        errors_at(labels, scores, 0.5, names[:6])


def test_worker_side_check_refuses_an_unfit_model_unless_allowed(tmp_path):
    from training.export import export_version

    gate = judge({"roc_auc": 0.6, "recall": 0.4, "false_positive_rate": 0.3}, GateLimits())
    folder = export_version(tiny_scorer(), tmp_path, name="weak", input_size=(32, 32), threshold=0.5, litert=False,
                            fit_to_serve=gate["passed"], quality_gate=gate)
    meta = load_model(folder).metadata
    assert meta.fit_to_serve is False and json.loads((folder / "metadata.json").read_text())["quality_gate"]["reasons"]
    with pytest.raises(ModelLoadError, match="WORKER_ALLOW_UNFIT_MODEL"):
        check_fit_to_serve(meta, allow_unfit=False)
    check_fit_to_serve(meta, allow_unfit=True)
    old = ModelMetadata(name="old", version="1", input_height=8, input_width=8, threshold=0.5)  # written before the gate existed
    check_fit_to_serve(old, allow_unfit=False)


def _cli_error(tmp_path, capsys, data) -> str:
    status = main(["train", "--data", str(data), "--out", str(tmp_path / "out")])
    assert status == 2 and not (tmp_path / "out").exists()  # stopped before any training or export
    return capsys.readouterr().err


def test_bad_input_stops_before_training_and_names_the_path(tmp_path, capsys):
    root = tmp_path / "set"
    write_set(root, "blobs", (32, 48), defective=20, ok=22, fmt="png")
    (root / "empty_ok").mkdir()
    for f in (root / "ok").iterdir():
        f.rename(root / "empty_ok" / f.name)
    assert f"{root}: no ok images (found 20 defect)" in _cli_error(tmp_path, capsys, root)  # empty class folder
    for f in list((root / "empty_ok").iterdir())[:15]:
        f.rename(root / "ok" / f.name)
    err = _cli_error(tmp_path, capsys, root)
    assert f"{root / 'ok'}: only 15 ok image(s); expected at least 20" in err
    for f in (root / "empty_ok").iterdir():
        f.rename(root / "ok" / f.name)
    cv2.imwrite(str(root / "ok" / "colour.png"), np.dstack([np.zeros((32, 48), np.uint8), np.full((32, 48), 200, np.uint8), np.zeros((32, 48), np.uint8)]))
    cv2.imwrite(str(root / "ok" / "deep.png"), np.full((32, 48), 4000, np.uint16))
    (root / "ok" / "broken.png").write_bytes(b"not a png")
    err = _cli_error(tmp_path, capsys, root)
    assert "3 file(s) cannot be used" in err and "colour.png: colour image" in err and "deep.png: uint16" in err and "broken.png: cannot decode" in err
    for name in ("colour.png", "deep.png", "broken.png"):
        (root / "ok" / name).unlink()
    (root / "masks").mkdir()
    cv2.imwrite(str(root / "masks" / "defect_0003.png"), np.zeros((16, 16), np.uint8))
    err = _cli_error(tmp_path, capsys, root)
    assert "defect_0003.png: mask is 16x16 but its image" in err and "32x48" in err

"""Ctrl-C or SIGTERM during training: the best epoch so far is judged and exported; a second signal aborts.

The signals are real (`signal.raise_signal` to this process); they are raised from the log
callback when an epoch line passes, so they land inside the training loop at a known point.
"""

from __future__ import annotations

import json
import os
import signal

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from line_runtime.model import load_model
from surface_images.synthetic import SyntheticFrames


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from training.backbone import build_backbone
    from training.pipeline import load_synthetic

    data = load_synthetic(SyntheticFrames(seed=1, size=(64, 64), defect_scale=2), 0, 40, (64, 64))
    return data, build_backbone(tmp_path_factory.mktemp("backbone") / "b0", "stride4")


def _recipe(epochs: int = 50):
    from training.model import ModelConfig
    from training.train import TrainConfig
    from training.workflow import Recipe

    return Recipe(name="t", model=ModelConfig(model_height=64, model_width=64),
                  train=TrainConfig(epochs=epochs, crop=32, max_minutes=2, patience=99))


def _signal_after_epoch(epoch: int, lines: list, signum: int, times: int = 1):
    def log(line: str) -> None:
        lines.append(line)
        if line.startswith(f"epoch {epoch:3d}/"):
            for _ in range(times):
                signal.raise_signal(signum)
    return log


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_training_and_the_best_epoch_so_far_is_exported(tmp_path, tiny, signum):
    from training.workflow import TrainingInterrupted, train_and_export

    data, backbone = tiny
    before = signal.getsignal(signum)
    lines: list[str] = []
    name = signal.Signals(signum).name
    with pytest.raises(TrainingInterrupted) as stopped:
        train_and_export(_recipe(), data, backbone, tmp_path / "models", (64, 64), {}, log=_signal_after_epoch(2, lines, signum),
                         fast=(_recipe(), data))
    folder = stopped.value.folder
    assert stopped.value.exit_status == 128 + signum and name in str(stopped.value)
    assert any(line.startswith(f"{name} received: training stops now") for line in lines)
    assert f"training finished: interrupted by {name} in epoch 2 of 50" in "\n".join(lines)
    assert "fast variant skipped: training was interrupted" in lines and not (folder / "fast").exists()
    meta = json.loads((folder / "metadata.json").read_text())
    report = json.loads((folder / "training_report.json").read_text())
    assert len(report["training"]["history"]) == 2 and report["training"]["best_epoch"] in (1, 2)
    assert any(f"interrupted by {name} in epoch 2 of 50" in w and "no fast variant" in w for w in meta["export_warnings"])
    assert "holdout" in report and "quality_gate" in meta  # judged as any other run
    assert load_model(folder, backend="litert").predict(np.zeros((1, 64, 64), np.uint8)).shape == (1,)
    assert signal.getsignal(signum) == before  # the usual handler is back once the loop is over


def test_a_second_stop_signal_aborts_at_once_without_a_model(tmp_path, tiny):
    from training.workflow import train_and_export

    data, backbone = tiny
    before = signal.getsignal(signal.SIGINT)  # not always Python's default: other code in this process may have set one
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt, match="second stop signal"):
        train_and_export(_recipe(), data, backbone, tmp_path / "models", (64, 64), {}, log=_signal_after_epoch(1, lines, signal.SIGINT, 2))
    assert not list((tmp_path / "models").glob("*/metadata.json"))
    assert signal.getsignal(signal.SIGINT) == before


def test_the_command_line_exits_with_the_signal_status_after_writing_the_model(tmp_path, monkeypatch, capsys):
    from training import cli

    lines: list[str] = []
    monkeypatch.setattr(cli, "_log", _signal_after_epoch(1, lines, signal.SIGINT))  # the real log line triggers a real signal
    status = cli.main(["quick-demo", "--out", str(tmp_path / "demo"), "--frames", "60", "--frame-size", "64", "--model-size", "64",
                       "--crop", "32", "--epochs", "40", "--no-litert"])
    assert status == 130
    assert "interrupted: training was interrupted by SIGINT; the best epoch so far was written to" in capsys.readouterr().err
    assert json.loads((tmp_path / "demo" / "1" / "metadata.json").read_text())["export_warnings"]


def test_a_stop_signal_during_the_fast_variant_drops_it_and_ships_the_exact_model(tmp_path, tiny):
    from training.workflow import TrainingInterrupted, train_and_export

    data, backbone = tiny
    lines: list[str] = []

    def log(line: str) -> None:  # the exact model runs 1 epoch to its end; the signal comes in the fast variant's first
        lines.append(line)
        if line.startswith("epoch   1/50"):
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as stopped:
        train_and_export(_recipe(epochs=1), data, backbone, tmp_path / "models", (64, 64), {}, log=log, fast=(_recipe(), data))
    folder = stopped.value.folder
    meta = json.loads((folder / "metadata.json").read_text())
    assert stopped.value.exit_status == 130 and meta["variants"] == {} and not (folder / "fast").exists()
    assert meta["export_warnings"] == ["no fast variant: RuntimeError: its training was interrupted by SIGINT in epoch 1 of 50"]
    assert "training finished: epochs done; best epoch 1" in "\n".join(lines)  # the exact model was not cut short
    assert not list((tmp_path / "models").glob(".fast-*"))

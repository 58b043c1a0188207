"""The training-speed benchmark reads epoch times from train's log and runs train both ways."""

from __future__ import annotations

import pytest

from line_harness.bench.training_speed import epoch_seconds, main, run_train


def test_epoch_times_come_from_train_s_log_lines():
    log = ("11:40:20 epoch   1/3  cls 1.7310  seg 1.7417  val auc 0.4375  cost 8  margin -0.03  42s  elapsed 45s  *best\n"
           "11:40:54 epoch   2/3  cls 1.1685  seg 1.2896  val auc 0.5156  cost 8  margin -0.09  34s  elapsed 78s  *best\n"
           "11:41:27 training finished: epochs done; best epoch 2; wall time 112s\n"
           "11:41:27 epoch  10/30  cls 0.8647  seg 1.1383  val auc 0.4531  cost 8  margin -0.18  133s  elapsed 1111s\n")
    assert epoch_seconds(log) == [42.0, 34.0, 133.0]


def test_one_run_reports_its_epochs_and_kernel_share(tmp_path):
    from surface_images.make_set import write_set

    write_set(tmp_path / "set", "blobs", (48, 80), defective=20, ok=20, seed=1)
    run = run_train(tmp_path / "set", tmp_path / "models", epochs=2, model_size="64x96", use_bfc=True)
    assert run["bfc"] and len(run["epochs"]) == 2 and run["epoch_s"] == run["epochs"][1] and 0 <= run["kernel_share"] < 1


def test_fewer_than_two_epochs_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--epochs", "1"])
    assert "--epochs 1: at least 2" in capsys.readouterr().err

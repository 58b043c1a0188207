"""Fail closed on the real broker: a model that returns NaN judges nothing (it used to make every
verdict "ok"), commits nothing, keeps the worker up and says so; once a working version is hot
reloaded every frame is judged by it and committed, none lost."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from line_harness.frames import FRAME_SIZE, produce_frames
from line_harness.readers import committed_lag, read_topic
from line_harness.worker_process import WorkerProcess

pytestmark = pytest.mark.timeout(300)


def _nan_model(base: Path) -> None:
    """Version 1: the tiny model with a NaN decision bias (every score NaN), exported like any model."""
    from training.export import export_version
    from training.tiny_model import tiny_scorer
    model = tiny_scorer(0)
    weights, _bias = model.get_layer("decision").get_weights()
    model.get_layer("decision").set_weights([weights, np.array([np.nan], np.float32)])
    export_version(model, base, name="tiny", version=1, input_size=FRAME_SIZE, threshold=0.5,
                   threshold_rule="fixed (test)", backbone="none", architecture={"design": "nan"},
                   training_data={"images": 0, "note": "a broken model on purpose"})


def test_a_nan_model_halts_judging_until_a_working_version_arrives(kafka_bootstrap, new_topic, new_group, tmp_path):
    from training.tiny_model import build_tiny_model
    base = tmp_path / "models"
    _nan_model(base)
    frames, results, dlq = new_topic(2, "frames"), new_topic(2, "results"), new_topic(1, "dlq")
    group = new_group()
    n = 120
    produce_frames(kafka_bootstrap, frames, range(n))
    worker = WorkerProcess(kafka_bootstrap, base, frames, results, dlq, group, tmp_path / "w.log",
                           model_poll_interval_s=0.5, halt_retry_s=2)
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while worker.metric("inspection_model_failures_total", kind="non_finite") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.metric("inspection_model_failures_total", kind="non_finite") >= 2  # retried, failed again
        assert worker.proc.poll() is None, worker.log_tail()
        status, body = worker.get("/healthz")
        assert status == 200 and "judging halted" in body, body
        assert read_topic(kafka_bootstrap, results, 1, timeout_s=3) == []  # no verdict from a NaN
        assert read_topic(kafka_bootstrap, dlq, 1, timeout_s=1) == []      # and no dead letter committed past
        assert committed_lag(kafka_bootstrap, frames, group) == n
        build_tiny_model(base, version=2, input_size=FRAME_SIZE)  # the fix is rolled out
        events = read_topic(kafka_bootstrap, results, 10**6, timeout_s=90,
                            until=lambda evs: len({ev["frame"]["frame_seq"] for ev in evs}) == n)
        assert {ev["frame"]["frame_seq"] for ev in events} == set(range(n))
        assert {ev["model"]["version"] for ev in events} == {"2"}
        deadline = time.monotonic() + 30
        while committed_lag(kafka_bootstrap, frames, group) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert committed_lag(kafka_bootstrap, frames, group) == 0
        assert worker.metric("inspection_judging_halted_partitions") == 0
        assert worker.stop() == 0
    finally:
        print(f"--- worker log (last 40 lines)\n{worker.log_tail(40)}")
        worker.stop()

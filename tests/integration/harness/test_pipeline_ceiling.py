"""The pipeline-ceiling benchmark mode, small: a real null-model worker and decode-only on the same PNG frames."""

from __future__ import annotations

import os

import pytest

from line_harness.bench.pipeline_ceiling import cores_left, format_rows, pipeline_ceiling
from line_harness.bench.stages import Env

pytestmark = pytest.mark.timeout(180)


def test_null_model_worker_and_decode_only_both_judge_every_frame(kafka_broker, kafka_client_kwargs, tmp_path):
    kafka_env = (kafka_broker.client_settings_env() if kafka_broker is not None
                 else {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")})
    env = Env(kafka_env, kafka_client_kwargs, tmp_path / "null-model", tmp_path)
    rows = pipeline_ceiling(env, 60, ["png"], decode_threads=2, processes=(1, 2))
    row, fleet = rows
    assert (row["processes"], fleet["processes"]) == (1, 2)
    assert fleet["worker"]["dead_letters"] == 0 and fleet["worker"]["frames_per_s"] > 0
    assert fleet["decode_only"] is row["decode_only"]  # both measured against the same decode-only run
    assert row["encoding"] == "png" and row["mean_frame_bytes"] > 50_000  # realistic 512x512 PNG, not a toy
    assert row["decode_only"]["frames"] == 60 and row["decode_only"]["frames_per_s"] > 0
    worker = row["worker"]
    assert worker["backend"] == "null" and worker["dead_letters"] == 0 and worker["frames_per_s"] > 0
    assert row["worker_over_decode"] == worker["frames_per_s"] / row["decode_only"]["frames_per_s"]
    # measured over the worker's window (None when 60 frames pass between two 0.5 s samples)
    assert {"machine_busy_cores", "cpu_cores"} <= set(worker) and {"other_cores", "bound_over_decode"} <= set(row)
    assert "png" in format_rows(rows) and "bound" in format_rows(rows)


def test_the_bound_is_decode_efficiency_on_the_cores_the_rest_of_the_machine_left():
    cpus = os.cpu_count()
    decode = {"frames_per_s": 100.0 * cpus, "frames_per_cpu_s": 100.0}  # decode-only used every core
    left = cores_left({"machine_busy_cores": 1.5, "cpu_cores": 1.0}, decode)
    assert left["other_cores"] == pytest.approx(0.5)
    assert left["bound_over_decode"] == pytest.approx((cpus - 0.5) / cpus)
    assert cores_left({"machine_busy_cores": 0.9, "cpu_cores": 1.0}, decode)["bound_over_decode"] == 1.0  # clamped
    assert cores_left({"machine_busy_cores": None, "cpu_cores": 1.0}, decode) == {"other_cores": None,
                                                                                   "bound_over_decode": None}

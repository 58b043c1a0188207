"""The pipeline-ceiling benchmark mode, small: a real null-model worker and decode-only on the same PNG frames."""

from __future__ import annotations

import os

import pytest

from line_harness.bench.pipeline_ceiling import format_rows, pipeline_ceiling
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
    assert "png" in format_rows(rows)

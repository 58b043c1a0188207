"""Batching defaults by backend and device: small batches on CPU, large on a GPU, the user's settings win."""

from __future__ import annotations

import json

import pytest

from line_contracts.model import METADATA_FILE, TFLITE_FILE
from line_runtime.model import resolve_backend
from worker.device_defaults import apply_device_defaults, describe, device_defaults
from worker.settings import WorkerSettings


def test_cpu_gets_a_small_batch_and_a_gpu_a_large_one():
    litert = device_defaults("litert", gpu=False)
    tf_cpu = device_defaults("tensorflow", gpu=False)
    tf_gpu = device_defaults("tensorflow", gpu=True)
    assert litert.max_batch_size <= 4 and tf_cpu.max_batch_size <= 8
    assert tf_gpu.max_batch_size >= 64
    assert litert.warmup_buckets() == [1, 2, 4]
    assert tf_gpu.warmup_buckets()[-1] == tf_gpu.max_batch_size and tf_gpu.warmup_buckets()[0] == 1


def test_unknown_backend_names_itself():
    with pytest.raises(ValueError, match="'auto'"):
        device_defaults("auto", gpu=False)  # callers resolve "auto" first (line_runtime.model.resolve_backend)


def test_unset_fields_are_chosen_and_logged(monkeypatch):
    monkeypatch.delenv("WORKER_MAX_BATCH_SIZE", raising=False)
    monkeypatch.delenv("WORKER_MAX_BATCH_WAIT_MS", raising=False)
    settings = WorkerSettings()
    applied = apply_device_defaults(settings, "litert", gpu=False)
    assert settings.max_batch_size == 4 and settings.batch_buckets() == [1, 2, 4]
    assert applied["chosen"] == {"max_batch_size": 4, "max_batch_wait_ms": 20.0} and applied["kept"] == {}
    line = describe(applied)
    assert "max_batch_size=4" in line and "litert on CPU" in line and "[1, 2, 4]" in line


def test_the_users_settings_are_kept(monkeypatch):
    monkeypatch.setenv("WORKER_MAX_BATCH_SIZE", "32")
    monkeypatch.delenv("WORKER_MAX_BATCH_WAIT_MS", raising=False)
    settings = WorkerSettings()
    applied = apply_device_defaults(settings, "litert", gpu=False)
    assert settings.max_batch_size == 32 and applied["kept"] == {"max_batch_size": 32}
    assert applied["chosen"] == {"max_batch_wait_ms": 20.0}
    assert "set by the user: max_batch_size=32" in describe(applied)
    monkeypatch.delenv("WORKER_MAX_BATCH_SIZE")
    explicit = WorkerSettings(max_batch_wait_ms=5)
    apply_device_defaults(explicit, "tensorflow", gpu=True)
    assert explicit.max_batch_wait_ms == 5 and explicit.max_batch_size == 64
    both = WorkerSettings(max_batch_size=16, max_batch_wait_ms=10)
    line = describe(apply_device_defaults(both, "litert", gpu=False))
    assert line.startswith("batching as set by the user") and "max_batch_size=16, max_batch_wait_ms=10;" in line
    assert both.max_batch_size == 16


def test_auto_resolves_to_litert_without_a_gpu_when_the_twin_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # no GPU, whatever the host has
    (tmp_path / METADATA_FILE).write_text(json.dumps({"name": "m", "version": "1", "input_height": 8,
                                                      "input_width": 8, "threshold": 0.5}))
    assert resolve_backend(tmp_path, "auto") == "tensorflow"  # no model.tflite
    (tmp_path / TFLITE_FILE).write_bytes(b"x")
    assert resolve_backend(tmp_path, "auto") == "litert"
    assert resolve_backend(tmp_path, "null") == "null"

"""The LiteRT interpreter's threads: WORKER_MODEL_THREADS, or the pod's CPUs (WORKER_CPUS, else detected) shared
among its processes.

The CPU count is the one probe replaced here: this machine cannot be made an 8- or 3-CPU container.
"""

from __future__ import annotations

import threading

import pytest

import worker.model
from line_runtime.cpus import available_cpus
from worker.model import model_threads
from worker.settings import WorkerSettings


def test_an_explicit_setting_wins():
    assert model_threads(WorkerSettings(model_threads=3, processes=4)) == 3


@pytest.mark.parametrize("cpus, processes, expected", [(8, 1, 8), (8, 2, 4), (8, 3, 2), (3, 4, 1), (1, 1, 1)])
def test_auto_shares_the_usable_cpus_among_the_consumer_processes(monkeypatch, cpus, processes, expected):
    monkeypatch.setattr(worker.model, "available_cpus", lambda: cpus)
    assert model_threads(WorkerSettings(processes=processes)) == expected


@pytest.mark.parametrize("cpus, processes, expected", [(4, 1, 4), (4, 2, 2), (2, 4, 1)])
def test_the_pods_cpus_as_the_chart_sets_them_win_over_detection(monkeypatch, cpus, processes, expected):
    monkeypatch.setattr(worker.model, "available_cpus", lambda: 64)  # a node's cores, seen by a pod without a limit
    assert model_threads(WorkerSettings(cpus=cpus, processes=processes)) == expected


def test_auto_on_this_machine_is_its_usable_cpus():
    assert model_threads(WorkerSettings()) == available_cpus()


def test_a_negative_setting_is_refused():
    with pytest.raises(ValueError, match="model_threads"):
        WorkerSettings(model_threads=-1)


def test_a_savedmodel_served_on_cpu_gets_the_same_threads(tmp_path, monkeypatch):
    """No LiteRT twin chosen: TensorFlow on a CPU is capped like the interpreter would be (the call is recorded:
    TensorFlow's threads are fixed once it runs, and this test process has run it before)."""
    from prometheus_client import CollectorRegistry

    from training.tiny_model import build_tiny_model
    from worker.metrics import WorkerMetrics
    from worker.model import ModelManager

    build_tiny_model(tmp_path, version=1, input_size=(32, 32))
    calls = []
    monkeypatch.setattr(worker.model, "configure_tensorflow_threads", lambda n: calls.append(n) or True)
    monkeypatch.setattr(worker.model, "available_cpus", lambda: 6)
    settings = WorkerSettings(model_path=tmp_path, model_backend="tensorflow", processes=2, max_batch_size=2)
    serving = ModelManager(settings, WorkerMetrics(CollectorRegistry()), threading.Event()).load_initial()
    assert serving.backend == "tensorflow" and calls == [3]
    calls.clear()
    settings = WorkerSettings(model_path=tmp_path, model_backend="litert", max_batch_size=2)
    assert ModelManager(settings, WorkerMetrics(CollectorRegistry()), threading.Event()).load_initial().backend == "litert"
    assert calls == []  # LiteRT takes its threads from load_model


def test_a_fast_variant_without_its_litert_twin_is_served_as_a_savedmodel_with_the_same_threads(tmp_path, monkeypatch):
    """WORKER_MODEL_VARIANT=fast where the fast variant's LiteRT conversion failed at export: the exact model has its
    twin, the fast folder has not, so the backend is resolved for the folder actually served."""
    from prometheus_client import CollectorRegistry

    from line_contracts.model import FAST_VARIANT_DIR, TFLITE_FILE
    from training.tiny_model import build_tiny_model
    from worker.metrics import WorkerMetrics
    from worker.model import ModelManager

    version = build_tiny_model(tmp_path, version=1, input_size=(32, 32), fast=True)
    (version / FAST_VARIANT_DIR / TFLITE_FILE).unlink()
    assert (version / TFLITE_FILE).is_file()
    calls = []
    monkeypatch.setattr(worker.model, "configure_tensorflow_threads", lambda n: calls.append(n) or True)
    monkeypatch.setattr(worker.model, "available_cpus", lambda: 4)
    settings = WorkerSettings(model_path=tmp_path, model_variant="fast", max_batch_size=2)
    serving = ModelManager(settings, WorkerMetrics(CollectorRegistry()), threading.Event()).load_initial()
    assert (serving.variant, serving.backend) == ("fast", "tensorflow")
    assert calls == [4]

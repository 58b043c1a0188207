"""The worker refuses a model its training quality gate marked unfit, unless WORKER_ALLOW_UNFIT_MODEL is set.

Uses the null backend, which needs only metadata.json, so no model has to be trained or run.
"""

from __future__ import annotations

import json
import threading

import pytest
from prometheus_client import CollectorRegistry

from line_contracts.model import METADATA_FILE
from line_runtime.model import ModelLoadError
from worker.metrics import WorkerMetrics
from worker.model import ModelManager
from worker.settings import WorkerSettings


def _version(base, fit: bool):
    version = base / "3"
    version.mkdir(parents=True)
    gate = {"passed": fit, "reasons": [] if fit else ["held-out ROC-AUC 0.71 < 0.9"]}
    (version / METADATA_FILE).write_text(json.dumps({"name": "gated", "version": "3", "input_height": 32,
                                                     "input_width": 32, "threshold": 0.5, "fit_to_serve": fit,
                                                     "quality_gate": gate}))
    return base


def _manager(model_path, **settings) -> ModelManager:
    s = WorkerSettings(model_path=model_path, model_backend="null", **settings)
    return ModelManager(s, WorkerMetrics(CollectorRegistry()), threading.Event())


def test_unfit_model_is_refused_naming_the_reason_and_the_setting(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        _manager(_version(tmp_path, fit=False)).load_initial()
    assert "ROC-AUC 0.71" in str(err.value) and "WORKER_ALLOW_UNFIT_MODEL" in str(err.value)


def test_unfit_model_is_served_when_explicitly_allowed(tmp_path):
    serving = _manager(_version(tmp_path, fit=False), allow_unfit_model=True).load_initial()
    assert serving.version == "3"


def test_fit_model_is_served(tmp_path):
    assert _manager(_version(tmp_path, fit=True)).load_initial().name == "gated"

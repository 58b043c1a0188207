"""Fixtures of the harness's integration tests."""

import os

import pytest


@pytest.fixture(scope="module")
def ctx(kafka_broker, kafka_client_kwargs, tmp_path_factory, request):
    """A chaos context on the test run's broker with the tiny model at 64x64 (one per test module)."""
    from line_harness.chaos import scenarios
    from training.tiny_model import build_tiny_model
    out = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    build_tiny_model(out / "models", version=1, input_size=(64, 64))
    if kafka_broker is not None:
        kafka_env = kafka_broker.client_settings_env()
    else:
        kafka_env = {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}
    return scenarios.Ctx(kafka_broker, kafka_env, kafka_client_kwargs, out / "models", out)

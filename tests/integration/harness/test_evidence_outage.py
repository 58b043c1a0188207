"""The evidence store SIGKILLed for 15 s under a steady stream (the chaos suite's `evidence` scenario runs
60 s): no result lost, evidence missing only for frames published while it was away, everything queued
kept, writes resumed by themselves, InspectionEvidenceMissing firing in a real Prometheus."""

from __future__ import annotations

import os

import pytest

from line_harness.chaos import scenarios
from line_harness.chaos.evidence_outage import evidence_outage

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def ctx(kafka_broker, kafka_client_kwargs, tmp_path_factory):
    """A chaos context on the test run's broker with the tiny model at 64x64."""
    from training.tiny_model import build_tiny_model
    out = tmp_path_factory.mktemp("evidence-outage")
    build_tiny_model(out / "models", version=1, input_size=(64, 64))
    if kafka_broker is not None:
        kafka_env = kafka_broker.client_settings_env()
    else:
        kafka_env = {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}
    return scenarios.Ctx(kafka_broker, kafka_env, kafka_client_kwargs, out / "models", out)


def test_a_store_outage_loses_no_result_and_only_the_evidence_of_frames_judged_during_it(ctx):
    result = evidence_outage(ctx, outage_s=15.0, before_s=8.0, after_s=10.0)
    print(result["check"])
    assert result["accounting"]["lost"] == 0 and result["accounting"]["ok"], result["check"]
    assert result["missing"] > 0 and not result["missing_outside_outage"], result
    assert result["queued_before_outage"] > 0 and not result["queued_not_in_store"], result
    assert result["queued_after_recovery"] > 0, result
    assert result["missing_metric"]["store_down"] == result["missing"], result  # each missing event counted once
    assert result["alert"] == "firing", result
    assert result["passed"], result["check"]

"""The evidence store SIGKILLed for 15 s under a steady stream (the chaos suite's `evidence` scenario runs
60 s): no result lost, evidence missing only for frames published while it was away, everything queued
kept, writes resumed by themselves, InspectionEvidenceMissing firing in a real Prometheus."""

from __future__ import annotations

import pytest

from line_harness.chaos.evidence_outage import evidence_outage

pytestmark = pytest.mark.timeout(420)


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

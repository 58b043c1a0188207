"""The short fault suite (`python -m line_harness.chaos.run --short` size) against the real broker, workers and simulator.

Each scenario ends with the accounting check: frames produced = distinct frames judged + frames
dead-lettered, zero lost. The full suite (10 kills, exactly-once kills, bigger corrupt run,
the broker away past the delivery timeout, the 10-minute rebalance storms, soak) is
`deploy/chaos.sh`; see docs/reliability.md.
"""

from __future__ import annotations

import os

import pytest

from line_harness.chaos import publish_faults, rebalance_storm, scenarios
from producer_sim.faults import ALL_KINDS

pytestmark = pytest.mark.timeout(200)


def _assert_accounted(result: dict) -> None:
    acc = result["accounting"]
    assert acc["produced"] > 0, result
    assert acc["lost"] == 0 and acc["unknown"] == 0 and acc["judged_and_dead"] == 0, result["check"]
    assert acc["produced"] == acc["judged"] + acc["dead_lettered"], result["check"]
    assert result["drained"] and acc["ok"] and result["passed"], result


def test_sigkill_three_times_loses_nothing(ctx):
    result = scenarios.sigkill(ctx, kills=3)
    _assert_accounted(result)
    assert len(result["kill_after_ready_s"]) == 3
    assert result["accounting"]["dead_lettered"] == 0  # a clean stream: nothing to dead-letter


@pytest.mark.skipif(bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
                    reason="KAFKA_BOOTSTRAP_SERVERS names an external broker, which this test cannot restart")
def test_broker_restart_mid_stream_loses_nothing(ctx):
    assert ctx.kafka is not None, "the local broker must be running to be restarted"
    result = scenarios.broker_restart(ctx, before_s=5.0, after_s=5.0)
    _assert_accounted(result)
    assert result["worker_survived"], result  # the worker rode out the restart and exited 0 on SIGTERM


def test_rebalance_join_leave_and_sigkill_loses_nothing(ctx):
    result = scenarios.rebalance(ctx, phase_s=4.0)
    _assert_accounted(result)
    assert result["a_exit_code"] == 0
    assert result["steps"][-1] == "B SIGKILLed"


def test_corrupt_frames_all_dead_lettered_at_full_speed(ctx):
    result = scenarios.corrupt(ctx, frames=2000, rate=0.05, huge_keys=3)
    _assert_accounted(result["clean"])
    _assert_accounted(result["corrupt"])
    # Every kind of producer_sim.faults, the hostile ones of issue 11 included, was sent at least once.
    assert set(result["kinds_sent"]) == set(ALL_KINDS) and not result["kinds_missing"], result["bad_sent_by_kind"]
    assert not result["clean"]["worker_exited"] and not result["corrupt"]["worker_exited"]
    assert result["corrupt"]["last_exit_code"] == 0
    bad_sent = sum(result["corrupt"]["bad_sent_by_kind"].values())
    assert 53 <= bad_sent <= 163  # ~5% of 2000, plus the 3 huge keys
    assert result["dead_by_reason"] == result["expected_dead_by_reason"]
    assert result["corrupt"]["accounting"]["dead_lettered"] == bad_sent
    # Frames per worker CPU-second: a few-second wall-clock rate on a shared machine swings 2x. This short
    # run spends ~1-2 worker CPU-seconds per stream, so the ratio carries ~10% noise (0.78 seen once at load
    # 10): it guards against a collapse here; the issue's >= 0.8 is judged by the full `make chaos` run
    # (3,000 frames; 0.90 in docs/reliability.md).
    assert result["throughput_ratio"] >= 0.7, (result["clean"], result["corrupt"])


def test_publish_path_faults_stop_commits_alert_and_lose_nothing(ctx):
    """Results topic refusing records, then the dead-letter topic, then the results topic deleted (10 s each):
    the worker stays up, stops committing, raises inspection_publish_failing, and resumes with nothing lost.
    (The broker away longer than the 120 s delivery timeout is in the full suite only.)"""
    result = publish_faults.publish_faults(ctx, outage_s=10.0)
    assert result["produced"] > 0 and result["lost"] == 0 and result["unpublished"] == 0, result["unpublished_examples"]
    assert result["commits_ahead_of_results"] == 0, result["ahead_examples"]
    assert result["phases"]["results-denied"]["gauge_max"] >= 1 and result["phases"]["dlq-denied"]["gauge_max"] >= 1
    assert result["checks"]["stopped_committing"], result["phases"]["results-denied"]
    assert result["passed"], result["check"]


def test_one_minute_rebalance_storm_commits_nothing_ahead_of_results(ctx):
    """Joins, leaves and SIGKILLs every ~4 s for a minute (the full suite: 10 minutes, and exactly-once)."""
    result = rebalance_storm.storm(ctx, minutes=1.0)
    _assert_accounted(result)
    assert sum(result["actions"].values()) >= 8 and result["actions"].get("kill", 0) >= 1, result["actions"]
    assert result["commit_samples"] >= 100, result  # the sampler really watched the run
    assert result["commits_ahead_of_results"] == 0, result["ahead_examples"]
    assert result["unexpected_exits"] == [], result["unexpected_exits"]

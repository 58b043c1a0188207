"""The short fault suite (`python -m line_harness.chaos.run --short` size) against the real broker, workers and simulator.

Each scenario ends with the accounting check: frames produced = distinct frames judged + frames
dead-lettered, zero lost. The full suite (10 kills, exactly-once kills, bigger corrupt run,
soak) is `deploy/chaos.sh`; see docs/reliability.md.
"""

from __future__ import annotations

import os

import pytest

from line_harness.chaos import scenarios

pytestmark = pytest.mark.timeout(200)


@pytest.fixture(scope="module")
def ctx(kafka_broker, kafka_client_kwargs, tmp_path_factory):
    """A chaos context on the test run's broker with the tiny model at 64x64."""
    from training.tiny_model import build_tiny_model
    out = tmp_path_factory.mktemp("chaos")
    build_tiny_model(out / "models", version=1, input_size=(64, 64))
    if kafka_broker is not None:
        kafka_env = kafka_broker.client_settings_env()
    else:
        kafka_env = {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}
    return scenarios.Ctx(kafka_broker, kafka_env, kafka_client_kwargs, out / "models", out)


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
    result = scenarios.corrupt(ctx, frames=2000, rate=0.05)
    _assert_accounted(result["clean"])
    _assert_accounted(result["corrupt"])
    bad_sent = sum(result["corrupt"]["bad_sent_by_kind"].values())
    assert 50 <= bad_sent <= 160  # ~5% of 2000
    assert result["dead_by_reason"] == result["expected_dead_by_reason"]
    assert result["corrupt"]["accounting"]["dead_lettered"] == bad_sent
    # Frames per worker CPU-second: a few-second wall-clock rate on a shared machine swings 2x.
    assert result["throughput_ratio"] >= 0.8, (result["clean"], result["corrupt"])


def test_offset_tracker_keeps_frames_adopted_before_the_assignment_callback():
    """Regression found by the rebalance scenario: kafka-python 3 calls on_partitions_assigned on its IO
    thread after the assignment is live, so the consumer thread may register frames first. assign() must
    not wipe them, or later offsets get committed past frames that are then skipped (lost)."""
    from kafka import TopicPartition

    from worker.offsets import OffsetTracker
    tp = TopicPartition("frames", 0)
    tracker = OffsetTracker()
    early = tracker.register(tp, 7)  # polled before the callback ran: adopted
    tracker.assign([tp])
    later = tracker.register(tp, 8)
    assert tracker.is_current(tp, early) and early == later
    tracker.acknowledge(tp, 8, later)
    assert tracker.to_commit() == {}  # 7 is not done: nothing may be committed past it
    tracker.acknowledge(tp, 7, early)
    assert tracker.to_commit() == {tp: 9}


def test_offset_tracker_revoke_reports_where_dropped_work_starts():
    """A worker handed a revoked partition straight back rewinds to the lowest dropped offset."""
    from kafka import TopicPartition

    from worker.offsets import OffsetTracker
    tp, other = TopicPartition("frames", 0), TopicPartition("frames", 1)
    tracker = OffsetTracker()
    tracker.assign([tp, other])
    gens = {off: tracker.register(tp, off) for off in (20, 21, 22)}
    tracker.acknowledge(tp, 20, gens[20])
    tracker.acknowledge(tp, 22, gens[22])
    assert tracker.revoke([tp, other]) == {tp: 21}  # 21 was in flight; `other` had nothing

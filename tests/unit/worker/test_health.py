"""Health: readiness conditions and the gauge; liveness from loop heartbeats on an injected clock."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tests.unit.worker.fakes import FakeClock
from worker.health import Health
from worker.metrics import WorkerMetrics


def test_readiness_needs_model_and_partitions_and_sets_the_gauge():
    metrics = WorkerMetrics(CollectorRegistry())
    health = Health(metrics)
    assert health.ready()[0] is False
    assert metrics.registry.get_sample_value("inspection_ready") == 0
    health.model_ready = health.partitions_assigned = True
    assert health.ready() == (True, "ready")
    assert metrics.registry.get_sample_value("inspection_ready") == 1
    health.stopping = True
    assert health.ready() == (False, "shutting down")


def test_a_loop_silent_past_the_stall_window_fails_liveness():
    clock = FakeClock()
    health = Health(WorkerMetrics(CollectorRegistry()), stall_after_s=60, clock=clock)
    health.beat("poll")
    health.beat("inference")
    clock.advance(59)
    health.beat("inference")
    assert health.live()[0]
    clock.advance(2)
    ok, why = health.live()
    assert not ok and "poll silent for 61s" in why and "inference" not in why
    health.consumer_stall = "consumer stalled: x"
    health.beat("poll")
    assert health.live() == (False, "consumer stalled: x")

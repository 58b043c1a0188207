"""Pacing: load shapes, the merged camera schedule, and a short real-time run against the broker.

The full bar (6 cameras x 30 fps x 60 s) is `python -m producer_sim.bench_pacing`, documented in
docs/producer_sim.md; here a ~8 s run checks the same properties at a smaller scale.
"""

from __future__ import annotations

import threading

import pytest

from producer_sim.bench_pacing import check, window_rates
from producer_sim.commands import open_producer
from producer_sim.pacing import Burst, Ramp, Schedule, Steady, make_shape
from producer_sim.run import LineRun
from producer_sim.settings import SimSettings
from producer_sim.sources import build_pool


def _count_by(shape, t: float) -> int:
    """Frames of one camera due before t."""
    n = 0
    while shape.due(n) < t:
        n += 1
    return n


def test_steady_due_times_do_not_drift():
    shape = Steady(30.0)
    assert shape.due(0) == 0.0
    assert shape.due(30 * 3600) == pytest.approx(3600.0, abs=1e-9)  # an hour in: exact, not summed
    assert _count_by(shape, 10.0) == 300


def test_ramp_integrates_to_the_right_count():
    shape = Ramp(start_fps=2.0, fps=10.0, ramp_s=8.0)
    # (2 + 10) / 2 * 8 = 48 frames during the ramp, then 10/s.
    assert _count_by(shape, 8.0) == 48
    assert _count_by(shape, 12.0) == 88
    assert shape.rate(0) == 2.0 and shape.rate(4.0) == 6.0 and shape.rate(20) == 10.0
    dues = [shape.due(n) for n in range(100)]
    assert dues == sorted(dues)
    # Instantaneous spacing follows the rate: early frames 1/2 s apart, late ones 1/10 s.
    assert dues[1] - dues[0] == pytest.approx(0.5, rel=0.15)
    assert dues[99] - dues[98] == pytest.approx(0.1, rel=1e-6)


def test_burst_raises_the_rate_inside_bursts_only():
    shape = Burst(fps=10.0, every_s=10.0, burst_s=2.0, factor=3.0)
    # Per period: 8 s at 10/s + 2 s at 30/s = 140 frames.
    assert _count_by(shape, 8.0) == 80
    assert _count_by(shape, 10.0) == 140
    assert _count_by(shape, 30.0) == 420
    assert shape.rate(5.0) == 10.0 and shape.rate(9.0) == 30.0
    with pytest.raises(ValueError):
        make_shape("zigzag", 10.0)


def test_schedule_interleaves_cameras_and_stops_at_the_duration():
    schedule = Schedule(Steady(10.0), cameras=4, nominal_fps=10.0, duration_s=2.0)
    assert schedule.expected_frames == 80
    items = []
    while (item := schedule.next()) is not None:
        items.append(item)
    assert len(items) == 80
    dues = [due for _, _, due in items]
    assert dues == sorted(dues)
    # Phase shift: the 4 cameras take turns every 1/40 s rather than firing together.
    assert [cam for cam, _, _ in items[:8]] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert dues[1] - dues[0] == pytest.approx(0.025)
    for cam in range(4):
        assert [n for c, n, _ in items if c == cam] == list(range(20))


def test_schedule_frame_count_bound():
    schedule = Schedule(Steady(5.0), cameras=3, nominal_fps=5.0, total_frames=7)
    assert schedule.expected_frames == 7
    assert sum(1 for _ in iter(schedule.next, None)) == 7


def test_window_checker_flags_a_slow_window():
    per_second = [20] * 10
    assert window_rates(per_second, 5, 10) == [20.0, 20.0]
    summary = {"attempted": 200, "acked": 200, "lost": 0, "sent_per_second": per_second,
               "acked_per_second": per_second}
    assert check(summary, cameras=2, fps=10, duration_s=10) == []
    slow = [20] * 5 + [18] * 5
    summary.update(attempted=190, acked=190, sent_per_second=slow, acked_per_second=slow)
    problems = check(summary, cameras=2, fps=10, duration_s=10)
    assert any("window 5-10s" in p for p in problems) and any("attempted 190" in p for p in problems)


def test_short_real_run_holds_its_schedule(kafka_bootstrap, new_topic):
    """3 cameras x 30 fps x 8 s against the real broker: count and every 2 s window on target."""
    topic = new_topic(partitions=3)
    settings = SimSettings(kafka_bootstrap_servers=kafka_bootstrap, frames_topic=topic, cameras_per_line=3,
                           fps=30, duration_s=8, pool_size=30, status_interval_s=60)
    producer = open_producer(settings)
    try:
        summary = LineRun(settings, build_pool(settings), producer, threading.Event(), None).run()
    finally:
        producer.close()
    assert summary.expected_frames == 720
    assert summary.attempted == 720 and summary.acked == 720 and summary.lost == 0
    assert summary.achieved_rate == pytest.approx(90.0, rel=0.005)
    assert all(n == 240 for n in summary.acked_by_camera.values())
    for rate in window_rates(summary.sent_per_second, 2, 8):
        assert rate == pytest.approx(90.0, rel=0.05)
    assert summary.behind_schedule_mean_ms < 20.0


def test_max_rate_outruns_the_schedule(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=1)
    settings = SimSettings(kafka_bootstrap_servers=kafka_bootstrap, frames_topic=topic, fps=1, max_rate=True,
                           frames=300, pool_size=10, frame_width=128, frame_height=128, status_interval_s=60)
    producer = open_producer(settings)
    try:
        summary = LineRun(settings, build_pool(settings), producer, threading.Event(), None).run()
    finally:
        producer.close()
    assert summary.acked == 300 and summary.lost == 0
    assert summary.load_shape == "max-rate"
    assert summary.achieved_rate > 50  # fps=1 is ignored; 300 frames in well under 6 s

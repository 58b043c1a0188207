"""OffsetTracker: commit = lowest unacknowledged offset per partition; acks of a revoked generation
are ignored; a revoke reports where dropped work starts."""

from __future__ import annotations

from tests.unit.worker.fakes import TP, TP1
from worker.offsets import OffsetTracker


def test_offset_tracker_commits_only_below_the_first_unacknowledged():
    tracker = OffsetTracker()
    tracker.assign([TP])
    gens = [tracker.register(TP, off) for off in (10, 11, 12, 13)]
    tracker.acknowledge(TP, 11, gens[1])
    tracker.acknowledge(TP, 12, gens[2])
    assert tracker.to_commit() == {} and tracker.in_flight() == 2
    tracker.acknowledge(TP, 10, gens[0])
    assert tracker.to_commit() == {TP: 13} and tracker.in_flight() == 1
    tracker.committed({TP: 13})
    assert tracker.to_commit() == {}
    tracker.acknowledge(TP, 13, gens[3])
    assert tracker.to_commit() == {TP: 14}


def test_offset_tracker_ignores_acks_from_a_revoked_generation():
    tracker = OffsetTracker()
    tracker.assign([TP])
    old = tracker.register(TP, 5)
    tracker.revoke([TP])
    tracker.assign([TP])
    assert not tracker.is_current(TP, old)
    tracker.acknowledge(TP, 5, old)
    assert tracker.to_commit() == {} and tracker.in_flight() == 0


def test_offset_tracker_keeps_frames_adopted_before_the_assignment_callback():
    """Found by the chaos rebalance scenario: kafka-python 3 calls on_partitions_assigned on its IO thread
    after the assignment is live, so the consumer thread may register frames first. assign() must not
    wipe them, or later offsets get committed past frames that are then skipped (lost)."""
    tracker = OffsetTracker()
    early = tracker.register(TP, 7)  # polled before the callback ran: adopted
    tracker.assign([TP])
    later = tracker.register(TP, 8)
    assert tracker.is_current(TP, early) and early == later
    tracker.acknowledge(TP, 8, later)
    assert tracker.to_commit() == {}  # 7 is not done: nothing may be committed past it
    tracker.acknowledge(TP, 7, early)
    assert tracker.to_commit() == {TP: 9}


def test_offset_tracker_revoke_reports_where_dropped_work_starts():
    """A worker handed a revoked partition straight back rewinds to the lowest dropped offset."""
    tracker = OffsetTracker()
    tracker.assign([TP, TP1])
    gens = {off: tracker.register(TP, off) for off in (20, 21, 22)}
    tracker.acknowledge(TP, 20, gens[20])
    tracker.acknowledge(TP, 22, gens[22])
    assert tracker.revoke([TP, TP1]) == {TP: 21}  # 21 was in flight; TP1 had nothing

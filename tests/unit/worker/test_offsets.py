"""OffsetTracker: commit = lowest unacknowledged offset per partition; acks of a revoked generation
are ignored; a revoke reports where dropped work starts."""

from __future__ import annotations

from tests.unit.worker.fakes import TP
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

"""OffsetTracker: which offset of each partition may be committed.

The invariant: the offset committed for a partition is never above a frame polled by this worker
that has no result or dead letter on the broker. Frames finish out of order, so a partition's
committable offset is the lowest registered offset not yet acknowledged (or one past the highest
registered, when all are acknowledged); polls are not assumed to arrive in offset order.

Two races are closed here (both reproduced, see tests/unit/worker/test_offsets.py):
- A revoke, or a rewind, can land on kafka-python's IO thread while the consumer thread is still
  registering the records of its last poll. The consumer takes `epoch()` before each poll and
  passes it to `register()`; records of a partition revoked or rewound since then are refused
  (None), so no state is re-created for a partition this worker no longer owns or has rewound.
- Frames registered before `on_assigned` runs (adopted) belong to the old fetch position; when
  that partition is rewound, `rewind()` drops them with the rest of its state.

Thread-safe: the consumer thread registers and commits, the producer's delivery callbacks and the
inference thread acknowledge, the IO thread revokes and rewinds.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

from kafka import TopicPartition


class _PartitionState:
    __slots__ = ("pending", "low", "high", "generation")

    def __init__(self, generation: int):
        self.pending: set[int] = set()  # registered, not yet acknowledged
        self.low: Optional[int] = None  # the lowest offset registered in this generation
        self.high: Optional[int] = None  # one past the highest offset registered in this generation
        self.generation = generation

    def committable(self) -> Optional[int]:
        """Lowest unacknowledged offset (one past the highest when all are done); None before any progress."""
        offset = min(self.pending) if self.pending else self.high
        return None if offset is None or offset <= self.low else offset


class OffsetTracker:
    """Per-partition bookkeeping of in-flight offsets; decides what to commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[TopicPartition, _PartitionState] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._next_generation = 0
        self._epoch = 0
        self._lost_at: dict[TopicPartition, int] = {}  # partition -> epoch of its last revoke or rewind

    def epoch(self) -> int:
        """Taken by the consumer thread before each poll; passed back to `register`."""
        with self._lock:
            return self._epoch

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Start tracking newly assigned partitions, each with a fresh generation number."""
        with self._lock:
            for tp in partitions:
                if tp in self._parts:
                    # kafka-python 3 runs this callback on its IO thread, after the new assignment is
                    # live: the consumer thread may already have registered (adopted) frames of it.
                    continue
                self._parts[tp] = self._new_state()

    def _new_state(self) -> _PartitionState:
        self._next_generation += 1
        return _PartitionState(self._next_generation)

    def is_current(self, tp: TopicPartition, generation: int) -> bool:
        """Whether work tagged (tp, generation) still belongs to this worker."""
        with self._lock:
            state = self._parts.get(tp)
            return state is not None and state.generation == generation

    def register(self, tp: TopicPartition, offset: int, epoch: Optional[int] = None) -> Optional[int]:
        """Record that `offset` was polled; return the generation to tag the work with.

        Returns None (drop the record, the owner redoes it) when `tp` was revoked or rewound after
        `epoch` was taken, i.e. while this record was being polled or registered.
        """
        with self._lock:
            if epoch is not None and self._lost_at.get(tp, -1) > epoch:
                return None
            state = self._parts.get(tp)
            if state is None:  # polled before the assignment callback ran: adopt it
                state = self._parts[tp] = self._new_state()
            state.pending.add(offset)
            if state.high is None or offset + 1 > state.high:
                state.high = offset + 1
            if state.low is None or offset < state.low:
                state.low = offset
            return state.generation

    def acknowledge(self, tp: TopicPartition, offset: int, generation: int) -> None:
        """The frame at `offset` has its result or dead letter on the broker."""
        with self._lock:
            state = self._parts.get(tp)
            if state is None or state.generation != generation:
                return  # partition was revoked or rewound meanwhile; the frame is redone
            state.pending.discard(offset)

    def tracked(self) -> list[TopicPartition]:
        """Partitions currently tracked (assigned and not revoked)."""
        with self._lock:
            return list(self._parts)

    def in_flight(self) -> int:
        """Frames polled but not yet acknowledged, over all partitions."""
        with self._lock:
            return sum(len(s.pending) for s in self._parts.values())

    def lowest_pending(self, tp: TopicPartition) -> Optional[int]:
        """The lowest unacknowledged offset of `tp` (None when nothing is in flight there)."""
        with self._lock:
            state = self._parts.get(tp)
            return min(state.pending) if state is not None and state.pending else None

    def to_commit(self, partitions: Optional[Iterable[TopicPartition]] = None) -> dict[TopicPartition, int]:
        """Committable offsets that differ from the last commit, of `partitions` (the consumer passes its
        current assignment) or of every tracked partition."""
        with self._lock:
            out = {}
            for tp in list(self._parts) if partitions is None else partitions:
                state = self._parts.get(tp)
                offset = state.committable() if state is not None else None
                if offset is not None and offset != self._committed.get(tp):
                    out[tp] = offset
            return out

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Note that `offsets` were committed successfully."""
        with self._lock:
            self._committed.update(offsets)

    def revoke(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Forget revoked partitions; unfinished work on them is dropped for the new owner to redo.
        Returns {partition: lowest unfinished offset} of the dropped work, so that a worker which gets
        a partition straight back can rewind to it (the consumer keeps its fetch position then)."""
        dropped: dict[TopicPartition, int] = {}
        with self._lock:
            self._epoch += 1
            for tp in partitions:
                self._lost_at[tp] = self._epoch
                state = self._parts.pop(tp, None)
                if state is not None and state.pending:
                    dropped[tp] = min(state.pending)
                self._committed.pop(tp, None)
        return dropped

    def rewind(self, tp: TopicPartition) -> Optional[int]:
        """The consumer is about to seek `tp` back: drop its state (adopted frames included).

        Returns the lowest unacknowledged offset it had (None when nothing was in flight). Work of
        the dropped generation is ignored from now on; the frames are polled and judged again.
        """
        with self._lock:
            self._epoch += 1
            self._lost_at[tp] = self._epoch
            state = self._parts.get(tp)
            lowest = min(state.pending) if state is not None and state.pending else None
            self._parts[tp] = self._new_state()
            return lowest

"""OffsetTracker: which offset of each partition may be committed.

Frames finish out of order (a dead letter can be acknowledged before the batch before it), so a
partition's committable offset is the lowest offset not yet acknowledged; everything below it has
a result or dead letter on the broker. Thread-safe: the consumer thread registers and commits,
the producer's delivery callbacks acknowledge.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Iterable

from kafka import TopicPartition


class _PartitionState:
    __slots__ = ("pending", "done", "committable", "generation")

    def __init__(self, generation: int):
        self.pending: deque[int] = deque()  # registered, in offset order
        self.done: set[int] = set()         # acknowledged but not yet at the head of `pending`
        self.committable: int | None = None  # next offset to commit (last contiguous done + 1)
        self.generation = generation


class OffsetTracker:
    """Per-partition bookkeeping of in-flight offsets; decides what to commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[TopicPartition, _PartitionState] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._next_generation = 0

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Start tracking newly assigned partitions, each with a fresh generation number."""
        with self._lock:
            for tp in partitions:
                if tp in self._parts:
                    # kafka-python 3 runs this callback on its IO thread, after the new assignment is
                    # live: the consumer thread may already have registered (adopted) frames of it.
                    # Replacing that state would drop them while later offsets get committed past them.
                    continue
                self._next_generation += 1
                self._parts[tp] = _PartitionState(self._next_generation)

    def is_current(self, tp: TopicPartition, generation: int) -> bool:
        """Whether work tagged (tp, generation) still belongs to this worker."""
        with self._lock:
            state = self._parts.get(tp)
            return state is not None and state.generation == generation

    def register(self, tp: TopicPartition, offset: int) -> int:
        """Record that `offset` was polled; return the partition generation to tag the work with."""
        with self._lock:
            state = self._parts.get(tp)
            if state is None:  # polled before the assignment callback ran: adopt it
                self._next_generation += 1
                state = self._parts[tp] = _PartitionState(self._next_generation)
            state.pending.append(offset)
            return state.generation

    def acknowledge(self, tp: TopicPartition, offset: int, generation: int) -> None:
        """The frame at `offset` has its result or dead letter on the broker."""
        with self._lock:
            state = self._parts.get(tp)
            if state is None or state.generation != generation:
                return  # partition was revoked meanwhile; the new owner redoes the frame
            state.done.add(offset)
            pending, done = state.pending, state.done
            while pending and pending[0] in done:
                head = pending.popleft()
                done.discard(head)
                state.committable = head + 1

    def tracked(self) -> list[TopicPartition]:
        """Partitions currently tracked (assigned and not revoked)."""
        with self._lock:
            return list(self._parts)

    def in_flight(self) -> int:
        """Frames polled but not yet acknowledged, over all partitions."""
        with self._lock:
            return sum(len(s.pending) for s in self._parts.values())

    def to_commit(self, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Offsets that are committable and newer than what was last committed."""
        with self._lock:
            parts = self._parts if partitions is None else {tp: self._parts[tp] for tp in partitions
                                                            if tp in self._parts}
            return {tp: s.committable for tp, s in parts.items()
                    if s.committable is not None and s.committable != self._committed.get(tp)}

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
            for tp in partitions:
                state = self._parts.pop(tp, None)
                if state is not None and state.pending:
                    dropped[tp] = min(state.pending)
                self._committed.pop(tp, None)
        return dropped

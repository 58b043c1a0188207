"""Fail closed: partitions whose frames the model could not judge.

A model that raises, or returns a score that is not a finite number, must not turn into verdicts
(a NaN used to become "ok") nor into dead letters that get committed (the line would run
uninspected, silently). Instead the partitions of that batch are halted: nothing of them is
published or committed, the consumer rewinds each to its lowest unacknowledged frame and pauses
it, and after `retry_after_s` (or at once when a new model version is swapped in) it resumes and
the same frames are judged again. `inspection_judging_halted_partitions` and /healthz say so.

The inference thread halts; the consumer thread (the only one touching the consumer) applies it.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

from kafka import TopicPartition

from worker.metrics import WorkerMetrics


class JudgingHalts:
    """Which partitions are halted, since when and why; thread-safe."""

    def __init__(self, metrics: WorkerMetrics, retry_after_s: float, clock: Callable[[], float] = time.monotonic):
        self._metrics = metrics
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._halted: dict[TopicPartition, tuple[float, str]] = {}
        self._to_rewind: set[TopicPartition] = set()
        self._to_resume: set[TopicPartition] = set()

    def halt(self, partitions: Iterable[TopicPartition], why: str) -> None:
        """Stop judging `partitions` (inference thread): their frames stay unpublished and uncommitted."""
        with self._lock:
            for tp in partitions:
                self._halted[tp] = (self._clock(), why)
                self._to_rewind.add(tp)
                self._to_resume.discard(tp)
            self._metrics.judging_halted.set(len(self._halted))

    def is_halted(self, tp: TopicPartition) -> bool:
        """Whether frames of `tp` must not be judged or published now."""
        with self._lock:
            return tp in self._halted

    def halted(self) -> set[TopicPartition]:
        """The partitions halted now."""
        with self._lock:
            return set(self._halted)

    def model_replaced(self) -> None:
        """A new model version is in service: retry every halted partition now."""
        with self._lock:
            self._to_resume |= set(self._halted)
            self._halted.clear()
            self._metrics.judging_halted.set(0)

    def take_rewinds(self) -> set[TopicPartition]:
        """(consumer thread) Newly halted partitions to rewind and pause."""
        with self._lock:
            out, self._to_rewind = self._to_rewind, set()
            return out

    def take_resumes(self) -> set[TopicPartition]:
        """(consumer thread) Partitions to resume: their retry time has come, or the model was replaced."""
        now = self._clock()
        with self._lock:
            due = {tp for tp, (since, _) in self._halted.items() if now - since >= self._retry_after_s}
            for tp in due:
                del self._halted[tp]
            out, self._to_resume = self._to_resume | due, set()
            self._metrics.judging_halted.set(len(self._halted))
            return out

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked: the next owner judges them (or halts them) itself."""
        with self._lock:
            for tp in partitions:
                self._halted.pop(tp, None)
                self._to_rewind.discard(tp)
                self._to_resume.discard(tp)
            self._metrics.judging_halted.set(len(self._halted))

    def describe(self) -> str:
        """One line for /healthz; empty when nothing is halted."""
        now = self._clock()
        with self._lock:
            if not self._halted:
                return ""
            parts = [f"{tp.topic}[{tp.partition}] for {now - since:.0f}s ({why})"
                     for tp, (since, why) in sorted(self._halted.items())]
        return "judging halted (fail closed, frames kept uncommitted): " + "; ".join(parts)

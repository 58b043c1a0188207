"""Micro-batching: frames are taken in poll order; a batch closes at max_batch_size good frames or
when its oldest frame has waited max_batch_wait_ms since it was polled, whichever comes first."""

from __future__ import annotations

import queue
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Tuple

from kafka import TopicPartition

from line_contracts.events import DeadLetterReason
from worker.decode import DecodedFrame, Rejected


@dataclass
class WorkItem:
    """One polled frame record on its way through the pipeline."""

    source: TopicPartition
    offset: int
    generation: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: Sequence[Tuple[str, bytes]]
    consumed_ns: int
    consumed_mono: float
    decoded: "Future[DecodedFrame | Rejected]"


@dataclass
class Batch:
    """What the inference loop handles in one step: good frames to judge and bad ones to dead-letter."""

    frames: list[tuple[WorkItem, DecodedFrame]] = field(default_factory=list)
    rejected: list[tuple[WorkItem, Rejected]] = field(default_factory=list)
    closed_mono: float = 0.0

    def __len__(self) -> int:
        return len(self.frames) + len(self.rejected)


# Put on the queue by the consumer thread after its last poll: drain what is left, then stop.
END_OF_STREAM = object()


class Batcher:
    """Pulls WorkItems from the pipeline queue and groups them into batches."""

    def __init__(self, items: "queue.Queue", max_batch_size: int, max_batch_wait_ms: float,
                 idle_wait_s: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 decode_timeout_s: float = 10.0, on_decode_timeout: Callable[[], None] = lambda: None):
        self._items = items
        self._max_size = max_batch_size
        self._max_wait_s = max_batch_wait_ms / 1000.0
        self._idle_wait_s = idle_wait_s  # how long an empty batch blocks, so the loop can tick
        self._clock = clock  # the consumer loop's clock: WorkItem.consumed_mono is on it
        self._decode_timeout_s = decode_timeout_s
        self._on_decode_timeout = on_decode_timeout
        self.ended = False

    def next_batch(self) -> Batch:
        """Block until a batch closes; may return an empty batch after idle_wait_s with no frames."""
        batch = Batch()
        deadline: Optional[float] = None  # set by the first good frame: its poll time + max wait
        while len(batch.frames) < self._max_size and not self.ended:
            now = self._clock()
            if deadline is None:
                # No good frame yet: dead letters go out promptly rather than waiting for company.
                timeout = 0.0 if batch.rejected else self._idle_wait_s
            else:
                # Past the deadline, still take what is already queued (a backlog fills the batch
                # at once); only waiting for more is cut short.
                timeout = max(0.0, deadline - now)
            try:
                item = self._items.get(timeout=timeout) if timeout > 0 else self._items.get_nowait()
            except queue.Empty:
                break
            if item is END_OF_STREAM:
                self.ended = True
                break
            result = self._decoded(item)  # in poll order; decoding itself ran in the pool
            if isinstance(result, Rejected):
                batch.rejected.append((item, result))
            else:
                batch.frames.append((item, result))
                if deadline is None:
                    deadline = item.consumed_mono + self._max_wait_s
        batch.closed_mono = self._clock()
        return batch

    def _decoded(self, item: WorkItem) -> "DecodedFrame | Rejected":
        """The decode result, waiting no longer than the frame's decode budget (counted from its poll)."""
        budget = max(0.0, item.consumed_mono + self._decode_timeout_s - self._clock())
        try:
            return item.decoded.result(timeout=budget)
        except FutureTimeout:
            self._on_decode_timeout()
            return Rejected(DeadLetterReason.DECODE_TIMEOUT, f"not decoded within WORKER_DECODE_TIMEOUT_S="
                            f"{self._decode_timeout_s:g} s of being polled")
        except BaseException as exc:  # noqa: BLE001 - a cancelled or crashed decode dead-letters the frame
            return Rejected(DeadLetterReason.UNDECODABLE, f"decode failed: {exc!r}")

"""Counts what the broker acknowledged and what it refused; nothing is lost silently.

The Kafka client calls the ack callbacks on its sender thread, the only writer of the ack
counters, so they need no lock; failures are rare and may also be reported from the publish
thread (a refused send), so they take a lock.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Callable, TextIO


class DeliveryTracker:
    """Acknowledged and failed frames, per camera and per second of the run."""

    def __init__(self, camera_ids: list[str], start_monotonic: float, errors_to: TextIO = sys.stderr,
                 clock: Callable[[], float] = time.monotonic):
        self._start = start_monotonic
        self._clock = clock
        self._errors_to = errors_to
        self.acked = 0
        self.acked_by_camera = {cam: 0 for cam in camera_ids}
        self.acked_per_second: list[int] = []
        self.failed_by_error: Counter[str] = Counter()
        self.failed = 0
        self.first_error: dict[str, str] = {}
        self._failure_lock = threading.Lock()

    def acked_cb(self, camera_id: str) -> Callable[[object], None]:
        """Success callback for one frame of `camera_id`."""
        def on_ack(_metadata: object) -> None:
            self.acked_by_camera[camera_id] += 1
            self.acked += 1
            second = int(self._clock() - self._start)
            while len(self.acked_per_second) <= second:
                self.acked_per_second.append(0)
            self.acked_per_second[second] += 1
        return on_ack

    def failed_cb(self, camera_id: str, frame_seq: int) -> Callable[[BaseException], None]:
        """Error callback for one frame: count it, print the first error of each kind."""
        def on_error(exc: BaseException) -> None:
            self.record_failure(camera_id, frame_seq, exc)
        return on_error

    def record_failure(self, camera_id: str, frame_seq: int, exc: BaseException) -> None:
        """Count a frame the client refused or the broker did not acknowledge."""
        name = type(exc).__name__
        with self._failure_lock:
            self.failed += 1
            self.failed_by_error[name] += 1
            first = name not in self.first_error
            self.first_error.setdefault(name, str(exc))
        if first:
            print(f"delivery failed for {camera_id} frame {frame_seq}: {name}: {exc} "
                  "(further errors of this kind are counted, not printed)", file=self._errors_to, flush=True)

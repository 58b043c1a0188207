"""Liveness and readiness of one worker: heartbeats of its loops, readiness conditions, alarms.

The HTTP server (worker/http.py) only reads this; the loops write it. A clock is injected so
tests can age a heartbeat without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from worker.metrics import WorkerMetrics


class Health:
    """Heartbeats of the worker's loops and the readiness conditions."""

    def __init__(self, metrics: WorkerMetrics, stall_after_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._beats: dict[str, float] = {}
        self._stall_after_s = stall_after_s
        self._metrics = metrics
        self._clock = clock
        self.model_ready = False
        self.partitions_assigned = False
        self.stopping = False
        self.consumer_stall = ""  # set by the ConsumerWatchdog: frames wait but the consumer gets none
        # Alarms shown by /healthz that a restart would not cure (it stays 200): each returns "" when quiet.
        self.alarms: list[Callable[[], str]] = []

    def beat(self, loop: str) -> None:
        """Loop `loop` made progress now."""
        self._beats[loop] = self._clock()  # dict item assignment is atomic under the GIL

    def live(self) -> tuple[bool, str]:
        """(ok, explanation): every registered loop ticked within the stall window and the consumer is not stalled."""
        now = self._clock()
        stale = [f"{name} silent for {now - t:.0f}s" for name, t in list(self._beats.items())
                 if now - t > self._stall_after_s]
        if self.consumer_stall:
            stale.append(self.consumer_stall)
        alarms = [text for text in (alarm() for alarm in self.alarms) if text]
        return (not stale, "; ".join(stale + alarms) or f"{len(self._beats)} loops alive")

    def ready(self) -> tuple[bool, str]:
        """(ok, explanation): model loaded and warmed, partitions assigned, not shutting down."""
        missing = [what for what, ok in (("model not warmed up", self.model_ready),
                                         ("no partitions assigned", self.partitions_assigned),
                                         ("shutting down", not self.stopping)) if not ok]
        ok = not missing
        self._metrics.ready.set(1 if ok else 0)
        return ok, "; ".join(missing) or "ready"

"""What the consumer loop and the inference loop share: the queue of polled frames between them and
the collaborators both talk to. Built once by worker.parts.build_parts."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

from worker.halts import JudgingHalts
from worker.health import Health
from worker.metrics import WorkerMetrics
from worker.offsets import OffsetTracker
from worker.publish import Publisher


@dataclass
class Pipeline:
    """Shared by both loops; `batch_lock` is held while a batch is published, so a revoke waits for it."""

    tracker: OffsetTracker
    publisher: Publisher
    metrics: WorkerMetrics
    health: Health
    halts: JudgingHalts
    items: "queue.Queue" = field(default_factory=queue.Queue)  # WorkItems in poll order, then END_OF_STREAM
    batch_lock: threading.Lock = field(default_factory=threading.Lock)

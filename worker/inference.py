"""The inference loop: take a closed batch, swap in a newer model if one is warmed, judge, publish."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import cv2
import numpy as np

from line_contracts.events import DeadLetterReason
from worker.batching import Batch, Batcher, WorkItem
from worker.decode import DecodedFrame, Rejected
from worker.http import Health
from worker.metrics import WorkerMetrics
from worker.model import ModelManager, ServingModel
from worker.offsets import OffsetTracker
from worker.publish import OutRecord
from worker.results import RecordFactory

log = logging.getLogger(__name__)


class InferenceLoop:
    """Runs on its own thread; the only thread that calls the model and (in exactly-once mode) the producer."""

    def __init__(self, batcher: Batcher, models: ModelManager, publisher, factory: RecordFactory,
                 tracker: OffsetTracker, metrics: WorkerMetrics, health: Health, buckets: list[int],
                 resize_mismatched: bool, batch_lock: threading.Lock, group_metadata: Callable[[], object]):
        self._batcher = batcher
        self._models = models
        self._publisher = publisher
        self._factory = factory
        self._tracker = tracker
        self._metrics = metrics
        self._health = health
        self._buckets = sorted(buckets)
        self._resize = resize_mismatched
        self._batch_lock = batch_lock
        self._group_metadata = group_metadata
        self._buffers: dict[tuple[int, int, int], np.ndarray] = {}
        self.error: BaseException | None = None
        self.frames_done = 0

    def run(self) -> None:
        """Thread target: loop until the batcher reports end of stream or an error stops it."""
        try:
            while not self._batcher.ended:
                self._health.beat("inference")
                self._publisher.resend_failed()
                batch = self._batcher.next_batch()
                if len(batch):
                    with self._batch_lock:  # a rebalance waits for the batch in hand to be published
                        self._process(batch)
        except BaseException as exc:  # surfaced by the runner, which stops the worker without committing
            self.error = exc
            log.exception("inference loop stopped")

    def _process(self, batch: Batch) -> None:
        model = self._models.take_update() or self._models.current
        current = self._tracker.is_current
        records: list[OutRecord] = []
        events = []
        dead: list[tuple[object, DeadLetterReason]] = []  # (headers or None, reason)
        good: list[tuple[WorkItem, DecodedFrame, np.ndarray]] = []
        rejected = list(batch.rejected)
        for item, frame in batch.frames:
            if not current(item.source, item.generation):
                continue  # partition revoked: its new owner redoes the frame
            image = self._fit(frame.image, model)
            if image is None:
                rejected.append((item, _size_rejection(frame, model)))
            else:
                good.append((item, frame, image))
        for item, rej in rejected:
            if current(item.source, item.generation):
                records.append(self._factory.dead_letter(item, rej.reason, rej.error))
                dead.append((rej.headers, rej.reason))
        if good:
            try:
                scores, inference_s = self._infer(model, good, batch.closed_mono)
            except Exception as exc:  # fail the whole batch loudly, but into the DLQ rather than lost
                log.exception("inference failed for a batch of %d frames", len(good))
                for item, frame, _ in good:
                    records.append(self._factory.dead_letter(item, DeadLetterReason.INFERENCE_FAILED, repr(exc)))
                    dead.append((frame.headers, DeadLetterReason.INFERENCE_FAILED))
            else:
                inferred_ns = time.time_ns()
                for (item, frame, _), score in zip(good, scores):
                    rec, event = self._factory.result(item, frame, score, model, inferred_ns,
                                                      inference_s * 1000.0, len(good))
                    records.append(rec)
                    events.append(event)
        if records:
            self._publisher.publish(records, self._group_metadata)
        self._count(events, dead)
        self.frames_done += len(records)

    def _count(self, events, dead) -> None:
        m = self._metrics
        for headers, reason in dead:
            m.frames_consumed.labels(headers.line_id if headers else "unknown",
                                     headers.camera_id if headers else "unknown").inc()
            m.frames_dead_lettered.labels(reason.value).inc()
        for ev in events:
            line, camera, verdict = ev.frame.line_id, ev.frame.camera_id, ev.verdict.value
            m.frames_consumed.labels(line, camera).inc()
            m.frames_judged.labels(line, camera, verdict).inc()
            if ev.frame.truth_label is not None:
                m.verdict_truth.labels(line, verdict, ev.frame.truth_label.value).inc()
            m.capture_to_publish.labels(line).observe(ev.timings.capture_to_publish_ms / 1000.0)
            m.defect_score.labels(line).observe(ev.score)

    def _fit(self, image: np.ndarray, model: ServingModel):
        """The image at the model's input size (after a hot reload changed it), or None to reject."""
        if image.shape == (model.input_height, model.input_width):
            return image
        if not self._resize:
            return None
        return cv2.resize(image, (model.input_width, model.input_height), interpolation=cv2.INTER_AREA)

    def _infer(self, model: ServingModel, good, closed_mono: float) -> tuple[np.ndarray, float]:
        n = len(good)
        bucket = next((b for b in self._buckets if b >= n), n)
        key = (bucket, model.input_height, model.input_width)
        buf = self._buffers.get(key)
        if buf is None:
            # Padding rows stay zero; their scores are discarded.
            buf = self._buffers[key] = np.zeros((bucket, model.input_height, model.input_width, 1), np.uint8)
        for i, (item, frame, image) in enumerate(good):
            buf[i, :, :, 0] = image
            self._metrics.queue_wait_seconds.observe(max(0.0, closed_mono - item.consumed_mono))
            self._metrics.decode_seconds.observe(frame.decode_seconds)
        if n < bucket:
            buf[n:] = 0
        start = time.perf_counter()
        scores = model.model.predict(buf)
        elapsed = time.perf_counter() - start
        self._metrics.inference_seconds.observe(elapsed)
        self._metrics.batch_size.observe(n)
        return scores[:n], elapsed


def _size_rejection(frame: DecodedFrame, model: ServingModel):
    h, w = frame.image.shape
    return Rejected(DeadLetterReason.SIZE_MISMATCH, f"frame is {w}x{h}, model v{model.version} takes "
                    f"{model.input_width}x{model.input_height} and WORKER_SIZE_MISMATCH_POLICY=reject", frame.headers)

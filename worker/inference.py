"""The inference loop: take a closed batch, swap in a newer model if one is warmed, judge, publish."""

from __future__ import annotations

import logging
import time

import numpy as np

from line_contracts.events import DeadLetterReason
from worker.batching import Batch, Batcher, WorkItem
from worker.decode import DecodedFrame, FrameRejected, Rejected, fit_to_model
from worker.model import ModelManager, ServingModel
from worker.pipeline import Pipeline
from worker.publish import OutRecord
from worker.results import RecordFactory

log = logging.getLogger(__name__)


class InferenceLoop:
    """Runs on its own thread; the only thread that calls the model and (in exactly-once mode) the producer."""

    def __init__(self, pipeline: Pipeline, batcher: Batcher, models: ModelManager, factory: RecordFactory,
                 buckets: list[int], resize_mismatched: bool):
        self._batcher = batcher
        self._models = models
        self._publisher = pipeline.publisher
        self._factory = factory
        self._tracker = pipeline.tracker
        self._metrics = pipeline.metrics
        self._health = pipeline.health
        self._buckets = sorted(buckets)
        self._resize = resize_mismatched
        self._batch_lock = pipeline.batch_lock
        self._buffers: dict[tuple[int, int, int], np.ndarray] = {}
        self.error: BaseException | None = None
        self.frames_done = 0

    def run(self) -> None:
        """Thread target: loop until the batcher reports end of stream or an error stops it."""
        try:
            while not self._batcher.ended:
                self._health.beat("inference")
                batch = self._batcher.next_batch()
                if len(batch):
                    with self._batch_lock:  # a rebalance waits for the batch in hand to be published
                        self._process(batch)
                else:
                    self._publisher.publish([])  # idle tick: failed deliveries that are due go out again
        except BaseException as exc:  # surfaced by the runner, which stops the worker without committing
            self.error = exc
            log.exception("inference loop stopped")

    def _process(self, batch: Batch) -> None:
        model = self._models.take_update() or self._models.current
        current = self._tracker.is_current
        records: list[OutRecord] = []
        events = []
        dead: list[DeadLetterReason] = []
        good: list[tuple[WorkItem, DecodedFrame, np.ndarray]] = []
        rejected = list(batch.rejected)
        for item, frame in batch.frames:
            if not current(item.source, item.generation):
                continue  # partition revoked: its new owner redoes the frame
            try:  # a hot reload may have changed the input size since the frame was decoded
                image = fit_to_model(frame.image, model.input_height, model.input_width, self._resize)
            except FrameRejected as rej:
                rejected.append((item, Rejected(rej.reason, f"{rej} (model v{model.version})", frame.headers)))
            else:
                good.append((item, frame, image))
        for item, rej in rejected:
            if current(item.source, item.generation):
                records.append(self._factory.dead_letter(item, rej.reason, rej.error))
                dead.append(rej.reason)
        if good:
            try:
                scores, inference_s = self._infer(model, good, batch.closed_mono)
            except Exception as exc:  # fail the whole batch loudly, but into the DLQ rather than lost
                log.exception("inference failed for a batch of %d frames", len(good))
                for item, frame, _ in good:
                    records.append(self._factory.dead_letter(item, DeadLetterReason.INFERENCE_FAILED, repr(exc)))
                    dead.append(DeadLetterReason.INFERENCE_FAILED)
            else:
                inferred_ns = time.time_ns()
                for (item, frame, _), score in zip(good, scores):
                    rec, event = self._factory.result(item, frame, score, model, inferred_ns,
                                                      inference_s * 1000.0, len(good))
                    records.append(rec)
                    events.append(event)
        self._publisher.publish(records)
        self._count(events, dead)
        self.frames_done += len(records)

    def _count(self, events, dead) -> None:
        m = self._metrics
        for reason in dead:
            m.frames_dead_lettered.labels(reason.value).inc()
        for ev in events:
            line, camera, verdict = ev.frame.line_id, ev.frame.camera_id, ev.verdict.value
            m.frames_judged.labels(line, camera, verdict).inc()
            if ev.frame.truth_label is not None:
                m.verdict_truth.labels(line, verdict, ev.frame.truth_label.value).inc()
            m.capture_to_publish.labels(line).observe(ev.timings.capture_to_publish_ms / 1000.0)
            m.defect_score.labels(line).observe(ev.score)

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


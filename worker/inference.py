"""The inference loop: take a closed batch, swap in a newer model if one is warmed, judge, publish.

A model with a defect-map output gives each frame's map from the same call as its score; a frame
judged defect gets its regions (worker/regions.py), and every judged frame's event, frame and map
go through the optional `on_judged` hook (the evidence store) before the event is serialised.
Every failure of one frame becomes that frame's dead letter; a failure of the model (it raised,
or a score is not finite) halts the batch's partitions instead (worker/halts.py: fail closed).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import numpy as np

from line_contracts.events import DeadLetterReason, DefectEvent, Verdict
from line_runtime.framing import Placement, place
from worker.batching import Batch, Batcher, WorkItem
from worker.decode import DecodedFrame, FrameRejected, Rejected, fit_to_model
from worker.halts import JudgingHalts
from worker.model import ModelManager, ServingModel
from worker.pipeline import Pipeline
from worker.publish import OutRecord
from worker.regions import RegionFinder, strongest_cell
from worker.results import RecordFactory

log = logging.getLogger(__name__)

# (event, its work item, the decoded frame, the frame's defect map [h', w'] over the model input or None, where the
# frame lies in that input) -> the event to publish (e.g. with evidence keys added). Runs on the inference thread
# for every judged frame: keep it short.
JudgedHook = Callable[[DefectEvent, WorkItem, DecodedFrame, Optional[np.ndarray], Placement], DefectEvent]


class ModelFailure(RuntimeError):
    """The model could not judge a batch; `kind` is the metric label (error or non_finite)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class InferenceLoop:
    """Runs on its own thread; the only thread that calls the model and (in exactly-once mode) the producer."""

    def __init__(self, pipeline: Pipeline, batcher: Batcher, models: ModelManager, factory: RecordFactory,
                 buckets: list[int], size_policy: str, halts: JudgingHalts,
                 regions: Optional[RegionFinder] = None, on_judged: Optional[JudgedHook] = None):
        self._batcher = batcher
        self._models = models
        self._publisher = pipeline.publisher
        self._factory = factory
        self._tracker = pipeline.tracker
        self._metrics = pipeline.metrics
        self._health = pipeline.health
        self._buckets = sorted(buckets)
        self._size_policy = size_policy  # WORKER_SIZE_MISMATCH_POLICY
        self._batch_lock = pipeline.batch_lock
        self._halts = halts
        self._regions = regions or RegionFinder(max_regions=0)
        self._on_judged = on_judged
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

    def _live(self, item: WorkItem) -> bool:
        # Revoked or rewound partitions are redone by their owner; halted ones wait for the retry.
        if self._halts.is_halted(item.source):
            self._metrics.frames_redone.labels("halted").inc()
            return False
        if not self._tracker.is_current(item.source, item.generation):
            self._metrics.frames_redone.labels("rebalance").inc()
            return False
        return True

    def _process(self, batch: Batch) -> None:
        model = self._models.take_update()
        if model is not None:
            self._halts.model_replaced()
        model = model or self._models.current
        records: list[OutRecord] = []
        events: list[tuple[DefectEvent, Optional[tuple[int, int]]]] = []  # with the strongest region's grid cell
        dead: list[DeadLetterReason] = []
        good: list[tuple[WorkItem, DecodedFrame, np.ndarray]] = []
        rejected = [(item, rej) for item, rej in batch.rejected if self._live(item)]
        for item, frame in batch.frames:
            if not self._live(item):
                continue
            try:  # a hot reload may have changed the input size since the frame was decoded: refit the camera's pixels
                image = frame.image if frame.image.shape == (model.input_height, model.input_width) else \
                    fit_to_model(frame.camera_image, model.input_height, model.input_width, self._size_policy)
            except FrameRejected as rej:
                rejected.append((item, Rejected(rej.reason, f"{rej} (model v{model.version})", frame.headers)))
            except Exception as exc:  # noqa: BLE001 - one frame's failure is that frame's dead letter
                rejected.append((item, Rejected(DeadLetterReason.UNDECODABLE, f"resize failed: {exc!r}")))
            else:
                good.append((item, frame, image))
        for item, rej in rejected:
            records.append(self._factory.dead_letter(item, rej.reason, rej.error))
            dead.append(rej.reason)
        if good:
            try:
                scores, maps, inference_s = self._infer(model, good, batch.closed_mono)
            except ModelFailure as failure:
                self._halt(good, failure)
            else:
                self._results(good, scores, maps, inference_s, model, records, events, dead)
        self._publisher.publish(records)
        self._count(events, dead)
        self.frames_done += len(records)

    def _results(self, good, scores, maps: Optional[np.ndarray], inference_s: float, model: ServingModel,
                 records: list, events: list, dead: list) -> None:
        inferred_ns = time.time_ns()
        for i, ((item, frame, _), score) in enumerate(zip(good, scores)):
            defect_map = maps[i] if maps is not None else None
            try:
                event = self._factory.event(item, frame, float(score), model, inferred_ns, inference_s * 1000.0,
                                            len(good))
                cell = None
                height, width = frame.headers.height, frame.headers.width  # regions are in camera pixels
                placement = place((height, width), (model.input_height, model.input_width), self._size_policy)
                if event.verdict is Verdict.DEFECT and defect_map is not None:
                    localisation = self._regions.locate(defect_map, placement)
                    if localisation is not None:
                        event = event.model_copy(update={"localisation": localisation})
                        cell = strongest_cell(localisation, height, width)
                if self._on_judged is not None:
                    event = self._on_judged(event, item, frame, defect_map, placement)
                rec = self._factory.record(item, event)
            except Exception as exc:  # noqa: BLE001 - e.g. a header value the result contract refuses
                records.append(self._factory.dead_letter(item, DeadLetterReason.EVENT_INVALID,
                                                         f"result event could not be built: {exc!r}"))
                dead.append(DeadLetterReason.EVENT_INVALID)
            else:
                records.append(rec)
                events.append((event, cell))

    def _halt(self, good, failure: ModelFailure) -> None:
        partitions = {item.source for item, _, _ in good}
        self._metrics.model_failures.labels(failure.kind).inc()
        log.error("model v%s could not judge a batch of %d frames (%s); halting %s: frames kept uncommitted, "
                  "retried later", self._models.current.version if self._models.current else "?", len(good),
                  failure, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions)))
        self._halts.halt(partitions, f"{failure.kind}: {str(failure)[:200]}")

    def _count(self, events, dead) -> None:
        m = self._metrics
        for reason in dead:
            m.frames_dead_lettered.labels(reason.value).inc()
        for ev, cell in events:
            line, camera = m.line_camera(ev.frame.line_id, ev.frame.camera_id)
            verdict = ev.verdict.value
            m.frames_judged.labels(line, camera, verdict).inc()
            if ev.frame.truth_label is not None:
                m.verdict_truth.labels(line, verdict, ev.frame.truth_label.value).inc()
            latency_s = ev.timings.capture_to_publish_ms / 1000.0
            if 0.0 <= latency_s <= 86_400.0:  # a camera clock far off must not skew the latency histogram
                m.capture_to_publish.labels(line).observe(latency_s)
            m.defect_score.labels(line).observe(ev.score)
            if cell is not None:
                m.defect_regions.labels(line, str(cell[0]), str(cell[1])).inc()

    def _infer(self, model: ServingModel, good, closed_mono: float) -> tuple[np.ndarray, Optional[np.ndarray], float]:
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
        # Maps only when something uses them: with regions off a model's map branch can be skipped.
        want_maps = self._regions.enabled or self._on_judged is not None
        start = time.perf_counter()
        try:
            scores, maps = model.model.judge(buf, want_maps=want_maps)
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)[:n]
        except Exception as exc:  # noqa: BLE001 - whatever the runtime raises, the model failed
            raise ModelFailure("error", f"model raised {exc!r}") from exc
        elapsed = time.perf_counter() - start
        if len(scores) != n:
            raise ModelFailure("error", f"model returned {len(scores)} scores for {n} frames")
        if not np.all(np.isfinite(scores)):
            raise ModelFailure("non_finite", f"model returned {int(np.sum(~np.isfinite(scores)))} non-finite "
                                             f"score(s) in a batch of {n}")
        self._metrics.inference_seconds.observe(elapsed)
        self._metrics.batch_size.observe(n)
        return scores, (maps[:n] if maps is not None else None), elapsed

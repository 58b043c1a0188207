"""Build the wire records: a DefectEvent per judged frame, a DeadLetterRecord per rejected one."""

from __future__ import annotations

import time

from line_contracts.events import (
    DeadLetterReason,
    DeadLetterRecord,
    DefectEvent,
    ModelRef,
    Timings,
    Verdict,
    event_id,
    frame_ref,
)
from line_contracts.frame import frame_key
from worker.batching import WorkItem
from worker.decode import DecodedFrame
from worker.model import ServingModel
from worker.publish import OutRecord


class RecordFactory:
    """Turns judged and rejected frames into OutRecords for the results and dead-letter topics."""

    def __init__(self, results_topic: str, dead_letter_topic: str, worker_id: str, max_dead_letter_value: int):
        self._results_topic = results_topic
        self._dlq_topic = dead_letter_topic
        self._worker_id = worker_id
        self._max_dlq_value = max_dead_letter_value
        self._model_refs: dict[tuple[str, str, str], ModelRef] = {}

    def result(self, item: WorkItem, frame: DecodedFrame, score: float, model: ServingModel,
               inferred_ns: int, inference_ms: float, batch_size: int) -> tuple[OutRecord, DefectEvent]:
        """The result event of one judged frame, and its record."""
        score = min(1.0, max(0.0, float(score)))
        headers = frame.headers
        published_ns = time.time_ns()
        event = DefectEvent(
            event_id=event_id(item.source.topic, item.source.partition, item.offset),
            frame=frame_ref(item.source.topic, item.source.partition, item.offset, headers),
            verdict=Verdict.DEFECT if score >= model.threshold else Verdict.OK,
            score=score, threshold=model.threshold, model=self._model_ref(model), worker_id=self._worker_id,
            timings=Timings(consumed_ns=item.consumed_ns, inferred_ns=inferred_ns, published_ns=published_ns,
                            capture_to_publish_ms=(published_ns - headers.capture_time_ns) / 1e6,
                            inference_ms=inference_ms, batch_size=batch_size))
        record = OutRecord(self._results_topic, frame_key(headers.camera_id), event.to_json_bytes(),
                           item.source, item.offset, item.generation)
        return record, event

    def dead_letter(self, item: WorkItem, reason: DeadLetterReason, error: str) -> OutRecord:
        """The dead-letter record of one frame that cannot be judged."""
        value = item.value or b""
        headers: dict[str, bytes] = {}
        for name, raw in item.headers or ():
            headers[name] = raw or b""
        rec = DeadLetterRecord(
            event_id=event_id(item.source.topic, item.source.partition, item.offset), reason=reason,
            error=error[:2000], source_topic=item.source.topic, source_partition=item.source.partition,
            source_offset=item.offset, source_key=item.key, original_headers=headers,
            original_value=value[:self._max_dlq_value], original_value_size=len(value),
            original_value_truncated=len(value) > self._max_dlq_value, worker_id=self._worker_id,
            dead_lettered_ns=time.time_ns())
        return OutRecord(self._dlq_topic, item.key, rec.to_json_bytes(), item.source, item.offset, item.generation)

    def _model_ref(self, model: ServingModel) -> ModelRef:
        key = (model.name, model.version, model.backend)
        ref = self._model_refs.get(key)
        if ref is None:
            ref = self._model_refs[key] = ModelRef(name=model.name, version=model.version, backend=model.backend)
        return ref

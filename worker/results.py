"""Build the wire records: a DefectEvent per judged frame, a DeadLetterRecord per rejected one.

A dead letter always fits the topic: the copied key, headers and error text are cut to fixed
limits and the copied value to what is left of `max_record_bytes` after the rest is serialised
(base64 grows bytes by a third); the cut is recorded in the record's *_truncated fields.
"""

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
from line_contracts.frame import MAX_HEADER_COUNT, MAX_KEY_BYTES, frame_key
from worker.batching import WorkItem
from worker.decode import DecodedFrame
from worker.model import ServingModel
from worker.publish import OutRecord


class RecordFactory:
    """Turns judged and rejected frames into OutRecords for the results and dead-letter topics."""

    def __init__(self, results_topic: str, dead_letter_topic: str, worker_id: str, max_dead_letter_value: int,
                 max_record_bytes: int = 1_000_000):
        self._results_topic = results_topic
        self._dlq_topic = dead_letter_topic
        self._worker_id = worker_id
        self._max_dlq_value = max_dead_letter_value
        self._max_record_bytes = max_record_bytes
        self._model_refs: dict[tuple[str, str, str], ModelRef] = {}

    def result(self, item: WorkItem, frame: DecodedFrame, score: float, model: ServingModel,
               inferred_ns: int, inference_ms: float, batch_size: int) -> tuple[OutRecord, DefectEvent]:
        """The result event of one judged frame, and its record."""
        event = self.event(item, frame, score, model, inferred_ns, inference_ms, batch_size)
        return self.record(item, event), event

    def event(self, item: WorkItem, frame: DecodedFrame, score: float, model: ServingModel, inferred_ns: int,
              inference_ms: float, batch_size: int) -> DefectEvent:
        """The result event of one judged frame (regions and evidence are added by the inference loop)."""
        score = min(1.0, max(0.0, float(score)))
        headers = frame.headers
        published_ns = time.time_ns()
        return DefectEvent(
            event_id=event_id(item.source.topic, item.source.partition, item.offset),
            frame=frame_ref(item.source.topic, item.source.partition, item.offset, headers),
            verdict=Verdict.DEFECT if score >= model.threshold else Verdict.OK,
            score=score, threshold=model.threshold, model=self._model_ref(model), worker_id=self._worker_id,
            timings=Timings(consumed_ns=item.consumed_ns, inferred_ns=inferred_ns, published_ns=published_ns,
                            capture_to_publish_ms=(published_ns - headers.capture_time_ns) / 1e6,
                            inference_ms=inference_ms, batch_size=batch_size))

    def record(self, item: WorkItem, event: DefectEvent) -> OutRecord:
        """The results-topic record of a (possibly amended) result event."""
        return OutRecord(self._results_topic, frame_key(event.frame.camera_id), event.to_json_bytes(),
                         item.source, item.offset, item.generation)

    def dead_letter(self, item: WorkItem, reason: DeadLetterReason, error: str) -> OutRecord:
        """The dead-letter record of one frame that cannot be judged; never larger than max_record_bytes."""
        key = item.key[:MAX_KEY_BYTES] if item.key is not None else None
        try:
            headers, headers_cut = _capped_headers(item.headers)
            base = self._letter(item, reason, error, key, headers, headers_cut, b"")
            room = (self._max_record_bytes - len(base.to_json_bytes()) - len(key or b"") - 64) * 3 // 4
            value = (item.value or b"")[:max(0, min(self._max_dlq_value, room))]
            rec = base.model_copy(update=dict(original_value=value,
                                              original_value_truncated=len(item.value or b"") > len(value)))
            data = rec.to_json_bytes()
        except Exception as exc:  # noqa: BLE001 - whatever is odd about the record, the frame gets its letter
            rec = self._letter(item, reason, f"{error} (original data left out: {exc!r})", None, {}, True, b"")
            data = rec.to_json_bytes()
        return OutRecord(self._dlq_topic, key, data, item.source, item.offset, item.generation)

    def _letter(self, item: WorkItem, reason: DeadLetterReason, error: str, key, headers: dict,
                headers_cut: bool, value: bytes) -> DeadLetterRecord:
        size = len(item.value or b"")
        return DeadLetterRecord(
            event_id=event_id(item.source.topic, item.source.partition, item.offset), reason=reason,
            error=error[:_MAX_ERROR_CHARS], source_topic=item.source.topic, source_partition=item.source.partition,
            source_offset=item.offset, source_key=key, source_key_size=len(item.key or b""),
            source_key_truncated=item.key is not None and len(item.key) > len(key or b""),
            original_headers=headers, original_headers_truncated=headers_cut, original_value=value,
            original_value_size=size, original_value_truncated=size > len(value), worker_id=self._worker_id,
            dead_lettered_ns=time.time_ns())

    def _model_ref(self, model: ServingModel) -> ModelRef:
        key = (model.name, model.version, model.backend, model.variant)
        ref = self._model_refs.get(key)
        if ref is None:
            ref = self._model_refs[key] = ModelRef(name=model.name, version=model.version, backend=model.backend, variant=model.variant)
        return ref


_MAX_ERROR_CHARS = 2000
_MAX_NAME_CHARS = 256
_MAX_HEADER_VALUE_BYTES = 1024


def _capped_headers(kafka_headers) -> tuple[dict[str, bytes], bool]:
    """The record's headers as they go into a dead letter: at most MAX_HEADER_COUNT, names and values cut."""
    out: dict[str, bytes] = {}
    cut = False
    for i, (name, raw) in enumerate(kafka_headers or ()):
        if i >= MAX_HEADER_COUNT:
            return out, True
        name, raw = str(name), raw or b""
        if len(name) > _MAX_NAME_CHARS or len(raw) > _MAX_HEADER_VALUE_BYTES or name in out:
            cut = True
        out[name[:_MAX_NAME_CHARS]] = raw[:_MAX_HEADER_VALUE_BYTES]
    return out, cut

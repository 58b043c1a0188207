"""Hand-written result events and dead letters for tests of what reads the results topics."""

from __future__ import annotations

from line_contracts.events import DeadLetterReason, DeadLetterRecord, DefectEvent, FrameRef, ModelRef, Timings, Verdict
from line_contracts.frame import TruthLabel


def make_event(i: int, verdict: str, truth: str | None, capture_ns: int = 1_000_000_000_000,
               publish_ms: float = 10.0, line: str = "line-1", camera: str = "line-1-cam-1",
               offset: int | None = None) -> DefectEvent:
    """A hand-written result event for frame i."""
    offset = i if offset is None else offset
    return DefectEvent(
        event_id=f"line.frames-0-{offset}",
        frame=FrameRef(topic="line.frames", partition=0, offset=offset, camera_id=camera, line_id=line,
                       frame_seq=i, capture_time_ns=capture_ns, truth_label=TruthLabel(truth) if truth else None),
        verdict=Verdict(verdict), score=0.9 if verdict == "defect" else 0.1, threshold=0.5,
        model=ModelRef(name="tiny", version="1", backend="litert"), worker_id="w-1",
        timings=Timings(consumed_ns=capture_ns, inferred_ns=capture_ns, published_ns=capture_ns + int(publish_ms * 1e6),
                        capture_to_publish_ms=publish_ms, inference_ms=1.0, batch_size=1))


def make_dead_letter(offset: int, reason: DeadLetterReason) -> DeadLetterRecord:
    """A hand-written dead-letter record."""
    return DeadLetterRecord(event_id=f"line.frames-0-{offset}", reason=reason, error="bad", source_topic="line.frames",
                            source_partition=0, source_offset=offset, worker_id="w-1", dead_lettered_ns=1)


# 10 frames with truth: tp=3, fp=1, tn=4, fn=2 -> precision 0.75, recall 0.6, accuracy 0.7
TRUTH_STREAM = [("defect", "defect")] * 3 + [("defect", "ok")] + [("ok", "ok")] * 4 + [("ok", "defect")] * 2

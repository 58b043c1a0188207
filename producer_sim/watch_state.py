"""What `watch` has seen so far: counts, latencies and truth scores. Fed records, owns no I/O.

Two latencies per result event, both capture-to-something in milliseconds:
- `capture_to_publish_ms`: the worker's own figure from the event's timings (capture -> the
  worker handed the result to its producer);
- `capture_to_receive_ms`: this watcher's wall clock when the record arrived minus the frame's
  capture_time_ns; it includes the results topic and the consumer, so it is what a downstream
  system sees (meaningful only when replaying live, not with --from-beginning on old data).

Localisation (`LocalisationScore`): a defect event on a frame the simulator marked defective with
a `truth_box` scores a hit when its strongest region's box overlaps that box.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

from pydantic import ValidationError

from line_contracts.events import DeadLetterRecord, DefectEvent, Verdict
from line_contracts.frame import TruthLabel
from producer_sim.stats import Confusion, LocalisationScore, RateCounter, latency_summary


class WatchState:
    """Aggregates result events and dead-letter records; redelivered events are counted once."""

    def __init__(self) -> None:
        self.results = 0
        self.duplicates = 0
        self.unparseable_results = 0
        self.unparseable_dead_letters = 0
        self.by_line: dict[str, RateCounter] = {}
        self.by_camera: dict[str, RateCounter] = {}
        self.capture_to_publish_ms: list[float] = []
        self.capture_to_receive_ms: list[float] = []
        self.confusion = Confusion()
        self.localisation = LocalisationScore()
        self.dead_letters: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self._seen: set[str] = set()
        self._seen_dead: set[str] = set()

    @property
    def frames_accounted(self) -> int:
        """Distinct frames with a result or a dead-letter record."""
        return self.results + sum(self.dead_letters.values())

    def add_result(self, value: Optional[bytes], receive_ns: int) -> Optional[DefectEvent]:
        """Count one record from the results topic; return the event, or None if skipped."""
        try:
            event = DefectEvent.model_validate_json(value or b"")
        except ValidationError:
            self.unparseable_results += 1
            return None
        if event.event_id in self._seen:
            self.duplicates += 1
            return None
        self._seen.add(event.event_id)
        self.results += 1
        is_defect = event.verdict is Verdict.DEFECT
        frame = event.frame
        self.by_line.setdefault(frame.line_id, RateCounter()).add(is_defect)
        self.by_camera.setdefault(frame.camera_id, RateCounter()).add(is_defect)
        self.capture_to_publish_ms.append(event.timings.capture_to_publish_ms)
        self.capture_to_receive_ms.append((receive_ns - frame.capture_time_ns) / 1e6)
        if frame.truth_label is not None:
            self.confusion.add(is_defect, frame.truth_label is TruthLabel.DEFECT)
        if is_defect and frame.truth_label is TruthLabel.DEFECT and frame.truth_box is not None:
            regions = event.localisation.regions if event.localisation is not None else []
            self.localisation.add(bool(regions), bool(regions) and regions[0].box.overlaps(frame.truth_box))
        self.models[f"{event.model.name}:{event.model.version}:{event.model.backend}"] += 1
        return event

    def add_dead_letter(self, value: Optional[bytes]) -> Optional[DeadLetterRecord]:
        """Count one record from the dead-letter topic."""
        try:
            record = DeadLetterRecord.model_validate_json(value or b"")
        except ValidationError:
            self.unparseable_dead_letters += 1
            return None
        if record.event_id in self._seen_dead:
            self.duplicates += 1
            return None
        self._seen_dead.add(record.event_id)
        self.dead_letters[record.reason.value] += 1
        return record

    def summary(self, elapsed_s: float, active_s: Optional[float] = None) -> dict:
        """Machine-readable summary (the `--json` output)."""
        defects = sum(c.defects for c in self.by_line.values())
        span = active_s if active_s else elapsed_s
        return {
            "elapsed_s": round(elapsed_s, 3),
            "results": self.results,
            "results_per_s": self.results / span if span else None,
            "defects": defects,
            "defect_rate": defects / self.results if self.results else None,
            "by_line": {k: v.to_dict() for k, v in sorted(self.by_line.items())},
            "by_camera": {k: v.to_dict() for k, v in sorted(self.by_camera.items())},
            "latency_ms": {
                "capture_to_publish": latency_summary(self.capture_to_publish_ms),
                "capture_to_receive": latency_summary(self.capture_to_receive_ms),
            },
            "truth": self.confusion.to_dict(),
            "localisation": self.localisation.to_dict(),
            "dead_letters": sum(self.dead_letters.values()),
            "dead_letters_by_reason": dict(sorted(self.dead_letters.items())),
            "frames_accounted": self.frames_accounted,
            "duplicates": self.duplicates,
            "unparseable": {"results": self.unparseable_results, "dead_letters": self.unparseable_dead_letters},
            "models": dict(self.models),
        }

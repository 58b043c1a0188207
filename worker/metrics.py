"""The worker's Prometheus metrics, registered on an injected registry (tests pass a fresh one)."""

from __future__ import annotations

import threading
from typing import Iterable, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from line_contracts.frame import H_CAMERA_ID, H_LINE_ID, is_valid_id

UNKNOWN = "unknown"  # the id is missing or not a valid id
OTHER = "other"      # a valid id beyond the label budget

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_SCORE_BUCKETS = tuple(i / 20 for i in range(1, 21))
_EVIDENCE_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EVIDENCE_MISSING_REASONS = ("queue_full", "store_down", "write_failed", "shutdown")


class WorkerMetrics:
    """All metrics of one worker process; names are the contract the dashboards and alerts query."""

    def __init__(self, registry: CollectorRegistry, max_label_values: int = 100):
        self.registry = registry
        self.labels = LabelBudget(max_label_values)
        r = registry
        self.frames_consumed = Counter("inspection_frames_consumed_total", "Frame records polled from the frames "
                                       "topic, by line and camera ('unknown' when headers are unreadable).",
                                       ["line", "camera"], registry=r)
        self.frames_judged = Counter("inspection_frames_judged_total", "Frames whose result event was published, "
                                     "by line, camera and verdict.", ["line", "camera", "verdict"], registry=r)
        self.frames_dead_lettered = Counter("inspection_frames_dead_lettered_total", "Frames sent to the "
                                            "dead-letter topic, by reason.", ["reason"], registry=r)
        self.verdict_truth = Counter("inspection_verdict_truth_total", "Judged frames that carried a ground-truth "
                                     "label, by verdict and truth (for live precision and recall).",
                                     ["line", "verdict", "truth"], registry=r)
        self.batch_size = Histogram("inspection_batch_size_frames", "Frames per inference micro-batch "
                                    "(before padding to a warmed-up shape).", buckets=_BATCH_BUCKETS, registry=r)
        self.decode_seconds = Histogram("inspection_decode_seconds", "Time to validate and decode one frame.",
                                        buckets=_STEP_BUCKETS, registry=r)
        self.inference_seconds = Histogram("inspection_inference_seconds", "Time of one batch inference call.",
                                           buckets=_STEP_BUCKETS, registry=r)
        self.queue_wait_seconds = Histogram("inspection_queue_wait_seconds", "Time a frame waited between being "
                                            "polled and its batch entering inference.", buckets=_STEP_BUCKETS,
                                            registry=r)
        self.capture_to_publish = Histogram("inspection_capture_to_publish_seconds", "Camera capture time to result "
                                            "event handed to the producer, by line.", ["line"],
                                            buckets=_LATENCY_BUCKETS, registry=r)
        self.defect_score = Histogram("inspection_defect_score", "Model defect scores, by line.", ["line"],
                                      buckets=_SCORE_BUCKETS, registry=r)
        self.defect_regions = Counter("inspection_defect_regions_total", "Frames judged defect, by line and the "
                                      "cell (row, col; 0-3 from the top left) of a 4x4 grid of the frame holding their "
                                      "strongest defect region.", ["line", "row", "col"], registry=r)
        self.consumer_lag = Gauge("inspection_consumer_lag_records", "Records between this worker's position and "
                                  "the end of each assigned partition.", ["topic", "partition"], registry=r)
        self.model_info = Gauge("inspection_model_info", "The model in service (value 1), by name, version and "
                                "backend.", ["name", "version", "backend"], registry=r)
        self.ready = Gauge("inspection_ready", "1 when the model is loaded and warmed up and partitions are "
                           "assigned, else 0.", registry=r)
        self.paused = Gauge("inspection_paused", "1 while consumption is paused because inference is behind.",
                            registry=r)
        self.model_reloads = Counter("inspection_model_reloads_total", "Model hot-reload attempts, by result "
                                     "(success or failure).", ["result"], registry=r)
        for result in ("success", "failure"):  # exported as 0 from the start, so reload panels are never empty
            self.model_reloads.labels(result)
        self.publish_retries = Counter("inspection_publish_retries_total", "Result or dead-letter records sent "
                                       "again after a failed delivery.", registry=r)
        self.frames_redone = Counter("inspection_frames_redone_total", "Polled frames set aside unjudged because "
                                     "their partition was halted (reason halted) or revoked or rewound at a "
                                     "rebalance (reason rebalance) meanwhile; they are polled and judged again.",
                                     ["reason"], registry=r)
        for reason in ("rebalance", "halted"):  # exported as 0 from the start: consumed = judged + dead + redone
            self.frames_redone.labels(reason)
        self.poll_errors = Counter("inspection_poll_errors_total", "Consumer polls that raised (a record the Kafka "
                                   "client cannot read is dead-lettered and skipped).", registry=r)
        self.judging_halted = Gauge("inspection_judging_halted_partitions", "Partitions this worker has stopped "
                                    "judging because the model failed or returned a non-finite score (their frames "
                                    "stay uncommitted and are judged again on retry).", registry=r)
        self.model_failures = Counter("inspection_model_failures_total", "Batches the model could not judge, by "
                                      "kind (error: it raised; non_finite: a score was NaN or infinite).", ["kind"],
                                      registry=r)
        for kind in ("error", "non_finite"):
            self.model_failures.labels(kind)
        self.publish_failing = Gauge("inspection_publish_failing", "Output topics (results, dead letters) whose "
                                     "latest delivery failed; frames stay uncommitted and are re-sent until it works.",
                                     registry=r)
        self.evidence = EvidenceMetrics(r)
        self.commits = Counter("inspection_commits_total", "Successful offset commits (or committed transactions).",
                               registry=r)

    def line_camera(self, line: str, camera: str) -> tuple[str, str]:
        """(line, camera) label values, bounded: see LabelBudget."""
        return self.labels.value("line", line), self.labels.value("camera", camera)

    def frame_labels(self, kafka_headers: Optional[Iterable[Tuple[str, Optional[bytes]]]]) -> tuple[str, str]:
        """Bounded (line, camera) label values of a frame record, read from its raw headers."""
        return self.line_camera(*frame_labels(kafka_headers))

    def set_model(self, name: str, version: str, backend: str) -> None:
        """Make the model-info gauge show exactly the model now in service."""
        self.model_info.clear()
        self.model_info.labels(name, version, backend).set(1)


class EvidenceMetrics:
    """The evidence writer's metrics (worker/evidence.py); exported, at zero, also without a store."""

    def __init__(self, registry: CollectorRegistry):
        r = registry
        self.written = Counter("inspection_evidence_written_total", "Frames whose evidence (frame, overlay, event) "
                               "was written to the object store.", registry=r)
        self.missing = Counter("inspection_evidence_missing_total", "Frames chosen for evidence whose objects were "
                               "not kept, by reason (queue_full, store_down, write_failed, shutdown).", ["reason"],
                               registry=r)
        for reason in EVIDENCE_MISSING_REASONS:  # exported as 0 from the start, so the alert's rate() has a baseline
            self.missing.labels(reason)
        self.queue_depth = Gauge("inspection_evidence_queue_frames", "Frames waiting to have their evidence "
                                 "written.", registry=r)
        self.write_seconds = Histogram("inspection_evidence_write_seconds", "Time to render and write one frame's "
                                       "evidence (all three objects), retries excluded.", buckets=_EVIDENCE_WRITE_BUCKETS,
                                       registry=r)
        self.store_up = Gauge("inspection_evidence_store_up", "1 while the evidence store is usable (the last write "
                              "or probe succeeded); 0 while it is not, or when no store is configured.", registry=r)


class LabelBudget:
    """Caps the distinct values of each id label: ids from headers must not grow the series without bound.

    The first `max_values` valid ids of each label are used as they are; later ones are counted
    under 'other', invalid ones (wrong charset or length) under 'unknown'.
    """

    def __init__(self, max_values: int):
        self._max = max_values
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def value(self, label: str, raw: str) -> str:
        """The label value to use for id `raw` of label `label`."""
        if raw in (UNKNOWN, OTHER) or not is_valid_id(raw):
            return UNKNOWN if raw != OTHER else OTHER
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if raw in seen:
                return raw
            if len(seen) >= self._max:
                return OTHER
            seen.add(raw)
            return raw


def frame_labels(kafka_headers: Optional[Iterable[Tuple[str, Optional[bytes]]]]) -> tuple[str, str]:
    """(line, camera) label values of a frame record, read from its raw headers; 'unknown' when unreadable."""
    found = {H_LINE_ID: UNKNOWN, H_CAMERA_ID: UNKNOWN}
    for name, value in kafka_headers or ():
        if name in found:
            try:
                found[name] = (value or b"").decode("utf-8") or UNKNOWN
            except UnicodeDecodeError:
                pass
    return found[H_LINE_ID], found[H_CAMERA_ID]

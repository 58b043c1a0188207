"""The worker's Prometheus metrics, registered on an injected registry (tests pass a fresh one)."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from line_contracts.frame import H_CAMERA_ID, H_LINE_ID

UNKNOWN = "unknown"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_SCORE_BUCKETS = tuple(i / 20 for i in range(1, 21))


class WorkerMetrics:
    """All metrics of one worker process; names are the contract the dashboards and alerts query."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
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
        self.poll_errors = Counter("inspection_poll_errors_total", "Consumer polls that raised (a record the Kafka "
                                   "client cannot read is dead-lettered and skipped).", registry=r)
        self.commits = Counter("inspection_commits_total", "Successful offset commits (or committed transactions).",
                               registry=r)

    def set_model(self, name: str, version: str, backend: str) -> None:
        """Make the model-info gauge show exactly the model now in service."""
        self.model_info.clear()
        self.model_info.labels(name, version, backend).set(1)


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

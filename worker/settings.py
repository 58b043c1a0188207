"""Worker settings: one pydantic-settings class, env prefix WORKER_, every field documented."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from line_contracts.topics import DEAD_LETTER_TOPIC, FRAMES_TOPIC, RESULTS_TOPIC, WORKER_GROUP
from line_runtime.settings import KafkaClientSettings


class WorkerSettings(KafkaClientSettings):
    """Everything `python -m worker` can be told, read from WORKER_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore", validate_default=True)

    frames_topic: str = Field(FRAMES_TOPIC, min_length=1, description="Topic the camera frames are read from.")
    results_topic: str = Field(RESULTS_TOPIC, min_length=1, description="Topic the result events are written to.")
    dead_letter_topic: str = Field(DEAD_LETTER_TOPIC, min_length=1,
                                   description="Topic frames that cannot be judged are written to, with the reason.")
    group_id: str = Field(WORKER_GROUP, min_length=1, description="Kafka consumer group shared by all worker pods.")
    instance_id: str = Field(default_factory=socket.gethostname, min_length=1,
                             description="This worker's id in events and dead letters (default: the host name). "
                                         "Must be unique and stable per pod in exactly_once mode.")
    model_path: Path = Field(Path("models"), description="Model base folder (one sub-folder per integer version; "
                             "the highest complete one is served) or a single version folder.")
    model_backend: Literal["auto", "tensorflow", "litert", "null"] = Field(
        "auto", description="Runtime: tensorflow (SavedModel), litert (model.tflite, CPU) or auto "
                            "(tensorflow on a GPU, else litert when model.tflite exists); null scores 0 without "
                            "running a model (benchmarks of the pipeline only).")
    model_variant: Literal["auto", "exact", "fast"] = Field(
        "auto", description="Which variant of the model version to serve: auto (its fast variant, a lower working "
                            "resolution, when the backend is litert and training recorded that it matches the exact "
                            "model on the held-out frames; else the exact one), exact, or fast (refused if the version "
                            "has none).")
    model_poll_interval_s: float = Field(30.0, ge=0, description="Seconds between scans of model_path for a higher "
                                         "version to hot-reload; 0 turns hot reload off.")
    threshold_override: Optional[float] = Field(None, ge=0.0, le=1.0, description="Decision threshold to use "
                                                "instead of the model metadata's one (empty: use the model's).")
    allow_unfit_model: bool = Field(False, description="Serve a model whose training quality gate marked it not "
                                    "fit to deploy (metadata.json fit_to_serve=false). Off: such a model is refused "
                                    "at start and on hot reload, naming the gate's reasons.")
    jit_compile: bool = Field(False, description="Compile the TensorFlow model with XLA. Only honoured on a GPU "
                              "(on CPU it was ~9x slower, so it is ignored there with a warning).")
    max_batch_size: int = Field(32, ge=1, le=1024, description="A micro-batch closes when it holds this many frames.")
    max_batch_wait_ms: float = Field(20.0, ge=0, le=60_000, description="A micro-batch closes when its oldest frame "
                                     "has waited this long, even if it is not full.")
    decode_threads: int = Field(2, ge=1, le=64, description="Threads decoding frames (OpenCV releases the GIL).")
    model_threads: int = Field(0, ge=0, le=256, description="CPU threads of the LiteRT interpreter in each consumer "
                               "process (and of TensorFlow when it serves on a CPU). 0: the pod's CPUs (WORKER_CPUS) "
                               "shared among its consumer processes, at least one each.")
    cpus: int = Field(0, ge=0, le=1024, description="CPUs this pod's model threads share. 0: detect them (the CPU "
                      "affinity, capped by the container's CPU limit). The Helm chart sets the pod's CPU request, "
                      "rounded up: a pod without a CPU limit would otherwise see, and spin threads on, every core "
                      "of its node.")
    processes: int = Field(1, ge=1, le=64, description="Consumer processes in this pod, all in the consumer group and "
                           "sharing the pod's device (worker/fleet.py). One Python process moves a few hundred PNG "
                           "frames/s; more processes feed a GPU that judges thousands. Each gets "
                           "`<instance_id>-<n>` as its id; /metrics, /healthz and /readyz speak for all of them.")
    max_queued_batches: int = Field(4, ge=1, le=1000, description="Frames in flight (polled, not yet judged) are "
                                    "capped at this many batches; beyond it the consumer pauses its partitions.")
    max_frame_bytes: int = Field(900_000, ge=1, description="Frames with a larger record value are dead-lettered "
                                 "(too_many_bytes) without being decoded.")
    max_frame_pixels: int = Field(4096 * 4096, ge=1, description="Frames with more pixels (from headers or the image "
                                  "header) are dead-lettered (too_many_pixels) without being decoded.")
    max_jpeg_scans: int = Field(64, ge=1, le=100_000, description="JPEG frames with more scans are dead-lettered "
                                "(decode_too_costly) without being decoded: each scan is a pass over the image (a "
                                "progressive JPEG has 6-12; thousands make a decode bomb).")
    decode_timeout_s: float = Field(10.0, gt=0, le=600, description="A frame not decoded this long after it was "
                                    "polled is dead-lettered (decode_timeout), so one slow frame never holds up the "
                                    "others; its decode thread is replaced.")
    max_record_bytes: int = Field(1_000_000, ge=10_000, description="Largest result or dead-letter record the "
                                  "worker sends (keep at or below the topics' max.message.bytes): a dead letter's "
                                  "copied value, key and headers are cut to fit.")
    max_label_values: int = Field(100, ge=1, le=100_000, description="Distinct line and camera ids used as metric "
                                  "labels (each); frames of further ids are counted under 'other', invalid ids "
                                  "under 'unknown'.")
    size_mismatch_policy: Literal["fit", "resize", "reject"] = Field(
        "fit", description="A frame whose size differs from the model input: fit (training's rule: aspect kept, "
                           "shrunk by area averaging only if too big, never enlarged, centred with a mirrored "
                           "border; regions exclude the border), resize (stretched to the input size, aspect not "
                           "kept: the rule before 2026-12-04) or reject (dead-letter as size_mismatch).")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="at_least_once: commit offsets after results are acknowledged (a crash may "
                                     "repeat results). exactly_once: results, dead letters and offsets in one Kafka "
                                     "transaction per batch; readers must use isolation.level=read_committed.")
    metrics_host: str = Field("0.0.0.0", description="Address the /metrics, /healthz, /readyz HTTP server binds to.")
    metrics_port: int = Field(9400, ge=0, le=65535, description="Port of the metrics and health HTTP server "
                              "(0: pick a free port, logged at start).")
    shutdown_grace_s: float = Field(30.0, gt=0, description="On SIGTERM/SIGINT, finish in-flight work and exit within "
                                    "this many seconds; a second signal exits at once.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["text", "json"] = Field("text", description="Log line format: text or json (one object a line).")
    dead_letter_max_value_bytes: int = Field(
        512 * 1024, ge=0, description="The frame bytes copied into a dead-letter record are cut to this size so the "
                                      "record (base64 inside JSON) always fits the topic's record size limit.")

    max_regions: int = Field(5, ge=0, le=100, description="Defect regions (boxes of the model's defect map, in "
                             "frame pixels, strongest first) put in the result event of a frame judged defect; "
                             "0 turns regions off. Models without a defect-map output give none.")
    region_level: float = Field(0.5, ge=0.0, le=1.0, description="Defect-map value (0..1) at or above which a map "
                                "cell belongs to a region; the map's peak cell always makes one.")

    halt_retry_s: float = Field(30.0, gt=0, le=3600, description="Fail closed: partitions halted because the "
                                "model failed (or returned a non-finite score) are retried after this many seconds, "
                                "or at once when a new model version is loaded.")
    # Evidence (claim-check): frames, overlays and events in an S3-compatible store (worker/evidence.py).
    # Credentials are the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables (or a web identity).
    evidence_endpoint: str = Field("", description="URL of the S3-compatible evidence store (http[s]://host:port; "
                                   "for AWS S3 its regional endpoint). Empty: no evidence is kept.")
    evidence_bucket: str = Field("line-evidence", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                                 description="Bucket the evidence goes to (3-63 lowercase letters, digits, '.', "
                                             "'-'); it must exist. Retention: the bucket's lifecycle rules.")
    evidence_region: str = Field("us-east-1", min_length=1, description="Region the evidence requests are signed "
                                 "for (most non-AWS stores ignore it).")
    evidence_sample_ok: float = Field(0.01, ge=0.0, le=1.0, description="Share of 'ok' frames whose evidence is "
                                      "kept too (audit, drift), chosen by a hash of the event id so a redelivery "
                                      "chooses the same. Every 'defect' frame keeps its evidence.")
    evidence_queue_size: int = Field(256, ge=1, le=100_000, description="Frames waiting for the evidence writer; "
                                     "beyond it events are published with evidence status 'missing' (queue_full).")
    evidence_timeout_s: float = Field(2.0, gt=0, le=60, description="Connect and read timeout of one evidence "
                                      "store request.")
    evidence_overlay_max_side: int = Field(256, ge=0, le=16_384, description="Longest side in pixels of the "
                                           "overlay PNG (frame, heat, boxes), area-downscaled; 0: the camera's "
                                           "frame size. The frame itself is always kept at full resolution.")
    evidence_retry_s: float = Field(300.0, gt=0, le=86_400, description="A queued frame whose writes fail is "
                                    "retried with back-off for this long, then dropped (counted as write_failed).")

    # Loop intervals and time budgets. The defaults are what the worker was tuned and tested with;
    # change them only with a reason (the docs say what each one trades).
    poll_timeout_ms: int = Field(100, ge=1, le=10_000, description="Longest one consumer poll() blocks; the "
                                 "consumer loop ticks (commits, lag, health) at least this often.")
    commit_interval_s: float = Field(0.5, gt=0, le=60, description="At-least-once: acknowledged offsets are "
                                     "committed at most this often (and at every rebalance and at shutdown).")
    commit_timeout_ms: int = Field(5000, ge=100, le=120_000, description="A commit blocks the poll loop this long "
                                   "at most; with the broker away it is retried at the next interval.")
    lag_refresh_s: float = Field(5.0, gt=0, le=600, description="Seconds between refreshes of the consumer lag "
                                 "gauge; the consumer watchdog checks at the same pace.")
    revoke_flush_s: float = Field(5.0, gt=0, le=300, description="Before partitions are revoked, wait this long "
                                  "at most for results in flight to be acknowledged (the rest is redone).")
    loop_stall_after_s: float = Field(60.0, gt=0, description="/healthz answers 503 when the poll or the "
                                      "inference loop has not ticked for this long.")
    consumer_nudge_after_s: float = Field(15.0, gt=0, description="Consumer watchdog: no frame polled while "
                                          "frames wait for this long -> log its state and nudge it.")
    consumer_rebuild_after_s: float = Field(30.0, gt=0, description="Consumer watchdog: outside a stable group "
                                            "membership this long -> replace the consumer with a fresh one.")
    consumer_stall_after_s: float = Field(60.0, gt=0, description="Consumer watchdog: still no progress after "
                                          "this long -> /healthz answers 503 (the liveness probe restarts the pod).")
    publish_retry_backoff_s: float = Field(0.5, gt=0, le=60, description="A failed delivery is re-sent after this "
                                           "many seconds (a transaction attempt backs off from it up to 2 s).")
    transaction_retry_window_s: float = Field(120.0, gt=0, description="Exactly-once: a failing transaction is "
                                              "retried as a whole for this long before the worker gives up.")

    @field_validator("evidence_endpoint")
    @classmethod
    def _endpoint_is_a_url(cls, value: str) -> str:
        value = value.strip()
        if value and not (value.startswith("http://") or value.startswith("https://")):
            raise ValueError("must be an http:// or https:// URL (or empty to keep no evidence)")
        return value

    @model_validator(mode="after")
    def _evidence_credentials(self):
        env = os.environ
        has_keys = bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"))
        if self.evidence_endpoint and not (has_keys or env.get("AWS_WEB_IDENTITY_TOKEN_FILE") or env.get("AWS_PROFILE")):
            raise ValueError("WORKER_EVIDENCE_ENDPOINT is set but there are no credentials for it: set "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (chart: evidence.existingSecret)")
        return self

    def batch_buckets(self) -> list[int]:
        """Batch shapes the model is run with: powers of two up to max_batch_size, and max_batch_size itself."""
        sizes, n = [], 1
        while n < self.max_batch_size:
            sizes.append(n)
            n *= 2
        return sizes + [self.max_batch_size]

    def max_in_flight_frames(self) -> int:
        """Polled-but-unfinished frames above which consumption pauses."""
        return self.max_batch_size * self.max_queued_batches

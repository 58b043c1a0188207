"""Wires the worker together and runs it: warm-up, the loops, and the graceful shutdown sequence.

Shutdown (a stop request, e.g. SIGTERM): stop polling -> the inference loop drains every frame
already polled -> flush the producer -> final commit -> close. Everything is bounded by one
time.monotonic() deadline of shutdown_grace_s.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from prometheus_client import CollectorRegistry

from line_runtime.kafka_check import KafkaConnectError, check_kafka_connection
from worker.batching import END_OF_STREAM
from worker.evidence_client import EvidenceStoreRefused
from worker.health import Health
from worker.http import MetricsServer
from worker.metrics import WorkerMetrics
from worker.model import ModelManager
from worker.parts import WorkerParts, build_parts, start_inference
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_KAFKA = 3  # the brokers cannot be reached or refuse the credentials


class Worker:
    """One worker process: `run()` blocks until `request_stop()` (or a fatal error) and returns an exit code."""

    def __init__(self, settings: WorkerSettings, registry: Optional[CollectorRegistry] = None):
        self.settings = settings
        self.metrics = WorkerMetrics(registry or CollectorRegistry(), settings.max_label_values)
        self.health = Health(self.metrics, settings.loop_stall_after_s)
        self._stop = threading.Event()
        self._stop_deadline: Optional[float] = None
        self.http: Optional[MetricsServer] = None

    def request_stop(self) -> None:
        """Begin the graceful shutdown; the grace period starts now."""
        if not self._stop.is_set():
            self._stop_deadline = time.monotonic() + self.settings.shutdown_grace_s
            self.health.stopping = True
            self._stop.set()

    def run(self) -> int:
        """Serve until stopped; returns the process exit code."""
        s = self.settings
        self.http = MetricsServer.for_worker(s.metrics_host, s.metrics_port, self.metrics, self.health)
        self.http.start()
        log.info("metrics and health on http://%s:%d (/metrics /healthz /readyz)", s.metrics_host, self.http.port)
        try:
            return self._run()
        finally:
            self.http.stop()

    def _run(self) -> int:
        s = self.settings
        try:  # fail in seconds on a wrong password or certificate, naming the setting to fix
            check_kafka_connection(s)
        except KafkaConnectError as exc:
            log.error("cannot use Kafka: %s", exc)
            return EXIT_KAFKA
        models = ModelManager(s, self.metrics, self._stop)
        models.load_initial()
        self.health.model_ready = True
        if self._stop.is_set():
            return EXIT_OK
        try:
            parts = build_parts(s, models, self.metrics, self.health)
        except EvidenceStoreRefused as exc:
            log.error("cannot use the evidence store: %s", exc)
            return EXIT_FAILED
        loop, inference = parts.consumer_loop, parts.inference
        thread = start_inference(parts)
        models.start_watching()
        loop.subscribe(self._stop)
        failed = False
        try:
            while not self._stop.is_set():
                if inference.error is not None or parts.publisher.fatal is not None:
                    failed = True
                    break
                loop.poll_once()
        except Exception:
            log.exception("consumer loop failed")
            failed = True
        return self._shutdown(parts, thread, failed)

    def _shutdown(self, parts: WorkerParts, thread: threading.Thread, failed: bool) -> int:
        deadline = self._stop_deadline or time.monotonic() + self.settings.shutdown_grace_s
        self._stop.set()
        self.health.stopping = True
        loop, inference, publisher = parts.consumer_loop, parts.inference, parts.publisher

        def left(share: float = 1.0) -> float:
            return max(0.0, (deadline - time.monotonic()) * share)

        code = EXIT_FAILED if failed else EXIT_OK
        if not failed:
            log.info("stopping: draining %d in-flight frames", parts.pipeline.tracker.in_flight())
            parts.pipeline.items.put(END_OF_STREAM)
            thread.join(timeout=left(0.7))
            if thread.is_alive() or inference.error is not None:
                log.error("in-flight frames not finished within the grace period; they will be redone")
                code = EXIT_FAILED
            try:
                publisher.flush(left(0.8))
                loop.commit(force=True)
            except Exception:
                log.exception("final flush/commit failed; uncommitted frames will be redone")
                code = EXIT_FAILED
        else:
            log.error("stopping after a fatal error without committing: %r", inference.error or publisher.fatal)
        parts.decoder.shutdown()
        if parts.evidence is not None:  # after the commit: evidence never holds results back
            parts.evidence.close(left())
        try:
            loop.consumer.close(autocommit=False)
        except Exception:
            log.exception("consumer close failed")
        try:
            parts.producer.close(timeout=left() if not failed else 0)
        except Exception:
            log.exception("producer close failed")
        log.info("stopped (exit %d, %d frames handled)", code, inference.frames_done)
        return code

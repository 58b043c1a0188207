"""Wires the worker together and runs it: warm-up, the loops, and the graceful shutdown sequence.

Shutdown (a stop request, e.g. SIGTERM): stop polling -> the inference loop drains every frame
already polled -> flush the producer -> final commit -> close. Everything is bounded by one
time.monotonic() deadline of shutdown_grace_s.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry

from line_runtime.kafka_check import KafkaConnectError, check_kafka_connection
from worker.batching import END_OF_STREAM, Batcher
from worker.consumer import ConsumerLoop, consumer_kwargs
from worker.decode import DecodeLimits
from worker.http import Health, MetricsServer
from worker.inference import InferenceLoop
from worker.metrics import WorkerMetrics
from worker.model import ModelManager
from worker.offsets import OffsetTracker
from worker.publish import AtLeastOncePublisher, TransactionalPublisher, producer_kwargs
from worker.results import RecordFactory
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_KAFKA = 3  # the brokers cannot be reached or refuse the credentials


class Worker:
    """One worker process: `run()` blocks until `request_stop()` (or a fatal error) and returns an exit code."""

    def __init__(self, settings: WorkerSettings, registry: Optional[CollectorRegistry] = None):
        self.settings = settings
        self.metrics = WorkerMetrics(registry or CollectorRegistry())
        self.health = Health(self.metrics)
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
        self.http = MetricsServer(s.metrics_host, s.metrics_port, self.metrics, self.health)
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
        tracker = OffsetTracker()
        eos = s.processing_guarantee == "exactly_once"
        producer = KafkaProducer(**producer_kwargs(s, transactional=eos))
        publisher = (TransactionalPublisher if eos else AtLeastOncePublisher)(producer, tracker, self.metrics)
        items: "queue.Queue" = queue.Queue()
        pool = ThreadPoolExecutor(max_workers=s.decode_threads, thread_name_prefix="decode")
        batch_lock = threading.Lock()
        limits_cache: dict = {}

        def limits() -> DecodeLimits:
            m = models.current
            key = (m.input_height, m.input_width)
            if key not in limits_cache:
                limits_cache[key] = DecodeLimits(s.max_frame_bytes, s.max_frame_pixels, m.input_height,
                                                 m.input_width, s.size_mismatch_policy == "resize")
            return limits_cache[key]

        loop = ConsumerLoop(s, lambda: KafkaConsumer(**consumer_kwargs(s)), items, pool, limits, tracker, publisher, self.metrics, self.health,
                            batch_lock)
        inference = InferenceLoop(
            Batcher(items, s.max_batch_size, s.max_batch_wait_ms), models, publisher,
            RecordFactory(s.results_topic, s.dead_letter_topic, s.instance_id, s.dead_letter_max_value_bytes),
            tracker, self.metrics, self.health, s.batch_buckets(), s.size_mismatch_policy == "resize", batch_lock,
            lambda: loop.group_metadata)
        thread = threading.Thread(target=inference.run, name="inference", daemon=True)
        thread.start()
        models.start_watching()
        loop.subscribe(self._stop)
        failed = False
        try:
            while not self._stop.is_set():
                if inference.error is not None or publisher.fatal is not None:
                    failed = True
                    break
                loop.poll_once()
        except Exception:
            log.exception("consumer loop failed")
            failed = True
        return self._shutdown(failed, loop, loop.consumer, producer, publisher, inference, thread, items, pool,
                              tracker.in_flight)

    def _shutdown(self, failed, loop, consumer, producer, publisher, inference, thread, items, pool,
                  tracker_in_flight) -> int:
        deadline = self._stop_deadline or time.monotonic() + self.settings.shutdown_grace_s
        self._stop.set()
        self.health.stopping = True

        def left(share: float = 1.0) -> float:
            return max(0.0, (deadline - time.monotonic()) * share)

        code = EXIT_FAILED if failed else EXIT_OK
        if not failed:
            log.info("stopping: draining %d in-flight frames", tracker_in_flight())
            items.put(END_OF_STREAM)
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
        pool.shutdown(wait=False, cancel_futures=True)
        try:
            consumer.close(autocommit=False)
        except Exception:
            log.exception("consumer close failed")
        try:
            producer.close(timeout=left() if not failed else 0)
        except Exception:
            log.exception("producer close failed")
        log.info("stopped (exit %d, %d frames handled)", code, inference.frames_done)
        return code

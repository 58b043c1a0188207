"""The worker's parts, built in one place: who talks to whom is read off `build_parts`.

    KafkaConsumer -> ConsumerLoop -> DecodePool -> Pipeline.items -> Batcher -> InferenceLoop
        -> ModelManager (judge) -> RecordFactory -> Publisher -> KafkaProducer
                                -> EvidenceWriter (own thread) -> S3 object store (optional)
    Publisher acks -> OffsetTracker -> ConsumerLoop.commit (at-least-once)
                                      (exactly-once: the transaction commits the offsets)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

from kafka import KafkaConsumer, KafkaProducer

from worker import record_reader, socket_reads
from worker.batching import Batcher
from worker.consumer import ConsumerLoop, consumer_kwargs
from worker.decode_pool import DecodePool
from worker.evidence import EvidenceWriter
from worker.evidence_client import open_evidence_writer
from worker.halts import JudgingHalts
from worker.health import Health
from worker.inference import InferenceLoop
from worker.metrics import WorkerMetrics
from worker.model import ModelManager
from worker.offsets import OffsetTracker
from worker.pipeline import Pipeline
from worker.publish import AtLeastOncePublisher, Publisher, producer_kwargs
from worker.regions import RegionFinder
from worker.results import RecordFactory
from worker.settings import WorkerSettings
from worker.transactions import TransactionalPublisher


@dataclass
class WorkerParts:
    """Everything one running worker is made of (the model is loaded before these are built)."""

    pipeline: Pipeline
    decoder: DecodePool
    consumer_loop: ConsumerLoop
    inference: InferenceLoop
    evidence: Optional[EvidenceWriter] = None  # None: no evidence store configured

    @property
    def publisher(self) -> Publisher:
        """The publisher both loops use."""
        return self.pipeline.publisher

    @property
    def producer(self) -> KafkaProducer:
        """The producer in use now."""
        return self.pipeline.publisher.producer


def build_parts(settings: WorkerSettings, models: ModelManager, metrics: WorkerMetrics, health: Health,
                producer: Optional[KafkaProducer] = None) -> WorkerParts:
    """Create the producer, publisher, decode pool, both loops and what they share."""
    s = settings
    record_reader.install()  # a non-UTF-8 header name must not make poll() raise
    socket_reads.install()  # fewer, larger reads of the frames on the network thread
    eos = s.processing_guarantee == "exactly_once"
    producer = producer or KafkaProducer(**producer_kwargs(s, transactional=eos))

    def new_producer() -> KafkaProducer:  # at-least-once replaces a producer stuck in a fatal state
        return KafkaProducer(**producer_kwargs(s, transactional=False))

    tracker = OffsetTracker()
    holder: dict[str, ConsumerLoop] = {}  # the publisher needs the loop's group metadata, the loop the publisher
    if eos:
        publisher: Publisher = TransactionalPublisher(
            producer, tracker, metrics, lambda: holder["loop"].group_metadata, s.publish_retry_backoff_s,
            s.transaction_retry_window_s)
    else:
        publisher = AtLeastOncePublisher(producer, tracker, metrics, s.publish_retry_backoff_s,
                                         new_producer=new_producer)
    health.alarms.append(publisher.describe)
    halts = JudgingHalts(metrics, s.halt_retry_s)
    health.alarms.append(halts.describe)
    pipeline = Pipeline(tracker, publisher, metrics, health, halts)
    decoder = DecodePool(s, lambda: (models.current.input_height, models.current.input_width))
    loop = holder["loop"] = ConsumerLoop(s, pipeline, lambda: KafkaConsumer(**consumer_kwargs(s)), decoder)
    evidence = open_evidence_writer(s, metrics.evidence)
    factory = RecordFactory(s.results_topic, s.dead_letter_topic, s.instance_id, s.dead_letter_max_value_bytes,
                            s.max_record_bytes)
    batcher = Batcher(pipeline.items, s.max_batch_size, s.max_batch_wait_ms, decode_timeout_s=s.decode_timeout_s,
                      on_decode_timeout=decoder.replace_stuck)
    inference = InferenceLoop(pipeline, batcher, models,
                              factory, s.batch_buckets(), s.size_mismatch_policy, halts,
                              regions=RegionFinder(s.max_regions, s.region_level),
                              on_judged=evidence.on_judged if evidence is not None else None)
    return WorkerParts(pipeline, decoder, loop, inference, evidence)


def start_inference(parts: WorkerParts) -> threading.Thread:
    """Run the inference loop on its own thread."""
    thread = threading.Thread(target=parts.inference.run, name="inference", daemon=True)
    thread.start()
    return thread

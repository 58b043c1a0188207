"""The two commands wired to real Kafka clients, with errors turned into clear messages and exit codes."""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional, TextIO

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from line_runtime.kafka_check import KafkaConnectError, check_kafka_connection
from producer_sim.exit_codes import EXIT_BAD_INPUT, EXIT_KAFKA, EXIT_LOST, EXIT_OK
from producer_sim.run import LineRun, format_summary
from producer_sim.settings import SimSettings
from producer_sim.sources import SourceError, build_pool
from producer_sim.watch import TopicMissing, Watcher, assign, consumer_kwargs, format_watch_summary

Outcome = tuple[int, Optional[dict], str]


def _unreachable(settings: SimSettings, exc: BaseException) -> str:
    return (f"error: no Kafka broker answered at {settings.kafka_bootstrap_servers} within "
            f"{settings.kafka_connect_timeout_s:g}s ({type(exc).__name__}: {exc}). Check that the broker runs and set "
            "SIM_KAFKA_BOOTSTRAP_SERVERS or --bootstrap-servers (and SIM_KAFKA_CONNECT_TIMEOUT_S to wait longer).")


def open_producer(settings: SimSettings) -> KafkaProducer:
    """A connected producer; raise KafkaError within kafka_connect_timeout_s when no broker answers."""
    return KafkaProducer(**settings.producer_kwargs())


def _preflight(settings: SimSettings) -> Optional[str]:
    """None when Kafka answers; else the error text (auth/TLS causes in seconds, not after the timeout)."""
    try:
        check_kafka_connection(settings)
    except KafkaConnectError as exc:
        return f"error: {exc}"
    return None


def run(settings: SimSettings, stop: threading.Event, status_to: Optional[TextIO]) -> Outcome:
    """`producer_sim run`: build the frame pool, connect, publish, flush, summarise."""
    started = time.monotonic()
    try:
        pool = build_pool(settings)
    except (SourceError, ValueError) as exc:
        return EXIT_BAD_INPUT, None, f"error: {exc}"
    if status_to is not None:
        print(f"frame pool ready in {time.monotonic() - started:.1f}s: {len(pool.frames)} {pool.encoding.value} "
              f"frames from {pool.description}", file=status_to)
    problem = _preflight(settings)
    if problem:
        return EXIT_KAFKA, None, problem
    try:
        producer = open_producer(settings)
    except KafkaError as exc:
        return EXIT_KAFKA, None, _unreachable(settings, exc)
    try:
        try:
            producer.partitions_for(settings.frames_topic)
        except KafkaError as exc:
            return EXIT_KAFKA, None, (f"error: frames topic '{settings.frames_topic}' is not available on "
                                      f"{settings.kafka_bootstrap_servers} ({type(exc).__name__}: {exc}); create it "
                                      "or set SIM_FRAMES_TOPIC / --topic")
        try:
            line = LineRun(settings, pool, producer, stop, status_to)
        except ValueError as exc:
            return EXIT_BAD_INPUT, None, f"error: {exc}"
        summary = line.run()
    finally:
        producer.close(timeout=settings.flush_timeout_s)
    code = EXIT_LOST if summary.lost else EXIT_OK
    return code, summary.to_dict(), format_summary(summary)


def watch(settings: SimSettings, stop: threading.Event, status_to: Optional[TextIO], until: Optional[int],
          duration_s: Optional[float], from_beginning: bool) -> Outcome:
    """`producer_sim watch`: tail results and dead letters until a stop condition, then summarise."""
    problem = _preflight(settings)
    if problem:
        return EXIT_KAFKA, None, problem
    try:
        consumer = KafkaConsumer(**consumer_kwargs(settings))
    except KafkaError as exc:
        return EXIT_KAFKA, None, _unreachable(settings, exc)
    try:
        try:
            assign(consumer, settings, from_beginning, status_to)
        except TopicMissing as exc:
            return EXIT_KAFKA, None, f"error: {exc}"
        # Printed even with --quiet: scripts wait for this line before they start producing.
        where = "their beginning" if from_beginning else "now on"
        print(f"watching {settings.results_topic} and {settings.dead_letter_topic} from {where}", file=sys.stderr,
              flush=True)
        summary = Watcher(settings, consumer, stop, until, duration_s, status_to).run()
    finally:
        consumer.close()
    code = EXIT_LOST if summary["until_reached"] is False else EXIT_OK
    return code, summary, format_watch_summary(summary)

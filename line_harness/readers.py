"""Read what the line wrote: a topic's JSON records, its end offsets and event ids, a group's committed
offsets, and a background reader of the results and dead-letter topics.

Every function takes `kafka`: a bootstrap "host:port" (a plaintext broker, as in most tests) or the
kafka-python keyword arguments of a broker (bootstrap and security: `LocalKafka.client_kwargs()`).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Optional, Union

Kafka = Union[str, Mapping]


def client_kwargs(kafka: Kafka) -> dict:
    """kafka-python keyword arguments for `kafka` (see the module docstring)."""
    return {"bootstrap_servers": [kafka]} if isinstance(kafka, str) else dict(kafka)


@contextmanager
def _consumer(kafka: Kafka, *topics: str, **kwargs) -> Iterator:
    """A KafkaConsumer that never commits (no group unless one is given), closed on exit."""
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(*topics, **client_kwargs(kafka), **{"group_id": None, "enable_auto_commit": False,
                                                                 **kwargs})
    try:
        yield consumer
    finally:
        consumer.close()


def _isolation(read_committed: bool) -> str:
    return "read_committed" if read_committed else "read_uncommitted"


def read_topic(kafka: Kafka, topic: str, want: int, timeout_s: float = 60.0, read_committed: bool = False,
               until: Optional[Callable[[list[dict]], bool]] = None) -> list[dict]:
    """JSON values of a topic from the start; returns once `want` records are read (or `until(records)`
    is true) or the time is up."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    with _consumer(kafka, topic, auto_offset_reset="earliest", consumer_timeout_ms=1000,
                   isolation_level=_isolation(read_committed)) as consumer:
        while len(out) < want and time.monotonic() < deadline and not (until and until(out)):
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(json.loads(r.value) for r in batch)
    return out


def read_to_end(kafka: Kafka, topic: str, read_committed: bool = False, idle_s: float = 3.0,
                timeout_s: float = 120.0) -> list[dict]:
    """JSON values of every record of a topic, read from offset 0 to the end offsets of now."""
    from kafka import TopicPartition
    with _consumer(kafka, isolation_level=_isolation(read_committed), max_partition_fetch_bytes=8 << 20) as consumer:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[dict] = []
        deadline = time.monotonic() + timeout_s
        last_progress = time.monotonic()
        while time.monotonic() < deadline:
            if all(consumer.position(tp) >= ends[tp] for tp in parts):
                break  # with read_committed, position passes the transaction markers too
            got = consumer.poll(timeout_ms=500, max_records=5000)
            out.extend(json.loads(r.value) for records in got.values() for r in records)
            if got:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_s:
                break  # an open (never committed) transaction can hold read_committed positions back
        return out


def end_offsets(kafka: Kafka, topic: str) -> dict[int, int]:
    """partition -> end offset (for a non-transactional topic: the records ever written to it)."""
    from kafka import TopicPartition
    with _consumer(kafka) as consumer:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: end for tp, end in consumer.end_offsets(parts).items()}


def record_count(kafka: Kafka, topic: str) -> int:
    """Records ever written to a non-transactional topic: the sum of its end offsets."""
    return sum(end_offsets(kafka, topic).values())


def event_ids(kafka: Kafka, topic: str) -> set[str]:
    """'<topic>-<partition>-<offset>' of every record ever written to a non-transactional topic (what
    event_id names), counted from offset 0 so that records deleted by retention still count."""
    return {f"{topic}-{p}-{o}" for p, end in end_offsets(kafka, topic).items() for o in range(end)}


def committed_offsets(kafka: Kafka, topic: str, group: str) -> dict[int, int]:
    """partition -> offset `group` has committed on topic (0 when none)."""
    from kafka import TopicPartition
    with _consumer(kafka, group_id=group) as consumer:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in consumer.partitions_for_topic(topic)}


def committed_lag(kafka: Kafka, topic: str, group: str) -> int:
    """Sum over partitions of (end offset - committed offset) for `group`."""
    committed = committed_offsets(kafka, topic, group)
    return sum(end - committed.get(p, 0) for p, end in end_offsets(kafka, topic).items())


class OutcomeReader:
    """Reads the results and dead-letter topics ({'results': ..., 'dlq': ...}) from their beginning on a
    background thread: `results` rows (event id, timings, receive time) and `dead` rows."""

    def __init__(self, kafka: Kafka, topics: Mapping[str, str]):
        self._kafka = kafka
        self._topics = topics
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.results: list[dict] = []
        self.dead: list[dict] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outcome-reader", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the results reader could not assign the topics within 30 s")

    def _run(self) -> None:
        from kafka import TopicPartition
        with _consumer(self._kafka, max_partition_fetch_bytes=8 << 20) as consumer:
            parts = []
            for key in ("results", "dlq"):
                deadline = time.monotonic() + 20
                while not consumer.partitions_for_topic(self._topics[key]) and time.monotonic() < deadline:
                    time.sleep(0.2)
                parts += [TopicPartition(self._topics[key], p) for p in consumer.partitions_for_topic(self._topics[key])]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            for tp in parts:
                consumer.position(tp)
            self._ready.set()
            while not self._stop.is_set():
                for tp, records in consumer.poll(timeout_ms=200, max_records=5000).items():
                    now_ns = time.time_ns()
                    rows = [self._row(tp.topic, r.value, now_ns) for r in records]
                    with self._lock:
                        (self.results if tp.topic == self._topics["results"] else self.dead).extend(rows)

    def _row(self, topic: str, value: bytes, now_ns: int) -> dict:
        doc = json.loads(value)
        if topic == self._topics["results"]:
            t = doc["timings"]
            return {"id": doc["event_id"], "published_ns": t["published_ns"], "received_ns": now_ns,
                    "latency_ms": t["capture_to_publish_ms"], "inference_ms": t["inference_ms"],
                    "batch": t["batch_size"], "backend": doc["model"]["backend"]}
        return {"id": doc["event_id"], "reason": doc["reason"], "dead_ns": doc["dead_lettered_ns"], "received_ns": now_ns}

    def counts(self) -> tuple[int, int]:
        """(distinct result ids, distinct dead-letter ids) seen so far."""
        with self._lock:
            return len({r["id"] for r in self.results}), len({d["id"] for d in self.dead})

    def wait_for(self, total: int, timeout_s: float, progress_timeout_s: float = 60.0,
                 alive: Optional[Callable[[], bool]] = None) -> bool:
        """Until distinct results + dead letters reach total; gives up after timeout_s, when progress stalls
        or when alive() (e.g. "the worker process still runs") turns false."""
        deadline = time.monotonic() + timeout_s
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline and (alive is None or alive()):
            seen = sum(self.counts())
            if seen >= total:
                return True
            if seen != last:
                last, last_change = seen, time.monotonic()
            elif time.monotonic() - last_change > progress_timeout_s:
                return False
            time.sleep(0.25)
        return False

    def close(self) -> None:
        """Stop the reading thread."""
        self._stop.set()
        self._thread.join(10)

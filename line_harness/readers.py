"""Read what the worker wrote: JSON records of a topic, and a group's committed lag."""

from __future__ import annotations

import json
import time


def read_topic(bootstrap: str, topic: str, want: int, timeout_s: float = 60.0,
               read_committed: bool = False, until=None) -> list[dict]:
    """JSON values of a topic from the start; returns once `want` records are read (or `until(records)`
    is true) or the time is up."""
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(topic, bootstrap_servers=[bootstrap], auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000,
                             isolation_level="read_committed" if read_committed else "read_uncommitted")
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < want and time.monotonic() < deadline and not (until and until(out)):
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(json.loads(r.value) for r in batch)
    finally:
        consumer.close()
    return out


def committed_lag(bootstrap: str, topic: str, group: str) -> int:
    """Sum over partitions of (end offset - committed offset) for `group`."""
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(parts)
        return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in parts)
    finally:
        consumer.close()

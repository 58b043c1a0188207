"""Minimal reproduction of the producer stall the `publish` scenario found (broker away past the
delivery timeout), with kafka-python alone and the worker's producer settings (idempotent, acks=all):

    python -m line_harness.chaos.producer_stall [--away-s 130]

1. a record is delivered; 2. the broker is frozen (SIGSTOP), so the next record's produce request
is written and times out (the batch is now "in retry"); 3. the frozen broker is SIGKILLed and
stays away past delivery_timeout_ms (120 s): the batch expires, and because it had been sent,
kafka-python resets the producer id; 4. the broker is started again and one more record is sent.

Seen on kafka-python 3.0.12 + Kafka 4.1: the last record is neither delivered nor failed within
90 s; the producer reports has_producer_id() False and has_fatal_error() False, so nothing marks it
as broken, and close() times out. Exit code 1 when it stalls, 0 when it recovers.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    """Run the four steps of the module docstring on a fresh local broker."""
    from kafka import KafkaProducer

    from line_harness.kafka.broker import LocalKafka, fetch_jars
    from line_harness.kafka.topics import TopicSpec, create_topics
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--away-s", type=float, default=130.0, help="broker away this long (> 120 s to expire)")
    args = p.parse_args(argv)
    fetch_jars()
    kafka = LocalKafka(Path(tempfile.mkdtemp(prefix="producer-stall-")), die_with_parent=True, heap="512m")
    kafka.start(timeout_s=120)
    events: list[tuple] = []
    try:
        create_topics(kafka.client_kwargs(), [TopicSpec("out", 1, {})])
        producer = KafkaProducer(**kafka.client_kwargs(), acks="all", enable_idempotence=True, linger_ms=5,
                                 max_block_ms=5000)
        producer.send("out", b"before").get(30)
        t0 = time.monotonic()
        os.kill(kafka.pid, signal.SIGSTOP)
        during = producer.send("out", b"during")
        during.add_errback(lambda e: events.append(("during failed", round(time.monotonic() - t0), repr(e)[:60])))
        time.sleep(40)  # > request_timeout_ms (30 s): the request timed out, the batch is in retry
        os.kill(kafka.pid, signal.SIGKILL)
        time.sleep(max(0.0, args.away_s - 40))
        kafka.start(timeout_s=120)
        after = producer.send("out", b"after")
        after.add_callback(lambda m: events.append(("after delivered", round(time.monotonic() - t0))))
        after.add_errback(lambda e: events.append(("after failed", round(time.monotonic() - t0), repr(e)[:60])))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(e[0].startswith("after") for e in events):
            time.sleep(1)
        manager = producer._transaction_manager  # private: the state that explains the stall
        stalled = not any(e[0].startswith("after") for e in events)
        print(f"events {events}; has_producer_id {manager.has_producer_id()}, fatal {manager.has_fatal_error()}"
              f" -> {'STALLED: the record after the outage was neither delivered nor failed in 90 s' if stalled else 'recovered'}")
        try:
            producer.close(timeout=1)
        except Exception as exc:  # noqa: BLE001 - a stalled producer cannot flush: that is the finding
            print(f"close: {exc!r}")
        return 1 if stalled else 0
    finally:
        kafka.stop(kill=True)


if __name__ == "__main__":
    sys.exit(main())

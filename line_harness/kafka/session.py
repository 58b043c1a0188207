"""The broker a benchmark or fault run talks to: the one KAFKA_BOOTSTRAP_SERVERS names, or a fresh
local broker that dies with the run and is removed after it."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from line_harness.kafka.broker import LocalKafka, fetch_jars

EXTERNAL_BROKER_ENV = "KAFKA_BOOTSTRAP_SERVERS"


@dataclass
class BrokerSession:
    """local: the broker this run started (None for an external one, which cannot be restarted);
    kafka_env: its KAFKA_* client settings; client_kwargs: the same as kafka-python arguments."""

    local: Optional[LocalKafka]
    kafka_env: dict[str, str]
    client_kwargs: dict


def start_broker(run_dir: Path) -> LocalKafka:
    """A fresh local broker in run_dir (dies with this process); the caller stops it."""
    fetch_jars()
    kafka = LocalKafka(run_dir, die_with_parent=True, heap="768m")
    kafka.start(timeout_s=90)
    return kafka


@contextmanager
def broker_session(run_dir: Path) -> Iterator[BrokerSession]:
    """The external broker (KAFKA_* settings) if KAFKA_BOOTSTRAP_SERVERS is set, else a local one in run_dir,
    stopped and deleted on exit."""
    if os.environ.get(EXTERNAL_BROKER_ENV):
        from line_runtime.settings import KafkaClientSettings, load_settings
        yield BrokerSession(None, {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")},
                            load_settings(KafkaClientSettings).kafka_client_kwargs())
        return
    broker = start_broker(run_dir)
    try:
        yield BrokerSession(broker, broker.client_settings_env(), broker.client_kwargs())
    finally:
        broker.stop()
        shutil.rmtree(broker.run_dir, ignore_errors=True)

"""Shared fixtures: one real Kafka broker per test run, a fresh topic and consumer group per test.

Set KAFKA_BOOTSTRAP_SERVERS (and, if needed, KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* ...) to run
against an existing broker instead. The local broker runs in its own process group and is
SIGKILLed by Linux if this pytest process dies, so no test run leaves a broker behind.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from line_harness.evidence_store.server import LocalObjectStore
from line_harness.kafka.broker import LocalKafka, fetch_jars
from line_harness.kafka.topics import TopicSpec, create_topics
from line_harness.paths import REPO

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXTERNAL_BROKER_ENV = "KAFKA_BOOTSTRAP_SERVERS"
TEST_RUN_DIRS = REPO / "run" / "pytest-kafka"
EVIDENCE_RUN_DIRS = REPO / "run" / "pytest-evidence"
BROKER_KEY = pytest.StashKey[LocalKafka]()
BROKER_READY_KEY = pytest.StashKey[str]()


def _remove_dead_run_dirs(parent: Path = TEST_RUN_DIRS) -> None:
    """Run dirs of earlier test runs whose pytest process is gone (their servers died with it)."""
    for path in parent.glob("*"):
        if path.name.isdigit() and not Path(f"/proc/{path.name}").exists():
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_broker(request):
    """The LocalKafka of this test run (None when KAFKA_BOOTSTRAP_SERVERS names an external broker)."""
    if os.environ.get(EXTERNAL_BROKER_ENV):
        request.config.stash[BROKER_READY_KEY] = f"external broker {os.environ[EXTERNAL_BROKER_ENV]}"
        yield None
        return
    _remove_dead_run_dirs()
    fetch_jars()
    run_dir = TEST_RUN_DIRS / str(os.getpid())
    kafka = LocalKafka(run_dir, die_with_parent=True)
    request.config.stash[BROKER_KEY] = kafka
    try:
        seconds = kafka.start(timeout_s=60)
        request.config.stash[BROKER_READY_KEY] = (f"local broker {kafka.bootstrap} (pid {kafka.pid}) "
                                                  f"ready in {seconds:.1f} s")
        yield kafka
    finally:
        kafka.stop()  # also runs on Ctrl-C: pytest tears session fixtures down on KeyboardInterrupt
        keep = request.session.testsfailed > 0
        shutil.rmtree(run_dir / "data" if keep else run_dir, ignore_errors=True)  # keep logs of a failed run


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker) -> str:
    """host:port of the broker every Kafka test talks to."""
    return os.environ.get(EXTERNAL_BROKER_ENV) or kafka_broker.bootstrap


@pytest.fixture(scope="session")
def kafka_client_kwargs(kafka_broker) -> dict:
    """kafka-python keyword arguments (bootstrap + security) for the broker in use."""
    if kafka_broker is not None:
        return kafka_broker.client_kwargs()
    from line_runtime.settings import KafkaClientSettings, load_settings
    return load_settings(KafkaClientSettings).kafka_client_kwargs()  # reads KAFKA_* from the environment


@pytest.fixture
def new_topic(kafka_client_kwargs):
    """Factory: new_topic(partitions=3, name_prefix="t", configs=None) creates a unique topic, deleted after."""
    created: list[str] = []

    def make(partitions: int = 3, name_prefix: str = "t", configs: dict | None = None) -> str:
        name = f"{name_prefix}-{uuid.uuid4().hex[:10]}"
        create_topics(kafka_client_kwargs, [TopicSpec(name, partitions, dict(configs or {}))])
        created.append(name)
        return name

    yield make
    if created:  # frames are big: give the disk back, but never fail a test over cleanup
        try:
            from kafka import KafkaAdminClient
            admin = KafkaAdminClient(**kafka_client_kwargs, bootstrap_timeout_ms=5000, request_timeout_ms=10000)
            try:
                admin.delete_topics(created, timeout_ms=10000)
            finally:
                admin.close()
        except Exception:
            pass


@pytest.fixture(scope="session")
def evidence_store():
    """A real S3 object store (SeaweedFS) for the run: .endpoint, .bucket, .access_key, .secret_key, .client(),
    .client_env("WORKER_"). Shared: a test that stops its store uses `new_evidence_store` instead."""
    _remove_dead_run_dirs(EVIDENCE_RUN_DIRS)
    run_dir = EVIDENCE_RUN_DIRS / str(os.getpid()) / "session"
    store = LocalObjectStore(run_dir, die_with_parent=True)
    try:
        store.start(timeout_s=120)
        yield store
    finally:
        store.stop(timeout_s=5)  # its graceful stop takes ~15 s; nothing in it needs keeping
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def new_evidence_store():
    """Factory: new_evidence_store() starts a store of this test's own (free to stop and start), removed after."""
    stores: list[LocalObjectStore] = []

    def make() -> LocalObjectStore:
        store = LocalObjectStore(EVIDENCE_RUN_DIRS / str(os.getpid()) / uuid.uuid4().hex[:10], die_with_parent=True)
        stores.append(store)
        store.start(timeout_s=120)
        return store

    yield make
    for store in stores:
        store.stop(timeout_s=5)
        shutil.rmtree(store.run_dir, ignore_errors=True)


@pytest.fixture
def new_group():
    """Factory: new_group() returns a consumer group id unique to this call."""
    return lambda: f"g-{uuid.uuid4().hex[:10]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the broker's log tail and its consumer-group events to the report of a failed test that used Kafka."""
    report = yield
    if report.failed and "kafka_broker" in getattr(item, "fixturenames", ()):
        kafka = item.config.stash.get(BROKER_KEY, None)
        if kafka is not None:
            report.sections.append(("local Kafka broker log (tail)", kafka.log_tail(60, without_deletions=True)))
            # Why a group rebalanced, and whom it dropped: the first question when frames went to the wrong worker.
            report.sections.append(("local Kafka broker: consumer-group events", kafka.group_events(40)))
    return report


def pytest_terminal_summary(terminalreporter, config):
    """Say which broker the Kafka tests talked to and how fast it started."""
    ready = config.stash.get(BROKER_READY_KEY, None)
    if ready:
        terminalreporter.write_line(f"Kafka: {ready}")

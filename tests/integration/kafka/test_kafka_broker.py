"""The local broker tooling itself: restart keeps data, no orphan broker, CLI start/status/stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from line_harness.kafka.broker import BrokerError, LocalKafka
from line_harness.paths import REPO
from line_harness.processes import free_port

CLI = [sys.executable, "-m", "line_harness.kafka"]


@pytest.fixture
def scratch_run_dir():
    """A run dir of its own under the git-ignored run/ folder, removed afterwards."""
    path = REPO / "run" / "pytest-kafka" / f"{os.getpid()}-scratch-{time.monotonic_ns()}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pid_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
                    reason="KAFKA_BOOTSTRAP_SERVERS names an external broker; this test restarts the local one")
def test_restart_keeps_topics_and_records(kafka_broker, kafka_client_kwargs, new_topic, new_group):
    assert kafka_broker is not None, "the local broker must be running to be restarted"
    topic = new_topic(partitions=2)
    producer = KafkaProducer(**kafka_client_kwargs, acks="all")
    for i in range(20):
        producer.send(topic, key=b"cam-%d" % (i % 2), value=b"frame-%d" % i)
    producer.flush(timeout=30)
    producer.close()
    pid_before = kafka_broker.pid

    seconds = kafka_broker.restart(timeout_s=60)

    assert kafka_broker.pid not in (None, pid_before)
    assert seconds < 60
    consumer = KafkaConsumer(topic, **kafka_client_kwargs, group_id=new_group(), auto_offset_reset="earliest")
    values, deadline = [], time.monotonic() + 30
    while len(values) < 20 and time.monotonic() < deadline:
        values += [r.value for batch in consumer.poll(timeout_ms=500).values() for r in batch]
    consumer.close()
    assert sorted(values) == sorted(b"frame-%d" % i for i in range(20))


def test_killing_the_test_process_kills_its_broker(scratch_run_dir):
    # What a SIGKILLed (or crashed) pytest looks like to a broker it started: its parent vanishes.
    script = ("from line_harness.kafka.broker import LocalKafka;"
              f"k = LocalKafka({str(scratch_run_dir)!r}, die_with_parent=True); k.start(timeout_s=60);"
              "print(k.pid, flush=True); import time; time.sleep(300)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        broker_pid = int(parent.stdout.readline())
        assert Path(f"/proc/{broker_pid}").exists()
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    assert _pid_gone(broker_pid, timeout_s=10), f"broker pid {broker_pid} outlived the process that started it"


def test_cli_start_status_stop_and_stale_pid_file(scratch_run_dir):
    run = CLI + ["--run-dir", str(scratch_run_dir)]
    port = free_port()
    started = subprocess.run(run + ["start", "--port", str(port)], capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        assert f"127.0.0.1:{port}" in started.stdout
        pid = int((scratch_run_dir / "kafka.pid").read_text())
        assert subprocess.run(run + ["status"], capture_output=True).returncode == 0
        again = subprocess.run(run + ["start", "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert "already running" in again.stdout
    finally:
        stopped = subprocess.run(run + ["stop"], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and _pid_gone(pid, timeout_s=5)
    assert subprocess.run(run + ["status"], capture_output=True).returncode == 1

    # A stale pid file naming a live process that is not this broker must not kill that process.
    (scratch_run_dir / "kafka.pid").write_text(f"{os.getpid()}\n")
    stale = subprocess.run(run + ["stop"], capture_output=True, text=True, timeout=30)
    assert stale.returncode == 0 and "no broker running" in stale.stdout
    assert not (scratch_run_dir / "kafka.pid").exists()


def test_start_names_the_busy_port(scratch_run_dir):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        kafka = LocalKafka(scratch_run_dir, port=port)
        with pytest.raises(BrokerError, match=f"port {port}.*--port"):
            kafka.start(timeout_s=10)

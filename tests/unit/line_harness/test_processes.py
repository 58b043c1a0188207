"""Process helpers of the harness: ports, /proc readings, a child's stop, the topic readers' arguments."""

from __future__ import annotations

import os
import signal
import socket
import sys

from line_harness.paths import REPO
from line_harness.processes import Child, cpu_seconds, free_port, machine_busy_seconds, port_is_free, rss_bytes
from line_harness.readers import client_kwargs


def test_a_listening_port_is_not_free_and_free_port_avoids_it():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not port_is_free(busy)
        other = free_port(preferred=busy)
        assert other != busy and port_is_free(other)
    assert free_port(preferred=busy) == busy  # closed again: the preferred port is taken when free


def test_proc_readings_of_this_process():
    assert cpu_seconds(os.getpid()) > 0
    assert rss_bytes(os.getpid()) > 10 << 20


def test_machine_busy_seconds_count_this_process_spinning():
    import time
    before_machine, before_own = machine_busy_seconds(), time.process_time()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # one core busy for 0.3 s
        pass
    own = time.process_time() - before_own
    # the machine was busy at least as long as this process (less one clock tick of rounding)
    assert machine_busy_seconds() - before_machine >= own - 0.02


def test_child_stop_ends_the_process_group_and_keeps_the_log(tmp_path):
    cmd = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    child = Child("sleeper", cmd, dict(os.environ), tmp_path / "sleeper.log", REPO)
    assert child.running()
    assert child.stop(grace_s=5) == -signal.SIGTERM
    assert not child.running()


def test_readers_take_a_bootstrap_or_client_kwargs():
    assert client_kwargs("h:1") == {"bootstrap_servers": ["h:1"]}
    kw = {"bootstrap_servers": ["h:2"], "security_protocol": "SASL_SSL"}
    assert client_kwargs(kw) == kw and client_kwargs(kw) is not kw

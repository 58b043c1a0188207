"""The fleet supervisor (WORKER_PROCESSES > 1) with real child processes that stand in for workers.

The children here are small HTTP servers speaking the worker's /metrics, /healthz and /readyz (a
Kafka-free stand-in, so the supervisor's own rules are tested in seconds); the real worker under a
fleet, on the real broker, is tests/integration/worker/test_worker_fleet.py.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from line_runtime.settings import load_settings
from worker.fleet import PROCESS_LABEL, Fleet, child_env, merge_metrics
from worker.settings import WorkerSettings

# A stand-in child: serves the worker's endpoints on WORKER_METRICS_PORT; READY_AFTER_S, EXIT_AFTER_S
# and EXIT_CODE shape its life; it exits 0 on SIGTERM after writing "stopped" to its stdout.
CHILD = textwrap.dedent('''
    import os, signal, sys, threading, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    started = time.monotonic()
    index = os.environ["WORKER_INSTANCE_ID"].rsplit("-", 1)[1]
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            ready = time.monotonic() - started > float(os.environ.get("READY_AFTER_S", "0"))
            if self.path == "/metrics":
                body = (f'# HELP frames_total Frames.\\n# TYPE frames_total counter\\n'
                        f'frames_total{{line="l1"}} {int(index) + 1}\\n').encode()
                code = 200
            else:
                code = 200 if (self.path == "/healthz" or ready) else 503
                body = b"ok" if code == 200 else b"warming up"
            self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a): pass
    server = HTTPServer(("127.0.0.1", int(os.environ["WORKER_METRICS_PORT"])), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    def stop(*_):
        print("stopped", flush=True); sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    exit_after = float(os.environ.get("EXIT_AFTER_S", "0"))
    while True:
        time.sleep(0.05)
        if exit_after and time.monotonic() - started > exit_after:
            sys.exit(int(os.environ.get("EXIT_CODE", "0")))
''')


def _settings(monkeypatch, processes=2, **env):
    monkeypatch.setenv("WORKER_PROCESSES", str(processes))
    monkeypatch.setenv("WORKER_INSTANCE_ID", "pod-a")
    monkeypatch.setenv("WORKER_METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("WORKER_METRICS_PORT", "0")
    monkeypatch.setenv("WORKER_SHUTDOWN_GRACE_S", "5")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings(WorkerSettings)


def _start(fleet):
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=fleet.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while fleet.http is None or len(fleet._children) < fleet.settings.processes:
        assert time.monotonic() < deadline, "the fleet did not start its children"
        time.sleep(0.05)
    return thread, result


def _get(fleet, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{fleet.http.port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_child_env_gives_each_process_its_own_id_and_loopback_port(monkeypatch):
    env = child_env(_settings(monkeypatch), 1, 9501, base={"WORKER_PROCESSES": "4", "PATH": "/bin"})
    assert env["WORKER_PROCESSES"] == "1" and env["WORKER_INSTANCE_ID"] == "pod-a-1"
    assert (env["WORKER_METRICS_HOST"], env["WORKER_METRICS_PORT"]) == ("127.0.0.1", "9501")
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["PATH"] == "/bin"


def test_child_env_gives_each_process_its_share_of_the_pods_cpus(monkeypatch):
    env = child_env(_settings(monkeypatch, processes=4, WORKER_CPUS="8"), 0, 9501)
    assert env["WORKER_MODEL_THREADS"] == "2"  # the child sees WORKER_PROCESSES=1, so the share is computed here
    env = child_env(_settings(monkeypatch, processes=4, WORKER_CPUS="2"), 0, 9501)
    assert env["WORKER_MODEL_THREADS"] == "1"
    env = child_env(_settings(monkeypatch, processes=4, WORKER_MODEL_THREADS="3"), 0, 9501)
    assert env["WORKER_MODEL_THREADS"] == "3"  # an explicit choice is passed on


def test_merged_metrics_keep_every_process_apart():
    texts = []
    for value in (3, 5):
        registry = CollectorRegistry()
        Counter("inspection_frames_judged_total", "Frames.", ["line"], registry=registry).labels("l1").inc(value)
        texts.append((str(value), generate_latest(registry).decode()))
    [family] = [f for f in merge_metrics(texts) if f.name == "inspection_frames_judged"]
    totals = {s.labels[PROCESS_LABEL]: s.value for s in family.samples if s.name.endswith("_total")}
    assert totals == {"3": 3.0, "5": 5.0}


def test_ready_only_when_every_process_is_and_metrics_carry_the_process_label(monkeypatch, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    monkeypatch.setenv("READY_AFTER_S", "1.5")
    fleet = Fleet(_settings(monkeypatch), command=[sys.executable, str(script)])
    thread, result = _start(fleet)
    try:
        deadline = time.monotonic() + 15
        while _get(fleet, "/healthz")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        code, text = _get(fleet, "/readyz")
        if code == 200:  # the machine was slow enough for the children to be ready already
            assert text.count("ok") == 2
        else:
            assert code == 503 and "warming up" in text
        while _get(fleet, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, _get(fleet, "/readyz")
            time.sleep(0.1)
        status, body = _get(fleet, "/metrics")
        assert status == 200
        assert 'frames_total{line="l1",process="0"} 1.0' in body
        assert 'frames_total{line="l1",process="1"} 2.0' in body
    finally:
        fleet.request_stop()
        thread.join(30)
    assert result["code"] == 0
    assert all(child.returncode == 0 for child in fleet._children)  # each got one SIGTERM and stopped cleanly


def test_a_dying_process_stops_the_others_and_the_pod_exits_with_its_code(monkeypatch, tmp_path):
    script = tmp_path / "child.py"
    # Process 0 exits with code 3 (as a worker does when Kafka refuses it); process 1 would run forever.
    script.write_text(CHILD.replace('exit_after = float(os.environ.get("EXIT_AFTER_S", "0"))',
                                    'exit_after = 1.0 if index == "0" else 0.0'))
    monkeypatch.setenv("EXIT_CODE", "3")
    fleet = Fleet(_settings(monkeypatch), command=[sys.executable, str(script)])
    thread, result = _start(fleet)
    thread.join(30)
    assert not thread.is_alive()
    assert result["code"] == 3
    assert fleet._children[1].returncode == 0  # stopped by the supervisor's SIGTERM, not left behind


def test_processes_setting_is_validated(monkeypatch):
    from line_runtime.settings import SettingsError
    monkeypatch.setenv("WORKER_PROCESSES", "0")
    with pytest.raises(SettingsError, match="WORKER_PROCESSES"):
        load_settings(WorkerSettings)


def test_a_signal_to_the_supervisor_is_forwarded_once(monkeypatch, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    fleet = Fleet(_settings(monkeypatch, processes=3), command=[sys.executable, str(script)])
    thread, result = _start(fleet)
    time.sleep(0.5)
    fleet.request_stop()  # what the SIGTERM handler in worker/__main__.py calls
    thread.join(30)
    assert result["code"] == 0
    assert [c.returncode for c in fleet._children] == [0, 0, 0]  # each stopped by its SIGTERM handler

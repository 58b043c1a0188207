"""`make demo` for real: deploy/demo.sh starts its own broker, worker, simulator, watch and Prometheus, shows
non-zero throughput and results, and leaves no process behind: with its own broker when its time is up,
and with an existing broker (KAFKA_BOOTSTRAP_SERVERS, which it must leave running) on Ctrl-C.

CI speed: DEMO_MODEL=tiny (a blob detector built in seconds) instead of the quick EfficientNet model,
which the default `make demo` trains once (a few minutes). Every process the demo starts inherits a
marker environment variable, so "nothing left behind" is checked over all processes, not only the
ones the demo knows about.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from line_harness.paths import REPO

DEMO = REPO / "deploy" / "demo.sh"
MARKER = "LINE_INSPECTION_DEMO_TEST"

pytestmark = pytest.mark.timeout(300)


def _demo_env(run_dir: Path, marker: str, duration_s: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "WORKER_", "SIM_"))}
    env.update(DEMO_MODEL="tiny", DEMO_DURATION_S=str(duration_s), DEMO_RUN_DIR=str(run_dir),
               DEMO_FPS="4", DEMO_CORRUPT_RATE="0.05", DEMO_DRAIN_S="20", **{MARKER: marker})
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        env["DEMO_TOPIC_PREFIX"] = f"test-{marker[:8]}-"  # an external broker: keep clear of its topics
    return env


def _processes_with(marker: str) -> list[str]:
    """Command lines of live processes whose environment carries the marker."""
    found = []
    needle = f"{MARKER}={marker}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                found.append(f"{proc.name}: " + (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:160])
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def _assert_nothing_left(marker: str) -> None:
    deadline = time.monotonic() + 5  # the kernel reaps killed groups asynchronously
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker) == []


def test_demo_runs_to_completion_with_results_and_leaves_nothing_behind(tmp_path):
    marker = uuid.uuid4().hex
    run_dir = tmp_path / "demo"
    t0 = time.monotonic()
    done = subprocess.run(["bash", str(DEMO)], env=_demo_env(run_dir, marker, 25), cwd=tmp_path,
                          capture_output=True, text=True, timeout=280)
    took = time.monotonic() - t0
    out = done.stdout
    assert done.returncode == 0, (f"demo exited {done.returncode} after {took:.0f}s:\n{out[-4000:]}\n"
                                  f"{done.stderr[-3000:]}")
    _assert_nothing_left(marker)

    # What a user reads: where /metrics is, live numbers, and a summary with non-zero throughput.
    assert re.search(r"metrics: http://127\.0\.0\.1:\d+/metrics", out), out[-3000:]
    assert re.search(r"\] results [1-9]\d* \(", out), "no live `watch` line with results:\n" + out[-3000:]
    m = re.search(r"throughput:\s+([\d.]+) frames/s judged \((\d+) results\)", out)
    assert m and float(m[1]) > 0 and int(m[2]) > 0, out[-3000:]
    assert "no process left behind" in out
    # The evidence store ran, the worker kept defects in it, and the operator page was announced.
    assert re.search(r"operator page: open http://127\.0\.0\.1:\d+/", out), out[-3000:]

    facts = json.loads((run_dir / "summary.json").read_text())
    assert facts["exit_code"] == 0 and facts["left_running"] == []
    assert {"worker", "watch", "simulator", "viewer", "evidence store", "broker"} <= set(facts["stopped"])
    assert facts["evidence"]["events_kept"] > 0, facts["evidence"]
    sim, watch = facts["simulator"], facts["watch"]
    assert sim["lost"] == 0 and sim["acked"] > 0
    assert watch["results"] > 0 and watch["results_per_s"] > 0
    # Every acknowledged frame got a result or a dead letter before the demo stopped (it drains first).
    assert watch["frames_accounted"] >= sim["acked"], (watch["frames_accounted"], sim["acked"])
    assert watch["truth"]["frames_with_truth"] == watch["results"]  # the simulator labels every frame
    assert facts["worker_metrics"]["accounted"] >= sim["acked"]
    if shutil.which("prometheus"):
        assert facts["prometheus"].get("frames_judged", 0) > 0, facts["prometheus"]


def test_ctrl_c_on_an_existing_broker_stops_everything_the_demo_started_but_not_the_broker(
        tmp_path, kafka_bootstrap, kafka_client_kwargs):
    """KAFKA_BOOTSTRAP_SERVERS path (the session's broker, topics under a unique prefix), then Ctrl-C."""
    marker = uuid.uuid4().hex
    run_dir = tmp_path / "demo"
    env = _demo_env(run_dir, marker, 600)
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, DEMO_TOPIC_PREFIX=f"test-{marker[:8]}-", DEMO_PROMETHEUS="false")
    proc = subprocess.Popen(["bash", str(DEMO)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 200
        for line in proc.stdout:  # wait until results flow, then press Ctrl-C
            lines.append(line)
            if re.search(r"\] results [1-9]", line) or time.monotonic() > deadline:
                break
        assert any(re.search(r"\] results [1-9]", ln) for ln in lines), "".join(lines[-40:])
        pages = [m[1] for ln in lines if (m := re.search(r"operator page: open (http://\S+)", ln))]
        assert pages, "".join(lines[-40:])
        with urllib.request.urlopen(pages[0], timeout=30) as resp:  # the page answers while the demo runs
            assert resp.status == 200 and b"<title>Defects" in resp.read()
        started = _processes_with(marker)
        assert any("-m worker" in p for p in started) and not any("kafka.Kafka" in p for p in started), started
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _delete_topics(kafka_client_kwargs, env["DEMO_TOPIC_PREFIX"])
    out = "".join(lines) + rest
    assert proc.returncode == 130, out[-3000:]
    assert f"existing broker {kafka_bootstrap}" in out, out[:2000]
    assert "SIGINT received, stopping" in out and "no process left behind" in out, out[-3000:]
    _assert_nothing_left(marker)
    facts = json.loads((run_dir / "summary.json").read_text())
    assert facts["interrupted"] is True and facts["left_running"] == [] and "broker" not in facts["stopped"]
    assert facts["watch"]["results"] > 0


def _delete_topics(client_kwargs: dict, prefix: str) -> None:
    """Remove the demo's topics from the shared test broker (frames are big)."""
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(**client_kwargs, request_timeout_ms=10000)
    try:
        names = [t for t in admin.list_topics() if t.startswith(prefix)]
        if names:
            admin.delete_topics(names, timeout_ms=10000)
    finally:
        admin.close()

"""End to end: a real Prometheus scrapes a real worker fed by producer_sim through the real broker, and every
PromQL expression we ship (dashboard panels, template variables, recording rules, alert rules) is run
against it over the HTTP API. A panel that shows nothing is a bug, so each must return data.

Alert conditions are empty while nothing is wrong, so for each alert the test runs the expression (it must
evaluate without error) and the non-alerting series it compares (ALERT_SIGNALS), which must return data.
The one alert this stream really triggers (dead letters arriving) must return data itself.
Prometheus is the Debian binary at /usr/bin/prometheus with the project's config and rules, 1s intervals.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
import time

import pytest

from line_harness.demo.prometheus import PrometheusServer
from line_harness.paths import REPO
from line_harness.processes import Child
from line_harness.tools.promql_inventory import all_expressions, dashboard_expressions, rule_expressions
from line_harness.worker_process import WorkerProcess

pytestmark = pytest.mark.timeout(240)

# Alert -> the series its condition compares; on a healthy line the condition is empty, these are not.
ALERT_SIGNALS = {
    "InspectionWorkerDown": ['up{job="line-inspection-worker"}'],
    "InspectionWorkerNotReady": ["inspection_ready"],
    "InspectionConsumerLagGrowing": ["topic:inspection_consumer_lag_records:sum",
                                     "delta(topic:inspection_consumer_lag_records:sum[10m])"],
    "InspectionLatencyObjectiveMissed": ["line:inspection_capture_to_publish_seconds:p99_5m"],
    "InspectionDeadLettersArriving": ["reason:inspection_frames_dead_lettered:increase5m"],
    "InspectionDefectRateJump": ["line:inspection_defect_ratio:rate5m", "line:inspection_defect_ratio:avg6h"],
    "InspectionCameraSilent": ["max_over_time(line_camera:inspection_frames_consumed:rate5m[6h])",
                               "line_camera:inspection_frames_consumed:rate5m"],
    "InspectionModelVersionMismatch": ["inspection_model_versions:count"],
    "InspectionWorkerBackpressure": ["avg_over_time(inspection_paused[10m])"],
    "InspectionJudgingHalted": ["inspection_judging_halted_partitions"],
    "InspectionPublishFailing": ["inspection_publish_failing"],
    "InspectionEvidenceMissing": ["reason:inspection_evidence_missing:increase5m"],
}
ALERTS_THIS_STREAM_TRIGGERS = {"InspectionDeadLettersArriving"}  # corrupt frames are sent on purpose
LABEL_VALUES = re.compile(r"^label_values\((?P<match>.+),\s*(?P<label>\w+)\)$")
METRIC_NAME = re.compile(r"[a-z_][a-z0-9_:]*[a-z0-9_]")


def _has_data(result: list[dict]) -> bool:
    """Non-empty and at least one finite value (a NaN-only result draws nothing either)."""
    return any(math.isfinite(float(r["value"][1])) for r in result)


def _empty(prom: PrometheusServer, exprs: list[str]) -> list[str]:
    out = []
    for expr in exprs:
        try:
            if not _has_data(prom.query(expr)):
                out.append(expr)
        except Exception as exc:  # a PromQL error is reported with the expression, not as a crash
            out.append(f"{expr}  [error: {exc}]")
    return out


def _template_variables() -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, label_values(...) definition) of every query variable."""
    out = []
    for path in sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json")):
        model = json.loads(path.read_text())
        for var in model["templating"]["list"]:
            if var.get("type") == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                out.append((model["uid"], var["name"], query))
    return out


@pytest.fixture
def live_stack(kafka_bootstrap, new_topic, new_group, tmp_path):
    """Worker (tiny model) + Prometheus (1s scrape) + simulator (2 lines x 2 cameras, truth, corrupt frames)."""
    from training.tiny_model import build_tiny_model
    models = tmp_path / "models"
    build_tiny_model(models, version=1, input_size=(128, 128))
    frames, results, dlq = new_topic(4, "frames"), new_topic(4, "results"), new_topic(1, "dlq")
    worker = WorkerProcess(kafka_bootstrap, models, frames, results, dlq, new_group(), tmp_path / "worker.log",
                           max_batch_size=8, max_batch_wait_ms=20, instance_id="e2e-worker")
    prom = sim = None
    try:
        worker.wait_ready(90)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIM_")}
        prom = PrometheusServer(tmp_path / "prometheus", [f"127.0.0.1:{worker.port}"], env, interval="1s")
        prom.start()
        sim = Child("simulator", [sys.executable, "-m", "producer_sim", "run", "--bootstrap-servers", kafka_bootstrap,
                                  "--topic", frames, "--lines", "2", "--cameras-per-line", "2", "--fps", "6",
                                  "--duration", "150", "--frame-size", "128x128", "--defect-rate", "0.3",
                                  "--corrupt-rate", "0.08", "--seed", "7"],
                    env, tmp_path / "simulator.log", REPO)
        yield prom, worker, sim
    finally:
        if sim is not None:
            sim.stop(20, first_signal=signal.SIGINT)
        if prom is not None:
            prom.stop()
        worker.stop()


def test_every_alert_names_its_underlying_signals():
    """A new alert must say which series it compares, and those series must be the ones its expression uses."""
    alerts = {e.name: e.expr for e in rule_expressions() if not e.must_return_data}
    assert set(ALERT_SIGNALS) == set(alerts), "ALERT_SIGNALS must list exactly the alerts in deploy/prometheus/rules"
    for name, signals in ALERT_SIGNALS.items():
        used = set(METRIC_NAME.findall(alerts[name]))
        for sig in signals:
            series = {m for m in METRIC_NAME.findall(sig) if "inspection" in m or m == "up"}
            assert series and series <= used, f"{name}: {sig} is not what `{alerts[name]}` compares"


def test_every_promql_expression_returns_data_from_a_live_worker(live_stack):
    prom, worker, sim = live_stack
    data_exprs = [e.expr for e in all_expressions() if e.must_return_data]
    signals = [s for sigs in ALERT_SIGNALS.values() for s in sigs]
    triggered = [e.expr for e in rule_expressions() if e.name in ALERTS_THIS_STREAM_TRIGGERS]
    # Series appear as frames flow (a verdict, a dead-letter reason); wait until all have two scrapes.
    deadline = time.monotonic() + 120
    pending = data_exprs + signals + triggered
    while pending and time.monotonic() < deadline:
        assert sim.running() or sim.proc.returncode == 0, f"simulator failed:\n{sim.log_tail()}"
        assert worker.proc.poll() is None, f"worker exited:\n{worker.log_tail()}"
        time.sleep(2)
        pending = _empty(prom, pending)
    assert not pending, ("expressions without data after 120 s of a live stream:\n  " + "\n  ".join(pending)
                         + f"\nworker log:\n{worker.log_tail(20)}")

    # Every target scraped, every rule evaluated without error.
    targets = prom.targets_up()
    assert [t["health"] for t in targets] == ["up"], targets
    rules = prom.rule_groups()
    broken = [(r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r.get("health") != "ok"]
    assert not broken, broken

    # Alert conditions: valid PromQL (an error would raise); the one this stream triggers has data.
    for expr in rule_expressions():
        if not expr.must_return_data:
            prom.query(expr.expr)

    # Template variables: each dropdown has values; then every panel with concrete values, as a user picks them.
    chosen: dict[str, str] = {}
    for uid, name, definition in _template_variables():
        m = LABEL_VALUES.match(definition)
        assert m, f"{uid} ${name}: unsupported variable query {definition!r}"
        match = m["match"].replace("$line", chosen.get("$line", ".*"))
        values = prom.label_values(m["label"], match)
        assert values, f"{uid} variable ${name} ({definition}) has no values"
        chosen[f"${name}"] = sorted(values)[0]
    assert chosen["$line"] == "line-1" and chosen["$camera"] == "line-1-cam-1"
    assert chosen["$instance"] == f"127.0.0.1:{worker.port}"
    concrete = [(e.name, e.expr) for e in dashboard_expressions(chosen)]
    empty = [f"{name}: {expr}" for name, expr in concrete if _empty(prom, [expr])]
    assert not empty, f"panels without data for {chosen}:\n  " + "\n  ".join(empty)

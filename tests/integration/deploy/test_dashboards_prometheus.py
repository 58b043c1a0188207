"""Every dashboard query and rule runs on a real Prometheus (the Debian binary) scraping the worker's real
metric definitions (worker/metrics.WorkerMetrics on a fresh registry), fed with synthetic traffic of
2 lines x 2 cameras. A panel or recording rule that returns nothing fails. The integrator's end-to-end
test does the same against a live worker fed by producer_sim through Kafka."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from line_harness.tools.chart_render import find_tool
from line_harness.tools.promql_inventory import RULES, all_expressions
from line_runtime.ports import free_ports
from worker.metrics import WorkerMetrics

CAMERAS = [(f"line-{ln}", f"line-{ln}-cam-{c}") for ln in (1, 2) for c in (1, 2)]


def feed(metrics: WorkerMetrics, stop: threading.Event, rng: np.random.Generator) -> None:
    """Synthetic worker traffic: batches of frames with ~5 % defects, truth labels, a few dead letters."""
    metrics.set_model("effnet-b0", "3", "litert")
    metrics.ready.set(1)
    metrics.paused.set(0)
    metrics.model_reloads.labels("success").inc()
    for p in range(3):
        metrics.consumer_lag.labels("line.frames", str(p)).set(0)
    while not stop.wait(0.1):
        batch = int(rng.integers(1, 9))
        metrics.batch_size.observe(batch)
        metrics.inference_seconds.observe(0.004 * batch)
        for _ in range(batch):
            line, camera = CAMERAS[int(rng.integers(len(CAMERAS)))]
            truth = "defect" if rng.random() < 0.05 else "ok"
            verdict = truth if rng.random() < 0.98 else ("ok" if truth == "defect" else "defect")
            metrics.frames_consumed.labels(line, camera).inc()
            metrics.frames_judged.labels(line, camera, verdict).inc()
            metrics.verdict_truth.labels(line, verdict, truth).inc()
            metrics.decode_seconds.observe(rng.uniform(0.001, 0.004))
            metrics.queue_wait_seconds.observe(rng.uniform(0.001, 0.02))
            metrics.capture_to_publish.labels(line).observe(rng.uniform(0.02, 0.2))
            metrics.defect_score.labels(line).observe(rng.uniform(0.6, 1.0) if verdict == "defect" else rng.uniform(0, 0.3))
            if verdict == "defect":  # the strongest region's 4x4 cell (worker/regions.py)
                metrics.defect_regions.labels(line, str(int(rng.integers(4))), str(int(rng.integers(4)))).inc()
        if rng.random() < 0.2:
            metrics.frames_dead_lettered.labels("truncated").inc()
        metrics.consumer_lag.labels("line.frames", str(int(rng.integers(3)))).set(int(rng.integers(0, 50)))
        metrics.commits.inc()
        if rng.random() < 0.05:
            metrics.publish_retries.inc()


def query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus scraping a WorkerMetrics registry every second; yields its base URL."""
    tmp = tmp_path_factory.mktemp("prom")
    metrics = WorkerMetrics(CollectorRegistry())
    exporter_port, prom_port = free_ports(2)
    server, _ = start_http_server(exporter_port, addr="127.0.0.1", registry=metrics.registry)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(metrics, stop, np.random.default_rng(0)), daemon=True)
    feeder.start()
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(p) for p in sorted(RULES.glob("*.rules.yml"))],
              "scrape_configs": [{"job_name": "line-inspection-worker",
                                  "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp / "prometheus.log", "w")
    proc = subprocess.Popen([find_tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # ready, and several scrapes and rule evaluations in
            try:
                n = query(base, 'count_over_time(up{job="line-inspection-worker"}[1m])')["data"]["result"]
                if n and float(n[0]["value"][1]) >= 6:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp / "prometheus.log").read_text()[-2000:]
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        stop.set()
        server.shutdown()


def test_every_panel_and_recording_rule_returns_data(prometheus):
    empty, errors = [], []
    for e in all_expressions({"$__rate_interval": "10s", "$__range": "1m"}, external=True):
        body = query(prometheus, e.expr)
        if body["status"] != "success":
            errors.append(f"{e.name}: {body}")
            continue
        values = [r["value"][1] for r in body["data"]["result"]]
        if e.must_return_data and not [v for v in values if v not in ("NaN", "+Inf", "-Inf")]:
            empty.append(f"{e.name}: {e.expr}")
    assert not errors, errors
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_live_precision_and_recall_are_plausible(prometheus):
    exprs = {e.name.rsplit(" / ", 1)[-1]: e.expr for e in all_expressions({"$__range": "1m"})
             if e.name.startswith("line-inspection-overview / Live")}
    # the feed judges 98 % of frames right at a 5 % defect rate: precision ~0.72, recall ~0.98
    for name, low in (("precision", 0.5), ("recall", 0.85)):
        value = float(query(prometheus, exprs[name])["data"]["result"][0]["value"][1])
        assert low < value <= 1.0, (name, value)


def test_no_alert_fires_on_healthy_traffic_except_dead_letters(prometheus):
    body = query(prometheus, "ALERTS")
    firing = {r["metric"]["alertname"] for r in body["data"]["result"]}
    assert firing <= {"InspectionDeadLettersArriving"}, firing

"""Grafana dashboards: the committed JSON is what deploy/grafana/build.py generates, the chart's copies are
in sync, UIDs and variables are stable, every panel query parses (real promtool) and uses only metrics the
worker exports, and the PromQL inventory for the end-to-end test lists everything."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml
from prometheus_client import CollectorRegistry

from line_harness.paths import REPO
from line_harness.tools.chart_render import find_tool  # noqa: E402
from line_harness.tools.promql_inventory import all_expressions, dashboard_expressions, rule_expressions  # noqa: E402
from worker.metrics import WorkerMetrics

DASHBOARDS = {p.name: json.loads(p.read_text()) for p in sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))}


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=60)


def exported_series() -> set[str]:
    names = set()
    for family in WorkerMetrics(CollectorRegistry()).registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}[family.type]
        names |= {family.name + s for s in suffixes}
    return names | {"up"}


def test_committed_dashboards_equal_the_generated_ones():
    proc = run_script("-m", "line_harness.grafana.build", "--check")
    assert proc.returncode == 0, proc.stderr


def test_chart_copies_of_rules_and_dashboards_are_identical():
    proc = run_script("-m", "line_harness.tools.sync_chart_files", "--check")
    assert proc.returncode == 0, proc.stderr


def test_stable_uids_and_variables():
    assert {d["uid"] for d in DASHBOARDS.values()} == {"line-inspection-overview", "line-inspection-internals"}
    overview = {v["name"]: v for v in DASHBOARDS["line-overview.json"]["templating"]["list"]}
    internals = {v["name"]: v for v in DASHBOARDS["worker-internals.json"]["templating"]["list"]}
    assert overview["datasource"]["type"] == "datasource" and overview["datasource"]["query"] == "prometheus"
    assert {"namespace", "job", "line", "camera"} <= set(overview) and {"namespace", "job", "instance"} <= set(internals)
    assert "$line" in overview["camera"]["definition"]  # cameras follow the chosen lines
    assert overview["namespace"]["definition"] == "label_values(inspection_ready, namespace)"
    assert overview["job"]["definition"] == "label_values(inspection_ready, job)"
    for dashboard in DASHBOARDS.values():
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_overview_shows_what_the_control_room_needs():
    exprs = " ".join(t["expr"] for p in DASHBOARDS["line-overview.json"]["panels"] for t in p["targets"])
    for needle in ("inspection_frames_consumed_total", 'verdict="defect"', "histogram_quantile(0.5,",
                   "histogram_quantile(0.95,", "histogram_quantile(0.99,", "inspection_batch_size_frames",
                   "inspection_consumer_lag_records", "inspection_frames_dead_lettered_total",
                   "inspection_model_info",
                   'inspection_verdict_truth_total{namespace=~"$namespace", job=~"$job", line=~"$line", verdict="defect", truth="defect"}'):
        assert needle in exprs, needle
    titles = " ".join(p["title"] for p in DASHBOARDS["line-overview.json"]["panels"]).lower()
    assert "precision" in titles and "recall" in titles


def test_panels_do_not_overlap_and_fit_the_grid():
    for name, dashboard in DASHBOARDS.items():
        cells = set()
        for p in dashboard["panels"]:
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, (name, p["title"])
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, (name, p["title"])
            cells |= mine
        assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_expression_parses_with_promtool(tmp_path):
    """promtool parses each dashboard query (variables filled in) as a recording rule: syntax errors fail here."""
    exprs = dashboard_expressions(external=True)
    rules = {"groups": [{"name": "dashboards", "rules": [{"record": f"check:expr_{i}", "expr": e.expr}
                                                          for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run([find_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(exprs)} rules found" in proc.stdout


# GPU series of NVIDIA's DCGM exporter (dcgm-exporter default counters) the GPU panels read.
DCGM_SERIES = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}
SERIES = re.compile(r"(?<![:\w])(inspection_[a-z_]+|up|DCGM_[A-Z_]+)(?![:\w(])(\{[^}]*\})?")


def test_queries_use_only_metrics_the_worker_or_the_dcgm_exporter_exports():
    known = exported_series() | DCGM_SERIES
    for e in dashboard_expressions(external=True):
        used = {name for name, _ in SERIES.findall(e.expr)}
        assert used and used <= known, f"{e.name}: unknown {sorted(used - known)}"


def test_every_series_is_scoped_to_the_chosen_release():
    """Each series selector names the namespace (and worker series the job): two releases never mix."""
    for dashboard in DASHBOARDS.values():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                for name, selector in SERIES.findall(target["expr"]):
                    assert 'namespace=~"$namespace"' in selector, (panel["title"], name)
                    if not name.startswith("DCGM_"):
                        assert 'job=~"$job"' in selector, (panel["title"], name)


def test_gpu_panels_show_utilisation_and_memory_per_worker_pod():
    panels = {p["title"]: p for p in DASHBOARDS["worker-internals.json"]["panels"]}
    util = panels["GPU utilisation per worker pod (DCGM exporter)"]
    memory = panels["GPU memory per worker pod (DCGM exporter)"]
    assert util["targets"][0]["legendFormat"] == "{{pod}}" and "DCGM_FI_DEV_GPU_UTIL" in util["targets"][0]["expr"]
    assert "DCGM_FI_DEV_FB_USED" in memory["targets"][0]["expr"]
    for target in util["targets"] + memory["targets"]:
        # only the GPUs of the selected release's worker pods
        assert "and on (namespace, pod) inspection_ready{" in target["expr"] and "by (pod)" in target["expr"]


def test_inventory_lists_every_panel_target_and_rule():
    targets = sum(len(p["targets"]) for d in DASHBOARDS.values() for p in d["panels"])
    rules = [r for f in (REPO / "deploy/prometheus/rules").glob("*.yml")
             for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    everything = all_expressions(external=True)
    assert len(everything) == targets + len(rules)
    gpu = [e for e in everything if "DCGM_" in e.expr]
    assert gpu and not any(e.must_return_data for e in gpu)  # may be empty without the DCGM exporter
    assert not [e for e in all_expressions() if "DCGM_" in e.expr]  # left out by default (a live worker has no GPU series)
    assert not [e for e in everything if "$" in e.expr.replace("$labels", "")]  # no variable left
    # alert conditions may be empty on a healthy system; panels and recording rules must show data
    assert {e.name for e in rule_expressions() if not e.must_return_data} == \
        {r["alert"] for r in rules if "alert" in r}
    custom = dashboard_expressions({"$__rate_interval": "2m"})
    assert any("[2m]" in e.expr for e in custom)

"""Prometheus config and rules, checked by the real promtool: config and rules syntax, the rule unit tests,
and that every alert has a severity, a summary and a runbook anchor that exists, and queries only metrics
the worker really exports."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from prometheus_client import CollectorRegistry

from line_harness.paths import REPO
from worker.metrics import WorkerMetrics

PROM = REPO / "deploy" / "prometheus"
from line_harness.tools.chart_render import find_tool  # noqa: E402

RULE_FILES = sorted((PROM / "rules").glob("*.rules.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.test.yml"))
REQUIRED_ALERTS = {"InspectionWorkerDown", "InspectionConsumerLagGrowing", "InspectionLatencyObjectiveMissed",
                   "InspectionDeadLettersArriving", "InspectionDefectRateJump", "InspectionCameraSilent",
                   "InspectionModelVersionMismatch"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([find_tool("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def alerts() -> list[dict]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "alert" in r]


def worker_metric_names() -> set[str]:
    """Every series name the worker can export, from its real metric definitions."""
    names = set()
    for family in WorkerMetrics(CollectorRegistry()).registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}[family.type]
        names |= {family.name + s for s in suffixes}
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (recording-rule names, which contain ':', are not metrics)."""
    return set(re.findall(r"(?<![:\w])(inspection_[a-z_]+|up)(?![:\w(])", expr))


def github_anchors(markdown: str) -> set[str]:
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, flags=re.M)}


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_promtool_check_config(config):
    proc = promtool("check", "config", str(PROM / config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "rules found" in proc.stdout  # the rule files were found and loaded


def test_promtool_check_rules():
    proc = promtool("check", "rules", *map(str, RULE_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rule_unit_tests_pass():
    assert TEST_FILES
    proc = promtool("test", "rules", *map(str, TEST_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_fail_when_a_threshold_drifts(tmp_path):
    """The unit tests pin behaviour: loosening the latency objective makes them fail."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    src = RULE_FILES[0].read_text().replace('p99_5m{job="line-inspection-worker"} > 0.5', 'p99_5m{job="line-inspection-worker"} > 2')
    assert src != RULE_FILES[0].read_text()
    (tmp_path / "rules" / RULE_FILES[0].name).write_text(src)
    for t in TEST_FILES:
        (tmp_path / "tests" / t.name).write_text(t.read_text())
    proc = subprocess.run([find_tool("promtool"), "test", "rules", *[str(tmp_path / "tests" / t.name) for t in TEST_FILES]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "InspectionLatencyObjectiveMissed" in proc.stdout + proc.stderr


def test_every_required_alert_exists_and_is_unit_tested_firing():
    names = {a["alert"] for a in alerts()}
    assert REQUIRED_ALERTS <= names
    fired = set()
    for t in TEST_FILES:
        for case in yaml.safe_load(t.read_text())["tests"]:
            fired |= {c["alertname"] for c in case.get("alert_rule_test", []) if c.get("exp_alerts")}
    assert names <= fired, f"alerts never shown firing in a unit test: {sorted(names - fired)}"


def test_every_alert_has_severity_summary_and_an_existing_runbook():
    anchors = github_anchors((REPO / "docs" / "runbooks.md").read_text())
    for a in alerts():
        assert a["labels"]["severity"] in {"critical", "warning", "info"}, a["alert"]
        assert a["annotations"]["summary"] and a["annotations"]["description"], a["alert"]
        page, _, anchor = a["annotations"]["runbook_url"].partition("#")
        assert page == "docs/runbooks.md" and anchor in anchors, f"{a['alert']}: no heading for #{anchor}"


def test_rules_query_only_metrics_the_worker_exports():
    exported = worker_metric_names() | {"up"}
    rules = [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    used = set()
    for r in rules:
        used |= metric_names(r["expr"])
    assert used, "no metric names found; the pattern is broken"
    unknown = used - exported - recorded
    assert not unknown, f"rules use metrics the worker does not export: {sorted(unknown)}"


def test_scrape_job_name_matches_what_the_rules_select():
    for config in ("prometheus.yml", "prometheus-compose.yml"):
        jobs = [j["job_name"] for j in yaml.safe_load((PROM / config).read_text())["scrape_configs"]]
        assert jobs == ["line-inspection-worker"]
    assert any('job="line-inspection-worker"' in a["expr"] for a in alerts())

"""Two releases of the chart in two namespaces, one Prometheus: the PrometheusRules that helm renders for each
are run together by the real promtool over series labelled the way the Prometheus Operator labels them
(job = the worker Service, namespace, pod). No alert, recording or comparison crosses the releases:
different model versions in the two namespaces are no mismatch, a small lag is not summed with the other
release's large one, and a worker that is down pages in its own namespace only."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from line_harness.tools.chart_render import CHART, find, find_tool, render

RELEASES = {"a": "line-a", "b": "line-b"}  # release -> namespace
MONITORING = CHART / "ci" / "monitoring-on-values.yaml"


def job(release: str) -> str:
    return f"{release}-line-inspection-worker"


def series(metric: str, release: str, pod: str, values: str, **labels: str) -> dict:
    """One input series of `release`, labelled as the operator scrapes it."""
    extra = "".join(f', {k}="{v}"' for k, v in labels.items())
    ns = RELEASES[release]
    return {"series": f'{metric}{{namespace="{ns}", job="{job(release)}", pod="{pod}", instance="{pod}"{extra}}}',
            "values": values}


INPUT = [
    # model versions: release a serves v3 on two pods, release b serves v4: each release is consistent
    series("inspection_model_info", "a", "a-w1", "1x30", name="effnet", version="3", backend="litert"),
    series("inspection_model_info", "a", "a-w2", "1x30", name="effnet", version="3", backend="litert"),
    series("inspection_model_info", "b", "b-w1", "1x30", name="effnet", version="4", backend="tensorflow"),
    # lag: a steady 10 records in a, 5000 and growing in b
    series("inspection_consumer_lag_records", "a", "a-w1", "10x30", topic="line.frames", partition="0"),
    series("inspection_consumer_lag_records", "b", "b-w1", "5000+100x30", topic="line.frames", partition="0"),
    # scrape health: b's only worker is down, a's are up
    series("up", "a", "a-w1", "1x30"),
    series("up", "a", "a-w2", "1x30"),
    series("up", "b", "b-w1", "0x30"),
    # a third scrape job in another namespace (e.g. a copy of the demo) is no business of either release
    {"series": 'inspection_model_info{namespace="other", job="line-inspection-worker", pod="x", name="effnet", '
               'version="9", backend="litert"}', "values": "1x30"},
]


def rendered_rules(tmp_path, release: str, transform=lambda text: text) -> str:
    """The PrometheusRule spec helm renders for `release`, written as a rules file; returns its name."""
    spec = find(render((MONITORING,), release=release, namespace=RELEASES[release]), "PrometheusRule")["spec"]
    for group in spec["groups"]:  # the operator gives each PrometheusRule its own file; promtool needs unique names
        group["name"] = f"{group['name']}/{release}"
    path = tmp_path / f"{release}.rules.yml"
    path.write_text(transform(yaml.safe_dump(spec, sort_keys=False)))
    return path.name


def run_promtool(tmp_path, rule_files: list[str], releases=tuple(RELEASES)) -> subprocess.CompletedProcess:
    firing = 'count by (alertname, namespace, job) (ALERTS{alertstate="firing"})'
    test = {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        # recording rules before the alerts that read them, as in deploy/prometheus/tests
        "group_eval_order": [f"line-inspection.{kind}/{r}" for kind in ("records", "alerts") for r in releases],
        "tests": [{
            "interval": "1m",
            "input_series": INPUT,
            "promql_expr_test": [
                # each release's lag is its own: 10 stays 10 (summed over both it would read 5,010 and more)
                {"expr": "topic:inspection_consumer_lag_records:sum", "eval_time": "20m", "exp_samples": [
                    {"labels": f'topic:inspection_consumer_lag_records:sum{{namespace="line-a", job="{job("a")}", '
                               f'topic="line.frames"}}', "value": 10},
                    {"labels": f'topic:inspection_consumer_lag_records:sum{{namespace="line-b", job="{job("b")}", '
                               f'topic="line.frames"}}', "value": 7000}]},
                {"expr": "inspection_model_versions:count", "eval_time": "20m", "exp_samples": [
                    {"labels": f'inspection_model_versions:count{{namespace="line-a", job="{job("a")}"}}', "value": 1},
                    {"labels": f'inspection_model_versions:count{{namespace="line-b", job="{job("b")}"}}', "value": 1}]},
                # exactly these alerts fire at 25 minutes: b's worker is down and b's lag grows; nothing in a,
                # no model-version mismatch anywhere
                {"expr": firing, "eval_time": "25m", "exp_samples": [
                    {"labels": f'{{alertname="InspectionWorkerDown", namespace="line-b", job="{job("b")}"}}', "value": 1},
                    {"labels": f'{{alertname="InspectionConsumerLagGrowing", namespace="line-b", job="{job("b")}"}}',
                     "value": 1}]},
            ],
        }],
    }
    (tmp_path / "two-releases.test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run([find_tool("promtool"), "test", "rules", "two-releases.test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_no_alert_or_recording_crosses_two_releases(tmp_path):
    proc = run_promtool(tmp_path, [rendered_rules(tmp_path, r) for r in RELEASES])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_check_fails_when_rules_aggregate_namespaces_away(tmp_path):
    """The same check on rules that drop namespace/job (the old behaviour) fails: the test can tell."""
    def unscoped(text: str) -> str:
        return text.replace("namespace, job, ", "").replace("by (namespace, job)", "")
    proc = run_promtool(tmp_path, [rendered_rules(tmp_path, "a", unscoped)], releases=("a",))
    assert proc.returncode != 0
    assert "inspection_model_versions:count" in proc.stdout + proc.stderr


@pytest.mark.parametrize("release", list(RELEASES))
def test_each_release_selects_only_its_own_series(release):
    spec = find(render((MONITORING,), release=release, namespace=RELEASES[release]), "PrometheusRule")["spec"]
    text = yaml.safe_dump(spec)
    other = next(r for r in RELEASES if r != release)
    assert f'namespace=\\"{RELEASES[release]}\\"' in text or f'namespace="{RELEASES[release]}"' in text
    assert RELEASES[other] not in text and job(other) not in text

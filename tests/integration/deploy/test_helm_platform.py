"""Rendered chart objects for a platform: per-release monitoring (rules scoped by namespace and job, alert
switches), ephemeral storage, KEDA wired like the worker, GPU taint toleration, NetworkPolicy and the
topics hook Job. Real helm, no cluster (tests/integration/cluster installs them)."""

from __future__ import annotations

import re

import pytest
import yaml

from line_harness.paths import REPO
from line_harness.tools.chart_render import (
    CHART,
    MINIMAL_SETS,
    container,
    find,
    pod_spec,
    render,
    scenarios,
    secret_refs,
    worker_config,
)

CI = {p.name.removesuffix("-values.yaml"): p for p in scenarios()}


def rule_spec(docs: list[dict]) -> dict:
    return find(docs, "PrometheusRule")["spec"]


def test_prometheus_rule_is_the_shared_file_scoped_to_the_release(rendered):
    """Same rules as deploy/prometheus/rules, every raw series selected by this release's namespace and job,
    absolute runbook links, extra labels on every alert, and switched-off alerts left out."""
    spec = rule_spec(rendered["monitoring-on"])
    source = yaml.safe_load((REPO / "deploy/prometheus/rules/line-inspection.rules.yml").read_text())
    src_rules = {r.get("record") or r["alert"]: r for g in source["groups"] for r in g["rules"]}
    got = {r.get("record") or r["alert"]: r for g in spec["groups"] for r in g["rules"]}
    assert set(src_rules) - set(got) == {"InspectionDefectRateJump"}  # switched off in ci/monitoring-on
    scope = 'namespace="inspection", job="li-line-inspection-worker"'
    for name, rule in got.items():
        expected = src_rules[name]["expr"].replace('job="line-inspection-worker"', scope)
        assert rule["expr"] == expected, name
        if "alert" in rule:
            page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
            assert page == "https://git.example.com/line-inspection/-/blob/main/docs/runbooks.md" and anchor, name
            assert rule["labels"]["team"] == "vision" and rule["labels"]["severity"] == src_rules[name]["labels"]["severity"]
    # every series read, raw or recorded by another rule, carries the release's selector
    read = re.findall(r"(?<![\w:])((?:[a-z_]+:)?(?:inspection_[a-z_]+|up)(?::[a-z_0-9]+)*)(\{[^}]*\})?(?=[\[\s)=]|$)",
                      " ".join(r["expr"] for r in got.values()))
    assert len(read) > 15 and all(scope in sel for _, sel in read), [r for r in read if scope not in r[1]]


def test_the_rule_job_follows_a_custom_job_label():
    sets = MINIMAL_SETS + ("prometheusRule.enabled=true", "prometheusRule.runbookUrl=https://wiki.example/rb",
                           "prometheusRule.job=inspection")
    spec = rule_spec(render(set_values=sets, release="b", namespace="line-b"))
    exprs = " ".join(r["expr"] for g in spec["groups"] for r in g["rules"])
    assert 'namespace="line-b", job="inspection"' in exprs and "line-inspection-worker" not in exprs


@pytest.mark.parametrize("scenario", ["defaults", *CI])
def test_every_container_requests_and_limits_ephemeral_storage(rendered, scenario):
    pods = [d["spec"]["template"]["spec"] for d in rendered[scenario] if d["kind"] in ("Deployment", "Job")]
    pods += [d["spec"] for d in rendered[scenario] if d["kind"] == "Pod"]
    for spec in pods:
        for c in spec["containers"] + spec.get("initContainers", []):
            assert "ephemeral-storage" in c["resources"]["requests"], c["name"]
            assert "ephemeral-storage" in c["resources"]["limits"], c["name"]


def gibibytes(quantity: str) -> float:
    units = {"Gi": 1.0, "Mi": 1 / 1024, "Ki": 1 / 1024 ** 2}
    return float(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("scenario", ["cpu", "keda"])
def test_worker_ephemeral_limit_covers_its_volumes(rendered, scenario):
    spec = pod_spec(rendered[scenario])
    sizes = sum(gibibytes(v["emptyDir"]["sizeLimit"]) for v in spec["volumes"] if "emptyDir" in v)
    assert gibibytes(container(rendered[scenario])["resources"]["limits"]["ephemeral-storage"]) >= sizes


def test_keda_reads_lag_like_the_worker_and_scales_gently(rendered):
    from worker.consumer import consumer_kwargs
    from worker.settings import WorkerSettings
    so = find(rendered["keda"], "ScaledObject")["spec"]
    worker_reset = consumer_kwargs(WorkerSettings.model_construct(kafka_bootstrap_servers="k:9092"))["auto_offset_reset"]
    assert so["triggers"][0]["metadata"]["offsetResetPolicy"] == worker_reset == "earliest"
    assert so["fallback"] == {"failureThreshold": 5, "replicas": 4}
    assert so["fallback"]["replicas"] <= so["maxReplicaCount"]
    behavior = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
    hpa = find(rendered["monitoring-on"], "HorizontalPodAutoscaler")["spec"]
    assert hpa["behavior"]["scaleUp"]["policies"][0]["value"] == 1


def test_keda_uses_the_worker_key_password():
    """An encrypted client key works for the scaler too: keyPassword comes from the same Secret key."""
    docs = render((CI["existing-secret"],), set_values=("autoscaling.keda.enabled=true",))
    refs = {r["parameter"]: r for r in find(docs, "TriggerAuthentication")["spec"]["secretTargetRef"]}
    assert set(refs) == {"username", "password", "ca", "cert", "key", "keyPassword"}
    worker_env = secret_refs(container(docs))
    assert {"name": refs["keyPassword"]["name"], "key": refs["keyPassword"]["key"]} == worker_env["WORKER_KAFKA_SSL_PASSWORD"]


def test_gpu_pods_tolerate_the_gpu_taint_by_default(rendered):
    for scenario in ("defaults", "keda"):
        tolerations = pod_spec(rendered[scenario])["tolerations"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert len(pod_spec(rendered["gpu"])["tolerations"]) == 1  # the user's own equal toleration is not doubled
    assert "tolerations" not in pod_spec(rendered["cpu"])


def test_network_policy_limits_ingress_to_monitoring_and_egress_to_kafka_store_dns(rendered):
    docs = rendered["keda"]
    worker = find(docs, "NetworkPolicy", "-worker")["spec"]
    (ingress,) = worker["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"][0] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert ingress["from"][1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"
    ports = {p["port"] for rule in worker["egress"] for p in rule["ports"]}
    assert ports == {53, 9093, 9000}  # DNS, kafka-0.kafka:9093, the MinIO endpoint
    kafka_rule = next(r for r in worker["egress"] if r["ports"][0]["port"] == 9093)
    assert kafka_rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}]
    clients = find(docs, "NetworkPolicy", "-kafka-clients")["spec"]
    assert "ingress" not in clients and {p["port"] for r in clients["egress"] for p in r["ports"]} == {53, 9093}
    assert not [d for d in rendered["defaults"] if d["kind"] == "NetworkPolicy"]


def test_topics_hook_runs_the_worker_image_before_install_and_upgrade(rendered):
    docs = rendered["keda"]
    job = find(docs, "Job", "-topics")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == container(docs)["image"] and c["command"] == ["python", "-m", "line_runtime.topics"]
    env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env["TOPICS_FRAMES_PARTITIONS"] == "8" and env["TOPICS_FRAMES_TOPIC"] == "line.frames"
    assert env["TOPICS_MAX_FRAME_BYTES"] == worker_config(docs)["WORKER_MAX_FRAME_BYTES"]
    # the chart-made Secret does not exist yet before install: the hook has its own copy, made first
    hook_secret = find(docs, "Secret", "-topics-kafka")
    assert env["TOPICS_KAFKA_SASL_PASSWORD"]["name"] == hook_secret["metadata"]["name"]
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert hook_secret["data"] == find(docs, "Secret", "-line-inspection-kafka")["data"]
    # with an existing Secret, that one is used directly
    existing = find(rendered["existing-secret"], "Job", "-topics")["spec"]["template"]["spec"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in existing["containers"][0]["env"] if "valueFrom" in e}
    assert refs == {"kafka-client-credentials"}


def test_topics_hook_env_loads_through_the_topic_settings(rendered, monkeypatch):
    from line_runtime.settings import load_settings
    from line_runtime.topics import TopicSettings
    c = find(rendered["cpu"], "Job", "-topics")["spec"]["template"]["spec"]["containers"][0]
    for e in c["env"]:
        monkeypatch.setenv(e["name"], e["value"])
    settings = load_settings(TopicSettings)
    assert settings.frames_partitions == 6 and settings.replication_factor == -1 and settings.create


def test_every_alert_has_a_switch_in_values():
    """Each alert of the rules file can be switched off by name (prometheusRule.alerts.<Alert>)."""
    source = yaml.safe_load((REPO / "deploy/prometheus/rules/line-inspection.rules.yml").read_text())
    alerts = {r["alert"] for g in source["groups"] for r in g["rules"] if "alert" in r}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["prometheusRule"]["alerts"]) == alerts

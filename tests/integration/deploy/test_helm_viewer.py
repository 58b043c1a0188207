"""The chart's operator page (viewer.enabled): off by default, its env loads through ViewerSettings, it reads
the evidence store the worker writes with the right credentials, its probes and Service reach the page, and
it refuses to render without an evidence store. Real helm, no cluster."""

from __future__ import annotations

import os

import pytest

from evidence_viewer.settings import ViewerSettings
from line_harness.tools.chart_render import MINIMAL_SETS, HelmError, container, find, pod_spec, render, worker_config
from line_runtime.settings import env_name, load_settings

SCENARIO = "existing-secret"  # the ci/ value set with an evidence store and the page on


def test_the_page_is_off_by_default(rendered):
    assert not [d for d in rendered["defaults"] if d["metadata"]["name"].endswith("-viewer")]


def test_the_pages_settings_load_and_point_at_the_workers_store(rendered, monkeypatch):
    docs = rendered[SCENARIO]
    data = find(docs, "ConfigMap", "-viewer")["data"]
    assert set(data) <= {env_name(ViewerSettings, f) for f in ViewerSettings.model_fields}
    for key in [k for k in os.environ if k.startswith("VIEWER_")]:
        monkeypatch.delenv(key)
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(ViewerSettings)
    worker = worker_config(docs)
    assert settings.endpoint == worker["WORKER_EVIDENCE_ENDPOINT"]
    assert settings.bucket == worker["WORKER_EVIDENCE_BUCKET"] and settings.host == "0.0.0.0"
    page = container(docs, "viewer")
    assert page["command"] == ["python", "-m", "evidence_viewer"]
    assert page["envFrom"] == [{"configMapRef": {"name": find(docs, "ConfigMap", "-viewer")["metadata"]["name"]}}]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in page["env"] if "valueFrom" in e}
    assert secrets == {name: {"name": "evidence-viewer-credentials", "key": name}
                       for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


def test_probes_and_service_reach_the_page_and_only_the_page(rendered):
    docs = rendered[SCENARIO]
    page = container(docs, "viewer")
    port = {p["name"]: p["containerPort"] for p in page["ports"]}["http"]
    assert port == int(find(docs, "ConfigMap", "-viewer")["data"]["VIEWER_PORT"])
    assert page["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert page["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = find(docs, "Service", "-viewer")
    labels = find(docs, "Deployment", "-viewer")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    worker_labels = find(docs, "Deployment", "-worker")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= worker_labels.items()  # never a worker behind the page
    assert pod_spec(docs, "viewer")["securityContext"]["runAsNonRoot"] is True


def test_the_page_falls_back_to_the_evidence_secret():
    docs = render(set_values=MINIMAL_SETS + ("evidence.endpoint=http://s3.storage:8333",
                                            "evidence.existingSecret=store-keys", "viewer.enabled=true"))
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container(docs, "viewer")["env"] if "valueFrom" in e}
    assert refs == {"store-keys"}


@pytest.mark.parametrize("sets, message", [
    (("viewer.enabled=true",), "viewer.enabled needs evidence.endpoint"),
    (("viewer.enabled=true", "evidence.endpoint=http://s3:8333", "viewer.settings.bucket=other"), "/viewer/settings"),
])
def test_render_refuses_a_page_without_a_store_or_with_its_own_store_settings(sets, message):
    with pytest.raises(HelmError) as err:
        render(set_values=MINIMAL_SETS + sets)
    assert message in str(err.value)

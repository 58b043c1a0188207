"""The Helm chart with the real helm binary: lint --strict, render every CI scenario, validate the rendered
objects against the Kubernetes API schemas (kubernetes-validate, offline), and the render-time guards.
No cluster is used: installing is the one thing not exercised here (see docs/deploy.md)."""

from __future__ import annotations

import subprocess

import kubernetes_validate
import pytest
import yaml

from line_harness.tools.chart_render import CHART, KUBE_VERSION, HelmError, find, find_tool, render, run_helm, scenarios  # noqa: E402

SCENARIOS = scenarios()
IDS = [p.name.removesuffix("-values.yaml") for p in SCENARIOS]
# Custom resources have no schema in kubernetes-validate; their key fields are checked in test_helm_objects.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}


def test_helm_is_installed():
    path = find_tool("helm")  # raises ToolMissing naming `make tools`
    out = subprocess.run([path, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("v3."), out


def test_every_required_scenario_exists():
    assert set(IDS) >= {"cpu", "gpu", "keda", "existing-secret", "monitoring-on"}


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=["defaults", *IDS])
def test_lint_strict(values):
    args = ["lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)] + (["-f", str(values)] if values else [])
    proc = run_helm(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[ERROR]" not in proc.stdout and "[WARNING]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=["defaults", *IDS])
def test_rendered_objects_match_kubernetes_api_schemas(values):
    docs = render((values,) if values else ())
    builtin = [d for d in docs if d["kind"] not in CUSTOM_KINDS]
    assert {"Deployment", "Service", "ConfigMap", "Pod"} <= {d["kind"] for d in builtin}
    for doc in builtin:
        # strict: unknown fields are errors too (a typo like `readinesProbe` would otherwise pass silently)
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_schema_validation_catches_a_broken_object():
    """The validator is really checking: a wrong type in a rendered Deployment is rejected."""
    deploy = find(render(), "Deployment", "-worker")
    deploy["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deploy, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("sets, message", [
    (("worker.replicaCount=7",), "worker.replicaCount (7) is above kafka.framesPartitions (6)"),
    (("autoscaling.keda.enabled=true", "autoscaling.keda.maxReplicaCount=12"),
     "autoscaling.keda.maxReplicaCount (12) is above kafka.framesPartitions (6)"),
    (("autoscaling.hpa.enabled=true", "autoscaling.hpa.maxReplicas=9"),
     "autoscaling.hpa.maxReplicas (9) is above kafka.framesPartitions (6)"),
    (("autoscaling.hpa.enabled=true", "autoscaling.keda.enabled=true"), "enable at most one of"),
    (("worker.terminationGracePeriodSeconds=30",), "must be above worker.settings.shutdown_grace_s (30)"),
    (("worker.settings.shutdown_grace_s=90",), "must be above worker.settings.shutdown_grace_s (90)"),
    (("model.source=url",), "model.source=url needs model.url.location"),
    (("model.source=s3",), "model.source=s3 needs model.s3.uri"),
    (("model.source=pvc",), "model.source=pvc needs model.pvc.claimName"),
    (("kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=PLAIN", "kafka.sasl.username=u"),
     "kafka.sasl.password is required"),
    (("kafka.securityProtocol=SASL_PLAINTEXT",), "kafka.sasl.mechanism"),
    (("worker.settings.max_batch_sise=8",), "additional properties 'max_batch_sise' not allowed"),
    (("worker.settings.processing_guarantee=at_most_once",), "processing_guarantee"),
    (("model.source=ftp",), "/model/source"),
])
def test_render_refuses_bad_values_with_a_clear_message(sets, message):
    with pytest.raises(HelmError) as err:
        render(set_values=sets)
    assert message in str(err.value)


def test_keda_at_exactly_the_partition_count_renders():
    docs = render(set_values=("autoscaling.keda.enabled=true", "autoscaling.keda.maxReplicaCount=6"))
    assert find(docs, "ScaledObject")["spec"]["maxReplicaCount"] == 6


def test_chart_package_contains_rules_and_dashboards(tmp_path):
    proc = run_helm("package", str(CHART), "--destination", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    import tarfile
    (archive,) = tmp_path.glob("line-inspection-*.tgz")
    names = tarfile.open(archive).getnames()
    assert "line-inspection/files/prometheus/line-inspection.rules.yml" in names
    assert "line-inspection/files/dashboards/line-overview.json" in names
    assert "line-inspection/values.schema.json" in names
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["version"] in archive.name

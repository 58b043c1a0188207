"""The Helm chart with the real helm binary: lint --strict, render every CI scenario, validate every rendered
object offline (Kubernetes API schemas from kubernetes-validate, CRD schemas for the custom resources), the
render-time guards, and use as a subchart with global.imageRegistry. Installing on a real API server is
tests/integration/cluster/ (make test-cluster)."""

from __future__ import annotations

import copy
import shutil
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

from line_harness.tools.chart_render import (
    CHART,
    CUSTOM_KINDS,
    KUBE_VERSION,
    MINIMAL_SETS,
    HelmError,
    find,
    find_tool,
    render,
    run_helm,
    scenarios,
    validate_object,
)

SCENARIOS = scenarios()
IDS = [p.name.removesuffix("-values.yaml") for p in SCENARIOS]


def test_helm_is_installed():
    path = find_tool("helm")  # raises ToolMissing naming `make tools`
    out = subprocess.run([path, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("v3."), out


def test_every_required_scenario_exists():
    assert set(IDS) >= {"cpu", "gpu", "keda", "existing-secret", "monitoring-on"}


def minimal_args() -> list[str]:
    return [arg for s in MINIMAL_SETS for arg in ("--set", s)]


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=["minimal", *IDS])
def test_lint_strict(values):
    args = ["lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
    args += ["-f", str(values)] if values else minimal_args()
    proc = run_helm(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[ERROR]" not in proc.stdout and "[WARNING]" not in proc.stdout, proc.stdout


def test_a_default_install_fails_at_render_time_saying_what_to_set():
    """The default worker images hold no model: rather than a crash-looping install, helm names the values."""
    with pytest.raises(HelmError) as err:  # what `helm install` renders too
        render()
    for needle in ("model.source is not set", "model.url.location", "model.s3.uri", "model.pvc.claimName",
                   "worker.image.tag"):
        assert needle in str(err.value), needle
    with pytest.raises(HelmError, match="model.source=image needs worker.image.tag"):
        render(set_values=("model.source=image",))


@pytest.mark.parametrize("values", [None, *SCENARIOS], ids=["minimal", *IDS])
def test_every_rendered_object_validates_against_its_schema(values):
    """Built-in kinds against the Kubernetes OpenAPI schemas, custom resources against their CRD schemas."""
    docs = render((values,) if values else (), set_values=() if values else MINIMAL_SETS)
    assert {"Deployment", "Service", "ConfigMap", "Pod", "Job"} <= {d["kind"] for d in docs}
    for doc in docs:
        validate_object(doc)


def test_every_custom_kind_is_rendered_and_validated_somewhere():
    kinds = {d["kind"] for values in SCENARIOS for d in render((values,))}
    assert CUSTOM_KINDS <= kinds
    assert {"NetworkPolicy", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret"} <= kinds


def test_crd_validation_catches_a_broken_custom_resource():
    scaled = find(render((CHART / "ci" / "keda-values.yaml",)), "ScaledObject")
    typo = copy.deepcopy(scaled)
    typo["spec"]["maxReplicaCountt"] = typo["spec"].pop("maxReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        validate_object(typo)
    wrong = copy.deepcopy(scaled)
    wrong["spec"]["fallback"]["replicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(wrong)


def test_schema_validation_catches_a_broken_object():
    """The validator is really checking: a wrong type in a rendered Deployment is rejected."""
    deploy = find(render(set_values=MINIMAL_SETS), "Deployment", "-worker")
    deploy["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deploy, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("sets, message", [
    (("worker.replicaCount=7",),
     "worker.replicaCount (7) x worker.settings.processes (1) consumers is above kafka.framesPartitions (6)"),
    (("worker.replicaCount=4", "worker.settings.processes=2"),
     "worker.replicaCount (4) x worker.settings.processes (2) consumers is above kafka.framesPartitions (6)"),
    (("autoscaling.keda.enabled=true", "autoscaling.keda.maxReplicaCount=12"),
     "autoscaling.keda.maxReplicaCount (12) x worker.settings.processes (1) consumers is above kafka.framesPartitions (6)"),
    (("autoscaling.hpa.enabled=true", "autoscaling.hpa.maxReplicas=3", "worker.settings.processes=3"),
     "autoscaling.hpa.maxReplicas (3) x worker.settings.processes (3) consumers is above kafka.framesPartitions (6)"),
    (("autoscaling.hpa.enabled=true", "autoscaling.keda.enabled=true"), "enable at most one of"),
    (("worker.terminationGracePeriodSeconds=30",), "must be above worker.settings.shutdown_grace_s (30)"),
    (("worker.settings.shutdown_grace_s=90",), "must be above worker.settings.shutdown_grace_s (90)"),
    (("model.source=url",), "model.source=url needs model.url.location"),
    (("autoscaling.keda.enabled=true", "autoscaling.keda.fallback.replicas=5", "autoscaling.keda.maxReplicaCount=4"),
     "autoscaling.keda.fallback.replicas (5) is above autoscaling.keda.maxReplicaCount or kafka.framesPartitions (4)"),
    (("autoscaling.keda.enabled=true", "autoscaling.keda.minReplicaCount=5", "autoscaling.keda.maxReplicaCount=4",
      "autoscaling.keda.fallback.replicas=1"), "autoscaling.keda.minReplicaCount (5) is above maxReplicaCount (4)"),
    (("prometheusRule.enabled=true",), "prometheusRule.runbookUrl is required"),
    (("prometheusRule.enabled=true", "prometheusRule.runbookUrl=https://x.example/runbooks.md",
      "prometheusRule.alerts.InspectionWorkerDonw=false"), "prometheusRule.alerts.InspectionWorkerDonw: no such alert"),
    (("prometheusRule.runbookUrl=docs/runbooks.md",), "/prometheusRule/runbookUrl"),
    (("worker.image.digest=latest",), "/worker/image/digest"),
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
        render(set_values=MINIMAL_SETS + sets)
    assert message in str(err.value)


def test_keda_at_exactly_the_partition_count_renders():
    docs = render(set_values=MINIMAL_SETS + ("autoscaling.keda.enabled=true", "autoscaling.keda.maxReplicaCount=6",
                                             "autoscaling.keda.fallback.replicas=6"))
    assert find(docs, "ScaledObject")["spec"]["maxReplicaCount"] == 6


def test_as_a_subchart_with_a_global_image_registry(tmp_path):
    """An umbrella chart that depends on this one (Helm passes it `global`) renders, and
    global.imageRegistry moves every image of every container to that registry."""
    umbrella = tmp_path / "platform"
    (umbrella / "charts").mkdir(parents=True)
    shutil.copytree(CHART, umbrella / "charts" / "line-inspection")
    (umbrella / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n"
        "  - {name: line-inspection, version: 0.1.0}\n")
    (umbrella / "values.yaml").write_text(yaml.safe_dump({
        "global": {"imageRegistry": "registry.example.com/mirror", "somethingElse": {"of": "another chart"}},
        "line-inspection": {"model": {"source": "url", "url": {"location": "https://models.example.com/m.tar.gz"}},
                            "worker": {"image": {"tag": "0.1.0-cpu", "digest": "sha256:" + "ab" * 32},
                                       "gpu": {"enabled": False}},
                            "simulator": {"enabled": True}}}))
    proc = run_helm("template", "plant", str(umbrella), "--kube-version", KUBE_VERSION, "--namespace", "line-a")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    images = {}
    for d in docs:
        spec = d["spec"]["template"]["spec"] if d["kind"] in ("Deployment", "Job") else d.get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []) if isinstance(spec, dict) else []:
            images[f"{d['kind']}/{c['name']}"] = c["image"]
    assert set(images) == {"Deployment/worker", "Deployment/fetch-model", "Deployment/simulator", "Pod/readyz",
                           "Job/topics"}
    assert all(i.startswith("registry.example.com/mirror/") for i in images.values()), images
    assert images["Deployment/worker"] == f"registry.example.com/mirror/line-inspection/worker:0.1.0-cpu@sha256:{'ab' * 32}"
    assert images["Job/topics"] == images["Deployment/worker"]  # the hook runs the worker image's topic code
    assert images["Deployment/fetch-model"] == "registry.example.com/mirror/curlimages/curl:8.11.1"


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

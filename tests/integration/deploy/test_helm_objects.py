"""Rendered chart objects obey the deployment rules: probes, GPUs, security, restarts on config change,
graceful shutdown, autoscaling caps, monitoring wiring, model delivery, credentials. Real helm, no cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from line_harness.paths import REPO
from line_harness.tools.chart_render import (
    CHART,
    MINIMAL_SETS,
    container,
    find,
    find_tool,
    pod_spec,
    render,
    scenarios,
    secret_refs,
    worker_config,
)

CI = {p.name.removesuffix("-values.yaml"): p for p in scenarios()}


@pytest.mark.parametrize("scenario", ["defaults", *CI])
def test_probes_target_the_worker_endpoints_on_the_metrics_port(rendered, scenario):
    c = container(rendered[scenario])
    port = int(worker_config(rendered[scenario])["WORKER_METRICS_PORT"])
    assert [p["containerPort"] for p in c["ports"] if p["name"] == "metrics"] == [port]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/readyz"
    # model load + warm-up: allow at least 5 minutes before liveness may kill the pod
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


@pytest.mark.parametrize("scenario", ["defaults", *CI])
def test_termination_grace_exceeds_the_worker_shutdown_grace(rendered, scenario):
    grace = float(worker_config(rendered[scenario])["WORKER_SHUTDOWN_GRACE_S"])
    assert pod_spec(rendered[scenario])["terminationGracePeriodSeconds"] > grace


def test_gpu_scenarios_request_gpus_and_cpu_scenarios_do_not(rendered):
    gpu = container(rendered["gpu"])
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert ":0.1.0-gpu-model3@sha256:" in gpu["image"]
    spec = pod_spec(rendered["gpu"])
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "podAntiAffinity" in spec["affinity"]
    assert container(rendered["defaults"])["image"].endswith(":0.1.0-gpu-model3")
    cpu = container(rendered["cpu"])
    assert "nvidia.com/gpu" not in str(cpu["resources"]) and cpu["image"].endswith(":0.1.0-cpu")


@pytest.mark.parametrize("scenario", ["defaults", *CI])
def test_every_pod_runs_non_root_with_a_read_only_root_filesystem(rendered, scenario):
    pods = [d["spec"]["template"]["spec"] for d in rendered[scenario] if d["kind"] == "Deployment"]
    pods += [d["spec"] for d in rendered[scenario] if d["kind"] == "Pod"]
    for spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            if c["name"] != "readyz":  # anything that may write gets a writable /tmp
                assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], c["name"]


def test_config_checksum_changes_with_settings_and_credentials():
    def annotations(*sets):
        return find(render(set_values=MINIMAL_SETS + sets), "Deployment", "-worker")["spec"]["template"]["metadata"]["annotations"]
    base = annotations()
    assert len(base["checksum/config"]) == 64
    assert annotations()["checksum/config"] == base["checksum/config"]  # stable: no needless restarts
    assert annotations("worker.settings.max_batch_size=16")["checksum/config"] != base["checksum/config"]
    sasl = ("kafka.securityProtocol=SASL_PLAINTEXT", "kafka.sasl.mechanism=PLAIN", "kafka.sasl.username=u")
    assert (annotations(*sasl, "kafka.sasl.password=a")["checksum/secret"]
            != annotations(*sasl, "kafka.sasl.password=b")["checksum/secret"])


def test_keda_scales_on_the_worker_group_lag_within_the_partitions(rendered):
    docs = rendered["keda"]
    so = find(docs, "ScaledObject")
    values = yaml.safe_load(CI["keda"].read_text())
    assert so["spec"]["maxReplicaCount"] <= values["kafka"]["framesPartitions"]
    assert so["spec"]["scaleTargetRef"]["name"] == find(docs, "Deployment", "-worker")["metadata"]["name"]
    trigger = so["spec"]["triggers"][0]
    cfg = worker_config(docs)
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == cfg["WORKER_GROUP_ID"]
    assert trigger["metadata"]["topic"] == cfg["WORKER_FRAMES_TOPIC"]
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    auth = find(docs, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"username", "password", "ca"}
    assert "replicas" not in find(docs, "Deployment", "-worker")["spec"]  # KEDA owns the count


def test_pdb_and_service_select_the_worker_pods(rendered):
    docs = rendered["defaults"]
    pod_labels = find(docs, "Deployment", "-worker")["spec"]["template"]["metadata"]["labels"]
    for selector in (find(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                     find(docs, "Service", "-worker")["spec"]["selector"]):
        assert selector.items() <= pod_labels.items() and selector["app.kubernetes.io/component"] == "worker"
    assert find(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_monitoring_objects_are_wired_to_the_service_and_the_shared_rules(rendered):
    docs = rendered["monitoring-on"]
    service = find(docs, "Service", "-worker")
    monitor = find(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    endpoint = monitor["spec"]["endpoints"][0]
    relabel = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    # job is left to the operator (the Service name, unique per release), so two releases never share one
    assert "job" not in relabel and relabel["instance"]["sourceLabels"] == ["__meta_kubernetes_pod_name"]
    assert endpoint["metricRelabelings"] == [{"action": "drop", "sourceLabels": ["__name__"], "regex": "python_gc_.*"}]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboards = find(docs, "ConfigMap", "-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards["metadata"]["namespace"] == "monitoring"
    for name, text in dashboards["data"].items():
        assert text == (REPO / "deploy/grafana/dashboards" / name).read_text().rstrip("\n")
    assert set(dashboards["data"]) == {"line-overview.json", "worker-internals.json"}
    assert find(docs, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 6


def test_rendered_prometheus_rule_passes_promtool(rendered, tmp_path):
    spec = find(rendered["monitoring-on"], "PrometheusRule")["spec"]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(spec))
    proc = subprocess.run([find_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_model_delivery_by_url_s3_pvc_and_image(rendered):
    url = pod_spec(rendered["cpu"])
    (fetch,) = url["initContainers"]
    env = {e["name"]: e["value"] for e in fetch["env"]}
    assert env["MODEL_URL"].startswith("https://") and len(env["MODEL_SHA256"]) == 64
    assert "sha256sum -c" in fetch["args"][0] and env["MODEL_DIR"] == "/models"
    assert {"name": "models", "mountPath": "/models"} in fetch["volumeMounts"]
    assert {"name": "models", "mountPath": "/models"} in container(rendered["cpu"])["volumeMounts"]
    assert {"name": "models", "emptyDir": {"sizeLimit": "4Gi"}} in url["volumes"]
    s3 = pod_spec(rendered["keda"])["initContainers"][0]
    assert s3["args"][:2] == ["s3", "sync"] and "s3://models/line-inspection/" in s3["args"]
    assert s3["envFrom"] == [{"secretRef": {"name": "model-store-credentials"}}]
    pvc = pod_spec(rendered["existing-secret"])
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "line-inspection-models", "readOnly": True}} \
        in pvc["volumes"]
    baked = pod_spec(rendered["defaults"])
    assert "initContainers" not in baked and all(v["name"] != "models" for v in baked["volumes"])
    for docs in rendered.values():
        assert worker_config(docs)["WORKER_MODEL_PATH"] == "/models"


def test_credentials_come_from_the_secret_and_tls_files_are_mounted(rendered):
    docs = rendered["existing-secret"]
    assert not [d for d in docs if d["kind"] == "Secret"]  # the existing one is used, none created
    env = secret_refs(container(docs))
    assert env["WORKER_KAFKA_SASL_USERNAME"] == {"name": "kafka-client-credentials", "key": "username"}
    assert env["WORKER_KAFKA_SASL_PASSWORD"] == {"name": "kafka-client-credentials", "key": "password"}
    assert env["WORKER_KAFKA_SSL_PASSWORD"]["name"] == "kafka-client-credentials"
    cfg = worker_config(docs)
    assert not any("PASSWORD" in k or "USERNAME" in k for k in cfg)  # never in a ConfigMap
    tls = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "kafka-tls")
    mounted = {i["path"] for i in tls["secret"]["items"]}
    mount_dir = next(m["mountPath"] for m in container(docs)["volumeMounts"] if m["name"] == "kafka-tls")
    for key in ("WORKER_KAFKA_SSL_CAFILE", "WORKER_KAFKA_SSL_CERTFILE", "WORKER_KAFKA_SSL_KEYFILE"):
        assert Path(cfg[key]).parent == Path(mount_dir) and Path(cfg[key]).name in mounted
    made = find(rendered["keda"], "Secret", "-line-inspection-kafka")  # chart-made secret from values
    assert set(made["data"]) == {"sasl-username", "sasl-password", "ca.crt"}


def test_simulator_is_optional_and_publishes_to_the_worker_topic(rendered):
    assert not [d for d in rendered["defaults"] if d["metadata"]["name"].endswith("-simulator")]
    docs = rendered["cpu"]
    sim_cfg = find(docs, "ConfigMap", "-simulator")["data"]
    assert sim_cfg["SIM_FRAMES_TOPIC"] == worker_config(docs)["WORKER_FRAMES_TOPIC"]
    assert sim_cfg["SIM_KAFKA_BOOTSTRAP_SERVERS"] == worker_config(docs)["WORKER_KAFKA_BOOTSTRAP_SERVERS"]
    assert container(docs, "simulator")["command"] == ["python", "-m", "producer_sim"]


def test_helm_test_pod_checks_readyz_through_the_service(rendered):
    docs = rendered["defaults"]
    pod = find(docs, "Pod", "-test-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = find(docs, "Service", "-worker")
    url = pod["spec"]["containers"][0]["args"][0]
    assert url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/readyz"
    assert "--fail" in pod["spec"]["containers"][0]["command"]


def test_notes_render_with_the_port_forward_hint(tmp_path):
    """NOTES.txt is only rendered by `helm install` (needs a cluster), so render it through tpl in a chart copy."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "notes-source.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "notes-check.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
        'data:\n  notes: {{ tpl (.Files.Get "notes-source.txt") . | toJson }}\n')
    sets = [arg for s in MINIMAL_SETS for arg in ("--set", s)]
    proc = subprocess.run([find_tool("helm"), "template", "li", str(chart), "--kube-version", "1.31.0", *sets,
                           "--namespace", "inspection", "--show-only", "templates/notes-check.yaml"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    notes = yaml.safe_load(proc.stdout)["data"]["notes"]
    assert "port-forward service/li-line-inspection-worker 9400" in notes and "helm test li" in notes
    assert "line.frames (6 partitions)" in notes

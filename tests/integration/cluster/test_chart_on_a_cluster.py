"""Every ci/ value set installed on a real Kubernetes API server (local, kwok nodes): the topics hook Job
completes first, the pods become Ready on simulated nodes (GPU pods on the tainted GPU pool), `helm test`
passes, an upgrade with a config change rolls the workers, a rollback restores them, and uninstall leaves
nothing of the release behind. Two releases of the same name in two namespaces install side by side.
Run with `make test-cluster` (needs `make cluster-build` once)."""

from __future__ import annotations

import json

import pytest

from line_harness.tools.chart_render import CHART, scenarios

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in scenarios()}
RELEASE = "li"
# Everything the chart can create, namespaced or in the shared monitoring namespace.
KINDS = ("deployments,replicasets,pods,services,configmaps,secrets,serviceaccounts,poddisruptionbudgets,"
         "networkpolicies,jobs,horizontalpodautoscalers,servicemonitors,prometheusrules,scaledobjects,"
         "triggerauthentications")


def objects(cluster, namespace: str, selector: str = f"app.kubernetes.io/instance={RELEASE}") -> list[dict]:
    out = cluster.kubectl("get", KINDS, "-n", namespace, "-l", selector, "-o", "json").stdout
    return json.loads(out)["items"]


def worker_pods(cluster, namespace: str) -> list[dict]:
    return [p for p in objects(cluster, namespace) if p["kind"] == "Pod"
            and p["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
            and not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def config_checksum(cluster, namespace: str) -> str:
    deploy = json.loads(cluster.kubectl("get", "deployment", f"{RELEASE}-line-inspection-worker", "-n", namespace,
                                        "-o", "json").stdout)
    return deploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def assert_workers_ready(cluster, namespace: str, checksum: str) -> list[dict]:
    cluster.kubectl("rollout", "status", f"deployment/{RELEASE}-line-inspection-worker", "-n", namespace,
                    "--timeout=120s", timeout_s=150)
    pods = worker_pods(cluster, namespace)
    assert pods and all(ready(p) for p in pods), [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
    assert {p["metadata"]["annotations"]["checksum/config"] for p in pods} == {checksum}
    return pods


def install(cluster, namespace: str, values, *sets: str, verb: str = "install"):
    args = [verb, RELEASE, str(CHART), "-n", namespace, "-f", str(values), "--wait", "--timeout", "180s"]
    for s in sets:
        args += ["--set", s]
    return cluster.helm(*args)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_install_test_upgrade_rollback_uninstall(cluster, namespace, scenario):
    values = SCENARIOS[scenario]
    install(cluster, namespace, values)
    checksum = config_checksum(cluster, namespace)
    pods = assert_workers_ready(cluster, namespace, checksum)
    if scenario in ("gpu", "keda"):  # GPU pods land on the tainted GPU pool
        assert all(p["spec"]["nodeName"].startswith("gpu-") for p in pods)
    # the topics hook Job ran before the workers and was removed after succeeding
    assert not [o for o in objects(cluster, namespace) if o["kind"] == "Job"]
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert f"{RELEASE}-line-inspection-topics" in events

    test = cluster.helm("test", RELEASE, "-n", namespace, "--timeout", "120s")
    assert "Phase:          Succeeded" in test.stdout, test.stdout

    install(cluster, namespace, values, "worker.settings.max_batch_size=7", verb="upgrade")
    changed = config_checksum(cluster, namespace)
    assert changed != checksum
    new_pods = assert_workers_ready(cluster, namespace, changed)
    assert not {p["metadata"]["name"] for p in new_pods} & {p["metadata"]["name"] for p in pods}  # rolled

    cluster.helm("rollback", RELEASE, "1", "-n", namespace, "--wait", "--timeout", "180s")
    assert config_checksum(cluster, namespace) == checksum
    assert_workers_ready(cluster, namespace, checksum)
    history = json.loads(cluster.helm("history", RELEASE, "-n", namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2, 3] and history[-1]["status"] == "deployed"

    cluster.helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "120s")
    left = objects(cluster, namespace) + objects(cluster, "monitoring")
    assert not left, [f"{o['kind']}/{o['metadata']['name']}" for o in left]
    assert not cluster.helm("list", "-n", namespace, "-q").stdout.strip()


def test_two_releases_in_two_namespaces_install_side_by_side(cluster, platform_objects):
    """Same release name, two namespaces, both with monitoring on: nothing collides (the dashboards
    ConfigMaps share the monitoring namespace), and each release's rules select only its own namespace."""
    spaces = ["line-a", "line-b"]
    for ns in spaces:
        cluster.apply(platform_objects(ns))
    try:
        for ns in spaces:
            install(cluster, ns, SCENARIOS["monitoring-on"])
        dashboards = [o["metadata"]["name"] for o in objects(cluster, "monitoring") if o["kind"] == "ConfigMap"]
        assert sorted(dashboards) == [f"{RELEASE}-line-inspection-{ns}-dashboards" for ns in spaces]
        for ns in spaces:
            (rule,) = [o for o in objects(cluster, ns) if o["kind"] == "PrometheusRule"]
            text = json.dumps(rule["spec"])
            assert f'namespace=\\"{ns}\\"' in text and all(o not in text for o in spaces if o != ns)
            assert_workers_ready(cluster, ns, config_checksum(cluster, ns))
    finally:
        for ns in spaces:
            cluster.helm("uninstall", RELEASE, "-n", ns, "--wait", check=False)
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
            cluster.kubectl("delete", "pv", f"models-{ns}", "--wait=false", check=False)


def test_a_gpu_pod_that_cannot_schedule_is_caught(cluster, namespace):
    """Why the tests check pods themselves: without the GPU taint toleration the pod stays Pending, yet
    `helm --wait` reports the release deployed (maxUnavailable 1 allows 0 of 1 ready)."""
    install(cluster, namespace, SCENARIOS["keda"], "worker.gpu.tolerateGpuTaint=false")
    status = cluster.kubectl("rollout", "status", f"deployment/{RELEASE}-line-inspection-worker", "-n", namespace,
                             "--timeout=10s", check=False)
    assert status.returncode != 0
    (pod,) = worker_pods(cluster, namespace)
    assert pod["status"]["phase"] == "Pending" and not ready(pod)
    (condition,) = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert condition["reason"] == "Unschedulable" and "nvidia.com/gpu" in condition["message"]
    cluster.helm("uninstall", RELEASE, "-n", namespace, "--wait")


def test_a_missing_dashboards_namespace_fails_before_anything_is_created(cluster, namespace):
    """The monitoring values on a cluster without that namespace: the install fails at render time, naming
    the value, and leaves no object and no release behind."""
    failed = cluster.helm("install", RELEASE, str(CHART), "-n", namespace, "-f", str(SCENARIOS["monitoring-on"]),
                          "--set", "grafanaDashboards.namespace=grafana-missing", "--wait", "--timeout", "60s",
                          check=False)
    assert failed.returncode != 0
    assert 'grafanaDashboards.namespace "grafana-missing" does not exist' in failed.stderr, failed.stderr
    assert not objects(cluster, namespace)
    assert not cluster.helm("list", "-n", namespace, "-a", "-q").stdout.strip()

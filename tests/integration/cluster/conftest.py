"""One local Kubernetes API server with kwok nodes for the whole cluster test session
(line_harness/tools/local_cluster.py; binaries from `make cluster-build`), plus what a platform team
provides before installing: the monitoring namespace, the `nvidia` RuntimeClass of a GPU pool, and, per
namespace, the existing Secrets and the model volume claim the ci/ value sets refer to."""

from __future__ import annotations

import pytest

from line_harness.tools.local_cluster import LocalCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A started cluster: 2 CPU nodes, 4 GPU nodes (2 GPUs each, tainted); stopped after the session."""
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        took = local.start()
        print(f"local cluster started in {took:.1f} s")
        local.apply([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
            # The NVIDIA GPU operator installs this RuntimeClass on a GPU cluster; the gpu values use it.
            {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"}, "handler": "nvidia"},
        ])
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def platform_objects():
    """platform_objects(namespace): the objects the ci/ value sets expect to exist already there."""
    return _platform_objects


def _platform_objects(namespace: str) -> list[dict]:
    def secret(name: str, keys: list[str]) -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "stringData": {k: "placeholder" for k in keys}}
    claim = "line-inspection-models"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        secret("kafka-client-credentials", ["username", "password", "ca.crt", "tls.crt", "tls.key", "ssl-key-password"]),
        secret("model-store-credentials", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]),
        # A pre-bound volume: the claim binds to it without a provisioner.
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"models-{namespace}"},
         "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadOnlyMany"], "storageClassName": "",
                  "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/srv/models"},
                  "claimRef": {"namespace": namespace, "name": claim}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": namespace},
         "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": f"models-{namespace}",
                  "resources": {"requests": {"storage": "10Gi"}}}},
    ]


@pytest.fixture
def namespace(cluster, platform_objects, request):
    """A fresh namespace with the platform's objects; deleted after the test."""
    name = "li-" + request.node.callspec.id if hasattr(request.node, "callspec") else "li-" + request.node.name[:40]
    name = name.lower().replace("_", "-")[:50]
    cluster.apply(platform_objects(name))
    cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/line-inspection-models", "-n", name,
                    "--timeout=60s")
    # published by the controller manager into every namespace; the chart's install-time checks look for it
    cluster.kubectl("wait", "--for=create", "configmap/kube-root-ca.crt", "-n", name, "--timeout=60s")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    cluster.kubectl("delete", "pv", f"models-{name}", "--wait=false", check=False)

"""The local cluster's tooling without starting it (part of `make test`): the versions the tests look for
are the ones build.sh builds, a missing build names the command that makes it, and the kwok stage file
parses as the four pod stages the cluster needs."""

from __future__ import annotations

import pytest
import yaml

from line_harness.tools.local_cluster import STAGES, ClusterError, binaries, node_manifest, versions


def test_versions_come_from_the_build_script():
    assert versions() == {"K8S": "1.34.0", "ETCD": "3.6.16", "KWOK": "0.7.0"}


def test_a_missing_build_names_make_cluster_build(monkeypatch, tmp_path):
    monkeypatch.setenv("LINE_CLUSTER_CACHE", str(tmp_path))
    with pytest.raises(ClusterError, match="make cluster-build") as err:
        binaries()
    assert str(tmp_path / "k8s-1.34.0" / "kube-apiserver") in str(err.value)


def test_kwok_stages_cover_ready_complete_and_delete():
    stages = {s["metadata"]["name"]: s for s in yaml.safe_load_all(STAGES.read_text())}
    assert set(stages) == {"pod-ready", "job-pod-complete", "test-pod-complete", "pod-delete"}
    keys = {e["key"] for e in stages["test-pod-complete"]["spec"]["selector"]["matchExpressions"]}
    assert '.metadata.annotations["helm.sh/hook"]' in keys  # `helm test` pods complete, workers stay Running


def test_gpu_nodes_look_like_an_nvidia_pool():
    node = node_manifest("gpu-0", gpus=2)
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "2"
    assert "taints" not in node_manifest("cpu-0")["spec"]

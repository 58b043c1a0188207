"""A local Kubernetes control plane without Docker: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated nodes whose pods become Ready without running anything).

The binaries come from deploy/cluster/build.sh (`make cluster-build`), cached outside the repository by
version. A cluster lives in one run folder (certificates, kubeconfig, etcd data, logs) and is gone with
`stop()`. Nodes: CPU nodes, and GPU nodes with the labels and taint of an NVIDIA GPU pool.

    python -m line_harness.tools.local_cluster up      # start one in run/cluster; prints KUBECONFIG, waits for Ctrl-C
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from line_harness.paths import REPO
from line_harness.processes import Child, free_port, wait_until
from line_runtime.ports import free_ports

BUILD_SCRIPT = REPO / "deploy" / "cluster" / "build.sh"
STAGES = REPO / "deploy" / "cluster" / "kwok-stages.yaml"
CRDS = REPO.parent / "shared" / "k8s-crds"


class ClusterError(RuntimeError):
    """The local cluster could not start or a command failed; the message says which and shows its log."""


def versions() -> dict[str, str]:
    """Default component versions, read from build.sh so the two never disagree."""
    text = BUILD_SCRIPT.read_text()
    return {name: re.search(rf'{name}_VERSION="\$\{{{name}_VERSION:-([^}}]+)\}}"', text).group(1)
            for name in ("K8S", "ETCD", "KWOK")}


def binaries() -> dict[str, Path]:
    """Paths of every binary in the build cache; raises ClusterError naming `make cluster-build` if any is missing."""
    cache = Path(os.environ.get("LINE_CLUSTER_CACHE", Path.home() / ".cache" / "line-inspection"))
    v = {k: os.environ.get(f"{k}_VERSION", d) for k, d in versions().items()}
    k8s = cache / f"k8s-{v['K8S']}"
    paths = {name: k8s / name for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")}
    paths["etcd"] = cache / f"etcd-{v['ETCD']}" / "etcd"
    paths["kwok"] = cache / f"kwok-{v['KWOK']}" / "kwok"
    missing = [str(p) for p in paths.values() if not os.access(p, os.X_OK)]
    if missing:
        raise ClusterError(f"local cluster binaries missing: {', '.join(missing)}; build them with "
                           f"`make cluster-build` (deploy/cluster/build.sh; cached outside the repository)")
    return paths


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ClusterError(f"openssl {' '.join(args)} failed: {proc.stderr}")


def make_certificates(pki: Path) -> None:
    """A CA, the API server's serving certificate, an admin client certificate, the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
             "-subj", "/CN=line-inspection-local-ca", cwd=pki)
    (pki / "san.ext").write_text("subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes.default.svc\n")
    for name, subject, ext in (("apiserver", "/CN=kube-apiserver", ["-extfile", "san.ext"]),
                               ("admin", "/O=system:masters/CN=admin", [])):
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "30", *ext, cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def node_manifest(name: str, gpus: int = 0) -> dict:
    """A kwok-managed Node; GPU nodes carry the NVIDIA pool's label and taint and advertise nvidia.com/gpu."""
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "200Gi"}
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "type": "kwok"}
    spec: dict = {}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
        labels.update({"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
        spec["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": spec, "status": {"capacity": capacity, "allocatable": capacity}}


class LocalCluster:
    """`start()`, `kubectl(...)`, `helm(...)`, `apply(docs)`, `stop()`; KUBECONFIG is `kubeconfig`."""

    def __init__(self, run_dir: Path, cpu_nodes: int = 2, gpu_nodes: int = 4, gpus_per_node: int = 2):
        self.run_dir = Path(run_dir)
        self.bin = binaries()
        self.cpu_nodes, self.gpu_nodes, self.gpus_per_node = cpu_nodes, gpu_nodes, gpus_per_node
        self.children: list[Child] = []
        self.kubeconfig = self.run_dir / "kubeconfig"
        self.api_port = 0

    def _start(self, name: str, *args: str) -> Child:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.run_dir)}
        child = Child(name, [str(self.bin[name]), *args], env, self.run_dir / "logs" / f"{name}.log", self.run_dir)
        self.children.append(child)
        return child

    def start(self, timeout_s: float = 120.0) -> float:
        """Start every component, register the nodes and the CRDs; return the seconds it took."""
        t0 = time.monotonic()
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        pki = self.run_dir / "pki"
        make_certificates(pki)
        etcd_port, peer_port, self.api_port = free_ports(3)  # at once: back-to-back picks may repeat a port
        etcd = f"http://127.0.0.1:{etcd_port}"
        self._start("etcd", "--data-dir", str(self.run_dir / "etcd"), "--name", "local",
                    "--listen-client-urls", etcd, "--advertise-client-urls", etcd,
                    "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                    "--initial-cluster", f"local=http://127.0.0.1:{peer_port}",
                    # a throwaway test cluster: durability is not worth the disk syncs
                    "--unsafe-no-fsync", "--log-level", "warn")
        self._start("kube-apiserver", "--etcd-servers", etcd, "--bind-address", "127.0.0.1",
                    "--advertise-address", "127.0.0.1", "--secure-port", str(self.api_port),
                    "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
                    "--client-ca-file", str(pki / "ca.crt"), "--authorization-mode", "RBAC",
                    "--service-account-issuer", "https://kubernetes.default.svc",
                    "--service-account-key-file", str(pki / "sa.pub"),
                    "--service-account-signing-key-file", str(pki / "sa.key"),
                    "--service-cluster-ip-range", "10.96.0.0/16", "--allow-privileged=true",
                    "--enable-priority-and-fairness=false", "--cert-dir", str(pki))
        self._write_kubeconfig(pki)
        self._wait("API server", lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                   timeout_s, "kube-apiserver")
        kube = ["--kubeconfig", str(self.kubeconfig), "--leader-elect=false", "--secure-port=0"]
        self._start("kube-controller-manager", *kube, "--service-account-private-key-file", str(pki / "sa.key"),
                    "--root-ca-file", str(pki / "ca.crt"), "--use-service-account-credentials=false")
        self._start("kube-scheduler", *kube)
        self._start("kwok", "--kubeconfig", str(self.kubeconfig), "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
                    "--node-lease-duration-seconds", "40", "--config", str(STAGES),
                    "--server-address", f"127.0.0.1:{free_port()}")
        nodes = [node_manifest(f"cpu-{i}") for i in range(self.cpu_nodes)]
        nodes += [node_manifest(f"gpu-{i}", self.gpus_per_node) for i in range(self.gpu_nodes)]
        self.apply(nodes)
        self.kubectl("apply", "--server-side", "-f", str(CRDS))
        self._wait("nodes Ready", self._nodes_ready, timeout_s, "kwok")
        self._wait("CRDs established", lambda: self.kubectl(
            "wait", "--for=condition=Established", "crd", "--all", "--timeout=5s", check=False).returncode == 0,
            timeout_s, "kube-apiserver")
        return time.monotonic() - t0

    def _write_kubeconfig(self, pki: Path) -> None:
        import yaml
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "local",
            "clusters": [{"name": "local", "cluster": {"server": f"https://127.0.0.1:{self.api_port}",
                                                       "certificate-authority": str(pki / "ca.crt")}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(pki / "admin.crt"),
                                                 "client-key": str(pki / "admin.key")}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}]}))

    def _nodes_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}",
                           check=False).stdout.split()
        return len(out) == self.cpu_nodes + self.gpu_nodes and set(out) == {"True"}

    def _wait(self, what: str, predicate, timeout_s: float, log_of: str) -> None:
        def ok() -> bool:
            dead = [c for c in self.children if not c.running()]
            if dead:
                raise ClusterError(f"{dead[0].name} exited ({dead[0].proc.returncode}):\n{dead[0].log_tail(30)}")
            return predicate()
        if not wait_until(ok, timeout_s, interval_s=0.5):
            child = next(c for c in self.children if c.name == log_of)
            raise ClusterError(f"{what}: not within {timeout_s:.0f} s; {log_of} log:\n{child.log_tail(30)}")

    def env(self) -> dict[str, str]:
        """Environment for kubectl and helm against this cluster (helm caches under the run folder)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HELM_CACHE_HOME": str(self.run_dir / "helm-cache"),
                "HELM_CONFIG_HOME": str(self.run_dir / "helm-config"), "HELM_DATA_HOME": str(self.run_dir / "helm-data")}

    def kubectl(self, *args: str, check: bool = True, input_text: Optional[str] = None,
                timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        """Run this cluster's kubectl; with check, raise ClusterError carrying its stderr on failure."""
        return self._run([str(self.bin["kubectl"]), *args], check, input_text, timeout_s)

    def helm(self, *args: str, check: bool = True, timeout_s: float = 300.0) -> subprocess.CompletedProcess:
        """Run helm (tools/bin or PATH) against this cluster."""
        from line_harness.tools.chart_render import find_tool
        return self._run([find_tool("helm"), *args], check, None, timeout_s)

    def _run(self, cmd: list[str], check: bool, input_text: Optional[str], timeout_s: float):
        proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, input=input_text, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def apply(self, docs: list[dict]) -> None:
        """kubectl apply a list of manifests."""
        import yaml
        self.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(docs))

    def stop(self) -> None:
        """Stop every component, newest first (kwok and controllers before the API server, etcd last)."""
        for child in reversed(self.children):
            child.stop(grace_s=10)
        self.children.clear()


def main(argv: Optional[list[str]] = None) -> int:
    """`up`: start a cluster in run/cluster and keep it until Ctrl-C."""
    if (argv or sys.argv[1:])[:1] != ["up"]:
        print(__doc__)
        return 2
    cluster = LocalCluster(REPO / "run" / "cluster")
    try:
        took = cluster.start()
        print(f"local cluster up in {took:.1f} s; export KUBECONFIG={cluster.kubeconfig}  (Ctrl-C stops it)")
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

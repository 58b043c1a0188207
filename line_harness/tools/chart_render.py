"""Find the deploy tools (helm, promtool) and render the Helm chart into Python objects.

Used by the chart tests and handy by hand:
    line_harness/tools/chart_render.py helm/line-inspection/ci/gpu-values.yaml   # kinds and names
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from line_harness.paths import REPO

CHART = REPO / "helm" / "line-inspection"
# Helm built with `go install` has no baked-in default Kubernetes version (it assumes 1.20), so we pass
# the oldest version the chart supports (Chart.yaml kubeVersion) and validate against the same schemas.
KUBE_VERSION = "1.31.0"
# A default install fails at render time on purpose (no model source); these values are the least that
# renders: a worker image with a model baked in.
MINIMAL_SETS = ("model.source=image", "worker.image.tag=0.1.0-gpu-model3")
# JSON Schemas of the custom resources (ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication),
# <group>/<kind>_<version>.json, shared next to the repository.
CRD_SCHEMAS = REPO.parent / "shared" / "k8s-crd-schemas"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}


class ToolMissing(RuntimeError):
    """A required binary is not installed."""


class HelmError(RuntimeError):
    """helm exited non-zero; the message is its stderr."""


def find_tool(name: str) -> str:
    """Path of `name`: <repo>/tools/bin first (where make tools puts helm), then PATH."""
    local = REPO / "tools" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissing(f"{name} not found in {local.parent} or on PATH; run `make tools` "
                      f"(deploy/tools/install.sh) to install helm and promtool")


def run_helm(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run helm with `args`; return the finished process (check returncode yourself)."""
    return subprocess.run([find_tool("helm"), *args], capture_output=True, text=True, timeout=timeout_s)


def render(values_files: tuple[Path | str, ...] = (), set_values: tuple[str, ...] = (),
           release: str = "li", namespace: str = "inspection") -> list[dict]:
    """`helm template` the chart and return its documents (raises HelmError with helm's message)."""
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for f in values_files:
        args += ["-f", str(f)]
    for s in set_values:
        args += ["--set", s]
    proc = run_helm(*args)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip())
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def crd_schema(doc: dict) -> dict:
    """The JSON Schema of a custom resource's kind and version (raises FileNotFoundError naming the file)."""
    group, _, version = doc["apiVersion"].rpartition("/")
    path = CRD_SCHEMAS / group / f"{doc['kind'].lower()}_{version}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no schema for {doc['apiVersion']} {doc['kind']} at {path}")
    return json.loads(path.read_text())


def validate_object(doc: dict) -> None:
    """Validate one rendered object offline: built-in kinds strictly against the Kubernetes OpenAPI schemas
    (kubernetes-validate), custom resources against their CRD schemas. Raises on the first error."""
    if doc["kind"] in CUSTOM_KINDS:
        import jsonschema
        schema = crd_schema(doc)
        # No metaschema check: the CRDs carry Go regexes (e.g. a mid-pattern (?i)) that Python's re rejects;
        # the instance is still validated in full.
        jsonschema.validators.validator_for(schema)(schema).validate(doc)
    else:
        import kubernetes_validate
        # strict: unknown fields are errors too (a typo like `readinesProbe` would otherwise pass silently)
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def scenarios() -> list[Path]:
    """The CI value sets, helm/line-inspection/ci/*-values.yaml."""
    return sorted((CHART / "ci").glob("*-values.yaml"))


def find(docs: list[dict], kind: str, name_suffix: str = "") -> dict:
    """The one document of `kind` whose name ends with `name_suffix`."""
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    if len(hits) != 1:
        raise LookupError(f"expected one {kind} named *{name_suffix}, found {len(hits)}")
    return hits[0]


if __name__ == "__main__":
    for doc in render(tuple(sys.argv[1:])):
        print(f"{doc['kind']:<24} {doc['metadata']['name']}")


def render_scenarios() -> dict[str, list[dict]]:
    """Every ci/ values file rendered (keyed by its name without -values.yaml), plus the minimal values."""
    out = {p.name.removesuffix("-values.yaml"): render((p,)) for p in scenarios()}
    out["defaults"] = render(set_values=MINIMAL_SETS)
    return out


def pod_spec(docs: list[dict], component: str = "worker") -> dict:
    """The pod spec of a component's Deployment."""
    return find(docs, "Deployment", f"-{component}")["spec"]["template"]["spec"]


def container(docs: list[dict], component: str = "worker") -> dict:
    """The first container of a component's pod."""
    return pod_spec(docs, component)["containers"][0]


def secret_refs(container: dict) -> dict[str, dict]:
    """The container's env vars that come from a Secret: name -> its secretKeyRef (Downward API ones left out)."""
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}


def worker_config(docs: list[dict]) -> dict:
    """The worker ConfigMap's data (its WORKER_* settings)."""
    return find(docs, "ConfigMap", "-worker")["data"]

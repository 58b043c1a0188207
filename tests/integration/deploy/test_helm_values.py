"""The chart's configuration surface agrees with the code: every WORKER_*/SIM_* env var it renders is a
real settings field, every worker setting is settable, defaults match, the rendered env loads through
WorkerSettings/SimSettings, and every value in values.yaml is documented."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

from line_harness.tools.chart_render import CHART, MINIMAL_SETS, find, render, scenarios  # noqa: E402
from line_runtime.settings import KafkaClientSettings, env_name, load_settings
from producer_sim.settings import SimSettings
from worker.settings import WorkerSettings

CI = {p.name.removesuffix("-values.yaml"): p for p in scenarios()}
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
# Fields the chart sets from elsewhere than worker.settings: Kafka from `kafka`, the model folder from
# `model.path`, and instance_id stays the pod name (unique, stable per pod) by design.
# The evidence store's address, bucket and sampling come from `evidence` (beside its existingSecret).
NOT_IN_SETTINGS = {"model_path", "instance_id"} | set(KafkaClientSettings.model_fields) | {
    "evidence_endpoint", "evidence_bucket", "evidence_region", "evidence_sample_ok"}
# Deliberate differences from the code defaults, with the reason.
CHART_DEFAULTS_DIFFER = {
    "log_format": "json",  # log collectors in a cluster parse one JSON object per line
    # null = not set: the worker chooses batching by backend and device (worker/device_defaults.py)
    "max_batch_size": None,
    "max_batch_wait_ms": None,
    # null = from the pod's CPU request (Downward API): a pod without a CPU limit would detect its node's cores
    "cpus": None,
}




def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("2", "1.5", "500m") in cores."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def rendered_env(docs: list[dict], component: str, prefix: str) -> dict[str, str]:
    """Env of a component as the container would see it: ConfigMap data, then the container's env (which wins):
    secret refs as a stand-in value, Downward API resource fields as Kubernetes computes them."""
    env = dict(find(docs, "ConfigMap", f"-{component}")["data"])
    c = find(docs, "Deployment", f"-{component}")["spec"]["template"]["spec"]["containers"][0]
    for e in c.get("env", []):
        field = e.get("valueFrom", {}).get("resourceFieldRef")
        if field:  # the Downward API rounds a resource up to whole divisors
            kind, resource = field["resource"].split(".")
            value = cpu_cores(str(c["resources"][kind][resource])) / cpu_cores(str(field.get("divisor", "1")))
            env[e["name"]] = str(math.ceil(value))
        else:
            env[e["name"]] = e.get("value", "s3cret")  # secretKeyRef -> a stand-in value
    return {k: v for k, v in env.items() if k.startswith(prefix)}


@pytest.mark.parametrize("scenario", ["defaults", *CI])
def test_every_worker_env_var_is_a_worker_settings_field(rendered, scenario):
    names = set(rendered_env(rendered[scenario], "worker", "WORKER_"))
    fields = {env_name(WorkerSettings, f) for f in WorkerSettings.model_fields}
    assert names and names <= fields, f"not WorkerSettings fields: {sorted(names - fields)}"


@pytest.mark.parametrize("scenario", ["defaults", *CI])
def test_rendered_worker_env_loads_through_worker_settings(rendered, scenario, monkeypatch, tmp_path):
    env = rendered_env(rendered[scenario], "worker", "WORKER_")
    for key in ("WORKER_KAFKA_SSL_CAFILE", "WORKER_KAFKA_SSL_CERTFILE", "WORKER_KAFKA_SSL_KEYFILE"):
        if key in env:  # the validator wants the mounted files to exist; stand in for the Secret volume
            (tmp_path / Path(env[key]).name).write_text("PEM")
            env[key] = str(tmp_path / Path(env[key]).name)
    for key in [k for k in list(__import__("os").environ) if k.startswith("WORKER_")]:
        monkeypatch.delenv(key)
    for key, value in {**env, **rendered_env(rendered[scenario], "worker", "AWS_")}.items():
        monkeypatch.setenv(key, value)  # AWS_*: the evidence store's keys, from a Secret
    settings = load_settings(WorkerSettings)  # raises SettingsError naming any bad env var
    assert str(settings.model_path) == "/models"
    assert settings.metrics_port == int(env["WORKER_METRICS_PORT"])


def test_every_worker_setting_is_settable_from_values():
    settable = set(SCHEMA["properties"]["worker"]["properties"]["settings"]["properties"])
    expected = set(WorkerSettings.model_fields) - NOT_IN_SETTINGS
    assert settable == expected
    assert set(VALUES["worker"]["settings"]) == expected  # and each is visible (documented) in values.yaml
    assert SCHEMA["properties"]["worker"]["properties"]["settings"]["additionalProperties"] is False


def test_the_model_threads_follow_the_pods_cpu_request_unless_cpus_is_set():
    docs = render(set_values=MINIMAL_SETS + ("worker.resources.requests.cpu=1500m",))
    assert "WORKER_CPUS" not in find(docs, "ConfigMap", "-worker")["data"]
    assert rendered_env(docs, "worker", "WORKER_")["WORKER_CPUS"] == "2"  # 1.5 CPUs rounded up
    docs = render(set_values=MINIMAL_SETS + ("worker.settings.cpus=3",))
    assert rendered_env(docs, "worker", "WORKER_")["WORKER_CPUS"] == "3"
    assert not [e for e in find(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]["env"]
                if e["name"] == "WORKER_CPUS"]


def test_kafka_values_cover_every_kafka_setting(rendered):
    """Each KafkaClientSettings field is rendered by at least one scenario (the TLS/SASL ones included)."""
    seen = set()
    for docs in rendered.values():
        seen |= set(rendered_env(docs, "worker", "WORKER_KAFKA_"))
    assert seen == {env_name(WorkerSettings, f) for f in KafkaClientSettings.model_fields}


def test_chart_defaults_equal_the_worker_defaults():
    code = WorkerSettings.model_construct()  # defaults without reading the environment
    for field, value in VALUES["worker"]["settings"].items():
        expected = CHART_DEFAULTS_DIFFER.get(field, getattr(code, field))
        assert value == expected, f"worker.settings.{field}: chart {value!r}, worker default {expected!r}"


def test_simulator_env_vars_are_sim_settings_fields(rendered, monkeypatch):
    env = rendered_env(rendered["cpu"], "simulator", "SIM_")
    fields = {env_name(SimSettings, f) for f in SimSettings.model_fields}
    assert set(env) <= fields, f"not SimSettings fields: {sorted(set(env) - fields)}"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sim = load_settings(SimSettings)
    assert (sim.lines, sim.cameras_per_line) == (2, 2) and 0 < sim.corrupt_rate < 0.1


def _documented(lines: list[str]) -> list[str]:
    """Keys in values.yaml without a comment: a key needs one unless it is a mapping of documented keys
    or lies inside a value that already has a `# --` comment (e.g. resources.requests.cpu)."""
    missing, stack = [], []  # stack of (indent, documented-as-a-value)
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z_][\w.-]*):(.*)$", line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        block = []  # the comment lines right above the key
        for above in reversed(lines[:i]):
            if not above.strip().startswith("#"):
                break
            block.append(above.strip())
        commented = bool(block)
        inside_documented = any(doc for _, doc in stack)
        nxt = next((l for l in lines[i + 1:] if l.strip() and not l.strip().startswith("#")), "")
        is_parent = not rest and len(nxt) - len(nxt.lstrip()) > indent and not nxt.strip().startswith("- ")
        if not (commented or inside_documented or is_parent):
            missing.append(f"line {i + 1}: {key}")
        stack.append((indent, any(c.startswith("# --") for c in block) or inside_documented))
    return missing


def test_every_value_has_a_comment():
    assert _documented((CHART / "values.yaml").read_text().splitlines()) == []


def test_the_comment_check_notices_an_undocumented_value():
    assert _documented(["a:", "  # -- documented", "  b: 1", "  c: 2"]) == ["line 4: c"]


def test_values_yaml_passes_its_own_schema():
    import jsonschema
    jsonschema.validate(VALUES, SCHEMA)
    for path in CI.values():
        merged = json.loads(json.dumps(VALUES))
        _merge(merged, yaml.safe_load(path.read_text()))
        jsonschema.validate(merged, SCHEMA)


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v

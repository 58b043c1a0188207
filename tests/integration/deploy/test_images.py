"""Container images and the compose stack, checked offline (no Docker engine here): Dockerfile stages, a
non-root user in every shipped stage, no build tools shipped, COPY sources present and not docker-ignored,
env names that are real settings, the simulator image's dependency list against its real imports, and
compose references (build targets, mounted paths, topics, ports, grace periods)."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from line_contracts import topics
from line_harness.paths import REPO
from line_runtime.settings import env_name, load_settings
from producer_sim.settings import SimSettings
from worker.settings import WorkerSettings

DOCKER = REPO / "deploy" / "docker"
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
CHART_VALUES = yaml.safe_load((REPO / "helm/line-inspection/values.yaml").read_text())
SHIPPED = {"worker.Dockerfile": ["worker-cpu", "worker-gpu"], "producer-sim.Dockerfile": ["producer-sim"],
           "viewer.Dockerfile": ["evidence-viewer"]}


def parse_dockerfile(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """(global ARG defaults, stage name -> [(INSTRUCTION, arguments)]); stage 'FROM' holds its base."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args, stages, current = {}, {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            parts = rest.split()
            current = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else f"stage{len(stages)}"
            stages[current] = [("FROM", parts[0])]
        elif current is None and instr == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[current].append((instr, rest))
    return args, stages


def chain(stages: dict, name: str) -> list[str]:
    """The stage and the stages it is built FROM, nearest first."""
    out = [name]
    while stages[out[-1]][0][1] in stages:
        out.append(stages[out[-1]][0][1])
    return out


def env_names(instructions: list[tuple[str, str]]) -> set[str]:
    names = set()
    for instr, rest in instructions:
        if instr == "ENV":
            names |= {tok.split("=", 1)[0] for tok in shlex.split(rest) if "=" in tok}
    return names


def ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


@pytest.mark.parametrize("dockerfile", sorted(SHIPPED))
def test_shipped_stages_run_as_the_charts_non_root_user(dockerfile):
    _, stages = parse_dockerfile(DOCKER / dockerfile)
    uid = CHART_VALUES["podSecurityContext"]["runAsUser"]
    for target in SHIPPED[dockerfile]:
        users = [rest for s in chain(stages, target) for instr, rest in stages[s] if instr == "USER"]
        assert users, f"{target}: no USER"
        assert users[0] == f"{uid}:{uid}", f"{target}: USER {users[0]}, chart runs as {uid}"


@pytest.mark.parametrize("dockerfile", sorted(SHIPPED))
def test_no_build_tools_in_shipped_stages(dockerfile):
    _, stages = parse_dockerfile(DOCKER / dockerfile)
    for target in SHIPPED[dockerfile]:
        for stage in chain(stages, target):
            for instr, rest in stages[stage]:
                assert not (instr == "RUN" and re.search(r"pip install|apt-get install|gcc|build-essential", rest)), \
                    f"{target} installs build tooling in its runtime stage {stage}: {rest}"
                if instr == "COPY" and "--from=" in rest:
                    source_stage = re.search(r"--from=(\S+)", rest).group(1)
                    assert rest.split()[-2:] == ["/opt/venv", "/opt/venv"], rest
                    # the virtualenv leaves its installer behind
                    assert any("pip uninstall -y pip setuptools wheel" in r
                               for s in chain(stages, source_stage) for _, r in stages[s]), source_stage


@pytest.mark.parametrize("dockerfile", sorted(SHIPPED))
def test_copy_sources_exist_and_are_not_docker_ignored(dockerfile):
    args, stages = parse_dockerfile(DOCKER / dockerfile)
    patterns = [l.strip() for l in (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    for stage, instructions in stages.items():
        stage_args = dict(args)
        for instr, rest in instructions:
            if instr == "ARG" and "=" in rest:
                k, _, v = rest.partition("=")
                stage_args[k] = v
            if instr != "COPY" or "--from=" in rest:
                continue
            sources = [t for t in rest.split() if not t.startswith("--")][:-1]
            for src in sources:
                src = re.sub(r"\$\{(\w+)\}", lambda m: stage_args[m.group(1)], src)
                assert (REPO / src).exists(), f"{dockerfile} {stage}: COPY source {src} missing"
                assert not ignored(src, patterns), f"{dockerfile}: {src} is excluded by the .dockerignore"


def test_worker_image_env_and_port_match_the_settings():
    _, stages = parse_dockerfile(DOCKER / "worker.Dockerfile")
    names = {n for s in stages.values() for n in env_names(s) if n.startswith("WORKER_")}
    assert names and names <= {env_name(WorkerSettings, f) for f in WorkerSettings.model_fields}
    exposed = {rest for s in stages.values() for instr, rest in s if instr == "EXPOSE"}
    assert exposed == {str(WorkerSettings.model_fields["metrics_port"].default)}
    cmds = {rest for s in stages.values() for instr, rest in s if instr == "CMD"}
    assert cmds == {'["python", "-m", "worker"]'}
    assert (REPO / "worker" / "__main__.py").is_file(), "the image runs `python -m worker`"


def third_party_imports(package: str) -> set[str]:
    """Top-level third-party modules imported (anywhere, also inside functions) by a first-party package,
    following its first-party imports."""
    first_party = {"line_contracts", "line_runtime", "surface_images", "worker", "producer_sim", "training",
                   "evidence_viewer"}
    todo, seen, found = [REPO / package], set(), set()
    while todo:
        path = todo.pop()
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        for f in files:
            if f in seen:
                continue
            seen.add(f)
            for node in ast.walk(ast.parse(f.read_text())):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
                for mod in mods:
                    top = mod.split(".")[0]
                    if top in first_party:
                        target = REPO / Path(*mod.split("."))
                        todo.append(target if target.is_dir() else target.with_suffix(".py"))
                    elif top not in sys.stdlib_module_names and top != "__future__":
                        found.add(top)
    return found


PROVIDES = {"kafka-python": "kafka", "opencv-python-headless": "cv2", "numpy": "numpy", "pydantic": "pydantic",
            "pydantic-settings": "pydantic_settings", "prometheus-client": "prometheus_client",
            "ai-edge-litert": "ai_edge_litert", "tensorflow": "tensorflow", "tf-keras": "tf_keras",
            "tensorflow-hub": "tensorflow_hub", "matplotlib": "matplotlib", "boto3": "boto3",
            "botocore": "botocore", "urllib3": "urllib3"}


def extra_modules(extra: str) -> set[str]:
    """Import names installed by the base dependencies plus one extra of pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"][extra]
    return {PROVIDES[re.split(r"[\\[<>=;]", r.strip())[0].lower()] for r in reqs}


# deployable -> (its extra, imports that may be missing because they are lazy and optional there, forbidden)
IMAGES = {
    "producer_sim": ("simulator", set(), {"tensorflow", "tensorflow_hub", "tf_keras", "matplotlib", "ai_edge_litert"}),
    # The CPU worker serves the LiteRT twin; TensorFlow is imported only for a GPU or a SavedModel-only model.
    "worker": ("worker-cpu", {"tensorflow"}, {"tensorflow_hub", "tf_keras", "matplotlib"}),
}


@pytest.mark.parametrize("package", sorted(IMAGES))
def test_image_extra_covers_the_deployables_imports_and_nothing_heavy(package):
    extra, optional, forbidden = IMAGES[package]
    needed = third_party_imports(package)
    assert "kafka" in needed and "cv2" in needed  # the scan really follows the imports
    assert needed - optional <= extra_modules(extra), f"extra [{extra}] lacks {sorted(needed - optional - extra_modules(extra))}"
    assert not forbidden & needed, f"{package} imports {sorted(forbidden & needed)}"
    assert not forbidden & extra_modules(extra)


def test_viewer_image_extra_covers_the_pages_imports_and_nothing_heavy():
    needed = third_party_imports("evidence_viewer")
    assert {"boto3", "pydantic_settings"} <= needed  # the scan really follows the page's imports
    assert needed <= extra_modules("viewer"), f"extra [viewer] lacks {sorted(needed - extra_modules('viewer'))}"
    assert not {"tensorflow", "tensorflow_hub", "tf_keras", "matplotlib", "ai_edge_litert"} & extra_modules("viewer")


def test_viewer_image_env_port_and_command_match_the_settings():
    from evidence_viewer.settings import ViewerSettings
    _, stages = parse_dockerfile(DOCKER / "viewer.Dockerfile")
    names = {n for s in stages.values() for n in env_names(s) if n.startswith("VIEWER_")}
    assert names and names <= {env_name(ViewerSettings, f) for f in ViewerSettings.model_fields}
    exposed = {rest for s in stages.values() for instr, rest in s if instr == "EXPOSE"}
    assert exposed == {str(ViewerSettings.model_fields["port"].default)}
    assert {rest for s in stages.values() for instr, rest in s if instr == "CMD"} == {'["python", "-m", "evidence_viewer"]'}


def test_gpu_worker_extra_covers_tensorflow():
    # LiteRT is imported only for a model served on CPU; the GPU image serves the SavedModel.
    assert third_party_imports("worker") - {"ai_edge_litert"} <= extra_modules("worker-gpu")
    assert "tensorflow" in extra_modules("worker-gpu")


def test_compose_builds_existing_targets_with_the_charts_image_names():
    _, worker_stages = parse_dockerfile(DOCKER / "worker.Dockerfile")
    for name in ("worker", "simulator"):
        build = COMPOSE["services"][name]["build"]
        assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).is_file()
    assert COMPOSE["services"]["worker"]["build"]["target"] in worker_stages
    gpu = yaml.safe_load((COMPOSE_DIR / "compose.gpu.yaml").read_text())
    assert gpu["services"]["worker"]["build"]["target"] in worker_stages
    app = yaml.safe_load((REPO / "helm/line-inspection/Chart.yaml").read_text())["appVersion"]
    assert COMPOSE["services"]["worker"]["image"] == f"{CHART_VALUES['worker']['image']['repository']}:{app}-cpu"
    assert gpu["services"]["worker"]["image"] == f"{CHART_VALUES['worker']['image']['repository']}:{app}-gpu"
    assert COMPOSE["services"]["simulator"]["image"] == f"{CHART_VALUES['simulator']['image']['repository']}:{app}"


def test_compose_mounts_point_at_existing_project_files():
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0] if not volume.startswith("${") else re.search(r":-([^}]+)}", volume).group(1)
            if "models" in host:  # the model folder is made by training, documented in docs/deploy.md
                continue
            assert (COMPOSE_DIR / host).exists(), volume
    prom = COMPOSE["services"]["prometheus"]
    config = next(a for a in prom["command"] if a.startswith("--config.file=")).split("=", 1)[1]
    mount_host, mount_dir = prom["volumes"][0].split(":")[:2]
    assert (COMPOSE_DIR / mount_host / Path(config).relative_to(mount_dir)).is_file()
    sd = yaml.safe_load((COMPOSE_DIR / mount_host / Path(config).relative_to(mount_dir)).read_text())
    target = sd["scrape_configs"][0]["dns_sd_configs"][0]
    assert target["names"] == ["worker"] and str(target["port"]) == \
        COMPOSE["services"]["worker"]["environment"]["WORKER_METRICS_PORT"]
    datasource = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/line-inspection.yml").read_text())
    mounts = dict(v.split(":")[1::-1] for v in COMPOSE["services"]["grafana"]["volumes"])
    assert (COMPOSE_DIR / mounts[provider["providers"][0]["options"]["path"]] / "line-overview.json").is_file()


def test_compose_env_loads_through_the_settings_classes(monkeypatch):
    worker_env = COMPOSE["services"]["worker"]["environment"]
    sim_env = COMPOSE["services"]["simulator"]["environment"]
    for key, value in {**worker_env, **sim_env}.items():
        monkeypatch.setenv(key, str(value))
    worker = load_settings(WorkerSettings)
    sim = load_settings(SimSettings)
    assert set(worker_env) <= {env_name(WorkerSettings, f) for f in WorkerSettings.model_fields}
    assert set(sim_env) <= {env_name(SimSettings, f) for f in SimSettings.model_fields}
    assert sim.frames_topic == worker.frames_topic
    init = COMPOSE["services"]["kafka-init"]["command"][0]
    created = set(re.findall(r"--topic (\S+)", init))
    assert {worker.frames_topic, worker.results_topic, worker.dead_letter_topic} <= created
    assert {topics.FRAMES_TOPIC, topics.RESULTS_TOPIC, topics.DEAD_LETTER_TOPIC} <= created
    grace = COMPOSE["services"]["worker"]["stop_grace_period"]
    assert float(grace.rstrip("s")) > worker.shutdown_grace_s


def test_images_pin_the_python_and_tensorflow_the_tests_run_with():
    """The images get the interpreter minor version and TensorFlow release this checkout is tested with."""
    from importlib.metadata import version
    tested_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    for dockerfile in SHIPPED:
        args, _ = parse_dockerfile(DOCKER / dockerfile)
        assert args["PYTHON_IMAGE"].startswith(f"python:{tested_python}-"), (dockerfile, args["PYTHON_IMAGE"])
    args, _ = parse_dockerfile(DOCKER / "worker.Dockerfile")
    assert args["TF_VERSION"] == version("tensorflow")

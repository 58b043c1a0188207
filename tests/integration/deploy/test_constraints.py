"""The images install from a constraints file that pins every runtime dependency to the tested version:
the file is current with this environment, covers every requirement of the image extras and everything
they pull in, satisfies pyproject's own bounds, and every Dockerfile `pip install` uses it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from line_harness.paths import REPO
from line_harness.tools.lock_constraints import CONSTRAINTS, NOT_PINNED, image_requirements, resolve

DOCKER = REPO / "deploy" / "docker"


def pins() -> dict[str, str]:
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version
    return out


def test_constraints_are_current():
    proc = subprocess.run([sys.executable, "-m", "line_harness.tools.lock_constraints", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_every_runtime_dependency_is_pinned_within_pyprojects_bounds():
    pinned = pins()
    direct = image_requirements()
    assert {"kafka-python", "tensorflow", "ai-edge-litert", "prometheus-client", "pydantic"} <= \
        {canonicalize_name(r.name) for r in direct}
    for req in direct:
        version = pinned.get(canonicalize_name(req.name))
        assert version, f"{req.name} (pyproject) has no pin in {CONSTRAINTS.name}"
        assert req.specifier.contains(version, prereleases=True), f"{req.name}=={version} outside {req.specifier}"
    closure = set(resolve(direct))
    assert closure - set(pinned) == set(), "transitive dependencies without a pin"
    assert len(closure) > len(direct)  # the pins reach past the direct requirements
    assert not set(pinned) & NOT_PINNED


def test_a_requirement_that_is_not_installed_is_named():
    """The pins come from what was installed and tested; anything else stops the generator, naming it."""
    with pytest.raises(SystemExit, match="left-pad-never-installed is required"):
        resolve([Requirement("left-pad-never-installed>=1")])


def test_every_pip_install_in_the_dockerfiles_uses_the_constraints():
    installs = 0
    for dockerfile in DOCKER.glob("*.Dockerfile"):
        text = dockerfile.read_text()
        assert "COPY deploy/docker/constraints.txt ./" in text, dockerfile.name
        for line in re.findall(r"pip install [^\n\\\\]*", text):
            installs += 1
            assert "-c constraints.txt" in line, f"{dockerfile.name}: {line}"
    assert installs >= 3  # worker-cpu, worker-gpu, simulator


def test_tensorflow_pin_is_the_images_tensorflow():
    tf_arg = re.search(r"ARG TF_VERSION=(\S+)", (DOCKER / "worker.Dockerfile").read_text()).group(1)
    assert pins()["tensorflow"] == tf_arg

"""Dependencies point one way: contracts <- runtime <- deployables <- harness (docs/architecture.md).

Every import is read from the source, lazy ones inside functions included, so a forbidden import cannot
hide behind a function call. A deployable never imports another deployable: each image installs only its
own package and the layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from line_harness.paths import REPO

# package -> the first-party packages it may import (itself always allowed)
ALLOWED = {
    "line_contracts": set(),
    "line_runtime": {"line_contracts"},
    "surface_images": {"line_contracts"},
    "worker": {"line_contracts", "line_runtime"},
    "training": {"line_contracts", "line_runtime", "surface_images"},
    "producer_sim": {"line_contracts", "line_runtime", "surface_images"},
    "evidence_viewer": {"line_contracts", "line_runtime"},
    "line_harness": {"line_contracts", "line_runtime", "surface_images", "worker", "training", "producer_sim",
                     "evidence_viewer"},
}
FIRST_PARTY = set(ALLOWED)


def first_party_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every first-party import in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in FIRST_PARTY]
    return found


def violations(package: str) -> list[str]:
    """'file:line imports pkg' for each import of `package` that crosses a forbidden boundary."""
    allowed = ALLOWED[package] | {package}
    return [f"{path.relative_to(REPO)}:{line} imports {target}"
            for path in sorted((REPO / package).rglob("*.py"))
            for line, target in first_party_imports(path) if target not in allowed]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_layers(package):
    assert (REPO / package / "__init__.py").is_file(), f"{package} is not a package any more: update ALLOWED"
    assert violations(package) == []


def test_every_top_level_package_has_a_layer():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages == FIRST_PARTY, "a new top-level package needs its place in ALLOWED and docs/architecture.md"


def test_the_check_catches_a_forbidden_import(tmp_path):
    # The scan must see lazy imports inside functions, the way worker/model.py once reached into training.
    bad = tmp_path / "bad.py"
    bad.write_text("def load():\n    from training.export import export_version\n    import producer_sim.run\n")
    assert first_party_imports(bad) == [(2, "training"), (3, "producer_sim")]

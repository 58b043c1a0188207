"""`pip install .[viewer]` is enough for `python -m evidence_viewer`: its third-party imports (its own and
those of the layers it imports) are the base dependencies plus the viewer extra, and nothing heavy."""

from __future__ import annotations

import ast
import re
import sys

import tomllib

from line_harness.paths import REPO

PROVIDES = {"kafka-python": "kafka", "opencv-python-headless": "cv2", "numpy": "numpy", "pydantic": "pydantic",
            "pydantic-settings": "pydantic_settings", "boto3": "boto3", "botocore": "botocore"}
LAYERS = ("evidence_viewer", "line_contracts", "line_runtime")


def imports_of(package: str) -> set[str]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_the_viewer_extra_covers_what_the_page_imports():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["viewer"]
    installed = {PROVIDES[re.split(r"[\[<>=;]", r.strip())[0].lower()] for r in reqs}
    # line_runtime's model backends import TensorFlow/LiteRT lazily; the page never opens a model.
    page_imports = {m for m in imports_of("evidence_viewer") if m not in sys.stdlib_module_names} - set(LAYERS)
    assert "boto3" in page_imports and page_imports <= installed | {"__future__"}
    assert not {"tensorflow", "ai_edge_litert", "kafka", "matplotlib"} & page_imports

"""Training runs on TensorFlow's BFC allocator unless the environment says otherwise (training/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from line_harness.paths import REPO

PROBE = "import os, training; print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'])"


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_training_turns_the_bfc_allocator_on():
    assert _probe() == "true"


def test_the_environment_can_turn_it_off():
    assert _probe(TF_CPU_ALLOCATOR_USE_BFC="false") == "false"

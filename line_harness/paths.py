"""Where things live in a checkout: the harness runs from the repository, never from an installed wheel."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_DIR = REPO / "run"
DEPLOY_DIR = REPO / "deploy"

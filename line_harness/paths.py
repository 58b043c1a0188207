"""Where things live in a checkout: the harness runs from the repository, never from an installed wheel."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY_DIR = REPO / "deploy"

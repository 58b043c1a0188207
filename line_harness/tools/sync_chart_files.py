"""Copy the Prometheus rules and Grafana dashboards into the Helm chart (Helm can only read files inside
the chart, and symlinks do not survive `helm package` everywhere).

    python -m line_harness.tools.sync_chart_files           # copy
    python -m line_harness.tools.sync_chart_files --check   # exit 1 if the chart's copies differ (CI, tests)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from line_harness.paths import REPO

CHART_FILES = REPO / "helm" / "line-inspection" / "files"
# (source folder, glob, folder inside the chart's files/)
SYNCED = [
    (REPO / "deploy" / "prometheus" / "rules", "*.rules.yml", CHART_FILES / "prometheus"),
    (REPO / "deploy" / "grafana" / "dashboards", "*.json", CHART_FILES / "dashboards"),
]


def pairs() -> list[tuple[Path, Path]]:
    """(source, chart copy) for every synced file, plus (None, copy) for copies whose source is gone."""
    out = []
    for src_dir, pattern, dst_dir in SYNCED:
        sources = {p.name: p for p in sorted(src_dir.glob(pattern))}
        out += [(src, dst_dir / name) for name, src in sources.items()]
        out += [(None, p) for p in sorted(dst_dir.glob(pattern)) if p.name not in sources]
    return out


def differences() -> list[str]:
    """Human-readable list of chart copies that are missing, stale or orphaned."""
    problems = []
    for src, dst in pairs():
        if src is None:
            problems.append(f"{dst.relative_to(REPO)} has no source any more")
        elif not dst.is_file():
            problems.append(f"{dst.relative_to(REPO)} is missing (copy of {src.relative_to(REPO)})")
        elif dst.read_bytes() != src.read_bytes():
            problems.append(f"{dst.relative_to(REPO)} differs from {src.relative_to(REPO)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Sync, or with --check only report."""
    parser = argparse.ArgumentParser(description="Sync rules and dashboards into the Helm chart.")
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run: python -m line_harness.tools.sync_chart_files", file=sys.stderr)
        return 1 if problems else 0
    for src, dst in pairs():
        if src is None:
            dst.unlink()
            print(f"removed {dst.relative_to(REPO)}")
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
            print(f"copied {src.relative_to(REPO)} -> {dst.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
